# %% [markdown]
# # Chapter 3: Coding attention mechanisms
#
# These exercises follow chapter 3 of Sebastian Raschka's *Build a Large Language
# Model (From Scratch)*, from a simple attention score for one token all the way to
# the multi-head attention module used in GPT-2.
#
# Each step below has a short explanation and one function or class for you to write.
# Replace the `raise NotImplementedError(...)` line with your code, and keep the name
# and arguments as they are: the grader calls them by name.
#
# Shape notation used throughout:
#
# - `num_tokens` (or `T`): number of tokens in the input sequence
# - `d_in`: size of each input embedding, `d_out`: size of each output vector
# - `b`: batch size, `num_heads`: attention heads, `head_dim = d_out // num_heads`
#
# Each step quotes the output the book prints for its example (rounded to 4
# decimals), so you can check your code yourself before running the grader.

# %%
import torch
import torch.nn as nn

# %% [markdown]
# ## The example input
#
# The book embeds the six tokens of the sentence "Your journey starts with one step"
# as 3-dimensional vectors, one row per token. `BOOK_INPUTS` has shape `(6, 3)`, that
# is `(num_tokens, d_in)`. Every expected output quoted below is computed from it.

# %%
BOOK_INPUTS = torch.tensor(
    [
        [0.43, 0.15, 0.89],  # Your     (x^1)
        [0.55, 0.87, 0.66],  # journey  (x^2)
        [0.57, 0.85, 0.64],  # starts   (x^3)
        [0.22, 0.58, 0.33],  # with     (x^4)
        [0.77, 0.25, 0.10],  # one      (x^5)
        [0.05, 0.80, 0.55],  # step     (x^6)
    ]
)  # (num_tokens, d_in) = (6, 3)

# %% [markdown]
# ## Step 1: attention scores for one query (section 3.3.1)
#
# Self-attention starts by asking how much each input token relates to one *query*
# token. Without trainable weights, that attention score is simply the dot product of
# the query with each input row.
#
# - `inputs`: `(num_tokens, d)`, `query`: `(d,)`
# - return: `(num_tokens,)`, entry `i` is `inputs[i] · query`
#
# Book check, with the second token "journey" as the query (`query = BOOK_INPUTS[1]`):
#
# ```
# tensor([0.9544, 1.4950, 1.4754, 0.8434, 0.7070, 1.0865])
# ```


# %%
def attn_scores_for_query(inputs, query):
    """Return the attention scores of one query against every input token.

    Section 3.3.1. The score of token ``i`` is the dot product ``inputs[i] · query``.

    Args:
        inputs: tensor of shape (num_tokens, d), the embedded input tokens.
        query: tensor of shape (d,), the query vector (e.g. ``inputs[1]``).

    Returns:
        Tensor of shape (num_tokens,) with one attention score per input token.
    """
    # BEGIN SOLUTION
    attn_scores = inputs @ query  # (num_tokens,)
    return attn_scores
    # END SOLUTION


# %% [markdown]
# ## Step 2: a naive softmax (section 3.3.1)
#
# Attention scores are normalised into *attention weights* that are positive and sum
# to 1. Write the softmax by hand: `exp(x) / sum(exp(x))` for a 1-D tensor `x`
# (do not call `torch.softmax` here).
#
# - `x`: `(n,)`
# - return: `(n,)`, summing to 1
#
# Book check, applied to the scores of step 1:
#
# ```
# tensor([0.1385, 0.2379, 0.2333, 0.1240, 0.1082, 0.1581])
# ```
#
# (The naive version can overflow for large inputs; that is why the book then
# switches to `torch.softmax`, which is numerically stable.)


# %%
def softmax_naive(x):
    """Return the softmax of a 1-D tensor, computed by hand as exp(x) / sum(exp(x)).

    Section 3.3.1.

    Args:
        x: tensor of shape (n,), e.g. attention scores.

    Returns:
        Tensor of shape (n,) with positive entries that sum to 1.
    """
    # BEGIN SOLUTION
    exp_x = torch.exp(x)  # (n,)
    return exp_x / exp_x.sum(dim=0)  # (n,)
    # END SOLUTION


# %% [markdown]
# ## Step 3: the context vector for one query (section 3.3.1)
#
# The context vector of the query is the sum of all input rows, each multiplied by
# its attention weight.
#
# - `attn_weights`: `(num_tokens,)`, `inputs`: `(num_tokens, d)`
# - return: `(d,)`
#
# Book check, with the weights of step 2:
#
# ```
# tensor([0.4419, 0.6515, 0.5683])
# ```


