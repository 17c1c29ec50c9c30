"""Pure comparisons: the student's plain outputs against the reference's, in the grader's process.

Each check returns a `CheckResult` whose message carries numbers: shapes, how many elements differ,
the largest absolute and relative difference and where, the values there (visible cases only),
NaN/Inf counts. Checks run in layers; a layer is only judged when the layers before it passed
(a wrong shape makes comparing values meaningless).
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from .cases import Expected
from .errors import InternalError
from .models import CheckResult
from .quiet import course_code
from .registry import REGISTRY, applies
from .replies import Built, CaseReply, ModuleReport, NotModule, Opaque, Raised, Returned
from .rubric import Check, Step


@dataclass(frozen=True)
class Outcome:
    """One case: what the reference expects and what the student's code gave."""

    expected: Expected
    obtained: CaseReply

    @property
    def case(self):
        return self.expected.case

    @property
    def title(self) -> str:
        case = self.case
        seen = "case" if case.visible else "hidden case"
        return f"{seen} `{case.name}`" + (f" (seed {case.seed})" if case.seed else "")

    @property
    def module(self) -> ModuleReport | None:
        return self.obtained.module if isinstance(self.obtained, Built) else None


NOT_JUDGED = "not judged: "


class CheckFailed(Exception):
    """Raised inside a check function with the message the student reads."""


class CheckNotJudged(Exception):
    """Raised inside a check function that found no evidence it could confirm: 0 points, why."""


# ------------------------------------------------------------------------------ entry point


def run_checks(step: Step, outcomes: list[Outcome]) -> list[CheckResult]:
    """Every check of the step, in layer order; a check without evidence is not judged (0 points)."""
    outer = getattr(_JUDGING, "memo", None)
    _JUDGING.memo = {}
    try:
        return _run_checks(step, outcomes)
    finally:
        _JUDGING.memo = outer


_JUDGING = threading.local()  # per grading thread: what the checks of the step being judged found


def _once_per_step(key: tuple, held: tuple, compute):
    """`compute()` once while one step's checks run: `values`, `buffers` and `gradients_flow` each
    compare a case's outputs with the reference's, and several checks refuse the same trivial
    output. `key` names the objects by identity; `held` keeps them alive meanwhile, so that no
    other object can take their identity."""
    memo = getattr(_JUDGING, "memo", None)
    if memo is None:
        return compute()
    found = memo.get(key)
    if found is None or any(a is not b for a, b in zip(found[0], held)):
        found = memo[key] = (held, compute())
    return found[1]


def _run_checks(step: Step, outcomes: list[Outcome]) -> list[CheckResult]:
    results: dict[str, CheckResult] = {}
    partial: set[str] = set()  # passed on every case that ran, and some could not run
    layers = list(REGISTRY)  # built-in checks in their layers, course checks after them
    for check in sorted(step.checks, key=lambda c: layers.index(c.check)):
        spec = REGISTRY[check.check]
        every = [o for o in outcomes if applies(check, o.case)]
        chosen = [o for o in every if not absent_parameter(o)]
        # Weights bound by structure (grader.binding) stand in for the contract's names: what
        # waits for `parameters` is judged under the student's names.
        bound = bool(chosen) and all(o.expected.binding is not None for o in chosen)
        blocked = next((n for n in spec.after if n in results and not results[n].passed
                        and n not in partial and not (n == "parameters" and bound)), None)
        own = next((o for o in chosen if o.expected.own_weights), None) if spec.on_weights else None
        nothing = computed_nothing(step, spec, chosen)
        if nothing:  # before any check, its layers' included: a course check's as a built-in one's
            results[check.check] = CheckResult(check.check, False, 0.0, check.points, nothing)
            continue
        why = (f"`{blocked}` must pass first" if blocked else
               not_run_text(step, [o for o in every if o not in chosen]) if every and not chosen
               else "no case of this run looks at it" if not chosen else
               f"on {own.title}, {own.expected.own_weights}, so its outputs cannot be compared "
               "with the reference's" if own else
               lacking(spec.evidence, chosen, outcomes, step))
        if why:
            results[check.check] = CheckResult(check.check, False, 0.0, check.points,
                                               NOT_JUDGED + why, judged=False)
            continue
        try:
            if spec.function is not None:  # a course's check: what it prints reaches nobody
                with course_code():
                    message = spec.function(step, check, chosen)
            else:
                message = globals()[f"check_{check.check}"](step, check, chosen)
            if not isinstance(message, str):
                raise TypeError(f"a check returns its message (a string), not {message!r:.80}")
            not_run = [o for o in every if o not in chosen]
            if not_run:  # right where it ran; a case the signature cannot take costs its share
                partial.add(check.check)
                share = round(check.points * len(chosen) / len(every), 6)
                results[check.check] = CheckResult(
                    check.check, False, share, check.points,
                    f"{message} on the cases that ran; {not_run_text(step, not_run)}")
                continue
            results[check.check] = CheckResult(check.check, True, check.points, check.points,
                                               message)
        except CheckFailed as failure:
            results[check.check] = CheckResult(check.check, False, 0.0, check.points, str(failure))
        except CheckNotJudged as why_not:
            results[check.check] = CheckResult(check.check, False, 0.0, check.points,
                                               NOT_JUDGED + str(why_not), judged=False)
        except Exception as exc:  # a bug in a check is the grader's failure, never a student's zero
            raise InternalError(f"the {check.check!r} check of step {step.id!r} failed: "
                                f"{type(exc).__name__}: {exc}") from exc
    return [results[c.check] for c in step.checks]


READS_OUTPUTS = ("returned", "output", "train", "gradients")  # evidence from what forward gave


def computed_nothing(step: Step, spec, outcomes: list[Outcome]) -> str | None:
    """Why no check that reads these outcomes' outputs can count, whatever it asks of them: an
    output holding NaN or an infinity where the reference's is finite (every comparison with NaN
    is false, so a check written as "fail if ..." would pass it), or a module whose output is shown
    not to depend on its parameters where the reference's does. None when neither."""
    if spec.evidence not in READS_OUTPUTS:
        return None
    for outcome in outcomes:
        found = _once_per_step(("non-finite", id(outcome)), (outcome,),
                               partial(non_finite, step, outcome))
        if found:
            return found
        if outcome.expected.weights_ignored:
            return (f"{outcome.title}: {outcome.expected.weights_ignored}, so this check "
                    f"({spec.summary}) cannot count its output: compute forward from the "
                    "module's parameters")
    return None


