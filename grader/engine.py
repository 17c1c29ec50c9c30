"""grade(): read the submission, run it in a worker, compare with the reference, explain.

    rubric     = load_rubric(...)                 the course's config.yaml, validated
    submission = read_submission(...)             .py or .ipynb into code chunks; never run here
    session    = Session(submission, rubric)      a worker process starts running the code
    prepared   = Preparer(...).prepare(step)      the grader's inputs and the reference's answers
    reply      = session.run(prepared)            what the worker said, typed (grader/replies.py)
    result     = judge(prepared, reply, context)  checks with numbers, diagnosis -> a StepResult
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from . import __version__
from .models import Report, StepResult, total
from .paths import find_rubric
from .registry import applies
from .replies import Died, LoadFailed, LoadReply, Malformed, MalformedReply, StepReply, TimedOut
from .rubric import Rubric, Step, load_rubric
from .sandbox import Limits, Worker, WorkerDied, WorkerTimeout
from .submission import Submission, UnreadableSubmission, read_submission

GRACE = 5.0  # seconds past a time limit before a worker that ignores its alarm is killed


def grade(submission: str | Path | Submission, *, rubric: str | Path | Rubric | None = None,
          steps: list[str] | None = None, seed: int | None = None) -> Report:
    """Grade one submission (a file, or code already read) against the rubric; every chosen step
    is in the report. With `seed` (and one step), only that step's case with this seed is replayed.
    Without `rubric`, the rubric is found by the rule in grader/paths.py.
    """
    started = time.monotonic()
    rubric = rubric if isinstance(rubric, Rubric) else load_rubric(find_rubric(rubric))
    chosen = [rubric.step(s) for s in steps] if steps else list(rubric.steps)
    if seed is not None:
        chosen = [replay_case(step, seed) for step in chosen]
    try:
        read = submission if isinstance(submission, Submission) else read_submission(submission)
    except UnreadableSubmission as problem:
        return _report(str(submission), rubric, [_unread(step) for step in chosen],
                       (str(problem),), started, unreadable=str(problem))
    session = Session(read, rubric)  # the worker starts now and imports torch ...
    try:
        # ... while this process does the same: the two imports overlap on two cores.
        prepared, diagnoser = prepare(rubric, chosen)
        results = [_graded(session, p, diagnoser) for p in prepared]
    finally:
        session.close()
    return _report(read.path, rubric, results, session.notes(), started, session.sandbox)


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
    try:
        results = [_graded(session, p, diagnoser) for p in prepared]
    finally:
        session.close()
    return _report(submission.path, rubric, results, (*notes, *session.notes()), started,
                   session.sandbox)


def unreadable_report(path: str, rubric: Rubric, problem: str, notes: tuple[str, ...] = ()) -> Report:
    """The complete report (every step present) of a submission that could not be read."""
    return _report(path, rubric, [_unread(step) for step in rubric.steps], (*notes, problem),
                   time.monotonic(), unreadable=problem)


def hidden_paths(rubric: Rubric) -> tuple[str, ...]:
    """What the worker must not see: the folders of the reference and the known mistakes and, in
    the repository that holds them, its history (`.git`: every committed version of the
    reference), its tests and its examples (graded submissions, some of them right)."""
    folders = {path.resolve().parent for path in (rubric.reference, rubric.mistakes) if path}
    for folder in list(folders):
        root = next((a for a in (folder, *folder.parents) if (a / ".git").is_dir()), None)
        if root is not None:
            folders |= {root / ".git", root / "tests", root / "examples"}
    return tuple(sorted(str(folder) for folder in folders if folder.is_dir()))


def _graded(session: Session, prepared, diagnoser) -> StepResult:
    """Run one step in the session's worker, then judge the typed reply."""
    from .judge import Context, judge

    started = time.monotonic()
    reply = session.run(prepared)
    context = Context(session.load or session.first_load, session.submission, diagnoser,
                      session.rubric.defaults)
    return judge(prepared, reply, context, time.monotonic() - started)


def replay_case(step: Step, seed: int) -> Step:
    """The step with only its case of this seed, and the checks that apply to that case.

    A refusal case keeps the step's first valid case beside it, unscored: a refusal only counts
    from code that builds on valid arguments."""
    cases = [case for case in step.cases if case.seed == seed]
    if not cases:
        seeds = ", ".join(str(case.seed) for case in step.cases)
        raise KeyError(f"step {step.id!r} has no case with seed {seed}; its seeds are: {seeds}")
    case = cases[0]
    checks = tuple(check for check in step.checks if applies(check, case))
    kept = (case,)
    if case.raises:
        kept = tuple(c for c in step.cases if not c.raises)[:1] + (case,)
    return dataclasses.replace(step, cases=kept, checks=checks,
                               points=sum(check.points for check in checks))


