"""Prepare a step's cases: build the inputs, and compute what the reference gives on them.

Runs in the grader's process only. For each case of a step this builds the request the worker will
run (plain tensors and numbers, never code) and the `Expected` answer from the reference solutions,
on the grader's own seeded inputs. Tensor specs in the rubric:

    book_inputs                      a constant from the rubric's `constants`
    {randn: [7, 5], scale: 2.0}      standard normal (or {rand: ...} uniform) from the case's seed
    {ones: [4, 4]}, {zeros: [2]}, {tensor: [[...]]}, {arange: 6}
    {randint: [0, 50257, [2, 4]]}    integers in [low, high) of that shape (int64: token ids)
    dtype: int64                     beside any of these: the tensor's dtype (default float32)
    {value: ANY}                     a literal YAML value passed as it is: a `cfg` mapping, a
                                     string, a list (deep-copied for every call)
    {index: [SPEC, 1]}               one row of a tensor, or one item of a returned tuple
    NAME                             a value the case's `let:` computed earlier
    {softmax: SPEC}, {stack: [SPEC, SPEC]}
    {reference: NAME, args: [SPEC, ...]}   what the reference function NAME returns
    {optimizer: AdamW, params: model, lr: 0.001}   a torch.optim optimizer over the parameters
                                     of the same call's argument `model`, built on each side
                                     after the other arguments, over the module that call gets
    {module: NAME, init: {...}}      a reference module (procedures only): sent as a shell
                                     (its nn.Linear layers and own parameters); a procedure's
                                     other arguments travel as values, and each comes back
                                     after the call (a module's parameters, a tensor's values)
    3, 0.5, true                     plain numbers pass through
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import importlib.util
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn as nn

from . import shells
from .errors import RubricError
from .pyparse import LOCK as PARSE_LOCK
from .quiet import course_code
from .registry import applies
from .rubric import Case, Rubric, Step

_RANDOM = {"randn": torch.randn, "rand": torch.rand}


@dataclass
class Expected:
    """What the reference does on one case, kept in the grader's process."""

    case: Case
    args: list[Any]  # the materialised call/constructor arguments given, in signature order
    output: Any = None  # function: the return value; class: a list, one output per input
    inputs: list[torch.Tensor] = field(default_factory=list)
    parameters: dict[str, torch.Tensor] = field(default_factory=dict)  # seeded init
    buffers: dict[str, tuple[int, ...]] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    raised: str | None = None  # the exception type the reference raised (refusal cases)
    raised_message: str = ""  # the first line of its message (a known mistake's, for diagnosis)
    weights: dict[str, torch.Tensor] = field(default_factory=dict)  # loaded before forward
    replays: list[list[dict]] = field(default_factory=list)  # per input, per submodule (shells)
    arg_names: tuple[str, ...] = ()  # the names of `args` (a case may leave out any of them)
    # each argument after the reference's call (`argument_state`), for the arguments_after check
    arguments_after: list[Any] | None = None
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
    # Whether the reference's output on the first input changes with its parameters (two draws
    # of random values, `parameter_draws`); and, set per submission on the own-weights path, why
    # the student's output is shown not to (then no check that reads its outputs counts).
    weights_matter: bool = False
    weights_ignored: str = ""


@dataclass
class PreparedStep:
    step: Step
    request: dict  # sent to the worker
    expected: list[Expected]


def seed_cpu(seed: int) -> None:
    """Seed torch's CPU generator, the one every case runs on (the worker seeds its own the same
    way). `torch.manual_seed` does this too, and queues CUDA seeds with a formatted stack each."""
    torch.default_generator.manual_seed(int(seed))


