"""Prepare a step's cases: build the inputs, and compute what the reference gives on them.

Runs in the grader's process only. For each case of a step this builds the request the worker will
run (plain tensors and numbers, never code) and the `Expected` answer from the reference solutions,
on the grader's own seeded inputs. Tensor specs in the rubric:

    book_inputs                      a constant from the rubric's `constants`
    {randn: [7, 5], scale: 2.0}      standard normal (or {rand: ...} uniform) from the case's seed
    {ones: [4, 4]}, {tensor: [[...]]}
    {index: [SPEC, 1]}               one row of a tensor, or one item of a returned tuple
    NAME                             a value the case's `let:` computed earlier
    {softmax: SPEC}, {stack: [SPEC, SPEC]}
    {reference: NAME, args: [SPEC, ...]}   what the reference function NAME returns
    {module: NAME, init: {...}}      a reference module (procedures only): sent as a shell
    3, 0.5, true                     plain numbers pass through
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn as nn

from . import shells
from .errors import RubricError
from .rubric import Case, Rubric, Step

_RANDOM = {"randn": torch.randn, "rand": torch.rand}


@dataclass
class Expected:
    """What the reference does on one case, kept in the grader's process."""

    case: Case
    args: list[Any]  # the materialised call/constructor arguments, in signature order
    output: Any = None  # function: the return value; class: a list, one output per input
    inputs: list[torch.Tensor] = field(default_factory=list)
    parameters: dict[str, torch.Tensor] = field(default_factory=dict)  # seeded init
    buffers: dict[str, tuple[int, ...]] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    raised: str | None = None  # the exception type the reference raised (refusal cases)
    raised_message: str = ""  # the first line of its message (a known mistake's, for diagnosis)
    weights: dict[str, torch.Tensor] = field(default_factory=dict)  # loaded before forward
    replays: list[list[torch.Tensor]] = field(default_factory=list)  # per input, per submodule
    # probes: (input index, probe input index, last position that must not change) for look-ahead;
    # (input index, batch item, probe input index) for batch consistency
    look_ahead: list[tuple[int, int, int]] = field(default_factory=list)
    batch_items: list[tuple[int, int, int]] = field(default_factory=list)
    repeats: list[tuple[int, int]] = field(default_factory=list)  # (input, the same input again)
    projection: torch.Tensor | None = None  # for the gradient probe
    gradients: dict[str, torch.Tensor | None] = field(default_factory=dict)  # the reference's
    # buffer -> the output on the first input with that buffer's last two dimensions transposed
    # (a causal mask then lets each token see itself and the future): the buffer is confirmed to
    # be what forward uses, whatever its encoding (bool, 0/1, tril or triu)
    transposed: dict[str, torch.Tensor] = field(default_factory=dict)
    # Set per submission when the weights were bound by structure (grader.binding): the binding,
    # and the initial values and gradients under the student's names; or `own_weights` when no
    # binding reproduced the reference, so forward ran on the module's own weights.
    binding: Any = None
    bound_parameters: dict[str, torch.Tensor] | None = None
    bound_gradients: dict[str, torch.Tensor | None] | None = None
    own_weights: str = ""  # why the grader's weights could not be given, when they could not


@dataclass
class PreparedStep:
    step: Step
    request: dict  # sent to the worker
    expected: list[Expected]