# %%
def context_vector(attn_weights, inputs):
    """Return the context vector: the input rows weighted by attn_weights, summed.

    Section 3.3.1.

    Args:
        attn_weights: tensor of shape (num_tokens,), one weight per input token.
        inputs: tensor of shape (num_tokens, d), the embedded input tokens.

    Returns:
        Tensor of shape (d,).
    """
    # BEGIN SOLUTION
    weighted = attn_weights.unsqueeze(-1) * inputs  # (num_tokens, d)
    context_vec = weighted.sum(dim=0)  # (d,)
    return context_vec
    # END SOLUTION


# %% [markdown]
# ## Step 4: attention scores for all tokens (section 3.3.2)
#
# Now every token acts as a query in turn. The scores of all queries against all
# inputs form a `(num_tokens, num_tokens)` matrix: entry `[i, j]` is
# `inputs[i] · inputs[j]`. One matrix multiplication computes them all.
#
# - `inputs`: `(num_tokens, d)`
# - return: `(num_tokens, num_tokens)`
#
# Book check, row 0:
#
# ```
# tensor([0.9995, 0.9544, 0.9422, 0.4753, 0.4576, 0.6310])
# ```


# %%
def attention_scores(inputs):
    """Return all pairwise attention scores (dot products) between input tokens.

    Section 3.3.2. Entry ``[i, j]`` is ``inputs[i] · inputs[j]``.

    Args:
        inputs: tensor of shape (num_tokens, d).

    Returns:
        Tensor of shape (num_tokens, num_tokens).
    """
    # BEGIN SOLUTION
    attn_scores = inputs @ inputs.T  # (num_tokens, num_tokens)
    return attn_scores
    # END SOLUTION


# %% [markdown]
# ## Step 5: attention weights for all tokens (section 3.3.2)
#
# Normalise each row of scores with `torch.softmax` over the **last** dimension, so
# that each query's weights sum to 1. Using `dim=-1` makes the same code work for a
# single row, a matrix, or a batch of matrices.
#
# - `attn_scores`: `(..., num_tokens)`
# - return: same shape, each slice along the last dimension sums to 1
#
# Book check, row 0 of the weights for the scores of step 4:
#
# ```
# tensor([0.2098, 0.2006, 0.1981, 0.1242, 0.1220, 0.1452])
# ```


# %%
def attention_weights(attn_scores):
    """Return the softmax of attn_scores over the last dimension.

    Section 3.3.2. Works for any number of leading dimensions.

    Args:
        attn_scores: tensor of shape (..., num_tokens).

    Returns:
        Tensor of the same shape whose slices along the last dimension sum to 1.
    """
    # BEGIN SOLUTION
    attn_weights = torch.softmax(attn_scores, dim=-1)  # (..., num_tokens)
    return attn_weights
    # END SOLUTION


# %% [markdown]
# ## Step 6: context vectors for all tokens (section 3.3.2)
#
# Row `i` of the result is the context vector of token `i`: the inputs weighted by
# row `i` of the attention weights. Again, one matrix multiplication does it.
#
# - `attn_weights`: `(num_tokens, num_tokens)`, `inputs`: `(num_tokens, d)`
# - return: `(num_tokens, d)`
#
# Book check, row 0 (with the weights of step 5):
#
# ```
# tensor([0.4421, 0.5931, 0.5790])
# ```


# %%
def context_vectors(attn_weights, inputs):
    """Return the context vectors of all tokens.

    Section 3.3.2. Row ``i`` is the sum of the input rows weighted by ``attn_weights[i]``.

    Args:
        attn_weights: tensor of shape (num_tokens, num_tokens).
        inputs: tensor of shape (num_tokens, d).

    Returns:
        Tensor of shape (num_tokens, d).
    """
    # BEGIN SOLUTION
    all_context_vecs = attn_weights @ inputs  # (num_tokens, d)
    return all_context_vecs
    # END SOLUTION


# %% [markdown]
# ## Step 7: queries, keys and values (section 3.4.1)
#
# Self-attention with trainable weights projects each input into three spaces with
# three weight matrices: queries (`x @ W_query`), keys (`x @ W_key`) and values
# (`x @ W_value`).
#
# - `x`: `(num_tokens, d_in)`; `W_query`, `W_key`, `W_value`: `(d_in, d_out)`
# - return: the tuple `(queries, keys, values)`, each `(num_tokens, d_out)`
#
# Book check: after `torch.manual_seed(123)`, create `W_query`, `W_key` and `W_value`
# with `torch.rand(3, 2)` each, in that order. Then for `x = BOOK_INPUTS`:
#
# ```
# queries[1] = tensor([0.4306, 1.4551])
# keys[1]    = tensor([0.4433, 1.1419])
# ```


