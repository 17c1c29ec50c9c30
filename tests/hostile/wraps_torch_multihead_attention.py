# The book's wrapper of nn.MultiheadAttention, under its own signature (d_in, d_out, num_heads,
# context_length, ...): called in the contract's order, nn.MultiheadAttention is asked for
# context_length heads and refuses every case with an AssertionError, the valid ones too.


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, num_heads, context_length, dropout=0.0, qkv_bias=False,
                 need_weights=True):
        super().__init__()
        self.context_length = context_length
        self.multihead_attn = nn.MultiheadAttention(embed_dim=d_out, num_heads=num_heads,
                                                    dropout=dropout, bias=qkv_bias,
                                                    add_bias_kv=qkv_bias, batch_first=True)
        self.need_weights = need_weights
        self.proj = nn.Linear(d_out, d_out)
        mask = torch.triu(torch.ones(context_length, context_length), diagonal=1)
        self.register_buffer("mask", mask.bool())

    def forward(self, x):
        batch_size, num_tokens, _ = x.shape
        attn_mask = self.mask[:num_tokens, :num_tokens]
        attn_output, _ = self.multihead_attn(x, x, x, attn_mask=attn_mask,
                                             need_weights=self.need_weights)
        return self.proj(attn_output)