def non_finite(step: Step, outcome: Outcome) -> str | None:
    """Where the student's outputs on one case hold NaN or an infinity where the reference's
    values are finite: the first such place, and how many there are."""
    for label, expected, obtained in _outputs_to_scan(step, outcome):
        if not (isinstance(obtained, torch.Tensor) and obtained.is_floating_point()
                and isinstance(expected, torch.Tensor)):
            continue
        bad = ~torch.isfinite(obtained)
        if not bad.any():
            continue
        if expected.shape == obtained.shape:
            bad &= torch.isfinite(expected)
        elif not bool(torch.isfinite(expected).all()):
            continue  # the reference's own output holds NaN or Inf: no place to name
        if not bad.any():
            continue
        flat = int(bad.flatten().nonzero()[0].item())
        value = obtained.flatten()[flat].item()
        value = "NaN" if math.isnan(value) else "+inf" if value > 0 else "-inf"
        nan, inf = int(torch.isnan(obtained).sum()), int(torch.isinf(obtained).sum())
        return (f"{outcome.title}: {label} is {value} at {_index(flat, obtained.shape)}, where the "
                f"reference's is a finite number ({nan} NaN and {inf} infinite value(s) in all), "
                "so no check can count it: look for a division by zero, the square root or log of "
                "a negative number, or a row of scores masked entirely with -inf")
    return None


def _outputs_to_scan(step: Step, outcome: Outcome) -> list[tuple[str, Any, Any]]:
    """(label, expected, obtained) for every output of a case: a module's forward outputs, and
    its training-mode outputs beside the reference's evaluation-mode one."""
    if isinstance(outcome.obtained, Built):
        module = outcome.module
        expected = outcome.expected.output or []
        pairs = [(f"forward output {i}" if len(expected) > 1 else "forward output", e, g)
                 for i, (e, g) in enumerate(zip(expected, module.outputs or ()))]
        return pairs + [(f"training-mode output {i}", expected[0], g)
                        for i, g in enumerate(module.train_outputs) if expected]
    if not isinstance(outcome.obtained, Returned):
        return []
    try:
        return [(label, e, g) for label, e, g in expected_and_obtained(step, outcome)]
    except CheckFailed:  # not the reference's structure: the checks say so
        return []


def weights_ignored(step: Step, expected: Expected, module: ModuleReport, outputs: list) -> str:
    """On the own-weights path: why the student's forward is shown not to depend on its
    parameters, where the reference's does, from its outputs on the case's first input with
    `grader.cases.parameter_draws` in its parameters; "" where it was not shown."""
    if not expected.weights_matter or len(outputs) < 2:
        return ""
    first, second = outputs[:2]
    if not (isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor)
            and first.shape == second.shape and first.dtype.is_floating_point
            and second.dtype.is_floating_point and not compare(first, second, step.atol, step.rtol)):
        return ""
    if not module.parameters:
        return ("your module has no parameters, so its forward output cannot depend on weights "
                "as the reference's does")
    names = ", ".join(f"`{name}`" for name, _, _ in module.parameters[:6])
    more = f" and {len(module.parameters) - 6} more" if len(module.parameters) > 6 else ""
    return (f"your module's forward gave the same output with two different sets of random "
            f"values in its parameters ({names}{more}): it does not depend on its weights, as "
            "the reference's does")


def absent_parameter(outcome: Outcome) -> str | None:
    """The contract's parameter that the student's signature lacks, where the case's call failed
    for that alone (it was passed by keyword: `unexpected keyword argument 'qkv_bias'`)."""
    obtained = outcome.obtained
    if not isinstance(obtained, Raised) or obtained.error.type != "TypeError":
        return None
    found = re.search(r"unexpected keyword argument '(\w+)'", obtained.error.message)
    return found.group(1) if found and found.group(1) in outcome.case.args else None


def not_run_text(step: Step, outcomes: list[Outcome]) -> str:
    """Why these cases did not run: the student's signature lacks a parameter they need."""
    name = step.signature[: step.signature.index("(")]
    parts = [f"{o.title} was not run: `{call_text(step, o.case)}` passes `{absent_parameter(o)}`, "
             f"which your `{name}` does not take" for o in outcomes]
    return "; ".join(parts) + f" (the contract is `{step.signature}`)"


def lacking(evidence: str, chosen: list[Outcome], outcomes: list[Outcome], step: Step) -> str | None:
    """Why the chosen cases do not give the evidence a check needs, or None when they all do."""
    if evidence == "refusal":
        if not any(isinstance(o.obtained, (Built, Returned)) for o in outcomes if not o.case.raises):
            return ("your code gave no result on any valid case, so refusing invalid arguments "
                    "shows nothing yet")
        for outcome in chosen:
            if isinstance(outcome.obtained, Raised) and outcome.obtained.error.timeout:
                return f"{outcome.title} was stopped"
        return None
    for outcome in chosen:
        why = _lacking_one(evidence, outcome, step)
        if why:
            return why
    return None


def _lacking_one(evidence: str, outcome: Outcome, step: Step) -> str | None:
    obtained, title = outcome.obtained, outcome.title
    if isinstance(obtained, Raised):
        error = obtained.error
        if error.timeout:
            return f"{title} was stopped at its time limit"
        return f"your code raised {error.text()} on {title}"
    if isinstance(obtained, NotModule):
        return f"`{step.signature}` gave a {obtained.type_name} on {title}, not an nn.Module"
    if isinstance(obtained, Returned):
        return None
    module = obtained.module
    if evidence == "module":
        return None
    if evidence == "init":
        return None if module.parameter_values is not None else f"{title}: no initial values"
    if module.harness_error:
        return f"on {title}, {module.harness_error}"
    if module.outputs is None:
        if module.forward_error:
            return f"forward raised {module.forward_error.text()} on {title}"
        return f"{title}: forward was not run"
    if evidence == "train" and len(module.train_outputs) < 2:
        why = f": forward raised {module.forward_error.text()}" if module.forward_error else ""
        return f"{title}: training-mode forward did not run{why}"
    if evidence == "gradients" and module.gradients is None:
        why = f" ({module.forward_error.text()})" if module.forward_error else ""
        return f"{title}: backward did not run{why}"
    return None