# %%
def project_qkv(x, W_query, W_key, W_value):
    """Project the inputs into queries, keys and values.

    Section 3.4.1.

    Args:
        x: tensor of shape (num_tokens, d_in).
        W_query: tensor of shape (d_in, d_out).
        W_key: tensor of shape (d_in, d_out).
        W_value: tensor of shape (d_in, d_out).

    Returns:
        Tuple (queries, keys, values), each a tensor of shape (num_tokens, d_out).
    """
    # BEGIN SOLUTION
    queries = x @ W_query  # (num_tokens, d_out)
    keys = x @ W_key  # (num_tokens, d_out)
    values = x @ W_value  # (num_tokens, d_out)
    return queries, keys, values
    # END SOLUTION


# %% [markdown]
# ## Step 8: scaled dot-product attention weights (section 3.4.1)
#
# The scores are now `queries @ keys^T`. Before the softmax, divide them by the
# square root of the key dimension `d_k = keys.shape[-1]`: this keeps the softmax
# from becoming too peaked (and its gradients too small) when `d_k` is large.
#
# - `queries`: `(num_queries, d_k)`, or a single query `(d_k,)`; `keys`: `(num_tokens, d_k)`
# - return: `(num_queries, num_tokens)`, or `(num_tokens,)` for a single query;
#   softmax over the last dimension
#
# Book check, with the second query alone (`queries[1]` from step 7) and the keys of
# step 7:
#
# ```
# tensor([0.1500, 0.2264, 0.2199, 0.1311, 0.0906, 0.1820])
# ```


# %%
def scaled_attention_weights(queries, keys):
    """Return softmax(queries @ keys^T / sqrt(d_k)) over the last dimension.

    Section 3.4.1 (scaled dot-product attention), with d_k = keys.shape[-1].

    Args:
        queries: tensor of shape (num_queries, d_k), or (d_k,) for one query.
        keys: tensor of shape (num_tokens, d_k).

    Returns:
        Tensor of shape (num_queries, num_tokens), or (num_tokens,) for one query.
    """
    # BEGIN SOLUTION
    d_k = keys.shape[-1]
    attn_scores = queries @ keys.transpose(-2, -1)  # (num_queries, num_tokens)
    attn_weights = torch.softmax(attn_scores / d_k**0.5, dim=-1)  # (num_queries, num_tokens)
    return attn_weights
    # END SOLUTION


# %% [markdown]
# ## Step 9: a compact self-attention class (section 3.4.2)
#
# Put steps 7 and 8 together in an `nn.Module`.
#
# - `__init__(d_in, d_out)`: create `self.W_query`, `self.W_key` and `self.W_value`,
#   **in that order**, each `nn.Parameter(torch.rand(d_in, d_out))`.
# - `forward(x)`: `x` is `(num_tokens, d_in)`; return the context vectors
#   `(num_tokens, d_out)` = scaled attention weights `@ values`.
#
# Book check: `torch.manual_seed(123)`, then `SelfAttention_v1(3, 2)(BOOK_INPUTS)`,
# row 0:
#
# ```
# tensor([0.2996, 0.8053])
# ```


# %%
class SelfAttention_v1(nn.Module):
    """Self-attention with trainable weight matrices stored as nn.Parameter.

    Section 3.4.2. Maps inputs of shape (num_tokens, d_in) to context vectors of shape
    (num_tokens, d_out).
    """

    def __init__(self, d_in, d_out):
        """Create W_query, W_key and W_value (in that order), each (d_in, d_out)."""
        # BEGIN SOLUTION
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))  # (d_in, d_out)
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))  # (d_in, d_out)
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))  # (d_in, d_out)
        # END SOLUTION

    def forward(self, x):
        """Map x of shape (num_tokens, d_in) to context vectors (num_tokens, d_out)."""
        # BEGIN SOLUTION
        num_tokens, d_in = x.shape
        keys = x @ self.W_key  # (num_tokens, d_out)
        queries = x @ self.W_query  # (num_tokens, d_out)
        values = x @ self.W_value  # (num_tokens, d_out)

        attn_scores = queries @ keys.T  # (num_tokens, num_tokens)
        attn_weights = torch.softmax(
            attn_scores / keys.shape[-1] ** 0.5, dim=-1
        )  # (num_tokens, num_tokens)

        context_vec = attn_weights @ values  # (num_tokens, d_out)
        return context_vec
        # END SOLUTION


