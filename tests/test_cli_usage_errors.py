"""A mistake in the command line is a usage error: exit 2 and one line saying what is wrong and what
to do, never a traceback, never a report that scores a typo; every subcommand's --help ends with
examples."""

import subprocess
import sys

import pytest
from conftest import REPO_ROOT


def attention_grader(*args: str, cwd=REPO_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_check_of_a_path_that_does_not_exist_is_a_usage_error(tmp_path):
    ran = attention_grader("check", str(tmp_path / "atention.ipynb"))
    assert ran.returncode == 2
    assert ran.stdout == ""  # no report: nothing was graded
    assert ran.stderr.strip() == (f"attention-grader: {tmp_path / 'atention.ipynb'}: no such file; give "
                                  "the path of the .py or .ipynb file to grade")


def test_check_of_a_folder_is_a_usage_error(tmp_path):
    ran = attention_grader("check", str(tmp_path))
    assert ran.returncode == 2 and ran.stdout == ""
    assert "is a folder; give the .py or .ipynb file inside it to grade" in ran.stderr


def test_check_of_an_empty_file_is_still_graded_as_unreadable(tmp_path):
    (tmp_path / "attention.py").write_text("")
    ran = attention_grader("check", str(tmp_path / "attention.py"))
    assert ran.returncode == 1, ran.stderr  # a submission, scored 0 with the reason
    assert "Score: 0 /" in ran.stdout


@pytest.mark.parametrize("command", [["bundle", "--out"], ["grade", "examples/student_notebook.ipynb",
                                                           "--out"]])
def test_an_out_folder_that_cannot_be_made_is_one_line_and_exit_2(tmp_path, command):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    ran = attention_grader(*command, str(blocked / "inside"))
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert "Traceback" not in ran.stderr
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attention-grader: ") and str(blocked) in lines[0]


@pytest.mark.parametrize("command", ["check", "gradescope", "gradescope-run", "grade", "merge",
                                     "export", "bundle", "sandbox"])
def test_every_subcommands_help_ends_with_an_example_of_itself(command):
    ran = attention_grader(command, "--help")
    assert ran.returncode == 0
    examples = ran.stdout.split("examples:\n", 1)
    assert len(examples) == 2, ran.stdout
    assert all(line.strip().startswith(f"attention-grader {command}")
               for line in examples[1].splitlines() if line.strip())
