"""The known-mistake implementations in solutions/mistakes.py.

Each one must keep the reference step's signature (and, for classes, its parameters), and must give
a result that differs from the reference's on a representative input for its step, or raise: a
"mistake" that is secretly correct would make the grader blame students for right answers.
"""

import ast
import importlib.util
import inspect
import sys

import pytest
import torch
from conftest import REPO_ROOT, SOLUTIONS

from solutions import mistakes

ref = mistakes.ref
MISTAKES = mistakes.MISTAKES
BOOK = ref.BOOK_INPUTS
BOOK_BATCH = torch.stack((BOOK, BOOK))  # (2, 6, 3)
ATOL, RTOL = 1.0e-5, 1.0e-4  # the rubric's default tolerances

REFERENCE_STEPS = {
    node.name
    for node in ast.parse(SOLUTIONS.read_text()).body
    if isinstance(node, (ast.FunctionDef, ast.ClassDef))
}

VARIANTS = [
    pytest.param(mistake_id, step, index, id=f"{mistake_id}-{step}-{index}")
    for mistake_id, mistake in MISTAKES.items()
    for step, implementations in mistake.implementations.items()
    for index in range(len(implementations))
]
STEPS = sorted({step for mistake in MISTAKES.values() for step in mistake.implementations})


def randn(seed, *shape, scale=1.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def book_qkv():
    torch.manual_seed(123)
    W_query, W_key, W_value = (torch.rand(3, 2) for _ in range(3))
    return ref.project_qkv(BOOK, W_query, W_key, W_value)


# --------------------------------------------------------------------------- how to run each step
# Each step has a few cases: a case runs an implementation and returns something comparable.


def call(*args):
    return lambda impl: impl(*args)


def module(seed, x, /, **init):
    """Build the module after seeding (so the initial weights are the reference's), then run it."""

    def run(cls):
        torch.manual_seed(seed)
        m = cls(**init)
        return {
            "output": m(x),
            "parameters": {name: p.detach() for name, p in m.named_parameters()},
            "buffers": {name: b for name, b in m.named_buffers()},
        }

    return run


def dropout_statistics(attn_weights, p, seed):
    """Zero fraction and survivors' scale, rounded well above the sampling noise."""

    def run(impl):
        torch.manual_seed(seed)
        out = impl(attn_weights.clone(), p)
        survivors = out != 0
        scale = (out[survivors] / attn_weights[survivors]).mean().item() if survivors.any() else 0.0
        return {"shape": tuple(out.shape), "zero_fraction": round(1 - survivors.float().mean().item(), 1),
                "survivor_scale": round(scale, 2)}

    return run


def transfer(seed, d_in, d_out):
    def run(impl):
        torch.manual_seed(seed)
        sa_v2 = ref.SelfAttention_v2(d_in, d_out)
        sa_v1 = ref.SelfAttention_v1(d_in, d_out)
        impl(sa_v2, sa_v1)
        return {name: p.detach() for name, p in sa_v1.named_parameters()}

    return run


def factory():
    def run(impl):
        torch.manual_seed(0)
        m = impl()
        return {"parameters": {name: tuple(p.shape) for name, p in m.named_parameters()},
                "count": sum(p.numel() for p in m.parameters())}

    return run


def cases(step):
    if step == "softmax_naive":
        return [call(ref.attn_scores_for_query(BOOK, BOOK[1])), call(randn(21, 9, scale=3.0))]
    if step == "attention_scores":
        return [call(BOOK), call(randn(41, 5, 4))]
    if step == "attention_weights":
        return [call(ref.attention_scores(BOOK)), call(randn(52, 2, 4, 4))]
    if step == "scaled_attention_weights":
        queries, keys, _ = book_qkv()
        return [call(queries[1], keys), call(randn(81, 5, 4), randn(82, 5, 4)),
                call(randn(83, 3, 8), randn(84, 5, 8))]
    if step == "renormalized_causal_weights":
        return [call(ref.attention_weights(ref.attention_scores(BOOK))),
                call(torch.softmax(randn(121, 5, 5), dim=-1))]
    if step == "causal_attention_weights":
        queries, keys, _ = book_qkv()
        return [call(queries, keys), call(randn(131, 6, 4), randn(132, 6, 4))]
    if step == "attention_dropout":
        return [call(torch.softmax(randn(141, 6, 6), dim=-1), 0.0),
                dropout_statistics(torch.ones(200, 200), 0.2, seed=142),
                dropout_statistics(torch.rand(150, 150, generator=torch.Generator().manual_seed(143)) + 0.1,
                                   0.3, seed=144)]
    if step == "transfer_weights_v2_to_v1":
        return [transfer(123, 3, 2), transfer(111, 6, 4), transfer(112, 4, 4)]
    if step == "SelfAttention_v1":
        return [module(123, BOOK, d_in=3, d_out=2), module(91, randn(90, 7, 5), d_in=5, d_out=4)]
    if step == "SelfAttention_v2":
        return [module(789, BOOK, d_in=3, d_out=2), module(101, randn(100, 5, 4), d_in=4, d_out=6),
                module(102, randn(103, 6, 5), d_in=5, d_out=3, qkv_bias=True)]
    if step == "CausalAttention":
        return [module(123, BOOK_BATCH, d_in=3, d_out=2, context_length=6, dropout=0.0),
                module(151, randn(150, 2, 5, 4), d_in=4, d_out=3, context_length=8, dropout=0.0)]
    if step == "MultiHeadAttentionWrapper":
        return [module(123, BOOK_BATCH, d_in=3, d_out=2, context_length=6, dropout=0.0, num_heads=2),
                module(161, randn(160, 2, 5, 4), d_in=4, d_out=3, context_length=7, dropout=0.0,
                       num_heads=3)]
    if step == "MultiHeadAttention":
        return [module(123, BOOK_BATCH, d_in=3, d_out=2, context_length=6, dropout=0.0, num_heads=2),
                module(181, randn(180, 3, 7, 6), d_in=6, d_out=8, context_length=10, dropout=0.0,
                       num_heads=4),
                module(182, randn(183, 2, 5, 4), d_in=4, d_out=6, context_length=5, dropout=0.0,
                       num_heads=2, qkv_bias=True)]
    if step == "gpt2_small_attention":
        return [factory()]
    raise AssertionError(f"no representative cases for step {step!r}")


def same(a, b):
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and torch.allclose(a, b, atol=ATOL, rtol=RTOL, equal_nan=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def outcome(run, impl):
    """("ok", result) or ("raised", exception type name)."""
    try:
        with torch.no_grad():
            return "ok", run(impl)
    except Exception as error:  # the error variants raise by design
        return "raised", type(error).__name__


def differences(step, impl):
    """For each case of the step: does impl differ from the reference (or raise)?"""
    found = []
    for run in cases(step):
        status, expected = outcome(run, getattr(ref, step))
        assert status == "ok", expected
        status, obtained = outcome(run, impl)
        found.append(status == "raised" or not same(obtained, expected))
    return found


# --------------------------------------------------------------------------- the catalogue


def test_every_mistake_is_described_and_names_real_steps():
    assert len(MISTAKES) >= 20
    for mistake_id, mistake in MISTAKES.items():
        assert isinstance(mistake, mistakes.Mistake)
        assert mistake.id == mistake_id
        for text in (mistake.title, mistake.explanation, mistake.hint):
            assert isinstance(text, str) and text.strip(), mistake_id
        assert mistake.implementations, mistake_id
        for step, implementations in mistake.implementations.items():
            assert step in REFERENCE_STEPS, f"{mistake_id}: {step!r} is not a step of attention.py"
            assert isinstance(implementations, tuple) and implementations, (mistake_id, step)


@pytest.mark.parametrize(("mistake_id", "step", "index"), VARIANTS)
def test_a_variant_keeps_the_reference_signature(mistake_id, step, index):
    impl = MISTAKES[mistake_id].implementations[step][index]
    reference = getattr(ref, step)
    assert isinstance(impl, type) == isinstance(reference, type)
    if isinstance(reference, type):
        assert issubclass(impl, torch.nn.Module)
    assert inspect.signature(impl) == inspect.signature(reference)


@pytest.mark.parametrize(("mistake_id", "step", "index"), VARIANTS)
def test_a_variant_differs_from_the_reference(mistake_id, step, index):
    impl = MISTAKES[mistake_id].implementations[step][index]
    assert any(differences(step, impl)), f"{mistake_id} on {step} (variant {index}) is secretly correct"


@pytest.mark.parametrize("step", STEPS)
def test_the_representative_cases_are_deterministic(step):
    reference = getattr(ref, step)
    for run in cases(step):
        first, second = outcome(run, reference), outcome(run, reference)
        assert first[0] == second[0] == "ok" and same(first[1], second[1])


@pytest.mark.parametrize(("mistake_id", "step", "index"),
                         [v for v in VARIANTS if isinstance(getattr(ref, v.values[1]), type)])
def test_a_class_variant_creates_the_reference_parameters_in_order(mistake_id, step, index):
    impl = MISTAKES[mistake_id].implementations[step][index]
    init = {"SelfAttention_v1": dict(d_in=4, d_out=6),
            "SelfAttention_v2": dict(d_in=4, d_out=6, qkv_bias=True)}
    kwargs = init.get(step, dict(d_in=4, d_out=6, context_length=5, dropout=0.1, num_heads=2, qkv_bias=True))
    if step == "CausalAttention":
        kwargs.pop("num_heads")
    built = []
    for cls in (getattr(ref, step), impl):
        torch.manual_seed(7)
        built.append(cls(**kwargs))
    expected, obtained = built
    assert [n for n, _ in obtained.named_parameters()] == [n for n, _ in expected.named_parameters()]
    for (_, p), (_, q) in zip(obtained.named_parameters(), expected.named_parameters()):
        assert torch.equal(p, q)
    if mistake_id != "mask_not_buffer":
        assert [n for n, _ in obtained.named_buffers()] == [n for n, _ in expected.named_buffers()]
    if hasattr(expected, "dropout"):
        assert isinstance(obtained.dropout, torch.nn.Dropout) and obtained.dropout.p == expected.dropout.p


def test_the_factories_with_their_defaults_compute_the_reference():
    built = {
        "SelfAttention_v1": mistakes._self_attention_v1_class("SelfAttention_v1"),
        "SelfAttention_v2": mistakes._self_attention_v2_class("SelfAttention_v2"),
        "CausalAttention": mistakes._causal_attention_class("CausalAttention"),
        "MultiHeadAttentionWrapper": mistakes._wrapper_class("MultiHeadAttentionWrapper"),
        "MultiHeadAttention": mistakes._MultiHeadAttention,
    }
    for step, cls in built.items():
        assert not any(differences(step, cls)), step


def test_the_reference_is_loaded_once_by_path(monkeypatch):
    path = REPO_ROOT / "solutions" / "mistakes.py"
    spec = importlib.util.spec_from_file_location("_mistakes_loaded_by_path", path)
    loaded = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "_mistakes_loaded_by_path", loaded)
    spec.loader.exec_module(loaded)
    assert loaded.ref is ref
    # the grader loads the very same module, whichever course it loaded before
    from grader.cases import load_reference

    load_reference(REPO_ROOT / "examples" / "chapter4" / "solutions" / "gpt.py")
    assert load_reference(SOLUTIONS) is ref
    assert loaded.MISTAKES.keys() == MISTAKES.keys()


# --------------------------------------------------------------------------- particular mistakes


def test_scaling_mistakes_only_show_when_the_head_dim_is_not_1():
    for mistake_id in ("missing_scaling", "scaled_by_dk"):
        (impl,) = MISTAKES[mistake_id].implementations["MultiHeadAttention"]
        book, four_heads, _ = differences("MultiHeadAttention", impl)
        assert not book and four_heads  # the book's heads have head_dim = 1, where sqrt(1) = 1 = 1


def test_the_mask_not_sliced_variants_fail_only_on_shorter_inputs():
    for step in ("CausalAttention", "MultiHeadAttention"):
        (impl,) = MISTAKES["mask_not_sliced"].implementations[step]
        book, shorter, *_ = cases(step)
        assert same(outcome(book, impl), outcome(book, getattr(ref, step)))  # 6 tokens, context 6
        assert outcome(shorter, impl) == ("raised", "RuntimeError")


def test_the_mask_not_buffer_variants_compute_the_right_outputs_without_a_mask_buffer():
    for step in ("CausalAttention", "MultiHeadAttention"):
        (impl,) = MISTAKES["mask_not_buffer"].implementations[step]
        for run in cases(step):
            _, obtained = outcome(run, impl)
            _, expected = outcome(run, getattr(ref, step))
            assert same(obtained["output"], expected["output"])
            assert "mask" in expected["buffers"] and "mask" not in obtained["buffers"]


def test_the_weights_copied_without_transposing():
    new_parameters, copied = MISTAKES["v1_weight_not_transposed"].implementations["transfer_weights_v2_to_v1"]
    torch.manual_seed(123)
    sa_v2, sa_v1 = ref.SelfAttention_v2(3, 2), ref.SelfAttention_v1(3, 2)
    new_parameters(sa_v2, sa_v1)
    assert isinstance(sa_v1.W_query, torch.nn.Parameter) and sa_v1.W_query.shape == (2, 3)
    with pytest.raises(RuntimeError):
        copied(ref.SelfAttention_v2(3, 2), ref.SelfAttention_v1(3, 2))
    sa_v2, sa_v1 = ref.SelfAttention_v2(4, 4), ref.SelfAttention_v1(4, 4)
    copied(sa_v2, sa_v1)  # square: no error, the untransposed matrix
    assert torch.equal(sa_v1.W_key, sa_v2.W_key.weight)
    assert not torch.allclose(sa_v1(BOOK[:, :2].repeat(1, 2)), sa_v2(BOOK[:, :2].repeat(1, 2)))


def test_heads_split_without_transpose_raises_unless_tokens_and_heads_match():
    (impl,) = MISTAKES["heads_split_without_transpose"].implementations["MultiHeadAttention"]
    book = cases("MultiHeadAttention")[0]
    assert outcome(book, impl) == ("raised", "RuntimeError")  # 6 tokens, 2 heads
    four_by_four = module(5, randn(6, 2, 4, 8), d_in=8, d_out=8, context_length=4, dropout=0.0, num_heads=4)
    status, obtained = outcome(four_by_four, impl)
    assert status == "ok" and not same(obtained, outcome(four_by_four, ref.MultiHeadAttention)[1])


def test_gpt2_with_qkv_bias_has_three_more_bias_vectors():
    (impl,) = MISTAKES["gpt2_qkv_bias"].implementations["gpt2_small_attention"]
    count = factory()
    assert count(ref.gpt2_small_attention)["count"] == 2_360_064
    assert count(impl)["count"] == 2_360_064 + 3 * 768


@pytest.mark.parametrize("p", [0.2, 0.3])
def test_dropout_mistakes_have_the_statistics_they_describe(p):
    x = torch.ones(300, 300)
    reference = dropout_statistics(x, p, seed=1)(ref.attention_dropout)
    assert reference["zero_fraction"] == round(p, 1) and reference["survivor_scale"] == round(1 / (1 - p), 2)
    for impl in MISTAKES["dropout_no_rescale"].implementations["attention_dropout"]:
        stats = dropout_statistics(x, p, seed=1)(impl)
        assert stats["zero_fraction"] == reference["zero_fraction"]  # zeroes as often...
        assert stats["survivor_scale"] == 1.0 != reference["survivor_scale"]  # ...but does not rescale
    (impl,) = MISTAKES["dropout_keep_prob"].implementations["attention_dropout"]
    stats = dropout_statistics(x, p, seed=1)(impl)
    assert stats["zero_fraction"] == round(1 - p, 1) != reference["zero_fraction"]
    assert stats["survivor_scale"] == round(1 / p, 2) != reference["survivor_scale"]


def test_dropout_keep_prob_is_indistinguishable_at_one_half():
    # documented limit: with p = 0.5, nn.Dropout(1 - p) is nn.Dropout(p)
    (impl,) = MISTAKES["dropout_keep_prob"].implementations["attention_dropout"]
    x = torch.ones(100, 100)
    torch.manual_seed(3)
    expected = ref.attention_dropout(x, 0.5)
    torch.manual_seed(3)
    assert torch.equal(impl(x, 0.5), expected)
