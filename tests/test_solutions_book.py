"""The reference solutions reproduce the outputs printed in chapter 3 of the book.

Every expected tensor is the book's output, rounded to 4 decimals as the book prints
it. A result passes only if it rounds to exactly the printed digits.
"""

import pytest
import torch
import torch.nn as nn

import solutions.attention as sol

BOOK_INPUTS = torch.tensor(
    [
        [0.43, 0.15, 0.89],
        [0.55, 0.87, 0.66],
        [0.57, 0.85, 0.64],
        [0.22, 0.58, 0.33],
        [0.77, 0.25, 0.10],
        [0.05, 0.80, 0.55],
    ]
)


def assert_book(got, expected):
    """Assert that ``got`` rounds to the 4-decimal numbers printed in the book."""
    expected = torch.tensor(expected)
    got = got.detach()
    assert got.shape == expected.shape
    torch.testing.assert_close(got.round(decimals=4), expected, atol=1e-6, rtol=0)


def book_batch():
    return torch.stack((BOOK_INPUTS, BOOK_INPUTS), dim=0)  # (2, 6, 3)


def test_book_inputs_constant():
    assert sol.BOOK_INPUTS.dtype == torch.float32
    torch.testing.assert_close(sol.BOOK_INPUTS, BOOK_INPUTS, atol=0, rtol=0)


def test_assert_book_catches_a_wrong_last_digit():
    with pytest.raises(AssertionError):
        assert_book(torch.tensor([0.95452]), [0.9544])  # rounds to 0.9545
    with pytest.raises(AssertionError):
        assert_book(torch.tensor([0.9534]), [0.9544])
    assert_book(torch.tensor([0.95436]), [0.9544])  # rounds to the printed digits


# ---------------------------------------------------------------- 3.3


def test_step01_attn_scores_for_query():
    scores = sol.attn_scores_for_query(BOOK_INPUTS, BOOK_INPUTS[1])
    assert_book(scores, [0.9544, 1.4950, 1.4754, 0.8434, 0.7070, 1.0865])


def test_step02_softmax_naive():
    scores = sol.attn_scores_for_query(BOOK_INPUTS, BOOK_INPUTS[1])
    weights = sol.softmax_naive(scores)
    assert_book(weights, [0.1385, 0.2379, 0.2333, 0.1240, 0.1082, 0.1581])
    torch.testing.assert_close(weights, torch.softmax(scores, dim=0))


def test_step03_context_vector():
    weights = sol.softmax_naive(sol.attn_scores_for_query(BOOK_INPUTS, BOOK_INPUTS[1]))
    assert_book(sol.context_vector(weights, BOOK_INPUTS), [0.4419, 0.6515, 0.5683])


def test_step04_attention_scores():
    scores = sol.attention_scores(BOOK_INPUTS)
    assert scores.shape == (6, 6)
    assert_book(scores[0], [0.9995, 0.9544, 0.9422, 0.4753, 0.4576, 0.6310])


def test_step05_attention_weights():
    weights = sol.attention_weights(sol.attention_scores(BOOK_INPUTS))
    assert_book(weights[0], [0.2098, 0.2006, 0.1981, 0.1242, 0.1220, 0.1452])
    batched = torch.stack([sol.attention_scores(BOOK_INPUTS)] * 2).unsqueeze(0)  # (1, 2, 6, 6)
    batched_weights = sol.attention_weights(batched)
    assert batched_weights.shape == (1, 2, 6, 6)
    torch.testing.assert_close(batched_weights[0, 1], weights)


def test_step06_context_vectors():
    weights = sol.attention_weights(sol.attention_scores(BOOK_INPUTS))
    context = sol.context_vectors(weights, BOOK_INPUTS)
    assert context.shape == (6, 3)
    assert_book(context[0], [0.4421, 0.5931, 0.5790])


# ---------------------------------------------------------------- 3.4


