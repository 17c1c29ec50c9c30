"""The worker is asked for every step at once (by index, in a class: each worker inherits the
class's inputs from the zygote) and answers each as it finishes it: the limits still hold step by
step and for the submission in all, and a step that hangs or kills its worker costs only itself."""

import time

import pytest
import yaml
from conftest import RUBRIC, SOLUTIONS, grade_many, statuses

from grader.engine import grade
from grader.rubric import load_rubric

SOURCE = SOLUTIONS.read_text()
SLOW = """

import time as _t
_f_{name} = {name}
_slept_{name} = []

def {name}(*a, **k):  # slow once, on the step's first case
    if not _slept_{name}:
        _slept_{name}.append(True)
        _t.sleep({seconds})
    return _f_{name}(*a, **k)
"""


def rubric_with(folder, **defaults):
    data = yaml.safe_load(RUBRIC.read_text())
    data["reference"] = str(SOLUTIONS)
    data["mistakes"] = str(SOLUTIONS.parent / "mistakes.py")
    data["defaults"].update(load_timeout=8, **defaults)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_rubric(path)


@pytest.fixture(scope="module")
def budget_rubric(tmp_path_factory):
    """The course rubric with 4 s a step and 5 s for a whole submission."""
    return rubric_with(tmp_path_factory.mktemp("rubric"), step_timeout=4, submission_timeout=5)


@pytest.fixture(scope="module")
def quick_rubric(tmp_path_factory):
    """The course rubric with 3 s a step and a minute for a whole submission."""
    return rubric_with(tmp_path_factory.mktemp("rubric"), step_timeout=3, submission_timeout=60)


def slowed(*names_and_seconds) -> str:
    source = SOURCE
    for name, seconds in names_and_seconds:
        source += SLOW.format(name=name, seconds=seconds)
    return source


def test_the_submission_budget_holds_across_steps_asked_at_once(budget_rubric, tmp_path):
    # 2 s in the first step and 3.5 s in the second: the 5 s run out during the second, which is
    # stopped, and every step after it is "not run", in a class and in a single check alike
    source = slowed(("softmax_naive", 2), ("attention_scores", 3.5))
    started = time.monotonic()
    batch = grade_many(budget_rubric, {"slow": source}, tmp_path / "class")["slow"]
    path = tmp_path / "slow.py"
    path.write_text(source)
    single = grade(path, rubric=budget_rubric)
    assert time.monotonic() - started < 60
    for report in (batch, single):
        got = statuses(report)
        assert got["softmax_naive"] == "passed"
        assert got["attention_scores"] == "timeout"
        later = report.steps[[s.id for s in report.steps].index("attention_scores") + 1:]
        assert later and all(s.status == "timeout" and "used up its 5 s in all" in s.feedback
                             for s in later), [(s.id, s.status, s.feedback) for s in later]


def test_a_step_that_hangs_in_the_middle_costs_only_itself(quick_rubric, tmp_path):
    # the worker is killed in the middle of the steps it was asked for; a fresh one answers the
    # steps after it, which pass
    source = SOURCE + "\n\ndef attention_scores(inputs):\n    while True:\n        pass\n"
    batch = grade_many(quick_rubric, {"hangs": source}, tmp_path / "class")["hangs"]
    path = tmp_path / "hangs.py"
    path.write_text(source)
    single = grade(path, rubric=quick_rubric)
    for report in (batch, single):
        got = statuses(report)
        assert got["attention_scores"] == "timeout"
        hung = next(s for s in report.steps if s.id == "attention_scores")
        assert "did not finish within 3 s" in hung.feedback
        assert {s: g for s, g in got.items() if g != "passed"} == {"attention_scores": "timeout"}


def test_inputs_changed_in_place_by_one_step_are_fresh_for_the_next_student(tmp_path):
    # the class's inputs live in the zygote and every worker inherits them: a student whose steps
    # overwrite their inputs leaves the next student's inputs as they were
    vandal = SOURCE + (
        "\n\n_s = softmax_naive\n\ndef softmax_naive(x):\n    out = _s(x)\n    x.zero_()\n"
        "    return out\n")
    rubric = load_rubric(RUBRIC)
    reports = grade_many(rubric, {f"s{i}": vandal if i % 2 == 0 else SOURCE
                                  for i in range(6)}, tmp_path / "class", jobs=1)
    for name, report in reports.items():
        assert statuses(report)["softmax_naive"] == "passed", name
        assert report.score == report.max_score, name
