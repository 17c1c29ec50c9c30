"""Student text reaches every report as text: no escape sequences, no HTML, no formulas."""

import csv
import io

from conftest import SOLUTIONS, grade

from grader.batch.run import grade_class
from grader.report.markdown import render_markdown
from grader.report.text import render_text

HOSTILE_MESSAGE = '\\x1b[2K\\r\\x1b[32m✔ all passed\\x1b[0m <img src=x onerror=alert(1)> ```'


def submission(tmp_path, name="drawn_as_passed.py"):
    path = tmp_path / name
    path.write_text(SOLUTIONS.read_text() + (
        "\n\ndef softmax_naive(x):\n"
        f"    raise ValueError('{HOSTILE_MESSAGE}')\n"))
    return path


def test_a_message_that_redraws_the_terminal_is_printed_as_text(tmp_path):
    report = grade(submission(tmp_path), steps=["softmax_naive"])
    text = render_text(report, colour=True)
    assert "\x1b[2K" not in text and "\x1b[32m✔ all" not in text
    assert "✔ all passed" in text  # still readable, just inert


def test_markdown_feedback_holds_no_html_and_cannot_close_its_fence(tmp_path):
    report = grade(submission(tmp_path), steps=["softmax_naive"])
    markdown = render_markdown(report)
    assert "````text" in markdown  # a longer fence than the student's ```
    outside, fence = [], None
    for line in markdown.splitlines():  # what Markdown renders: everything outside the fences
        if fence is None and line.startswith("```"):
            fence = line[: len(line) - len(line.lstrip("`"))]
        elif fence is not None and line == fence:
            fence = None
        elif fence is None:
            outside.append(line)
    assert fence is None, "the student's text closed the fence early"
    assert "alert(1)" in markdown and "<img" not in "\n".join(outside)


def test_a_file_name_that_is_a_formula_is_a_plain_cell(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "=HYPERLINK(1)_101_5001_attention.py").write_text(SOLUTIONS.read_text())
    grade_class([folder], out=tmp_path / "out", jobs=1)
    rows = list(csv.reader(io.StringIO((tmp_path / "out" / "grades.csv").read_text())))
    for cell in rows[1]:
        assert not cell.startswith(("=", "+", "-", "@")), rows[1]
