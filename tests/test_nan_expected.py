"""NaN and infinities as expected values: where the reference's output is NaN (or an infinity) at
a place, the student's NaN (or the same infinity) there is equal; anywhere else it fails. And a
reference that fails its own case is a rubric error when the step is prepared, naming the case and
the check. Graded with a small course written for this test."""

import copy
import math

import pytest
import torch
from conftest import grade_many
from small_course import write_course

from grader import RubricError, load_rubric
from grader.engine import prepare

REFERENCE = '''
import math

import torch


def log_of(x):
    return torch.log(x)


def mean_of(values):
    return sum(values) / len(values) if values else math.nan


def weights(scores):
    return torch.softmax(scores, dim=-1)


def checked_sqrt(x):
    if x < 0:
        raise ValueError("no square root of a negative number")
    return math.sqrt(x)
'''

X = [[1.0, 0.0, -1.0, 2.0]]  # log: 0, -inf, NaN, log 2

STEPS = [
    {"id": "log_of", "title": "log", "section": "1", "kind": "function", "signature": "log_of(x)",
     "points": 3, "cases": [{"name": "edges", "visible": True, "args": {"x": {"tensor": X}}}],
     "checks": [{"check": "shape", "points": 1}, {"check": "dtype", "points": 1},
                {"check": "values", "points": 1}]},
    {"id": "mean_of", "title": "mean", "section": "1", "kind": "function",
     "signature": "mean_of(values)", "points": 2,
     "cases": [{"name": "empty", "visible": True, "args": {"values": {"value": []}}},
               {"name": "three", "args": {"values": {"value": [1.0, 2.0, 4.5]}}}],
     "checks": [{"check": "values", "points": 2}]},
]
RUBRIC = {"rubric": 1, "title": "nan", "reference": "reference.py", "steps": STEPS}


def course(folder, rubric=RUBRIC):
    return load_rubric(write_course(folder, rubric, reference=REFERENCE))


CLAMPED = REFERENCE.replace("torch.log(x)", "torch.log(x.clamp_min(1e-6))")
FLIPPED_INFINITY = REFERENCE.replace(
    "return torch.log(x)", "y = torch.log(x)\n    return torch.where(torch.isinf(y), -y, y)")
NAN_WHERE_FINITE = REFERENCE.replace(
    "return torch.log(x)", "y = torch.log(x)\n    y[0, 0] = math.nan\n    return y")
ZERO_FOR_EMPTY = REFERENCE.replace("else math.nan", "else 0.0")
SUBMISSIONS = {"right": REFERENCE, "clamped": CLAMPED, "flipped": FLIPPED_INFINITY,
               "nan_where_finite": NAN_WHERE_FINITE, "zero_for_empty": ZERO_FOR_EMPTY}


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nan")
    return grade_many(course(folder), SUBMISSIONS, folder / "work")


def scores(report) -> dict[str, float]:
    return {step.id: step.score for step in report.steps}


def test_nan_and_infinities_where_the_reference_gives_them_earn_full_marks(reports):
    expected = torch.log(torch.tensor(X))
    assert math.isinf(expected[0, 1]) and math.isnan(expected[0, 2])  # the case holds both
    assert scores(reports["right"]) == {"log_of": 3, "mean_of": 2}, \
        [(s.id, s.feedback) for s in reports["right"].steps]


def test_finite_values_where_the_reference_gives_minus_infinity_and_nan_fail_values(reports):
    assert scores(reports["clamped"]) == {"log_of": 2, "mean_of": 2}  # shape and dtype only


def test_plus_infinity_where_the_reference_gives_minus_infinity_fails_values(reports):
    assert scores(reports["flipped"]) == {"log_of": 2, "mean_of": 2}
    assert "differs in 1 of 4 elements" in reports["flipped"].steps[0].feedback


def test_nan_where_the_reference_is_finite_earns_nothing(reports):
    assert scores(reports["nan_where_finite"]) == {"log_of": 0, "mean_of": 2}
    assert "is NaN at [0, 0]" in reports["nan_where_finite"].steps[0].feedback


def test_a_number_where_the_reference_returns_nan_fails_values(reports):
    assert scores(reports["zero_for_empty"]) == {"log_of": 3, "mean_of": 0}
    assert "is 0.0; expected nan" in reports["zero_for_empty"].steps[1].feedback


def test_a_reference_whose_weights_are_nan_on_a_masked_row_is_refused_naming_case_and_check(tmp_path):
    rubric = copy.deepcopy(RUBRIC)
    rows = [[0.5, -1.0, 2.0], [-math.inf, -math.inf, -math.inf]]  # softmax of the second: NaN
    assert torch.isnan(torch.softmax(torch.tensor(rows), dim=-1)[1]).all()
    rubric["steps"] = [{
        "id": "weights", "title": "weights", "section": "1", "kind": "function",
        "signature": "weights(scores)", "points": 2,
        "cases": [{"name": "plain", "args": {"scores": {"randn": [2, 3]}}},
                  {"name": "masked_row", "args": {"scores": {"tensor": rows}}}],
        "checks": [{"check": "shape", "points": 1}, {"check": "rows_sum_to_one", "points": 1}]}]
    loaded = course(tmp_path, rubric)
    with pytest.raises(RubricError) as info:
        prepare(loaded, list(loaded.steps))
    assert info.value.key_path == "steps.weights.cases[1]"
    assert "the reference fails its own case 'masked_row': check 'rows_sum_to_one'" in str(info.value)


def test_a_reference_that_raises_another_exception_than_its_case_expects_is_refused(tmp_path):
    rubric = copy.deepcopy(RUBRIC)
    rubric["steps"] = [{
        "id": "checked_sqrt", "title": "sqrt", "section": "1", "kind": "function",
        "signature": "checked_sqrt(x)", "points": 2,
        "cases": [{"name": "four", "args": {"x": 4.0}},
                  {"name": "negative", "args": {"x": -1.0}, "raises": ["TypeError"]}],
        "checks": [{"check": "values", "points": 1}, {"check": "raises", "points": 1}]}]
    loaded = course(tmp_path, rubric)
    with pytest.raises(RubricError) as info:
        prepare(loaded, list(loaded.steps))
    assert info.value.key_path == "steps.checked_sqrt.cases[1]"
    assert "check 'raises' (checks[1]) says: `checked_sqrt(x=-1.0)` raised ValueError; expected " \
        "TypeError" in str(info.value)
