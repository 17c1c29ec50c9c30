"""The course-check API (issue 28, item 8): a course's own checks read a case's inputs, the
reference's answers and the student's value through grader.course's helpers, each documented
with an example. Graded with a small course written for this test."""

import pytest
import torch
import yaml
from conftest import grade_many

import grader.course
from grader import load_rubric
from grader.cases import Expected
from grader.checks import Outcome
from grader.course import HELPERS, forward_inputs, inputs_of, obtained_output, raised
from grader.replies import Built, ModuleReport, Raised, RaisedError, Returned
from grader.rubric import Case

REFERENCE = '''
import torch


def extend(idx, n):
    """The prompt and `n` new ids after it: each one more than the last."""
    return torch.cat([idx, idx[:, -1:] + 1 + torch.arange(n)], dim=1)
'''

DROPS_THE_PROMPT = REFERENCE.replace("torch.cat([idx, idx[:, -1:] + 1 + torch.arange(n)], dim=1)",
                                     "idx[:, -1:] + 1 + torch.arange(n)")
OFF_BY_ONE = REFERENCE.replace("idx[:, -1:] + 1 +", "idx[:, -1:] + 2 +")

CHECKS = '''
import torch

from grader.course import (CheckFailed, check, compare, describe_value, expected_and_obtained,
                           inputs_of, obtained_output)


@check("keeps_the_prompt", kinds=("function",), evidence="returned")
def keeps_the_prompt(step, rubric_check, outcomes):
    for outcome in outcomes:
        prompt, ids = inputs_of(outcome)["idx"], obtained_output(outcome)
        if not isinstance(ids, torch.Tensor) or ids.shape[1] < prompt.shape[1]:
            raise CheckFailed(f"{outcome.title}: expected the prompt and more, got "
                              f"{describe_value(ids)}")
        if not torch.equal(ids[:, : prompt.shape[1]], prompt):
            raise CheckFailed(f"{outcome.title}: the output does not start with the prompt")
    return "the prompt is kept"


@check("new_ids_close", kinds=("function",), evidence="returned", after=("keeps_the_prompt",))
def new_ids_close(step, rubric_check, outcomes):
    for outcome in outcomes:
        for label, want, got in expected_and_obtained(step, outcome):
            difference = compare(want.float(), got.float(), step.atol, step.rtol)
            if difference is not None:
                raise CheckFailed(f"{outcome.title}: {label} {difference.text(True)}")
    return "the new ids are the reference's"
'''

RUBRIC = {
    "rubric": 1, "title": "course api", "reference": "reference.py",
    "course_checks": "course_checks.py",
    "steps": [{"id": "extend", "title": "extend", "section": "1", "kind": "function",
               "signature": "extend(idx, n)", "points": 2,
               "cases": [{"name": "three new", "visible": True,
                          "args": {"idx": {"tensor": [[4, 7]], "dtype": "int64"}, "n": 3}}],
               "checks": [{"check": "keeps_the_prompt", "points": 1},
                          {"check": "new_ids_close", "points": 1}]}],
}


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("course_api")
    (folder / "reference.py").write_text(REFERENCE)
    (folder / "course_checks.py").write_text(CHECKS)
    (folder / "config.yaml").write_text(yaml.safe_dump(RUBRIC, sort_keys=False))
    return grade_many(load_rubric(folder / "config.yaml"),
                      {"right": REFERENCE, "drops_the_prompt": DROPS_THE_PROMPT,
                       "off_by_one": OFF_BY_ONE}, folder / "work")


def scores(report) -> dict[str, float]:
    return {c.name: c.score for c in report.steps[0].checks}


def test_a_course_check_reading_the_inputs_by_name_passes_a_right_extend(reports):
    assert scores(reports["right"]) == {"keeps_the_prompt": 1, "new_ids_close": 1}


def test_an_extend_that_drops_the_prompt_fails_the_check_that_reads_the_prompt(reports):
    prompt = [4, 7]
    assert DROPS_THE_PROMPT != REFERENCE and len(prompt) == 2
    assert scores(reports["drops_the_prompt"]) == {"keeps_the_prompt": 0, "new_ids_close": 0}
    feedback = reports["drops_the_prompt"].steps[0].feedback
    assert "the output does not start with the prompt" in feedback, feedback


def test_an_extend_off_by_one_keeps_the_prompt_and_fails_the_comparison(reports):
    assert scores(reports["off_by_one"]) == {"keeps_the_prompt": 1, "new_ids_close": 0}


def outcome_of(obtained, *, args=(), names=(), inputs=()):
    case = Case(name="c", visible=True, seed=0, args={})
    return Outcome(Expected(case, list(args), arg_names=tuple(names), inputs=list(inputs)), obtained)


def test_the_helpers_read_what_the_worker_and_the_reference_gave():
    x = torch.ones(2)
    returned = outcome_of(Returned(x * 3), args=[x, 5], names=("x", "n"))
    assert inputs_of(returned) == {"x": x, "n": 5}
    assert torch.equal(obtained_output(returned), x * 3)
    assert raised(returned) is None
    failed = outcome_of(Raised(RaisedError("ValueError", "d_out must be divisible")))
    assert raised(failed) == "ValueError" and obtained_output(failed) is None
    module = ModuleReport("M", (), (), (), {}, outputs=(x,))
    built = outcome_of(Built(module), inputs=[x])
    assert obtained_output(built) == (x,) and forward_inputs(built) == [x]


def test_every_helper_has_an_example_in_the_module_docstring():
    doc = grader.course.__doc__
    for name in HELPERS:
        assert name in grader.course.__all__
        examples = [line for line in doc.splitlines() if f"{name}(" in line]
        assert len(examples) >= 2, name  # where it is listed, and a line that uses it
