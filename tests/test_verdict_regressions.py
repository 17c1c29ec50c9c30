"""Verdicts you can trust: each defect found on real student code, named by what the student did.

Every submission is the reference with one edit inside one step's definition; all of them are
graded in one batch, as `attention-grader grade` grades a class.
"""

import dataclasses
import re

import pytest
from conftest import SOLUTIONS, grade_many

from grader.engine import replay_case

SOURCE = SOLUTIONS.read_text()


def region(step: str) -> tuple[int, int]:
    """Where the top-level def or class `step` starts and ends in the solutions."""
    start = re.search(rf"^(def|class) {step}\b", SOURCE, re.MULTILINE).start()
    following = re.search(r"^(def|class) ", SOURCE[start + 1 :], re.MULTILINE)
    return start, start + 1 + following.start() if following else len(SOURCE)


def edit(step: str, old: str, new: str, source: str = SOURCE) -> str:
    """The solutions with `old` replaced by `new` inside the definition of `step` only."""
    start, end = region(step)
    part = source[start:end]
    assert old in part, f"{old!r} is no longer in {step}"
    return source[:start] + part.replace(old, new) + source[end:]


def init_body(step: str, body: str) -> str:
    """`step`'s __init__ solution block replaced by `body` (already indented)."""
    start, end = region(step)
    part = SOURCE[start:end]
    part = re.sub(r"(def __init__.*?# BEGIN SOLUTION\n).*?(\s+# END SOLUTION)",
                  lambda m: m.group(1) + body + m.group(2), part, count=1, flags=re.DOTALL)
    return SOURCE[:start] + part + SOURCE[end:]


def forward_returns(step: str, expression: str) -> str:
    return SOURCE + f"\n\n{step}.forward = lambda self, x: {expression}\n"


UNIFORM_CAUSAL = """
def causal_attention_weights(queries, keys):
    n = queries.shape[0]
    allowed = torch.tril(torch.ones(n, n))  # (n, n): 1 where a token may look
    return allowed / allowed.sum(dim=-1, keepdim=True)  # uniform over the allowed positions
"""

OWN_DROPOUT_KEEP_PROB = """
def attention_dropout(attn_weights, p):
    if p == 0:
        return attn_weights
    keep = torch.rand_like(attn_weights) < p  # p used as the probability of keeping
    return attn_weights * keep / p
"""

SUBMISSIONS = {
    "gpt2_forgets_its_return": edit("gpt2_small_attention", "return MultiHeadAttention(",
                                    "MultiHeadAttention("),
    "gpt2_returns_a_tensor": edit("gpt2_small_attention", "return MultiHeadAttention(",
                                  "return torch.zeros(768), MultiHeadAttention("),
    "gpt2_typo_in_a_keyword": edit("gpt2_small_attention", "qkv_bias=False", "qvk_bias=False"),
    "wrapper_2d_raises": edit("wrapper_with_2d_output", "return MultiHeadAttentionWrapper(",
                              "raise ValueError('todo'); return MultiHeadAttentionWrapper("),
    "mha_init_raises": init_body("MultiHeadAttention", "        raise ValueError('not yet')"),
    "mha_empty_init": init_body("MultiHeadAttention", "        super().__init__()"),
    "causal_init_raises": init_body("CausalAttention", "        raise ValueError('not yet')"),
    "causal_empty_init": init_body("CausalAttention", "        super().__init__()"),
    "v1_init_raises": init_body("SelfAttention_v1", "        raise ValueError('not yet')"),
    "v2_empty_init": init_body("SelfAttention_v2", "        super().__init__()"),
    "wrapper_heads_in_a_plain_list": edit("MultiHeadAttentionWrapper", "nn.ModuleList(", "list("),
    "mha_arguments_in_another_order": edit(
        "MultiHeadAttention", "def __init__(self, d_in, d_out, context_length, dropout, num_heads,",
        "def __init__(self, d_in, d_out, num_heads, context_length, dropout,"),
    # other names in another order: nothing to pass by keyword, so the contract's order is used
    "mha_other_names_in_another_order": edit(
        "MultiHeadAttention", "def __init__(self, d_in, d_out, context_length, dropout, num_heads,",
        "def __init__(self, d_in, d_out, heads, context_length, dropout,",
        edit("MultiHeadAttention", "assert d_out % num_heads == 0", "num_heads = heads\n        "
             "assert d_out % num_heads == 0")),
    "renormalized_returns_its_input": edit("renormalized_causal_weights", "return masked_simple_norm",
                                           "return attn_weights"),
    "causal_weights_uniform": SOURCE + UNIFORM_CAUSAL,
    "causal_attention_constant_output": forward_returns(
        "CausalAttention", "torch.full((*x.shape[:2], self.d_out), 0.5)"),
    "causal_attention_zero_output": forward_returns(
        "CausalAttention", "torch.zeros(*x.shape[:2], self.d_out)"),
    "mha_hands_back_a_slice_of_its_input": forward_returns("MultiHeadAttention", "x[..., :1] * 0 + x.mean()"),
    "causal_forgot_dropout": edit("CausalAttention", "attn_weights = self.dropout(attn_weights)",
                                  "pass"),
    "causal_layers_in_another_order": edit(
        "CausalAttention",
        "self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)\n        self.W_key = nn.Linear(",
        "self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)\n        self.W_query = nn.Linear("),
    "causal_seeds_inside_init": edit("CausalAttention", "self.d_out = d_out",
                                     "torch.manual_seed(0)\n        self.d_out = d_out"),
    "causal_mask_registered_4d": edit(
        "CausalAttention",
        "self.mask.bool()[:num_tokens, :num_tokens]",
        "self.mask.bool()[0, 0, :num_tokens, :num_tokens]",
        edit("CausalAttention", "diagonal=1)\n        )", "diagonal=1)[None, None]\n        )")),
    "softmax_over_dim_1": edit("attention_weights", "torch.softmax(attn_scores, dim=-1)",
                               "torch.softmax(attn_scores, dim=1)"),
    "dropout_keeps_with_probability_p": SOURCE + OWN_DROPOUT_KEEP_PROB,
    "causal_unscaled_and_zero_filled": edit(
        "CausalAttention", "attn_scores / keys.shape[-1] ** 0.5, dim=-1", "attn_scores, dim=-1",
        edit("CausalAttention", "[:num_tokens, :num_tokens], -torch.inf",
             "[:num_tokens, :num_tokens], 0.0")),
}


