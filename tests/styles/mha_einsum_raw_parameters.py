"""MultiHeadAttention with raw (d_in, d_out) parameters, separate biases and einsum (correct; its
own initialisation is not the book's)."""
import torch
import torch.nn as nn


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"
        self.heads, self.head_dim = num_heads, d_out // num_heads
        self.W_query = nn.Parameter(torch.randn(d_in, d_out) * 0.1)  # x @ W: (b, T, d_out)
        self.W_key = nn.Parameter(torch.randn(d_in, d_out) * 0.1)
        self.W_value = nn.Parameter(torch.randn(d_in, d_out) * 0.1)
        if qkv_bias:
            self.b_query = nn.Parameter(torch.zeros(d_out))
            self.b_key = nn.Parameter(torch.zeros(d_out))
            self.b_value = nn.Parameter(torch.zeros(d_out))
        else:
            self.b_query = self.b_key = self.b_value = None
        self.W_out = nn.Parameter(torch.randn(d_out, d_out) * 0.1)
        self.b_out = nn.Parameter(torch.zeros(d_out))
        self.drop = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def project(self, x, weight, bias):
        y = torch.einsum("btd,de->bte", x, weight)
        return y if bias is None else y + bias

    def forward(self, x):
        b, t, _ = x.shape
        q = self.project(x, self.W_query, self.b_query).view(b, t, self.heads, self.head_dim)
        k = self.project(x, self.W_key, self.b_key).view(b, t, self.heads, self.head_dim)
        v = self.project(x, self.W_value, self.b_value).view(b, t, self.heads, self.head_dim)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / self.head_dim ** 0.5  # (b, h, T, T)
        scores = scores.masked_fill(self.mask.bool()[:t, :t], -torch.inf)
        weights = self.drop(torch.softmax(scores, dim=-1))
        context = torch.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, t, self.heads * self.head_dim)
        return context @ self.W_out + self.b_out