# %% [markdown]
# ## Step 10: self-attention with `nn.Linear` layers (section 3.4.2)
#
# Same computation as step 9, but the projections are `nn.Linear` layers. They have
# a better weight initialisation than `torch.rand`, which makes training more stable,
# and an optional bias.
#
# - `__init__(d_in, d_out, qkv_bias=False)`: create `self.W_query`, `self.W_key` and
#   `self.W_value`, in that order, each `nn.Linear(d_in, d_out, bias=qkv_bias)`.
# - `forward(x)`: `(num_tokens, d_in)` → `(num_tokens, d_out)`.
#
# Book check: `torch.manual_seed(789)`, then `SelfAttention_v2(3, 2)(BOOK_INPUTS)`,
# row 0:
#
# ```
# tensor([-0.0739,  0.0713])
# ```


# %%
class SelfAttention_v2(nn.Module):
    """Self-attention whose query, key and value projections are nn.Linear layers.

    Section 3.4.2. Maps inputs of shape (num_tokens, d_in) to context vectors of shape
    (num_tokens, d_out).
    """

    def __init__(self, d_in, d_out, qkv_bias=False):
        """Create W_query, W_key and W_value (in that order) as nn.Linear(d_in, d_out)."""
        # BEGIN SOLUTION
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        # END SOLUTION

    def forward(self, x):
        """Map x of shape (num_tokens, d_in) to context vectors (num_tokens, d_out)."""
        # BEGIN SOLUTION
        num_tokens, d_in = x.shape
        keys = self.W_key(x)  # (num_tokens, d_out)
        queries = self.W_query(x)  # (num_tokens, d_out)
        values = self.W_value(x)  # (num_tokens, d_out)

        attn_scores = queries @ keys.T  # (num_tokens, num_tokens)
        attn_weights = torch.softmax(
            attn_scores / keys.shape[-1] ** 0.5, dim=-1
        )  # (num_tokens, num_tokens)

        context_vec = attn_weights @ values  # (num_tokens, d_out)
        return context_vec
        # END SOLUTION


# %% [markdown]
# ## Step 11: exercise 3.1, comparing `SelfAttention_v1` and `SelfAttention_v2`
#
# `nn.Linear(d_in, d_out)` stores its weight as a `(d_out, d_in)` matrix and computes
# `x @ weight.T`. So a `SelfAttention_v1` computes exactly what a `SelfAttention_v2`
# (without bias) computes if each of its matrices is the transposed weight of the
# matching linear layer.
#
# Copy the three weights of `sa_v2` into `sa_v1` **in place**: inside
# `torch.no_grad()`, use `sa_v1.W_query.copy_(...)` and so on, so that `sa_v1`'s
# parameters stay `nn.Parameter`s. Return nothing.
#
# Book check: `torch.manual_seed(123)`, `sa_v2 = SelfAttention_v2(3, 2)`; after the
# transfer into any `SelfAttention_v1(3, 2)`, both give, in row 0:
#
# ```
# tensor([-0.5337, -0.1051])
# ```


# %%
def transfer_weights_v2_to_v1(sa_v2, sa_v1):
    """Copy the weights of a SelfAttention_v2 (no bias) into a SelfAttention_v1.

    Exercise 3.1 (section 3.4.2). Afterwards ``sa_v1(x)`` equals ``sa_v2(x)``. The copy
    is done in place, so sa_v1's parameters stay nn.Parameter objects.

    Args:
        sa_v2: a SelfAttention_v2(d_in, d_out) with qkv_bias=False; its linear
            weights have shape (d_out, d_in).
        sa_v1: a SelfAttention_v1(d_in, d_out); its matrices have shape (d_in, d_out).

    Returns:
        None.
    """
    # BEGIN SOLUTION
    with torch.no_grad():
        sa_v1.W_query.copy_(sa_v2.W_query.weight.T)  # (d_in, d_out)
        sa_v1.W_key.copy_(sa_v2.W_key.weight.T)  # (d_in, d_out)
        sa_v1.W_value.copy_(sa_v2.W_value.weight.T)  # (d_in, d_out)
    # END SOLUTION


