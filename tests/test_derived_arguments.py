"""Arguments built from other arguments of the same call: `{optimizer: AdamW, params: model, ...}`
is a torch.optim optimizer over the parameters of the case's `model` argument, built on both sides
after the other arguments, over the very module that call is given. Graded with a small course
written for this test, whose function trains a model for two steps with the optimizer it gets."""

import copy

import pytest
from conftest import grade_many
from small_course import TINY_MODEL_FIXTURES, write_course

from grader import RubricError, load_rubric
from grader.engine import prepare

FIXTURES = TINY_MODEL_FIXTURES

REFERENCE = '''
import torch


def train_steps(model, optimizer, x, steps=2):
    """`steps` steps of the optimizer on (model(x) ** 2).mean(); the last loss."""
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        optimizer.step()
    return loss.detach()
'''

STEP = {"id": "train_steps", "title": "train", "section": "1", "kind": "function", "grad": True,
        "signature": "train_steps(model, optimizer, x, steps=2)", "points": 2,
        "cases": [{"name": "adamw", "visible": True, "seed": 4,
                   "args": {"model": {"fixture": "fixtures.py:Tiny", "init": {"d": 3}},
                            "optimizer": {"optimizer": "AdamW", "params": "model", "lr": 0.05,
                                          "weight_decay": 0.1},
                            "x": {"randn": [4, 3]}, "steps": 3}}],
        "checks": [{"check": "values", "points": 1}, {"check": "arguments_after", "points": 1}]}
RUBRIC = {"rubric": 1, "title": "derived", "reference": "reference.py", "steps": [STEP]}

NO_ZERO_GRAD = REFERENCE.replace("        optimizer.zero_grad()\n", "")
OWN_OPTIMIZER = REFERENCE.replace('    for _ in range(steps):',
                                  '    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)\n'
                                  '    for _ in range(steps):')
STEPS_IGNORED = REFERENCE.replace("range(steps)", "range(2)")


def course(folder, rubric=RUBRIC):
    return load_rubric(write_course(folder, rubric, reference=REFERENCE, fixtures=FIXTURES))


def test_an_optimizer_over_the_model_argument_trains_the_model_the_call_gets(tmp_path):
    graded = grade_many(course(tmp_path), {"right": REFERENCE, "no_zero_grad": NO_ZERO_GRAD,
                                           "own_optimizer": OWN_OPTIMIZER,
                                           "steps_ignored": STEPS_IGNORED}, tmp_path / "work")
    scores = {name: report.steps[0].score for name, report in graded.items()}
    assert scores["right"] == 2, graded["right"].steps[0].feedback
    # the gradients pile up: the last loss is computed before the last step, on parameters the
    # first steps moved differently, and the parameters after differ
    assert scores["no_zero_grad"] == 0, graded["no_zero_grad"].steps[0].feedback
    assert "`model.proj.weight` differs" in graded["no_zero_grad"].steps[0].feedback
    assert scores["own_optimizer"] == 0  # SGD is not the AdamW the call gave
    assert scores["steps_ignored"] == 0  # steps=3 reaches the call by name


@pytest.mark.parametrize("spec, where, problem", [
    ({"optimizer": "AdamW", "params": "x", "lr": 0.1}, "args.optimizer.params",
     "names 'x', which is not a module argument of this case"),
    ({"optimizer": "Adamw", "params": "model"}, "args.optimizer",
     "'Adamw' is not an optimizer of torch.optim"),
    ({"optimizer": "AdamW", "params": "model", "lr": -1.0}, "args.optimizer",
     "torch.optim.AdamW refuses these options: Invalid learning rate"),
])
def test_an_optimizer_spec_that_cannot_be_built_is_a_rubric_error(tmp_path, spec, where, problem):
    rubric = copy.deepcopy(RUBRIC)
    rubric["steps"][0]["cases"][0]["args"]["optimizer"] = spec
    loaded = course(tmp_path, rubric)
    with pytest.raises(RubricError) as info:
        prepare(loaded, list(loaded.steps))
    assert info.value.key_path == f"steps.train_steps.cases[0].{where}"
    assert problem in str(info.value)
