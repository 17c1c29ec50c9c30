"""Judge one step: turn the worker's typed reply into a StepResult with checks and feedback.

Whose fault a failure is decides its wording: the student's code raised or returned the wrong thing
(points lost, explained), the grader could not do what it needed with the student's module (said
as what the grader needed), or the worker's process died or sent a broken reply.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import re
import threading
from dataclasses import dataclass

import torch

from .cases import PreparedStep
from .checks import (
    NOT_JUDGED,
    Outcome,
    absent_parameter,
    argument_triples,
    call_text,
    compare,
    describe_value,
    run_checks,
    shape_text,
)
from .figures import figures_for
from .models import CheckResult, StepResult
from .pyparse import parse
from .registry import applies
from .replies import (
    Answered,
    Built,
    Died,
    LoadFailed,
    LoadReply,
    Malformed,
    Missing,
    NotCallable,
    NotModule,
    Raised,
    RaisedError,
    Returned,
    StepReply,
    TimedOut,
)
from .rubric import Defaults, Step
from .safe_text import printable
from .submission import Submission


@dataclass(frozen=True)
class Context:
    """What judging a step may read besides the reply: how the code loaded, and the diagnoser."""

    load: LoadReply | None
    submission: Submission | None = None
    diagnoser: object | None = None  # names known mistakes (grader.diagnose)
    defaults: Defaults = Defaults()
    step_ids: tuple[str, ...] = ()  # the rubric's step ids (never suggested for another step)


def judge(prepared: PreparedStep, reply: StepReply, context: Context, seconds: float) -> StepResult:
    """The step's result; a failure or an error is matched against the step's known mistakes."""
    step = prepared.step
    if isinstance(reply, Answered) and len(reply.cases) != len(prepared.expected):
        reply = Malformed(f"{len(reply.cases)} case results for the {len(prepared.expected)} "
                          "cases asked for")
    if not isinstance(reply, Answered):
        return _unanswered(step, reply, context, seconds)
    outcomes = [Outcome(e, r) for e, r in zip(prepared.expected, reply.cases)]
    result = _judge_cases(step, outcomes, seconds, prepared.request, context.diagnoser)
    if (context.diagnoser is None or result.status not in ("failed", "error")
            or not step.mistakes):
        return result
    return _with_diagnosis(step, result, context.diagnoser.explain(step, outcomes))


def _with_diagnosis(step: Step, result: StepResult, diagnoses: tuple) -> StepResult:
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
    mistake = "+".join(d.id for d in diagnoses)
    return dataclasses.replace(result, mistake=mistake, feedback=named + result.feedback,
                               hints=fitting_hints(step, result.checks, mistake))


def _unanswered(step: Step, reply: StepReply, context: Context, seconds: float) -> StepResult:
    if isinstance(reply, Missing):
        error = _definition_error(step, context.load, context.submission)
        if error:
            return result_for(step, "error", f"`{step.id}` was never defined: the code that defines "
                              f"it raised {error.text()} at {error.location}"
                              + (f":\n    {error.code}" if error.code else "."),
                              location=error.location, seconds=seconds)
        return result_for(step, "missing", _missing_text(step, context.load, context.submission,
                                                         _step_ids(context)), seconds=seconds)
    if isinstance(reply, NotCallable):
        return _not_callable(step, reply, context.submission, seconds)
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


def _judge_cases(step: Step, outcomes: list[Outcome], seconds: float,
                 request: dict | None = None, diagnoser=None) -> StepResult:
    raised = [(o, o.obtained.error) for o in outcomes if isinstance(o.obtained, Raised)]
    forward = [(o, o.module.forward_error) for o in outcomes
               if o.module is not None and o.module.forward_error is not None
               and not _explained_elsewhere(step, o, diagnoser)]
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
    checks = confirmed(step, outcomes, run_checks(step, outcomes), request or {}, diagnoser)
    not_modules = [o for o in outcomes if isinstance(o.obtained, NotModule)]
    if not_modules:
        got = not_modules[0].obtained.type_name
        return result_for(step, "failed", f"`{call_text(step, not_modules[0].case)}` returned a "
                          f"{got}; expected an nn.Module.", checks, seconds=seconds)
    errors = [(o, e) for o, e in raised if not o.case.raises and not absent_parameter(o)] + forward
    if errors:
        outcome, error = errors[0]
        return result_for(step, "error", _raised_text(step, outcome, error), checks,
                          location=error.location or None, seconds=seconds)
    harness = [o for o in outcomes if o.module is not None and o.module.harness_error]
    failed = [c for c in checks if not c.passed]
    if not failed:
        return result_for(step, "passed", "All checks passed.", checks, seconds=seconds)
    lines = [f"{c.name}: {c.message}" for c in failed if c.judged]
    own = next((o for o in outcomes if o.expected.own_weights), None)
    if own is not None:
        lines.insert(0, f"On {own.title}, {own.expected.own_weights}. Forward ran on your module's "
                     "own weights instead: its behaviour was judged, its values could not be.")
    if harness:
        lines.insert(0, f"On {harness[0].title}, {harness[0].module.harness_error}, so the checks "
                     "of its outputs could not be judged.")
    return dataclasses.replace(
        result_for(step, "failed", "\n".join(lines) or failed[0].message, checks, seconds=seconds),
        figures=figures_for(step, outcomes, checks))


# ------------------------------------------------------------------------------ confirmed facts


def confirmed(step: Step, outcomes: list[Outcome], checks: list[CheckResult], request: dict,
              diagnoser=None) -> list[CheckResult]:
    """The checks, each that earned points on what the student's process reported kept only
    where the grader confirmed it: a factory's module, given the reference's weights, gave the
    reference's output on the grader's input, or the output a known mistake of a class it is
    built of would give (its structure and counts are otherwise only what the process said); a
    refusal, where a valid case built a module that ran (or returned); a
    procedure, where it changed a parameter the reference's changes. Otherwise 0 points, why."""
    sent = request.get("cases", [])
    sent = sent if len(sent) == len(outcomes) else [{}] * len(outcomes)
    doubts = {id(o): why for o, case in zip(outcomes, sent)
              if (why := _doubt(step, o, case, diagnoser))}
    refusal = _refusal_doubt(step, outcomes, diagnoser)
    kept = []
    for check, result in zip(step.checks, checks):
        if check.check == "raises":
            doubt = refusal
        else:
            doubt = next((doubts[id(o)] for o in outcomes
                          if id(o) in doubts and applies(check, o.case)), None)
        if doubt is None or result.score <= 0 and not result.passed:
            kept.append(result)
            continue
        why, judged = doubt
        kept.append(dataclasses.replace(result, passed=False, score=0.0, judged=judged,
                                        message=why if judged else NOT_JUDGED + why))
    return kept


