"""Known student mistakes, each written as an alternative implementation of the steps it affects.

The grader names a mistake when a student's outputs for a step match one of that mistake's
implementations of the step. Each implementation is the reference code of ``attention.py`` with
exactly one thing changed, and the line that changed carries a ``# MISTAKE: ...`` comment.

The small function steps are written out in full. The classes share most of their code, so they are
built by small factories (``_self_attention_v1_class``, ``_causal_attention_class``, ...) whose
keyword arguments default to the reference's choices: each variant is one factory call that swaps in
one part, and says on that line what its mistake is. Every implementation keeps the reference step's
signature, parameter names, parameter creation order (so seeded initialisation matches) and buffers.

``MISTAKES`` maps each mistake id to its ``Mistake``: a title, an explanation and a hint for the
student, and ``implementations``, step id -> a tuple of one or more variants.
"""

import hashlib
import importlib.util
import pathlib
import sys
from dataclasses import dataclass

import torch
import torch.nn as nn

# -------------------------------------------------- the reference module

def _reference_name(path: pathlib.Path) -> str:
    """The module name the grader gives the reference at `path` (grader.cases.load_reference)."""
    return "_attention_grader_reference_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]


def _load_reference():
    """The reference solutions (attention.py beside this file), loaded once by path: the very module
    the grader loaded, if it did, so that both compare the same classes."""
    path = pathlib.Path(__file__).resolve().with_name("attention.py")
    name = _reference_name(path)
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


ref = _load_reference()


@dataclass(frozen=True)
class Mistake:
    id: str
    title: str  # a short name, e.g. "Softmax over the wrong dimension"
    explanation: str  # one or two sentences for the student: what this mistake does to the result
    hint: str  # what to change, concretely
    implementations: dict[str, tuple]  # step id -> variants with exactly the reference step's signature


# -------------------------------------------------- shared parts
# How the scores are scaled before the softmax: the reference divides by sqrt(d_k).


def _sqrt_d_k(d_k):
    return d_k**0.5  # the reference


def _no_scaling(d_k):
    return 1  # MISTAKE: the scores are not scaled at all


def _d_k(d_k):
    return d_k  # MISTAKE: divides by d_k instead of sqrt(d_k)


# How the classes build their (context_length, context_length) causal mask: 1 marks a masked score.


def _future_mask(context_length):
    return torch.triu(torch.ones(context_length, context_length), diagonal=1)  # the reference


def _diagonal_too_mask(context_length):
    return torch.triu(torch.ones(context_length, context_length), diagonal=0)  # MISTAKE: masks the diagonal


def _past_mask(context_length):
    return torch.tril(torch.ones(context_length, context_length), diagonal=-1)  # MISTAKE: masks the past


def _tril_instead_of_triu_mask(context_length):
    # MISTAKE: tril instead of triu: masks the past, the diagonal and the next token
    return torch.tril(torch.ones(context_length, context_length), diagonal=1)


def _store_mask(module, mask, as_buffer):
    """Keep the mask on the module: a buffer in the reference."""
    if as_buffer:
        module.register_buffer("mask", mask)  # (context_length, context_length)
    else:
        module.mask = mask  # MISTAKE: a plain attribute: not in state_dict(), not moved by .to(device)


def _apply_mask(module, attn_scores, num_tokens, sliced, fill):
    """Fill the masked scores in place, like the reference's masked_fill_."""
    mask_bool = module.mask.bool()  # (context_length, context_length)
    if sliced:
        mask_bool = mask_bool[:num_tokens, :num_tokens]  # (num_tokens, num_tokens), the reference
    # else MISTAKE: the whole (context_length, context_length) mask does not fit a shorter input
    attn_scores.masked_fill_(mask_bool, fill)


def _named(cls, name):
    cls.__name__ = cls.__qualname__ = name
    return cls


def _composable(factory):
    """Let two variants made by the same class factory combine into one that makes both mistakes
    (``first.combine(second)``), so the grader can name two mistakes made together."""

    def build(name, **parts):
        cls = factory(name, **parts)

        def combine(other):
            if getattr(other, "factory", None) is not build or parts.keys() & other.parts.keys():
                return None  # another factory, or the same part changed twice
            return build(name, **parts, **other.parts)

        cls.factory, cls.parts, cls.combine = build, dict(parts), staticmethod(combine)
        return cls

    build.__doc__ = factory.__doc__
    return build


# -------------------------------------------------- step 2: softmax_naive


def _softmax_naive_without_exp(x):
    return x / x.sum(dim=0)  # MISTAKE: no torch.exp: the scores themselves are divided by their sum


# -------------------------------------------------- step 4: attention_scores


