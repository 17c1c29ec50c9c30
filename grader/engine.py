"""grade(): read the submission, run it in a worker, compare with the reference, explain.

    rubric     = load_rubric(...)                 the course's config.yaml, validated
    submission = read_submission(...)             .py or .ipynb into code chunks; never run here
    session    = Session(submission, rubric)      a worker process starts running the code
    prepared   = Preparer(...).prepare(step)      the grader's inputs and the reference's answers
    reply      = session.run(prepared)            the student's outputs, as plain tensors
    result     = judge(prepared, reply)           checks with numbers -> a StepResult
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from . import __version__
from .cases import Expected, PreparedStep, Preparer, load_reference
from .checks import NOT_JUDGED, OUTPUT_CHECKS, Outcome, run_checks
from .models import CheckResult, Report, StepResult, total
from .rubric import Rubric, Step, load_rubric
from .sandbox import LoadResult, Worker, WorkerDied, WorkerTimeout
from .submission import Submission, UnreadableSubmission, read_submission

DEFAULT_RUBRIC = Path(__file__).resolve().parent.parent / "config.yaml"


def grade(submission: str | Path, *, rubric: str | Path | Rubric = DEFAULT_RUBRIC,
          steps: list[str] | None = None) -> Report:
    """Grade one submission file against the rubric; every chosen step is in the report."""
    started = time.monotonic()
    rubric = rubric if isinstance(rubric, Rubric) else load_rubric(rubric)
    chosen = [rubric.step(s) for s in steps] if steps else list(rubric.steps)
    try:
        read = read_submission(submission)
    except UnreadableSubmission as problem:
        return _report(str(submission), rubric, [_unread(step, str(problem)) for step in chosen],
                       (str(problem),), started)
    session = Session(read, rubric)
    try:
        preparer = Preparer(rubric, load_reference(rubric.reference))
        results = [session.run(preparer.prepare(step)) for step in chosen]
    finally:
        session.close()
    return _report(str(submission), rubric, results, session.notes(), started)


def _report(path: str, rubric: Rubric, results: list[StepResult], notes, started) -> Report:
    score, max_score = total(results)
    return Report(path, score, max_score, tuple(results), tuple(notes), rubric.path, __version__,
                  round(time.monotonic() - started, 3))


def _unread(step: Step, problem: str) -> StepResult:
    return StepResult(step.id, step.title, step.section, "missing", 0.0, step.points,
                      f"Not graded: {problem}", hints=step.hints)


class Session:
    """The worker for one submission, restarted after a step that hangs or crashes it."""

    def __init__(self, submission: Submission, rubric: Rubric):
        self.submission = submission
        self.rubric = rubric
        self.worker: Worker | None = None
        self.load: LoadResult | None = None
        self.load_failure: tuple[str, str] | None = None  # (status, feedback) for every step
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        self.worker = Worker(self.submission)
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
            self.load = self.worker.loaded(limit)
        except WorkerTimeout:
            self.load_failure = ("timeout", f"Your code did not finish running within {limit:g} s "
                                 "(is there an endless loop or a long training run at the top "
                                 "level?), so no step could be graded.")
        except WorkerDied as died:
            self.load_failure = ("error", f"While your code was loading, {died}. "
                                 "Remove any exit() or sys.exit() calls and try again.")

    def run(self, prepared: PreparedStep) -> StepResult:
        step = prepared.step
        if self.load_failure is None:
            self._ensure_loaded()
        if self.load_failure is not None:
            status, feedback = self.load_failure
            return _result(step, status, feedback)
        started = time.monotonic()
        try:
            reply = self.worker.request(prepared.request, step.timeout)
        except WorkerTimeout:
            self._discard()
            return _result(step, "timeout", f"`{step.id}` did not finish within "
                           f"{step.timeout:g} s on the grader's cases; look for an endless loop.",
                           seconds=time.monotonic() - started)
        except WorkerDied as died:
            self._discard()
            return _result(step, "error", f"While running `{step.id}`, {died}.",
                           seconds=time.monotonic() - started)
        return judge(prepared, reply, self.load, time.monotonic() - started, self.submission)

    def _discard(self) -> None:
        if self.worker is not None:
            self.worker.close()
        self.worker = None
        self.load = None

    def notes(self) -> list[str]:
        notes = list(self.submission.notes)
        if self.load is not None:
            for error in self.load.errors:
                notes.append(f"{error['location'] or 'your file'} raised {_error_text(error)}; "
                             "the code after it in that cell or file did not run.")
        return notes

    def close(self) -> None:
        self._discard()


# ------------------------------------------------------------------------------ judging a step


def judge(prepared: PreparedStep, reply: dict, load: LoadResult | None, seconds: float,
          submission: Submission | None = None) -> StepResult:
    step = prepared.step
    if reply.get("missing"):
        error = _definition_error(step, load, submission)
        if error:
            return _result(step, "error", f"`{step.id}` was never defined: the code that defines it "
                           f"raised {_error_text(error)} at {error['location']}"
                           + (f":\n    {error['code']}" if error["code"] else "."),
                           location=error["location"], seconds=seconds)
        return _result(step, "missing", _missing_text(step, load), seconds=seconds)
    outcomes = [Outcome(e, r) for e, r in zip(prepared.expected, reply["results"])]
    errors = [o for o in outcomes if not o.obtained["ok"] and not o.case.raises]
    not_implemented = [o for o in outcomes + errors
                       if not o.obtained["ok"] and o.obtained["error"]["not_implemented"]]
    if not_implemented:
        where = not_implemented[0].obtained["error"]["location"]
        return _result(step, "not_implemented",
                       f"`{step.id}` still raises NotImplementedError"
                       + (f" ({where})" if where else "")
                       + ": replace that line with your implementation.", seconds=seconds)
    not_modules = [o for o in outcomes if o.obtained.get("not_module")]
    if not_modules:
        got = not_modules[0].obtained["not_module"]
        return _result(step, "failed", f"`{step.signature}` returned a {got}; expected an "
                       "nn.Module.", seconds=seconds)
    if errors:
        checks = run_checks(step, [o for o in outcomes if o.obtained["ok"] or o.case.raises])
        checks = [_not_judged(c, step, errors[0]) if c.name in OUTPUT_CHECKS else c for c in checks]
        error = errors[0].obtained["error"]
        feedback = (f"On {errors[0].title}, your code raised {_error_text(error)}"
                    + (f" at {error['location']}" if error["location"] else "")
                    + (f":\n    {error['code']}" if error["code"] else "."))
        return _result(step, "error", feedback, checks, location=error["location"] or None,
                       seconds=seconds)
    checks = run_checks(step, outcomes)
    failed = [c for c in checks if not c.passed]
    if not failed:
        return _result(step, "passed", "All checks passed.", checks, seconds=seconds)
    judged = [c for c in failed if not c.message.startswith(NOT_JUDGED)]
    feedback = "\n".join(f"{c.name}: {c.message}" for c in judged)
    return _result(step, "failed", feedback, checks, seconds=seconds)


def _not_judged(check: CheckResult, step: Step, error: Outcome) -> CheckResult:
    return CheckResult(check.name, False, 0.0, check.max_score,
                       f"{NOT_JUDGED}your code raised an error on {error.title}")


def _result(step: Step, status: str, feedback: str, checks=(), *, location=None,
            seconds: float = 0.0) -> StepResult:
    checks = tuple(checks)
    score = round(sum(c.score for c in checks), 6) if checks else 0.0
    return StepResult(step.id, step.title, step.section, status, score, step.points, feedback,
                      checks, step.hints, None, location, round(seconds, 3))


def _definition_error(step: Step, load: LoadResult | None, submission: Submission | None):
    """The load error of the chunk that should have defined the step's name, if any."""
    if not load or not submission:
        return None
    pattern = re.compile(rf"^\s*(def|class)\s+{re.escape(step.id)}\b", re.MULTILINE)
    defining = {c.filename for c in submission.chunks if pattern.search(c.code)}
    return next((e for e in load.errors if e.get("filename") in defining), None)


def _missing_text(step: Step, load: LoadResult | None) -> str:
    text = f"Your submission does not define `{step.id}`; expected `{step.signature}`."
    if load and load.errors:
        error = load.errors[0]
        text += (f" While your code was loading, {error['location'] or 'it'} raised "
                 f"{_error_text(error)}, which may be why.")
    near = [n for n in (load.defined if load else ()) if n.lower() == step.id.lower()]
    if near:
        text += f" Did you mean to call `{near[0]}` `{step.id}`? Names are case-sensitive."
    return text


def _error_text(error: dict) -> str:
    message = error["message"].strip().splitlines()[0] if error["message"].strip() else ""
    return f"{error['type']}: {message}" if message else error["type"]


__all__ = ["DEFAULT_RUBRIC", "Expected", "Session", "grade", "judge"]