def load_reference(path: Path) -> ModuleType:
    """Import the reference solutions by path, in the grader's process only."""
    name = "_attention_grader_reference"
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Preparer:
    def __init__(self, rubric: Rubric, reference: ModuleType):
        self.rubric = rubric
        self.reference = reference
        self.scope: dict[str, Any] = {}  # the current case's `let:` values

    def prepare(self, step: Step) -> PreparedStep:
        target = getattr(self.reference, step.reference_name, None)
        if target is None:
            raise RubricError(self.rubric.path, f"steps.{step.id}",
                              f"the reference solutions define no {step.reference_name!r}")
        expected = []
        for index, case in enumerate(step.cases):
            where = f"steps.{step.id}.cases[{index}]"
            expected.append(self.expect(step, case, target, where))
        request = {
            "op": "step",
            "target": step.id,
            "kind": {"function": "function", "class": "build", "factory": "build",
                     "procedure": "procedure"}[step.kind],
            "cases": [self.case_request(step, e) for e in expected],
        }
        return PreparedStep(step, request, expected)

    # ------------------------------------------------------------------ specs

    def materialize(self, spec: Any, generator: torch.Generator, where: str) -> Any:
        if isinstance(spec, bool) or spec is None or isinstance(spec, (int, float)):
            return spec
        if isinstance(spec, str):
            if spec in self.scope:
                return _fresh_one(self.scope[spec])
            if spec not in self.rubric.constants:
                raise RubricError(self.rubric.path, where, f"unknown constant or name {spec!r}")
            return torch.tensor(self.rubric.constants[spec], dtype=torch.float32)
        if isinstance(spec, list):
            return [self.materialize(s, generator, where) for s in spec]
        if not isinstance(spec, dict) or not spec:
            raise RubricError(self.rubric.path, where, f"expected a tensor spec, got {spec!r}")
        op = next(iter(spec))
        body = spec[op]
        try:
            if op in _RANDOM:
                scale = float(spec.get("scale", 1.0))
                return _RANDOM[op](*body, generator=generator) * scale
            if op == "ones":
                return torch.ones(*body)
            if op == "tensor":
                return torch.tensor(body, dtype=torch.float32)
            if op == "index":
                return _fresh_one(self.materialize(body[0], generator, where)[body[1]])
            if op == "softmax":
                return torch.softmax(self.materialize(body, generator, where), dim=-1)
            if op == "stack":
                return torch.stack([self.materialize(s, generator, where) for s in body])
            if op == "reference":
                args = [self.materialize(s, generator, where) for s in spec.get("args", [])]
                with torch.no_grad():
                    return getattr(self.reference, body)(*args)
            if op == "module":
                return self.reference_module(body, spec.get("init", {}), where)
        except RubricError:
            raise
        except Exception as exc:
            raise RubricError(self.rubric.path, where, f"cannot build {spec!r}: {exc}") from None
        raise RubricError(self.rubric.path, where, f"unknown tensor spec {op!r}")

    def reference_module(self, name: str, init: dict, where: str) -> nn.Module:
        cls = getattr(self.reference, name, None)
        if cls is None:
            raise RubricError(self.rubric.path, where, f"no reference class {name!r}")
        return cls(**init)

    def arguments(self, step: Step, case: Case, generator, where) -> list[Any]:
        """The case's arguments in signature order, stopping at the first one not given."""
        args = []
        for name in step.arg_names:
            if name not in case.args:
                break
            args.append(self.materialize(case.args[name], generator, f"{where}.args.{name}"))
        return args

    # ------------------------------------------------------------------ expectations

    def expect(self, step: Step, case: Case, target, where: str, *, tolerant: bool = False
               ) -> Expected:
        """What `target` (the reference, or with `tolerant` a known mistake, which may raise)
        gives on this case."""
        generator = torch.Generator().manual_seed(case.seed)
        torch.manual_seed(case.seed)
        self.scope = {}
        for name, spec in case.let.items():
            self.scope[name] = self.materialize(spec, generator, f"{where}.let.{name}")
        args = self.arguments(step, case, generator, where)
        expected = Expected(case, args)
        try:
            if step.kind == "function":
                with torch.no_grad():
                    expected.output = target(*_fresh(args))
            elif step.kind == "procedure":
                fresh = [copy.deepcopy(a) for a in args]
                with torch.no_grad():
                    target(*fresh)
                expected.output = [dict(m.named_parameters()) for m in fresh]
            else:
                self.expect_module(step, case, target, args, expected, generator, where)
        except Exception as exc:
            if not case.raises and not tolerant:
                raise RubricError(self.rubric.path, where,
                                  f"the reference raised {type(exc).__name__}: {exc}") from None
            expected.raised = type(exc).__name__
            expected.raised_message = (str(exc).strip().splitlines() or [""])[0]
        if case.raises and expected.raised is None and not tolerant:
            raise RubricError(self.rubric.path, where,
                              f"the case expects {case.raises} but the reference did not raise")
        return expected

    def expect_module(self, step, case, target, args, expected, generator, where) -> None:
        torch.manual_seed(case.seed)
        module = target(*args)
        expected.parameters = {n: p.detach().clone() for n, p in module.named_parameters()}
        expected.buffers = {n: tuple(b.shape) for n, b in module.named_buffers()}
        for name in step.attributes:
            if _attribute(module, name) is _ABSENT:
                raise RubricError(self.rubric.path, f"steps.{step.id}.attributes",
                                  f"the reference's {type(module).__name__} has no attribute "
                                  f"{name!r}, so nothing could be compared with it")
        expected.attributes = {a: _attribute(module, a) for a in step.attributes}
        if case.weights == "random":
            scale = self.rubric.defaults.weight_scale
            with torch.no_grad():
                for _, parameter in module.named_parameters():
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
        expected.inputs = [self.materialize(s, generator, f"{where}.inputs") for s in case.inputs]
        self.add_probes(case, expected, generator)
        module.train(case.mode == "train")
        outputs, replays = [], []
        for x in expected.inputs:
            if case.replay:
                with torch.no_grad():
                    per_module = [m(x) for m in module.get_submodule(case.replay)]
                replays.append(per_module)
                shells.install_replays(module, case.replay, per_module)
            with torch.no_grad():
                outputs.append(module(x))
        expected.output = outputs
        expected.replays = replays
        if case.weights:
            expected.weights = {n: p.detach().clone() for n, p in module.named_parameters()}
        if case.gradients and outputs:
            expected.projection = torch.randn(outputs[0].shape, generator=generator)
            module.zero_grad(set_to_none=True)
            (module(expected.inputs[0]) * expected.projection).sum().backward()
            expected.gradients = {n: None if p.grad is None else p.grad.detach().clone()
                                  for n, p in module.named_parameters()}
        if case.weights and outputs and not case.replay:
            expected.transposed = transposed_outputs(module, expected.inputs[0], list(expected.buffers))

    def add_probes(self, case: Case, expected: Expected, generator: torch.Generator) -> None:
        """Extra inputs derived from the first one, whose outputs the behaviour checks compare."""
        if not expected.inputs or not case.probes and not case.train_calls:
            return
        x = expected.inputs[0]  # (b, num_tokens, d_in)
        if "look_ahead" in case.probes:
            keep = x.shape[-2] // 2  # positions 0..keep stay; the later tokens change
            changed = x.clone()
            changed[..., keep + 1 :, :] = torch.randn(changed[..., keep + 1 :, :].shape,
                                                      generator=generator)
            expected.inputs.append(changed)
            expected.look_ahead.append((0, len(expected.inputs) - 1, keep))
        if "batch" in case.probes:
            for item in range(x.shape[0]):
                expected.inputs.append(x[item : item + 1].clone())  # (1, num_tokens, d_in)
                expected.batch_items.append((0, item, len(expected.inputs) - 1))
        if case.train_calls:  # evaluation mode must give the same output twice
            expected.inputs.append(x.clone())
            expected.repeats.append((0, len(expected.inputs) - 1))

    # ------------------------------------------------------------------ requests

    def case_request(self, step: Step, expected: Expected) -> dict:
        case = expected.case
        request: dict[str, Any] = {"seed": case.seed}
        if step.kind == "procedure":
            request["shells"] = [
                {"class": type(m).__name__, "layout": shell_layout(m)} for m in expected.args
            ]
            return request
        request["args"] = _fresh(expected.args)
        request["arg_names"] = list(step.arg_names)  # passed by keyword where the names fit
        if step.kind in ("class", "factory") and expected.raised is None:
            request["attributes"] = list(step.attributes)
            request["send_parameters"] = any(c.check == "init" for c in step.checks)
            if step.kind == "class":
                request["weights"] = expected.weights
                request["mode"] = case.mode
                request["inputs"] = _fresh(expected.inputs)
                request["train_calls"] = case.train_calls
                if expected.projection is not None:
                    request["gradients"] = expected.projection.clone()
                if expected.transposed:
                    request["transpose_buffers"] = sorted(expected.transposed)
                if case.replay:
                    request["replay"] = {"path": case.replay, "outputs": expected.replays}
        return request