def load_reference(path: Path) -> ModuleType:
    """Import the reference solutions by path, in the grader's process only, once per file: each
    course's reference has a module name of its own (a known-mistakes file finds it by the same
    rule: `_attention_grader_reference_` + the first 12 hex digits of the SHA-256 of its real path)."""
    path = Path(path).resolve()
    name = "_attention_grader_reference_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    with course_code():
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
            self.refuse_untensored(step, expected[-1], where)
        self.refuse_failing_reference(step, expected)
        request = {
            "op": "step",
            "target": step.id,
            "kind": {"function": "function", "class": "build", "factory": "build",
                     "procedure": "procedure"}[step.kind],
            "cases": [self.case_request(step, e) for e in expected],
        }
        fixtures = {a._grader_fixture["file"]: a._grader_fixture for e in expected for a in e.args
                    if hasattr(a, "_grader_fixture")}
        if len(fixtures) > 1:
            raise RubricError(self.rubric.path, f"steps.{step.id}", "a step's fixtures come from "
                              f"one file; these come from {', '.join(sorted(fixtures))}")
        if fixtures:  # sent as source: the worker builds the same fixtures (course code)
            (fixture,) = fixtures.values()
            request["fixtures"] = {"filename": fixture["file"], "source": fixture["source"]}
        return PreparedStep(step, request, expected)

    def refuse_untensored(self, step: Step, expected: Expected, where: str) -> None:
        """A check that reads tensors, on a case where the reference's output is a plain value."""
        from .registry import TENSOR_ONLY

        if expected.raised is not None or step.kind == "procedure":
            return
        outputs = expected.output if step.kind in ("class", "factory") else [expected.output]
        leaves = [leaf for output in outputs or () for leaf in _leaves(output)]
        plain = next((leaf for leaf in leaves if not isinstance(leaf, torch.Tensor)), None)
        if plain is None:
            return
        for index, check in enumerate(step.checks):
            if check.check in TENSOR_ONLY and (not check.cases or expected.case.name in check.cases):
                raise RubricError(self.rubric.path, f"steps.{step.id}.checks[{index}]",
                                  f"check {check.check!r} compares tensors, but on {where} the "
                                  f"reference gives {type(plain).__name__} {plain!r:.60}; use "
                                  "`values`, which compares plain values exactly")

    def refuse_failing_reference(self, step: Step, expected: list[Expected]) -> None:
        """The reference's own answers, judged by the step's checks as a student's would be (in
        this process: its Expected values stand in for the worker's reply): a check that fails
        them could fail every student, so it is a rubric error naming the case and the check."""
        from .checks import Outcome, run_checks

        outcomes = [Outcome(e, reference_reply(step, e)) for e in expected]
        results = run_checks(step, outcomes)
        if all(result.passed or not result.judged for result in results):
            return
        for index, (check, result) in enumerate(zip(step.checks, results)):
            if result.passed or not result.judged:
                continue
            failing = [o for o in outcomes if applies(check, o.case)
                       and _fails_alone(step, check, outcomes, o)] or outcomes[:1]
            case = failing[0].case
            raise RubricError(self.rubric.path, f"steps.{step.id}.cases[{step.cases.index(case)}]",
                              f"the reference fails its own case {case.name!r}: check "
                              f"{check.check!r} (checks[{index}]) says: {result.message}; fix the "
                              "reference or the case, or leave this check off the case (its "
                              "`cases:`)")

    # ------------------------------------------------------------------ specs

    def materialize(self, spec: Any, generator: torch.Generator, where: str) -> Any:
        if isinstance(spec, bool) or spec is None or isinstance(spec, (int, float)):
            return spec
        if isinstance(spec, str):
            if spec in self.scope:
                return _fresh_one(self.scope[spec])
            if spec not in self.rubric.constants:
                raise RubricError(self.rubric.path, where, f"unknown constant or name {spec!r}")
            constant = self.rubric.constants[spec]
            if isinstance(constant, dict):  # a mapping (a `cfg`) is passed as it is
                return copy.deepcopy(constant)
            return torch.tensor(constant, dtype=torch.float32)
        if isinstance(spec, list):
            return [self.materialize(s, generator, where) for s in spec]
        if not isinstance(spec, dict) or not spec:
            raise RubricError(self.rubric.path, where, f"expected a tensor spec, got {spec!r}")
        op = "optimizer" if "optimizer" in spec else next(iter(spec))
        body = spec[op]
        if op == "value":  # a literal: the one spec that is not built into a tensor
            return copy.deepcopy(body)
        try:
            dtype = _dtype(spec.get("dtype", "float32"))
            if op in _RANDOM:
                scale = float(spec.get("scale", 1.0))
                return (_RANDOM[op](*body, generator=generator) * scale).to(dtype)
            if op == "randint":
                low, high, shape = body
                return torch.randint(low, high, tuple(shape), generator=generator, dtype=torch.int64)
            if op in ("ones", "zeros"):
                return getattr(torch, op)(*body, dtype=dtype)
            if op == "arange":
                return torch.arange(body, dtype=_dtype(spec.get("dtype", "int64")))
            if op == "tensor":
                return torch.tensor(body, dtype=dtype)
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
            if op == "fixture":
                return self.fixture(body, spec.get("init", {}), where)
            if op == "optimizer":
                return self.optimizer(spec, where)
        except RubricError:
            raise
        except Exception as exc:
            raise RubricError(self.rubric.path, where, f"cannot build {spec!r}: {exc}") from None
        raise RubricError(self.rubric.path, where, f"unknown tensor spec {op!r}; a literal value "
                          "(a `cfg` mapping, a string) is written {value: ...}")

    def fixture(self, name: str, init: dict, where: str) -> nn.Module:
        """A course fixture, `FILE:CLASS` beside the rubric (a stand-in language model, say): built
        here for the reference's call, and in the worker from the same source for the student's."""
        if not isinstance(name, str) or name.count(":") != 1:
            raise RubricError(self.rubric.path, where, f"a fixture is written {{fixture: "
                              f"FILE.py:CLASS, init: {{...}}}}, got {name!r}")
        file_name, class_name = name.split(":")
        path = (Path(self.rubric.path).parent / file_name).resolve()
        if not path.is_file():
            raise RubricError(self.rubric.path, where, f"the fixtures file {path} does not exist")
        source = path.read_text(encoding="utf-8")
        namespace: dict[str, Any] = {"__name__": "course_fixtures"}
        with PARSE_LOCK:
            code = compile(source, str(path), "exec")
        with course_code():
            exec(code, namespace)  # noqa: S102 - the course's own file
        if not isinstance(namespace.get(class_name), type):
            raise RubricError(self.rubric.path, where, f"{path} defines no class {class_name!r}")
        if not isinstance(init, dict):
            raise RubricError(self.rubric.path, where, "a fixture's `init` is a mapping")
        module = namespace[class_name](**init)
        module._grader_fixture = {"name": class_name, "init": copy.deepcopy(init),
                                  "file": path.name, "source": source}
        return module

    def optimizer(self, spec: dict, where: str) -> DerivedOptimizer:
        """`{optimizer: AdamW, params: model, lr: 0.001}`: a torch.optim optimizer over another
        argument's parameters, built on each side after the other arguments, over the very
        module the same call is given (grader.cases.bind_derived, the worker's invoke)."""
        name, of = spec["optimizer"], spec.get("params")
        optimizer = getattr(torch.optim, name, None) if isinstance(name, str) else None
        if not (isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer)):
            raise RubricError(self.rubric.path, where, f"{name!r} is not an optimizer of "
                              "torch.optim (AdamW, SGD, Adam, ...)")
        if not isinstance(of, str):
            raise RubricError(self.rubric.path, where, "an optimizer is written {optimizer: AdamW, "
                              "params: ARGUMENT, lr: ...}, where ARGUMENT names the module argument "
                              "of the same call whose parameters it updates")
        options = {k: v for k, v in spec.items() if k not in ("optimizer", "params")}
        for key, value in options.items():
            if not _plain_option(value):
                raise RubricError(self.rubric.path, f"{where}.{key}", f"an optimizer's option is a "
                                  f"number, true/false or a list of numbers, got {value!r:.60}")
        try:  # the options the optimizer takes, tried on a parameter of its own
            optimizer([nn.Parameter(torch.zeros(1))], **options)
        except (TypeError, ValueError) as exc:
            raise RubricError(self.rubric.path, where, f"torch.optim.{name} refuses these options: "
                              f"{exc}") from None
        return DerivedOptimizer(name, of, options)

    def reference_module(self, name: str, init: dict, where: str) -> nn.Module:
        cls = getattr(self.reference, name, None)
        if cls is None:
            raise RubricError(self.rubric.path, where, f"no reference class {name!r}")
        return cls(**init)

    def arguments(self, step: Step, case: Case, generator, where) -> tuple[list[Any], tuple[str, ...]]:
        """The arguments the case gives, in signature order, and their names: a case may leave out
        any argument (the callee's default applies), not only the last ones."""
        names = tuple(name for name in step.arg_names if name in case.args)
        args = [self.materialize(case.args[name], generator, f"{where}.args.{name}") for name in names]
        for name, value in zip(names, args):  # an argument built over another: that one is a module
            if isinstance(value, DerivedOptimizer):
                over = dict(zip(names, args)).get(value.of)
                if not isinstance(over, nn.Module):
                    raise RubricError(self.rubric.path, f"{where}.args.{name}.params",
                                      f"names {value.of!r}, which is not a module argument of this "
                                      f"case (its arguments: {', '.join(names)})")
        return args, names

    # ------------------------------------------------------------------ expectations

    def expect(self, step: Step, case: Case, target, where: str, *, tolerant: bool = False,
               replays: list | None = None) -> Expected:
        """What `target` (the reference, or with `tolerant` a known mistake, which may raise)
        gives on this case; what it prints reaches nobody (grader.quiet)."""
        with course_code():
            return self._expect(step, case, target, where, tolerant=tolerant, replays=replays)

    def _expect(self, step: Step, case: Case, target, where: str, *, tolerant: bool,
                replays: list | None) -> Expected:
        generator = torch.Generator().manual_seed(case.seed)
        seed_cpu(case.seed)
        self.scope = {}
        for name, spec in case.let.items():
            self.scope[name] = self.materialize(spec, generator, f"{where}.let.{name}")
        args, names = self.arguments(step, case, generator, where)
        expected = Expected(case, args, arg_names=names)
        try:
            if step.kind == "function":
                with autograd(step):
                    fresh = _fresh(args)
                    expected.output = (draw(target, step, names, args, case) if case.draws else
                                       call(target, step, names, fresh))
                if wants_arguments_after(step) and not case.draws:
                    expected.arguments_after = [argument_state(a) for a in fresh]
            elif step.kind == "procedure":
                fresh = _fresh(args)
                with autograd(step):
                    call(target, step, names, fresh)
                expected.output = [state_after(a) for a in fresh]
            else:
                self.expect_module(step, case, target, args, expected, generator, where, replays)
                if not tolerant:
                    self.refuse_idle_probes(expected, where)
        except Exception as exc:
            if not case.raises and not tolerant:
                raise RubricError(self.rubric.path, where,
                                  f"the reference raised {type(exc).__name__}: {exc}"
                                  + _grad_advice(step, exc)) from None
            expected.raised = type(exc).__name__
            expected.raised_message = (str(exc).strip().splitlines() or [""])[0]
        if case.raises and expected.raised is None and not tolerant:
            raise RubricError(self.rubric.path, where,
                              f"the case expects {case.raises} but the reference did not raise")
        return expected

    def expect_module(self, step, case, target, args, expected, generator, where,
                      given_replays: list | None = None) -> None:
        """The reference's (or a known mistake's) module on the case. `given_replays`: the
        stand-ins the student's module gets (the reference's), for a mistake's answer."""
        seed_cpu(case.seed)
        with torch.device("meta") if meta_build(step, case) else contextlib.nullcontext():
            module = call(target, step, expected.arg_names, args)  # meta: shapes only, no memory
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
        run = module
        for index, x in enumerate(expected.inputs):
            run = module
            if case.replay:  # the submodules stand in with the reference's own outputs on x
                replays.append(given_replays[index] if given_replays else
                               self.record(module, case.replay, x, where))
                run = copy.deepcopy(module)
                shells.install(run, list(case.replay), replays[-1])
            with torch.no_grad():
                outputs.append(run(x))
        expected.output = outputs
        expected.replays = replays
        if case.weights:  # the weights of what runs: a submodule standing in has none
            expected.weights = {n: p.detach().clone() for n, p in run.named_parameters()}
        if case.gradients and outputs:
            run = module
            if case.replay:
                run = copy.deepcopy(module)
                shells.install(run, list(case.replay), replays[0])
            expected.projection = torch.randn(outputs[0].shape, generator=generator)
            run.zero_grad(set_to_none=True)
            (run(expected.inputs[0]) * expected.projection).sum().backward()
            expected.gradients = {n: None if p.grad is None else p.grad.detach().clone()
                                  for n, p in run.named_parameters()}
        if case.weights and outputs and not case.replay:
            expected.transposed = transposed_outputs(module, expected.inputs[0], list(expected.buffers))
        if case.weights and outputs and not case.replay:  # last: it must not move the seeded draws
            expected.weights_matter = weights_matter(module, expected.inputs[0], case.seed)

    def record(self, module: nn.Module, paths: tuple[str, ...], x: torch.Tensor, where: str
               ) -> list[dict]:
        """The stand-ins' payloads for the reference's forward on x (grader.shells.install): for
        each submodule at `paths` (of a container, an nn.ModuleList or nn.Sequential such as a
        wrapper's heads or a model's blocks: each of its modules), what it was given and gave in
        each call, made into a linear answer that holds neither (stand_in_payload)."""
        recorded, hooks = [], []

        def keep(into: list):
            def hook(_module, args, output):
                given = args[0] if args and isinstance(args[0], torch.Tensor) else None
                into.append((None if given is None else given.detach().clone(),
                             output.detach().clone()))
            return hook

        try:
            for path in paths:
                try:
                    target = module.get_submodule(path)
                except AttributeError:
                    raise RubricError(self.rubric.path, f"{where}.replay", f"the reference's "
                                      f"{type(module).__name__} has no submodule {path!r}") from None
                if isinstance(target, (nn.ModuleList, nn.Sequential)):
                    each = [[] for _ in target]
                    hooks += [child.register_forward_hook(keep(calls)) for child, calls in
                              zip(target, each)]
                    recorded.append(("each", each))
                else:
                    calls: list = []
                    hooks.append(target.register_forward_hook(keep(calls)))
                    recorded.append(("calls", calls))
            with torch.no_grad():
                module(x)
        finally:
            for hook in hooks:
                hook.remove()
        payloads = []
        for (kind, calls), path in zip(recorded, paths):
            seed = sum(map(ord, path)) + 7919 * len(payloads)
            if kind == "each":
                if not all(len(one) == 1 for one in calls):
                    raise RubricError(self.rubric.path, f"{where}.replay", f"each module of {path!r} "
                                      "must be called once per forward to stand in for it")
                payloads.append({"each": [stand_in_payload(one, seed + 104729 * index)
                                          for index, one in enumerate(calls)]})
            else:
                if not calls:
                    raise RubricError(self.rubric.path, f"{where}.replay", f"{path!r} is not called "
                                      "in the reference's forward")
                payloads.append(stand_in_payload(calls, seed))
        return payloads

    def refuse_idle_probes(self, expected: Expected, where: str) -> None:
        """A look-ahead probe must change the reference's output after the kept positions: one
        that changes nothing (a time dimension of one token, the wrong `time_dim`) would pass any
        module."""
        for first, changed, keep in expected.look_ahead:
            before, after = expected.output[first], expected.output[changed]
            if not isinstance(before, torch.Tensor) or before.dim() < 2:
                raise RubricError(self.rubric.path, f"{where}.probes", "the look_ahead probe needs "
                                  "an output of (batch, tokens, features)")
            if before.shape[-2] <= keep + 1 or torch.equal(before[..., keep + 1:, :],
                                                           after[..., keep + 1:, :]):
                raise RubricError(self.rubric.path, f"{where}.probes", "the look_ahead probe does "
                                  "not change the reference's output after the positions it keeps, "
                                  "so it could not show a look-ahead: give more tokens, or the "
                                  "input's `time_dim`")

    def add_probes(self, case: Case, expected: Expected, generator: torch.Generator) -> None:
        """Extra inputs derived from the first one, whose outputs the behaviour checks compare."""
        if not expected.inputs or not case.probes and not case.train_calls:
            return
        x = expected.inputs[0]  # (b, num_tokens, d_in), or (b, num_tokens) token ids
        if "look_ahead" in case.probes:
            tokens = not x.is_floating_point()
            time = case.time_dim if case.time_dim is not None else -1 if tokens else -2
            keep = x.shape[time] // 2  # positions 0..keep stay; the later tokens change
            if not tokens and time in (-2, x.dim() - 2):  # (b, num_tokens, d_in)
                changed = x.clone()
                changed[..., keep + 1:, :] = torch.randn(changed[..., keep + 1:, :].shape,
                                                         generator=generator)
            else:
                changed = x.clone().movedim(time, 0)  # (num_tokens, ...)
                later = changed[keep + 1:]
                if tokens:  # redrawn token ids, each different from the one it replaces
                    low, high = case.token_range or (0, int(x.max()) + 1)
                    drawn = torch.randint(low, high, later.shape, generator=generator, dtype=x.dtype)
                    later.copy_(torch.where(drawn == later, (drawn + 1 - low) % (high - low) + low,
                                            drawn))
                else:
                    later.copy_(torch.randn(later.shape, generator=generator))
                changed = changed.movedim(0, time)
            expected.inputs.append(changed)
            expected.look_ahead.append((0, len(expected.inputs) - 1, keep))
        if "batch" in case.probes:
            for item in range(x.shape[0]):
                expected.inputs.append(x[item : item + 1].clone())  # (1, num_tokens, d_in)
                expected.batch_items.append((0, item, len(expected.inputs) - 1))
        if case.train_calls:  # evaluation mode must give the same output twice
            expected.inputs.append(x.clone())
            expected.repeats.append((0, len(expected.inputs) - 1))

    def refuse_unsendable(self, step: Step, value: Any, where: str) -> None:
        """An argument the worker could not be given as the reference was: a module a shell cannot
        hold (a procedure's), or a value the wire cannot carry (an object of a course's class)."""
        from . import wire

        if isinstance(value, nn.Module):
            if getattr(value, "_grader_fixture", None) is not None:
                return
            if step.kind != "procedure":
                raise RubricError(self.rubric.path, where, f"is a {type(value).__name__} module, "
                                  "which a function is not sent; give it as a course fixture "
                                  "({fixture: FILE.py:CLASS, init: {...}})")
            problem = shell_problem(value)
            if problem:
                raise RubricError(self.rubric.path, where, f"the {type(value).__name__} cannot be "
                                  f"sent as a shell: {problem}. A procedure's module argument "
                                  "travels as its nn.Linear layers and own parameters; give any "
                                  "other module as a course fixture ({fixture: FILE.py:CLASS, "
                                  "init: {...}}), which the worker builds from the course's source")
            return
        if isinstance(value, DerivedOptimizer) or isinstance(value, torch.Tensor) and \
                value.dtype in _DTYPES.values():
            return
        try:
            wire.encode(value)
        except wire.WireError as exc:
            raise RubricError(self.rubric.path, where, f"cannot be sent to the worker ({exc}): an "
                              "argument is a tensor, a number, a string, or a list, tuple or "
                              "mapping of them; build anything else from them in a fixture") from None

    # ------------------------------------------------------------------ requests

    def case_request(self, step: Step, expected: Expected) -> dict:
        case = expected.case
        request: dict[str, Any] = {"seed": case.seed}
        where = f"steps.{step.id}.cases[{step.cases.index(case)}].args"
        for name, value in zip(expected.arg_names, expected.args):
            self.refuse_unsendable(step, value, f"{where}.{name}")
        if step.kind == "procedure":  # a module as a shell, a fixture as its marker, any value as it is
            request["args"] = [{"$shell": {"class": type(a).__name__, "layout": shell_layout(a)}}
                               if isinstance(a, nn.Module) and getattr(a, "_grader_fixture", None) is None
                               else _as_fixture_marker(a) for a in _fresh(expected.args)]
        else:
            request["args"] = [_as_fixture_marker(a) for a in _fresh(expected.args)]
        if step.grad:
            request["grad"] = True  # the worker calls it with autograd on, as the reference was
        if wants_arguments_after(step) and not case.draws:
            request["arguments_after"] = True  # it sends each argument back after the call
        if case.draws:
            request["draws"] = case.draws  # called that many times, the outputs stacked
        request["arg_names"] = list(expected.arg_names)  # passed by keyword where the names fit
        request["positional"] = positional_count(step, expected.arg_names)
        if step.kind in ("class", "factory") and expected.raised is None:
            request["attributes"] = list(step.attributes)
            request["send_parameters"] = any(c.check == "init" for c in step.checks)
            request["meta"] = meta_build(step, case)
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
                    request["replay"] = {"paths": list(case.replay), "outputs": expected.replays}
        return request


