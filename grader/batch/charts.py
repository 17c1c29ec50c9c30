"""The class summary's two charts, written as SVG by hand.

    histogram(scores, maximum)   the score distribution: equal-width bins over 0..maximum
    outcomes(rows, graded)       per step, the share of students passed / failed / not done

Two plain bar charts do not need a plotting library: matplotlib took a second of CPU to import in
every class run, and a class run has no other use for it. The SVG is self-contained (no fonts,
scripts or links), so it can be linked from summary.md and inlined in summary.html as it is.
"""

from __future__ import annotations

import math
from html import escape

from .gradebook import _number

FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'
BLUE, GREEN, RED, GREY = "#2f6fb0", "#1a7f37", "#cf222e", "#afb8c1"
OUTCOMES = (("passed", GREEN), ("failed (wrong, error, timeout)", RED),
            ("not done (missing, stub)", GREY))


def bins_of(scores: list[float], maximum: float) -> list[int]:
    """How many scores fall in each of the equal-width bins over [0, maximum], the last bin
    closed on the right (a full mark counts in it); between 5 and 20 bins, one per distinct
    score where there are few."""
    count = min(20, max(5, len(set(scores))))
    width = (maximum or 1) / count
    bins = [0] * count
    for score in scores:
        bins[min(max(int(score // width), 0), count - 1)] += 1
    return bins


def nice_step(span: float, most: int) -> float:
    """A tick step of 1, 2, 2.5 or 5 times a power of ten giving at most `most` ticks over `span`."""
    if span <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(span / most))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if span / (m * power) <= most)


def _ticks(span: float, most: int, whole: bool = False) -> list[float]:
    step = nice_step(span, most)
    if whole:
        step = max(1.0, math.ceil(step))
    return [i * step for i in range(int(span / step + 1e-9) + 1)]


def _text(x: float, y: float, text: str, anchor: str = "middle", size: int = 11,
          extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" {FONT}'
            f'{" " + extra if extra else ""}>{escape(text)}</text>')


def histogram(scores: list[float], maximum: float) -> str:
    """The score distribution: students per score bin."""
    bins = bins_of(scores, maximum)
    width, height, left, right, top, bottom = 700, 320, 56, 20, 34, 48
    plot_w, plot_h = width - left - right, height - top - bottom
    highest = max(bins) or 1
    y_ticks = _ticks(highest * 1.1, 6, whole=True)  # the tallest bar stops short of the frame
    y_top = max(y_ticks[-1], highest * 1.1)
    parts = [_svg_open(width, height, "Score distribution"),
             _text(width / 2, 20, "Score distribution", size=13)]
    for tick in y_ticks:
        y = top + plot_h * (1 - tick / y_top)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
                     'stroke="#e6e6e6"/>')
        parts.append(_text(left - 6, y + 4, _number(tick), anchor="end"))
    bar_w = plot_w / len(bins)
    for index, count in enumerate(bins):
        if count:
            bar_h = plot_h * count / y_top
            parts.append(f'<rect x="{left + index * bar_w + 0.5:.1f}" y="{top + plot_h - bar_h:.1f}" '
                         f'width="{bar_w - 1:.1f}" height="{bar_h:.1f}" fill="{BLUE}">'
                         f'<title>{count} student{"s" if count != 1 else ""}</title></rect>')
    for tick in _ticks(maximum, 10):
        x = left + plot_w * tick / (maximum or 1)
        parts.append(f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top + plot_h + 4}" '
                     'stroke="#333"/>')
        parts.append(_text(x, top + plot_h + 17, _number(tick)))
    parts += [_axes(left, top, plot_w, plot_h),
              _text(left + plot_w / 2, height - 10, f"score (out of {_number(maximum)})", size=12),
              _text(14, top + plot_h / 2, "students", size=12,
                    extra=f'transform="rotate(-90 14 {top + plot_h / 2:.1f})"'),
              "</svg>"]
    return "\n".join(parts) + "\n"


def outcomes(rows: list[tuple[str, int, int, int]], graded: int) -> str:
    """Per step (name, passed, failed, not done), the share of the graded students in each."""
    total = max(graded, 1)
    row_h, left, right, top = 28, 190, 24, 34
    plot_w = 700 - left - right
    plot_h = row_h * len(rows)
    height = top + plot_h + 76
    parts = [_svg_open(700, height, "Outcome per step"), _text(350, 20, "Outcome per step", size=13)]
    for index, (name, *counts) in enumerate(rows):
        y, x = top + index * row_h, float(left)
        for (label, colour), count in zip(OUTCOMES, counts):
            share = plot_w * count / total
            if share:
                parts.append(f'<rect x="{x:.1f}" y="{y + 4}" width="{share:.1f}" height="{row_h - 8}" '
                             f'fill="{colour}"><title>{escape(name)}: {count} {label.split(" (")[0]}'
                             f'</title></rect>')
            x += share
        parts.append(_text(left - 6, y + row_h / 2 + 4, name, anchor="end", size=10))
    for tick in range(0, 101, 20):
        x = left + plot_w * tick / 100
        parts.append(f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top + plot_h + 4}" '
                     'stroke="#333"/>')
        parts.append(_text(x, top + plot_h + 17, str(tick)))
    parts += [_axes(left, top, plot_w, plot_h),
              _text(left + plot_w / 2, top + plot_h + 36, "students (%)", size=12)]
    x = 120.0
    for label, colour in OUTCOMES:
        parts.append(f'<rect x="{x:.1f}" y="{height - 24}" width="18" height="10" fill="{colour}"/>')
        parts.append(_text(x + 24, height - 15, label, anchor="start", size=10))
        x += 24 + 5.6 * len(label) + 28  # about the width of 10 px text
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _svg_open(width: int, height: int, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
            f'<rect width="{width}" height="{height}" fill="white"/>')


def _axes(left: float, top: float, width: float, height: float) -> str:
    return (f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" '
            'stroke="#333"/>')


__all__ = ["bins_of", "histogram", "nice_step", "outcomes"]
