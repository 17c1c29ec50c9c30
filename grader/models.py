"""The result types: what grading produces and every reporter reads.

A `Report` is built once, from `StepResult`s made of `CheckResult`s; reporters (text, Markdown,
JSON) only read it. JSON goes through one `to_json` / `from_json` pair.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, Literal

Status = Literal["passed", "failed", "error", "timeout", "missing", "not_implemented"]
STATUSES: tuple[str, ...] = ("passed", "failed", "error", "timeout", "missing", "not_implemented")


@dataclass(frozen=True)
class CheckResult:
    """One scored check of one step (shape, values, rows sum to one, ...)."""

    name: str
    passed: bool
    score: float
    max_score: float
    message: str  # one line: what was checked and, when it failed, by how much
    judged: bool = True  # False: the evidence it needs was missing, so it earned nothing

    @property
    def outcome(self) -> Literal["passed", "failed", "not_judged"]:
        return "passed" if self.passed else "failed" if self.judged else "not_judged"


FIGURE_SIDE = 32  # the largest matrix a figure holds, in rows and in columns
FIGURES_PER_STEP = 2


@dataclass(frozen=True)
class Figure:
    """A failed visible case's matrix, the expected beside the obtained, for the reports to draw
    (grader.figures builds it, grader.report.figures draws it). Values are plain floats, NaN and
    the infinities included; `outside` marks the cells outside the step's tolerance."""

    title: str  # what it shows, e.g. "case `book`: output"
    expected: tuple[tuple[float, ...], ...]
    obtained: tuple[tuple[float, ...], ...]
    outside: tuple[tuple[bool, ...], ...]
    rows: tuple[str, ...] = ()  # the rows' labels (the case's tokens); empty: their indexes
    cols: tuple[str, ...] = ()
    row_name: str = "row"  # what a row is, e.g. "query"
    col_name: str = "column"  # e.g. "key"
    kind: str = "values"  # "values", or "dropout": kept and dropped cells, with the scale
    note: str = ""  # a sentence under the picture: the slice shown, the dropout scale

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["expected"] = [[_plain_float(x) for x in row] for row in self.expected]
        data["obtained"] = [[_plain_float(x) for x in row] for row in self.obtained]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Figure:
        """The figure `to_dict` gave, cut to FIGURE_SIDE rows and columns."""
        side = FIGURE_SIDE

        def matrix(rows, kind):
            return tuple(tuple(kind(x) for x in row[:side]) for row in rows[:side])

        return cls(title=str(data["title"]), expected=matrix(data["expected"], _read_float),
                   obtained=matrix(data["obtained"], _read_float),
                   outside=matrix(data["outside"], bool),
                   rows=tuple(map(str, data.get("rows", ())))[:side],
                   cols=tuple(map(str, data.get("cols", ())))[:side],
                   row_name=str(data.get("row_name", "row")),
                   col_name=str(data.get("col_name", "column")),
                   kind=str(data.get("kind", "values")), note=str(data.get("note", "")))


def _plain_float(x: float) -> float | str:
    """A float as strict JSON holds it: NaN and the infinities as the strings "nan", "inf", "-inf"."""
    return x if math.isfinite(x) else str(x)


def _read_float(x: float | str) -> float:
    """What `_plain_float` wrote, back as a float (anything else: NaN)."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    return float(x) if x in ("nan", "inf", "-inf") else math.nan


@dataclass(frozen=True)
class StepResult:
    id: str
    title: str
    section: str
    status: Status
    score: float
    max_score: float
    feedback: str  # what the student reads: what went wrong, with numbers, and what to try
    checks: tuple[CheckResult, ...] = ()
    hints: tuple[str, ...] = ()
    mistake: str | None = None  # filled in by the known-mistake diagnosis
    location: str | None = None  # where the student's code raised, e.g. "code cell 5, line 3"
    seconds: float = 0.0
    figures: tuple[Figure, ...] = ()  # pictures of a failed visible case's matrices

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class Report:
    submission: str
    score: float
    max_score: float
    steps: tuple[StepResult, ...]
    notes: tuple[str, ...] = ()  # about the submission as a whole: load errors, printed output
    rubric: str = ""
    grader_version: str = ""
    seconds: float = 0.0
    sandbox: dict[str, Any] = field(default_factory=dict)  # layers applied, and refused with why
    unreadable: str = ""  # why the submission could not be read at all ("" when it was read)
    course: str = ""  # the course's short name, for titles (the rubric's `course.name`)
    exercise: str = ""  # the stem of the exercise file (the rubric's `course.exercise`), e.g. attention

    @property
    def heading(self) -> str:
        """The reports' title: "Chapter 3 attention exercises: grader report"."""
        if not self.course:
            return "Grader report"
        return f"{self.course[:1].upper()}{self.course[1:]}: grader report"

    @property
    def all_passed(self) -> bool:
        return all(step.passed for step in self.steps)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for step in self.steps:
            counts[step.status] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """What `dataclasses.asdict` gives, built directly (asdict deep-copies every field: it was
        a noticeable part of writing a class's results)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["steps"] = tuple(
            {**{f.name: getattr(step, f.name) for f in _STEP_FIELDS},
             "checks": tuple({f.name: getattr(c, f.name) for f in _CHECK_FIELDS} for c in step.checks),
             "hints": tuple(step.hints),
             "figures": tuple(figure.to_dict() for figure in step.figures)}
            for step in self.steps)
        data["sandbox"] = copy.deepcopy(self.sandbox)
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Report:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """The report `to_dict` gave (or its JSON, parsed); `data` is used up."""
        steps = []
        for step in data.pop("steps"):
            checks = tuple(CheckResult(**check) for check in step.pop("checks"))
            step["hints"] = tuple(step["hints"])
            step["figures"] = tuple(Figure.from_dict(f) for f in step.get("figures", ())
                                    )[:FIGURES_PER_STEP]
            steps.append(StepResult(checks=checks, **step))
        data["notes"] = tuple(data["notes"])
        return cls(steps=tuple(steps), **data)


_STEP_FIELDS = fields(StepResult)
_CHECK_FIELDS = fields(CheckResult)


def total(results: list[StepResult] | tuple[StepResult, ...]) -> tuple[float, float]:
    """The summed score and maximum of some step results."""
    return (
        round(sum(r.score for r in results), 6),
        round(sum(r.max_score for r in results), 6),
    )


__all__ = ["STATUSES", "CheckResult", "Figure", "Report", "Status", "StepResult", "total"]