def reference_reply(step: Step, expected: Expected):
    """What a worker running the reference would reply on this case, built from its Expected
    values: the CaseReply the checks take."""
    from .replies import Built, ModuleReport, Raised, RaisedError, Returned

    if expected.raised is not None:
        return Raised(RaisedError(expected.raised, expected.raised_message))
    if step.kind == "function":
        return Returned(expected.output, arguments=expected.arguments_after)
    if step.kind == "procedure":
        return Returned(None, tuple(expected.output or ()))
    case = expected.case
    return Built(ModuleReport(
        class_name=step.reference_name,
        parameters=tuple((n, tuple(p.shape), str(p.dtype)) for n, p in expected.parameters.items()),
        buffers=tuple(expected.buffers.items()),
        tensor_attributes=(),
        attributes=dict(expected.attributes),
        parameter_values=dict(expected.parameters),
        outputs=tuple(expected.output or ()) if case.inputs else None,
        gradients=dict(expected.gradients) if case.gradients and expected.gradients else None,
        transposed=dict(expected.transposed)))


def _fails_alone(step: Step, check, outcomes: list, outcome) -> bool:
    """Whether `check` fails on the reference's `outcome` judged beside the step's other cases
    that it does not look at (a refusal needs a valid case to count)."""
    from .checks import run_checks

    others = [o for o in outcomes if o is outcome or not applies(check, o.case)]
    lone = dataclasses.replace(step, checks=(check,))
    (result,) = run_checks(lone, others)
    return not result.passed and result.judged