def _attention_scores_transposed_product(inputs):
    attn_scores = inputs.T @ inputs  # MISTAKE: (d, d) instead of inputs @ inputs.T, (num_tokens, num_tokens)
    return attn_scores


# -------------------------------------------------- step 5: attention_weights


def _attention_weights_softmax_dim0(attn_scores):
    attn_weights = torch.softmax(attn_scores, dim=0)  # MISTAKE: dim=0 instead of dim=-1
    return attn_weights


def _attention_weights_softmax_dim_minus2(attn_scores):
    attn_weights = torch.softmax(attn_scores, dim=-2)  # MISTAKE: normalises the columns, not the rows
    return attn_weights


def _attention_weights_without_exp(attn_scores):
    # MISTAKE: no exponential: the scores are divided by their row sums
    attn_weights = attn_scores / attn_scores.sum(dim=-1, keepdim=True)  # (..., num_tokens)
    return attn_weights


# -------------------------------------------------- step 8: scaled_attention_weights


def _scaled_attention_weights_softmax_dim0(queries, keys):
    d_k = keys.shape[-1]
    attn_scores = queries @ keys.transpose(-2, -1)  # (num_queries, num_tokens)
    attn_weights = torch.softmax(attn_scores / d_k**0.5, dim=0)  # MISTAKE: dim=0 instead of dim=-1
    return attn_weights


def _scaled_attention_weights_unscaled(queries, keys):
    attn_scores = queries @ keys.transpose(-2, -1)  # (num_queries, num_tokens)
    attn_weights = torch.softmax(attn_scores, dim=-1)  # MISTAKE: no division by sqrt(d_k)
    return attn_weights


def _scaled_attention_weights_by_d_k(queries, keys):
    d_k = keys.shape[-1]
    attn_scores = queries @ keys.transpose(-2, -1)  # (num_queries, num_tokens)
    attn_weights = torch.softmax(attn_scores / d_k, dim=-1)  # MISTAKE: d_k instead of d_k**0.5
    return attn_weights


# -------------------------------------------------- steps 9 and 10: self-attention


@_composable
def _self_attention_v1_class(name, *, scale=_sqrt_d_k, softmax_dim=-1):
    """A SelfAttention_v1 like the reference's, with the scaling and the softmax dim swappable."""

    class SelfAttention_v1(nn.Module):
        def __init__(self, d_in, d_out):
            super().__init__()
            self.W_query = nn.Parameter(torch.rand(d_in, d_out))  # (d_in, d_out)
            self.W_key = nn.Parameter(torch.rand(d_in, d_out))  # (d_in, d_out)
            self.W_value = nn.Parameter(torch.rand(d_in, d_out))  # (d_in, d_out)

        def forward(self, x):
            keys = x @ self.W_key  # (num_tokens, d_out)
            queries = x @ self.W_query  # (num_tokens, d_out)
            values = x @ self.W_value  # (num_tokens, d_out)
            attn_scores = queries @ keys.T  # (num_tokens, num_tokens)
            attn_weights = torch.softmax(
                attn_scores / scale(keys.shape[-1]), dim=softmax_dim
            )  # (num_tokens, num_tokens)
            return attn_weights @ values  # (num_tokens, d_out)

    return _named(SelfAttention_v1, name)


@_composable
def _self_attention_v2_class(name, *, scale=_sqrt_d_k, softmax_dim=-1):
    """A SelfAttention_v2 like the reference's, with the scaling and the softmax dim swappable."""

    class SelfAttention_v2(nn.Module):
        def __init__(self, d_in, d_out, qkv_bias=False):
            super().__init__()
            self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
            self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
            self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

        def forward(self, x):
            keys = self.W_key(x)  # (num_tokens, d_out)
            queries = self.W_query(x)  # (num_tokens, d_out)
            values = self.W_value(x)  # (num_tokens, d_out)
            attn_scores = queries @ keys.T  # (num_tokens, num_tokens)
            attn_weights = torch.softmax(
                attn_scores / scale(keys.shape[-1]), dim=softmax_dim
            )  # (num_tokens, num_tokens)
            return attn_weights @ values  # (num_tokens, d_out)

    return _named(SelfAttention_v2, name)


# -------------------------------------------------- step 11: transfer_weights_v2_to_v1


def _transfer_new_untransposed_parameters(sa_v2, sa_v1):
    # MISTAKE (each line): no .T, and new parameters replace sa_v1's: they get shape (d_out, d_in)
    sa_v1.W_query = nn.Parameter(sa_v2.W_query.weight.clone())  # (d_out, d_in)
    sa_v1.W_key = nn.Parameter(sa_v2.W_key.weight.clone())  # (d_out, d_in)
    sa_v1.W_value = nn.Parameter(sa_v2.W_value.weight.clone())  # (d_out, d_in)


