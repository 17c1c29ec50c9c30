"""The worker: the only code that runs student code. It is a separate Python process.

Started by `grader.sandbox` as `python -I worker.py REQUEST_FD REPLY_FD`, in an empty temporary
directory, so neither the grader nor the reference solutions are on its path. It executes the
submission's code, then answers the grader's requests: call this name on these inputs, hand back
what it returned as plain tensor data (see `grader.wire`). It judges nothing: every comparison
happens in the grader's process.

It imports nothing of the grader but `wire.py` and `shells.py`, loaded by file path.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib.util
import os
import signal
import sys
import time
import traceback
from pathlib import Path

MAX_MESSAGE = 2000  # characters of an exception message that are sent back


def _load_sibling(name: str):
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_attention_grader_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Absent:
    """An attribute the module does not have: sent as an object of type `_Absent`."""


class Alarm(BaseException):
    """Raised into student code that runs past its time (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, seconds: float):
        super().__init__(f"stopped after {seconds:.3g} s, its time limit")


@contextlib.contextmanager
def alarm(seconds: float):
    """Interrupt the block with `Alarm` after `seconds` of wall-clock time."""

    def ring(signum, frame):
        raise Alarm(seconds)

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Worker:
    def __init__(self, request_fd: int, reply_fd: int, wire, confine, plan: list[dict] | None = None):
        import torch

        torch.set_num_threads(1)
        self.torch = torch
        self.wire = wire
        self.confine = confine
        self.shells = _load_sibling("shells")
        self.request_fd, self.reply_fd = request_fd, reply_fd
        self.namespace: dict = {}
        self.fixtures: dict | None = None
        self.labels: dict[str, str] = {}  # compiled filename -> what the student calls it
        self.sources: dict[str, list[str]] = {}
        # The class's step requests (inputs, weights; never an answer), held before any step is
        # asked: from the zygote, inherited at the fork, or from one `plan` message.
        self.plan: list[dict] = plan or []

    def seed(self, seed: int) -> None:
        """Seed torch's CPU generator, as the grader does for the reference (`torch.manual_seed`
        does the same and also queues seeds for CUDA with a formatted traceback: 0.25 ms a case)."""
        self.torch.default_generator.manual_seed(int(seed))

    # ------------------------------------------------------------ the conversation

    def serve(self) -> None:
        while True:
            try:
                frame = self.wire.read_frame(self.request_fd)
            except EOFError:
                return
            request = self.wire.decode(frame)
            op = request.get("op")
            if op == "bye":
                return
            if op == "plan":  # no reply: the steps that use it answer
                self.plan = request["steps"]
                continue
            if op == "steps":
                self.planned_steps(request)
                continue
            handler = {"load": self.load, "step": self.step, "probe": self.probe}.get(op)
            reply = handler(request) if handler else {"error": f"unknown op {op!r}"}
            self.wire.write_frame(self.reply_fd, self.wire.encode(reply))

    def planned_steps(self, request: dict) -> None:
        """Run steps of the plan one after the other, each reply sent as soon as it is ready.

        The steps share the `left` seconds the submission had when they were asked for; a step
        with none left is answered `out_of_time` without running."""
        deadline = time.monotonic() + request["left"]
        for index, timeout, limits in zip(request["plan"], request["timeouts"], request["limits"]):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not 0 <= index < len(self.plan):
                reply = {"out_of_time": True} if remaining <= 0 else {"error": f"no step {index}"}
            else:
                step = {**self.fresh(self.plan[index]), "timeout": min(timeout, remaining),
                        "limits": limits}
                reply = self.step(step)
            self.wire.write_frame(self.reply_fd, self.wire.encode(reply))

    def fresh(self, value):
        """A copy of a plan's request, its tensors cloned: a step that changes its inputs in place
        changes them for itself only."""
        if isinstance(value, self.torch.Tensor):
            return value.clone()
        if isinstance(value, dict):
            return {k: self.fresh(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.fresh(v) for v in value)
        return value

    # ------------------------------------------------------------ loading the submission

    def load(self, request: dict) -> dict:
        """Execute the submission's chunks (a .py file, or a notebook's code cells) in order.

        The code has `timeout` seconds in all; a chunk still running then is interrupted (its error
        names its line that was running), so the names defined before it can still be graded, and
        the chunks after it do not run (each gets an `out_of_time` error).
        """
        self.namespace = {"__name__": request["module_name"], "__builtins__": builtins}
        if request["module_name"] != "__main__":  # a .py runs as an imported module: it has a __file__
            self.namespace["__file__"] = self.own_copy(request["chunks"])
        errors = []
        deadline = time.monotonic() + request["timeout"]
        for chunk in request["chunks"]:
            filename, code = chunk["filename"], chunk["code"]
            self.labels[filename] = chunk["label"]
            self.sources[filename] = code.splitlines()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                errors.append({**self.out_of_time(chunk["label"], request["timeout"]),
                               "filename": filename})
                continue
            try:
                compiled = compile(code, filename, "exec")
                with alarm(remaining):
                    exec(compiled, self.namespace)  # noqa: S102 - running student code is the job
            except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt too
                errors.append({**self.describe(exc, default_label=chunk["label"], running=filename),
                               "filename": filename})
        defined = sorted(name for name in self.namespace if not name.startswith("__"))
        return {"errors": errors, "defined": defined}

    @staticmethod
    def own_copy(chunks: list) -> str:
        """The .py file's path in the worker's folder, where a copy of it is written, as an imported
        module's `__file__` names its file: `Path(__file__).parent` is a folder the code may read,
        and `Path(__file__).read_text()` its own source. The copy sits in a folder whose name is no
        Python name (`handed-in/`), so it never shadows a module the worker imports later."""
        name = os.path.basename(chunks[0]["filename"]) if chunks else ""
        path = os.path.join(os.getcwd(), "handed-in", name or "submission.py")
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "x", encoding="utf-8") as copy:
                copy.write("".join(chunk["code"] for chunk in chunks))
        except OSError:  # already there (a fresh worker of the same submission), or no room
            pass
        return path

    def out_of_time(self, label: str, seconds: float) -> dict:
        return {"type": "Timeout", "message": f"not run: the code had used up its {seconds:g} s",
                "location": label, "code": "", "not_implemented": False, "out_of_memory": False,
                "timeout": True}

    # ------------------------------------------------------------ one step

    def step(self, request: dict) -> dict:
        self.apply_step_limits(request.get("limits", {}))
        self.fixtures = request.get("fixtures")  # the course's fixture classes, as source
        target = self.namespace.get(request["target"])
        if target is None:
            return {"missing": True}
        if not callable(target):  # a top-level line rebound the name to a value
            return {"missing": False, "not_callable": type(target).__name__}
        kind = request["kind"]
        run = {"function": self.call_function, "build": self.build_module,
               "procedure": self.call_procedure}[kind]
        results = []
        deadline = time.monotonic() + request["timeout"]
        for case in request["cases"]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                results.append({"ok": False, "error": self.out_of_time("", request["timeout"])})
                continue
            self.seed(case.get("seed", 0))
            try:
                with alarm(remaining):
                    results.append({"ok": True, **run(target, case)})
            except BaseException as exc:  # noqa: BLE001
                results.append({"ok": False, "error": self.describe(exc)})
        return {"missing": False, "results": results}

    def call_function(self, fn, case: dict) -> dict:
        # under no_grad unless the step trains (`grad: true` in the rubric), as the reference ran
        if case.get("arguments_after") is True:  # built here, so that they can be sent back after
            case = {**case, "args": [self.procedure_argument(a) for a in case.get("args", [])]}
        with contextlib.nullcontext() if case.get("grad") is True else self.torch.no_grad():
            output = self.draws(fn, case) if case.get("draws") else self.invoke(fn, case)
        if case.get("arguments_after") is True:
            return {"output": self.plain(output),
                    "arguments": [self.argument_state(a) for a in case["args"]]}
        return {"output": self.plain(output)}

    def argument_state(self, value):
        """An argument after the call (grader.cases.argument_state): a module's training mode and
        parameters, any other value as it is now."""
        if isinstance(value, self.torch.nn.Module):
            return self.plain({"training": bool(value.training), "parameters": dict(
                (name, p) for name, p in value.named_parameters())})
        if isinstance(value, dict) and set(value) == {"$optimizer"}:
            return None  # its effect is on the module it updates, sent with that module
        return self.plain(value)

    def draws(self, fn, case: dict):
        """A sampler called `draws` times under the case's one seed, each call on fresh copies of
        the arguments, its outputs stacked into one tensor: (draws, *the output's shape)."""
        outputs = []
        for number in range(1, int(case["draws"]) + 1):
            output = self.invoke(fn, {**case, "args": self.fresh(case.get("args", []))})
            if not isinstance(output, self.torch.Tensor) or (
                    outputs and output.shape != outputs[0].shape):
                raise TypeError(f"a sampler returns a tensor of the ids it drew, of one shape on "
                                f"every call; call {number} of {case['draws']} returned "
                                f"{type(output).__name__}"
                                + (f" of shape {tuple(output.shape)}" if isinstance(
                                    output, self.torch.Tensor) else ""))
            outputs.append(output.detach())
        return self.torch.stack(outputs)

    def invoke(self, fn, case: dict):
        """Call `fn` with the case's arguments: by keyword where its signature has the contract's
        names (so another order works), else by position as the contract orders them."""
        args, names = case.get("args", []), case.get("arg_names", [])[: len(case.get("args", []))]
        args = [self.fixture(a) if isinstance(a, dict) and set(a) == {"$fixture"} else a for a in args]
        args = self.bind_derived(names, args)
        kwargs = dict(case.get("kwargs", {}))
        if len(names) == len(args) and self.by_keyword(fn, names):
            return fn(**dict(zip(names, args)), **kwargs)
        # by position up to the first argument the case leaves out, by name after it
        count = min(case.get("positional", len(args)), len(args))
        return fn(*args[:count], **dict(zip(names[count:], args[count:])), **kwargs)

    def bind_derived(self, names: list, args: list) -> list:
        """Each argument built from another, made after the others over the very argument this
        call gets (grader.cases.bind_derived): `{"$optimizer": {class, params, options}}` is
        torch.optim's `class` over the parameters of the argument named `params`."""
        given = dict(zip(names, args))
        built = []
        for value in args:
            if isinstance(value, dict) and set(value) == {"$optimizer"}:
                spec = value["$optimizer"]
                value = getattr(self.torch.optim, spec["class"])(
                    given[spec["params"]].parameters(), **spec.get("options", {}))
            built.append(value)
        return built

    def fixture(self, marker: dict):
        """A course fixture (e.g. a stand-in language model), built here from the course's fixtures
        file, sent as source: `{"$fixture": {"name": ..., "init": {...}}}`. Course code, not the
        reference: the grader builds the same fixture for the reference's call."""
        spec, source = marker["$fixture"], self.fixtures or {}
        key = hash(source.get("source", ""))
        if getattr(self, "_fixture_key", None) != key:
            self._fixture_namespace = {"__name__": "course_fixtures", "__builtins__": builtins}
            code = compile(source.get("source", ""), source.get("filename", "fixtures.py"), "exec")
            exec(code, self._fixture_namespace)  # noqa: S102 - the course's own fixtures
            self._fixture_key = key
        return self._fixture_namespace[spec["name"]](**spec.get("init", {}))

    @staticmethod
    def by_keyword(fn, names: list) -> bool:
        """Whether `fn` takes the contract's names as keywords: each of them, or only some and no
        parameter of other names (then the call fails, naming the parameter it lacks)."""
        import inspect

        try:
            parameters = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            return False
        kinds = inspect.Parameter
        if any(p.kind is kinds.VAR_POSITIONAL for p in parameters.values()):
            return False
        if any(p.kind is kinds.VAR_KEYWORD for p in parameters.values()):
            return True
        keywords = [n for n, p in parameters.items()
                    if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)]
        if all(n in keywords for n in names):
            return True
        return bool(set(names) & set(keywords)) and all(n in names for n in keywords)

    def call_procedure(self, fn, case: dict) -> dict:
        """Call `fn` on the case's arguments: a module as a shell (or a course fixture), any other
        value as sent, as `invoke` calls a function; send back what it returned and each
        argument's state after the call: a module's parameters, any other value as it is now."""
        args = [self.procedure_argument(a) for a in case.get("args", [])]
        with contextlib.nullcontext() if case.get("grad") is True else self.torch.no_grad():
            returned = self.invoke(fn, {**case, "args": args})
        after = [{name: self.plain(p) for name, p in a.named_parameters()}
                 if isinstance(a, self.torch.nn.Module) else self.plain(a) for a in args]
        return {"output": self.plain(returned), "shells": after}

    def procedure_argument(self, sent):
        """One argument of a procedure, built here: `{"$shell": {class, layout}}` a shell module,
        `{"$fixture": ...}` a course fixture, anything else the value itself."""
        if isinstance(sent, dict) and set(sent) == {"$shell"}:
            return self.shells.build_shell(sent["$shell"]["class"], sent["$shell"]["layout"])
        if isinstance(sent, dict) and set(sent) == {"$fixture"}:
            return self.fixture(sent)
        return sent

    def build_module(self, target, case: dict) -> dict:
        """Construct (a class or a factory), describe, load the grader's weights, run forward.

        Only the constructor's exceptions make the case "raised": once a module exists, what the
        grader could not do with it (load its weights, stand in for its heads) is a
        `harness_error`, and an exception in forward a `forward_error`, so the module's structure
        is still judged.
        """
        torch = self.torch
        module = None
        if case.get("meta"):  # only the structure is asked for: build it allocating nothing
            try:
                with torch.device("meta"):
                    module = self.invoke(target, case)
            except Exception:  # noqa: BLE001 - code the meta device cannot run: build it for real
                self.seed(case.get("seed", 0))
        if module is None:
            module = self.invoke(target, case)
        if not isinstance(module, torch.nn.Module):
            return {"not_module": type(module).__name__}
        reply: dict = {
            "class": type(module).__name__,
            "parameters": [[n, list(p.shape), str(p.dtype)] for n, p in module.named_parameters()],
            "buffers": [[n, list(b.shape)] for n, b in module.named_buffers()],
            "tensor_attributes": self.tensor_attributes(module),
            "attributes": {a: self.plain_attribute(module, a) for a in case.get("attributes", [])},
        }
        if case.get("send_parameters"):
            reply["parameter_values"] = {n: self.plain(p) for n, p in module.named_parameters()}
        if not case.get("inputs"):
            return reply
        weights = case.get("weights")  # None: forward runs on the module's own weights
        problem = self.load_weights(module, weights) if weights else None
        if problem:
            reply["harness_error"] = f"the grader could not give your module its weights: {problem}"
            return reply
        replay = case.get("replay")

        def stand_ins(index: int) -> None:  # fresh for each forward: a replay counts its calls
            if replay:
                self.shells.install(module, replay["paths"], replay["outputs"][index])

        outputs = []
        try:
            module.train(case.get("mode") == "train")
            for index, x in enumerate(case["inputs"]):
                try:
                    stand_ins(index)
                except Exception as exc:  # noqa: BLE001 - the grader's stand-ins could not fit
                    reply["harness_error"] = str(exc)[:MAX_MESSAGE]
                    return reply
                with torch.no_grad():
                    outputs.append(self.plain(module(x)))
            reply["outputs"] = outputs
            stand_ins(0)  # what follows runs on the first input
            if case.get("train_calls"):
                # Dropout must act in training mode, and differently on every call.
                module.train(True)
                with torch.no_grad():
                    reply["train_outputs"] = [self.plain(module(case["inputs"][0]))
                                              for _ in range(case["train_calls"])]
                module.train(case.get("mode") == "train")
            if case.get("gradients") is not None:
                reply["gradients"] = self.gradients(module, case["inputs"][0], case["gradients"])
            if case.get("transpose_buffers"):
                reply["transposed"] = self.transposed(module, case["inputs"][0],
                                                      case["transpose_buffers"])
        except Exception as exc:  # noqa: BLE001 - forward raised: the structure is still judged
            reply["forward_error"] = self.describe(exc)  # what ran before it is kept
        return reply

    def probe(self, request: dict) -> dict:
        """For each case, build the module once per candidate binding of the grader's weights,
        load them, and send back forward's output on the case's probe input (None where it
        failed). The grader compares them with the reference's; nothing is judged here."""
        self.apply_step_limits(request.get("limits", {}))
        target = self.namespace.get(request["target"])
        deadline = time.monotonic() + request["timeout"]
        results = []
        for case in request["cases"]:
            outputs = []
            for weights in case["candidates"]:
                remaining = deadline - time.monotonic()
                if target is None or not callable(target) or remaining <= 0:
                    outputs.append(None)
                    continue
                self.seed(case.get("seed", 0))
                try:
                    with alarm(remaining):
                        module = self.invoke(target, case)
                        if self.load_weights(module, weights):
                            outputs.append(None)
                            continue
                        module.train(case.get("mode") == "train")
                        with self.torch.no_grad():
                            outputs.append(self.plain(module(case["input"])))
                except BaseException:  # noqa: BLE001 - this binding does not fit; try the next
                    outputs.append(None)
            results.append(outputs)
        return {"results": results}

    def tensor_attributes(self, module) -> list:
        """Plain tensor attributes (neither parameters nor buffers), e.g. a mask kept as one."""
        found = []
        for prefix, sub in module.named_modules():
            for key, value in vars(sub).items():
                if isinstance(value, self.torch.Tensor) and not key.startswith("_"):
                    found.append([f"{prefix}.{key}" if prefix else key, list(value.shape)])
        return found

    def gradients(self, module, x, projection) -> dict:
        """Each parameter's gradient from a random projection of the output (None: it got none);
        the grader compares them with the reference's."""
        module.zero_grad(set_to_none=True)
        output = module(x)
        loss = (output * projection).sum() if projection.shape == output.shape else output.sum()
        loss.backward()
        return {name: None if p.grad is None else self.plain(p.grad)
                for name, p in module.named_parameters()}

    def transposed(self, module, x, names: list) -> dict:
        """The output with each named buffer's last two dimensions transposed, then put back."""
        torch = self.torch
        buffers = dict(module.named_buffers())
        found = {}
        for name in names:
            buffer = buffers.get(name)
            if not isinstance(buffer, torch.Tensor) or buffer.dim() < 2 or \
                    buffer.shape[-1] != buffer.shape[-2]:
                continue
            saved = buffer.clone()
            try:
                with torch.no_grad():
                    buffer.copy_(saved.transpose(-1, -2))
                    found[name] = self.plain(module(x))
            finally:
                with torch.no_grad():
                    buffer.copy_(saved)
        return found

    def load_weights(self, module, weights: dict) -> str | None:
        """Copy the grader's weights into the parameters the contract names; say what is off."""
        params = dict(module.named_parameters())
        for name, value in weights.items():
            if name not in params:
                return f"no parameter named `{name}`"
            if tuple(params[name].shape) != tuple(value.shape):
                return f"`{name}` has shape {tuple(params[name].shape)}"
        with self.torch.no_grad():
            for name, value in weights.items():
                params[name].copy_(value)
        return None

    def apply_step_limits(self, limits: dict) -> None:
        """A step may run under tighter memory and CPU limits than the worker as a whole."""
        import resource

        if limits.get("memory_bytes"):
            self.confine.lower_limit("memory_bytes", int(limits["memory_bytes"]))
        if limits.get("cpu_seconds"):
            usage = resource.getrusage(resource.RUSAGE_SELF)
            used = usage.ru_utime + usage.ru_stime
            self.confine.lower_limit("cpu_seconds", int(used + limits["cpu_seconds"]) + 1)

    # ------------------------------------------------------------ plain data out

    def plain(self, value, depth: int = 0):
        torch = self.torch
        if depth > 8:
            return {"$object": "deeply nested value"}
        if isinstance(value, torch.Tensor):
            return torch.Tensor.clone(torch.Tensor.detach(value))  # a snapshot, not a live view
        if value is None or type(value) in (bool, int, float, str):
            return value
        if type(value) in (tuple, list):
            items = [self.plain(v, depth + 1) for v in value]
            return tuple(items) if type(value) is tuple else items
        if type(value) is dict and all(type(k) in (str, int) for k in value):
            return {"$map": [[k, self.plain(v, depth + 1)] for k, v in value.items()]}
        return {"$object": type(value).__name__}

    def plain_attribute(self, module, name: str):
        value = module
        for part in name.split("."):  # a dotted path: `trf_blocks.0.att.num_heads`
            value = self.attribute_of(value, part)
        if isinstance(value, self.torch.nn.Module):
            return {"$module": type(value).__name__, "p": getattr(value, "p", None)}
        return self.plain(value)

    def attribute_of(self, value, part: str):
        """One step of an attribute path (an index into a ModuleList or Sequential for a digit);
        a missing step gives a marker the grader compares as absent, never None."""
        try:
            if part.isdigit() and isinstance(value, (self.torch.nn.ModuleList, self.torch.nn.Sequential)):
                return value[int(part)]
            return getattr(value, part)
        except Exception:  # noqa: BLE001 - absent, or a property that raised
            return _Absent()

    # ------------------------------------------------------------ errors, located in their code

    def describe(self, exc: BaseException, default_label: str = "", running: str = "") -> dict:
        """The exception, located at the innermost line of the student's code it came from.

        `running` is the chunk that was running (while loading): a timeout is located there instead,
        at its line that was running, since that cell is the one that ran out of time (not a cell
        that merely defines a function it called); its message adds where that call was then.
        """
        location, code_line = default_label, ""
        frames = traceback.extract_tb(exc.__traceback__)
        if isinstance(exc, SyntaxError) and exc.filename in self.labels:
            location, code_line = self.where(exc.filename, exc.lineno or 0)
        for frame in frames:
            if frame.filename in self.labels:
                location, code_line = self.where(frame.filename, frame.lineno or 0)
        message = str(exc)
        if isinstance(exc, SyntaxError):
            message = exc.msg
        # Only a NotImplementedError raised in the student's own code is an unfinished step; one
        # raised inside a library (flex_attention on a CPU build of torch) is that library's limit.
        own_stub = isinstance(exc, NotImplementedError) and bool(frames) and (
            frames[-1].filename in self.labels or frames[-1].name == "_forward_unimplemented")
        if isinstance(exc, NotImplementedError) and not own_stub and frames:
            message = (f"{message} (raised inside {_library_path(frames[-1].filename)}, not in your "
                       "code: the library does not offer this on the grading machine)").lstrip()
        timed_out = isinstance(exc, Alarm)
        outer = next((f for f in frames if f.filename == running), None) if timed_out else None
        if outer is not None:
            inner = (location, code_line)
            location, code_line = self.where(running, outer.lineno or 0)
            if inner[0] != location:
                message += f"; it was in {inner[0]}" + (f" (`{inner[1]}`)" if inner[1] else "")
        return {
            "type": type(exc).__name__,
            "message": message[:MAX_MESSAGE],
            "location": location,
            "code": code_line,
            "not_implemented": own_stub,
            "out_of_memory": isinstance(exc, MemoryError) or "can't allocate memory" in message
            or "not enough memory" in message,
            "timeout": timed_out,
        }

    def where(self, filename: str, lineno: int) -> tuple[str, str]:
        label = self.labels[filename]
        lines = self.sources.get(filename, [])
        code = lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""
        return (f"{label}, line {lineno}" if label else f"line {lineno}"), code


