"""MultiHeadAttention with one fused qkv Linear, scaled_dot_product_attention(is_causal=True), no
mask buffer, its output layer called last_Layer and its arguments in another order (correct)."""
import torch.nn as nn
import torch.nn.functional as F


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, num_heads, context_length, dropout=0.0, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0, "d_out is indivisible by num_heads"
        self.num_heads, self.head_dim, self.d_out = num_heads, d_out // num_heads, d_out
        self.qkv = nn.Linear(d_in, 3 * d_out, bias=qkv_bias)  # [queries | keys | values]
        self.last_Layer = nn.Linear(d_out, d_out)
        self.dropout = dropout

    def forward(self, x):
        b, t, _ = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        queries, keys, values = qkv  # each (b, heads, T, head_dim)
        p = self.dropout if self.training else 0.0
        context = F.scaled_dot_product_attention(queries, keys, values, dropout_p=p, is_causal=True)
        return self.last_Layer(context.transpose(1, 2).reshape(b, t, self.d_out))
