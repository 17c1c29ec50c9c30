"""`attention-grader course-check` tells the author what students checking themselves cannot see
(issue 28, item 11): a known mistake only hidden cases catch (the bundle grades visible cases
only), one no case catches, a case no check looks at. Run through the real command on a small
course written for this test, whose findings are computed here from the cases' numbers."""

import pytest
import yaml

from grader.cli import main

REFERENCE = '''
import torch


def double(x):
    return x * 2
'''

MISTAKES = '''
import torch
from types import SimpleNamespace


def _mistake(id, variant):
    return SimpleNamespace(id=id, title=id, explanation=id, hint=id,
                           implementations={"double": (variant,)})


def plus_two(x):
    return x + 2


def absolute(x):
    return x.abs() * 2


def triple(x):
    return x * 3


MISTAKES = {m.id: m for m in (_mistake("plus_two", plus_two), _mistake("absolute", absolute),
                              _mistake("triple", triple))}
'''

# name -> (visible, x)
CASES = {"two": (True, 2.0), "three": (False, 3.0), "four": (False, 4.0)}
ANSWERS = {"plus_two": lambda x: x + 2, "absolute": lambda x: abs(x) * 2, "triple": lambda x: x * 3}


def course(folder, *, mistakes, idle_case=False, visible=("two",)):
    cases = [{"name": name, "visible": name in visible, "args": {"x": {"tensor": [x]}}}
             for name, (_, x) in CASES.items()]
    if idle_case:  # a refusal case, but no `raises` check looks at it
        cases.append({"name": "refuses_none", "args": {"x": {"value": None}},
                      "raises": ["TypeError"]})
    data = {"rubric": 1, "title": "lint", "reference": "reference.py", "mistakes": "mistakes.py",
            "steps": [{"id": "double", "title": "double", "section": "1", "kind": "function",
                       "signature": "double(x)", "points": 2, "cases": cases,
                       "checks": [{"check": "values", "points": 2}], "mistakes": list(mistakes)}]}
    (folder / "reference.py").write_text(REFERENCE)
    (folder / "mistakes.py").write_text(MISTAKES)
    (folder / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return str(folder / "config.yaml")


def catching(mistake: str) -> list[str]:
    """The cases whose answer tells the mistake from the reference, computed here."""
    return [name for name, (_, x) in CASES.items() if ANSWERS[mistake](x) != x * 2]


def course_check(capsys, rubric: str) -> tuple[int, list[str]]:
    code = main(["course-check", "--rubric", rubric])
    return code, capsys.readouterr().out.splitlines()


def test_a_mistake_only_a_hidden_case_catches_is_reported_with_its_cases(tmp_path, capsys):
    assert catching("plus_two") == ["three", "four"]  # 2 + 2 == 2 * 2: the visible case misses it
    code, lines = course_check(capsys, course(tmp_path, mistakes=["plus_two"]))
    assert code == 1
    (line,) = [line for line in lines if "plus_two" in line]
    assert line.startswith("double: hidden only: mistake `plus_two`")
    assert "visible case(s) two" in line and "hidden case(s) three, four catch it" in line


def test_a_mistake_no_case_catches_is_reported_as_uncaught(tmp_path, capsys):
    assert catching("absolute") == []  # every case's x is positive
    code, lines = course_check(capsys, course(tmp_path, mistakes=["absolute"]))
    assert code == 1
    assert any(line.startswith("double: uncaught: mistake `absolute` gets full marks on every case")
               for line in lines), lines


def test_a_step_without_visible_cases_hides_every_mistake(tmp_path, capsys):
    assert "two" in catching("triple")
    code, lines = course_check(capsys, course(tmp_path, mistakes=["triple"], visible=()))
    assert code == 1
    assert any("hidden only: mistake `triple`: the step has no visible case" in line
               for line in lines), lines


def test_a_case_no_check_looks_at_is_reported(tmp_path, capsys):
    code, lines = course_check(capsys, course(tmp_path, mistakes=["triple"], idle_case=True))
    assert code == 1
    assert any(line.startswith("double: no check: case `refuses_none` reaches no check")
               for line in lines), lines
    assert not any("triple" in line for line in lines)  # the visible case catches it


def test_a_course_whose_visible_cases_catch_every_mistake_passes(tmp_path, capsys):
    assert "two" in catching("triple")
    code, lines = course_check(capsys, course(tmp_path, mistakes=["triple"]))
    assert code == 0, lines
    assert len(lines) == 1 and "every known mistake loses points on a visible case" in lines[0]


@pytest.mark.parametrize("rubric", ["config.yaml", "examples/chapter4/config.yaml"])
def test_the_courses_of_this_repository_are_checked(capsys, rubric):
    from conftest import REPO_ROOT

    code, lines = course_check(capsys, str(REPO_ROOT / rubric))
    assert code in (0, 1)
    assert all(line.split(":")[0] for line in lines)
    assert (code == 1) == any(": hidden only: " in line or ": uncaught: " in line
                              or ": no check: " in line for line in lines)


def test_a_student_bundles_rubric_is_refused_with_what_to_give(tmp_path, capsys):
    rubric = course(tmp_path, mistakes=["triple"])
    (tmp_path / "exercises").mkdir()
    (tmp_path / "exercises" / "reference.py").write_text("def double(x):\n    raise NotImplementedError\n")
    assert main(["bundle", "--rubric", rubric, "--out", str(tmp_path / "bundle")]) == 0
    capsys.readouterr()
    assert main(["course-check", "--rubric", str(tmp_path / "bundle" / "config.yaml")]) == 2
    assert "give it the course's own rubric" in capsys.readouterr().err