def _doubt(step: Step, outcome: Outcome, sent: dict, diagnoser=None) -> tuple[str, bool] | None:
    """Why what the student's process reported on this case (sent to it as `sent`) cannot earn
    points, and whether that is judged (the code did nothing: failed) or not (not confirmed:
    not judged); None when nothing is in doubt."""
    if step.kind == "procedure" and isinstance(outcome.obtained, Returned):
        return _did_nothing(step, outcome, sent.get("args", []))
    if step.kind != "factory" or not isinstance(outcome.obtained, Built):
        return None
    if not outcome.expected.inputs:  # built on the meta device: nothing runs, nothing to confirm
        return None
    why = _prediction_missed(step, outcome, diagnoser)
    if why is None:
        return None
    return (f"on {outcome.title}, the grader could not confirm that the module your code built is "
            f"the one your code reports: {why}. A factory's structure and counts earn points once "
            "its module, given the reference's weights, gives the reference's output on the "
            "grader's input; make its forward right (its class's own step shows how)", False)


def _prediction_missed(step: Step, outcome: Outcome, diagnoser=None) -> str | None:
    """How a built module's forward, on the grader's weights and inputs, missed the reference's
    outputs; None when it gave them, or a known mistake's (see `_mistaken_outputs`)."""
    module, expected = outcome.module, outcome.expected
    if expected.own_weights:
        return expected.own_weights
    if module.harness_error:
        return module.harness_error
    if module.forward_error is not None:
        raised = _first_line(module.forward_error.type, module.forward_error.message)
        if raised in _mistaken_outputs(diagnoser, step, expected):
            return None  # a known mistake of a class it is built of raises just so
        return f"its forward raised {module.forward_error.text()}"
    if module.outputs is None or len(module.outputs) != len(expected.output):
        return "its forward was not run"
    missed = _missed(step, expected.output, module.outputs, outcome.case.visible)
    if missed is None or any(isinstance(predicted, list) and _missed(
            step, predicted, module.outputs, False) is None
            for predicted in _mistaken_outputs(diagnoser, step, expected)):
        return None
    return missed


