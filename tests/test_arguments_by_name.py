"""A case may leave out any argument, not only the last ones: `generate(..., eos_id=3)` without
`temperature` or `top_k` passes `eos_id` by name on both sides (it was dropped on both, in silence,
and a `generate` that ignores `eos_id` passed). Graded with a small course written for this test."""

import pytest
from conftest import grade_many
from small_course import write_course

from grader import load_rubric

REFERENCE = '''
import torch


def cut_at(ids, limit=None, eos_id=None):
    """The ids up to `limit` of them, stopping before the first `eos_id`."""
    ids = ids[:limit] if limit is not None else ids
    if eos_id is not None:
        stops = (ids == eos_id).nonzero()
        if len(stops):
            ids = ids[: int(stops[0])]
    return ids
'''

IGNORES_EOS = REFERENCE.replace("    if eos_id is not None:", "    if False:")
OTHER_NAMES = REFERENCE.replace("def cut_at(ids, limit=None, eos_id=None):",
                                "def cut_at(ids, n=None, stop=None):").replace(
    "limit", "n").replace("eos_id", "stop")

IDS = [5, 1, 3, 7, 3, 2]

RUBRIC = {
    "rubric": 1, "title": "arguments by name", "reference": "reference.py",
    "steps": [
        {"id": "cut_at", "title": "cut", "section": "1", "kind": "function",
         "signature": "cut_at(ids, limit=None, eos_id=None)", "points": 2,
         "cases": [{"name": "eos only", "visible": True,
                    "args": {"ids": {"tensor": IDS, "dtype": "int64"}, "eos_id": {"value": 3}}},
                   {"name": "limit only",
                    "args": {"ids": {"tensor": IDS, "dtype": "int64"}, "limit": {"value": 4}}}],
         "checks": [{"check": "values", "points": 2}]},
    ],
}


def reference_answer(ids, limit=None, eos_id=None):
    """The expected output, computed here without the grader."""
    ids = ids[:limit] if limit is not None else ids
    return ids[: ids.index(eos_id)] if eos_id in ids else ids


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("by_name")
    rubric = load_rubric(write_course(folder, RUBRIC, reference=REFERENCE))
    return grade_many(rubric, {"right": REFERENCE, "ignores_eos": IGNORES_EOS,
                               "other_names": OTHER_NAMES}, folder / "work")


def test_an_argument_after_one_left_out_reaches_both_sides(reports):
    assert reference_answer(IDS, eos_id=3) != IDS  # the case can tell the two apart
    report = reports["right"]
    assert report.score == report.max_score, [(s.id, s.feedback) for s in report.steps]


def test_a_generate_that_ignores_eos_id_fails_the_case_that_gives_it(reports):
    step = reports["ignores_eos"].steps[0]
    assert step.status == "failed"
    cut = len(reference_answer(IDS, eos_id=3))
    assert "case `eos only`" in step.feedback
    assert f"output is a tensor of shape ({len(IDS)},); expected shape ({cut},)" in step.feedback


def test_a_signature_with_other_names_is_told_which_parameter_it_lacks(reports):
    step = reports["other_names"].steps[0]
    assert step.status != "passed"
    assert "eos_id" in step.feedback, step.feedback
