"""`attention-grader course-check`: what students checking themselves cannot see.

A student bundle (grader/bundle.py) grades the visible cases only. A known mistake (the rubric's
`mistakes:` of a step, implemented in the course's mistakes file, grader/diagnose.py) that loses
points only on a hidden case gets full marks when students check themselves, and one that loses
none anywhere is never caught. Each known mistake is graded here as a student would be, in the
grader's process and without a worker: its answers on every case (computed as the diagnoser
computes them) stand in for a student's reply, judged by the step's checks on the visible cases
alone and on all of them. Findings:

    hidden only   a mistake with full marks on the visible cases, caught by hidden ones (named)
    uncaught      a mistake with full marks on every case: no case of the step tells it apart
    no check      a case that no check of its step looks at (it costs time and shows nothing)

Each finding is one line naming the step, the case or cases and the mistake.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from .bundle import visible_step
from .cases import Expected, PreparedStep, reference_reply
from .checks import Outcome, run_checks
from .errors import UsageError
from .registry import applies
from .rubric import Rubric, Step


@dataclass(frozen=True)
class Finding:
    kind: str  # "hidden only", "uncaught" or "no check"
    step: str
    text: str

    def line(self) -> str:
        return f"{self.step}: {self.kind}: {self.text}"


def course_findings(rubric: Rubric) -> list[Finding]:
    """Every finding of a course's rubric, in the order of its steps."""
    from .engine import prepare

    if rubric.reference is None:
        raise UsageError(f"{rubric.path} is a student bundle's rubric: course-check grades the known "
                         "mistakes against the reference, so give it the course's own rubric")

    prepared, diagnoser = prepare(rubric, list(rubric.steps))
    findings: list[Finding] = []
    for each in prepared:
        findings += idle_cases(each.step)
        for mistake, answers in mistake_answers(each, diagnoser):
            findings += mistake_findings(each, mistake, answers)
    return findings


def idle_cases(step: Step) -> list[Finding]:
    """The cases of a step that no check looks at."""
    return [Finding("no check", step.id, f"case `{case.name}` reaches no check: give a check "
                    f"`cases: [{case.name}]`, or remove the case")
            for case in step.cases if not any(applies(check, case) for check in step.checks)]


def mistake_answers(prepared: PreparedStep, diagnoser) -> Iterable[tuple[str, list[Expected]]]:
    """Each variant of each known mistake of the step, with its answers on every case (the
    reference's stand-ins given where a case replays submodules, as a student's module gets)."""
    step = prepared.step
    preparer = diagnoser.preparer
    for mistake in step.mistakes:
        for variant in diagnoser.known[mistake].implementations[step.id]:
            answers = [preparer.expect(step, e.case, variant, f"mistake {mistake} on {step.id}."
                                       f"cases[{index}]", tolerant=True,
                                       replays=diagnoser.replays.get((step.id, e.case.name)))
                       for index, e in enumerate(prepared.expected)]
            yield mistake, answers


def mistake_findings(prepared: PreparedStep, mistake: str, answers: list[Expected]) -> list[Finding]:
    """Whether students checking themselves see a mistake: a finding where its visible cases give
    it full marks."""
    step = prepared.step
    outcomes = [Outcome(e, reference_reply(step, answer))
                for e, answer in zip(prepared.expected, answers)]
    visible = [c.name for c in step.cases if c.visible]
    if visible and not full_marks(step, outcomes, visible):
        return []
    hidden = [c.name for c in step.cases if not c.visible]
    if full_marks(step, outcomes, visible + hidden):
        return [Finding("uncaught", step.id, f"mistake `{mistake}` gets full marks on every case "
                        f"({', '.join(visible + hidden)}): add a case it answers differently")]
    catching = [name for name in hidden if not full_marks(step, outcomes, visible + [name])]
    shown = "the step has no visible case" if not visible else (
        f"full marks on the visible case(s) {', '.join(visible)}")
    return [Finding("hidden only", step.id, f"mistake `{mistake}`: {shown}; only the hidden "
                    f"case(s) {', '.join(catching or hidden)} catch it, so students checking "
                    "themselves see full marks: make one such case visible")]


def full_marks(step: Step, outcomes: list[Outcome], names: list[str]) -> bool:
    """Whether the outcomes of the cases named get every point the checks that look at them give."""
    chosen = only_cases(step, names)
    if chosen is None:
        return True
    judged = [o for o in outcomes if o.case.name in names]
    results = run_checks(chosen, judged)
    return all(result.passed for result in results)


def only_cases(step: Step, names: list[str]) -> Step | None:
    """The step with only the cases named and the checks that still look at one of them (as a
    bundle's visible step is made)."""
    cases = tuple(case for case in step.cases if case.name in names)
    marked = tuple(dataclasses.replace(case, visible=True) for case in cases)
    trimmed = visible_step(dataclasses.replace(step, cases=marked))
    if trimmed is None or not trimmed.checks:
        return None
    return dataclasses.replace(trimmed, cases=cases)


def main(rubric: Rubric, out) -> int:
    """Print the findings, one a line, and a summary; 1 where there is any, else 0."""
    findings = course_findings(rubric)
    for finding in findings:
        print(finding.line(), file=out)
    if findings:
        print(f"{len(findings)} finding(s) in {rubric.path}: students checking themselves cannot see "
              "these", file=out)
        return 1
    print(f"{rubric.path}: every known mistake loses points on a visible case, and every case "
          "reaches a check", file=out)
    return 0