def _first_line(type_name: str, message: str) -> tuple[str, str]:
    """An exception as the diagnoser tells exceptions apart: its type and its message's first line."""
    return type_name, (message.strip().splitlines() or [""])[0]


def _missed(step: Step, predicted: list, outputs: tuple, visible: bool) -> str | None:
    for want, got in zip(predicted, outputs):
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            return (f"its forward gave {describe_value(got)} where the reference's gives a tensor "
                    f"of shape {shape_text(want.shape)}")
        difference = compare(want, got, step.atol, step.rtol)
        if difference:
            return f"its forward's output {difference.text(visible)}"
    return None


_MISTAKEN: dict[int, tuple] = {}  # id(answer) -> (answer, the known mistakes' predictions)
_MISTAKEN_LOCK = threading.Lock()
_MAX_MISTAKEN = 256


def _mistaken_outputs(diagnoser, step: Step, expected) -> list[list | tuple[str, str]]:
    """What a factory's module would output (a list, one per input) or raise (`_first_line`), on
    the grader's weights and input, if one class it is built of (`expected.constructions`,
    recorded by grader.engine) made one of its step's known mistakes: a mistake in
    MultiHeadAttention is its own step's, not that of the factory that uses it.
    Computed once per class, under the diagnoser's lock (building a module draws from torch's
    global generator, which the diagnoser seeds)."""
    constructions = getattr(expected, "constructions", ())
    if not constructions or getattr(diagnoser, "preparer", None) is None or not getattr(
            diagnoser, "known", None):
        return []
    with _MISTAKEN_LOCK:
        held = _MISTAKEN.get(id(expected))
        if held is not None and held[0] is expected:
            return held[1]
    with getattr(diagnoser, "_lock", None) or threading.Lock():
        predicted = list(_predictions_with_mistakes(diagnoser, step, expected, constructions))
    with _MISTAKEN_LOCK:
        if len(_MISTAKEN) >= _MAX_MISTAKEN:
            _MISTAKEN.clear()
        _MISTAKEN[id(expected)] = (expected, predicted)
    return predicted


def _predictions_with_mistakes(diagnoser, step: Step, expected, constructions):
    """The factory's module rebuilt with each known mistake's class in place of the reference's
    (one class step's mistakes at a time), given the grader's weights, run on its input."""
    preparer, known = diagnoser.preparer, diagnoser.known
    mistakes = {s.id: s.mistakes for s in preparer.rubric.steps}
    wanted = {name: tuple(w.shape) for name, w in expected.weights.items()}
    for class_step in dict.fromkeys(step_id for _, step_id, _, _ in constructions):
        for mistake in mistakes.get(class_step, ()):
            for variant in known[mistake].implementations.get(class_step, ()):
                try:
                    module = _with_variant(preparer, step, expected, constructions, class_step,
                                           variant)
                    parameters = dict(module.named_parameters())
                    if {n: tuple(p.shape) for n, p in parameters.items()} != wanted:
                        continue  # built otherwise: the structure checks say so
                    module.eval()
                    with torch.no_grad():
                        for name, value in expected.weights.items():
                            parameters[name].copy_(value)
                except Exception:  # noqa: BLE001, S112 - a variant that cannot stand in here
                    continue
                try:
                    with torch.no_grad():
                        yield [module(x) for x in expected.inputs]
                except Exception as exc:  # noqa: BLE001 - the mistake raises in forward
                    yield _first_line(type(exc).__name__, str(exc))


def _with_variant(preparer, step: Step, expected, constructions, class_step: str, variant):
    """The reference factory's module with `variant` built in place of each module of
    `class_step`'s class, from the same constructor arguments."""
    from .cases import _fresh, call

    module = call(getattr(preparer.reference, step.reference_name), step, expected.arg_names,
                  _fresh(expected.args))
    for path, step_id, args, kwargs in constructions:
        if step_id != class_step:
            continue
        if not path:
            return variant(*args, **kwargs)
        parent, _, name = path.rpartition(".")
        module.get_submodule(parent)._modules[name] = variant(*args, **kwargs)
    return module


