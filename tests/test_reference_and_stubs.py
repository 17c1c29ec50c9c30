"""The two ends of the scale: the reference solutions score full marks, the stubs score zero."""

import json
import subprocess
import sys

import pytest
from conftest import EXERCISES, REPO_ROOT, RUBRIC, SOLUTIONS, grade, solutions_notebook, statuses


def test_reference_solutions_py_score_full_marks(rubric):
    report = grade(SOLUTIONS, rubric=rubric)
    assert [s.id for s in report.steps] == [s.id for s in rubric.steps]
    assert set(statuses(report).values()) == {"passed"}, [s.feedback for s in report.steps if not s.passed]
    assert report.score == report.max_score == sum(s.points for s in rubric.steps)


def test_reference_solutions_notebook_score_full_marks(rubric, tmp_path):
    report = grade(solutions_notebook(tmp_path / "solutions.ipynb"), rubric=rubric)
    assert report.score == report.max_score
    assert all(step.passed for step in report.steps)


def test_untouched_stubs_score_zero_with_not_implemented_everywhere(rubric):
    for stub in (EXERCISES / "attention.py", EXERCISES / "attention.ipynb"):
        report = grade(stub, rubric=rubric)
        assert report.score == 0
        assert set(statuses(report).values()) == {"not_implemented"}, stub
        step = report.steps[0]
        assert "NotImplementedError" in step.feedback


def test_stub_feedback_points_at_the_line_to_replace():
    report = grade(EXERCISES / "attention.ipynb", rubric=RUBRIC)
    step = next(s for s in report.steps if s.id == "softmax_naive")
    assert "cell" in step.feedback and "line" in step.feedback


def test_cli_exit_codes_and_json_report():
    def run(*args):
        return subprocess.run([sys.executable, "-m", "grader", *args], capture_output=True,
                              text=True, cwd=REPO_ROOT, timeout=120)

    full = run("check", str(SOLUTIONS), "--format", "json")
    assert full.returncode == 0, full.stderr
    data = json.loads(full.stdout)
    assert data["score"] == data["max_score"] > 0
    step = data["steps"][0]
    assert {"id", "status", "score", "max_score", "mistake", "feedback"} <= set(step)
    assert step["mistake"] is None

    stubs = run("check", str(EXERCISES / "attention.py"))
    assert stubs.returncode == 1
    assert "Score: 0 / " in stubs.stdout and "not implemented" in stubs.stdout

    bad_usage = run("check")
    assert bad_usage.returncode == 2
    assert "submission" in bad_usage.stderr


def test_markdown_report_has_a_table_row_per_step(rubric):
    from grader.report import render_markdown

    text = render_markdown(grade(EXERCISES / "attention.py", rubric=rubric))
    for step in rubric.steps:
        assert f"`{step.id}`" in text
    assert f"**Score: 0 / {sum(s.points for s in rubric.steps):g}**" in text


def test_bad_inputs_get_one_clear_message_and_a_complete_report(tmp_path, rubric):
    cases = {
        "absent.ipynb": None,
        "folder": "dir",
        "notes.txt": "print('hi')",
        "empty.py": "",
        "broken.ipynb": '{"cells": [',
        "latin1.py": "# caf\xe9\n".encode("latin-1"),
        "not_a_notebook.ipynb": '{"hello": 1}',
        "cells_not_a_list.ipynb": '{"nbformat": 4, "cells": {"a": 1}}',
        "source_not_text.ipynb": '{"nbformat": 4, "cells": [{"cell_type": "code", "source": 5}]}',
        "unknown_version.ipynb": '{"nbformat": 99, "cells": []}',
    }
    expected = {
        "absent.ipynb": "no such file",
        "folder": "is a folder",
        "notes.txt": "unknown file type '.txt'",
        "empty.py": "is empty",
        "broken.ipynb": "its JSON is broken at line 1",
        "latin1.py": "not UTF-8",
        "not_a_notebook.ipynb": "not a Jupyter notebook",
        "cells_not_a_list.ipynb": "its `cells` is not a list",
        "source_not_text.ipynb": "the source of cell 1 is not text",
        "unknown_version.ipynb": "not a valid notebook",
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content == "dir":
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content)
        report = grade(path, rubric=rubric)
        assert len(report.steps) == len(rubric.steps), name
        assert {s.status for s in report.steps} == {"missing"}, name
        (note,) = report.notes
        assert expected[name] in note, (name, note)


