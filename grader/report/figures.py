"""Drawing a step's figures (grader.models.Figure): SVG for HTML, Unicode shading for a terminal.

    svg(figure)        expected and yours side by side on one colour scale, then the difference
                       (yours - expected) with the cells outside tolerance outlined; zeros, the
                       infinities and NaN each in a colour of their own, with a legend
    terminal(figure)   a compact rendering of a small matrix for a terminal, differing cells marked

Written by hand like the class charts (grader.batch.charts): no plotting library, no scripts,
fonts or links. Every value is the student's to choose (NaN, inf, 1e300, labels with markup), so
every text is escaped and every number goes through `_number` and `_share` before it is drawn.
The picture brings its own light background, so it reads on a dark page as on a light one.
"""

from __future__ import annotations

import math

from ..models import Figure
from ..safe_text import html_text
from ..safe_text import terminal as terminal_text

FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'
INK, MUTED, PAPER = "#1f2328", "#57606a", "#ffffff"
# viridis at five stops: light to dark reads in grey too; none of them is a special colour below
SCALE = ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725")
DIVERGING = ("#2166ac", "#f7f7f7", "#b2182b")  # yours below expected, equal, above
SPECIAL = {"zero": ("#d0d7de", "0 (masked or dropped)"), "-inf": ("#8c959f", "−∞ (masked)"),
           "inf": ("#fb8500", "+∞"), "nan": ("#ff00ff", "NaN")}
OUTLINE = "#000000"
MAX_LABEL = 12  # characters of a label drawn; the whole label is in the cell's tooltip


def _escape(text: str) -> str:
    """Text for the SVG: escaped, without the control characters XML refuses."""
    return html_text(text)