# %% [markdown]
# ## Step 12: masking attention weights after the softmax (section 3.5.1)
#
# In *causal* attention a token may only attend to itself and to earlier tokens.
# A first way to do that: take the attention weights, zero everything above the
# diagonal (`torch.tril`), and divide each row by its new sum so it sums to 1 again.
#
# - `attn_weights`: `(num_tokens, num_tokens)`
# - return: `(num_tokens, num_tokens)`, lower triangular, rows summing to 1
#
# Book check: with the weights of `SelfAttention_v2(3, 2)` after
# `torch.manual_seed(789)` (`scaled_attention_weights(sa_v2.W_query(BOOK_INPUTS),
# sa_v2.W_key(BOOK_INPUTS))`), rows 1 and 2 are:
#
# ```
# tensor([0.5517, 0.4483, 0.0000, 0.0000, 0.0000, 0.0000])
# tensor([0.3800, 0.3097, 0.3103, 0.0000, 0.0000, 0.0000])
# ```


# %%
def renormalized_causal_weights(attn_weights):
    """Zero the weights above the diagonal and renormalise each row to sum to 1.

    Section 3.5.1 (simple causal mask applied after the softmax).

    Args:
        attn_weights: tensor of shape (num_tokens, num_tokens), rows summing to 1.

    Returns:
        Lower-triangular tensor of shape (num_tokens, num_tokens), rows summing to 1.
    """
    # BEGIN SOLUTION
    masked_simple = torch.tril(attn_weights)  # (num_tokens, num_tokens)
    row_sums = masked_simple.sum(dim=-1, keepdim=True)  # (num_tokens, 1)
    masked_simple_norm = masked_simple / row_sums  # (num_tokens, num_tokens)
    return masked_simple_norm
    # END SOLUTION


# %% [markdown]
# ## Step 13: masking with -inf before the softmax (section 3.5.1)
#
# A more efficient way to get the same result: fill the scores of future positions
# (above the diagonal) with `-inf` **before** the scaled softmax. Since `exp(-inf) = 0`,
# those positions get weight 0 and the softmax normalises the rest for free.
#
# - `queries`: `(num_tokens, d_k)`, `keys`: `(num_tokens, d_k)`
# - return: `(num_tokens, num_tokens)`, equal to
#   `renormalized_causal_weights(scaled_attention_weights(queries, keys))`
#
# Hint: `torch.triu(..., diagonal=1)` gives the positions above the diagonal, and
# `Tensor.masked_fill(mask, -torch.inf)` fills them.
#
# Book check: with the queries and keys of the `SelfAttention_v2` of step 12, you get
# the same rows as in step 12.


# %%
def causal_attention_weights(queries, keys):
    """Return causal scaled attention weights, masking future scores with -inf.

    Section 3.5.1. Scores above the diagonal (future tokens) are set to -inf before
    softmax(scores / sqrt(d_k)), so they receive weight 0.

    Args:
        queries: tensor of shape (num_tokens, d_k).
        keys: tensor of shape (num_tokens, d_k).

    Returns:
        Lower-triangular tensor of shape (num_tokens, num_tokens), rows summing to 1.
    """
    # BEGIN SOLUTION
    d_k = keys.shape[-1]
    attn_scores = queries @ keys.T  # (num_tokens, num_tokens)
    future = torch.ones_like(attn_scores, dtype=torch.bool)  # (num_tokens, num_tokens)
    mask = future.triu(diagonal=1)  # (num_tokens, num_tokens), True above the diagonal
    masked = attn_scores.masked_fill(mask, -torch.inf)  # (num_tokens, num_tokens)
    attn_weights = torch.softmax(masked / d_k**0.5, dim=-1)  # (num_tokens, num_tokens)
    return attn_weights
    # END SOLUTION


# %% [markdown]
# ## Step 14: dropout on the attention weights (section 3.5.2)
#
# During training, dropout randomly zeroes attention weights so the model does not
# rely too much on any single position. Each element is zeroed with probability `p`,
# and the survivors are scaled by `1 / (1 - p)` so the expected value is unchanged.
# Apply it in training mode (e.g. `nn.Dropout(p)`, which is in training mode when
# created, or `torch.nn.functional.dropout(x, p, training=True)`). With `p = 0` the
# input comes back unchanged.
#
# - `attn_weights`: any shape; `p`: float in `[0, 1)`
# - return: same shape
#
# Check: with `p = 0.5`, every element of `attention_dropout(torch.ones(6, 6), 0.5)`
# is either `0.0` or `2.0`. (The exact pattern depends on the random seed, and can
# differ between machines, so the book's printed pattern may not match yours.)


