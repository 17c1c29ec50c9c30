"""Checks a course writes itself, in Python, beside its rubric.

The rubric names the file (`course_checks: course_checks.py`); each function in it decorated with
`@check(...)` joins the registry (grader/registry.py) as a built-in check does: the same step kinds,
layers (`after`), evidence rule and result. It runs in the grader's process, on the plain data of
the worker's typed reply (`outcome.obtained`, `outcome.module`) and the reference's answers
(`outcome.expected`), never in the student's process:

    from grader.course import CheckFailed, check

    @check("logits_are_finite", kinds=("class",), evidence="output", after=("shape",),
           summary="the logits hold no NaN or Inf")
    def logits_are_finite(step, rubric_check, outcomes):
        for outcome in outcomes:
            for label, expected, obtained in expected_and_obtained(step, outcome):
                if not torch.isfinite(obtained).all():
                    raise CheckFailed(f"{outcome.title}: {label} holds NaN or Inf")
        return "the logits are finite"

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


__all__ = ["CheckFailed", "CheckNotJudged", "Outcome", "check", "compare", "describe_value",
           "expected_and_obtained", "load_checks", "plain_difference", "shape_text"]
