"""Judge one step: turn the worker's plain reply into a StepResult with checks and feedback."""

from __future__ import annotations

import dataclasses
import re

from .cases import PreparedStep
from .checks import NOT_JUDGED, OUTPUT_CHECKS, Outcome, run_checks
from .engine import error_text, result_for
from .models import CheckResult, StepResult
from .rubric import Step
from .sandbox import LoadResult
from .submission import Submission


def judge(prepared: PreparedStep, reply: dict, load: LoadResult | None, seconds: float,
          submission: Submission | None = None, diagnoser=None) -> StepResult:
    """The step's result; a failure or an error is matched against the step's known mistakes."""
    result, outcomes = _judge(prepared, reply, load, seconds, submission)
    if (diagnoser is None or result.status not in ("failed", "error") or not prepared.step.mistakes
            or not outcomes):
        return result
    diagnosis = diagnoser.explain(prepared.step, outcomes)
    if diagnosis is None:
        return dataclasses.replace(result, feedback=result.feedback + "\nThis does not match any of "
                                   "the common mistakes we know for this step.")
    named = (f"This looks like a known mistake ({diagnosis.id}): {diagnosis.title}. "
             f"{diagnosis.explanation}\n"
             f"Try this: {diagnosis.hint}\n")
    return dataclasses.replace(result, mistake=diagnosis.id, feedback=named + result.feedback)


def _judge(prepared: PreparedStep, reply: dict, load: LoadResult | None, seconds: float,
           submission: Submission | None) -> tuple[StepResult, list[Outcome]]:
    step = prepared.step
    if reply.get("missing"):
        error = _definition_error(step, load, submission)
        if error:
            return result_for(step, "error", f"`{step.id}` was never defined: the code that defines it "
                           f"raised {error_text(error)} at {error['location']}"
                           + (f":\n    {error['code']}" if error["code"] else "."),
                           location=error["location"], seconds=seconds), []
        return result_for(step, "missing", _missing_text(step, load), seconds=seconds), []
    outcomes = [Outcome(e, r) for e, r in zip(prepared.expected, reply["results"])]
    errors = [o for o in outcomes if not o.obtained["ok"] and not o.case.raises]
    not_implemented = [o for o in outcomes + errors
                       if not o.obtained["ok"] and o.obtained["error"]["not_implemented"]]
    if not_implemented:
        where = not_implemented[0].obtained["error"]["location"]
        return result_for(step, "not_implemented",
                       f"`{step.id}` still raises NotImplementedError"
                       + (f" ({where})" if where else "")
                       + ": replace that line with your implementation.", seconds=seconds), outcomes
    not_modules = [o for o in outcomes if o.obtained.get("not_module")]
    if not_modules:
        got = not_modules[0].obtained["not_module"]
        return result_for(step, "failed", f"`{step.signature}` returned a {got}; expected an "
                       "nn.Module.", seconds=seconds), outcomes
    timeouts = [o for o in errors if o.obtained["error"].get("timeout")]
    if timeouts:
        return result_for(step, "timeout", f"On {timeouts[0].title}, `{step.id}` did not finish "
                          f"within {step.timeout:g} s and was stopped; look for an endless loop or "
                          "far too much work.", seconds=seconds), outcomes
    if errors:
        checks = run_checks(step, [o for o in outcomes if o.obtained["ok"] or o.case.raises])
        checks = [_not_judged(c, step, errors[0]) if c.name in OUTPUT_CHECKS else c for c in checks]
        error = errors[0].obtained["error"]
        memory = (f" It ran out of memory (the limit is {step.memory_mb:,} MB)."
                  if error.get("out_of_memory") else "")
        feedback = (f"On {errors[0].title}, your code raised {error_text(error)}"
                    + (f" at {error['location']}" if error["location"] else "")
                    + (f":\n    {error['code']}" if error["code"] else ".") + memory)
        return result_for(step, "error", feedback, checks, location=error["location"] or None,
                       seconds=seconds), outcomes
    checks = run_checks(step, outcomes)
    failed = [c for c in checks if not c.passed]
    if not failed:
        return result_for(step, "passed", "All checks passed.", checks, seconds=seconds), outcomes
    judged = [c for c in failed if not c.message.startswith(NOT_JUDGED)]
    feedback = "\n".join(f"{c.name}: {c.message}" for c in judged)
    return result_for(step, "failed", feedback, checks, seconds=seconds), outcomes


def _not_judged(check: CheckResult, step: Step, error: Outcome) -> CheckResult:
    return CheckResult(check.name, False, 0.0, check.max_score,
                       f"{NOT_JUDGED}your code raised an error on {error.title}")


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
                 f"{error_text(error)}, which may be why.")
    near = [n for n in (load.defined if load else ()) if n.lower() == step.id.lower()]
    if near:
        text += f" Did you mean to call `{near[0]}` `{step.id}`? Names are case-sensitive."
    return text


__all__ = ["judge"]