def _refusal_doubt(step: Step, outcomes: list[Outcome], diagnoser=None
                   ) -> tuple[str, bool] | None:
    """Why a refusal shows nothing yet: no valid case gave a result the grader could use (a
    function's value; a module that built and whose forward ran on the grader's inputs, a
    factory's confirmed), so the code may refuse everything."""
    valid = [o for o in outcomes if not o.case.raises]
    if not valid or any(_gave_result(step, o, diagnoser) for o in valid):
        return None
    return ("no valid case gave a result the grader could use (a module that builds and runs "
            "on the grader's inputs), so refusing invalid arguments shows nothing yet: a refusal "
            "counts once the code works on valid arguments", False)


def _gave_result(step: Step, outcome: Outcome, diagnoser=None) -> bool:
    obtained = outcome.obtained
    if isinstance(obtained, Returned):
        return True
    if not isinstance(obtained, Built) or not outcome.expected.inputs:
        return isinstance(obtained, Built)  # a case that runs nothing: it built
    module = obtained.module
    if module.outputs is None or module.forward_error is not None or module.harness_error:
        return False
    return step.kind != "factory" or _prediction_missed(step, outcome, diagnoser) is None


def _did_nothing(step: Step, outcome: Outcome, sent: list) -> tuple[str, bool] | None:
    """A procedure whose arguments (as `sent`) came back exactly as the grader sent them, in
    everything that the reference's procedure changes (a module's parameters, a tensor's
    values): it did nothing to credit."""
    if not sent or outcome.expected.output is None:
        return None
    names = outcome.expected.arg_names or step.arg_names
    changed, kept = [], []
    for name, given, after, reference in zip(names, sent, outcome.obtained.shells,
                                             outcome.expected.output):
        before = _sent_state(name, given)
        for label, wanted, got in argument_triples(name, reference, after):
            value = before.get(label)
            if value is None or torch.equal(wanted, value):
                continue  # the reference's leaves it as it was
            changed.append(label)
            if isinstance(got, torch.Tensor) and got.shape == value.shape and torch.equal(got, value):
                kept.append(label)
    if not changed or kept != changed:
        return None
    return (f"on {outcome.title}, `{step.id}` changed nothing: {', '.join(f'`{n}`' for n in kept)} "
            "came back exactly as the grader passed them in, where the reference's procedure "
            "changes them; change them in place (a parameter with torch.no_grad() and "
            "`parameter.copy_(...)`, a tensor with `tensor.copy_(...)` or an in-place operation)",
            True)


def _sent_state(name: str, given) -> dict[str, torch.Tensor]:
    """A procedure's argument as the grader sent it, by the labels of `argument_triples`: a
    shell's parameters, a tensor, a mapping's tensors (a fixture is built in the worker: none)."""
    if isinstance(given, dict) and set(given) == {"$shell"}:
        return {f"{name}.{key}": value
                for key, value in _shell_parameters(given["$shell"]["layout"]).items()}
    if isinstance(given, torch.Tensor):
        return {name: given}
    if isinstance(given, dict) and "$fixture" not in given:
        return {f"{name}.{key}": value for key, value in given.items()
                if isinstance(value, torch.Tensor)}
    return {}


def _shell_parameters(layout: dict) -> dict[str, torch.Tensor]:
    """A shell's parameters by name, as the grader sent them (grader.shells.build_shell)."""
    found = {}
    for name, spec in layout.items():
        if "linear" in spec:
            found[f"{name}.weight"] = spec["linear"]["weight"]
            if spec["linear"].get("bias") is not None:
                found[f"{name}.bias"] = spec["linear"]["bias"]
        elif "parameter" in spec:
            found[name] = spec["parameter"]
    return found


def _explained_elsewhere(step: Step, outcome: Outcome, diagnoser) -> bool:
    """A factory's module whose forward raises as a known mistake of a class it is built of does:
    that mistake is its class's step's, which says so; the factory's configuration still counts."""
    return (step.kind == "factory" and bool(outcome.expected.inputs)
            and not outcome.module.forward_error.not_implemented
            and _prediction_missed(step, outcome, diagnoser) is None)