def stand_in_payload(calls: list[tuple[torch.Tensor | None, torch.Tensor]], seed: int) -> dict:
    """What a stand-in (grader.shells.Replay) is sent for the reference's calls of one submodule,
    (input, output) each: a matrix J drawn from `seed` (the same for every call and input of the
    case) and, per call, the offset output - input @ J, computed here, so that the worker gets
    neither the reference's input nor its output, only their combination (see shells.Replay).
    Where no linear answer fits (an input that is not a floating-point tensor with the output's
    leading dimensions) the stand-in ignores its input and answers the recorded output."""
    inputs = [given for given, _ in calls]
    outputs = [output for _, output in calls]
    first_in, first_out = inputs[0], outputs[0]
    if not all(fits_a_linear_answer(given, output, first_in, first_out) for given, output in calls):
        return {"calls": outputs}
    generator = torch.Generator().manual_seed(seed)
    jacobian = (torch.randn(first_in.shape[-1], first_out.shape[-1], generator=generator)
                / first_in.shape[-1] ** 0.5).to(first_in.dtype)
    return {"calls": [output - given @ jacobian for given, output in calls], "jacobian": jacobian}


def fits_a_linear_answer(given, output: torch.Tensor, first_in, first_out: torch.Tensor) -> bool:
    """A call whose answer can be output + (x - given) @ J, with one J for all the calls: input and
    output floating-point tensors of the same leading dimensions, of the first call's features."""
    return (isinstance(given, torch.Tensor) and isinstance(first_in, torch.Tensor)
            and given.is_floating_point() and output.is_floating_point()
            and given.dim() > 0 and output.dim() > 0 and given.shape[:-1] == output.shape[:-1]
            and given.shape[-1] == first_in.shape[-1] and output.shape[-1] == first_out.shape[-1]
            and given.dtype == first_in.dtype == output.dtype)