def _transfer_copy_untransposed(sa_v2, sa_v1):
    # MISTAKE (each line): no .T: a RuntimeError unless d_in == d_out, then a silently wrong copy
    with torch.no_grad():
        sa_v1.W_query.copy_(sa_v2.W_query.weight)  # (d_out, d_in) into (d_in, d_out)
        sa_v1.W_key.copy_(sa_v2.W_key.weight)  # (d_out, d_in) into (d_in, d_out)
        sa_v1.W_value.copy_(sa_v2.W_value.weight)  # (d_out, d_in) into (d_in, d_out)


# -------------------------------------------------- step 12: renormalized_causal_weights


def _renormalized_masking_diagonal(attn_weights):
    masked_simple = torch.tril(attn_weights, diagonal=-1)  # MISTAKE: diagonal=-1 also zeroes the diagonal
    row_sums = masked_simple.sum(dim=-1, keepdim=True)  # (num_tokens, 1), 0 for the first row
    return masked_simple / row_sums  # (num_tokens, num_tokens)


def _renormalized_keeping_the_future(attn_weights):
    masked_simple = torch.triu(attn_weights)  # MISTAKE: triu keeps the future and zeroes the past
    row_sums = masked_simple.sum(dim=-1, keepdim=True)  # (num_tokens, 1)
    return masked_simple / row_sums  # (num_tokens, num_tokens)


def _renormalized_not_renormalized(attn_weights):
    masked_simple = torch.tril(attn_weights)  # (num_tokens, num_tokens)
    return masked_simple  # MISTAKE: the rows are not divided by their new sums


def _renormalized_without_mask(attn_weights):
    return attn_weights  # MISTAKE: nothing is masked (the rows already sum to 1)


# -------------------------------------------------- step 13: causal_attention_weights


def _causal_weights(queries, keys, *, mask, fill=-torch.inf, scale=_sqrt_d_k, softmax_dim=-1):
    """The end of the reference's causal_attention_weights, for the variants below."""
    attn_scores = queries @ keys.T  # (num_tokens, num_tokens)
    if mask is not None:
        attn_scores = attn_scores.masked_fill(mask, fill)  # (num_tokens, num_tokens)
    return torch.softmax(attn_scores / scale(keys.shape[-1]), dim=softmax_dim)  # (num_tokens, num_tokens)


def _future(queries, keys, diagonal=1):
    """True above the diagonal, like the reference's mask (num_tokens, num_tokens)."""
    return _all_true(queries, keys).triu(diagonal=diagonal)


def _all_true(queries, keys):
    return torch.ones(queries.shape[0], keys.shape[0], dtype=torch.bool)  # (num_tokens, num_tokens)


def _causal_attention_weights_softmax_dim0(queries, keys):
    return _causal_weights(queries, keys, mask=_future(queries, keys), softmax_dim=0)  # MISTAKE: dim=0


def _causal_attention_weights_unscaled(queries, keys):
    # MISTAKE: no division by sqrt(d_k)
    return _causal_weights(queries, keys, mask=_future(queries, keys), scale=_no_scaling)


def _causal_attention_weights_by_d_k(queries, keys):
    # MISTAKE: divides by d_k instead of sqrt(d_k)
    return _causal_weights(queries, keys, mask=_future(queries, keys), scale=_d_k)


def _causal_attention_weights_masking_diagonal(queries, keys):
    mask = _future(queries, keys, diagonal=0)  # MISTAKE: diagonal=0 masks the diagonal too
    return _causal_weights(queries, keys, mask=mask)


def _causal_attention_weights_masking_past(queries, keys):
    mask = _all_true(queries, keys).tril(diagonal=-1)  # MISTAKE: tril masks the past, not the future
    return _causal_weights(queries, keys, mask=mask)


def _causal_attention_weights_tril_instead_of_triu(queries, keys):
    # MISTAKE: tril(diagonal=1) instead of triu(diagonal=1): masks the past, the diagonal and the next token
    mask = _all_true(queries, keys).tril(diagonal=1)
    return _causal_weights(queries, keys, mask=mask)


def _causal_attention_weights_zero_fill(queries, keys):
    # MISTAKE: fills the future scores with 0 instead of -inf, so they still get weight
    return _causal_weights(queries, keys, mask=_future(queries, keys), fill=0.0)


def _causal_attention_weights_without_mask(queries, keys):
    return _causal_weights(queries, keys, mask=None)  # MISTAKE: no causal mask


