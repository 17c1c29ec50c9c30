"""Checks a course writes itself, in Python, beside its rubric: the course-check API.

The rubric names the file (`course_checks: course_checks.py`); each function in it decorated with
`@check(...)` joins the registry (grader/registry.py) as a built-in check does: the same step kinds,
layers (`after`), evidence rule and result. It runs in the grader's process, on the plain data of
the worker's typed reply and the reference's answers, never in the student's process. A check is
`function(step, rubric_check, outcomes) -> str`: `step` is the rubric's `Step` (its `id`, `kind`,
`arg_names`, `atol`, `rtol`), `rubric_check` the rubric's `Check` (its `points`, `tolerance`,
`cases`), and `outcomes` one `Outcome` per case the check looks at:

    outcome.case        the rubric's Case: .name, .visible, .seed, .args (the specs as written)
    outcome.title       "case `name`" or "hidden case `name`", for messages
    outcome.expected    the reference's answers on the case (grader.cases.Expected):
        .args           the arguments the grader built, in signature order (tensors, fixtures)
        .arg_names      their names (a case may leave any out)
        .output         a function's return value; a class's list of forward outputs, one per
                        input; a procedure's list of each argument's parameters after the call
        .inputs         a class's forward inputs
        .parameters     a module's seeded initial values; .buffers their shapes
        .raised         the exception type the reference raised (refusal cases), else None
    outcome.obtained    what the student's code gave (grader.replies.CaseReply), one of:
        Returned(output, shells)    a function or procedure returned (shells: each argument
                                    after a procedure's call)
        Built(module)               a module was built: outcome.module
        Raised(error)               it raised: error.type, error.message, error.location
        NotModule(type_name)        a class step's name built something that is not a module
    outcome.module      the student's module report (grader.replies.ModuleReport) or None:
                        .class_name, .parameters ((name, shape, dtype) each), .buffers,
                        .attributes, .outputs (one per input), .train_outputs, .gradients,
                        .forward_error

Helpers for the common tests, each with an example:

    inputs_of(outcome)                      the arguments by name
        x = inputs_of(outcome)["x"]
    forward_inputs(outcome)                 a class case's forward inputs
        (x,) = forward_inputs(outcome)
    obtained_output(outcome)                the student's value: a function's return, a
                                            module's forward outputs; None where it raised
        ids = obtained_output(outcome)
    raised(outcome)                         the type of what the student's code raised, or None
        if raised(outcome) == "ValueError": ...
    expected_and_obtained(step, outcome)    (label, reference's tensor, student's value) per
                                            output, structure checked (a wrong tuple fails)
        for label, want, got in expected_and_obtained(step, outcome): ...
    compare(want, got, atol, rtol)          None where they agree, else a Difference whose
                                            .text(visible) says where and by how much
        difference = compare(want, got, step.atol, step.rtol)
    describe_value(value)                   words for a value, for messages
        raise CheckFailed(f"{outcome.title}: got {describe_value(got)}")
    shape_text(shape)                       a shape as Python writes a tuple: (2, 3) or (4,)
        raise CheckFailed(f"{outcome.title}: expected {shape_text(want.shape)}")

A check file:

    import torch

    from grader.course import (CheckFailed, check, expected_and_obtained, inputs_of,
                               obtained_output)

    @check("logits_are_finite", kinds=("class",), evidence="output", after=("shape",),
           summary="the logits hold no NaN or Inf")
    def logits_are_finite(step, rubric_check, outcomes):
        for outcome in outcomes:
            for label, expected, obtained in expected_and_obtained(step, outcome):
                if not torch.isfinite(obtained).all():
                    raise CheckFailed(f"{outcome.title}: {label} holds NaN or Inf")
        return "the logits are finite"

    @check("keeps_the_prompt", kinds=("function",), evidence="returned")
    def keeps_the_prompt(step, rubric_check, outcomes):
        for outcome in outcomes:
            prompt, ids = inputs_of(outcome)["idx"], obtained_output(outcome)
            if not torch.equal(ids[:, : prompt.shape[1]], prompt):
                raise CheckFailed(f"{outcome.title}: the output does not start with the prompt")
        return "the prompt is kept"

A function returns the message of a pass, raises `CheckFailed(message)` for a failure and
`CheckNotJudged(why)` where it found no evidence it could confirm (0 points, and the reason).

A course check is called from `grader.checks.run_checks`, as the built-in checks are, and behind
the same guard (`grader.checks.computed_nothing`): a check whose evidence reads outputs (`output`,
`returned`, `train`, `gradients`) is failed before its function runs where an output holds NaN or
an infinity where the reference's is finite (the message names the place), or where a module on
its own weights is shown not to depend on them. So a check written as "fail where the rows'
means are off" needs no NaN test of its own: every comparison with NaN is false, and such an
output never reaches it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .checks import (  # the helpers a course check uses; importing it declares the built-ins
    CheckFailed,
    CheckNotJudged,
    Outcome,
    compare,
    describe_value,
    expected_and_obtained,
    plain_difference,
    shape_text,
)
from .errors import RubricError
from .quiet import course_code
from .registry import EVIDENCE, KINDS, REGISTRY, CheckSpec
from .replies import Built, Raised, Returned


def inputs_of(outcome: Outcome) -> dict[str, Any]:
    """The case's arguments by the signature's names, as the grader built them (the student's
    code got copies of the same)."""
    return dict(zip(outcome.expected.arg_names, outcome.expected.args))


def forward_inputs(outcome: Outcome) -> list[Any]:
    """A class case's forward inputs, in order (empty for other kinds)."""
    return list(outcome.expected.inputs)


