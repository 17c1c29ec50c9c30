"""Every check, declared once: the step kinds it applies to, what it waits for, the case it needs,
the evidence it judges and whether a known mistake can explain it.

The order of `REGISTRY` is the order checks are judged in (defined -> structure -> shape -> values ->
behaviour). `applies(check, case)` is the one rule for which cases a check looks at: rubric
validation, judging, `--seed` replay and the student bundle all use it. The check functions live in
`checks.py` as `check_<name>`; this module imports no torch, so a rubric loads before torch does.

Evidence is what a check needs from a case's reply (`grader.replies`) before it may pass:

    returned     a function or procedure returned a value
    output       the value or forward outputs to compare (a function returned; a module was built,
                 given its weights and run)
    module       a module was built (its parameters and buffers)
    init         a module was built and its seeded initial values were sent
    refusal      the refusal case answered (raised or not), and the step built or returned on a
                 valid case, so a refusal is not just code that raises on everything
    train        forward outputs and the training-mode outputs
    gradients    forward outputs and which parameters received a gradient

A check with no evidence is "not judged": 0 points, and a message that says why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

KINDS = ("function", "class", "factory", "procedure")
EVIDENCE = ("returned", "output", "module", "init", "refusal", "train", "gradients")


@dataclass(frozen=True)
class CheckSpec:
    name: str
    kinds: tuple[str, ...]
    evidence: str
    summary: str  # what passing it shows, for the README and `--help`
    after: tuple[str, ...] = ()  # checks that must pass first
    needs: Callable | None = None  # a property of the case it needs (a probe), or None
    need_text: str = ""  # how a rubric gives a case that property
    matching: bool = False  # compares with the reference: a known mistake can explain a failure
    on_weights: bool = False  # compares numbers computed on the grader's weights (not judged on a
    # module that runs on its own weights, see grader.binding)
    function: Callable | None = None  # a course check's function (grader.course); built-in
    # checks are `check_<name>` in grader/checks.py


def _probe(name: str) -> Callable:
    return lambda case: name in case.probes


_SPECS = (
    CheckSpec("raises", ("function", "class", "factory"), "refusal",
              "invalid arguments are refused with the right exception", matching=True),
    CheckSpec("parameters", ("class", "factory"), "module",
              "parameter names and shapes are the contract's", matching=True),
    CheckSpec("buffers", ("class", "factory"), "module",
              "the reference's buffers are registered", matching=True),
    CheckSpec("structure", ("factory",), "module",
              "built with the right configuration", matching=True),
    CheckSpec("param_count", ("factory", "class"), "module",
              "the number of parameters", matching=True),
    CheckSpec("init", ("class",), "init", "seeded initialisation as in the book",
              after=("parameters",)),
    CheckSpec("shape", KINDS, "output", "output shapes", matching=True),
    CheckSpec("dtype", KINDS, "output", "output dtypes", after=("shape",)),
    CheckSpec("values", KINDS, "output", "values within the tolerances", after=("shape",),
              matching=True, on_weights=True),
    CheckSpec("rows_sum_to_one", ("function", "class"), "output",
              "every row of the weights sums to 1", after=("shape",)),
    CheckSpec("zero_above_diagonal", ("function",), "output",
              "no weight above the diagonal", after=("shape",)),
    CheckSpec("zero_fraction", ("function",), "output",
              "dropout zeroes about a fraction p of the elements", after=("shape",), matching=True),
    CheckSpec("survivors_scaled", ("function",), "output",
              "dropout scales the kept elements by 1 / (1 - p)", after=("shape",), matching=True),
    CheckSpec("no_look_ahead", ("class",), "output",
              "changing later tokens leaves earlier outputs unchanged", after=("shape",),
              needs=_probe("look_ahead"), need_text="`probes: [look_ahead]`"),
    CheckSpec("batch_consistency", ("class",), "output",
              "a batch gives what its items give one by one", after=("shape",),
              needs=_probe("batch"), need_text="`probes: [batch]`"),
    CheckSpec("dropout_train_eval", ("class",), "train",
              "dropout acts in training mode only", after=("shape",),
              needs=lambda case: case.train_calls >= 2, need_text="`train_calls: 2` or more"),
    CheckSpec("gradients_flow", ("class",), "gradients",
              "every weight receives a gradient", after=("parameters",),
              needs=lambda case: case.gradients, need_text="`gradients: true`"),
    CheckSpec("arguments_after", ("function",), "returned",
              "the arguments are left as the reference leaves them (a module's training mode "
              "and parameters, a tensor's values)"),
    CheckSpec("samples_match", ("function",), "returned",
              "a sampler's draws follow the reference's distribution (a chi-square test)",
              needs=lambda case: _draws(case) > 0, need_text="`draws: N` (e.g. `draws: 2000`)",
              matching=True),
)
# What may look at a case of many draws (`draws:`): the reference drew under seeds of its own, so
# no draw is the reference's, and only the counts, shapes and dtypes compare.
ON_DRAWS: frozenset[str] = frozenset({"samples_match", "shape", "dtype"})


def _draws(case) -> int:
    return getattr(case, "draws", 0)

# The built-in checks, then any a course declares (grader.course), in the order they are judged.
REGISTRY: dict[str, CheckSpec] = {spec.name: spec for spec in _SPECS}
# Checks that read tensors only: a step whose reference returns a plain value (an int, a dict)
# cannot have them (a rubric error when the step is prepared); `values` compares plain values exactly.
TENSOR_ONLY: frozenset[str] = frozenset({"shape", "dtype", "rows_sum_to_one", "zero_above_diagonal",
                                         "zero_fraction", "survivors_scaled", "no_look_ahead",
                                         "batch_consistency", "dropout_train_eval"})
LAYERS: tuple[str, ...] = tuple(REGISTRY)
MATCHING: frozenset[str] = frozenset(spec.name for spec in _SPECS if spec.matching)


def applies(check, case) -> bool:
    """Whether the rubric check `check` looks at `case`: named by the check's `cases:` (when it
    has any), a refusal case exactly for `raises`, a case of many draws only for the checks of
    `ON_DRAWS`, and carrying the probe the check needs."""
    spec = REGISTRY[check.check]
    if check.cases and case.name not in check.cases:
        return False
    if (spec.name == "raises") != bool(case.raises):
        return False
    if _draws(case) and spec.name not in ON_DRAWS:
        return False
    return spec.needs is None or bool(spec.needs(case))


def missing_case_text(check) -> str:
    """Why a rubric check has no case to look at, for the rubric error."""
    spec = REGISTRY[check.check]
    if spec.name == "raises":
        return "check 'raises' needs a case with `raises:`"
    if spec.needs is not None:
        return f"check {spec.name!r} needs a case with {spec.need_text}; none of its cases has one"
    return (f"check {spec.name!r} has no case to look at (refusal cases are for 'raises' only, "
            "cases with `draws:` for shape, dtype and samples_match)")


__all__ = ["EVIDENCE", "KINDS", "LAYERS", "MATCHING", "ON_DRAWS", "REGISTRY", "TENSOR_ONLY",
           "CheckSpec", "applies", "missing_case_text"]
