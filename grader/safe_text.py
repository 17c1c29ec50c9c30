"""Student text made safe for the report it lands in.

Anything the student's code or files say (exception messages, printed output, cell labels, file
names) may hold terminal escape sequences, Markdown or HTML, or a spreadsheet formula. Each report
passes such text through the one function here that fits it; the HTML report escapes with
`html.escape` as it always did.
"""

from __future__ import annotations

import re

MAX_CHARS = 4_000  # of any one piece of student text
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # all but tab and newline


def printable(text: str, limit: int = MAX_CHARS) -> str:
    """Without control characters (escape sequences cannot recolour or redraw a terminal), and at
    most `limit` characters."""
    if len(text) <= limit and text.isprintable():  # most text: nothing to replace (no tab, no newline)
        return text
    text = _CONTROL.sub("\N{REPLACEMENT CHARACTER}", text)
    if len(text) > limit:
        text = text[:limit] + f" [... {len(text) - limit:,} more characters]"
    return text


def markdown_inline(text: str) -> str:
    """Text that Markdown (and GitHub's renderer) shows as text: no HTML tags, no line breaks."""
    text = printable(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\r", " ").replace("\n", " ")


def markdown_fence(text: str) -> list[str]:
    """The lines of a fenced text block that `text` cannot close early."""
    text = printable(text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + "text", text, fence]


def csv_cell(text: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    text = printable(text, 1_000)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


__all__ = ["csv_cell", "markdown_fence", "markdown_inline", "printable"]