def autograd(step: Step):
    """How a function or procedure step runs, on both sides: under torch.no_grad(), unless its
    rubric says `grad: true` (code that trains calls backward())."""
    return contextlib.nullcontext() if step.grad else torch.no_grad()


def _grad_advice(step: Step, exc: Exception) -> str:
    if step.grad or step.kind not in ("function", "procedure") or "grad" not in str(exc):
        return ""
    return (f"; a {step.kind} step runs under torch.no_grad() unless the step says `grad: true`, "
            "which code that calls backward() needs")


def positional_count(step: Step, names: tuple[str, ...]) -> int:
    """How many of the given arguments can be passed by position: those before the first argument
    of the signature that the case leaves out. The rest go by name, on both sides."""
    count = 0
    while count < len(names) and names[count] == step.arg_names[count]:
        count += 1
    return count


def call(target, step: Step, names: tuple[str, ...], args: list[Any]):
    """`target` called with a case's arguments as the worker calls the student's: by position up to
    the first argument the case leaves out, by name after it."""
    count = positional_count(step, names)
    args = bind_derived(names, args)
    return target(*args[:count], **dict(zip(names[count:], args[count:])))


@dataclass(frozen=True)
class DerivedOptimizer:
    """An argument built from another argument of the same call: torch.optim.`name` over the
    parameters of the module argument `of`, with `options` (lr, weight_decay, ...)."""

    name: str
    of: str
    options: dict

    def marker(self) -> dict:
        """How it travels to the worker, which builds it the same way (its invoke)."""
        return {"$optimizer": {"class": self.name, "params": self.of, "options": dict(self.options)}}

    def build(self, module: nn.Module) -> torch.optim.Optimizer:
        return getattr(torch.optim, self.name)(module.parameters(), **self.options)


