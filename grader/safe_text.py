"""Student text made inert for the destination it lands in: one function per destination.

Anything the student's code or files say (exception messages, printed output, cell labels, file
names and the ids and display names read from them, notes, problems, source lines) may hold terminal
escape sequences, Markdown or HTML, a spreadsheet formula, or characters XML cannot hold. Every
place that prints or writes such text passes it through the one function here for where it goes:

    terminal(text)            a terminal or a log: no control characters (ESC, OSC, BEL, CR, C1),
                              no bidirectional overrides; `newlines=False` for a one-line message
    markdown_inline(text)     Markdown rendered with inline HTML (GitHub, mkdocs, pandoc): no tag,
                              no entity, no link, image, code span, emphasis or table pipe
    markdown_fence(text)      a fenced block of Markdown that the text cannot close early
    html_text(text)           HTML text or a quoted attribute value: escaped, no control characters
    xml_text(text)            text or an attribute for ElementTree (which escapes): nothing XML 1.0
                              forbids, no control characters, no bidirectional overrides
    csv_cell(text)            a spreadsheet cell that is shown as text, never run as a formula
    workflow_data(text)       a GitHub Actions workflow command's message (`::error ...::HERE`)
    workflow_property(text)   a workflow command's property value (`file=HERE,title=HERE`)

Each replaces what it removes with U+FFFD, so that the reader sees something was there.
"""

from __future__ import annotations

import re
from html import escape as _html_escape

MAX_CHARS = 4_000  # of any one piece of student text
REPLACEMENT = "\N{REPLACEMENT CHARACTER}"
# C0 controls but tab and newline (ESC starts every escape sequence; BEL and ESC \ end an OSC),
# DEL and the C1 controls (CSI U+009B and OSC U+009D are escape sequences of their own in one).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Bidirectional embeddings, overrides, isolates and marks: they reorder what a reader sees
# ("Trojan Source"), e.g. a file name that displays as something it is not.
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_TERMINAL = re.compile(f"{_CONTROL.pattern}|{_BIDI.pattern}")
# Not allowed anywhere in an XML 1.0 document, not even escaped (and the other controls besides).
_NOT_XML = re.compile(f"{_CONTROL.pattern}|[\ud800-\udfff\ufffe\uffff]")
# Markdown's own punctuation: backslash-escaped, each then shows as itself (CommonMark lets any
# ASCII punctuation be escaped). `[` `]` `!` links and images, `` ` `` code spans, `*` `_` `~`
# emphasis, `|` table cells, `#` headings, `\` the escape itself.
_MARKDOWN = re.compile(r"([\\`*_\[\]!|~#])")


def _bounded(text: str, limit: int | None) -> str:
    if limit is not None and len(text) > limit:
        return text[:limit] + f" [... {len(text) - limit:,} more characters]"
    return text


def terminal(text: str, limit: int | None = MAX_CHARS, *, newlines: bool = True) -> str:
    """Text a terminal shows as text: without control characters (no escape sequence can recolour,
    redraw, retitle or write the clipboard; no CR can overwrite a line) or bidirectional overrides,
    and at most `limit` characters. `newlines=False`: a newline is a space (one message, one line)."""
    if not newlines:
        text = text.replace("\n", " ")
    if (limit is None or len(text) <= limit) and text.isprintable():  # most text: nothing to do
        return text
    return _bounded(_TERMINAL.sub(REPLACEMENT, text), limit)


printable = terminal  # the name the worker's side and the judge have used


def markdown_inline(text: str, limit: int | None = MAX_CHARS) -> str:
    """Text that Markdown with inline HTML (GitHub, mkdocs, pandoc) shows as text, on one line:
    no HTML tag or entity, no link or image, code span, emphasis, heading or table pipe."""
    text = terminal(text, limit, newlines=False)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN.sub(r"\\\1", text)


def markdown_fence(text: str, limit: int | None = MAX_CHARS) -> list[str]:
    """The lines of a fenced text block that `text` cannot close early (its fence is longer than
    any run of backticks in it); inside it, Markdown and HTML are shown as they are, not rendered."""
    text = terminal(text, limit)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + "text", text, fence]


def html_text(text: str, limit: int | None = None) -> str:
    """Text for HTML, as element text or a quoted attribute value: `< > & " '` escaped, and no
    control characters (a browser's view-source and a terminal `cat` alike)."""
    return _html_escape(terminal(text, limit))


def xml_text(text: str, limit: int | None = None) -> str:
    """Text for an XML element or attribute built with ElementTree (which escapes `< > & "`):
    without the characters XML 1.0 forbids even escaped, nor the other control characters and
    bidirectional overrides (a CI log or a terminal shows the file as it is)."""
    return _bounded(_NOT_XML.sub(REPLACEMENT, _BIDI.sub(REPLACEMENT, text)), limit)


def csv_cell(text: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    text = terminal(text, 1_000)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def workflow_data(text: str) -> str:
    """A GitHub Actions workflow command's message, escaped as the runner unescapes it (`%`, CR and
    LF), without the other control characters (the runner's log shows ANSI colours)."""
    text = _bounded(text, MAX_CHARS).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return _TERMINAL.sub(REPLACEMENT, text)


def workflow_property(text: str) -> str:
    """A workflow command's property value (file, title): as a message, and `:` and `,` too."""
    return workflow_data(text).replace(":", "%3A").replace(",", "%2C")


__all__ = ["MAX_CHARS", "csv_cell", "html_text", "markdown_fence", "markdown_inline", "printable",
           "terminal", "workflow_data", "workflow_property", "xml_text"]
