"""One deliberate mistake per submission: it fails exactly the steps it touches, passes the rest.

Each submission is the reference solution with one edit (old text -> new text), so the set of
submissions stays in step with the solutions. The expected outcome sits beside each edit.
"""

import re
from dataclasses import dataclass

import pytest
import yaml
from conftest import RUBRIC, grade, statuses

STEP_IDS = [step["id"] for step in yaml.safe_load(RUBRIC.read_text())["steps"]]
SCALING_STEPS = {"scaled_attention_weights", "SelfAttention_v1", "SelfAttention_v2",
                 "causal_attention_weights", "CausalAttention", "MultiHeadAttention"}


@dataclass(frozen=True)
class Mistake:
    name: str
    pattern: str  # a regular expression over the solutions file
    replacement: str
    fails: dict[str, str]  # step id -> the status it must get; every other step passes
    count: int = 0  # how many matches to replace (0: all)
    feedback: tuple[str, ...] = ()  # phrases the first failing step's feedback must contain
    named: str | None = None  # the known mistake the report must name on every failing step


MISTAKES = [
    Mistake("forgot_sqrt_scaling", r"\s*/\s*(d_k|keys\.shape\[-1\])\s*\*\*\s*0\.5", "",
            dict.fromkeys(SCALING_STEPS, "failed"),
            feedback=("largest absolute difference", "differs in"), named="missing_scaling"),
    Mistake("scaled_by_dk", r"(d_k|keys\.shape\[-1\])\s*\*\*\s*0\.5", r"\1",
            dict.fromkeys(SCALING_STEPS, "failed"), named="scaled_by_dk"),
    Mistake("softmax_wrong_dim", r"torch\.softmax\(attn_scores, dim=-1\)",
            "torch.softmax(attn_scores, dim=0)", {"attention_weights": "failed"}, count=1,
            feedback=("rows_sum_to_one",), named="softmax_wrong_dim"),
    Mistake("scores_transposed_product", r"inputs @ inputs\.T", "inputs.T @ inputs",
            {"attention_scores": "failed"}, feedback=("has shape (3, 3); expected (6, 6)",),
            named="scores_transposed_product"),
    Mistake("mask_includes_diagonal", r"diagonal=1\)", "diagonal=0)",
            {"causal_attention_weights": "failed", "CausalAttention": "failed",
             "MultiHeadAttention": "failed"}, feedback=("NaN",), named="mask_includes_diagonal"),
    Mistake("v1_weight_not_transposed", r"weight\.T\)", "weight)",
            {"transfer_weights_v2_to_v1": "error"}, feedback=("RuntimeError",),
            named="v1_weight_not_transposed"),
    Mistake("missing_renormalization", r"return masked_simple_norm", "return masked_simple",
            {"renormalized_causal_weights": "failed"}, feedback=("rows_sum_to_one",),
            named="missing_renormalization"),
    Mistake("dropout_no_rescale", r"return dropout\(attn_weights\)  # same shape as attn_weights",
            "return dropout(attn_weights) * (1 - p)", {"attention_dropout": "failed"},
            feedback=("1 / (1 - p)",), named="dropout_no_rescale"),
    Mistake("wrapper_concat_wrong_dim", r"torch\.cat\(head_outputs, dim=-1\)",
            "torch.cat(head_outputs, dim=1)", {"MultiHeadAttentionWrapper": "failed"},
            feedback=("has shape (2, 12, 2)",), named="wrapper_concat_wrong_dim"),
    Mistake("missing_out_proj", r"context_vec = self\.out_proj\(context_vec\)", "pass",
            {"MultiHeadAttention": "failed"}, named="missing_out_proj"),
    Mistake("mask_not_sliced", r"\[:num_tokens, :num_tokens\]", "",
            {"CausalAttention": "error", "MultiHeadAttention": "error"},
            feedback=("RuntimeError", "shorter_than_context"), named="mask_not_sliced"),
    Mistake("gpt2_wrong_head_count", r"num_heads=12", "num_heads=8",
            {"gpt2_small_attention": "failed"}, feedback=("num_heads", "12", "does not match any")),
    Mistake("v1_weights_created_out_of_order",
            r"( +self\.W_query = nn\.Parameter\(torch\.rand\(d_in, d_out\)\).*\n)"
            r"( +self\.W_key = nn\.Parameter\(torch\.rand\(d_in, d_out\)\).*\n)",
            r"\2\1", {"SelfAttention_v1": "failed"}, feedback=("torch.manual_seed",)),
    Mistake("syntax_error_in_py_file", r"def softmax_naive\(x\):", "def softmax_naive(x)",
            {step: "error" for step in STEP_IDS}, feedback=("SyntaxError", "line")),
    Mistake("v1_weights_transposed", r"nn\.Parameter\(torch\.rand\(d_in, d_out\)\)",
            # no binding of the grader's weights lets forward run (x @ W_query is (T, 3) @ (2, 3)),
            # nor do its own weights: the student sees the error forward raises
            "nn.Parameter(torch.rand(d_out, d_in))", {"SelfAttention_v1": "error"},
            feedback=("`SelfAttention_v1(d_in=3, d_out=2)` raised RuntimeError: mat1 and mat2 "
                      "shapes cannot be multiplied",)),
    Mistake("normalized_without_exp", r"exp_x = torch\.exp\(x\)", "exp_x = x",
            {"softmax_naive": "failed"}, named="normalized_without_exp"),
    Mistake("mask_wrong_triangle", r"future\.triu\(diagonal=1\)", "future.tril(diagonal=-1)",
            {"causal_attention_weights": "failed"}, named="mask_wrong_triangle"),
    Mistake("mask_zero_fill", r"attn_scores\.masked_fill\(mask, -torch\.inf\)",
            "attn_scores.masked_fill(mask, 0.0)", {"causal_attention_weights": "failed"},
            named="mask_zero_fill"),
    Mistake("no_causal_mask", r"masked = attn_scores\.masked_fill\(mask, -torch\.inf\)",
            "masked = attn_scores", {"causal_attention_weights": "failed"}, named="no_causal_mask"),
    Mistake("mask_not_buffer",
            r'self\.register_buffer\(\n\s*"mask", (torch\.triu\(torch\.ones\(context_length, '
            r'context_length\), diagonal=1\))\n\s*\)', r"self.mask = \1",
            {"CausalAttention": "failed", "MultiHeadAttention": "failed"}, named="mask_not_buffer",
            feedback=("not a registered buffer",)),
    Mistake("dropout_keep_prob", r"dropout = nn\.Dropout\(p\)", "dropout = nn.Dropout(1 - p)",
            {"attention_dropout": "failed"}, named="dropout_keep_prob"),
    Mistake("heads_split_without_transpose",
            r"\n\s*(keys|queries|values) = (keys|queries|values)\.transpose\(1, 2\).*"
            r"|\n\s*context_vec = context_vec\.transpose\(1, 2\).*", "",
            {"MultiHeadAttention": "error"}, named="heads_split_without_transpose"),
    Mistake("heads_merged_without_transpose",
            r"\n\s*context_vec = context_vec\.transpose\(1, 2\).*", "",
            {"MultiHeadAttention": "failed"}, named="heads_merged_without_transpose"),
    Mistake("gpt2_qkv_bias", r"num_heads=12, qkv_bias=False", "num_heads=12, qkv_bias=True",
            {"gpt2_small_attention": "failed"}, named="gpt2_qkv_bias"),
    Mistake("context_vectors_misnamed", r"def context_vectors\(", "def context_vectors_all(",
            {"context_vectors": "missing"}, feedback=("does not define `context_vectors`",)),
    Mistake("typo_in_softmax", r"return exp_x / exp_x\.sum\(dim=0\)",
            "return exp_x / exps.sum(dim=0)", {"softmax_naive": "error"},
            feedback=("NameError", "line")),
]


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.name)
def test_a_mistake_fails_exactly_the_steps_it_touches(mistake, rubric, solution_source, tmp_path):
    source, replaced = re.subn(mistake.pattern, mistake.replacement, solution_source,
                               count=mistake.count)
    assert replaced, f"the edit for {mistake.name} no longer matches the solutions"
    path = tmp_path / f"{mistake.name}.py"
    path.write_text(source)

    report = grade(path, rubric=rubric)

    got = {step: status for step, status in statuses(report).items() if status != "passed"}
    assert got == mistake.fails
    first = next(s for s in report.steps if s.id in mistake.fails)
    for phrase in mistake.feedback:
        assert phrase in first.feedback, first.feedback
    # the diagnosis names the mistake on every step it touches, and nowhere else
    named = {step.id: step.mistake for step in report.steps if step.mistake}
    assert named == dict.fromkeys(mistake.fails, mistake.named) if mistake.named else named == {}
    assert report.score < report.max_score
    # the steps that passed are scored in full
    for step in report.steps:
        if step.status == "passed":
            assert step.score == step.max_score