def bind_derived(names: tuple[str, ...], args: list[Any]) -> list[Any]:
    """The call's arguments with each one built from another (an optimizer) made now, over the
    very argument the call is given, after the others."""
    given = dict(zip(names, args))
    return [a.build(given[a.of]) if isinstance(a, DerivedOptimizer) else a for a in args]


def _plain_option(value: Any) -> bool:
    if isinstance(value, list):
        return all(type(v) in (int, float) for v in value)
    return type(value) in (int, float, bool)


def draw(target, step: Step, names: tuple[str, ...], args: list[Any], case: Case) -> torch.Tensor:
    """A sampler's `case.draws` calls, each on fresh arguments, stacked: (draws, *its output's
    shape). Seeded once, as the worker seeds the student's, but under a seed of its own
    (grader.sampling): the reference's draws are a sample of its distribution, not the answer."""
    from .sampling import REFERENCE_SEED_OFFSET

    seed_cpu(case.seed + REFERENCE_SEED_OFFSET)
    outputs = [call(target, step, names, _fresh(args)) for _ in range(case.draws)]
    if not all(isinstance(o, torch.Tensor) and o.shape == outputs[0].shape for o in outputs):
        raise TypeError("with `draws:`, every call returns a tensor of one shape (the ids drawn)")
    return torch.stack([o.detach() for o in outputs])


