"""Name the mistake: match a failed step against the known mistakes the rubric lists for it.

A known mistake is an alternative implementation of the step with that one mistake (kept with the
reference solutions, in the rubric's `mistakes:` file). It is named from the cases that failed:

- a case failed when the student's code raised where the reference did not, or failed a check a
  mistake can explain (`registry.MATCHING`: shapes, values, structure, dropout statistics,
  refusals);
  if no case failed that way (say only `dropout_train_eval` did), no mistake is named;
- a mistake explains the failure when, on every failed case and on the very same inputs and
  weights, it behaves as the student's code did: it raises the same exception, with the same first
  line of its message, where the student's code raised, and elsewhere the student's outputs pass
  every matching check against its answers. Where the mistake's module is built differently from
  the reference's (a mask that is not a buffer), the student's must be built the same way, so
  nothing matches vacuously.

Cases the student got right take no part, so a full run and a `--seed` replay of one failed case
name the same mistake. Dropout is compared by its statistics (the fraction zeroed, the survivors'
scale), never by its random stream. Runs in the grader's process, like the reference; the student's
code is not run again.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .cases import Expected, Preparer
from .checks import Outcome, absent_parameter, run_checks
from .errors import RubricError
from .quiet import course_code
from .registry import REGISTRY
from .replies import Raised
from .rubric import Rubric, Step


@dataclass(frozen=True)
class Diagnosis:
    id: str
    title: str
    explanation: str
    hint: str


# One variant of one mistake: its diagnosis and its answer on a case, `expect(case, index)`.
Candidate = tuple[Diagnosis, Callable[..., Expected]]


class Diagnoser:
    def __init__(self, rubric: Rubric, preparer: Preparer):
        self.preparer = preparer
        self.known = load_mistakes(rubric) if rubric.mistakes else {}
        self._answers: dict = {}  # (step, variant id(s), case) -> the mistake's Expected
        self._combined: dict = {}  # (id, id) -> two variants combined into one, or None
        self._lock = threading.Lock()
        # (step, case) -> the stand-ins the student's module gets: a mistake is answered with them
        self.replays: dict[tuple[str, str], list] = {}
        for index, step in enumerate(rubric.steps):
            for mistake in step.mistakes:
                if mistake not in self.known:
                    raise RubricError(rubric.path, f"steps[{index}].mistakes",
                                      f"unknown mistake {mistake!r}; {rubric.mistakes} defines: "
                                      f"{', '.join(sorted(self.known))}")
                if step.id not in self.known[mistake].implementations:
                    raise RubricError(rubric.path, f"steps[{index}].mistakes",
                                      f"mistake {mistake!r} has no implementation for step {step.id!r}")

    def explain(self, step: Step, outcomes: list[Outcome]) -> tuple[Diagnosis, ...] | None:
        """The mistake that explains the failure: `(diagnosis,)`, or two made together; `()` when
        no listed mistake does; None when nothing failed that a known mistake could explain."""
        return explain(step, outcomes, self._candidates(step), self._pairs(step))

    def answers(self, step: Step, case, index: int) -> Iterable[Expected]:
        """Each known mistake's answer on one case of the step (computed once per class)."""
        for _, expect in self._candidates(step):
            yield expect(case, index)

    def _variants(self, step: Step):
        for mistake_id in step.mistakes:
            mistake = self.known[mistake_id]
            diagnosis = Diagnosis(mistake_id, mistake.title, mistake.explanation, mistake.hint)
            for variant in mistake.implementations[step.id]:
                yield diagnosis, variant

    def _candidates(self, step: Step) -> Iterable[Candidate]:
        for diagnosis, variant in self._variants(step):
            yield diagnosis, self._expecter(step, variant, (id(variant),))

    def _pairs(self, step: Step) -> Iterable[tuple[Diagnosis, Diagnosis, Callable[..., Expected]]]:
        """Two mistakes made together: variants that say how they combine (`combine`)."""
        variants = [(d, v) for d, v in self._variants(step) if callable(getattr(v, "combine", None))]
        for (first, a), (second, b) in itertools.combinations(variants, 2):
            if first.id == second.id:
                continue
            key = (id(a), id(b))
            with self._lock:
                if key not in self._combined:
                    self._combined[key] = a.combine(b)
            if self._combined[key] is not None:
                yield first, second, self._expecter(step, self._combined[key], key)

    def _expecter(self, step: Step, variant, key: tuple) -> Callable[..., Expected]:
        def expect(case, index):
            # The same for every submission of a class: computed once, then reused.
            key_of_case = (step.id, *key, case.name)
            with self._lock:  # the preparer seeds torch's global generator: one thread at a time
                if key_of_case not in self._answers:
                    self._answers[key_of_case] = self.preparer.expect(
                        step, case, variant, f"mistake for {step.id}.cases[{index}]", tolerant=True,
                        replays=self.replays.get((step.id, case.name)))
                return self._answers[key_of_case]

        return expect