def obtained_output(outcome: Outcome) -> Any:
    """The student's value on the case: a function's or procedure's return value, a module's
    forward outputs (a tuple, one per input); None where it raised or built no module."""
    obtained = outcome.obtained
    if isinstance(obtained, Returned):
        return obtained.output
    if isinstance(obtained, Built):
        return obtained.module.outputs
    return None


def raised(outcome: Outcome) -> str | None:
    """The type name of what the student's code raised on the case, or None."""
    return outcome.obtained.error.type if isinstance(outcome.obtained, Raised) else None


_PENDING: list[tuple[CheckSpec, Callable]] = []  # filled while a checks file is imported
_SOURCES: dict[str, tuple[str, str]] = {}  # check name -> (its file's contents' digest, the file)


def check(name: str, *, kinds: tuple[str, ...], evidence: str = "output", summary: str = "",
          after: tuple[str, ...] = (), needs: str | None = None, matching: bool = False,
          on_weights: bool = False) -> Callable[[Callable], Callable]:
    """Declare a course check. `needs` names a probe a case must carry (`look_ahead`, `batch`)."""

    def register(function: Callable) -> Callable:
        spec = CheckSpec(name, tuple(kinds), evidence, summary or name.replace("_", " "),
                         tuple(after), (lambda case: needs in case.probes) if needs else None,
                         f"`probes: [{needs}]`" if needs else "", matching, on_weights, function)
        _PENDING.append((spec, function))
        return function

    return register


def load_checks(path: Path, where: str) -> tuple[str, ...]:
    """Import a course's checks file by path (in the grader's process) and register its checks;
    the names it registered."""
    if not path.is_file():
        raise RubricError(where, "course_checks", f"the course checks file {path} does not exist")
    _PENDING.clear()
    module_name = f"_attention_grader_course_checks_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        sys.modules[module_name] = module
        with course_code():
            spec.loader.exec_module(module)
    except Exception as exc:
        raise RubricError(where, "course_checks", f"{path} raised {type(exc).__name__}: {exc}") from None
    found, _PENDING[:] = list(_PENDING), []
    if not found:
        raise RubricError(where, "course_checks", f"{path} declares no check (decorate functions with "
                          "@grader.course.check(...))")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    names = []
    for spec_, _ in found:
        problem = _problem(spec_, digest)
        if problem:
            raise RubricError(where, "course_checks", f"{path}: check {spec_.name!r}: {problem}")
        REGISTRY[spec_.name] = spec_
        _SOURCES[spec_.name] = (digest, str(path))
        names.append(spec_.name)
    return tuple(names)


def _problem(spec: CheckSpec, digest: str) -> str | None:
    """What is wrong with a declared check; the same file loaded again (a copy of the course, the
    rubric loaded twice) declares its checks again."""
    if not spec.name.isidentifier():
        return "a check's name is a Python identifier"
    owner = _SOURCES.get(spec.name)
    if spec.name in REGISTRY and owner is None:
        return "a built-in check has that name; choose another"
    if owner is not None and owner[0] != digest:
        return (f"another checks file ({owner[1]}) declares a different check of that name in this "
                "process; give one of them another name")
    unknown = [k for k in spec.kinds if k not in KINDS]
    if unknown or not spec.kinds:
        return f"kinds must be some of {', '.join(KINDS)}, got {', '.join(unknown) or 'none'}"
    if spec.evidence not in EVIDENCE:
        return f"evidence must be one of {', '.join(EVIDENCE)}, got {spec.evidence!r}"
    missing = [a for a in spec.after if a not in REGISTRY]
    if missing:
        return f"`after` names unknown checks: {', '.join(missing)}"
    return None


HELPERS = ("inputs_of", "forward_inputs", "obtained_output", "raised", "expected_and_obtained",
           "compare", "describe_value", "shape_text")  # each with an example in the docstring

__all__ = ["HELPERS", "CheckFailed", "CheckNotJudged", "Outcome", "check", "compare",
           "describe_value", "expected_and_obtained", "forward_inputs", "inputs_of", "load_checks",
           "obtained_output", "plain_difference", "raised", "shape_text"]
