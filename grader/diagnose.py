"""Name the mistake: match a failed step against the known mistakes the rubric lists for it.

A known mistake is an alternative implementation of the step with that one mistake (kept with the
reference solutions, in the rubric's `mistakes:` file). It explains a failure when, on the very same
inputs and weights, it behaves exactly as the student's code did: it raises where the student's code
raised (same exception type), and elsewhere the student's outputs pass every comparison check
against it. Runs in the grader's process, like the reference; the student's code is not run again.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from .cases import Preparer
from .checks import MATCHING_CHECKS, Outcome, run_checks
from .errors import RubricError
from .rubric import Rubric, Step


@dataclass(frozen=True)
class Diagnosis:
    id: str
    title: str
    explanation: str
    hint: str


class Diagnoser:
    def __init__(self, rubric: Rubric, preparer: Preparer):
        self.preparer = preparer
        self.known = load_mistakes(rubric) if rubric.mistakes else {}
        self._answers: dict = {}  # (step, variant, case) -> the mistake's Expected
        self._lock = threading.Lock()
        for index, step in enumerate(rubric.steps):
            for mistake in step.mistakes:
                if mistake not in self.known:
                    raise RubricError(rubric.path, f"steps[{index}].mistakes",
                                      f"unknown mistake {mistake!r}; {rubric.mistakes} defines: "
                                      f"{', '.join(sorted(self.known))}")
                if step.id not in self.known[mistake].implementations:
                    raise RubricError(rubric.path, f"steps[{index}].mistakes",
                                      f"mistake {mistake!r} has no implementation for step {step.id!r}")

    def explain(self, step: Step, outcomes: list[Outcome]) -> Diagnosis | None:
        """The first listed mistake that behaves exactly as the student's code did, if any."""
        for mistake_id in step.mistakes:
            mistake = self.known[mistake_id]
            for variant in mistake.implementations[step.id]:
                if self._explains(step, variant, outcomes):
                    return Diagnosis(mistake_id, mistake.title, mistake.explanation, mistake.hint)
        return None

    def _explains(self, step: Step, variant, outcomes: list[Outcome]) -> bool:
        def expect(case, index):
            # The same for every submission of a class: computed once, then reused.
            key = (step.id, id(variant), case.name)
            with self._lock:  # the preparer seeds torch's global generator: one thread at a time
                if key not in self._answers:
                    self._answers[key] = self.preparer.expect(
                        step, case, variant, f"mistake for {step.id}.cases[{index}]", tolerant=True)
                return self._answers[key]

        return explains(step, outcomes, expect)


def explains(step: Step, outcomes: list[Outcome], expect) -> bool:
    """Whether a known mistake, whose answer on each case `expect(case, index)` gives, behaves on
    every case exactly as the student's code did."""
    matching = dataclasses.replace(
        step, checks=tuple(c for c in step.checks if c.check in MATCHING_CHECKS))
    twins = []
    for index, outcome in enumerate(outcomes):
        expected = expect(outcome.case, index)
        error = outcome.obtained.get("error") if not outcome.obtained.get("ok") else None
        if outcome.case.raises:
            twins.append(Outcome(expected, outcome.obtained))
            continue
        if error is not None or expected.raised is not None:
            if error is None or expected.raised != error["type"]:
                return False  # one raised and the other did not, or not the same way
            continue
        twins.append(Outcome(expected, outcome.obtained))
    if not twins:
        return True  # it raised exactly where the student's code raised
    return all(check.passed for check in run_checks(matching, twins))


def load_mistakes(rubric: Rubric) -> dict:
    """Import the known-mistakes file by path, in the grader's process only."""
    path: Path = rubric.mistakes
    name = "_attention_grader_mistakes"
    module = sys.modules.get(name)
    if module is None or getattr(module, "__file__", None) != str(path):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    known = getattr(module, "MISTAKES", None)
    if not isinstance(known, dict):
        raise RubricError(rubric.path, "mistakes", f"{path} defines no MISTAKES mapping")
    return known