# -------------------------------------------------- step 14: attention_dropout


def _attention_dropout_without_rescaling(attn_weights, p):
    keep = torch.rand_like(attn_weights) >= p  # True with probability 1 - p
    return attn_weights * keep  # MISTAKE: the survivors are not scaled by 1 / (1 - p)


def _attention_dropout_scaling_undone(attn_weights, p):
    dropout = nn.Dropout(p)  # modules start in training mode
    return dropout(attn_weights) * (1 - p)  # MISTAKE: "* (1 - p)" undoes nn.Dropout's 1 / (1 - p)


def _attention_dropout_keep_probability(attn_weights, p):
    dropout = nn.Dropout(1 - p)  # MISTAKE: p is the probability of zeroing, not of keeping
    return dropout(attn_weights)  # same shape as attn_weights


# -------------------------------------------------- step 15: CausalAttention


@_composable
def _causal_attention_class(
    name,
    *,
    make_mask=_future_mask,
    as_buffer=True,
    masked=True,
    sliced=True,
    fill=-torch.inf,
    scale=_sqrt_d_k,
    softmax_dim=-1,
):
    """A CausalAttention like the reference's; each keyword swaps in one part (defaults: the reference)."""

    class CausalAttention(nn.Module):
        def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
            super().__init__()
            self.d_out = d_out
            self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
            self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
            self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
            self.dropout = nn.Dropout(dropout)
            _store_mask(self, make_mask(context_length), as_buffer)  # (context_length, context_length)

        def forward(self, x):
            b, num_tokens, d_in = x.shape
            keys = self.W_key(x)  # (b, num_tokens, d_out)
            queries = self.W_query(x)  # (b, num_tokens, d_out)
            values = self.W_value(x)  # (b, num_tokens, d_out)

            attn_scores = queries @ keys.transpose(1, 2)  # (b, num_tokens, num_tokens)
            if masked:
                _apply_mask(self, attn_scores, num_tokens, sliced, fill)  # (b, num_tokens, num_tokens)
            attn_weights = torch.softmax(
                attn_scores / scale(keys.shape[-1]), dim=softmax_dim
            )  # (b, num_tokens, num_tokens)
            attn_weights = self.dropout(attn_weights)  # (b, num_tokens, num_tokens)
            return attn_weights @ values  # (b, num_tokens, d_out)

    return _named(CausalAttention, name)


# -------------------------------------------------- step 16: MultiHeadAttentionWrapper


def _wrapper_class(name, *, cat_dim=-1):
    """A MultiHeadAttentionWrapper of reference CausalAttention heads, concatenating on cat_dim."""

    class MultiHeadAttentionWrapper(nn.Module):
        def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
            super().__init__()
            self.heads = nn.ModuleList(
                [
                    ref.CausalAttention(d_in, d_out, context_length, dropout, qkv_bias)
                    for _ in range(num_heads)
                ]
            )

        def forward(self, x):
            head_outputs = [head(x) for head in self.heads]  # num_heads x (b, num_tokens, d_out)
            return torch.cat(head_outputs, dim=cat_dim)

    return _named(MultiHeadAttentionWrapper, name)


# -------------------------------------------------- step 18: MultiHeadAttention


@_composable
def _multi_head_attention_class(
    name,
    *,
    make_mask=_future_mask,
    as_buffer=True,
    masked=True,
    sliced=True,
    fill=-torch.inf,
    scale=_sqrt_d_k,
    softmax_dim=-1,
):
    """A MultiHeadAttention like the reference's; each keyword swaps in one part (defaults: the reference)."""

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
            _store_mask(self, make_mask(context_length), as_buffer)  # (context_length, context_length)

        def split_heads(self, t):
            b, num_tokens, d_out = t.shape
            t = t.view(b, num_tokens, self.num_heads, self.head_dim)  # (b, num_tokens, num_heads, head_dim)
            return t.transpose(1, 2)  # (b, num_heads, num_tokens, head_dim)

        def forward(self, x):
            b, num_tokens, d_in = x.shape
            keys = self.split_heads(self.W_key(x))  # (b, num_heads, num_tokens, head_dim)
            queries = self.split_heads(self.W_query(x))  # (b, num_heads, num_tokens, head_dim)
            values = self.split_heads(self.W_value(x))  # (b, num_heads, num_tokens, head_dim)

            attn_scores = queries @ keys.transpose(2, 3)  # (b, num_heads, num_tokens, num_tokens)
            if masked:
                _apply_mask(self, attn_scores, num_tokens, sliced, fill)
            attn_weights = torch.softmax(
                attn_scores / scale(keys.shape[-1]), dim=softmax_dim
            )  # (b, num_heads, num_tokens, num_tokens)
            attn_weights = self.dropout(attn_weights)

            context_vec = (attn_weights @ values).transpose(1, 2)  # (b, num_tokens, num_heads, head_dim)
            context_vec = context_vec.contiguous().view(b, num_tokens, self.d_out)  # (b, num_tokens, d_out)
            return self.out_proj(context_vec)  # (b, num_tokens, d_out)

    return _named(MultiHeadAttention, name)