def _report(path: str, rubric: Rubric, results: list[StepResult], notes, started,
            sandbox: dict | None = None, unreadable: str = "") -> Report:
    score, max_score = total(results)
    if rubric.expected is not None:
        from .bundle import HIDDEN_NOTE

        notes = (*notes, HIDDEN_NOTE)
    sandbox = {"layers": list(sandbox.get("layers", [])), "refused": dict(sandbox.get("refused", {}))
               } if sandbox else {}
    return Report(path, score, max_score, tuple(results), tuple(notes), rubric.path, __version__,
                  round(time.monotonic() - started, 3), sandbox, unreadable)


def _unread(step: Step) -> StepResult:
    return StepResult(step.id, step.title, step.section, "missing", 0.0, step.points,
                      "Not graded: the submission could not be read (see the note).",
                      hints=step.hints)


class Session:
    """The worker for one submission, restarted after a step that hangs or crashes it.

    `run` sends a step's cases and returns the worker's typed reply (`grader.replies`); it never
    judges. A worker that is stopped, dies or sends a broken reply is a reply too.
    """

    def __init__(self, submission: Submission, rubric: Rubric, zygote=None):
        self.zygote = zygote  # a warm worker factory (batch grading), or None: start from scratch
        self.submission = submission
        self.rubric = rubric
        self.worker: Worker | None = None
        self.load: LoadReply | None = None
        self.load_failure: LoadFailed | None = None  # given for every step
        self.first_load: LoadReply | None = None  # what the code raised the first time it ran
        self.restarts = 0
        self.deadline = time.monotonic() + rubric.defaults.submission_timeout
        self.printed: list[str] = []  # output of workers that were stopped, for the notes
        self.sandbox: dict = {}  # what the first worker's confinement applied (before any code ran)
        self._start()

    def _start(self) -> None:
        defaults = self.rubric.defaults
        limits = Limits.of(defaults)
        # The reference solutions are hidden from the worker where the platform allows.
        hide = hidden_paths(self.rubric)
        self.worker = Worker(self.submission, limits, hide=hide,
                             load_timeout=defaults.load_timeout, zygote=self.zygote,
                             require=self.rubric.require)
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
            if self.first_load is None:
                self.first_load = self.load
        except WorkerTimeout:
            self.load_failure = LoadFailed("timeout", limit=limit)
        except WorkerDied as died:
            self.load_failure = LoadFailed("died", died.reason)
            self._keep_output()
        except MalformedReply as problem:
            self.load_failure = LoadFailed("died", f"its process sent a broken reply ({problem})")
        finally:
            self.sandbox = self.sandbox or self.worker.sandbox

    def run(self, prepared) -> StepReply:
        step = prepared.step
        if self.load_failure is None:
            self._ensure_loaded()
        if self.load_failure is not None:
            return self.load_failure
        left = self.deadline - time.monotonic()
        if left <= 0:
            return TimedOut(self.rubric.defaults.submission_timeout, whole_submission=True)
        timeout = min(step.timeout, left)
        request = {**prepared.request, "timeout": timeout,
                   "limits": {"memory_bytes": step.memory_mb * 1024 * 1024,
                              "cpu_seconds": step.cpu_seconds}}
        started = time.monotonic()
        try:
            return self.worker.run_step(request, timeout + GRACE)
        except WorkerTimeout:
            self._discard()
            return TimedOut(timeout)
        except WorkerDied as died:
            self._keep_output()
            self._discard()
            return Died(died.reason, time.monotonic() - started)
        except MalformedReply as problem:
            self._discard()  # whatever sent it is not to be trusted with another step
            return Malformed(str(problem))

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
        for error in self.first_load.errors if self.first_load else ():
            where = error.location or "your file"
            if error.timeout:
                notes.append(f"{where} was stopped: your code may take "
                             f"{self.rubric.defaults.load_timeout:g} s to run, in all; what came "
                             "after it did not run.")
            else:
                notes.append(f"{where} raised {error.text()}; the code after it in that cell "
                             "or file did not run.")
        for output in self.printed[:1]:
            notes.append(f"What your code printed before it was stopped:\n{output}")
        return notes

    def close(self) -> None:
        self._discard()


__all__ = ["Session", "grade", "grade_prepared", "prepare",
           "unreadable_report"]