def meta_build(step: Step, case: Case) -> bool:
    """Whether a case (`meta: true`) builds its module on the meta device on both sides: names,
    shapes, attributes and counts with nothing allocated, however large the model. Opt-in: the
    meta device's first use loads seconds of torch, which a small model does not need."""
    return case.meta and not any(c.check == "init" for c in step.checks)


DRAWS = 2  # sets of random parameter values a module is run with, to see its weights matter
MAX_DRAWN = 1 << 22  # elements in one set: a larger module (as the student's reply says) gets none


def parameter_draws(parameters, seed: int) -> list[dict[str, torch.Tensor]]:
    """`DRAWS` sets of random values (randn) for parameters given as (name, shape, dtype): the
    same rule for the reference's module (`weights_matter`) and the student's (grader.engine's
    probe on the own-weights path). Parameters that are not floating point keep their values;
    none are drawn for more than MAX_DRAWN elements in all."""
    sizes = [math.prod(shape) if all(isinstance(d, int) and d >= 0 for d in shape) else -1
             for _, shape, _ in parameters]
    if min(sizes, default=0) < 0 or sum(sizes) > MAX_DRAWN:
        return []
    draws = []
    for draw in range(1, DRAWS + 1):
        generator = torch.Generator().manual_seed(int(seed) * 1000 + draw)
        values = {}
        for name, shape, dtype in parameters:
            dtype = getattr(torch, str(dtype).rsplit(".", 1)[-1], None)
            if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
                values[name] = torch.randn(tuple(shape), generator=generator).to(dtype)
        draws.append(values)
    return draws


