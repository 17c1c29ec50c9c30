"""A `kind: procedure` step takes any arguments, not only modules: a tensor or a number travels as
a value, a module as a shell, and each comes back after the call (a tensor's values, a module's
parameters), compared with the reference's arguments after its own call. An argument that cannot
be sent is a rubric error naming it. Graded with a small course written for this test."""

import copy

import pytest
import torch
from conftest import grade_many
from small_course import write_course

from grader import RubricError, load_rubric
from grader.engine import prepare

REFERENCE = '''
import torch
import torch.nn as nn


def scale_(x, factor):
    """Multiply x by factor, in place."""
    x.mul_(factor)


class Holder(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.proj = nn.Linear(d_in, d_out)


class WithDropout(nn.Module):
    def __init__(self, d_in):
        super().__init__()
        self.proj = nn.Linear(d_in, d_in)
        self.dropout = nn.Dropout(0.1)


def shift_weights(holder, delta, times=1):
    """Add `delta` to holder.proj's weight, `times` times, in place."""
    with torch.no_grad():
        for _ in range(times):
            holder.proj.weight += delta


class Opaque:
    pass


def add_one_(x, tag=None):
    x.add_(1)


def make_opaque():
    return Opaque()
'''

STEPS = [
    {"id": "scale_", "title": "scale", "section": "1", "kind": "procedure",
     "signature": "scale_(x, factor)", "points": 2,
     "cases": [{"name": "by_three", "visible": True, "seed": 1,
                "args": {"x": {"randn": [3, 4]}, "factor": 3.0}}],
     "checks": [{"check": "shape", "points": 1}, {"check": "values", "points": 1}]},
    {"id": "shift_weights", "title": "shift", "section": "1", "kind": "procedure",
     "signature": "shift_weights(holder, delta, times=1)", "points": 2,
     "cases": [{"name": "twice", "seed": 2,
                "args": {"holder": {"module": "Holder", "init": {"d_in": 3, "d_out": 2}},
                         "delta": {"randn": [2, 3]}, "times": 2}}],
     "checks": [{"check": "shape", "points": 1}, {"check": "values", "points": 1}]},
]
RUBRIC = {"rubric": 1, "title": "procedures", "reference": "reference.py", "steps": STEPS}


def course(folder, rubric=RUBRIC):
    return load_rubric(write_course(folder, rubric, reference=REFERENCE))


OUT_OF_PLACE = REFERENCE.replace("x.mul_(factor)", "x = x * factor")
WRONG_FACTOR = REFERENCE.replace("x.mul_(factor)", "x.mul_(factor + 1)")
ONCE_ONLY = REFERENCE.replace("for _ in range(times):", "for _ in range(1):")
SUBMISSIONS = {"right": REFERENCE, "out_of_place": OUT_OF_PLACE, "wrong_factor": WRONG_FACTOR,
               "once_only": ONCE_ONLY}


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("procedures")
    return grade_many(course(folder), SUBMISSIONS, folder / "work")


def scores(report) -> dict[str, float]:
    return {step.id: step.score for step in report.steps}


def test_a_procedure_on_a_tensor_and_a_module_with_a_tensor_earns_full_marks(reports):
    assert scores(reports["right"]) == {"scale_": 2, "shift_weights": 2}, \
        [(s.id, s.feedback) for s in reports["right"].steps]


def test_a_procedure_that_rebinds_its_tensor_instead_of_changing_it_changed_nothing(reports):
    assert scores(reports["out_of_place"]) == {"scale_": 0, "shift_weights": 2}
    assert "x is its input handed back unchanged" in reports["out_of_place"].steps[0].feedback


def test_a_tensor_argument_changed_wrongly_fails_values_naming_it(reports):
    x = torch.randn(3, 4)
    assert not torch.allclose(x * 3, x * 4)  # the two factors give different tensors
    assert scores(reports["wrong_factor"]) == {"scale_": 1, "shift_weights": 2}
    assert "`by_three` (seed 1): x differs in 12 of 12 elements" in reports["wrong_factor"].steps[0].feedback


def test_a_plain_argument_reaches_the_procedure_by_name(reports):
    # times=2 is given: a shift applied once leaves holder.proj.weight off by delta
    assert scores(reports["once_only"]) == {"scale_": 2, "shift_weights": 1}
    assert "holder.proj.weight differs in" in reports["once_only"].steps[1].feedback


def test_a_module_a_shell_cannot_hold_is_a_rubric_error_naming_the_argument(tmp_path):
    rubric = copy.deepcopy(RUBRIC)
    rubric["steps"][1]["cases"][0]["args"]["holder"] = {"module": "WithDropout", "init": {"d_in": 3}}
    rubric["steps"][1]["cases"][0]["args"]["delta"] = {"randn": [3, 3]}
    loaded = course(tmp_path, rubric)
    with pytest.raises(RubricError) as info:
        prepare(loaded, list(loaded.steps))
    assert info.value.key_path == "steps.shift_weights.cases[0].args.holder"
    assert "its submodule `dropout` is a Dropout, not an nn.Linear" in str(info.value)
    assert "course fixture" in str(info.value)


def test_a_value_the_worker_cannot_be_sent_is_a_rubric_error_naming_the_argument(tmp_path):
    rubric = copy.deepcopy(RUBRIC)
    rubric["steps"] = [{"id": "add_one_", "title": "add", "section": "1", "kind": "procedure",
                        "signature": "add_one_(x, tag=None)", "points": 1,
                        "cases": [{"name": "tagged", "args": {"x": {"randn": [2]},
                                                             "tag": {"reference": "make_opaque"}}}],
                        "checks": [{"check": "values", "points": 1}]}]
    loaded = course(tmp_path, rubric)
    with pytest.raises(RubricError) as info:
        prepare(loaded, list(loaded.steps))
    assert info.value.key_path == "steps.add_one_.cases[0].args.tag"
    assert "cannot be sent to the worker (cannot send a value of type Opaque)" in str(info.value)