# %%
def attention_dropout(attn_weights, p):
    """Apply training-mode dropout with probability p to attention weights.

    Section 3.5.2. Each element is zeroed with probability p; the others are scaled
    by 1 / (1 - p). With p = 0 the input is returned unchanged.

    Args:
        attn_weights: tensor of any shape, e.g. (num_tokens, num_tokens).
        p: dropout probability, a float in [0, 1).

    Returns:
        Tensor of the same shape as attn_weights.
    """
    # BEGIN SOLUTION
    dropout = nn.Dropout(p)  # modules start in training mode
    return dropout(attn_weights)  # same shape as attn_weights
    # END SOLUTION


# %% [markdown]
# ## Step 15: a compact causal attention class (section 3.5.3)
#
# Combine `SelfAttention_v2`, the `-inf` causal mask and dropout, and accept a
# **batch** of inputs.
#
# - `__init__(d_in, d_out, context_length, dropout, qkv_bias=False)`:
#   - `self.W_query`, `self.W_key`, `self.W_value`: `nn.Linear(d_in, d_out,
#     bias=qkv_bias)`, created first and in that order;
#   - `self.dropout = nn.Dropout(dropout)`;
#   - the causal mask as a buffer named `mask`:
#     `self.register_buffer("mask", torch.triu(torch.ones(context_length,
#     context_length), diagonal=1))`. A buffer moves to the GPU with the module
#     but is not trained.
# - `forward(x)`: `x` is `(b, num_tokens, d_in)` with `num_tokens <= context_length`;
#   return `(b, num_tokens, d_out)`. Use `keys.transpose(1, 2)` to transpose each
#   batch item, and the mask sliced to `[:num_tokens, :num_tokens]`.
#
# Book check: `torch.manual_seed(123)`, `batch = torch.stack((BOOK_INPUTS, BOOK_INPUTS))`
# (shape `(2, 6, 3)`), `CausalAttention(3, 2, 6, 0.0)(batch)`, row 0 of batch item 0:
#
# ```
# tensor([-0.4519,  0.2216])
# ```


# %%
class CausalAttention(nn.Module):
    """Single-head causal self-attention with dropout, for batched inputs.

    Section 3.5.3. Maps inputs of shape (b, num_tokens, d_in), with
    num_tokens <= context_length, to context vectors of shape (b, num_tokens, d_out).
    """

    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        """Create W_query, W_key, W_value, dropout and the causal `mask` buffer."""
        # BEGIN SOLUTION
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer(
            "mask", torch.triu(torch.ones(context_length, context_length), diagonal=1)
        )  # (context_length, context_length)
        # END SOLUTION

    def forward(self, x):
        """Map x of shape (b, num_tokens, d_in) to context vectors (b, num_tokens, d_out)."""
        # BEGIN SOLUTION
        b, num_tokens, d_in = x.shape
        keys = self.W_key(x)  # (b, num_tokens, d_out)
        queries = self.W_query(x)  # (b, num_tokens, d_out)
        values = self.W_value(x)  # (b, num_tokens, d_out)

        attn_scores = queries @ keys.transpose(1, 2)  # (b, num_tokens, num_tokens)
        attn_scores.masked_fill_(
            self.mask.bool()[:num_tokens, :num_tokens], -torch.inf
        )  # (b, num_tokens, num_tokens)
        attn_weights = torch.softmax(
            attn_scores / keys.shape[-1] ** 0.5, dim=-1
        )  # (b, num_tokens, num_tokens)
        attn_weights = self.dropout(attn_weights)  # (b, num_tokens, num_tokens)

        context_vec = attn_weights @ values  # (b, num_tokens, d_out)
        return context_vec
        # END SOLUTION


# %% [markdown]
# ## Step 16: stacking causal attention heads (section 3.6.1)
#
# Multi-head attention runs several attention "heads" in parallel, each with its own
# weights, and concatenates their outputs. The simplest version wraps several
# `CausalAttention` modules.
#
# - `__init__(d_in, d_out, context_length, dropout, num_heads, qkv_bias=False)`:
#   `self.heads` is an `nn.ModuleList` of `num_heads` `CausalAttention(d_in, d_out,
#   context_length, dropout, qkv_bias)` modules.
# - `forward(x)`: `(b, num_tokens, d_in)` → `(b, num_tokens, num_heads * d_out)`,
#   the heads' outputs concatenated along the last dimension.
#
# Book check: `torch.manual_seed(123)`, the batch of step 15,
# `MultiHeadAttentionWrapper(3, 2, 6, 0.0, num_heads=2)(batch)`, row 0 of item 0:
#
# ```
# tensor([-0.4519,  0.2216,  0.4772,  0.1063])
# ```