def _raised_text(step: Step, outcome: Outcome, error: RaisedError) -> str:
    in_forward = isinstance(outcome.obtained, Built)
    memory = (f" It ran out of memory (the limit is {step.memory_mb:,} MB)."
              if error.out_of_memory else "")
    called = f"`{call_text(step, outcome.case)}`"
    if step.kind in ("class", "factory"):
        what = f"forward of the module built by {called}" if in_forward else called
    else:
        what = called
    order = (f"\nThe grader passes the arguments by name where your signature has the "
             f"contract's names (`{step.signature}`), else in that order."
             if step.kind == "class" and not in_forward else "")
    return (f"On {outcome.title}, {what} raised {error.text()}"
            + (f" at {error.location}" if error.location else "")
            + (f":\n    {error.code}" if error.code else ".") + memory + order)


def result_for(step: Step, status: str, feedback: str, checks=(), *, location=None,
               seconds: float = 0.0) -> StepResult:
    checks = tuple(checks)
    score = round(sum(c.score for c in checks), 6) if checks else 0.0
    return StepResult(step.id, step.title, step.section, status, score, step.points, feedback,
                      checks, fitting_hints(step, checks), None, location, round(seconds, 3))


def fitting_hints(step: Step, checks=(), mistake: str | None = None) -> tuple[str, ...]:
    """The step's hints that fit how it went: the untagged ones, and each tagged one whose checks
    include one that failed or whose mistakes include one that was named. A check that was not
    judged counts only where none failed (the code raised, so nothing could be judged); else it
    was left unjudged for another check's failure and says nothing of its own. With nothing to go
    by (no check ran and no mistake was named: the step is missing, still raises
    NotImplementedError, timed out), the untagged hints, or all if every hint is tagged."""
    hints = step.tagged_hints
    named = set(mistake.split("+")) if mistake else set()
    if not checks and not named:
        return tuple(h.text for h in hints if not h.tagged) or tuple(h.text for h in hints)
    failed = {c.name for c in checks if c.judged and not c.passed}
    if not failed:
        failed = {c.name for c in checks if not c.judged}
    return tuple(h.text for h in hints
                 if not h.tagged or failed & set(h.checks) or named & set(h.mistakes))


def _definition_error(step: Step, load: LoadReply | None, submission: Submission | None
                      ) -> RaisedError | None:
    """The load error of the chunk that should have defined the step's name, if any."""
    if not load or not submission:
        return None
    pattern = re.compile(rf"^\s*(def|class)\s+{re.escape(step.id)}\b", re.MULTILINE)
    defining = {c.filename for c in submission.chunks if pattern.search(c.code)}
    return next((e for e in load.errors if e.filename in defining), None)


def _missing_text(step: Step, load: LoadReply | None, submission: Submission | None = None,
                  step_ids: tuple[str, ...] = ()) -> str:
    text = f"Your submission does not define `{step.id}`; expected `{step.signature}`."
    # A load error is named only where it can be why: in the code that defines this name (or, with
    # no source to read, the first one). An error in a cell that defines other things is not.
    error = _definition_error(step, load, submission) if submission else (
        load.errors[0] if load and load.errors else None)
    if error is not None:
        text += (f" While your code was loading, {error.location or 'it'} raised "
                 f"{error.text()}, which may be why.")
    near = _near_name(step, load.defined if load else (), submission, step_ids)
    if near:
        text += (f" Did you mean to call `{near}` `{step.id}`? The grader looks for the contract's "
                 f"exact names: rename your `{near}` to `{step.id}`"
                 + (" (names are case-sensitive)." if near.lower() == step.id.lower() else "."))
    return text


NEAR = 0.8  # how alike (difflib's ratio of the normalized names) a name must be to be suggested
MAX_PARSED = 50_000  # characters of a chunk parsed to find a rebinding; a longer one is not parsed


def _normal(name: str) -> str:
    """`SelfAttentionV1`, `selfattention_v1` and `Self_Attention_v1` are one name, differently spelt."""
    return name.lower().replace("_", "")


def _likeness(name: str, other: str) -> float:
    a, b = _normal(name), _normal(other)
    return 1.0 if a == b else difflib.SequenceMatcher(None, a, b).ratio()