_MultiHeadAttention = _multi_head_attention_class("MultiHeadAttention")  # computes what the reference does


class _MultiHeadAttentionHeadsNotTransposed(_MultiHeadAttention):
    """Splits into heads with .view but keeps the tokens before the heads."""

    def forward(self, x):
        b, num_tokens, d_in = x.shape
        # MISTAKE: no .transpose(1, 2) after the .view, so the heads attend to each other, not the tokens
        keys = self.W_key(x).view(b, num_tokens, self.num_heads, self.head_dim)  # (b, T, num_heads, head_dim)
        queries = self.W_query(x).view(b, num_tokens, self.num_heads, self.head_dim)
        values = self.W_value(x).view(b, num_tokens, self.num_heads, self.head_dim)

        attn_scores = queries @ keys.transpose(2, 3)  # (b, num_tokens, num_heads, num_heads)
        # the (num_tokens, num_tokens) mask only fits when num_tokens == num_heads (or 1): else a RuntimeError
        attn_scores.masked_fill_(self.mask.bool()[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)  # (b, num_tokens, num_heads, num_heads)

        context_vec = attn_weights @ values  # (b, num_tokens, num_heads, head_dim)
        context_vec = context_vec.contiguous().view(b, num_tokens, self.d_out)  # (b, num_tokens, d_out)
        return self.out_proj(context_vec)  # (b, num_tokens, d_out)


class _MultiHeadAttentionMergedWithoutTranspose(_MultiHeadAttention):
    """Splits the heads correctly but merges them back without transposing first."""

    def forward(self, x):
        b, num_tokens, d_in = x.shape
        keys = self.split_heads(self.W_key(x))  # (b, num_heads, num_tokens, head_dim)
        queries = self.split_heads(self.W_query(x))  # (b, num_heads, num_tokens, head_dim)
        values = self.split_heads(self.W_value(x))  # (b, num_heads, num_tokens, head_dim)

        attn_scores = queries @ keys.transpose(2, 3)  # (b, num_heads, num_tokens, num_tokens)
        attn_scores.masked_fill_(self.mask.bool()[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)  # (b, num_heads, num_tokens, num_tokens)

        context_vec = attn_weights @ values  # (b, num_heads, num_tokens, head_dim)
        # MISTAKE: no .transpose(1, 2) before the .view, so rows mix values of different tokens and heads
        context_vec = context_vec.contiguous().view(b, num_tokens, self.d_out)  # (b, num_tokens, d_out)
        return self.out_proj(context_vec)  # (b, num_tokens, d_out)


class _MultiHeadAttentionWithoutOutProj(_MultiHeadAttention):
    """Creates out_proj but never applies it."""

    def forward(self, x):
        b, num_tokens, d_in = x.shape
        keys = self.split_heads(self.W_key(x))  # (b, num_heads, num_tokens, head_dim)
        queries = self.split_heads(self.W_query(x))  # (b, num_heads, num_tokens, head_dim)
        values = self.split_heads(self.W_value(x))  # (b, num_heads, num_tokens, head_dim)

        attn_scores = queries @ keys.transpose(2, 3)  # (b, num_heads, num_tokens, num_tokens)
        attn_scores.masked_fill_(self.mask.bool()[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)  # (b, num_heads, num_tokens, num_tokens)

        context_vec = (attn_weights @ values).transpose(1, 2)  # (b, num_tokens, num_heads, head_dim)
        context_vec = context_vec.contiguous().view(b, num_tokens, self.d_out)  # (b, num_tokens, d_out)
        return context_vec  # MISTAKE: self.out_proj(context_vec) is never applied


# -------------------------------------------------- step 19: gpt2_small_attention


def _gpt2_small_attention_with_qkv_bias():
    return ref.MultiHeadAttention(
        d_in=768, d_out=768, context_length=1024, dropout=0.0, num_heads=12,
        qkv_bias=True,  # MISTAKE: exercise 3.3's projections have no bias (qkv_bias=False)
    )


# -------------------------------------------------- the catalogue

# short names for the table below
_V1, _V2 = _self_attention_v1_class, _self_attention_v2_class
_CA, _MHA = _causal_attention_class, _multi_head_attention_class

_MISTAKES = [
    Mistake(
        "softmax_wrong_dim",
        "Softmax over the wrong dimension",
        "The softmax normalises along a dimension other than the last one, so each query's weights no "
        "longer sum to 1: it mixes different queries (or batch items, or heads) together.",
        "Pass dim=-1 to torch.softmax: the last dimension holds the keys of one query, whatever the "
        "number of leading (batch or head) dimensions.",
        {
            "attention_weights": (_attention_weights_softmax_dim0, _attention_weights_softmax_dim_minus2),
            "scaled_attention_weights": (_scaled_attention_weights_softmax_dim0,),
            "causal_attention_weights": (_causal_attention_weights_softmax_dim0,),
            "SelfAttention_v1": (_V1("SelfAttention_v1", softmax_dim=0),),  # MISTAKE: dim=0
            "SelfAttention_v2": (_V2("SelfAttention_v2", softmax_dim=0),),  # MISTAKE: dim=0
            "CausalAttention": (
                _CA("CausalAttention", softmax_dim=0),  # MISTAKE: softmax over the batch
                _CA("CausalAttention", softmax_dim=1),  # MISTAKE: softmax over the queries
            ),
            "MultiHeadAttention": (
                _MHA("MultiHeadAttention", softmax_dim=0),  # MISTAKE: softmax over the batch
                _MHA("MultiHeadAttention", softmax_dim=1),  # MISTAKE: softmax over the heads
                _MHA("MultiHeadAttention", softmax_dim=-2),  # MISTAKE: softmax over the queries
            ),
        },
    ),
    Mistake(
        "normalized_without_exp",
        "Normalising without the exponential",
        "The scores are divided by their sum without exponentiating them first, so the weights can be "
        "negative (or huge, when the sum is close to 0) and do not follow the softmax.",
        "Exponentiate first: exp_x = torch.exp(x), then exp_x / exp_x.sum(...) (or use torch.softmax "
        "where the step allows it).",
        {
            "softmax_naive": (_softmax_naive_without_exp,),
            "attention_weights": (_attention_weights_without_exp,),
        },
    ),
    Mistake(
        "scores_transposed_product",
        "Transposed the wrong operand",
        "inputs.T @ inputs multiplies the embedding dimensions with each other and gives a (d, d) "
        "matrix, not the (num_tokens, num_tokens) matrix of token-to-token scores.",
        "Write inputs @ inputs.T: entry [i, j] is then the dot product of token i with token j.",
        {"attention_scores": (_attention_scores_transposed_product,)},
    ),
    Mistake(
        "missing_scaling",
        "Scores not scaled by sqrt(d_k)",
        "Without the division by the square root of the key dimension the softmax is too peaked for "
        "large d_k, so your weights differ from the expected ones (except when d_k is 1).",
        "Divide the scores by keys.shape[-1] ** 0.5 before the softmax.",
        {
            "scaled_attention_weights": (_scaled_attention_weights_unscaled,),
            "causal_attention_weights": (_causal_attention_weights_unscaled,),
            "SelfAttention_v1": (_V1("SelfAttention_v1", scale=_no_scaling),),  # MISTAKE: not scaled
            "SelfAttention_v2": (_V2("SelfAttention_v2", scale=_no_scaling),),  # MISTAKE: not scaled
            "CausalAttention": (_CA("CausalAttention", scale=_no_scaling),),  # MISTAKE: not scaled
            "MultiHeadAttention": (_MHA("MultiHeadAttention", scale=_no_scaling),),  # MISTAKE: not scaled
        },
    ),
    Mistake(
        "scaled_by_dk",
        "Scaled by d_k instead of sqrt(d_k)",
        "Dividing the scores by d_k itself flattens the softmax more than intended, so the weights come "
        "out too uniform (the two agree only when d_k is 1).",
        "Divide by the square root: attn_scores / keys.shape[-1] ** 0.5.",
        {
            "scaled_attention_weights": (_scaled_attention_weights_by_d_k,),
            "causal_attention_weights": (_causal_attention_weights_by_d_k,),
            "SelfAttention_v1": (_V1("SelfAttention_v1", scale=_d_k),),  # MISTAKE: / d_k
            "SelfAttention_v2": (_V2("SelfAttention_v2", scale=_d_k),),  # MISTAKE: / d_k
            "CausalAttention": (_CA("CausalAttention", scale=_d_k),),  # MISTAKE: / d_k
            "MultiHeadAttention": (_MHA("MultiHeadAttention", scale=_d_k),),  # MISTAKE: / d_k
        },
    ),
    Mistake(
        "v1_weight_not_transposed",
        "Linear weights copied without transposing",
        "nn.Linear stores its weight as (d_out, d_in), while SelfAttention_v1 multiplies x @ W with W "
        "of shape (d_in, d_out): copied as they are, the weights have the wrong shape (or, when d_in "
        "equals d_out, silently compute something else).",
        "Copy the transposed weights in place: with torch.no_grad(): "
        "sa_v1.W_query.copy_(sa_v2.W_query.weight.T), and likewise for W_key and W_value.",
        {"transfer_weights_v2_to_v1": (_transfer_new_untransposed_parameters, _transfer_copy_untransposed)},
    ),
    Mistake(
        "mask_includes_diagonal",
        "The mask hides the diagonal too",
        "Masking the diagonal stops each token from attending to itself, and the first token then has "
        "nothing left to attend to: its row becomes NaN.",
        "Mask only the positions above the diagonal: torch.triu(..., diagonal=1) for the mask, or "
        "torch.tril(...) (diagonal=0) for the weights you keep.",
        {
            "renormalized_causal_weights": (_renormalized_masking_diagonal,),
            "causal_attention_weights": (_causal_attention_weights_masking_diagonal,),
            # MISTAKE (both): the mask buffer is built with triu(diagonal=0)
            "CausalAttention": (_CA("CausalAttention", make_mask=_diagonal_too_mask),),
            "MultiHeadAttention": (_MHA("MultiHeadAttention", make_mask=_diagonal_too_mask),),
        },
    ),
    Mistake(
        "mask_wrong_triangle",
        "The mask hides the past instead of the future",
        "The triangle is the wrong way round: each token attends to the tokens after it and ignores the "
        "ones before it, the opposite of causal attention.",
        "The future is above the diagonal: mask with torch.triu(..., diagonal=1), or keep the weights "
        "with torch.tril(...).",
        {
            "renormalized_causal_weights": (_renormalized_keeping_the_future,),
            "causal_attention_weights": (
                _causal_attention_weights_masking_past,
                _causal_attention_weights_tril_instead_of_triu,
            ),
            "CausalAttention": (
                _CA("CausalAttention", make_mask=_past_mask),  # MISTAKE: masks the past
                _CA("CausalAttention", make_mask=_tril_instead_of_triu_mask),  # MISTAKE: tril(diagonal=1)
            ),
            "MultiHeadAttention": (
                _MHA("MultiHeadAttention", make_mask=_past_mask),  # MISTAKE: masks the past
                _MHA("MultiHeadAttention", make_mask=_tril_instead_of_triu_mask),  # MISTAKE: tril(diagonal=1)
            ),
        },
    ),
    Mistake(
        "mask_zero_fill",
        "Masked scores filled with 0 instead of -inf",
        "A score of 0 still gets a positive weight after the softmax (exp(0) = 1), so the future tokens "
        "keep influencing the result.",
        "Fill the masked scores with -torch.inf: attn_scores.masked_fill(mask.bool(), -torch.inf); "
        "exp(-inf) = 0 gives them weight 0.",
        {
            "causal_attention_weights": (_causal_attention_weights_zero_fill,),
            "CausalAttention": (_CA("CausalAttention", fill=0.0),),
            "MultiHeadAttention": (_MHA("MultiHeadAttention", fill=0.0),),
        },
    ),
    Mistake(
        "missing_renormalization",
        "Masked rows not renormalised",
        "After zeroing the future weights, each row sums to less than 1, so the weights are no longer "
        "a proper average.",
        "Divide each row by its new sum: masked / masked.sum(dim=-1, keepdim=True).",
        {"renormalized_causal_weights": (_renormalized_not_renormalized,)},
    ),
    Mistake(
        "no_causal_mask",
        "No causal mask",
        "Without a mask every token attends to the tokens after it too, so the result is plain "
        "self-attention instead of causal attention.",
        "Mask the positions above the diagonal, torch.triu(torch.ones(T, T), diagonal=1), with -inf "
        "before the softmax (or zero them with torch.tril after it, then renormalise).",
        {
            "renormalized_causal_weights": (_renormalized_without_mask,),
            "causal_attention_weights": (_causal_attention_weights_without_mask,),
            "CausalAttention": (_CA("CausalAttention", masked=False),),  # MISTAKE: mask never applied
            "MultiHeadAttention": (_MHA("MultiHeadAttention", masked=False),),  # MISTAKE: mask never applied
        },
    ),
    Mistake(
        "mask_not_sliced",
        "Mask not cut to the input length",
        "The stored mask is context_length x context_length; used whole, it does not fit the scores of "
        "an input shorter than context_length, and masked_fill raises a RuntimeError.",
        "Slice the mask to the number of tokens: self.mask.bool()[:num_tokens, :num_tokens].",
        {
            "CausalAttention": (_CA("CausalAttention", sliced=False),),  # MISTAKE: the whole mask
            "MultiHeadAttention": (_MHA("MultiHeadAttention", sliced=False),),  # MISTAKE: the whole mask
        },
    ),
    Mistake(
        "mask_not_buffer",
        "Mask stored as a plain attribute",
        "Your outputs are right, but a mask stored as a plain attribute is not part of the module's "
        "buffers: it is missing from state_dict() and stays on the CPU when the module moves to a GPU.",
        "Register it: self.register_buffer('mask', torch.triu(torch.ones(context_length, "
        "context_length), diagonal=1)).",
        {
            "CausalAttention": (_CA("CausalAttention", as_buffer=False),),  # MISTAKE: self.mask = ...
            "MultiHeadAttention": (_MHA("MultiHeadAttention", as_buffer=False),),  # MISTAKE: self.mask = ...
        },
    ),
    Mistake(
        "dropout_no_rescale",
        "Dropout without rescaling",
        "Elements are zeroed with probability p, but the survivors keep their value instead of being "
        "scaled by 1 / (1 - p), so the expected value of the weights shrinks by a factor 1 - p.",
        "Use nn.Dropout(p)(attn_weights) (or torch.nn.functional.dropout(attn_weights, p, training=True)), "
        "which zeroes and rescales for you.",
        {"attention_dropout": (_attention_dropout_without_rescaling, _attention_dropout_scaling_undone)},
    ),
    Mistake(
        "dropout_keep_prob",
        "p used as the keep probability",
        "nn.Dropout(p) zeroes each element with probability p; with nn.Dropout(1 - p) you zero 1 - p of "
        "them instead (everything when p is 0).",
        "Pass p itself: nn.Dropout(p).",
        {"attention_dropout": (_attention_dropout_keep_probability,)},
    ),
    Mistake(
        "wrapper_concat_wrong_dim",
        "Heads concatenated along the wrong dimension",
        "Concatenating on the token (or batch) dimension stacks the heads' outputs as extra tokens (or "
        "batch items) instead of putting them side by side in each token's vector.",
        "Concatenate on the last dimension: torch.cat([head(x) for head in self.heads], dim=-1), "
        "shape (b, num_tokens, num_heads * d_out).",
        {
            "MultiHeadAttentionWrapper": (
                _wrapper_class("MultiHeadAttentionWrapper", cat_dim=1),  # MISTAKE: along the tokens
                _wrapper_class("MultiHeadAttentionWrapper", cat_dim=0),  # MISTAKE: along the batch
            ),
        },
    ),
    Mistake(
        "heads_split_without_transpose",
        "Heads split without transposing",
        "After .view(b, num_tokens, num_heads, head_dim) the tokens still come before the heads, so the "
        "attention is computed between heads instead of between tokens (and the causal mask usually "
        "does not even fit the scores).",
        "After the .view, call .transpose(1, 2) on the keys, queries and values to get "
        "(b, num_heads, num_tokens, head_dim).",
        {"MultiHeadAttention": (_MultiHeadAttentionHeadsNotTransposed,)},
    ),
    Mistake(
        "heads_merged_without_transpose",
        "Heads merged without transposing back",
        "The context vectors are (b, num_heads, num_tokens, head_dim); viewing them directly as "
        "(b, num_tokens, d_out) mixes up tokens and heads, so rows hold values of the wrong tokens.",
        "Transpose back first: context_vec.transpose(1, 2).contiguous().view(b, num_tokens, self.d_out).",
        {"MultiHeadAttention": (_MultiHeadAttentionMergedWithoutTranspose,)},
    ),
    Mistake(
        "missing_out_proj",
        "Output projection not applied",
        "self.out_proj is created but never used, so the heads' concatenated outputs come back without "
        "the final linear layer that combines them.",
        "End forward with context_vec = self.out_proj(context_vec).",
        {"MultiHeadAttention": (_MultiHeadAttentionWithoutOutProj,)},
    ),
    Mistake(
        "gpt2_qkv_bias",
        "GPT-2 attention with query/key/value biases",
        "Exercise 3.3 asks for no query/key/value biases: with them the module has three extra bias "
        "vectors of 768 parameters each, 2,362,368 parameters instead of 2,360,064.",
        "Pass qkv_bias=False (the default) to MultiHeadAttention.",
        {"gpt2_small_attention": (_gpt2_small_attention_with_qkv_bias,)},
    ),
]

MISTAKES: dict[str, Mistake] = {mistake.id: mistake for mistake in _MISTAKES}
