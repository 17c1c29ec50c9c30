# The book's MultiHeadAttentionCombinedQKV under a signature of its own (d_in, d_out, n_heads,
# context_length, ...): the grader cannot pass the contract's names, so it passes the arguments
# in the contract's order, n_heads gets the context length, and the constructor's assertion
# refuses every case, the valid ones too: the refusal case's AssertionError shows nothing.


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, n_heads, context_length, dropout=0.0, qkv_bias=False):
        super().__init__()
        assert d_out % n_heads == 0, "embed_dim is indivisible by num_heads"
        self.num_heads = n_heads
        self.head_dim = d_out // n_heads
        self.qkv = nn.Linear(d_in, 3 * d_out, bias=qkv_bias)
        self.proj = nn.Linear(d_out, d_out)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        return self.proj(self.qkv(x)[..., : self.proj.in_features])