def transposed_outputs(module: nn.Module, x: torch.Tensor, names: list[str]) -> dict:
    """For each square buffer that forward uses, the output with it transposed (see Expected)."""
    found = {}
    buffers = dict(module.named_buffers())
    for name in names:
        buffer = buffers.get(name)
        if buffer is None or buffer.dim() < 2 or buffer.shape[-1] != buffer.shape[-2]:
            continue
        saved = buffer.clone()
        with torch.no_grad():
            before = module(x)
            buffer.copy_(saved.transpose(-1, -2))
            after = module(x)
            buffer.copy_(saved)
        if isinstance(after, torch.Tensor) and not torch.allclose(before, after, equal_nan=True):
            found[name] = after
    return found


def shell_layout(module: nn.Module) -> dict:
    """The parameters of `module`'s direct children, as `shells.build_shell` takes them."""
    layout: dict[str, dict] = {}
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            bias = None if child.bias is None else child.bias.detach().clone()
            layout[name] = {"linear": {"weight": child.weight.detach().clone(), "bias": bias}}
    for name, parameter in module.named_parameters(recurse=False):
        layout[name] = {"parameter": parameter.detach().clone()}
    return layout


_ABSENT = object()


def _attribute(module: nn.Module, name: str) -> Any:
    """The attribute at a dotted path (`trf_blocks.0.att.num_heads`), or _ABSENT."""
    value: Any = module
    for part in name.split("."):
        if part.isdigit() and isinstance(value, (nn.ModuleList, nn.Sequential)):
            value = value[int(part)] if int(part) < len(value) else _ABSENT
        else:
            value = getattr(value, part, _ABSENT)
        if value is _ABSENT:
            return _ABSENT
    if isinstance(value, nn.Module):
        return {"$module": type(value).__name__, "p": getattr(value, "p", None)}
    return value


def _fresh(values: list[Any]) -> list[Any]:
    return [_fresh_one(v) for v in values]


def _fresh_one(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, tuple):
        return tuple(_fresh_one(v) for v in value)
    return value