def _library_path(filename: str) -> str:
    """A library file as its package names it: `torch/nn/attention/flex_attention.py`,
    `logging/__init__.py`."""
    import re

    found = re.search(r"/(?:site-packages|dist-packages|lib/python3\.\d+)/(.+)$", filename)
    return found.group(1) if found else os.path.basename(filename)


def _needed_paths() -> list[str]:
    """Where Python, torch and these files live: they must stay reachable once confined."""
    return sorted({sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(__file__),
                   *(p for p in sys.path if p)})


def main(argv: list[str]) -> int:
    if argv[1] == "--zygote":
        return zygote(int(argv[2]))
    request_fd, reply_fd = int(argv[1]), int(argv[2])
    wire = _load_sibling("wire")
    confine = _load_sibling("confine")
    # Confine this process before torch is imported and before any student code runs.
    config = wire.decode(wire.read_frame(request_fd))
    config["needed"] = _needed_paths()
    folder = os.getcwd()
    applied = confine.confine(config)
    worker = Worker(request_fd, reply_fd, wire, confine)
    try:
        wire.write_frame(reply_fd, wire.encode({"op": "ready", "sandbox": applied}))
        worker.serve()
    except BrokenPipeError:
        pass  # the grader went away
    finally:
        confine.remove_folder(folder)
    # Leave now: finalising an interpreter that holds torch (and whatever the student's code left
    # behind) takes longer than the grading's last step, and the grader waits for this exit.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


