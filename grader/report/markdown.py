"""The Markdown report: a table of steps, then a section for each step that did not pass."""

from __future__ import annotations

from ..models import Report
from ..safe_text import markdown_fence, markdown_inline
from .figures import terminal as figure_lines

ICONS = {"passed": "✅", "failed": "❌", "error": "💥", "timeout": "⏱️", "missing": "❓",
         "not_implemented": "⬜"}


def render_markdown(report: Report, **_) -> str:
    lines = [
        f"# {markdown_inline(report.heading)} for {markdown_inline(report.submission)}",
        "",
        f"**Score: {report.score:g} / {report.max_score:g}**",
        "",
    ]
    if report.notes:
        lines += [f"> {markdown_inline(note)}" for note in report.notes] + [""]
    lines += ["| | Step | Section | Score | Status |", "|---|---|---|---|---|"]
    for step in report.steps:
        lines.append(f"| {ICONS[step.status]} | `{step.id}` | {step.section} | "
                     f"{step.score:g} / {step.max_score:g} | {step.status.replace('_', ' ')} |")
    for step in report.steps:
        if step.passed:
            continue
        lines += ["", f"## {ICONS[step.status]} `{step.id}`: {step.title}", ""]
        lines += markdown_fence(step.feedback)
        for figure in step.figures:
            drawn = figure_lines(figure)
            if drawn:
                lines += ["", f"{markdown_inline(figure.title)}, expected beside yours:", ""]
                lines += markdown_fence("\n".join(drawn))
        failed = [c for c in step.checks if not c.passed]
        if failed:
            lines += [""] + [f"- **{c.name}** (0 / {c.max_score:g}): {markdown_inline(c.message)}"
                             for c in failed]
        if step.hints and step.status in ("failed", "error") and not step.mistake:
            lines += ["", f"*Hint:* {step.hints[0]}"]
    return "\n".join(lines) + "\n"
