"""Correct code passes whatever it names its weights: the grader binds its weights to the student's
parameters by structure (grader/binding.py) and keeps a binding only when it reproduces the
reference. The submissions in tests/styles/ are written as students following the book write them;
all are graded in one batch.
"""

from pathlib import Path

import pytest
import torch
from conftest import SOLUTIONS, grade_many

from grader.binding import candidates

STYLES = Path(__file__).with_name("styles")
SOURCE = SOLUTIONS.read_text()


def _mha_renamed_output_layer() -> str:
    start = SOURCE.index("class MultiHeadAttention(")
    return SOURCE[:start] + SOURCE[start:].replace("out_proj", "last_Layer")


def _causal_renamed() -> str:
    start = SOURCE.index("class CausalAttention(")
    end = SOURCE.index("\nclass ", start + 1)
    part = SOURCE[start:end]
    for old, new in (("W_query", "query"), ("W_key", "key"), ("W_value", "value")):
        part = part.replace(old, new)
    return SOURCE[:start] + part + SOURCE[end:]


SUBMISSIONS = {path.stem: path.read_text() for path in sorted(STYLES.glob("*.py"))}
SUBMISSIONS["mha_renamed_output_layer"] = _mha_renamed_output_layer()
SUBMISSIONS["causal_renamed_correct"] = _causal_renamed()


@pytest.fixture(scope="module")
def reports(rubric, tmp_path_factory):
    return grade_many(rubric, SUBMISSIONS, tmp_path_factory.mktemp("styles"))


def step(reports, name, step_id):
    return next(s for s in reports[name].steps if s.id == step_id)


def lost(result) -> set[str]:
    return {c.name for c in result.checks if not c.passed}


@pytest.mark.parametrize("name, step_id, lost_checks", [
    ("v1_lowercase_weights", "SelfAttention_v1", {"parameters"}),
    ("mha_renamed_output_layer", "MultiHeadAttention", {"parameters"}),
    ("causal_renamed_correct", "CausalAttention", {"parameters"}),
    # its own initialisation (randn * 0.1) is not the book's
    ("mha_einsum_raw_parameters", "MultiHeadAttention", {"parameters", "init"}),
    # no mask buffer (is_causal=True); a fused layer's seeded values with a bias are not the book's
    ("mha_fused_qkv_sdpa", "MultiHeadAttention", {"parameters", "buffers", "init"}),
])
def test_correct_code_under_other_names_loses_only_the_names_check(reports, name, step_id,
                                                                   lost_checks):
    result = step(reports, step_id=step_id, name=name)
    assert lost(result) == lost_checks, result.feedback
    names = next(c for c in result.checks if c.name == "parameters")
    assert "matched your parameters to the contract's by shape" in names.message
    assert names.score == 0 and result.score == result.max_score - sum(
        c.max_score for c in result.checks if c.name in lost_checks)
    assert "common mistakes" not in result.feedback  # a name is no mistake in the computation


def test_the_binding_is_spelled_out(reports):
    message = step(reports, "mha_fused_qkv_sdpa", "MultiHeadAttention").feedback
    assert "`qkv.weight` ← `W_query.weight` + `W_key.weight` + `W_value.weight` (fused)" in message
    assert "`last_Layer.weight` ← `out_proj.weight`" in message
    einsum = step(reports, "mha_einsum_raw_parameters", "MultiHeadAttention").feedback
    assert "`W_query` ← `W_query.weight` (transposed)" in einsum


def test_a_fused_layer_is_told_why_its_seeded_values_differ(reports):
    init = next(c for c in step(reports, "mha_fused_qkv_sdpa", "MultiHeadAttention").checks
                if c.name == "init")
    assert "one fused layer draws its initial values in another order" in init.message


def test_arguments_in_another_order_are_passed_by_name(reports):
    refusal = next(c for c in step(reports, "mha_fused_qkv_sdpa", "MultiHeadAttention").checks
                   if c.name == "raises")
    assert refusal.passed, refusal.message