def kind_of(x: float) -> str:
    """Which special colour a value takes: zero, -inf, inf, nan, or "" for an ordinary number."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return "zero" if x == 0 else ""


def _number(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:.3g}"


def _range(values: list[float]) -> tuple[float, float]:
    finite = [x for x in values if math.isfinite(x)]
    if not finite:
        return 0.0, 1.0
    return min(finite), max(finite)


def _share(x: float, low: float, high: float) -> float:
    """Where x lies between low and high, 0..1, without overflow (1e308 - -1e308 is inf)."""
    span = high / 2 - low / 2
    if not span > 0:
        return 0.5
    share = (x / 2 - low / 2) / span
    return min(max(share, 0.0), 1.0) if math.isfinite(share) else 0.5


def _mix(stops: tuple[str, ...], share: float) -> str:
    position = share * (len(stops) - 1)
    index = min(int(position), len(stops) - 2)
    t = position - index
    a, b = stops[index], stops[index + 1]
    channels = [round(int(a[i:i + 2], 16) * (1 - t) + int(b[i:i + 2], 16) * t) for i in (1, 3, 5)]
    return "#" + "".join(f"{c:02x}" for c in channels)


def value_colour(x: float, low: float, high: float) -> str:
    special = kind_of(x)
    return SPECIAL[special][0] if special else _mix(SCALE, _share(x, low, high))


def difference_colour(d: float, bound: float) -> str:
    if not math.isfinite(d):
        return SPECIAL["nan" if math.isnan(d) else "inf" if d > 0 else "-inf"][0]
    return _mix(DIVERGING, _share(d, -bound, bound))


def difference(e: float, o: float) -> float:
    """yours - expected; equal infinities and NaN beside NaN differ by 0, as the checks compare."""
    if e == o or (math.isnan(e) and math.isnan(o)):
        return 0.0
    d = o - e
    return d if math.isfinite(d) or not (math.isfinite(o) and math.isfinite(e)) else (
        math.copysign(math.inf, d))


def _text(x: float, y: float, text: str, anchor: str = "middle", size: int = 11,
          extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" {FONT} '
            f'fill="{INK}"{" " + extra if extra else ""}>{_escape(text)}</text>')


def _label(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[:MAX_LABEL - 1] + "…"


def outside_cells(figure: Figure) -> list[str]:
    return [f"[{r}, {c}]" for r, row in enumerate(figure.outside) for c, bad in enumerate(row) if bad]


def description(figure: Figure) -> str:
    """The text alternative: what the picture shows, in words and numbers."""
    n_rows, n_cols = len(figure.expected), len(figure.expected[0]) if figure.expected else 0
    low, high = _range([x for row in figure.expected + figure.obtained for x in row])
    cells = outside_cells(figure)
    listed = ", ".join(cells[:8]) + (f" and {len(cells) - 8} more" if len(cells) > 8 else "")
    return (f"Expected and your values, {n_rows} by {n_cols} ({figure.row_name} by "
            f"{figure.col_name}), on one colour scale from {_number(low)} to {_number(high)}, and "
            f"their difference; {len(cells)} cell(s) outside the tolerance"
            + (f": {listed}" if cells else "") + (f". {figure.note}" if figure.note else "."))


def svg(figure: Figure) -> str:
    """The figure as one self-contained SVG element."""
    expected, obtained = figure.expected, figure.obtained
    n_rows, n_cols = len(expected), len(expected[0]) if expected else 0
    if not n_rows or not n_cols:
        return ""
    cell = max(8, min(28, 200 // max(n_rows, n_cols)))
    rows = [_label(r) for r in figure.rows] or [str(i) for i in range(n_rows)]
    cols = [_label(c) for c in figure.cols] or [str(j) for j in range(n_cols)]
    left = 14 + 6.5 * max(len(r) for r in rows)
    top, gap = 46, 34
    panel_w, panel_h = cell * n_cols, cell * n_rows
    bottom = 14 + 6.5 * max(len(c) for c in cols)
    width = max(round(left + 3 * panel_w + 2 * gap + 20), 520)
    height = round(top + panel_h + bottom + 64)
    low, high = _range([x for row in expected + obtained for x in row])
    diffs = [[difference(e, o) for e, o in zip(er, orow)] for er, orow in zip(expected, obtained)]
    bound = max([abs(d) for row in diffs for d in row if math.isfinite(d)] + [0.0]) or 1.0
    tips = n_rows * n_cols <= 256
    title = figure.title
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{_escape(title)}" '
             'class="figure">',
             f"<title>{_escape(title)}</title><desc>{_escape(description(figure))}</desc>",
             f'<rect width="{width}" height="{height}" fill="{PAPER}" rx="6"/>']
    panels = (("expected", expected, None), ("yours", obtained, None),
              ("yours − expected", None, diffs))
    for p, (name, values, diff) in enumerate(panels):
        x0 = left + p * (panel_w + gap)
        parts.append(_text(x0 + panel_w / 2, 18, name, size=12, extra='font-weight="bold"'))
        for r in range(n_rows):
            for c in range(n_cols):
                x, y = x0 + c * cell, top + r * cell
                if diff is None:
                    v = values[r][c]
                    fill = value_colour(v, low, high)
                    tip = f"{rows[r]}, {cols[c]}: {name} {_number(v)}"
                else:
                    fill = difference_colour(diff[r][c], bound)
                    tip = (f"{rows[r]}, {cols[c]}: expected {_number(expected[r][c])}, yours "
                           f"{_number(obtained[r][c])}")
                rect = (f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell}" height="{cell}" '
                        f'fill="{fill}"')
                parts.append(rect + (f"><title>{_escape(tip)}</title></rect>" if tips else "/>"))
        parts.append(f'<rect x="{x0:.1f}" y="{top}" width="{panel_w}" height="{panel_h}" '
                     f'fill="none" stroke="{MUTED}"/>')
        if diff is not None:
            for r, row in enumerate(figure.outside):
                for c, bad in enumerate(row[:n_cols]):
                    if bad and r < n_rows:
                        parts.append(f'<rect x="{x0 + c * cell + 1:.1f}" y="{top + r * cell + 1:.1f}" '
                                     f'width="{cell - 2}" height="{cell - 2}" fill="none" '
                                     f'stroke="{OUTLINE}" stroke-width="2"/>')
        parts += _axis_labels(x0, top, cell, n_rows, rows if p == 0 else [], cols)
    parts.append(_text(4, top - 8, f"{figure.row_name} ↓", anchor="start", size=10,
                       extra='font-style="italic"'))
    parts.append(_text(left + panel_w / 2, top - 8, f"{figure.col_name} →", size=10,
                       extra='font-style="italic"'))
    legend_y = top + panel_h + bottom + 8
    parts += _scale_bar(left, legend_y, 2 * panel_w + gap, SCALE, low, high, "expected and yours")
    parts += _scale_bar(left + 2 * (panel_w + gap), legend_y, panel_w, DIVERGING, -bound, bound,
                        "difference")
    parts += _special_legend(figure, left, legend_y + 36)
    parts.append("</svg>")
    return "\n".join(parts)


def _axis_labels(x0: float, top: float, cell: int, n_rows: int, rows: list[str],
                 cols: list[str]) -> list[str]:
    """Row labels left of the panel (when `rows`), column labels hanging below it, upright."""
    parts = [_text(x0 - 4, top + r * cell + cell / 2 + 4, label, anchor="end", size=10)
             for r, label in enumerate(rows)]
    base = top + n_rows * cell + 4
    for c, label in enumerate(cols):
        x = x0 + c * cell + cell / 2 + 4
        parts.append(_text(x, base, label, anchor="end", size=10,
                           extra=f'transform="rotate(-90 {x:.1f} {base:.1f})"'))
    return parts


def _scale_bar(x: float, y: float, width: float, stops: tuple[str, ...], low: float, high: float,
               name: str) -> list[str]:
    steps = 24
    parts = [f'<rect x="{x + i * width / steps:.1f}" y="{y:.1f}" width="{width / steps + 0.5:.1f}" '
             f'height="10" fill="{_mix(stops, i / (steps - 1))}"/>' for i in range(steps)]
    parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="10" fill="none" '
                 f'stroke="{MUTED}"/>')
    parts.append(_text(x, y + 22, _number(low), anchor="start", size=10))
    parts.append(_text(x + width / 2, y + 22, name, size=10))
    parts.append(_text(x + width, y + 22, _number(high), anchor="end", size=10))
    return parts


def _special_legend(figure: Figure, x: float, y: float) -> list[str]:
    """A swatch for each special value the figure holds, and the outline's meaning."""
    present = {kind_of(v) for row in figure.expected + figure.obtained for v in row} - {""}
    parts = []
    for key in ("zero", "-inf", "inf", "nan"):
        if key in present:
            colour, label = SPECIAL[key]
            if key == "zero" and figure.kind == "dropout":
                label = "0 (dropped)"
            parts.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="12" height="10" fill="{colour}" '
                         f'stroke="{MUTED}"/>')
            parts.append(_text(x + 16, y, label, anchor="start", size=10))
            x += 30 + 6 * len(label)
    parts.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="12" height="10" fill="none" '
                 f'stroke="{OUTLINE}" stroke-width="2"/>')
    parts.append(_text(x + 16, y, "outside the tolerance", anchor="start", size=10))
    return parts


