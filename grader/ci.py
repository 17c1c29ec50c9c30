"""GitHub Actions: a step summary and one annotation per step that did not pass.

When `attention-grader check` runs with `GITHUB_ACTIONS=true` in its environment, it

- appends the Markdown report to the file named by `$GITHUB_STEP_SUMMARY` (shown on the run's
  summary page), and
- prints a workflow command per step whose status is `failed`, `error`, `timeout` or `missing`, on
  stderr (the runner reads workflow commands there as on stdout, and stdout stays the report):

      ::error file=attention.py,line=42,title=attention_weights::This looks like a known mistake ...

  GitHub shows it on the workflow run and, in a pull request, beside that line of the file.
  `not_implemented` steps get none: an unfinished exercise is not an error, and GitHub shows at most
  10 error annotations per step, which the real mistakes should have to themselves. They are in the
  summary and in the JUnit report (as skipped).

The functions below are pure (the file reading aside) so that each can be tested on its own.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .models import Report, StepResult
from .safe_text import workflow_data, workflow_property

ANNOTATED = ("failed", "error", "timeout", "missing")


def in_github_actions(environ=None) -> bool:
    return (os.environ if environ is None else environ).get("GITHUB_ACTIONS") == "true"


# A workflow command's message and its property values (file, title), escaped as GitHub's runner
# unescapes them, without control characters: grader.safe_text's functions for that destination.
escape_data = workflow_data
escape_property = workflow_property


def _definition(name: str) -> re.Pattern:
    return re.compile(rf"^\s*(?:async\s+def|def|class)\s+{re.escape(name)}\b"
                      rf"|^{re.escape(name)}\s*(?::[^=]*)?=(?!=)")


def definition_line(source: str, name: str) -> int | None:
    """The 1-based line where `name` is defined (`def name(`, `class name`, or `name = ...` at the top
    level) in Python source; the last one, as that is the one that counts when the code runs."""
    pattern = _definition(name)
    found = None
    for number, line in enumerate(source.splitlines(), start=1):
        if pattern.match(line):
            found = number
    return found


def definition_cell(cells: list[tuple[str, str]], name: str) -> tuple[int, int] | None:
    """(cell number, line in that cell) of the last code cell defining `name`, among a notebook's
    (cell_type, source) cells; cells are numbered from 1 over all cells, as in the grader's reports."""
    found = None
    for number, (kind, source) in enumerate(cells, start=1):
        if kind == "code":
            line = definition_line(source, name)
            if line is not None:
                found = (number, line)
    return found


def notebook_cells(path: str | Path) -> list[tuple[str, str]]:
    """A notebook's (cell_type, source) pairs; [] when the file cannot be read as a notebook."""
    import nbformat

    try:
        notebook = nbformat.read(str(path), as_version=4)
    except Exception:  # an unreadable notebook: the report says so; annotate without a cell
        return []
    return [(cell.get("cell_type", ""), cell.get("source", "")) for cell in notebook.cells]


def annotation_path(path: str, workspace: str | None = None) -> str:
    """The path GitHub expects: relative to the repository (`$GITHUB_WORKSPACE`) when it is inside."""
    if workspace:
        try:
            return Path(path).resolve().relative_to(Path(workspace).resolve()).as_posix()
        except ValueError:
            pass
    return Path(path).as_posix()


def annotations(report: Report, submission: str | Path, *, workspace: str | None = None) -> list[str]:
    """One `::error` workflow command per step that failed, errored, timed out or is missing."""
    path = Path(submission)
    notebook = path.suffix == ".ipynb"
    cells = notebook_cells(path) if notebook else []
    try:
        source = "" if notebook else path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        source = ""
    where = annotation_path(str(submission), workspace)
    lines = []
    for step in report.steps:
        if step.status not in ANNOTATED:
            continue
        title = step.id
        if notebook:
            # GitHub can only point at a line of the .ipynb file's JSON, not inside a cell: the
            # annotation goes on the notebook's first line and the title names the cell.
            line = 1
            cell = definition_cell(cells, step.id)
            if cell is not None:
                title = f"{step.id} (cell {cell[0]})"
        else:
            line = definition_line(source, step.id) or 1
        lines.append(error_command(where, line, title, _message(step)))
    return lines


def error_command(file: str, line: int, title: str, message: str) -> str:
    return (f"::error file={escape_property(file)},line={line},title={escape_property(title)}"
            f"::{escape_data(message)}")


def _message(step: StepResult) -> str:
    return step.feedback.strip().splitlines()[0] if step.feedback.strip() else step.status


def append_step_summary(report: Report, environ=None) -> bool:
    """Append the Markdown report to `$GITHUB_STEP_SUMMARY`; False when it is not set."""
    from .report.markdown import render_markdown

    target = (os.environ if environ is None else environ).get("GITHUB_STEP_SUMMARY")
    if not target:
        return False
    with open(target, "a", encoding="utf-8") as f:
        f.write(render_markdown(report) + "\n")
    return True


__all__ = ["ANNOTATED", "annotation_path", "annotations", "append_step_summary", "definition_cell",
           "definition_line", "error_command", "escape_data", "escape_property", "in_github_actions",
           "notebook_cells"]