def book_qkv():
    torch.manual_seed(123)
    W_query = torch.rand(3, 2)
    W_key = torch.rand(3, 2)
    W_value = torch.rand(3, 2)
    return sol.project_qkv(BOOK_INPUTS, W_query, W_key, W_value)


def test_step07_project_qkv():
    queries, keys, values = book_qkv()
    assert queries.shape == keys.shape == values.shape == (6, 2)
    assert_book(queries[1], [0.4306, 1.4551])
    assert_book(keys[1], [0.4433, 1.1419])


def test_step08_scaled_attention_weights():
    queries, keys, _ = book_qkv()
    weights_2 = sol.scaled_attention_weights(queries[1], keys)
    assert_book(weights_2, [0.1500, 0.2264, 0.2199, 0.1311, 0.0906, 0.1820])
    all_weights = sol.scaled_attention_weights(queries, keys)
    assert all_weights.shape == (6, 6)
    torch.testing.assert_close(all_weights[1], weights_2)


def test_step09_self_attention_v1():
    torch.manual_seed(123)
    sa_v1 = sol.SelfAttention_v1(3, 2)
    assert [name for name, _ in sa_v1.named_parameters()] == ["W_query", "W_key", "W_value"]
    out = sa_v1(BOOK_INPUTS)
    assert out.shape == (6, 2)
    assert_book(out[0], [0.2996, 0.8053])


def test_step10_self_attention_v2():
    torch.manual_seed(789)
    sa_v2 = sol.SelfAttention_v2(3, 2)
    assert all(
        isinstance(m, nn.Linear) and m.bias is None
        for m in (sa_v2.W_query, sa_v2.W_key, sa_v2.W_value)
    )
    out = sa_v2(BOOK_INPUTS)
    assert out.shape == (6, 2)
    assert_book(out[0], [-0.0739, 0.0713])
    assert sol.SelfAttention_v2(3, 2, qkv_bias=True).W_key.bias is not None


def test_step11_exercise_3_1_transfer_weights():
    # Exercise 3.1's solution: torch.manual_seed(123), then SelfAttention_v2(3, 2).
    torch.manual_seed(123)
    sa_v2 = sol.SelfAttention_v2(3, 2)
    sa_v1 = sol.SelfAttention_v1(3, 2)
    params_before = list(sa_v1.parameters())
    assert sol.transfer_weights_v2_to_v1(sa_v2, sa_v1) is None
    assert list(sa_v1.parameters()) == params_before  # same Parameter objects, copied in place
    assert all(isinstance(p, nn.Parameter) for p in sa_v1.parameters())
    out_v1, out_v2 = sa_v1(BOOK_INPUTS), sa_v2(BOOK_INPUTS)
    assert_book(out_v2[0], [-0.5337, -0.1051])
    assert_book(out_v1[0], [-0.5337, -0.1051])
    torch.testing.assert_close(out_v1, out_v2)


# ---------------------------------------------------------------- 3.5


def sa_v2_weights():
    torch.manual_seed(789)
    sa_v2 = sol.SelfAttention_v2(3, 2)
    queries, keys = sa_v2.W_query(BOOK_INPUTS), sa_v2.W_key(BOOK_INPUTS)
    return queries.detach(), keys.detach()


# Section 3.5.1 prints these rows of `masked_simple_norm` for the seed-789 SelfAttention_v2.
# (They are not in the task brief; they agree with the book as we remember it.)
CAUSAL_ROWS = {
    1: [0.5517, 0.4483, 0.0, 0.0, 0.0, 0.0],
    2: [0.3800, 0.3097, 0.3103, 0.0, 0.0, 0.0],
    3: [0.2758, 0.2460, 0.2462, 0.2319, 0.0, 0.0],
}


