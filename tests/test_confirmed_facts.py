"""Facts the student's process reports score only when the grader confirmed them (issue 32).

A factory's parameter names, shapes and count earn points once its module, given the reference's
weights, gives the reference's output (or a known mistake's of a class it is built of) on the
grader's input; a refusal counts once a valid case built a module that ran; a procedure that
changed nothing earns nothing; a reply with fewer case results than cases asked for earns nothing.
Real submissions are graded in one batch, on the steps these rules touch; the forged replies are
judged directly (what a process that replaced the worker's step handler would send).
"""

import dataclasses
import re

import pytest
import torch
from conftest import SOLUTIONS, grade_many

from grader.engine import prepare
from grader.judge import Context, judge
from grader.replies import Answered, Built, ModuleReport

SOURCE = SOLUTIONS.read_text()
STEPS = ("transfer_weights_v2_to_v1", "wrapper_with_2d_output", "MultiHeadAttention",
         "gpt2_small_attention")


def replaced(source: str, old: str, new: str) -> str:
    assert old in source, old
    return source.replace(old, new, 1)


FUSED_GPT2 = SOURCE + '''

class FusedAttention(nn.Module):
    """The book's MultiHeadAttentionCombinedQKV: one qkv projection, its own names."""

    def __init__(self, d_in, d_out, num_heads, context_length, dropout=0.0, qkv_bias=False):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, d_out // num_heads
        self.qkv = nn.Linear(d_in, 3 * d_out, bias=qkv_bias)
        self.proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-2, -1)).masked_fill(self.mask.bool()[:t, :t], -torch.inf)
        weights = torch.softmax(scores / k.shape[-1] ** 0.5, dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(b, t, -1))


def gpt2_small_attention():
    return FusedAttention(768, 768, 12, 1024)
'''

SUBMISSIONS = {
    "honest": SOURCE,
    # the transfer that returns without touching sa_v1
    "transfer_does_nothing": replaced(
        SOURCE, "    with torch.no_grad():\n        sa_v1.W_query.copy_",
        "    return None\n    with torch.no_grad():\n        sa_v1.W_query.copy_"),
    # new nn.Parameter objects instead of copying in place: it changes them, and rightly
    "transfer_assigns_new_parameters": replaced(
        SOURCE, "        sa_v1.W_query.copy_(sa_v2.W_query.weight.T)  # (d_in, d_out)",
        "        sa_v1.W_query = nn.Parameter(sa_v2.W_query.weight.T.clone())"),
    # a wrapper of the right shape whose heads' outputs are thrown away: its forward is nobody's
    "wrapper_forward_gives_zeros": SOURCE + "\n\nMultiHeadAttentionWrapper.forward = "
                                            "lambda self, x: torch.zeros(*x.shape[:-1], 2)\n",
    # the factory's module is right, its parameters have other names: the count is confirmed
    "gpt2_fused_qkv": FUSED_GPT2,
    # a known mistake of MultiHeadAttention (no scaling) is that step's, not the factory's
    "mha_without_scaling": re.sub(r"\s*/\s*keys\.shape\[-1\]\s*\*\*\s*0\.5", "", SOURCE),
    # forward raises on every case, the constructor refuses d_out % num_heads != 0
    "mha_forward_always_raises": SOURCE + "\n\nMultiHeadAttention.forward = "
                                          "lambda self, x: x.view(-1, 7, 13)\n",
}


@pytest.fixture(scope="module")
def course(rubric):
    chosen = tuple(step for step in rubric.steps if step.id in STEPS)
    return dataclasses.replace(rubric, steps=chosen)


@pytest.fixture(scope="module")
def reports(course, tmp_path_factory):
    return grade_many(course, SUBMISSIONS, tmp_path_factory.mktemp("confirmed"))


def step_of(reports, name: str, step_id: str):
    return next(s for s in reports[name].steps if s.id == step_id)


def points(course, step_id: str, *checks: str) -> float:
    step = next(s for s in course.steps if s.id == step_id)
    return sum(c.points for c in step.checks if c.check in checks) if checks else step.points


def test_an_honest_submission_earns_every_confirmed_point(reports, course):
    for step_id in STEPS:
        result = step_of(reports, "honest", step_id)
        assert (result.status, result.score) == ("passed", points(course, step_id)), result.feedback


def test_a_transfer_that_changes_nothing_earns_nothing(reports):
    result = step_of(reports, "transfer_does_nothing", "transfer_weights_v2_to_v1")
    assert result.score == 0
    shape = next(c for c in result.checks if c.name == "shape")
    assert shape.judged and not shape.passed
    assert "changed nothing" in shape.message and "`sa_v1.W_query`" in shape.message


