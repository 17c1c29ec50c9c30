"""Judge one step: turn the worker's typed reply into a StepResult with checks and feedback.

Whose fault a failure is decides its wording: the student's code raised or returned the wrong thing
(points lost, explained), the grader could not do what it needed with the student's module (said
as what the grader needed), or the worker's process died or sent a broken reply.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from .cases import PreparedStep
from .checks import Outcome, call_text, run_checks
from .models import StepResult
from .replies import (
    Answered,
    Built,
    Died,
    LoadFailed,
    LoadReply,
    Malformed,
    Missing,
    NotModule,
    Raised,
    RaisedError,
    StepReply,
    TimedOut,
)
from .rubric import Defaults, Step
from .submission import Submission


@dataclass(frozen=True)
class Context:
    """What judging a step may read besides the reply: how the code loaded, and the diagnoser."""

    load: LoadReply | None
    submission: Submission | None = None
    diagnoser: object | None = None  # names known mistakes (grader.diagnose)
    defaults: Defaults = Defaults()


def judge(prepared: PreparedStep, reply: StepReply, context: Context, seconds: float) -> StepResult:
    """The step's result; a failure or an error is matched against the step's known mistakes."""
    step = prepared.step
    if not isinstance(reply, Answered):
        return _unanswered(step, reply, context, seconds)
    outcomes = [Outcome(e, r) for e, r in zip(prepared.expected, reply.cases)]
    result = _judge_cases(step, outcomes, seconds)
    if (context.diagnoser is None or result.status not in ("failed", "error")
            or not step.mistakes):
        return result
    return _with_diagnosis(result, context.diagnoser.explain(step, outcomes))


def _with_diagnosis(result: StepResult, diagnoses: tuple) -> StepResult:
    if diagnoses is None:  # nothing a known mistake could explain failed
        return result
    if not diagnoses:
        return dataclasses.replace(result, feedback=result.feedback + "\nThis does not match any of "
                                   "the common mistakes we know for this step.")
    if len(diagnoses) == 1:
        (d,) = diagnoses
        named = (f"This looks like a known mistake ({d.id}): {d.title}. {d.explanation}\n"
                 f"Try this: {d.hint}\n")
    else:
        named = "This looks like two known mistakes together:\n" + "".join(
            f"- {d.id}: {d.title}. {d.explanation}\n  Try this: {d.hint}\n" for d in diagnoses)
    return dataclasses.replace(result, mistake="+".join(d.id for d in diagnoses),
                               feedback=named + result.feedback)


def _unanswered(step: Step, reply: StepReply, context: Context, seconds: float) -> StepResult:
    if isinstance(reply, Missing):
        error = _definition_error(step, context.load, context.submission)
        if error:
            return result_for(step, "error", f"`{step.id}` was never defined: the code that defines "
                              f"it raised {error.text()} at {error.location}"
                              + (f":\n    {error.code}" if error.code else "."),
                              location=error.location, seconds=seconds)
        return result_for(step, "missing", _missing_text(step, context.load), seconds=seconds)
    if isinstance(reply, LoadFailed):
        if reply.reason == "timeout":
            return result_for(step, "timeout", f"Your code did not finish running within "
                              f"{reply.limit:g} s (is there an endless loop or a long training run "
                              "at the top level?), so no step could be graded.")
        return result_for(step, "error", f"While your code was loading, {reply.detail}. Nothing "
                          "could be graded; look for exit() calls or code that crashes at the top "
                          "level.")
    if isinstance(reply, TimedOut):
        if reply.whole_submission:
            return result_for(step, "timeout", f"Not run: the submission used up its "
                              f"{reply.limit:g} s in all.")
        return result_for(step, "timeout", f"`{step.id}` did not finish within {reply.limit:g} s "
                          "on the grader's cases, so it was stopped; look for an endless loop. "
                          "The other steps were still graded.", seconds=seconds)
    if isinstance(reply, Died):
        return result_for(step, "error", f"While running `{step.id}`, {reply.reason} after "
                          f"{reply.seconds:.1f} s. The other steps were still graded.",
                          seconds=seconds)
    assert isinstance(reply, Malformed)
    return result_for(step, "error", f"While running `{step.id}`, the process that runs your code "
                      f"sent the grader a reply it cannot read ({reply.problem}); nothing of this "
                      "step could be judged. Code that reaches into the grader's worker causes "
                      "this.", seconds=seconds)


def _judge_cases(step: Step, outcomes: list[Outcome], seconds: float) -> StepResult:
    raised = [(o, o.obtained.error) for o in outcomes if isinstance(o.obtained, Raised)]
    forward = [(o, o.module.forward_error) for o in outcomes
               if o.module is not None and o.module.forward_error is not None]
    not_implemented = [(o, e) for o, e in raised + forward if e.not_implemented]
    if not_implemented:
        where = not_implemented[0][1].location
        return result_for(step, "not_implemented", f"`{step.id}` still raises NotImplementedError"
                          + (f" ({where})" if where else "")
                          + ": replace that line with your implementation.", seconds=seconds)
    timeouts = [o for o, e in raised if e.timeout]
    if timeouts:
        return result_for(step, "timeout", f"On {timeouts[0].title}, `{step.id}` did not finish "
                          f"within {step.timeout:g} s and was stopped; look for an endless loop or "
                          "far too much work.", seconds=seconds)
    checks = run_checks(step, outcomes)
    not_modules = [o for o in outcomes if isinstance(o.obtained, NotModule)]
    if not_modules:
        got = not_modules[0].obtained.type_name
        return result_for(step, "failed", f"`{call_text(step, not_modules[0].case)}` returned a "
                          f"{got}; expected an nn.Module.", checks, seconds=seconds)
    errors = [(o, e) for o, e in raised if not o.case.raises] + forward
    if errors:
        outcome, error = errors[0]
        return result_for(step, "error", _raised_text(step, outcome, error), checks,
                          location=error.location or None, seconds=seconds)
    harness = [o for o in outcomes if o.module is not None and o.module.harness_error]
    failed = [c for c in checks if not c.passed]
    if not failed:
        return result_for(step, "passed", "All checks passed.", checks, seconds=seconds)
    lines = [f"{c.name}: {c.message}" for c in failed if c.judged]
    if harness:
        lines.insert(0, f"On {harness[0].title}, {harness[0].module.harness_error}, so the checks "
                     "of its outputs could not be judged.")
    return result_for(step, "failed", "\n".join(lines) or failed[0].message, checks, seconds=seconds)


def _raised_text(step: Step, outcome: Outcome, error: RaisedError) -> str:
    in_forward = isinstance(outcome.obtained, Built)
    memory = (f" It ran out of memory (the limit is {step.memory_mb:,} MB)."
              if error.out_of_memory else "")
    if step.kind in ("class", "factory"):
        called = f"`{call_text(step, outcome.case)}`"
        what = f"forward of the module built by {called}" if in_forward else called
    else:
        what = f"`{step.id}`"
    order = (f"\nThe grader passes the arguments in the order of the signature "
             f"`{step.signature}`." if step.kind == "class" and not in_forward else "")
    return (f"On {outcome.title}, {what} raised {error.text()}"
            + (f" at {error.location}" if error.location else "")
            + (f":\n    {error.code}" if error.code else ".") + memory + order)


def result_for(step: Step, status: str, feedback: str, checks=(), *, location=None,
               seconds: float = 0.0) -> StepResult:
    checks = tuple(checks)
    score = round(sum(c.score for c in checks), 6) if checks else 0.0
    return StepResult(step.id, step.title, step.section, status, score, step.points, feedback,
                      checks, step.hints, None, location, round(seconds, 3))


def _definition_error(step: Step, load: LoadReply | None, submission: Submission | None
                      ) -> RaisedError | None:
    """The load error of the chunk that should have defined the step's name, if any."""
    if not load or not submission:
        return None
    pattern = re.compile(rf"^\s*(def|class)\s+{re.escape(step.id)}\b", re.MULTILINE)
    defining = {c.filename for c in submission.chunks if pattern.search(c.code)}
    return next((e for e in load.errors if e.filename in defining), None)


def _missing_text(step: Step, load: LoadReply | None) -> str:
    text = f"Your submission does not define `{step.id}`; expected `{step.signature}`."
    if load and load.errors:
        error = load.errors[0]
        text += (f" While your code was loading, {error.location or 'it'} raised "
                 f"{error.text()}, which may be why.")
    near = [n for n in (load.defined if load else ()) if n.lower() == step.id.lower()]
    if near:
        text += f" Did you mean to call `{near[0]}` `{step.id}`? Names are case-sensitive."
    return text


__all__ = ["Context", "judge"]