def test_grader_failures_exit_2_and_name_the_problem(tmp_path):
    bad_rubric = tmp_path / "config.yaml"
    bad_rubric.write_text("rubric: 1\nsteps: oops\n")
    result = subprocess.run([sys.executable, "-m", "grader", "check", str(SOLUTIONS), "--rubric",
                             str(bad_rubric)], capture_output=True, text=True, cwd=REPO_ROOT,
                            timeout=120)
    assert result.returncode == 2
    assert f"{bad_rubric}: reference: missing required key" in result.stderr
    unknown_step = subprocess.run([sys.executable, "-m", "grader", "check", str(SOLUTIONS), "--step",
                                   "nope"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert unknown_step.returncode == 2
    assert "no step 'nope'" in unknown_step.stderr


def test_an_old_nbformat_version_is_read(tmp_path, rubric):
    import nbformat
    from nbformat import v3

    nb = v3.new_notebook(worksheets=[v3.new_worksheet(cells=[
        v3.new_code_cell(input="import torch"),
        v3.new_code_cell(input="def softmax_naive(x):\n    return torch.exp(x) / torch.exp(x).sum()\n"),
    ])])
    path = tmp_path / "old.ipynb"
    path.write_text(nbformat.writes(nb, version=3))
    assert grade(path, rubric=rubric, steps=["softmax_naive"]).steps[0].status == "passed"


def test_a_file_far_too_large_is_refused_unread(tmp_path, rubric):
    path = tmp_path / "huge.py"
    path.write_text("# padding\n" * 2_500_000)  # 25 MB
    report = grade(path, rubric=rubric)
    assert {s.status for s in report.steps} == {"missing"}
    assert "over the 20 MB limit" in report.notes[0]


def test_a_worker_that_cannot_start_is_the_graders_failure(tmp_path, monkeypatch, capsys):
    from grader import InternalError, cli, sandbox

    monkeypatch.setattr(sandbox, "WORKER", tmp_path / "no_such_worker.py")
    with pytest.raises(InternalError, match="worker process did not start"):
        grade(SOLUTIONS, rubric=RUBRIC, steps=["softmax_naive"])
    assert cli.main(["check", str(SOLUTIONS), "--step", "softmax_naive"]) == 2
    assert "did not start" in capsys.readouterr().err


def test_a_bug_in_the_grader_exits_2_with_a_clear_message(monkeypatch, capsys):
    from grader import cli, judge

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(judge, "judge", broken)
    assert cli.main(["check", str(SOLUTIONS), "--step", "softmax_naive"]) == 2
    assert "internal error: the grader failed (not the submission)" in capsys.readouterr().err


def test_a_correct_submission_is_never_given_a_mistake(rubric):
    report = grade(SOLUTIONS, rubric=rubric)
    assert [step.mistake for step in report.steps] == [None] * len(rubric.steps)


def test_seed_replays_exactly_one_case_and_hidden_values_stay_hidden(capsys):
    from grader import cli

    example = REPO_ROOT / "examples" / "student_notebook.ipynb"
    assert cli.main(["check", str(example), "--step", "attention_weights", "--seed", "52"]) == 1
    out = capsys.readouterr().out
    assert "hidden case `batched_2x4x4` (seed 52)" in out
    assert "case `book`" not in out and "expected 0." not in out
    assert "Score: 2 / 5" in out
    # an unknown seed lists the step's seeds; --seed needs exactly one step
    assert cli.main(["check", str(example), "--step", "attention_weights", "--seed", "7"]) == 2
    assert "its seeds are: 0, 51, 52" in capsys.readouterr().err
    assert cli.main(["check", str(example), "--seed", "52"]) == 2


def test_colour_only_when_asked_or_on_a_terminal(capsys):
    from grader import cli

    cli.main(["check", str(SOLUTIONS), "--step", "softmax_naive", "--colour", "always"])
    assert "\x1b[32m" in capsys.readouterr().out
    cli.main(["check", str(SOLUTIONS), "--step", "softmax_naive"])  # captured: not a terminal
    assert "\x1b[" not in capsys.readouterr().out