def test_step12_renormalized_causal_weights():
    queries, keys = sa_v2_weights()
    weights = sol.renormalized_causal_weights(sol.scaled_attention_weights(queries, keys))
    assert weights.shape == (6, 6)
    assert torch.all(torch.triu(weights, diagonal=1) == 0)
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(6))
    for row, expected in CAUSAL_ROWS.items():
        assert_book(weights[row], expected)


def test_step13_causal_attention_weights():
    queries, keys = sa_v2_weights()
    weights = sol.causal_attention_weights(queries, keys)
    expected = sol.renormalized_causal_weights(sol.scaled_attention_weights(queries, keys))
    torch.testing.assert_close(weights, expected)
    for row, book_row in CAUSAL_ROWS.items():
        assert_book(weights[row], book_row)


def test_step14_attention_dropout():
    torch.manual_seed(123)
    out = sol.attention_dropout(torch.ones(6, 6), 0.5)
    assert out.shape == (6, 6)
    assert set(out.unique().tolist()) <= {0.0, 2.0}
    torch.manual_seed(0)
    big = sol.attention_dropout(torch.ones(200, 200), 0.5)
    assert 0.45 < (big == 0).float().mean().item() < 0.55
    weights = torch.rand(4, 4)
    torch.testing.assert_close(sol.attention_dropout(weights, 0.0), weights, atol=0, rtol=0)


def test_step15_causal_attention():
    torch.manual_seed(123)
    ca = sol.CausalAttention(3, 2, 6, 0.0)
    assert [n for n, _ in ca.named_parameters()] == [
        "W_query.weight",
        "W_key.weight",
        "W_value.weight",
    ]
    assert "mask" in dict(ca.named_buffers())
    torch.testing.assert_close(ca.mask, torch.triu(torch.ones(6, 6), diagonal=1))
    out = ca(book_batch())
    assert out.shape == (2, 6, 2)
    assert_book(out[0, 0], [-0.4519, 0.2216])
    torch.testing.assert_close(out[0], out[1])
    # shorter sequences use the top-left corner of the mask
    torch.testing.assert_close(ca(book_batch()[:, :4]), out[:, :4])


# ---------------------------------------------------------------- 3.6


def test_step16_multi_head_attention_wrapper():
    torch.manual_seed(123)
    mha = sol.MultiHeadAttentionWrapper(3, 2, 6, 0.0, num_heads=2)
    assert isinstance(mha.heads, nn.ModuleList) and len(mha.heads) == 2
    out = mha(book_batch())
    assert out.shape == (2, 6, 4)
    assert_book(out[0, 0], [-0.4519, 0.2216, 0.4772, 0.1063])


def test_step17_exercise_3_2_two_dimensional_output():
    mha = sol.wrapper_with_2d_output(3, 6)
    assert isinstance(mha, sol.MultiHeadAttentionWrapper)
    assert len(mha.heads) == 2
    assert mha(book_batch()).shape == (2, 6, 2)


def test_step18_multi_head_attention():
    torch.manual_seed(123)
    mha = sol.MultiHeadAttention(3, 2, 6, 0.0, num_heads=2)
    assert (mha.d_out, mha.num_heads, mha.head_dim) == (2, 2, 1)
    out = mha(book_batch())
    assert out.shape == (2, 6, 2)
    assert_book(out[0, 0], [0.3190, 0.4858])
    with pytest.raises(AssertionError, match="d_out must be divisible by num_heads"):
        sol.MultiHeadAttention(3, 3, 6, 0.0, num_heads=2)


def test_step19_exercise_3_3_gpt2_small():
    mha = sol.gpt2_small_attention()
    assert isinstance(mha, sol.MultiHeadAttention)
    assert (mha.d_out, mha.num_heads, mha.head_dim) == (768, 12, 64)
    assert mha.mask.shape == (1024, 1024)
    assert mha.W_query.bias is None
    assert sum(p.numel() for p in mha.parameters()) == 2_360_064
    mha.eval()
    with torch.no_grad():
        assert mha(torch.rand(1, 5, 768)).shape == (1, 5, 768)