@pytest.fixture(scope="module")
def reports(rubric, tmp_path_factory):
    return grade_many(rubric, SUBMISSIONS, tmp_path_factory.mktemp("regressions"))


def result(reports, name, step):
    return next(s for s in reports[name].steps if s.id == step)


def passed_checks(step_result) -> set[str]:
    return {c.name for c in step_result.checks if c.passed}


@pytest.mark.parametrize("name", ["gpt2_forgets_its_return", "gpt2_returns_a_tensor",
                                  "gpt2_typo_in_a_keyword"])
def test_a_broken_gpt2_factory_costs_its_step_only(reports, name):
    report = reports[name]
    step = result(reports, name, "gpt2_small_attention")
    assert step.score == 0 and step.status in ("failed", "error")
    assert all(s.status == "passed" for s in report.steps if s.id != "gpt2_small_attention")


def test_the_factory_that_forgot_return_is_told_so(reports):
    feedback = result(reports, "gpt2_forgets_its_return", "gpt2_small_attention").feedback
    assert "returned a NoneType; expected an nn.Module" in feedback


def test_a_typo_in_a_keyword_is_the_students_error_with_the_line(reports):
    step = result(reports, "gpt2_typo_in_a_keyword", "gpt2_small_attention")
    assert step.status == "error"
    assert "unexpected keyword argument 'qvk_bias'" in step.feedback


def test_a_raising_2d_wrapper_scores_zero(reports):
    step = result(reports, "wrapper_2d_raises", "wrapper_with_2d_output")
    assert (step.status, step.score) == ("error", 0)


@pytest.mark.parametrize("name, step_id", [
    ("mha_init_raises", "MultiHeadAttention"), ("mha_empty_init", "MultiHeadAttention"),
    ("causal_init_raises", "CausalAttention"), ("causal_empty_init", "CausalAttention"),
    ("v1_init_raises", "SelfAttention_v1"), ("v2_empty_init", "SelfAttention_v2"),
    ("wrapper_heads_in_a_plain_list", "MultiHeadAttentionWrapper"),
])
def test_a_constructor_that_builds_nothing_earns_nothing(reports, name, step_id):
    step = result(reports, name, step_id)
    assert step.score == 0, [(c.name, c.message) for c in step.checks if c.passed]
    assert not passed_checks(step)


def test_a_refusal_from_code_that_raises_on_everything_is_not_judged(reports):
    step = result(reports, "mha_init_raises", "MultiHeadAttention")
    raises = next(c for c in step.checks if c.name == "raises")
    assert not raises.judged and "no result on any valid case" in raises.message


def test_the_grader_says_what_it_needed_of_the_wrapper(reports):
    step = result(reports, "wrapper_heads_in_a_plain_list", "MultiHeadAttentionWrapper")
    assert "`heads` must be an nn.ModuleList of the modules it holds" in step.feedback
    assert "yours is a list" in step.feedback
    assert "your code raised" not in step.feedback


def test_arguments_in_another_order_are_passed_by_name(reports):
    step = result(reports, "mha_arguments_in_another_order", "MultiHeadAttention")
    assert step.status == "passed", step.feedback


