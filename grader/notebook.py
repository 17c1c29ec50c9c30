"""Checking from inside a notebook: `from grader import check; check("softmax_naive")`.

Grades what the kernel has defined now, exactly as `attention-grader check` grades a file: in a
separate worker process, never in the kernel (nothing is compared there). The worker is sent, as
source, the cells run so far in the order they were run, reduced to what defines names: imports,
assignments, and the latest definition of each function and class the kernel still has. A cell's
other statements (calls, loops, prints, `%timeit`, a 35-second training run) are not run again, so
one slow cell cannot make every later step "never defined". The report shows under the cell.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from .engine import grade
from .errors import UsageError
from .models import Report
from .pyparse import parse
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
    submission = kernel_submission(shell.history_manager.input_hist_raw, getattr(shell, "user_ns", None))
    return NotebookReport(grade(submission, rubric=rubric, steps=list(steps) or None, seed=seed))


# Top-level statements that define names and are sent again; the others (expressions, loops, `with`
# blocks, `del`, asserts...) are what a notebook runs for its effects, and are left out.
_DEFINING = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
             ast.Assign, ast.AnnAssign, ast.AugAssign, ast.If, ast.Try)


def _calls_the_grader(node: ast.stmt, namespace: dict | None) -> bool:
    """Whether a statement calls the grader's own `check()` (`r = check()`, `print(check("x"))`,
    `grader.check()`): the worker cannot run it, and its result is this report. A function of the
    student's own named check (the kernel's `check` is not ours) is theirs to run."""
    ours = namespace is None or namespace.get("check") is check or "check" not in namespace
    for call in ast.walk(node):
        if not isinstance(call, ast.Call):
            continue
        if isinstance(call.func, ast.Name) and call.func.id == "check" and ours:
            return True
        if (isinstance(call.func, ast.Attribute) and call.func.attr == "check"
                and isinstance(call.func.value, ast.Name) and call.func.value.id == "grader"):
            return True
    return False


def kernel_submission(inputs: list[str], namespace: dict | None = None) -> Submission:
    """The cells run so far (IPython's raw input history; entry 0 is empty) as a submission: each
    cell's defining statements, with only the latest definition of each function or class, and
    only those the kernel's `namespace` still holds (when given)."""
    cells = []  # (number, code, its top-level statements or None when it does not parse)
    notes = []
    for number, source in enumerate(inputs):
        if not source.strip():
            continue
        lines = ["pass" if _GRADER_LINE.match(line) else line for line in source.splitlines()]
        code, note = transform_ipython("\n".join(lines) + "\n")
        if note:
            notes.append(f"In [{number}]: {note}")
        try:
            body = parse(code).body
        except SyntaxError:
            body = None  # sent as it is: the worker reports the error, with its line
        cells.append((number, code, body))
    latest = {}  # a function or class name -> (cell number, line) of its last definition
    for number, _, body in cells:
        for node in body or ():
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                latest[node.name] = (number, node.lineno)
    chunks, left_out = [], []
    for number, code, body in cells:
        lines = code.splitlines()
        dropped = 0
        for node in body or ():
            definition = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            grader_call = not definition and _calls_the_grader(node, namespace)
            keep = isinstance(node, _DEFINING) and not grader_call and not (definition and (
                latest[node.name] != (number, node.lineno)
                or (namespace is not None and node.name not in namespace)))
            if not keep:
                first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", ())])
                for index in range(first - 1, node.end_lineno):
                    lines[index] = ""  # blank, so that line numbers in feedback stay the cell's
                dropped += not (definition or grader_call or isinstance(node, ast.Pass))
        if dropped:
            left_out.append(f"In [{number}]")
        if any(line.strip() for line in lines):
            chunks.append(Chunk("\n".join(lines) + "\n", f"<In {number}>", f"In [{number}]"))
    if left_out:
        notes.append("check() sent the worker what your cells define (imports, assignments, the latest "
                     "version of each function and class), not their other statements (calls, loops, "
                     f"prints), from {', '.join(left_out)}; `attention-grader check` on the saved "
                     "notebook runs every cell")
    return Submission("this notebook (what the kernel has defined)", "ipynb", tuple(chunks), tuple(notes))
