"""The result types: what grading produces and every reporter reads.

A `Report` is built once, from `StepResult`s made of `CheckResult`s; reporters (text, Markdown,
JSON) only read it. JSON goes through one `to_json` / `from_json` pair.
"""

from __future__ import annotations

import copy
import json
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
             "hints": tuple(step.hints)}
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


__all__ = ["STATUSES", "CheckResult", "Report", "Status", "StepResult", "total"]