def weights_matter(module: nn.Module, x: torch.Tensor, seed: int) -> bool:
    """Whether the module's output on x changes when its parameters take other values. Its own
    values and torch's random state are restored after."""
    named = dict(module.named_parameters())
    saved = {name: p.detach().clone() for name, p in named.items()}
    draws = parameter_draws([(n, tuple(p.shape), p.dtype) for n, p in named.items()], seed)
    if not draws:
        return False  # too large to draw: nothing is asked of the student's either
    outputs = []
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        for values in draws:
            for name, value in values.items():
                named[name].copy_(value)
            seed_cpu(seed)
            outputs.append(module(x))
        for name, value in saved.items():
            named[name].copy_(value)
    first, second = outputs
    return not (isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor)
                and first.shape == second.shape and torch.equal(first, second))


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


def shell_problem(module: nn.Module) -> str:
    """What of `module` a shell (grader.shells.build_shell) would not hold, or ""."""
    for name, child in module.named_children():
        if not isinstance(child, nn.Linear):
            return f"its submodule `{name}` is a {type(child).__name__}, not an nn.Linear"
    buffers = [name for name, _ in module.named_buffers()]
    if buffers:
        return f"it holds the buffer `{buffers[0]}`"
    return ""


def wants_arguments_after(step: Step) -> bool:
    """Whether the worker sends each argument's state after the call (the arguments_after check)."""
    return step.kind == "function" and any(c.check == "arguments_after" for c in step.checks)


def argument_state(value: Any) -> Any:
    """An argument after a function's call, for the arguments_after check: a module's training
    mode and parameters, any other value as it is (the worker's `argument_state` is the same)."""
    if isinstance(value, nn.Module):
        return {"training": value.training,
                "parameters": {n: p.detach().clone() for n, p in value.named_parameters()}}
    if isinstance(value, DerivedOptimizer):
        return None  # its effect is on the module it updates, compared there
    return _fresh_one(value)


def state_after(value: Any) -> Any:
    """An argument's state after a procedure's call, as the checks compare it: a module's
    parameters by name, any other value as it is (a snapshot)."""
    if isinstance(value, nn.Module):
        return {name: p.detach().clone() for name, p in value.named_parameters()}
    return _fresh_one(value)


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


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, tuple):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


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


_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
           "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int32,
           "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool}


def _dtype(name: Any) -> torch.dtype:
    if name not in _DTYPES:
        raise ValueError(f"unknown dtype {name!r}; use one of {', '.join(_DTYPES)}")
    return _DTYPES[name]


def _as_fixture_marker(value: Any) -> Any:
    """A fixture travels as its name and init; the worker builds it from the course's source."""
    if isinstance(value, DerivedOptimizer):  # built in the worker over the argument it names
        return value.marker()
    fixture = getattr(value, "_grader_fixture", None)
    if fixture is None:
        return value
    return {"$fixture": {"name": fixture["name"], "init": fixture["init"]}}


def _fresh(values: list[Any]) -> list[Any]:
    return [_fresh_one(v) for v in values]


def _fresh_one(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, tuple):
        return tuple(_fresh_one(v) for v in value)
    if isinstance(value, (list, dict)):
        return copy.deepcopy(value)
    if isinstance(value, nn.Module):  # a fixture: each call gets its own, as the worker's does
        fresh = copy.deepcopy(value)
        fresh._grader_fixture = getattr(value, "_grader_fixture", None)
        return fresh
    return value
