# %% [markdown]
# # Chapter 4: implementing a GPT model from scratch to generate text
#
# Build a Large Language Model (From Scratch), chapter 4: layer normalisation, the GELU
# activation, the feed-forward network and the transformer block, with the book's names and
# signatures. Fill in each function body marked `raise NotImplementedError`.

# %%
import torch
import torch.nn as nn

# The configuration of the 124-million-parameter GPT-2 ("GPT-2 small").
GPT_CONFIG_124M = {
    "vocab_size": 50257,     # vocabulary size (the BPE tokenizer's)
    "context_length": 1024,  # the longest input, in tokens
    "emb_dim": 768,          # embedding dimension
    "n_heads": 12,           # attention heads
    "n_layers": 12,          # transformer blocks
    "drop_rate": 0.1,        # dropout rate
    "qkv_bias": False,       # biases in the query, key and value projections
}


# %% [markdown]
# ## 4.2 Layer normalisation
#
# Normalise the last dimension to mean 0 and variance 1 (the biased variance, dividing by n, as
# GPT-2 does), then scale and shift it by two trainable vectors.

# %%
class LayerNorm(nn.Module):
    def __init__(self, emb_dim):
        super().__init__()
        # BEGIN SOLUTION
        self.eps = 1e-5                                  # keeps the division away from zero
        self.scale = nn.Parameter(torch.ones(emb_dim))   # (emb_dim,)
        self.shift = nn.Parameter(torch.zeros(emb_dim))  # (emb_dim,)
        # END SOLUTION

    def forward(self, x):
        # BEGIN SOLUTION
        mean = x.mean(dim=-1, keepdim=True)                 # (..., 1)
        var = x.var(dim=-1, keepdim=True, unbiased=False)  # (..., 1), divided by n
        norm_x = (x - mean) / torch.sqrt(var + self.eps)   # (..., emb_dim)
        return self.scale * norm_x + self.shift
        # END SOLUTION


# %% [markdown]
# ## 4.3 The GELU activation
#
# GPT-2 uses the tanh approximation of GELU:
# 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))).

# %%
class GELU(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        # BEGIN SOLUTION
        return 0.5 * x * (1 + torch.tanh(
            torch.sqrt(torch.tensor(2.0 / torch.pi)) * (x + 0.044715 * torch.pow(x, 3))
        ))
        # END SOLUTION


# %% [markdown]
# ## 4.3 The feed-forward network
#
# Expand the embedding to four times its size, apply GELU, and project it back:
# (b, T, emb_dim) -> (b, T, 4 * emb_dim) -> (b, T, emb_dim), in an `nn.Sequential` called `layers`.

# %%
class FeedForward(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        # BEGIN SOLUTION
        self.layers = nn.Sequential(
            nn.Linear(cfg["emb_dim"], 4 * cfg["emb_dim"]),
            GELU(),
            nn.Linear(4 * cfg["emb_dim"], cfg["emb_dim"]),
        )
        # END SOLUTION

    def forward(self, x):
        # BEGIN SOLUTION
        return self.layers(x)
        # END SOLUTION


# %% [markdown]
# ## 4.5 The transformer block
#
# Chapter 3's multi-head attention, given here, then the block: pre-layer-norm, attention,
# dropout and a shortcut; pre-layer-norm, feed-forward, dropout and a shortcut.

# %%
class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        b, num_tokens, _ = x.shape
        # (b, T, d_out) -> (b, T, heads, head_dim) -> (b, heads, T, head_dim)
        keys = self.W_key(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        queries = self.W_query(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        values = self.W_value(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        attn_scores = queries @ keys.transpose(2, 3)  # (b, heads, T, T)
        attn_scores.masked_fill_(self.mask.bool()[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = self.dropout(torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1))
        context = (attn_weights @ values).transpose(1, 2)  # (b, T, heads, head_dim)
        return self.out_proj(context.contiguous().view(b, num_tokens, self.d_out))


class TransformerBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        # BEGIN SOLUTION
        self.att = MultiHeadAttention(
            d_in=cfg["emb_dim"], d_out=cfg["emb_dim"], context_length=cfg["context_length"],
            num_heads=cfg["n_heads"], dropout=cfg["drop_rate"], qkv_bias=cfg["qkv_bias"])
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])
        # END SOLUTION

    def forward(self, x):
        # BEGIN SOLUTION
        shortcut = x                      # (b, T, emb_dim)
        x = self.drop_shortcut(self.att(self.norm1(x)))
        x = x + shortcut                  # the first shortcut
        shortcut = x
        x = self.drop_shortcut(self.ff(self.norm2(x)))
        return x + shortcut               # the second shortcut
        # END SOLUTION


# %% [markdown]
# ## 4.6 The GPT model
#
# Token and positional embeddings, dropout, `n_layers` transformer blocks, a final layer norm
# and a linear output head: (b, T) token ids -> (b, T, vocab_size) logits.

# %%
class GPTModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        # BEGIN SOLUTION
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)
        # END SOLUTION

    def forward(self, in_idx):
        # BEGIN SOLUTION
        batch_size, seq_len = in_idx.shape
        tok_embeds = self.tok_emb(in_idx)                                       # (b, T, emb_dim)
        pos_embeds = self.pos_emb(torch.arange(seq_len, device=in_idx.device))  # (T, emb_dim)
        x = self.drop_emb(tok_embeds + pos_embeds)
        x = self.final_norm(self.trf_blocks(x))
        return self.out_head(x)                                                 # (b, T, vocab_size)
        # END SOLUTION


# %% [markdown]
# ## 4.7 Generating text
#
# Repeat `max_new_tokens` times: crop the context to the last `context_size` tokens, take the
# logits of the last position, pick the most likely token (greedy) and append it.

# %%
def generate_text_simple(model, idx, max_new_tokens, context_size):
    # BEGIN SOLUTION
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]            # (b, at most context_size)
        with torch.no_grad():
            logits = model(idx_cond)                 # (b, T, vocab_size)
        logits = logits[:, -1, :]                    # (b, vocab_size): the last position
        idx_next = torch.argmax(logits, dim=-1, keepdim=True)  # (b, 1)
        idx = torch.cat((idx, idx_next), dim=1)      # (b, T + 1)
    return idx
    # END SOLUTION


# %% [markdown]
# ## 4.6 GPT-2 small
#
# Build the 124-million-parameter configuration: `GPTModel(GPT_CONFIG_124M)` has 163,009,536
# parameters (124,412,160 without the output head, whose weights GPT-2 ties to the token embedding).

# %%
def gpt2_small():
    # BEGIN SOLUTION
    return GPTModel(GPT_CONFIG_124M)
    # END SOLUTION


# %% [markdown]
# GPT-2 ties the output head to the token embedding (the same weights), so the book counts its
# parameters without the output head: 163,009,536 - 38,597,376 = 124,412,160.

# %%
def count_parameters_tied(model):
    # BEGIN SOLUTION
    total = sum(p.numel() for p in model.parameters())
    return total - sum(p.numel() for p in model.out_head.parameters())
    # END SOLUTION