def explain(step: Step, outcomes: list[Outcome], candidates: Iterable[Candidate],
            pairs: Iterable = ()) -> tuple[Diagnosis, ...] | None:
    """The first candidate that behaves as the student's code did on every failed case; failing
    that, the first pair of mistakes whose combination does."""
    matching = dataclasses.replace(
        step, checks=tuple(c for c in step.checks if REGISTRY[c.check].matching and c.check != "raises"))
    failed = [o for o in outcomes if _failed(matching, o)]
    if not failed:
        return None
    for diagnosis, expect in candidates:
        if all(_agrees(matching, o, expect(o.case, step.cases.index(o.case))) for o in failed):
            return (diagnosis,)
    for first, second, expect in pairs:
        if all(_agrees(matching, o, expect(o.case, step.cases.index(o.case))) for o in failed):
            return (first, second)
    return ()


def _failed(matching: Step, outcome: Outcome) -> bool:
    """Whether the student's code went wrong on this case in a way a known mistake can explain."""
    obtained = outcome.obtained
    if outcome.case.raises:
        return not (isinstance(obtained, Raised) and obtained.error.type in outcome.case.raises)
    if isinstance(obtained, Raised):
        return not absent_parameter(outcome)  # a case the signature cannot take shows no mistake
    if outcome.expected.own_weights:
        return False  # not run on the grader's weights: nothing to compare
    module = outcome.module
    if module is not None and module.forward_error is not None:
        return True
    if module is not None and module.harness_error:
        return False  # the grader could not run it: nothing to compare
    names_only = outcome.expected.binding is not None  # bound by structure: names cost no mistake
    return any(c.judged and not c.passed and not (names_only and c.name == "parameters")
               for c in run_checks(matching, [outcome]))


def _agrees(matching: Step, outcome: Outcome, mistake: Expected) -> bool:
    """Whether the mistake's answer on this case is what the student's code gave."""
    obtained = outcome.obtained
    if isinstance(obtained, Raised):
        return _same_error(mistake, obtained.error)
    module = outcome.module
    if module is not None and module.forward_error is not None:
        return _same_error(mistake, module.forward_error)
    if mistake.raised is not None or outcome.case.raises:
        return False
    if module is not None and not _built_alike(outcome.expected, module, mistake):
        return False
    binding = outcome.expected.binding  # bound by structure: the same binding, names aside
    mistake = dataclasses.replace(mistake, binding=binding)
    judged = [c for c in run_checks(matching, [Outcome(mistake, obtained)]) if c.judged
              and not (binding is not None and c.name == "parameters")]
    return bool(judged) and all(c.passed for c in judged)


def _same_error(mistake: Expected, error) -> bool:
    """The same exception with the same first line: many mistakes raise a RuntimeError, but each
    names its own sizes and dimensions."""
    first = (error.message.strip().splitlines() or [""])[0]
    return mistake.raised == error.type and mistake.raised_message == first


def _built_alike(reference: Expected, module, mistake: Expected) -> bool:
    """Where the mistake's module is built unlike the reference's, the student's is built alike."""
    if mistake.buffers != reference.buffers and dict(module.buffers) != mistake.buffers:
        return False
    mistake_shapes = {n: tuple(p.shape) for n, p in mistake.parameters.items()}
    reference_shapes = {n: tuple(p.shape) for n, p in reference.parameters.items()}
    return mistake_shapes == reference_shapes or module.shapes() == mistake_shapes


def load_mistakes(rubric: Rubric) -> dict:
    """Import the known-mistakes file by path, in the grader's process only."""
    path: Path = rubric.mistakes
    name = "_attention_grader_mistakes"
    module = sys.modules.get(name)
    if module is None or getattr(module, "__file__", None) != str(path):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        with course_code():
            spec.loader.exec_module(module)
    known = getattr(module, "MISTAKES", None)
    if not isinstance(known, dict):
        raise RubricError(rubric.path, "mistakes", f"{path} defines no MISTAKES mapping")
    return known
