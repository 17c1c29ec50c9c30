"""The terminal report: one line per step that passed, details where a step did not."""

from __future__ import annotations

import textwrap

from .. import confine
from ..models import Report, StepResult
from ..safe_text import terminal
from .figures import terminal as figure_lines

SYMBOLS = {"passed": "✔", "failed": "✘", "error": "✘", "timeout": "⧗", "missing": "?",
           "not_implemented": "·"}
COLOURS = {"passed": "32", "failed": "31", "error": "31", "timeout": "33", "missing": "33",
           "not_implemented": "2"}
LABELS = {"passed": "passed", "failed": "FAILED", "error": "ERROR", "timeout": "TIMEOUT",
          "missing": "missing", "not_implemented": "not implemented"}


def render_text(report: Report, *, colour: bool = False, width: int = 100,
                pictures: bool = False, **_) -> str:
    """The report for a terminal; `pictures`: small matrices drawn in Unicode (for a terminal
    only: never when the output is piped or written to a file)."""
    paint = _painter(colour)
    lines = [paint("1", f"attention-grader: {terminal(report.submission)}"), ""]
    for note in report.notes:
        lines.extend(textwrap.wrap(f"note: {terminal(note)}", width, subsequent_indent="      "))
    if report.notes:
        lines.append("")
    for step in report.steps:
        lines.extend(_step_lines(step, paint, width))
        if pictures and not step.passed:
            for figure in step.figures:
                drawn = figure_lines(figure)
                if drawn:
                    lines += [f"      {terminal(figure.title)}:"] + [f"      {terminal(line)}"
                                                                      for line in drawn]
    counts = {status: n for status, n in report.counts().items() if n}
    summary = ", ".join(f"{n} {LABELS[s].lower()}" for s, n in counts.items())
    lines += ["", paint("1", f"Score: {report.score:g} / {report.max_score:g}") + f"  ({summary}; "
              f"{report.seconds:.1f} s)"]
    if report.all_passed:
        lines.append(paint("32", "Every step passed. Well done!"))
    if report.sandbox:
        lines += textwrap.wrap(terminal(confine.summary(report.sandbox)), width, subsequent_indent="  ")
    return "\n".join(lines) + "\n"


def _step_lines(step: StepResult, paint, width: int) -> list[str]:
    symbol = paint(COLOURS[step.status], SYMBOLS[step.status])
    head = (f"{symbol} {step.section:<6} {step.id:<28} {step.score:>4g}/{step.max_score:<3g} "
            + paint(COLOURS[step.status], LABELS[step.status]))
    if step.passed:
        return [head]
    lines = [head]
    for paragraph in terminal(step.feedback, 20_000).splitlines():
        lines.extend(textwrap.wrap(paragraph, width, initial_indent="      ",
                                   subsequent_indent="        ") or [""])
    if step.hints and step.status in ("failed", "error") and not step.mistake:
        lines.extend(textwrap.wrap(f"hint: {step.hints[0]}", width, initial_indent="      ",
                                   subsequent_indent="        "))
    return lines


def _painter(colour: bool):
    def paint(code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if colour else text

    return paint
