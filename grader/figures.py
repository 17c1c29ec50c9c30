"""Pictures for the feedback: a failed visible case's matrix, expected beside obtained.

    figures_for(step, outcomes, checks)   the step's figures (grader.models.Figure), at most
                                          FIGURES_PER_STEP, for the reporters to draw

Built in the grader's process from the tensors the checks compared: the reference's output and the
student's, read as plain numbers. Only a visible case is drawn (a hidden case never shows its
expected values), only a matrix, or one batch or head slice of one, of at most FIGURE_SIDE rows and
columns, and only where a check that reads those values failed. The rubric turns them off per step
with `pictures: false`, and names a case's axes with `labels:`.
"""

from __future__ import annotations

import math

import torch

from .checks import CheckFailed, Outcome, expected_and_obtained, shape_text
from .models import FIGURE_SIDE, FIGURES_PER_STEP, CheckResult, Figure
from .registry import applies
from .replies import Returned
from .rubric import Step

PICTURED = ("values", "rows_sum_to_one", "zero_above_diagonal")  # compare with the reference's
DROPOUT = ("zero_fraction", "survivors_scaled")  # a sample: kept and dropped cells, the scale


def figures_for(step: Step, outcomes: list[Outcome], checks: list[CheckResult]
                ) -> tuple[Figure, ...]:
    """The figures of the first visible cases where a pictured check failed, one per case."""
    if not step.pictures:
        return ()
    failed = {c.name for c in checks if not c.passed and c.judged}
    figures: list[Figure] = []
    for check in step.checks:
        if check.check not in failed or check.check not in PICTURED + DROPOUT:
            continue
        for outcome in outcomes:
            if len(figures) == FIGURES_PER_STEP:
                return tuple(figures)
            if not (outcome.case.visible and applies(check, outcome.case)) or any(
                    f.title.startswith(outcome.title) for f in figures):
                continue
            figure = _case_figure(step, outcome, dropout=check.check in DROPOUT)
            if figure is not None:
                figures.append(figure)
    return tuple(figures)


def _case_figure(step: Step, outcome: Outcome, dropout: bool) -> Figure | None:
    """The first of the case's outputs that is a matrix and differs from the reference's."""
    if not _answered(step, outcome):
        return None
    try:
        triples = expected_and_obtained(step, outcome)
    except CheckFailed:  # the wrong structure: the message says so, nothing to draw
        return None
    for label, expected, obtained in triples:
        figure = matrix_figure(f"{outcome.title}: {label}", expected, obtained, step.atol,
                               step.rtol, outcome.case.labels, dropout)
        if figure is not None:
            if dropout:
                figure = _with_scale(figure, outcome)
            return figure
    return None


def _answered(step: Step, outcome: Outcome) -> bool:
    if step.kind == "class":
        return outcome.module is not None and outcome.module.outputs is not None
    if step.kind == "procedure":
        return getattr(outcome.obtained, "shells", None) is not None
    return isinstance(outcome.obtained, Returned)


def matrix_figure(title: str, expected, obtained, atol: float, rtol: float, labels=None,
                  dropout: bool = False) -> Figure | None:
    """A figure of two same-shaped tensors (a vector is one row) whose last two dimensions are at
    most FIGURE_SIDE, showing the matrix (of the leading dimensions, the slice where they differ most)
    where some cell is outside atol + rtol * |expected|; None otherwise (a dropout sample's
    figure is made when it differs at all: its pattern is random)."""
    if not (isinstance(expected, torch.Tensor) and isinstance(obtained, torch.Tensor)):
        return None
    if obtained.shape != expected.shape or expected.dim() == 0 or expected.numel() == 0:
        return None
    if expected.dim() == 1:  # one query's weights: a matrix of one row
        expected, obtained = expected.unsqueeze(0), obtained.unsqueeze(0)
    if expected.shape[-1] > FIGURE_SIDE or expected.shape[-2] > FIGURE_SIDE:
        return None
    if expected.is_complex() or obtained.is_complex():
        return None
    e, o = expected.detach().double(), obtained.detach().double()
    outside = ~torch.isclose(o, e, rtol=rtol, atol=atol, equal_nan=True)
    if not bool(outside.any()):
        return None
    index = _worst_slice(e, o, outside)
    note = f"slice {index} of shape {shape_text(expected.shape)}" if index else ""
    e, o, outside = e[index], o[index], outside[index]
    if index:
        note = "shown: " + note
    return Figure(title=title, expected=_rows(e), obtained=_rows(o),
                  outside=tuple(tuple(bool(x) for x in row) for row in outside.tolist()),
                  **_axes(labels, e.shape), kind="dropout" if dropout else "values", note=note)


def _worst_slice(e: torch.Tensor, o: torch.Tensor, outside: torch.Tensor) -> tuple[int, ...]:
    """The leading index of the matrix with the most cells outside tolerance (the first of those)."""
    if e.dim() == 2:
        return ()
    counts = outside.flatten(0, -3).sum(dim=(-1, -2))
    flat = int(counts.argmax().item())
    index = []
    for size in reversed(e.shape[:-2]):
        index.append(flat % size)
        flat //= size
    return tuple(reversed(index))


def _rows(matrix: torch.Tensor) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(x) for x in row) for row in matrix.tolist())


def _axes(labels, shape) -> dict:
    """The figure's row and column labels and names: the case's where they fit the matrix."""
    rows = tuple(labels.rows) if labels is not None and len(labels.rows) == shape[0] else ()
    cols = tuple(labels.cols) if labels is not None and len(labels.cols) == shape[1] else ()
    row_name = labels.row_name if labels is not None and labels.row_name else (
        "query" if rows else "row")
    col_name = labels.col_name if labels is not None and labels.col_name else (
        "key" if cols else "column")
    return {"rows": rows, "cols": cols, "row_name": row_name, "col_name": col_name}


def _with_scale(figure: Figure, outcome: Outcome) -> Figure:
    """A dropout figure's note: the share kept and the factor kept cells were scaled by, expected
    and obtained, read from the case's input."""
    args = outcome.expected.args
    if len(args) < 2 or not isinstance(args[0], torch.Tensor):
        return figure
    try:
        p = float(args[1])
    except (TypeError, ValueError):
        return figure
    x = args[0].detach().double()
    while x.dim() > 2:
        x = x[0]
    if tuple(x.shape) != (len(figure.expected), len(figure.expected[0])):
        return figure
    parts = []
    for who, rows in (("expected", figure.expected), ("yours", figure.obtained)):
        values = torch.tensor(rows, dtype=torch.float64)
        kept = (values != 0) & (x != 0)
        share = float(kept.double().mean())
        scale = (values[kept] / x[kept]).median().item() if bool(kept.any()) else math.nan
        parts.append(f"{who}: {share:.0%} kept, scaled by {scale:.4g}")
    want = 1 / (1 - p) if p < 1 else math.inf
    note = f"p = {p:g}, kept cells scaled by 1 / (1 - p) = {want:.4g}; " + "; ".join(parts)
    return Figure(**{**figure.__dict__, "note": "; ".join(filter(None, (figure.note, note)))})


__all__ = ["PICTURED", "figures_for", "matrix_figure"]