# ---------------------------------------------------------------- the zygote: a warm worker factory


def zygote(control_fd: int) -> int:
    """Import torch once, then fork a fresh worker per submission on the grader's request.

    The control socket (SOCK_SEQPACKET) carries small JSON requests; `spawn` comes with three file
    descriptors (request, reply, output) for the child. The zygote itself never runs student code:
    each child confines itself (limits, namespaces, its own uid) right after the fork, before the
    submission's code is executed, exactly as a worker started from scratch does.
    """
    import gc
    import json
    import socket

    wire = _load_sibling("wire")
    confine = _load_sibling("confine")
    libc = confine._libc()
    folder = os.getcwd()
    inits: dict[int, str] = {}  # the running workers forked as their namespace's init: their folders
    if libc is not None and confine._linux():
        # A grader killed outright takes its zygote with it; the zygote removes its folder first
        # (and the folders of the workers it forked as inits: they have no relay to do it).
        def cleanup(signum, frame):
            for home in (folder, *inits.values()):
                confine.remove_folder_at(home)
            os._exit(0)

        signal.signal(signal.SIGTERM, cleanup)
        confine.tie_to_parent(libc, None, signal.SIGTERM)
    # As root, each worker is forked straight into a PID namespace of its own, as its init.
    own_pid_namespace = confine.own_pid_namespace(libc)
    import torch

    torch.set_num_threads(1)  # no OpenMP pool: forking after one is started can hang the child
    _load_sibling("shells")
    plan: list[dict] = []
    control = socket.socket(fileno=control_fd)
    # What is loaded now is every worker's: out of the collector's reach, a forked worker's
    # collections do not write to (and so copy) every page that holds torch's objects; in huge
    # pages, the forks and the workers' exits touch a fraction of the page table.
    def settle() -> None:
        gc.freeze()
        if libc is not None and confine._linux():
            confine.collapse_into_huge_pages(libc)

    settle()
    control.sendall(json.dumps({"op": "ready"}).encode())
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 1 << 20, 3)
        except OSError:
            break
        if not message:
            break  # the grader is gone
        request = json.loads(message)
        if request["op"] == "spawn":
            init = own_pid_namespace is not None
            try:
                pid = confine.fork_as_init(libc, own_pid_namespace) if init else os.fork()
            except OSError:  # no new namespace this time (a kernel limit): the worker's relay tries
                init, pid = False, os.fork()
            if pid == 0:
                control.close()
                request["confine"]["pid_init"] = init
                _child(request, fds, wire, confine, plan)  # never returns
            for fd in fds:
                os.close(fd)
            if init:
                inits[pid] = request["home"]
            control.sendall(json.dumps({"pid": pid}).encode())
        elif request["op"] == "plan":  # the class's step requests, from a file the grader wrote
            with os.fdopen(fds[0], "rb") as f:
                plan = wire.decode(f.read())["steps"]
            settle()
            control.sendall(json.dumps({"op": "plan", "steps": len(plan)}).encode())
        elif request["op"] == "warm":  # before any fork: every worker inherits it loaded
            if request.get("meta"):
                with torch.device("meta"):
                    torch.triu(torch.ones(2, 2), diagonal=1)
            settle()
            control.sendall(json.dumps({"op": "warm"}).encode())
        elif request["op"] == "status":
            returncode = _exit_status(request["pid"])
            if returncode is not None and inits.pop(request["pid"], None) is not None:
                returncode = _as_relayed(returncode)
            control.sendall(json.dumps({"returncode": returncode}).encode())
    confine.remove_folder(folder)
    return 0