# %%
class MultiHeadAttentionWrapper(nn.Module):
    """Multi-head attention as a list of independent CausalAttention heads.

    Section 3.6.1. Maps inputs of shape (b, num_tokens, d_in) to
    (b, num_tokens, num_heads * d_out), concatenating the heads' outputs.
    """

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        """Create `heads`, an nn.ModuleList of num_heads CausalAttention modules."""
        # BEGIN SOLUTION
        super().__init__()
        self.heads = nn.ModuleList(
            [
                CausalAttention(d_in, d_out, context_length, dropout, qkv_bias)
                for _ in range(num_heads)
            ]
        )
        # END SOLUTION

    def forward(self, x):
        """Map x of shape (b, num_tokens, d_in) to (b, num_tokens, num_heads * d_out)."""
        # BEGIN SOLUTION
        b, num_tokens, d_in = x.shape
        head_outputs = [head(x) for head in self.heads]  # num_heads x (b, num_tokens, d_out)
        return torch.cat(head_outputs, dim=-1)  # (b, num_tokens, num_heads * d_out)
        # END SOLUTION


# %% [markdown]
# ## Step 17: exercise 3.2, two-dimensional embedding vectors
#
# Change the arguments of `MultiHeadAttentionWrapper` (not the class) so that, with
# `num_heads=2`, its context vectors have 2 dimensions instead of 4. Each head's
# output size times the number of heads gives the output size.
#
# Return a `MultiHeadAttentionWrapper` for inputs of size `d_in` and sequences of up
# to `context_length` tokens, with `num_heads=2` and `dropout=0.0`, whose output for
# a `(b, num_tokens, d_in)` batch has shape `(b, num_tokens, 2)`.


# %%
def wrapper_with_2d_output(d_in, context_length):
    """Return a 2-head MultiHeadAttentionWrapper whose outputs have 2 dimensions.

    Exercise 3.2 (section 3.6.1). Uses num_heads=2 and dropout 0.0.

    Args:
        d_in: size of each input embedding.
        context_length: maximum number of tokens per sequence.

    Returns:
        A MultiHeadAttentionWrapper mapping (b, num_tokens, d_in) to (b, num_tokens, 2).
    """
    # BEGIN SOLUTION
    return MultiHeadAttentionWrapper(d_in, 1, context_length, 0.0, num_heads=2)
    # END SOLUTION


# %% [markdown]
# ## Step 18: multi-head attention with weight splits (section 3.6.2)
#
# Instead of separate modules per head, use one set of `d_in → d_out` projections
# and split their outputs into `num_heads` heads of `head_dim = d_out // num_heads`
# dimensions each. All heads are then computed with batched matrix multiplications.
#
# - `__init__(d_in, d_out, context_length, dropout, num_heads, qkv_bias=False)`:
#   - start with `assert d_out % num_heads == 0, "d_out must be divisible by num_heads"`;
#   - store `self.d_out`, `self.num_heads`, `self.head_dim`;
#   - `self.W_query`, `self.W_key`, `self.W_value`: `nn.Linear(d_in, d_out,
#     bias=qkv_bias)`, in that order; then `self.out_proj = nn.Linear(d_out, d_out)`,
#     `self.dropout = nn.Dropout(dropout)` and the causal `mask` buffer as in step 15.
# - `forward(x)`: `(b, num_tokens, d_in)` → `(b, num_tokens, d_out)`:
#   1. project to queries, keys, values: `(b, num_tokens, d_out)`;
#   2. split the last dimension with `.view(b, num_tokens, num_heads, head_dim)`;
#   3. `.transpose(1, 2)` → `(b, num_heads, num_tokens, head_dim)`;
#   4. scores `queries @ keys.transpose(2, 3)` → `(b, num_heads, num_tokens, num_tokens)`,
#      masked with `-inf`, scaled softmax (`head_dim ** 0.5`), dropout;
#   5. `(attn_weights @ values).transpose(1, 2)` → `(b, num_tokens, num_heads, head_dim)`;
#   6. `.contiguous().view(b, num_tokens, d_out)` to combine the heads, then `out_proj`.
#
# Book check: `torch.manual_seed(123)`, the batch of step 15,
# `MultiHeadAttention(3, 2, 6, 0.0, num_heads=2)(batch)`, row 0 of item 0:
#
# ```
# tensor([0.3190, 0.4858])
# ```


