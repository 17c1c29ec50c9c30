"""Checking from inside a notebook: `from grader import check; check("softmax_naive")`.

Grades the notebook's current state, that is the cells run so far in this kernel, in the order
they were run, exactly as `attention-grader check` grades a file: in a separate worker process,
never in the kernel. The report shows under the cell.
"""

from __future__ import annotations

import re
from pathlib import Path

from .engine import grade
from .errors import UsageError
from .models import Report
from .report.html import render_html_fragment
from .report.text import render_text
from .rubric import Rubric
from .submission import Chunk, Submission, transform_ipython

# Lines that call the grader itself are not replayed in the worker (it cannot import the grader).
_GRADER_LINE = re.compile(r"^\s*(from\s+grader\b|import\s+grader\b|(grader\.)?check\s*\()")


class NotebookReport:
    """A report that Jupyter shows as HTML under the cell (and as text elsewhere)."""

    def __init__(self, report: Report):
        self.report = report

    def _repr_html_(self) -> str:
        return render_html_fragment(self.report)

    def __repr__(self) -> str:
        return render_text(self.report)


def check(*steps: str, rubric: str | Path | Rubric | None = None, seed: int | None = None,
          shell=None) -> NotebookReport:
    """Grade these steps (all steps when none is named) of the cells run so far in this kernel."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            shell = None
        else:
            shell = get_ipython()
    if shell is None:
        raise UsageError("check() grades the cells of a running notebook; outside Jupyter, use "
                         "`attention-grader check FILE`.")
    submission = kernel_submission(shell.history_manager.input_hist_raw)
    return NotebookReport(grade(submission, rubric=rubric, steps=list(steps) or None, seed=seed))


def kernel_submission(inputs: list[str]) -> Submission:
    """The cells run so far (IPython's raw input history; entry 0 is empty) as a submission."""
    chunks, notes = [], []
    for number, source in enumerate(inputs):
        if not source.strip():
            continue
        lines = ["pass" if _GRADER_LINE.match(line) else line for line in source.splitlines()]
        code, note = transform_ipython("\n".join(lines) + "\n")
        label = f"In [{number}]"
        if note:
            notes.append(f"{label}: {note}")
        chunks.append(Chunk(code, f"<In {number}>", label))
    return Submission("this notebook (the cells run so far)", "ipynb", tuple(chunks), tuple(notes))