# ------------------------------------------------------------------------------ outputs


def labelled(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Flatten an output into (label, leaf) pairs: a tuple's items."""
    if isinstance(value, tuple):
        return [pair for i, item in enumerate(value)
                for pair in labelled(item, f"{prefix}output[{i}] ")]
    return [(prefix.strip() or "output", value)]


def expected_and_obtained(step: Step, outcome: Outcome) -> list[tuple[str, torch.Tensor, Any]]:
    """(label, expected tensor, obtained value) triples for one case, structure checked."""
    expected, obtained = outcome.expected.output, outcome.obtained
    if step.kind == "class":
        got = outcome.module.outputs
        return [(f"forward output {i}" if len(expected) > 1 else "forward output", e, g)
                for i, (e, g) in enumerate(zip(expected, got))]
    if step.kind == "procedure":
        names = outcome.expected.arg_names or step.arg_names
        return [triple for name, want, got in zip(names, expected, obtained.shells)
                for triple in argument_triples(name, want, got)]
    got = obtained.output
    if isinstance(expected, tuple):
        if not isinstance(got, tuple) or len(got) != len(expected):
            raise CheckFailed(f"{outcome.title}: expected a tuple of {len(expected)} values, "
                              f"got {describe_value(got)}")
        return [(label, e, g) for (label, e), g in zip(labelled(expected), got)]
    return [("output", expected, got)]


def argument_triples(name: str, expected: Any, obtained: Any) -> list[tuple[str, torch.Tensor, Any]]:
    """A procedure's argument after the call, as (label, the reference's, the student's): a
    tensor itself, a module's parameters (or a mapping's tensors) each by name; a plain value
    (a number, a string) cannot change and is not compared."""
    if isinstance(expected, torch.Tensor):
        return [(name, expected, obtained)]
    if isinstance(expected, dict):
        got = obtained if isinstance(obtained, dict) else {}
        return [(f"{name}.{key}", value, got.get(key)) for key, value in expected.items()
                if isinstance(value, torch.Tensor)]
    return []


def describe_value(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {shape_text(value.shape)}"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)} values"
    if isinstance(value, list):
        return f"a list of {len(value)} values"
    if isinstance(value, Opaque):
        return f"an object of type {value.type_name}"
    if value is None:
        return "None (did you forget to `return`?)"
    return f"{type(value).__name__} {value!r}"


def shape_text(shape) -> str:
    dims = tuple(shape)
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def call_text(step: Step, case) -> str:
    """The call the grader made, as code: `MultiHeadAttention(d_in=3, d_out=2, ...)`."""
    name = step.signature[: step.signature.index("(")]
    args = ", ".join(f"{k}={_spec_text(case.args[k])}" for k in step.arg_names if k in case.args)
    return f"{name}({args})"


def _spec_text(spec: Any) -> str:
    if isinstance(spec, (bool, int, float)) or spec is None:
        return repr(spec)
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict) and "fixture" in spec and isinstance(spec["fixture"], str):
        init = spec.get("init", {})
        arguments = ", ".join(f"{k}={v!r}" for k, v in init.items()) if isinstance(init, dict) else ""
        return f"{spec['fixture'].split(':')[-1]}({arguments})"
    if isinstance(spec, dict) and "optimizer" in spec and isinstance(spec.get("params"), str):
        options = "".join(f", {k}={v!r}" for k, v in spec.items() if k not in ("optimizer", "params"))
        return f"torch.optim.{spec['optimizer']}({spec['params']}.parameters(){options})"
    if isinstance(spec, dict) and set(spec) == {"value"}:
        text = repr(spec["value"])
        return text if len(text) <= 80 else text[:77] + "..."
    return "<tensor>"


# ------------------------------------------------------------------------------ doing nothing


def trivial(expected: torch.Tensor, obtained: Any, inputs: list) -> str | None:
    """What makes `obtained` an output that does nothing, where the reference's does something:
    all zeros, one number everywhere, an input handed back, or uniform weights. None otherwise."""
    if not isinstance(obtained, torch.Tensor) or obtained.shape != expected.shape:
        return None
    facts = _reference_facts(expected, inputs)
    o = obtained.double()
    if o.numel() > 1:
        if not facts.zeros and bool((o == 0).all()):
            return "all zeros"
        if not facts.constant and bool((o == o.flatten()[0]).all()):
            return f"{o.flatten()[0].item():.4g} everywhere"
    for x, reference_too in zip(inputs, facts.inputs):
        if (not reference_too and isinstance(x, torch.Tensor) and x.shape == o.shape
                and torch.allclose(o, x.double(), equal_nan=True)):
            return "its input handed back unchanged"
    if o.dim() and o.shape[-1] > 1 and not facts.uniform and _uniform(o):
        return "uniform weights (every position weighted the same)"
    return None


@dataclass(frozen=True)
class _ReferenceFacts:
    """Which of `trivial`'s findings the reference's own output shows (then it is no fault)."""

    zeros: bool
    constant: bool
    inputs: tuple[bool, ...]  # per input: the reference hands it back
    uniform: bool


_ONCE: dict[tuple[str, int], tuple[torch.Tensor, tuple, Any]] = {}  # (what, id(output)) -> value
_MAX_ONCE = 4096  # the reference's outputs of one class; past it (transient views) start again


def _once_per_reference(what: str, expected: torch.Tensor, inputs: tuple, compute):
    """`compute()`, once per reference output (and its inputs) rather than once per student: the
    reference's outputs are the same tensors for the whole class."""
    held = _ONCE.get((what, id(expected)))
    if held is not None and held[0] is expected and len(held[1]) == len(inputs) and all(
            a is b for a, b in zip(held[1], inputs)):
        return held[2]
    value = compute()
    if len(_ONCE) >= _MAX_ONCE:
        _ONCE.clear()
    _ONCE[(what, id(expected))] = (expected, inputs, value)
    return value


def _reference_facts(expected: torch.Tensor, inputs: list) -> _ReferenceFacts:
    """The facts of one reference output with its inputs."""
    def compute() -> _ReferenceFacts:
        e = expected.double()
        many = e.numel() > 1
        return _ReferenceFacts(
            zeros=many and bool((e == 0).all()),
            constant=many and bool((e == e.flatten()[0]).all()),
            inputs=tuple(isinstance(x, torch.Tensor) and x.shape == e.shape
                         and torch.allclose(e, x.double(), equal_nan=True) for x in inputs),
            uniform=bool(e.dim() and e.shape[-1] > 1 and _uniform(e)))
    return _once_per_reference("facts", expected, tuple(inputs), compute)


def _uniform(t: torch.Tensor) -> bool:
    """Whether the non-zero entries of every row (last dimension) are all equal."""
    nonzero = t != 0
    top = torch.where(nonzero, t, torch.full_like(t, -math.inf)).amax(dim=-1)
    bottom = torch.where(nonzero, t, torch.full_like(t, math.inf)).amin(dim=-1)
    empty = ~nonzero.any(dim=-1)
    return bool(((top - bottom).abs() <= 1e-6).logical_or(empty).all())


def _refuse_trivial(outcome: Outcome, label: str, expected, obtained, what: str) -> None:
    def compute():
        return trivial(expected, obtained, list(outcome.expected.args) + list(outcome.expected.inputs))

    found = _once_per_step(("trivial", id(outcome), id(expected), id(obtained)),
                           (outcome, expected, obtained), compute)
    if found:
        raise CheckFailed(f"{outcome.title}: {label} is {found}, so it cannot show that {what}")


def _refuse_ignored_input(outcome: Outcome, what: str) -> None:
    """A module whose output is the same for different inputs, where the reference's is not."""
    outputs, expected = outcome.module.outputs, outcome.expected.output
    _refuse_trivial(outcome, "the forward output", expected[0], outputs[0], what)
    for index in range(1, len(outputs)):
        if (isinstance(outputs[index], torch.Tensor) and isinstance(outputs[0], torch.Tensor)
                and outputs[index].shape == outputs[0].shape
                and torch.equal(outputs[index], outputs[0])
                and not torch.equal(expected[index], expected[0])):
            raise CheckFailed(f"{outcome.title}: the forward output is the same for different "
                              f"inputs, so it cannot show that {what}")


# ------------------------------------------------------------------------------ the checks


def check_shape(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        for label, expected, obtained in expected_and_obtained(step, outcome):
            if not isinstance(obtained, torch.Tensor):
                raise CheckFailed(f"{outcome.title}: {label} should be a tensor of shape "
                                  f"{shape_text(expected.shape)}, got {describe_value(obtained)}")
            if obtained.shape != expected.shape:
                raise CheckFailed(f"{outcome.title}: {label} has shape {shape_text(obtained.shape)}"
                                  f"; expected {shape_text(expected.shape)}")
            _refuse_trivial(outcome, label, expected, obtained, "the computation gives the right "
                            "shape; the shape counts once the output is computed")
    return "shapes are right"


def check_dtype(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        for label, expected, obtained in expected_and_obtained(step, outcome):
            if obtained.dtype != expected.dtype:
                raise CheckFailed(f"{outcome.title}: {label} has dtype {obtained.dtype}; expected "
                                  f"{expected.dtype}")
            _refuse_trivial(outcome, label, expected, obtained, "the computation gives the right "
                            "dtype; the dtype counts once the output is computed")
    return "dtypes are right"


def check_values(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    worst = 0.0
    for outcome in outcomes:
        for label, expected, obtained in expected_and_obtained(step, outcome):
            if not isinstance(expected, torch.Tensor):  # a plain value: compared exactly
                problem = plain_difference(expected, obtained, step.atol, step.rtol)
                if problem:
                    raise CheckFailed(f"{outcome.title}: {label} {problem}")
                continue
            if not isinstance(obtained, torch.Tensor) or obtained.shape != expected.shape:
                raise CheckFailed(f"{outcome.title}: {label} is {describe_value(obtained)}; "
                                  f"expected shape {shape_text(expected.shape)}")
            difference = _compared(expected, obtained, step.atol, step.rtol)
            if difference:
                raise CheckFailed(f"{outcome.title}: {label} {difference.text(outcome.case.visible)}")
            if expected.numel():  # NaN beside the reference's NaN (or the same inf) is no difference
                worst = max(worst, (obtained.double() - expected.double()).abs().nan_to_num(
                    nan=0.0).max().item())
    return f"values match (largest difference {worst:.2g}, atol {step.atol:g}, rtol {step.rtol:g})"


def plain_difference(expected: Any, obtained: Any, atol: float, rtol: float, where: str = ""
                     ) -> str | None:
    """How a plain value (a number, string, list, tuple or dict, tensors inside) differs from the
    expected one, or None: types and keys exactly, floats within the tolerances."""
    at = f" at {where}" if where else ""
    if isinstance(expected, torch.Tensor):
        if not isinstance(obtained, torch.Tensor) or obtained.shape != expected.shape:
            return f"is {describe_value(obtained)}{at}; expected a tensor of shape " \
                   f"{shape_text(expected.shape)}"
        difference = _compared(expected, obtained, atol, rtol)
        return f"differs{at}: {difference.text(False)}" if difference else None
    if type(expected) is float and type(obtained) in (int, float):
        # NaN where the reference gives NaN is equal (as in `compare`); an infinity, the same one
        close = abs(obtained - expected) <= atol + rtol * abs(expected) or obtained == expected \
            or math.isnan(expected) and math.isnan(obtained)
        return None if close else f"is {obtained!r}{at}; expected {expected!r}"
    if type(obtained) is not type(expected):
        return f"is {describe_value(obtained)}{at}; expected {type(expected).__name__} {expected!r}"[:500]
    if isinstance(expected, dict):
        if list(obtained) != list(expected) and set(obtained) != set(expected):
            return f"has the keys {sorted(map(str, obtained))}{at}; expected " \
                   f"{sorted(map(str, expected))}"
        for key in expected:
            problem = plain_difference(expected[key], obtained[key], atol, rtol, f"{where}[{key!r}]")
            if problem:
                return problem
        return None
    if isinstance(expected, (list, tuple)):
        if len(obtained) != len(expected):
            return f"has {len(obtained)} items{at}; expected {len(expected)}"
        for index, (e, o) in enumerate(zip(expected, obtained)):
            problem = plain_difference(e, o, atol, rtol, f"{where}[{index}]")
            if problem:
                return problem
        return None
    return None if obtained == expected else f"is {obtained!r}{at}; expected {expected!r}"[:500]


def check_rows_sum_to_one(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    tolerance = check.tolerance or 1e-4
    for outcome in outcomes:
        for label, expected, obtained in expected_and_obtained(step, outcome):
            _refuse_trivial(outcome, label, expected, obtained, "its rows are weights that sum to 1")
            sums = obtained.double().sum(dim=-1)
            off = (sums - 1).abs()
            if not torch.isfinite(sums).all() or off.max() > tolerance:
                where = _index(off.argmax().item(), sums.shape)
                raise CheckFailed(f"{outcome.title}: rows of {label} should each sum to 1; "
                                  f"row {where} sums to {sums.flatten()[off.argmax()].item():.6g}")
    return "every row sums to 1"


def check_zero_above_diagonal(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        for label, expected, obtained in expected_and_obtained(step, outcome):
            _refuse_trivial(outcome, label, expected, obtained, "the future is masked")
            rows, cols = obtained.shape[-2], obtained.shape[-1]
            future = torch.ones(rows, cols, dtype=torch.bool).triu(diagonal=1)
            leaked = (obtained[..., future] != 0).sum().item()
            if leaked:
                raise CheckFailed(f"{outcome.title}: {label} has {leaked} non-zero weight(s) above "
                                  "the diagonal: a token attends to tokens after it")
    return "no weight above the diagonal"


def _dropout_sample(outcome: Outcome) -> tuple[torch.Tensor, float, torch.Tensor, torch.Tensor]:
    """The input, p, the expected sample and the obtained sample of a dropout case."""
    x, p = outcome.expected.args[0], float(outcome.expected.args[1])
    return x, p, outcome.expected.output, outcome.obtained.output


def check_zero_fraction(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    """The share of zeros matches the expected sample's, within five standard deviations."""
    parts = []
    for outcome in outcomes:
        _, p, expected, obtained = _dropout_sample(outcome)
        n = obtained.numel()
        target = (expected == 0).double().mean().item()
        fraction = (obtained == 0).double().mean().item()
        bound = 5 * math.sqrt(2 * max(target * (1 - target), 1 / n) / n)
        if abs(fraction - target) > bound:
            raise CheckFailed(f"{outcome.title}: with p = {p:g}, {fraction:.2%} of the {n} elements "
                              f"are zero; expected about {target:.0%} (± {bound:.2%})")
        parts.append(f"p = {p:g}: {fraction:.2%} zeros")
    return "; ".join(parts)


def check_survivors_scaled(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    """Kept elements are the input times the same factor as in the expected sample."""
    for outcome in outcomes:
        x, p, expected, obtained = _dropout_sample(outcome)
        want = _once_per_reference("kept scale", expected, (x,), partial(_kept_scale, x, expected))
        if not isinstance(obtained, torch.Tensor) or obtained.shape != x.shape:
            raise CheckFailed(f"{outcome.title}: the output is {describe_value(obtained)}; expected "
                              f"the input's shape {shape_text(x.shape)}")
        kept = obtained != 0
        if not kept.any():
            raise CheckFailed(f"{outcome.title}: every element is zero, so no kept element shows "
                              "its scale")
        # allclose(obtained[kept], x[kept] * want, rtol=1e-5, atol=1e-6), in arithmetic (boolean
        # indexing costs ten times more): a dropped element's term is multiplied by 0; a NaN or
        # an infinity kept makes the maximum NaN or infinite, which fails.
        scaled = x * want
        off = ((obtained - scaled).abs_() - 1e-5 * scaled.abs()).mul_(kept)
        if not off.max().item() <= 1e-6:
            ratio = (obtained[kept] / x[kept]).median().item()
            raise CheckFailed(f"{outcome.title}: kept elements are {ratio:.4g} × the input; expected "
                              f"{want:.4g} × the input (1 / (1 - p) = {1 / (1 - p):.4g})")
    return "kept elements are scaled by 1 / (1 - p)"


def _kept_scale(x: torch.Tensor, sample: torch.Tensor) -> float:
    kept = sample != 0
    return (sample[kept] / x[kept]).median().item() if kept.any() else 1.0


def check_raises(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        allowed = outcome.case.raises
        call = call_text(step, outcome.case)
        if not isinstance(outcome.obtained, Raised):
            raise CheckFailed(f"`{call}` should raise {' or '.join(allowed)}, but it did not")
        if outcome.obtained.error.type not in allowed:
            raise CheckFailed(f"`{call}` raised {outcome.obtained.error.type}; expected "
                              f"{' or '.join(allowed)}")
    return "invalid arguments are refused"


def check_parameters(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        want = {name: tuple(p.shape) for name, p in outcome.expected.parameters.items()}
        problem = _parameter_problem(step, outcome.module.shapes(), want)
        if problem:
            binding = outcome.expected.binding
            if binding is not None:
                problem += (f". The grader matched your parameters to the contract's by shape "
                            f"({binding.text()}) and graded every other check with them")
            raise CheckFailed(problem)
    return "parameter names and shapes are right"


def _parameter_problem(step: Step, got: dict, want: dict) -> str | None:
    for name, shape in want.items():
        symbolic = step.parameters.get(name)
        spelled = f"({', '.join(symbolic)}) = {shape_text(shape)}" if symbolic else shape_text(shape)
        if name not in got:
            found = ", ".join(got) or "none"
            return (f"no parameter named `{name}` (expected shape {spelled}); your module has: "
                    f"{found}")
        if got[name] != shape:
            return f"`{name}` has shape {shape_text(got[name])}; expected {spelled}"
    extra = [n for n in got if n not in want]
    if extra:
        return f"unexpected parameter(s) {', '.join(extra)}; the module should only have: " \
               f"{', '.join(want) or 'none'}"
    return None


def check_init(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        values = outcome.module.parameter_values
        wanted = outcome.expected.bound_parameters
        for name, expected in (outcome.expected.parameters if wanted is None else wanted).items():
            got = values.get(name)
            if got is None or got.shape != expected.shape or not torch.equal(got, expected):
                order = ", ".join(dict.fromkeys(n.split(".")[0] for n in outcome.expected.parameters))
                fused = next((p for p in getattr(outcome.expected.binding, "parts", ())
                              if p.target == name and len(p.sources) > 1), None)
                if fused is not None:
                    raise CheckFailed(f"with torch.manual_seed({outcome.case.seed}), `{name}` is "
                                      "not what the book's initialisation gives: one fused layer "
                                      "draws its initial values in another order than the book's "
                                      f"separate layers ({order}), so seeded results differ from "
                                      "the book's printed ones")
                raise CheckFailed(f"with torch.manual_seed({outcome.case.seed}), `{name}` is not "
                                  "what the book's initialisation gives; " + (
                                      check.advice or f"create the layers in the order {order}, "
                                      "as the book does, with nothing random between"))
    return "initialised as in the book"


def check_structure(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        module = outcome.module
        want = {name: tuple(p.shape) for name, p in outcome.expected.parameters.items()}
        problem = _parameter_problem(step, module.shapes(), want)
        if problem:
            raise CheckFailed(problem)
        # A buffer kept as a plain tensor attribute still shows the configuration (its shape); the
        # `buffers` check of the class step is where that mistake costs points.
        buffers = dict(module.tensor_attributes)
        buffers.update(dict(module.buffers))
        for name, shape in outcome.expected.buffers.items():
            if buffers.get(name) != shape:
                found = shape_text(buffers[name]) if name in buffers else "missing"
                raise CheckFailed(f"buffer `{name}` should have shape {shape_text(shape)}; "
                                  f"yours: {found}")
        for name, want_value in outcome.expected.attributes.items():
            got_value = module.attributes.get(name)
            if got_value != want_value:
                raise CheckFailed(f"`{name}` is {_attribute_text(got_value)}; expected "
                                  f"{_attribute_text(want_value)}")
    return "built with the right configuration"


def _attribute_text(value: Any) -> str:
    if isinstance(value, Opaque) and value.type_name == "_Absent":
        return "missing"
    if isinstance(value, dict) and "$module" in value:
        return f"{value['$module']}(p={value['p']})"
    if isinstance(value, Opaque):
        return f"an object of type {value.type_name}"
    return repr(value)


def check_buffers(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    """The reference's buffers are registered, and forward uses them: with a square buffer (a
    causal mask) transposed, the output must change as the reference's does."""
    confirmed: set[str] = set()
    for outcome in outcomes:
        got = dict(outcome.module.buffers)
        for name, shape in outcome.expected.buffers.items():
            if name not in got:
                raise CheckFailed(f"`{name}` is not a registered buffer: it is missing from "
                                  "state_dict() and would not move with .to(device); create it with "
                                  f"self.register_buffer('{name}', ...)")
            if got[name] != shape:
                raise CheckFailed(f"buffer `{name}` has shape {shape_text(got[name])}; expected "
                                  f"{shape_text(shape)}")
        for name, want in outcome.expected.transposed.items():
            obtained = outcome.module.transposed.get(name)
            if not _forward_matches(step, outcome):
                continue  # forward is not yet the reference's here: its use cannot be predicted
            if not isinstance(obtained, torch.Tensor) or obtained.shape != want.shape or \
                    _compared(want, obtained, step.atol, step.rtol):
                raise CheckFailed(f"{outcome.title}: your forward pass does not use the registered "
                                  f"buffer `{name}`: with its last two dimensions transposed (a "
                                  "causal mask then lets each token see itself and the later ones) "
                                  "the output should change as the reference's does, and it did "
                                  "not. Use self." + name + " in forward rather than a new mask.")
            confirmed.add(name)
    squares = {name for outcome in outcomes for name in outcome.expected.transposed}
    if squares - confirmed:
        raise CheckNotJudged(
            f"{', '.join(f'`{n}`' for n in sorted(squares - confirmed))} is registered, but "
            "whether forward uses it can only be confirmed on a case where forward gives the "
            "reference's output on the grader's weights, and none did (see `values`)")
    return "buffers are registered" + (", and forward uses them" if confirmed else "")


def _forward_matches(step: Step, outcome: Outcome) -> bool:
    """Forward ran on the grader's weights and gave the reference's outputs on this case."""
    module = outcome.module
    if module.outputs is None or module.harness_error or outcome.expected.own_weights:
        return False
    for _, expected, obtained in expected_and_obtained(step, outcome):
        if not isinstance(obtained, torch.Tensor) or obtained.shape != expected.shape or \
                _compared(expected, obtained, step.atol, step.rtol):
            return False
    return True


def check_no_look_ahead(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        outputs = outcome.module.outputs
        _refuse_ignored_input(outcome, "no token looks ahead")
        for first, changed, keep in outcome.expected.look_ahead:
            before, after = outputs[first], outputs[changed]
            if not (isinstance(before, torch.Tensor) and isinstance(after, torch.Tensor)
                    and before.dim() >= 2 and before.shape == after.shape):
                raise CheckFailed(f"{outcome.title}: the forward output is "
                                  f"{describe_value(before)}; expected (batch, tokens, features)")
            before, after = before[..., : keep + 1, :], after[..., : keep + 1, :]
            if not torch.allclose(before, after, atol=1e-5, rtol=1e-4, equal_nan=True):
                same_nan = torch.isnan(before) & torch.isnan(after)
                moved = torch.nan_to_num((before - after).abs(), nan=math.inf)
                moved = moved.masked_fill(same_nan, 0).amax(dim=(0, -1))  # per position
                position = int(moved.argmax().item())
                raise CheckFailed(f"{outcome.title}: changing the tokens after position {keep} "
                                  f"changed the output at position {position} (by up to "
                                  f"{moved[position].item():.3g}): a token looks at tokens after it")
    return "no token looks ahead"


def check_batch_consistency(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        outputs = outcome.module.outputs
        _refuse_ignored_input(outcome, "the items of a batch do not mix")
        for whole, item, alone in outcome.expected.batch_items:
            in_batch, by_itself = outputs[whole], outputs[alone]
            if not (isinstance(in_batch, torch.Tensor) and isinstance(by_itself, torch.Tensor)
                    and in_batch.dim() >= 1 and by_itself.dim() >= 1
                    and in_batch.shape[0] > item and by_itself.shape[0] >= 1):
                raise CheckFailed(f"{outcome.title}: the forward output is "
                                  f"{describe_value(in_batch)}; expected one row per batch item")
            in_batch, by_itself = in_batch[item], by_itself[0]
            if in_batch.shape != by_itself.shape or not torch.allclose(
                    in_batch, by_itself, atol=1e-5, rtol=1e-4, equal_nan=True):
                raise CheckFailed(f"{outcome.title}: batch item {item} gives a different output "
                                  "inside the batch than on its own: the items of a batch must not "
                                  "mix (check which dimensions you transpose and sum over)")
    return "a batch gives the same results as its items one by one"


def check_dropout_train_eval(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        module = outcome.module
        evaluated, trained = module.outputs[0], module.train_outputs
        _refuse_trivial(outcome, "the forward output", outcome.expected.output[0], evaluated,
                        "dropout acts in training mode only")
        for first, again in outcome.expected.repeats:
            if not _same(module.outputs[first], module.outputs[again]):
                raise CheckFailed(f"{outcome.title}: in evaluation mode, two calls on the same "
                                  "input gave different outputs: something random acts outside "
                                  "training mode (is self.dropout applied only through nn.Dropout?)")
        if not all(isinstance(t, torch.Tensor) for t in trained) or not isinstance(
                evaluated, torch.Tensor):
            raise CheckFailed(f"{outcome.title}: the training-mode output is not a tensor")
        if _same(trained[0], trained[1]) or _same(trained[0], evaluated):
            raise CheckFailed(f"{outcome.title}: with dropout > 0, training mode gave the same "
                              "output as evaluation mode or as another call: "
                              + (check.advice or "apply self.dropout to the attention weights"))
    return "dropout acts in training mode only"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and torch.equal(a, b)
    return False


def check_gradients_flow(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    """Every weight's gradient, compared with the reference's on the same weights, input and
    projection of the output: a gradient the grader can predict, not a yes the worker says."""
    confirmed = False
    for outcome in outcomes:
        if not _forward_matches(step, outcome):
            continue  # a different forward pass has different gradients: nothing to predict
        confirmed = True
        got = outcome.module.gradients
        wanted = outcome.expected.bound_gradients
        for name, want in (outcome.expected.gradients if wanted is None else wanted).items():
            if want is None or not want.abs().sum() > 0:
                continue  # the reference's own weight gets none here: nothing to ask of theirs
            grad = got.get(name)
            if not isinstance(grad, torch.Tensor) or not grad.abs().sum() > 0:
                raise CheckFailed(f"{outcome.title}: no gradient reaches {name}: is something "
                                  "detached, computed under torch.no_grad(), or unused?")
            if grad.shape != want.shape:
                raise CheckFailed(f"{outcome.title}: the gradient of {name} has shape "
                                  f"{shape_text(grad.shape)}; expected {shape_text(want.shape)}")
            difference = compare(want, grad, step.atol * 10, step.rtol * 10)
            if difference:
                raise CheckFailed(f"{outcome.title}: the gradient of {name} is not the "
                                  f"reference's: it {difference.text(outcome.case.visible)}; is part "
                                  "of the computation detached or done outside autograd?")
    if not confirmed:
        raise CheckNotJudged("the gradients can only be compared with the reference's where "
                             "forward gives the reference's output, and on this check's case it "
                             "does not yet (see `values`)")
    return "gradients reach every weight, as the reference's do"


def check_param_count(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    counts = []
    for outcome in outcomes:
        got = sum(math.prod(shape) for _, shape, _ in outcome.module.parameters)
        want = sum(p.numel() for p in outcome.expected.parameters.values())
        if got != want:
            raise CheckFailed(f"the module has {got:,} parameters; expected {want:,}")
        counts.append(f"{want:,}")
    return f"{', '.join(counts)} parameters"


def check_samples_match(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    """A sampler's draws (`draws:` calls, stacked) against the reference's own draws under other
    seeds: a chi-square test whose false-fail rate is the check's `tolerance` (default
    grader.sampling.ALPHA). Draws of another seed or another sampling call pass; draws from
    another distribution fail."""
    from .sampling import ALPHA, compare_draws

    alpha = check.tolerance if check.tolerance is not None else ALPHA
    for outcome in outcomes:
        expected, obtained = outcome.expected.output, outcome.obtained.output
        draws = outcome.case.draws
        if not isinstance(obtained, torch.Tensor) or obtained.shape != expected.shape:
            raise CheckFailed(f"{outcome.title}: {draws} calls should give {draws} tensors of the "
                              f"reference's shape {shape_text(expected.shape[1:])}, stacked as "
                              f"{shape_text(expected.shape)}; got {describe_value(obtained)}")
        fit = compare_draws(obtained, expected)
        if fit.rejected(alpha):
            drawn = (f" (for instance {list(fit.worst)} was drawn {fit.obtained_count} times, "
                     f"the reference's sampler drew it {fit.expected_count} times)"
                     if outcome.case.visible else "")
            raise CheckFailed(
                f"{outcome.title}: your {draws} draws do not follow the reference's distribution"
                f"{drawn}: counting {fit.where}, chi-square {fit.statistic:.1f} on {fit.df} "
                f"degrees of freedom, p = {fit.p_value:.2g}"
                + (f" ({fit.tests} tests)" if fit.tests > 1 else "")
                + f", below {alpha:g} (a sampler drawing from the right distribution "
                f"fails this test with probability {alpha:g}); check that the temperature divides "
                "the logits before softmax, that top-k keeps exactly k tokens, and that you draw "
                "(torch.multinomial) rather than take the argmax")
    return (f"the draws follow the reference's distribution (a chi-square test that a correct "
            f"sampler fails with probability {alpha:g})")


def check_arguments_after(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    """Each argument as the call left it, against the reference's after its own call on the same
    arguments: a module's training mode and parameters, a tensor's values, any other value."""
    for outcome in outcomes:
        wanted, got = outcome.expected.arguments_after, outcome.obtained.arguments
        if wanted is None or got is None or len(got) != len(wanted):
            raise CheckNotJudged(f"{outcome.title}: the arguments were not sent back after the call")
        for name, want, after in zip(outcome.expected.arg_names, wanted, got):
            problem = argument_difference(name, want, after, step.atol, step.rtol)
            if problem:
                raise CheckFailed(f"{outcome.title}: after the call, {problem}"
                                  + (f"; {check.advice}" if check.advice else ""))
    return "the arguments are left as the reference leaves them"


def argument_difference(name: str, want: Any, got: Any, atol: float, rtol: float) -> str | None:
    """How one argument after the call differs from the reference's (grader.cases.argument_state),
    or None."""
    if isinstance(want, dict) and set(want) == {"training", "parameters"}:
        if not (isinstance(got, dict) and set(got) == {"training", "parameters"}):
            return f"`{name}` is {describe_value(got)}; expected a module"
        if got["training"] != want["training"]:
            mode = {True: "training", False: "evaluation"}
            return (f"`{name}` is left in {mode.get(got['training'], '?')} mode; the reference "
                    f"leaves it in {mode[want['training']]} mode (call `{name}."
                    f"{'train' if want['training'] else 'eval'}()` before returning)")
        parameters = got["parameters"] if isinstance(got["parameters"], dict) else {}
        for parameter, value in want["parameters"].items():
            problem = plain_difference(value, parameters.get(parameter), atol, rtol)
            if problem:
                return f"`{name}.{parameter}` {problem}"
        return None
    problem = plain_difference(want, got, atol, rtol)
    return f"`{name}` {problem}" if problem else None


_MISSING = [name for name, spec in REGISTRY.items()
            if spec.function is None and f"check_{name}" not in globals()]
if _MISSING:  # a check declared in the registry with no function is the grader's bug
    raise ImportError(f"grader.registry declares checks with no function: {', '.join(_MISSING)}")


# ------------------------------------------------------------------------------ comparing values


@dataclass(frozen=True)
class Difference:
    mismatched: int
    numel: int
    max_abs: float
    max_abs_at: str
    max_rel: float
    expected_at: float
    obtained_at: float
    nan: int
    inf: int
    atol: float
    rtol: float

    def text(self, visible: bool) -> str:
        parts = [f"differs in {self.mismatched} of {self.numel} elements"]
        if self.nan or self.inf:
            parts.append(f"it holds {self.nan} NaN and {self.inf} Inf value(s)")
        parts.append(f"largest absolute difference {self.max_abs:.4g} at {self.max_abs_at}"
                     + (f" (expected {self.expected_at:.4f}, got {self.obtained_at:.4f})"
                        if visible else ""))
        parts.append(f"largest relative difference {self.max_rel:.3g}")
        return "; ".join(parts) + f" (allowed: atol {self.atol:g} + rtol {self.rtol:g})"


def _compared(expected: torch.Tensor, obtained: torch.Tensor, atol: float, rtol: float
              ) -> Difference | None:
    """`compare`, once per pair of tensors and tolerances while one step's checks run."""
    return _once_per_step(("compare", id(expected), id(obtained), atol, rtol), (expected, obtained),
                          partial(compare, expected, obtained, atol, rtol))


def compare(expected: torch.Tensor, obtained: torch.Tensor, atol: float, rtol: float
            ) -> Difference | None:
    """None when `obtained` is close to `expected` everywhere, else what differs and by how much."""
    e, o = expected.double(), obtained.double()
    # The common case first, in arithmetic only (isclose's boolean kernels cost ten times more):
    # max(|o - e| - rtol * |e|) <= atol is the same test. A NaN or an infinity anywhere makes the
    # maximum NaN, and the exact test below decides.
    if e.numel() and (o - e).abs_().sub_(e.abs(), alpha=rtol).max().item() <= atol:
        return None
    # |o - e| <= atol + rtol * |e| everywhere. NaN compares false, so it is a mismatch, unless both
    # are NaN there (a known mistake that produces NaN explains a student's NaN at the same place).
    close = torch.isclose(o, e, rtol=rtol, atol=atol, equal_nan=True)
    if bool(close.all()):
        return None
    bad = ~close
    abs_diff = (o - e).abs()
    abs_for_max = torch.where(torch.isnan(abs_diff), torch.full_like(abs_diff, math.inf), abs_diff)
    flat = int(abs_for_max.flatten().argmax().item())
    rel = abs_for_max / e.abs().clamp_min(1e-12)
    return Difference(
        mismatched=int(bad.sum().item()),
        numel=e.numel(),
        max_abs=abs_for_max.flatten()[flat].item(),
        max_abs_at=_index(flat, e.shape),
        max_rel=rel.max().item(),
        expected_at=e.flatten()[flat].item(),
        obtained_at=o.flatten()[flat].item(),
        nan=int(torch.isnan(o).sum().item()),
        inf=int(torch.isinf(o).sum().item()),
        atol=atol,
        rtol=rtol,
    )


def _index(flat: int, shape) -> str:
    index = []
    for size in reversed(tuple(shape)):
        index.append(flat % size)
        flat //= size
    return "[" + ", ".join(str(i) for i in reversed(index)) + "]"