def test_the_sqrt_mistake_reports_the_size_of_the_error_on_the_book_example(rubric, solution_source,
                                                                            tmp_path):
    path = tmp_path / "forgot_sqrt.py"
    path.write_text(re.sub(MISTAKES[0].pattern, "", solution_source))
    step = grade(path, rubric=rubric, steps=["scaled_attention_weights"]).steps[0]
    assert step.status == "failed"
    # the book case is visible: expected and obtained values are shown
    assert "case `book_query_2`" in step.feedback
    assert re.search(r"expected 0\.\d{4}, got 0\.\d{4}", step.feedback)
    values = next(c for c in step.checks if c.name == "values")
    assert values.score == 0 and not values.passed
    assert next(c for c in step.checks if c.name == "shape").passed


def test_hidden_cases_do_not_show_expected_values(rubric, solution_source, tmp_path):
    path = tmp_path / "wrong.py"
    # only the hidden batched case catches dim=1 instead of dim=-1
    path.write_text(solution_source.replace("torch.softmax(attn_scores, dim=-1)",
                                            "torch.softmax(attn_scores, dim=1)", 1))
    step = grade(path, rubric=rubric, steps=["attention_weights"]).steps[0]
    assert step.status == "failed"
    assert "hidden case `batched_2x4x4` (seed 52)" in step.feedback
    assert "expected 0." not in step.feedback
    assert "largest absolute difference" in step.feedback
