"""Pure comparisons: the student's plain outputs against the reference's, in the grader's process.

Each check returns a `CheckResult` whose message carries numbers: shapes, how many elements differ,
the largest absolute and relative difference and where, the values there (visible cases only),
NaN/Inf counts. Checks run in layers; a layer is only judged when the layers before it passed
(a wrong shape makes comparing values meaningless).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .cases import Expected
from .errors import InternalError
from .models import CheckResult
from .rubric import CASE_NEEDS, Check, Step

# The order checks are judged in: a check only counts once every earlier layer it depends on passed.
LAYERS = ("raises", "parameters", "buffers", "structure", "param_count", "init", "shape", "dtype",
          "values", "rows_sum_to_one", "zero_above_diagonal", "zero_fraction", "survivors_scaled",
          "no_look_ahead", "batch_consistency", "dropout_train_eval", "gradients_flow")
OUTPUT_CHECKS = {"shape", "dtype", "values", "rows_sum_to_one", "zero_above_diagonal",
                 "zero_fraction", "survivors_scaled", "no_look_ahead", "batch_consistency",
                 "dropout_train_eval", "gradients_flow"}
# The checks that compare with the reference's answer (rather than a property of the output):
# a known mistake "explains" a failure when the student passes all of these against it.
MATCHING_CHECKS = {"shape", "values", "parameters", "buffers", "structure", "param_count",
                   "zero_fraction", "survivors_scaled", "raises"}


@dataclass(frozen=True)
class Outcome:
    """One case: what the reference expects and what the student's code gave."""

    expected: Expected
    obtained: dict  # the worker's reply for this case (plain data)

    @property
    def case(self):
        return self.expected.case

    @property
    def title(self) -> str:
        case = self.case
        seen = "case" if case.visible else "hidden case"
        return f"{seen} `{case.name}`" + (f" (seed {case.seed})" if case.seed else "")


NOT_JUDGED = "not judged: "


class CheckFailed(Exception):
    """Raised inside a check function with the message the student reads."""


# ------------------------------------------------------------------------------ entry point


def run_checks(step: Step, outcomes: list[Outcome]) -> list[CheckResult]:
    results: dict[str, CheckResult] = {}
    for check in sorted(step.checks, key=lambda c: LAYERS.index(c.check)):
        blocked = _blocking(check, results)
        if blocked:
            results[check.check] = CheckResult(check.check, False, 0.0, check.points,
                                               f"{NOT_JUDGED}`{blocked}` must pass first")
            continue
        chosen = [o for o in outcomes if _applies(check, o)]
        try:
            message = CHECKS[check.check](step, check, chosen)
            results[check.check] = CheckResult(check.check, True, check.points, check.points,
                                               message)
        except CheckFailed as failure:
            results[check.check] = CheckResult(check.check, False, 0.0, check.points, str(failure))
        except Exception as exc:  # a bug in a check is the grader's failure, never a student's zero
            raise InternalError(f"the {check.check!r} check of step {step.id!r} failed: "
                                f"{type(exc).__name__}: {exc}") from exc
    return [results[c.check] for c in step.checks]


def _blocking(check: Check, results: dict[str, CheckResult]) -> str | None:
    before = {"dtype": ("shape",), "values": ("shape",), "rows_sum_to_one": ("shape",),
              "zero_above_diagonal": ("shape",), "survivors_scaled": ("shape",),
              "zero_fraction": ("shape",), "init": ("parameters",),
              "no_look_ahead": ("shape",), "batch_consistency": ("shape",),
              "dropout_train_eval": ("shape",), "gradients_flow": ("parameters",)}.get(check.check, ())
    for name in before:
        if name in results and not results[name].passed:
            return name
    return None


def _applies(check: Check, outcome: Outcome) -> bool:
    if check.cases:
        return outcome.case.name in check.cases
    refusal = bool(outcome.case.raises)
    if check.check == "raises":
        return refusal
    # behaviour checks look only at the cases that carry their probe
    return not refusal and CASE_NEEDS.get(check.check, lambda case: True)(outcome.case)


# ------------------------------------------------------------------------------ outputs