# ------------------------------------------------------------------------------ terminal

SHADES = " ░▒▓█"
TERMINAL_SIDE = 12  # a larger matrix is not drawn in a terminal
TERMINAL_MARKS = {"zero": "·", "-inf": "-", "inf": "+", "nan": "?"}


def terminal(figure: Figure) -> list[str]:
    """Expected and yours as Unicode shading on one scale, two characters a cell, a cell outside
    tolerance marked with ! in yours; nothing for a matrix larger than TERMINAL_SIDE."""
    n_rows, n_cols = len(figure.expected), len(figure.expected[0]) if figure.expected else 0
    if not n_rows or not n_cols or n_rows > TERMINAL_SIDE or n_cols > TERMINAL_SIDE:
        return []
    low, high = _range([x for row in figure.expected + figure.obtained for x in row])
    rows = [terminal_text(_label(r), newlines=False)[:8] for r in figure.rows] or [
        str(i) for i in range(n_rows)]
    pad = max(len(r) for r in rows)
    head = " " * pad + " " + "expected".ljust(2 * n_cols) + "   yours"
    lines = [head]
    for r in range(n_rows):
        shown = "".join(_shade(v, low, high) * 2 for v in figure.expected[r])
        yours = "".join(_shade(v, low, high) + ("!" if figure.outside[r][c] else _shade(v, low, high))
                        for c, v in enumerate(figure.obtained[r]))
        lines.append(f"{rows[r]:>{pad}} {shown}   {yours}")
    lines.append(f"{'':>{pad}} scale {_number(low)} {SHADES[1:]} {_number(high)}; · zero, "
                 "- −∞, + ∞, ? NaN; ! outside the tolerance")
    return lines


def _shade(x: float, low: float, high: float) -> str:
    special = kind_of(x)
    if special:
        return TERMINAL_MARKS[special]
    return SHADES[1 + min(int(_share(x, low, high) * 4), 3)]


__all__ = ["description", "svg", "terminal"]