def _exit_status(pid: int):
    """The child's exit code as subprocess reports it (negative: a signal), or None if running."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return -1  # already reaped, or not ours
    return os.waitstatus_to_exitcode(status) if done else None


def _as_relayed(returncode: int) -> int:
    """A worker's exit status as its relay would have passed it on (`confine._exit_like`): an
    init's handler ends it with 128 + n for a signal n (SIGXCPU), which is reported as that signal."""
    signum = returncode - 128
    return -signum if returncode > 128 and signum in signal.valid_signals() else returncode


def _child(request: dict, fds: list[int], wire, confine, plan: list[dict]) -> None:
    code = 0
    try:
        request_fd, reply_fd, output_fd = fds
        os.setsid()  # its own process group, as a worker started from scratch has
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.close(output_fd)
        os.chdir(request["home"])
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the zygote's handler is not the worker's
        os.environ.update(HOME=request["home"], TMPDIR=request["home"])
        config = request["confine"]
        config["needed"] = _needed_paths()
        applied = confine.confine(config)
        worker = Worker(request_fd, reply_fd, wire, confine, plan)
        wire.write_frame(reply_fd, wire.encode({"op": "ready", "sandbox": applied}))
        worker.serve()
    except BrokenPipeError:
        pass  # the grader went away
    except BaseException:  # noqa: BLE001 - report and leave; the grader sees the worker die
        traceback.print_exc()
        code = 70
    finally:
        confine.remove_folder(request["home"])
        sys.stdout.flush()
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