def labelled(step: Step, value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Flatten an output into (label, leaf) pairs: a tuple's items, a class's per-input outputs."""
    if isinstance(value, tuple):
        return [pair for i, item in enumerate(value)
                for pair in labelled(step, item, f"{prefix}output[{i}] ")]
    return [(prefix.strip() or "output", value)]


def expected_and_obtained(step: Step, outcome: Outcome) -> list[tuple[str, torch.Tensor, Any]]:
    """(label, expected tensor, obtained value) triples for one case, structure checked."""
    expected, obtained = outcome.expected.output, outcome.obtained
    if step.kind == "class":
        if "outputs" not in obtained:
            raise CheckFailed(f"{outcome.title}: not run, since the grader could not give your module "
                              f"its weights: {obtained.get('load_error', 'unknown problem')}")
        exp_leaves = [(f"forward output {i}" if len(expected) > 1 else "forward output", e)
                      for i, e in enumerate(expected)]
        got = obtained.get("outputs", [])
        return [(label, e, g) for (label, e), g in zip(exp_leaves, got)]
    if step.kind == "procedure":
        triples = []
        for name, exp_params, got_params in zip(step.arg_names, expected, obtained["shells"]):
            for pname, e in exp_params.items():
                triples.append((f"{name}.{pname}", e.detach(), got_params.get(pname)))
        return triples
    exp_leaves = labelled(step, expected)
    got = obtained.get("output")
    if isinstance(expected, tuple):
        if not isinstance(got, tuple) or len(got) != len(expected):
            raise CheckFailed(f"{outcome.title}: expected a tuple of {len(expected)} tensors, "
                              f"got {describe_value(got)}")
        return [(label, e, g) for (label, e), g in zip(exp_leaves, got)]
    return [("output", expected, got)]


def describe_value(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {shape_text(value.shape)}"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)} values"
    if isinstance(value, list):
        return f"a list of {len(value)} values"
    if isinstance(value, dict) and "$object" in value:
        return f"an object of type {value['$object']}"
    if value is None:
        return "None (did you forget to `return`?)"
    return f"{type(value).__name__} {value!r}"


def shape_text(shape) -> str:
    dims = tuple(shape)
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


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
    return "shapes are right"


def check_dtype(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        for label, expected, obtained in expected_and_obtained(step, outcome):
            if obtained.dtype != expected.dtype:
                raise CheckFailed(f"{outcome.title}: {label} has dtype {obtained.dtype}; expected "
                                  f"{expected.dtype}")
    return "dtypes are right"


def check_values(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    worst = 0.0
    for outcome in outcomes:
        for label, expected, obtained in expected_and_obtained(step, outcome):
            if not isinstance(obtained, torch.Tensor) or obtained.shape != expected.shape:
                raise CheckFailed(f"{outcome.title}: {label} is {describe_value(obtained)}; "
                                  f"expected shape {shape_text(expected.shape)}")
            difference = compare(expected, obtained, step.atol, step.rtol)
            if difference:
                raise CheckFailed(f"{outcome.title}: {label} {difference.text(outcome.case.visible)}")
            if expected.numel():
                worst = max(worst, (obtained.double() - expected.double()).abs().max().item())
    return f"values match (largest difference {worst:.2g}, atol {step.atol:g}, rtol {step.rtol:g})"


def check_rows_sum_to_one(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    tolerance = check.tolerance or 1e-4
    for outcome in outcomes:
        for label, _, obtained in expected_and_obtained(step, outcome):
            sums = obtained.double().sum(dim=-1)
            off = (sums - 1).abs()
            if not torch.isfinite(sums).all() or off.max() > tolerance:
                where = _index(off.argmax().item(), sums.shape)
                raise CheckFailed(f"{outcome.title}: rows of {label} should each sum to 1; "
                                  f"row {where} sums to {sums.flatten()[off.argmax()].item():.6g}")
    return "every row sums to 1"


def check_zero_above_diagonal(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        for label, _, obtained in expected_and_obtained(step, outcome):
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
    return x, p, outcome.expected.output, outcome.obtained["output"]


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
                              f"are zero; expected about {p:.0%} (± {bound:.2%})")
        parts.append(f"p = {p:g}: {fraction:.2%} zeros")
    return "; ".join(parts)


def check_survivors_scaled(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    """Kept elements are the input times the same factor as in the expected sample."""
    for outcome in outcomes:
        x, p, expected, obtained = _dropout_sample(outcome)
        want = _kept_scale(x, expected)
        kept = obtained != 0
        if kept.any() and not torch.allclose(obtained[kept], x[kept] * want, rtol=1e-5, atol=1e-6):
            ratio = (obtained[kept] / x[kept]).median().item()
            raise CheckFailed(f"{outcome.title}: kept elements are {ratio:.4g} × the input; expected "
                              f"1 / (1 - p) = {1 / (1 - p):.4g} × the input")
    return "kept elements are scaled by 1 / (1 - p)"


def _kept_scale(x: torch.Tensor, sample: torch.Tensor) -> float:
    kept = sample != 0
    return (sample[kept] / x[kept]).median().item() if kept.any() else 1.0


def check_raises(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        error = outcome.obtained.get("error")
        allowed = outcome.case.raises
        args = ", ".join(f"{k}={v}" for k, v in outcome.case.args.items())
        if error is None:
            raise CheckFailed(f"{step.id}({args}) should raise {' or '.join(allowed)}, "
                              "but it did not")
        if error["type"] not in allowed:
            raise CheckFailed(f"{step.id}({args}) raised {error['type']}; expected "
                              f"{' or '.join(allowed)}")
    return "invalid arguments are refused"


def check_parameters(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        got = {name: tuple(shape) for name, shape, _ in outcome.obtained["parameters"]}
        want = {name: tuple(p.shape) for name, p in outcome.expected.parameters.items()}
        problem = _parameter_problem(step, got, want)
        if problem:
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
               f"{', '.join(want)}"
    return None


def check_init(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        values = outcome.obtained.get("parameter_values", {})
        for name, expected in outcome.expected.parameters.items():
            got = values.get(name)
            if got is None or got.shape != expected.shape or not torch.equal(got, expected):
                order = ", ".join(dict.fromkeys(n.split(".")[0] for n in outcome.expected.parameters))
                raise CheckFailed(f"with torch.manual_seed({outcome.case.seed}), `{name}` is not "
                                  "what the book's initialisation gives; create the layers in the "
                                  f"order {order}, as the book does, with nothing random between")
    return "initialised as in the book"


def check_structure(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        obtained = outcome.obtained
        got = {name: tuple(shape) for name, shape, _ in obtained["parameters"]}
        want = {name: tuple(p.shape) for name, p in outcome.expected.parameters.items()}
        problem = _parameter_problem(step, got, want)
        if problem:
            raise CheckFailed(problem)
        # A buffer kept as a plain tensor attribute still shows the configuration (its shape); the
        # `buffers` check of the class step is where that mistake costs points.
        buffers = {name: tuple(shape) for name, shape in obtained.get("tensor_attributes", [])}
        buffers.update({name: tuple(shape) for name, shape in obtained["buffers"]})
        for name, shape in outcome.expected.buffers.items():
            if buffers.get(name) != shape:
                found = shape_text(buffers[name]) if name in buffers else "missing"
                raise CheckFailed(f"buffer `{name}` should have shape {shape_text(shape)}; "
                                  f"yours: {found}")
        for name, want_value in outcome.expected.attributes.items():
            got_value = obtained["attributes"].get(name)
            if got_value != want_value:
                raise CheckFailed(f"`{name}` is {_attribute_text(got_value)}; expected "
                                  f"{_attribute_text(want_value)}")
    return "built with the right configuration"


def _attribute_text(value: Any) -> str:
    if isinstance(value, dict) and "$module" in value:
        return f"{value['$module']}(p={value['p']})"
    return repr(value)


def check_buffers(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        got = {name: tuple(shape) for name, shape in outcome.obtained["buffers"]}
        for name, shape in outcome.expected.buffers.items():
            if name not in got:
                raise CheckFailed(f"`{name}` is not a registered buffer: it is missing from "
                                  "state_dict() and would not move with .to(device); create it with "
                                  f"self.register_buffer('{name}', ...)")
            if got[name] != shape:
                raise CheckFailed(f"buffer `{name}` has shape {shape_text(got[name])}; expected "
                                  f"{shape_text(shape)}")
    return "buffers are registered"


def _outputs(outcome: Outcome) -> list:
    outputs = outcome.obtained.get("outputs")
    if outputs is None:
        raise CheckFailed(f"{outcome.title}: not run ({outcome.obtained.get('load_error')})")
    return outputs


def check_no_look_ahead(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        outputs = _outputs(outcome)
        for first, changed, keep in outcome.expected.look_ahead:
            before, after = outputs[first][..., : keep + 1, :], outputs[changed][..., : keep + 1, :]
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
        outputs = _outputs(outcome)
        for whole, item, alone in outcome.expected.batch_items:
            in_batch, by_itself = outputs[whole][item], outputs[alone][0]
            if in_batch.shape != by_itself.shape or not torch.allclose(
                    in_batch, by_itself, atol=1e-5, rtol=1e-4, equal_nan=True):
                raise CheckFailed(f"{outcome.title}: batch item {item} gives a different output "
                                  "inside the batch than on its own: the items of a batch must not "
                                  "mix (check which dimensions you transpose and sum over)")
    return "a batch gives the same results as its items one by one"


def check_dropout_train_eval(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        evaluated = _outputs(outcome)[0]
        trained = outcome.obtained.get("train_outputs", [])
        if len(trained) < 2:
            raise CheckFailed(f"{outcome.title}: not run")
        if torch.equal(trained[0], trained[1]) or torch.equal(trained[0], evaluated):
            raise CheckFailed(f"{outcome.title}: with dropout > 0, training mode gave the same "
                              "output as evaluation mode or as another call: apply self.dropout "
                              "to the attention weights")
    return "dropout acts in training mode only"


def check_gradients_flow(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        got = outcome.obtained.get("gradients", {})
        missing = [name for name, flows in outcome.expected.gradients.items()
                   if flows and not got.get(name)]
        if missing:
            raise CheckFailed(f"{outcome.title}: no gradient reaches {', '.join(missing)}: is "
                              "something detached, computed under torch.no_grad(), or unused?")
    return "gradients reach every weight"


def check_param_count(step: Step, check: Check, outcomes: list[Outcome]) -> str:
    for outcome in outcomes:
        got = sum(math.prod(shape) for _, shape, _ in outcome.obtained["parameters"])
        want = sum(p.numel() for p in outcome.expected.parameters.values())
        if got != want:
            raise CheckFailed(f"the module has {got:,} parameters; expected {want:,}")
    return f"{want:,} parameters"


CHECKS = {
    "shape": check_shape,
    "dtype": check_dtype,
    "values": check_values,
    "rows_sum_to_one": check_rows_sum_to_one,
    "zero_above_diagonal": check_zero_above_diagonal,
    "zero_fraction": check_zero_fraction,
    "survivors_scaled": check_survivors_scaled,
    "raises": check_raises,
    "parameters": check_parameters,
    "init": check_init,
    "structure": check_structure,
    "param_count": check_param_count,
    "buffers": check_buffers,
    "no_look_ahead": check_no_look_ahead,
    "batch_consistency": check_batch_consistency,
    "dropout_train_eval": check_dropout_train_eval,
    "gradients_flow": check_gradients_flow,
}


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


def compare(expected: torch.Tensor, obtained: torch.Tensor, atol: float, rtol: float
            ) -> Difference | None:
    """None when `obtained` is close to `expected` everywhere, else what differs and by how much."""
    e, o = expected.double(), obtained.double()
    abs_diff = (o - e).abs()
    # NaN compares false, so it is a mismatch, unless both are NaN there (a known mistake that
    # produces NaN explains a student's NaN at the same place).
    bad = ~((abs_diff <= atol + rtol * e.abs()) | (torch.isnan(e) & torch.isnan(o)))
    if not bad.any():
        return None
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