def test_a_missing_qkv_bias_fails_only_the_case_that_needs_it(reports):
    result = step(reports, "v2_without_qkv_bias", "SelfAttention_v2")
    checks = {c.name: c for c in result.checks}
    for name in ("parameters", "init", "shape", "values"):  # right on the two bias-free cases
        check = checks[name]
        assert check.judged and not check.passed and 0 < check.score < check.max_score, check.message
        assert "`with_qkv_bias` (seed 102) was not run" in check.message
        assert "`SelfAttention_v2(d_in=5, d_out=3, qkv_bias=True)` passes `qkv_bias`" in check.message
    assert result.status == "failed" and 2 < result.score < result.max_score


def test_looking_ahead_is_reported_and_named_under_other_names(reports):
    result = step(reports, "causal_renamed_looks_ahead", "CausalAttention")
    checks = {c.name: c for c in result.checks}
    assert not checks["no_look_ahead"].passed
    assert "a token looks at tokens after it" in checks["no_look_ahead"].message
    # bound through the known mistake's output on the same weights, so the mistake is named
    assert result.mistake == "mask_wrong_triangle", result.feedback
    assert not checks["values"].passed and checks["values"].judged


def test_with_no_binding_the_behaviour_is_judged_on_the_modules_own_weights(reports):
    result = step(reports, "causal_renamed_unknown_bug", "CausalAttention")
    checks = {c.name: c for c in result.checks}
    assert "Forward ran on your module's own weights instead" in result.feedback
    assert not checks["values"].judged
    assert "could not give your module the reference's weights" in checks["values"].message
    for name in ("shape", "no_look_ahead", "batch_consistency", "dropout_train_eval"):
        assert checks[name].passed, checks[name].message
    assert not checks["gradients_flow"].passed  # unpredictable on weights the grader did not give


def test_other_steps_of_a_style_submission_are_untouched(reports):
    # a file that defines one class leaves the other steps missing, and nothing else
    report = reports["v1_lowercase_weights"]
    assert {s.status for s in report.steps if s.id != "SelfAttention_v1"} == {"missing"}


def test_square_matrices_are_tried_both_ways_and_fused_ones_in_both_orders():
    reference = {"W_query.weight": torch.zeros(4, 4), "W_key.weight": torch.zeros(4, 4),
                 "W_value.weight": torch.zeros(4, 4)}
    found = [b.text() for b in candidates([("qkv", (12, 4))], reference, heads=2)]
    assert any("(fused)" in t for t in found) and any("head by head" in t for t in found)
    square = [b.text() for b in candidates([("a", (4, 4)), ("b", (4, 4)), ("c", (4, 4))], reference)]
    assert any("transposed" in t for t in square) and any("transposed" not in t for t in square)


def test_a_binding_moves_gradients_and_values_alike():
    reference = {"W_query.weight": torch.arange(6.).view(2, 3), "W_key.weight": torch.ones(2, 3),
                 "W_value.weight": -torch.ones(2, 3)}
    (fused, *_) = candidates([("qkv", (6, 3))], reference)
    joined = fused.apply(reference)["qkv"]
    assert torch.equal(joined, torch.cat(list(reference.values())))
    assert fused.apply({**reference, "W_key.weight": None})["qkv"] is None  # no gradient: none


def test_a_module_with_thousands_of_parameters_costs_no_search():
    reference = {"W_query.weight": torch.zeros(2, 3)}
    many = [(f"p{i}", (2, 3)) for i in range(5000)]
    assert candidates(many, reference) == []


def test_many_square_matrices_with_no_fit_end_the_search_quickly():
    # square matrices bind both ways: without a bound, 2 ** 40 orders would be tried to the end
    reference = {**{f"r{i}": torch.zeros(4, 4) for i in range(40)}, "last": torch.zeros(4, 5)}
    student = [(f"s{i}", (4, 4)) for i in range(41)]
    assert candidates(student, reference) == []