# %%
class MultiHeadAttention(nn.Module):
    """Efficient multi-head causal self-attention that splits one projection into heads.

    Section 3.6.2. Maps inputs of shape (b, num_tokens, d_in) to (b, num_tokens, d_out);
    each of the num_heads heads works on head_dim = d_out // num_heads dimensions.
    """

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        """Create the projections, out_proj, dropout and the causal `mask` buffer."""
        # BEGIN SOLUTION
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"

        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads  # each head's share of d_out

        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)  # combines the heads' outputs
        self.dropout = nn.Dropout(dropout)
        self.register_buffer(
            "mask", torch.triu(torch.ones(context_length, context_length), diagonal=1)
        )  # (context_length, context_length)
        # END SOLUTION

    def forward(self, x):
        """Map x of shape (b, num_tokens, d_in) to context vectors (b, num_tokens, d_out)."""
        # BEGIN SOLUTION
        b, num_tokens, d_in = x.shape

        keys = self.W_key(x)  # (b, num_tokens, d_out)
        queries = self.W_query(x)  # (b, num_tokens, d_out)
        values = self.W_value(x)  # (b, num_tokens, d_out)

        # Split the last dimension into heads
        keys = keys.view(
            b, num_tokens, self.num_heads, self.head_dim
        )  # (b, num_tokens, num_heads, head_dim)
        queries = queries.view(
            b, num_tokens, self.num_heads, self.head_dim
        )  # (b, num_tokens, num_heads, head_dim)
        values = values.view(
            b, num_tokens, self.num_heads, self.head_dim
        )  # (b, num_tokens, num_heads, head_dim)

        # Put the heads first so each head attends independently
        keys = keys.transpose(1, 2)  # (b, num_heads, num_tokens, head_dim)
        queries = queries.transpose(1, 2)  # (b, num_heads, num_tokens, head_dim)
        values = values.transpose(1, 2)  # (b, num_heads, num_tokens, head_dim)

        attn_scores = queries @ keys.transpose(2, 3)  # (b, num_heads, num_tokens, num_tokens)
        mask_bool = self.mask.bool()[:num_tokens, :num_tokens]  # (num_tokens, num_tokens)
        attn_scores.masked_fill_(mask_bool, -torch.inf)  # (b, num_heads, num_tokens, num_tokens)

        attn_weights = torch.softmax(
            attn_scores / keys.shape[-1] ** 0.5, dim=-1
        )  # (b, num_heads, num_tokens, num_tokens)
        attn_weights = self.dropout(attn_weights)  # (b, num_heads, num_tokens, num_tokens)

        context_vec = attn_weights @ values  # (b, num_heads, num_tokens, head_dim)
        context_vec = context_vec.transpose(1, 2)  # (b, num_tokens, num_heads, head_dim)

        # Combine the heads: num_heads * head_dim = d_out
        context_vec = context_vec.contiguous().view(
            b, num_tokens, self.d_out
        )  # (b, num_tokens, d_out)
        context_vec = self.out_proj(context_vec)  # (b, num_tokens, d_out)
        return context_vec
        # END SOLUTION


# %% [markdown]
# ## Step 19: exercise 3.3, initialising a GPT-2 size attention module
#
# Create a `MultiHeadAttention` with the sizes of the smallest GPT-2 model:
# 768-dimensional inputs and outputs, a context of 1,024 tokens, 12 heads,
# `dropout=0.0` and no query/key/value bias.
#
# Check: it has `sum(p.numel() for p in mha.parameters())` = 2,360,064 parameters
# (three `768 × 768` projections without bias, plus `out_proj` with its bias).


# %%
def gpt2_small_attention():
    """Return a MultiHeadAttention sized like GPT-2 small.

    Exercise 3.3 (section 3.6.2): d_in = d_out = 768, context_length = 1024,
    num_heads = 12, dropout = 0.0, qkv_bias = False (2,360,064 parameters).

    Returns:
        A MultiHeadAttention mapping (b, num_tokens, 768) to (b, num_tokens, 768)
        for num_tokens <= 1024.
    """
    # BEGIN SOLUTION
    return MultiHeadAttention(
        d_in=768, d_out=768, context_length=1024, dropout=0.0, num_heads=12, qkv_bias=False
    )
    # END SOLUTION