def test_arguments_of_other_names_in_another_order_show_the_call_the_grader_made(reports):
    step = result(reports, "mha_other_names_in_another_order", "MultiHeadAttention")
    assert "MultiHeadAttention(d_in=3, d_out=2, context_length=6, dropout=0.0, num_heads=2)" in \
        step.feedback
    assert "by name where your signature has the contract's names" in step.feedback
    assert step.score < 12


@pytest.mark.parametrize("name, step_id, refused", [
    ("renormalized_returns_its_input", "renormalized_causal_weights", {"rows_sum_to_one"}),
    ("causal_weights_uniform", "causal_attention_weights",
     {"rows_sum_to_one", "zero_above_diagonal"}),
    ("causal_attention_constant_output", "CausalAttention",
     {"no_look_ahead", "batch_consistency", "dropout_train_eval"}),
    ("causal_attention_zero_output", "CausalAttention",
     {"no_look_ahead", "batch_consistency", "dropout_train_eval"}),
    ("mha_hands_back_a_slice_of_its_input", "MultiHeadAttention",
     {"no_look_ahead", "batch_consistency", "dropout_train_eval"}),
])
def test_outputs_that_do_nothing_collect_no_behaviour_check(reports, name, step_id, refused):
    step = result(reports, name, step_id)
    assert not passed_checks(step) & refused, step.feedback


@pytest.mark.parametrize("name", ["causal_forgot_dropout", "causal_layers_in_another_order",
                                  "causal_seeds_inside_init", "causal_mask_registered_4d"])
def test_a_registered_mask_is_never_called_unregistered(reports, name):
    step = result(reports, name, "CausalAttention")
    assert step.status == "failed"
    assert step.mistake != "mask_not_buffer", step.feedback
    assert "register_buffer" not in step.feedback


def test_forgetting_dropout_fails_the_dropout_check_only(reports):
    step = result(reports, "causal_forgot_dropout", "CausalAttention")
    assert {c.name for c in step.checks if not c.passed} == {"dropout_train_eval"}


def test_softmax_over_dim_1_is_named_the_same_in_the_full_run_and_the_replay(
        reports, rubric, tmp_path):
    full = result(reports, "softmax_over_dim_1", "attention_weights")
    assert full.mistake == "softmax_wrong_dim", full.feedback
    from conftest import grade

    path = tmp_path / "softmax_over_dim_1.py"
    path.write_text(SUBMISSIONS["softmax_over_dim_1"])
    replay = grade(path, rubric=rubric, steps=["attention_weights"], seed=52).steps[0]
    assert replay.mistake == "softmax_wrong_dim"


def test_dropout_written_by_hand_with_p_as_the_keep_probability_is_recognised(reports):
    step = result(reports, "dropout_keeps_with_probability_p", "attention_dropout")
    assert step.status == "failed"
    assert step.mistake == "dropout_keep_prob", step.feedback


def test_two_mistakes_made_together_are_both_named(reports):
    step = result(reports, "causal_unscaled_and_zero_filled", "CausalAttention")
    assert set(step.mistake.split("+")) == {"missing_scaling", "mask_zero_fill"}, step.feedback
    assert "two known mistakes together" in step.feedback


def test_a_class_of_such_submissions_grades_to_a_complete_gradebook(tmp_path, rubric):
    """Through the command line: exit 0 or 1, and a graded row for every submission."""
    import csv
    import subprocess
    import sys

    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("gpt2_forgets_its_return", "wrapper_2d_raises", "mha_init_raises",
                 "wrapper_heads_in_a_plain_list"):
        (folder / f"{name}.py").write_text(SUBMISSIONS[name])
    done = subprocess.run([sys.executable, "-m", "grader", "grade", str(folder), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stderr
    with open(tmp_path / "out" / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert all(row["status"] == "graded" for row in rows), rows


def test_every_case_replayed_names_what_the_full_run_names(rubric, tmp_path_factory):
    """`--step ID --seed S` names the same mistake as the full run, for every case of the
    one-mistake submissions of tests/test_mistakes.py (all replays graded in one batch)."""
    from test_mistakes import MISTAKES

    named = [m for m in MISTAKES if m.named]
    sources = {}
    for mistake in named:
        source, _ = re.subn(mistake.pattern, mistake.replacement, SOURCE, count=mistake.count)
        sources[mistake.name] = source
    replays = []
    for step in rubric.steps:
        seeds = [case.seed for case in step.cases]
        replays += [replay_case(step, case.seed) for case in step.cases if seeds.count(case.seed) == 1]
    replay_rubric = dataclasses.replace(rubric, steps=tuple(replays))
    reports = grade_many(replay_rubric, sources, tmp_path_factory.mktemp("replays"))
    for mistake in named:
        for replayed in reports[mistake.name].steps:
            if replayed.id in mistake.fails and replayed.status != "passed":
                assert replayed.mistake == mistake.named, (mistake.name, replayed.id,
                                                           replayed.feedback)
