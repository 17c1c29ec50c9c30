"""The course's code runs in the grader's process to compute what is expected, and the book's code
prints as it goes (chapter 5's `train_model_simple` calls `generate_and_print_sample`). What it
prints never reaches the grader's output: `check --format json` stays JSON, and the student's report
is all that `check` prints. A small course written for this test: its reference prints at import
and in its function, its known mistake prints too."""

import json
import subprocess
import sys

import yaml
from conftest import REPO_ROOT

REFERENCE = '''
import torch

print("REFERENCE LOADED")


def scale(x, factor=2.0):
    print("REFERENCE SAYS: step 1, loss 3.14")
    print("REFERENCE WARNS", file=__import__("sys").stderr)
    return x * factor
'''

MISTAKES = '''
from dataclasses import dataclass

print("MISTAKES LOADED")


@dataclass(frozen=True)
class Mistake:
    id: str
    title: str
    explanation: str
    hint: str
    implementations: dict


def adds(x, factor=2.0):
    print("MISTAKE SAYS: hello")
    return x + factor


MISTAKES = {"adds_instead": Mistake("adds_instead", "Adds the factor", "It adds.", "Multiply.",
                                    {"scale": (adds,)})}
'''

RUBRIC = {
    "rubric": 1, "title": "prints", "reference": "reference.py", "mistakes": "mistakes.py",
    "steps": [
        {"id": "scale", "title": "scale", "section": "1", "kind": "function",
         "signature": "scale(x, factor=2.0)", "points": 1,
         "cases": [{"name": "x", "visible": True, "seed": 1, "args": {"x": {"randn": [2, 3]}}}],
         "checks": [{"check": "values", "points": 1}], "mistakes": ["adds_instead"]},
    ],
}

SUBMISSION = "def scale(x, factor=2.0):\n    return x + factor\n"


def test_what_the_reference_prints_never_reaches_the_report(tmp_path):
    (tmp_path / "reference.py").write_text(REFERENCE)
    (tmp_path / "mistakes.py").write_text(MISTAKES)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(RUBRIC, sort_keys=False))
    submission = tmp_path / "student.py"
    submission.write_text(SUBMISSION)
    ran = subprocess.run([sys.executable, "-m", "grader", "check", str(submission), "--format", "json",
                          "--rubric", str(tmp_path / "config.yaml")],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 1, ran.stderr  # the submission adds: its step fails
    report = json.loads(ran.stdout)  # the whole of stdout is the report
    assert report["score"] == 0
    assert "adds_instead" in ran.stdout  # the known mistake ran, and was named
    for said in ("REFERENCE", "MISTAKE"):
        assert said not in ran.stdout and said not in ran.stderr


def test_what_a_course_check_prints_never_reaches_the_report(tmp_path):
    checks = '''
from grader.course import check


@check("always_talks", kinds=("function",))
def always_talks(step, rubric_check, outcomes):
    print("COURSE CHECK SAYS: judging")
    return "judged"
'''
    rubric = {**RUBRIC, "course_checks": "checks.py", "mistakes": "mistakes.py"}
    rubric["steps"] = [{**RUBRIC["steps"][0], "points": 2,
                        "checks": [{"check": "values", "points": 1}, {"check": "always_talks", "points": 1}]}]
    (tmp_path / "reference.py").write_text(REFERENCE)
    (tmp_path / "mistakes.py").write_text(MISTAKES)
    (tmp_path / "checks.py").write_text(checks)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(rubric, sort_keys=False))
    right = tmp_path / "right.py"
    right.write_text("def scale(x, factor=2.0):\n    return x * factor\n")
    ran = subprocess.run([sys.executable, "-m", "grader", "check", str(right), "--format", "json",
                          "--rubric", str(tmp_path / "config.yaml")],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert json.loads(ran.stdout)["score"] == 2
    assert "COURSE CHECK" not in ran.stdout + ran.stderr