def test_a_transfer_that_assigns_new_parameters_still_counts(reports, course):
    result = step_of(reports, "transfer_assigns_new_parameters", "transfer_weights_v2_to_v1")
    assert result.score == points(course, "transfer_weights_v2_to_v1"), result.feedback


def test_a_factory_whose_module_computes_nobodys_output_earns_nothing(reports):
    result = step_of(reports, "wrapper_forward_gives_zeros", "wrapper_with_2d_output")
    assert result.score == 0
    for check in result.checks:
        assert not check.judged and "could not confirm" in check.message, check.message


def test_a_factory_with_other_names_has_its_count_confirmed_by_binding(reports, course):
    result = step_of(reports, "gpt2_fused_qkv", "gpt2_small_attention")
    checks = {c.name: c for c in result.checks}
    assert checks["param_count"].passed
    assert checks["structure"].judged and not checks["structure"].passed  # names are the contract's
    assert result.score == points(course, "gpt2_small_attention", "param_count")


def test_a_known_mistake_in_the_class_costs_the_factory_nothing(reports, course):
    assert step_of(reports, "mha_without_scaling", "MultiHeadAttention").status == "failed"
    result = step_of(reports, "mha_without_scaling", "gpt2_small_attention")
    assert (result.status, result.score) == ("passed", points(course, "gpt2_small_attention"))


def test_a_refusal_from_a_module_that_never_runs_is_not_judged(reports, course):
    result = step_of(reports, "mha_forward_always_raises", "MultiHeadAttention")
    # its constructor is the reference's: the names and the seeded values still count, no more
    assert result.score == points(course, "MultiHeadAttention", "parameters", "init")
    refusal = next(c for c in result.checks if c.name == "raises")
    assert not refusal.judged and "refusing invalid arguments shows nothing yet" in refusal.message


# ------------------------------------------------------------------------------ forged replies


@pytest.fixture(scope="module")
def factories(course):
    prepared, diagnoser = prepare(course, [s for s in course.steps if s.kind == "factory"])
    return {p.step.id: p for p in prepared}, diagnoser


def forged_report(expected, outputs) -> ModuleReport:
    """The book's parameters, buffers and attributes of the reference's module, sent by a process
    that built nothing, with the given forward outputs."""
    return ModuleReport(
        class_name="Forged",
        parameters=tuple((n, tuple(p.shape), "torch.float32") for n, p in expected.parameters.items()),
        buffers=tuple(expected.buffers.items()), tensor_attributes=(),
        attributes=dict(expected.attributes), outputs=outputs)


@pytest.mark.parametrize("outputs", ["none", "zeros"])
@pytest.mark.parametrize("step_id", ["wrapper_with_2d_output", "gpt2_small_attention"])
def test_a_forged_factory_module_earns_nothing(factories, step_id, outputs):
    prepared, diagnoser = factories
    step = prepared[step_id]
    cases = tuple(Built(forged_report(e, None if outputs == "none" else
                                      tuple(torch.zeros_like(o) for o in e.output)))
                  for e in step.expected)
    result = judge(step, Answered(cases), Context(None, diagnoser=diagnoser), 0.0)
    assert result.score == 0
    assert all(not c.judged and "could not confirm" in c.message for c in result.checks)


def test_the_same_report_with_the_predicted_output_would_pass(factories):
    """The control: what is refused above is the missing confirmation, not the report's form."""
    prepared, diagnoser = factories
    step = prepared["gpt2_small_attention"]
    cases = tuple(Built(forged_report(e, tuple(o.clone() for o in e.output))) for e in step.expected)
    result = judge(step, Answered(cases), Context(None, diagnoser=diagnoser), 0.0)
    assert result.score == step.step.points


def test_a_reply_with_no_case_results_earns_nothing(factories):
    prepared, diagnoser = factories
    step = prepared["wrapper_with_2d_output"]
    result = judge(step, Answered(()), Context(None, diagnoser=diagnoser), 0.0)
    assert (result.status, result.score) == ("error", 0)
    assert "0 case results" in result.feedback


def test_a_reply_with_fewer_case_results_than_cases_earns_nothing(factories):
    prepared, diagnoser = factories
    step = prepared["wrapper_with_2d_output"]
    first = step.expected[0]
    one = Built(forged_report(first, tuple(o.clone() for o in first.output)))
    result = judge(step, Answered((one,)), Context(None, diagnoser=diagnoser), 0.0)
    assert (result.status, result.score) == ("error", 0)

