"""The state a function leaves its arguments in, checked by the opt-in `arguments_after` check: a
model left in evaluation mode after an evaluation, parameters a training step did not change. The
worker sends each argument back after the call (a module's training mode and parameters, a
tensor's values) and the grader compares them with the reference's arguments after its own call.
Graded with a small course written for this test."""

import torch
from conftest import grade_many
from small_course import TINY_MODEL_FIXTURES, write_course

from grader import load_rubric

FIXTURES = TINY_MODEL_FIXTURES

REFERENCE = '''
import torch


def evaluate(model, x):
    model.eval()
    with torch.no_grad():
        loss = model(x).pow(2).mean()
    model.train()
    return loss


def train_step(model, x, lr=0.1):
    loss = model(x).pow(2).mean()
    loss.backward()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter -= lr * parameter.grad
    return loss.detach()


def scale_into(x, out):
    out.copy_(2 * x)
    return out.sum()
'''

MODEL = {"fixture": "fixtures.py:Tiny", "init": {"d": 3}}
STEPS = [
    {"id": "evaluate", "title": "evaluate", "section": "1", "kind": "function",
     "signature": "evaluate(model, x)", "points": 2,
     "cases": [{"name": "batch", "visible": True, "seed": 1,
                "args": {"model": MODEL, "x": {"randn": [4, 3]}}}],
     "checks": [{"check": "values", "points": 1}, {"check": "arguments_after", "points": 1}]},
    {"id": "train_step", "title": "train", "section": "1", "kind": "function", "grad": True,
     "signature": "train_step(model, x, lr=0.1)", "points": 2,
     "cases": [{"name": "one_step", "seed": 2, "args": {"model": MODEL, "x": {"randn": [4, 3]}}}],
     "checks": [{"check": "values", "points": 1}, {"check": "arguments_after", "points": 1}]},
    {"id": "scale_into", "title": "scale", "section": "1", "kind": "function",
     "signature": "scale_into(x, out)", "points": 2,
     "cases": [{"name": "pair", "seed": 3, "args": {"x": {"randn": [2, 2]}, "out": {"zeros": [2, 2]}}}],
     "checks": [{"check": "values", "points": 1}, {"check": "arguments_after", "points": 1}]},
]
RUBRIC = {"rubric": 1, "title": "effects", "reference": "reference.py", "steps": STEPS}

LEFT_IN_EVAL = REFERENCE.replace("    model.train()\n    return loss\n", "    return loss\n")
NO_UPDATE = REFERENCE.replace("parameter -= lr * parameter.grad", "pass")
SUM_ONLY = REFERENCE.replace("    out.copy_(2 * x)\n    return out.sum()", "    return (2 * x).sum()")


def reports(tmp_path):
    rubric = load_rubric(write_course(tmp_path, RUBRIC, reference=REFERENCE, fixtures=FIXTURES))
    return grade_many(rubric, {"right": REFERENCE, "left_in_eval": LEFT_IN_EVAL,
                               "no_update": NO_UPDATE, "sum_only": SUM_ONLY}, tmp_path / "work")


def test_what_functions_leave_their_arguments_in_is_checked_against_the_reference(tmp_path):
    graded = reports(tmp_path)
    scores = {name: {s.id: s.score for s in report.steps} for name, report in graded.items()}
    steps = {name: {s.id: s for s in report.steps} for name, report in graded.items()}
    assert scores["right"] == {"evaluate": 2, "train_step": 2, "scale_into": 2}, \
        [(s.id, s.feedback) for s in graded["right"].steps]
    # the same loss, but the model is left in evaluation mode: values only
    assert scores["left_in_eval"] == {"evaluate": 1, "train_step": 2, "scale_into": 2}
    assert "`model` is left in evaluation mode; the reference leaves it in training mode" in \
        steps["left_in_eval"]["evaluate"].feedback
    # the same loss, but no parameter moved: a step of lr 0.1 changes every weight
    x = torch.randn(4, 3)
    layer = torch.nn.Linear(3, 3)
    layer(x).pow(2).mean().backward()
    assert (layer.weight.grad != 0).all()
    assert scores["no_update"] == {"evaluate": 2, "train_step": 1, "scale_into": 2}
    assert "`model.proj.weight` differs" in steps["no_update"]["train_step"].feedback
    # the right sum, but the output tensor it was given is left as zeros
    assert scores["sum_only"] == {"evaluate": 2, "train_step": 2, "scale_into": 1}
    assert "`out` differs" in steps["sum_only"]["scale_into"].feedback