def _near_name(step: Step, defined, submission: Submission | None, step_ids: tuple[str, ...]
               ) -> str | None:
    """The name the submission defines that is most like the step's id (case, underscores, a word
    left out): one its code defines with `class` (class steps) or `def` (the others), that is no
    other step's id and is no more like another step's id than this one's."""
    own = None
    if submission is not None:
        keyword = "class" if step.kind == "class" else "def"
        pattern = re.compile(rf"^(?:async\s+)?{keyword}\s+([A-Za-z_]\w*)", re.MULTILINE)
        own = {m.group(1) for chunk in submission.chunks for m in pattern.finditer(chunk.code)}
    others = [s for s in step_ids if s != step.id]
    best, best_likeness = None, NEAR
    for name in defined:
        if name == step.id or name in others or (own is not None and name not in own):
            continue
        likeness = _likeness(name, step.id)
        if likeness < best_likeness or any(_likeness(name, o) > likeness for o in others):
            continue
        if best is None or likeness > best_likeness:
            best, best_likeness = name, likeness
    return best


def _step_ids(context: Context) -> tuple[str, ...]:
    """The rubric's step ids: names a submission keeps as they are, never suggested for another."""
    return context.step_ids


def _not_callable(step: Step, reply: NotCallable, submission: Submission | None,
                  seconds: float) -> StepResult:
    """The step's name holds a value, not the function or class: a top-level line rebinds it."""
    what = "a class" if step.kind == "class" else "a function"
    article = "an" if reply.type_name[:1].lower() in "aeiou" else "a"
    text = f"`{step.id}` holds {article} {reply.type_name} when grading starts, not {what}: "
    found = _last_rebinding(step.id, submission)
    if found:
        location, code = found
        text += f"a top-level line rebinds it, at {location}" + (f":\n    {code}\n" if code else ". ")
    else:
        text += "a top-level line of your code rebinds it. "
    text += (f"Give the result another name (e.g. `result = {step.id}(...)`), so that `{step.id}` "
             f"stays the {what[2:]} the grader calls.")
    return result_for(step, "error", text, location=found[0] if found else None, seconds=seconds)


def _last_rebinding(name: str, submission: Submission | None) -> tuple[str, str] | None:
    """Where the submission last binds `name` at its top level other than by def or class (an
    assignment, a `for` target, an import), as (location, that line): found by parsing its chunks,
    never by running them."""
    if submission is None:
        return None
    found = None
    for chunk in submission.chunks:
        if len(chunk.code) > MAX_PARSED:
            continue
        try:
            tree = parse(chunk.code)
        except (SyntaxError, RecursionError, MemoryError, ValueError):
            continue
        line = _binding_line(tree.body, name, submission.kind == "py")
        if line:
            lines = chunk.code.splitlines()
            code = printable(lines[line - 1].strip(), 200) if line <= len(lines) else ""
            found = (f"{chunk.label}, line {line}" if chunk.label else f"line {line}", code)
    return found


def _binding_line(statements: list, name: str, skip_main: bool) -> int:
    """The line of the last statement in `statements` (and the blocks in them, but not in function
    or class bodies) that binds `name` other than by def or class; 0 if none does."""
    last = 0
    for node in statements:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if skip_main and isinstance(node, ast.If) and _is_main_test(node.test):
            continue  # a .py file's demo block does not run when it is graded
        targets: list = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and (
                not isinstance(node, ast.AnnAssign) or node.value is not None):
            targets = [node.target]
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            targets = [node.target]
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            targets = [item.optional_vars for item in node.items if item.optional_vars is not None]
        binds = any(_binds(target, name) for target in targets)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            binds = any((alias.asname or alias.name.split(".")[0]) == name for alias in node.names)
        if not binds and not isinstance(node, (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With,
                                               ast.AsyncWith, ast.Try)):
            binds = any(isinstance(n, ast.NamedExpr) and _binds(n.target, name) for n in ast.walk(node))
        if binds:
            last = node.lineno
        blocks = [getattr(node, key, []) for key in ("body", "orelse", "finalbody")]
        blocks += [handler.body for handler in getattr(node, "handlers", [])]
        blocks += [case.body for case in getattr(node, "cases", [])]
        for block in blocks:
            last = max(last, _binding_line(block, name, skip_main))
    return last


def _binds(target, name: str) -> bool:
    if isinstance(target, ast.Name):
        return target.id == name
    if isinstance(target, (ast.Tuple, ast.List)):
        return any(_binds(element, name) for element in target.elts)
    if isinstance(target, ast.Starred):
        return _binds(target.value, name)
    return False


def _is_main_test(test) -> bool:
    """`__name__ == "__main__"`, either way round."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    return (any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
            and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides))


__all__ = ["Context", "judge"]
