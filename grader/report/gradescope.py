"""Gradescope's results.json for one finished Report: one Gradescope test per step.

    {"score": 90.0, "execution_time": 2.3, "output": "...", "output_format": "text",
     "test_output_format": "text", "test_name_format": "text", "visibility": "visible",
     "stdout_visibility": "hidden",
     "tests": [{"name": "3.3.2 attention_weights: Attention weights (...)", "number": "5",
                "score": 2.0, "max_score": 5.0, "status": "failed", "output": "...",
                "visibility": "visible"}, ...]}

Visibility: every test is `visible` at once, with the step's feedback as its output. That is what
the grader is for (feedback a student can act on before the deadline), and it gives nothing away:
the feedback of hidden cases never contains expected values, only shapes, error sizes, the known
mistake and the case's seed (which replays the case on the student's own machine, where the
reference is not available). A course that wants to hold results back until grades are published
sets that in Gradescope's assignment settings, or edits `visibility` here to "after_published";
nothing in the grader depends on it.
"""

from __future__ import annotations

import json

from ..models import Report, StepResult
from ..safe_text import terminal
from .text import LABELS

# Gradescope shows each output as plain text (no HTML, no Markdown, no ANSI colours), and the text
# itself has passed through `terminal`: what the student's code said reaches the page as text.
OUTPUT_FORMAT = "text"


def results(report: Report, *, visibility: str = "visible") -> dict:
    counts = {status: n for status, n in report.counts().items() if n}
    summary = ", ".join(f"{n} {LABELS[s].lower()}" for s, n in counts.items())
    output = [f"Score: {report.score:g} / {report.max_score:g} ({summary})"]
    if report.notes:
        output += ["", "Notes on your submission as a whole:"] + [f"- {terminal(note)}"
                                                                  for note in report.notes]
    return {
        "score": report.score,
        "execution_time": round(report.seconds, 3),
        "output": "\n".join(output),
        "output_format": OUTPUT_FORMAT,
        "test_output_format": OUTPUT_FORMAT,
        "test_name_format": OUTPUT_FORMAT,
        "visibility": visibility,
        "stdout_visibility": "hidden",  # the grader's log, for the course staff
        "tests": [_test(number, step, visibility)
                  for number, step in enumerate(report.steps, start=1)],
    }


def _test(number: int, step: StepResult, visibility: str) -> dict:
    status = LABELS[step.status].lower()
    lines = [f"{step.score:g} / {step.max_score:g}: {status}"]
    if step.passed:
        lines += [f"- {c.name}: {terminal(c.message)}" for c in step.checks]
    else:
        lines += ["", terminal(step.feedback, 20_000)]  # as in the terminal report: it has the failed checks
        if step.hints and step.status in ("failed", "error") and not step.mistake:
            lines += ["", f"Hint: {step.hints[0]}"]
    return {
        "name": f"{step.section} {step.id}: {step.title}",
        "number": str(number),
        "score": step.score,
        "max_score": step.max_score,
        "status": "passed" if step.passed else "failed",
        "output": "\n".join(lines),
        "visibility": visibility,
    }


def render_gradescope(report: Report, **_) -> str:
    return json.dumps(results(report), indent=2) + "\n"


__all__ = ["render_gradescope", "results"]
