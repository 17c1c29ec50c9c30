"""Reporters: each turns one finished `Report` into text for a reader. None of them grades."""

from .html import render_html
from .markdown import render_markdown
from .text import render_text

FORMATS = {
    "text": render_text,
    "markdown": render_markdown,
    "html": render_html,
    "json": lambda report, **_: report.to_json(),
}

__all__ = ["FORMATS", "render_html", "render_markdown", "render_text"]
