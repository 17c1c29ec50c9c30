"""A function step runs under torch.no_grad() on both sides, unless its rubric says `grad: true`:
code that trains calls backward(), which needs autograd. Graded with a small course written for
this test, whose function takes one gradient-descent step."""

import copy

import pytest
import torch
from conftest import grade_many
from small_course import write_course

from grader import RubricError, load_rubric
from grader.engine import prepare

REFERENCE = '''
import torch


def descend(x, w, lr=0.1):
    """One step of gradient descent on ((x @ w) ** 2).mean(); returns the new weights."""
    w = w.clone().requires_grad_(True)
    loss = ((x @ w) ** 2).mean()
    loss.backward()
    return (w - lr * w.grad).detach()
'''

FORGOT_THE_MINUS = REFERENCE.replace("(w - lr * w.grad)", "(w + lr * w.grad)")

STEP = {"id": "descend", "title": "descend", "section": "1", "kind": "function",
        "signature": "descend(x, w, lr=0.1)", "points": 1, "grad": True,
        "cases": [{"name": "step", "visible": True, "seed": 3,
                   "args": {"x": {"randn": [4, 3]}, "w": {"randn": [3, 2]}}}],
        "checks": [{"check": "values", "points": 1}]}
RUBRIC = {"rubric": 1, "title": "training", "reference": "reference.py", "steps": [STEP]}


def course(folder, rubric):
    return write_course(folder, rubric, reference=REFERENCE)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train")
    return grade_many(load_rubric(course(folder, RUBRIC)),
                      {"right": REFERENCE, "ascends": FORGOT_THE_MINUS}, folder / "work")


def test_a_step_that_calls_backward_is_graded_with_grad_true(reports):
    x, w = torch.randn(4, 3), torch.randn(3, 2)  # the two sides differ, so the case can tell them apart
    gradient = 2 * x.T @ (x @ w) / (x @ w).numel()
    assert not torch.allclose(w - 0.1 * gradient, w + 0.1 * gradient)
    assert reports["right"].score == reports["right"].max_score, reports["right"].steps[0].feedback
    assert reports["ascends"].steps[0].status == "failed"


def test_without_grad_true_the_rubric_error_says_to_add_it(tmp_path):
    rubric = copy.deepcopy(RUBRIC)
    del rubric["steps"][0]["grad"]
    loaded = load_rubric(course(tmp_path, rubric))
    with pytest.raises(RubricError) as info:
        prepare(loaded, list(loaded.steps))  # the reference's answers, computed before any grading
    assert "steps.descend.cases[0]: the reference raised RuntimeError" in str(info.value)
    assert "unless the step says `grad: true`" in str(info.value)


def test_grad_on_a_class_step_is_a_rubric_error(tmp_path):
    rubric = copy.deepcopy(RUBRIC)
    rubric["steps"][0]["kind"] = "class"
    with pytest.raises(RubricError, match=r"steps\[0\]\.grad: means nothing for a class step"):
        load_rubric(course(tmp_path, rubric))
