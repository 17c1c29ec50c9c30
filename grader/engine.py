"""grade(): read the submission, run it in a worker, compare with the reference, explain.

    rubric     = load_rubric(...)                 the course's config.yaml, validated
    submission = read_submission(...)             .py or .ipynb into code chunks; never run here
    session    = Session(submission, rubric)      a worker process starts running the code
    prepared   = Preparer(...).prepare(step)      the grader's inputs and the reference's answers
    reply      = session.run(prepared)            the student's outputs, as plain tensors
    result     = judge(prepared, reply)           checks with numbers -> a StepResult
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from . import __version__
from .models import Report, StepResult, total
from .rubric import CASE_NEEDS, Rubric, Step, load_rubric
from .sandbox import Limits, LoadResult, Worker, WorkerDied, WorkerTimeout
from .submission import Submission, UnreadableSubmission, read_submission

DEFAULT_RUBRIC = Path(__file__).resolve().parent.parent / "config.yaml"
GRACE = 5.0  # seconds past a time limit before a worker that ignores its alarm is killed


def grade(submission: str | Path | Submission, *, rubric: str | Path | Rubric = DEFAULT_RUBRIC,
          steps: list[str] | None = None, seed: int | None = None) -> Report:
    """Grade one submission (a file, or code already read) against the rubric; every chosen step
    is in the report. With `seed` (and one step), only that step's case with this seed is replayed.
    """
    started = time.monotonic()
    rubric = rubric if isinstance(rubric, Rubric) else load_rubric(rubric)
    chosen = [rubric.step(s) for s in steps] if steps else list(rubric.steps)
    if seed is not None:
        chosen = [replay_case(step, seed) for step in chosen]
    try:
        read = submission if isinstance(submission, Submission) else read_submission(submission)
    except UnreadableSubmission as problem:
        return _report(str(submission), rubric, [_unread(step) for step in chosen],
                       (str(problem),), started)
    session = Session(read, rubric)  # the worker starts now and imports torch ...
    try:
        # ... while this process does the same: the two imports overlap on two cores.
        prepared, diagnoser = prepare(rubric, chosen)
        session.diagnoser = diagnoser
        results = [session.run(p) for p in prepared]
    finally:
        session.close()
    return _report(read.path, rubric, results, session.notes(), started)


def prepare(rubric: Rubric, steps: list[Step]):
    """Every step's inputs and reference answers, and the mistake diagnoser: computed once, before
    any grading (a bad case is a rubric error here), and reusable for a whole class."""
    if rubric.expected is not None:  # a student bundle: the answers were computed by the course
        from .bundle import StoredAnswers

        return StoredAnswers(rubric).prepare(steps)
    from .cases import Preparer, load_reference
    from .diagnose import Diagnoser

    preparer = Preparer(rubric, load_reference(rubric.reference))
    prepared = [preparer.prepare(step) for step in steps]
    return prepared, Diagnoser(rubric, preparer)


def grade_prepared(submission: Submission, rubric: Rubric, prepared, diagnoser, zygote=None,
                   notes: tuple[str, ...] = ()) -> Report:
    """Grade code already read against steps already prepared (batch grading's inner loop)."""
    started = time.monotonic()
    session = Session(submission, rubric, zygote)
    session.diagnoser = diagnoser
    try:
        results = [session.run(p) for p in prepared]
    finally:
        session.close()
    return _report(submission.path, rubric, results, (*notes, *session.notes()), started)


def unreadable_report(path: str, rubric: Rubric, problem: str, notes: tuple[str, ...] = ()) -> Report:
    """The complete report (every step present) of a submission that could not be read."""
    return _report(path, rubric, [_unread(step) for step in rubric.steps], (*notes, problem),
                   time.monotonic())


def replay_case(step: Step, seed: int) -> Step:
    """The step with only its case of this seed, and the checks that apply to that case."""
    cases = [case for case in step.cases if case.seed == seed]
    if not cases:
        seeds = ", ".join(str(case.seed) for case in step.cases)
        raise KeyError(f"step {step.id!r} has no case with seed {seed}; its seeds are: {seeds}")
    case = cases[0]
    checks = tuple(check for check in step.checks
                   if (not check.cases or case.name in check.cases)
                   and (check.check == "raises") == bool(case.raises)
                   and CASE_NEEDS.get(check.check, lambda c: True)(case))
    return dataclasses.replace(step, cases=(case,), checks=checks,
                               points=sum(check.points for check in checks))


def _report(path: str, rubric: Rubric, results: list[StepResult], notes, started) -> Report:
    score, max_score = total(results)
    if rubric.expected is not None:
        from .bundle import HIDDEN_NOTE

        notes = (*notes, HIDDEN_NOTE)
    return Report(path, score, max_score, tuple(results), tuple(notes), rubric.path, __version__,
                  round(time.monotonic() - started, 3))


def _unread(step: Step) -> StepResult:
    return StepResult(step.id, step.title, step.section, "missing", 0.0, step.points,
                      "Not graded: the submission could not be read (see the note).",
                      hints=step.hints)


class Session:
    """The worker for one submission, restarted after a step that hangs or crashes it."""

    def __init__(self, submission: Submission, rubric: Rubric, zygote=None):
        self.zygote = zygote  # a warm worker factory (batch grading), or None: start from scratch
        self.submission = submission
        self.rubric = rubric
        self.worker: Worker | None = None
        self.load: LoadResult | None = None
        self.load_failure: tuple[str, str] | None = None  # (status, feedback) for every step
        self.load_errors: tuple[dict, ...] = ()  # what the code raised the first time it ran
        self.restarts = 0
        self.diagnoser = None  # names known mistakes; set once the reference is loaded
        self.deadline = time.monotonic() + rubric.defaults.submission_timeout
        self.printed: list[str] = []  # output of workers that were stopped, for the notes
        self._start()

    def _start(self) -> None:
        defaults = self.rubric.defaults
        limits = Limits.of(defaults)
        # The reference solutions' folder is hidden from the worker where the platform allows.
        hide = (str(self.rubric.reference.parent),) if self.rubric.reference else ()
        self.worker = Worker(self.submission, limits, hide=hide,
                             load_timeout=defaults.load_timeout, zygote=self.zygote)
        self.worker.start()
        self.load = None

    def _ensure_loaded(self) -> None:
        if self.worker is None:
            self.restarts += 1
            self._start()
        if self.load is not None:
            return
        limit = self.rubric.defaults.load_timeout
        try:
            # The worker interrupts code that runs too long itself; this is the backstop.
            self.load = self.worker.loaded(limit + GRACE)
            if not self.restarts:
                self.load_errors = self.load.errors
        except WorkerTimeout:
            self.load_failure = ("timeout", f"Your code did not finish running within {limit:g} s "
                                 "(is there an endless loop or a long training run at the top "
                                 "level?), so no step could be graded.")
        except WorkerDied as died:
            self.load_failure = ("error", f"While your code was loading, {died.reason}. Nothing "
                                 "could be graded; look for exit() calls or code that crashes at "
                                 "the top level.")
            self._keep_output()

    def run(self, prepared) -> StepResult:
        step = prepared.step
        if self.load_failure is None:
            self._ensure_loaded()
        if self.load_failure is not None:
            status, feedback = self.load_failure
            return result_for(step, status, feedback)
        started = time.monotonic()
        left = self.deadline - started
        if left <= 0:
            return result_for(step, "timeout", "Not run: the submission used up its "
                              f"{self.rubric.defaults.submission_timeout:g} s in all.")
        timeout = min(step.timeout, left)
        request = {**prepared.request, "timeout": timeout,
                   "limits": {"memory_bytes": step.memory_mb * 1024 * 1024,
                              "cpu_seconds": step.cpu_seconds}}
        try:
            reply = self.worker.request(request, timeout + GRACE)
        except WorkerTimeout:
            self._discard()
            return result_for(step, "timeout", f"`{step.id}` did not finish within {timeout:g} s "
                              "on the grader's cases, so it was stopped; look for an endless loop. "
                              "The other steps were still graded.",
                              seconds=time.monotonic() - started)
        except WorkerDied as died:
            seconds = time.monotonic() - started
            self._keep_output()
            self._discard()
            return result_for(step, "error", f"While running `{step.id}`, {died.reason} after "
                              f"{seconds:.1f} s. The other steps were still graded.", seconds=seconds)
        from .judge import judge

        return judge(prepared, reply, self.load, time.monotonic() - started, self.submission,
                     self.diagnoser)

    def _keep_output(self) -> None:
        if self.worker is not None and self.worker.printed is not None and self.worker.printed.total:
            self.printed.append(self.worker.output())

    def _discard(self) -> None:
        if self.worker is not None:
            self.worker.close()
        self.worker = None
        self.load = None

    def notes(self) -> list[str]:
        notes = list(self.submission.notes)
        for error in self.load_errors:
            where = error["location"] or "your file"
            if error.get("timeout"):
                notes.append(f"{where} was stopped: your code may take "
                             f"{self.rubric.defaults.load_timeout:g} s to run, in all; what came "
                             "after it did not run.")
            else:
                notes.append(f"{where} raised {error_text(error)}; the code after it in that cell "
                             "or file did not run.")
        for output in self.printed[:1]:
            notes.append(f"What your code printed before it was stopped:\n{output}")
        return notes

    def close(self) -> None:
        self._discard()


def result_for(step: Step, status: str, feedback: str, checks=(), *, location=None,
            seconds: float = 0.0) -> StepResult:
    checks = tuple(checks)
    score = round(sum(c.score for c in checks), 6) if checks else 0.0
    return StepResult(step.id, step.title, step.section, status, score, step.points, feedback,
                      checks, step.hints, None, location, round(seconds, 3))


def error_text(error: dict) -> str:
    message = error["message"].strip().splitlines()[0] if error["message"].strip() else ""
    return f"{error['type']}: {message}" if message else error["type"]


__all__ = ["DEFAULT_RUBRIC", "Session", "error_text", "grade", "grade_prepared", "prepare",
           "result_for", "unreadable_report"]
