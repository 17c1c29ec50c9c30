"""What the worker said, as typed values: decoded and validated where it arrives (`sandbox.py`).

The worker runs in the student's process, so any reply may be forged, broken or huge. `decode_load`
and `decode_step` check every field's presence, type and size against the request that was sent,
and raise `MalformedReply` for anything else; the session turns that into the step's error. Nothing
downstream indexes a dict the worker built.

    StepReply = Answered(cases) | Missing | NotCallable(type_name) | LoadFailed | TimedOut | Died
              | Malformed
    CaseReply = Returned(output, shells)     a function or procedure returned
              | Built(ModuleReport)          a constructor (or factory) gave an nn.Module
              | NotModule(type_name)         a constructor or factory gave something else
              | Raised(RaisedError)          the call raised (or was stopped)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .safe_text import printable
from .wire import MAX_INT_DIGITS

MAX_NAMES = 10_000  # parameters, buffers, attributes or names of one reply


class MalformedReply(Exception):
    """The worker's reply breaks its contract (the student's process interfered, or a bug)."""


Decoder = TypeVar("Decoder", bound=Callable[..., Any])


def _one_error(decoder: Decoder) -> Decoder:
    """The boundary of a reply's decoder: whatever the reply trips over while it is read, of any
    exception type, is a `MalformedReply`, the step's Malformed outcome, never another exception."""
    @functools.wraps(decoder)
    def decoded(*args, **kwargs):
        try:
            return decoder(*args, **kwargs)
        except MalformedReply:
            raise
        except RecursionError:
            raise MalformedReply("a value nested too deeply") from None
        except Exception as exc:  # noqa: BLE001 - any other failure is the reply's, whatever its type
            raise MalformedReply(f"a reply that could not be read ({type(exc).__name__})") from None
    return decoded  # type: ignore[return-value]


# ------------------------------------------------------------------------------ the values


@dataclass(frozen=True)
class Opaque:
    """A value the worker could not send as plain data, e.g. an object of the student's class."""

    type_name: str


@dataclass(frozen=True)
class RaisedError:
    """An exception in the student's code, located in their cells or file."""

    type: str
    message: str
    location: str = ""
    code: str = ""  # the line that raised
    not_implemented: bool = False
    out_of_memory: bool = False
    timeout: bool = False
    filename: str = ""  # the compiled chunk it came from (load errors)

    def text(self) -> str:
        """`TypeError: first line of the message`."""
        first = self.message.strip().splitlines()[0] if self.message.strip() else ""
        return f"{self.type}: {first}" if first else self.type


@dataclass(frozen=True)
class LoadReply:
    errors: tuple[RaisedError, ...]  # what the submission's code raised while it ran
    defined: tuple[str, ...]  # the names it defined
    sandbox: dict = field(default_factory=dict)  # what confine() applied (informational only)


@dataclass(frozen=True)
class ModuleReport:
    """What a built module looks like and what it computed on the grader's inputs."""

    class_name: str
    parameters: tuple[tuple[str, tuple[int, ...], str], ...]  # (name, shape, dtype)
    buffers: tuple[tuple[str, tuple[int, ...]], ...]
    tensor_attributes: tuple[tuple[str, tuple[int, ...]], ...]  # plain tensors kept on the module
    attributes: dict[str, Any]
    parameter_values: dict[str, Any] | None = None  # the seeded initial values, when asked
    harness_error: str | None = None  # what the grader needed of the module and could not do
    forward_error: RaisedError | None = None  # forward (or backward) raised
    outputs: tuple[Any, ...] | None = None  # one per input; None when forward was not run
    train_outputs: tuple[Any, ...] = ()
    gradients: dict[str, Any] | None = None  # parameter -> its gradient (None: it got none)
    transposed: dict[str, Any] = field(default_factory=dict)  # buffer -> output with it transposed

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: shape for name, shape, _ in self.parameters}


@dataclass(frozen=True)
class Returned:
    output: Any
    shells: tuple[Any, ...] = ()  # procedures: each argument after the call (a module: its parameters)
    # functions with the arguments_after check: each argument after the call (a module: its
    # training mode and parameters, grader.cases.argument_state); None when not asked for
    arguments: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Built:
    module: ModuleReport


@dataclass(frozen=True)
class NotModule:
    type_name: str


@dataclass(frozen=True)
class Raised:
    error: RaisedError


CaseReply = Returned | Built | NotModule | Raised


@dataclass(frozen=True)
class Answered:
    cases: tuple[CaseReply, ...]  # one per case sent, in order


@dataclass(frozen=True)
class Missing:
    """The submission does not define the step's name."""


@dataclass(frozen=True)
class NotCallable:
    """The step's name holds a value that cannot be called (a top-level line rebinds it)."""

    type_name: str


@dataclass(frozen=True)
class LoadFailed:
    """The submission's code could not run at all, so no step could be."""

    reason: str  # "timeout" | "died"
    detail: str = ""  # why it died
    limit: float = 0.0  # the load time limit, for "timeout"


@dataclass(frozen=True)
class TimedOut:
    limit: float
    whole_submission: bool = False  # the submission's time in all ran out before this step


@dataclass(frozen=True)
class Died:
    reason: str
    seconds: float


@dataclass(frozen=True)
class Malformed:
    problem: str


StepReply = Answered | Missing | NotCallable | LoadFailed | TimedOut | Died | Malformed


# ------------------------------------------------------------------------------ decoding


@_one_error
def decode_load(raw: Any) -> LoadReply:
    raw = _mapping(raw, "the load reply")
    errors = tuple(decode_error(e, f"load error {i}") for i, e in enumerate(_list(raw, "errors")))
    defined = tuple(_string(n, "a defined name") for n in _list(raw, "defined"))
    return LoadReply(errors, defined)


@_one_error
def decode_step(raw: Any, request: dict) -> Answered | Missing | NotCallable:
    """The reply to one step request, checked against what was asked."""
    raw = _mapping(raw, "the step reply")
    if raw.get("missing") is True:
        return Missing()
    if raw.get("missing") is not False:
        raise MalformedReply("`missing` is not true or false")
    if "not_callable" in raw:
        return NotCallable(_string(raw["not_callable"], "not_callable")[:200] or "object")
    results = _list(raw, "results")
    sent = request["cases"]
    if len(results) != len(sent):
        raise MalformedReply(f"{len(results)} case results for the {len(sent)} cases sent")
    return Answered(tuple(_case(result, case, request["kind"], i)
                          for i, (result, case) in enumerate(zip(results, sent))))


@_one_error
def decode_probe(raw: Any, request: dict) -> list[list[Any]]:
    """The probe reply: per case sent, one output (or None) per candidate binding sent."""
    raw = _mapping(raw, "the probe reply")
    results = _list(raw, "results")
    sent = request["cases"]
    if len(results) != len(sent):
        raise MalformedReply(f"{len(results)} probe results for the {len(sent)} cases sent")
    decoded = []
    for index, (outputs, case) in enumerate(zip(results, sent)):
        if not isinstance(outputs, list) or len(outputs) != len(case["candidates"]):
            raise MalformedReply(f"probe {index}: not one output per candidate")
        decoded.append([_plain(o, f"probe {index}: output") for o in outputs])
    return decoded


@_one_error
def decode_error(raw: Any, what: str) -> RaisedError:
    raw = _mapping(raw, what)
    return RaisedError(
        type=_string(raw.get("type"), f"{what}: type")[:200] or "Exception",
        message=_string(raw.get("message", ""), f"{what}: message"),
        location=_string(raw.get("location", ""), f"{what}: location"),
        code=_string(raw.get("code", ""), f"{what}: code"),
        not_implemented=_flag(raw, "not_implemented", what),
        out_of_memory=_flag(raw, "out_of_memory", what),
        timeout=_flag(raw, "timeout", what),
        filename=_string(raw.get("filename", ""), f"{what}: filename"),
    )


def _case(raw: Any, sent: dict, kind: str, index: int) -> CaseReply:
    what = f"case {index}"
    raw = _mapping(raw, what)
    if raw.get("ok") is False:
        return Raised(decode_error(raw.get("error"), f"{what}: error"))
    if raw.get("ok") is not True:
        raise MalformedReply(f"{what}: `ok` is not true or false")
    if kind == "build":
        if "not_module" in raw:
            return NotModule(_string(raw["not_module"], f"{what}: not_module")[:200])
        return Built(_module(raw, sent, what))
    if "output" not in raw:
        raise MalformedReply(f"{what}: no `output`")
    output = _plain(raw["output"], f"{what}: output")
    if kind == "procedure":  # each argument after the call: a module's parameters, or the value
        shells, args = _list(raw, "shells"), sent.get("args", [])
        if len(shells) != len(args):
            raise MalformedReply(f"{what}: {len(shells)} arguments back for the {len(args)} sent")
        return Returned(output, tuple(
            _tensor_map(s, f"{what}: argument {i}") if _module_marker(a) else
            _plain(s, f"{what}: argument {i}") for i, (s, a) in enumerate(zip(shells, args))))
    if sent.get("arguments_after") is True:  # asked for: each argument as the call left it
        after = _list(raw, "arguments")
        if len(after) != len(sent.get("args", [])):
            raise MalformedReply(f"{what}: {len(after)} arguments back for the "
                                 f"{len(sent.get('args', []))} sent")
        return Returned(output, arguments=tuple(_plain(a, f"{what}: argument {i}")
                                                for i, a in enumerate(after)))
    return Returned(output)


def _module(raw: dict, sent: dict, what: str) -> ModuleReport:
    parameters = []
    for item in _list(raw, "parameters"):
        if not (isinstance(item, list) and len(item) == 3):
            raise MalformedReply(f"{what}: a parameter entry is not [name, shape, dtype]")
        parameters.append((_string(item[0], "a parameter name"), _shape(item[1], what),
                           _string(item[2], "a dtype")))
    buffers = tuple(_named_shape(item, what) for item in _list(raw, "buffers"))
    tensor_attributes = tuple(_named_shape(item, what) for item in _list(raw, "tensor_attributes"))
    attributes = raw.get("attributes", {})
    if not isinstance(attributes, dict) or set(attributes) - set(sent.get("attributes", [])):
        raise MalformedReply(f"{what}: attributes other than those asked for")
    attributes = {name: _plain(value, f"{what}: attribute") for name, value in attributes.items()}
    values = None
    if "parameter_values" in raw:
        values = _tensor_map(raw["parameter_values"], f"{what}: parameter_values")
    harness = raw.get("harness_error")
    forward = raw.get("forward_error")
    outputs = raw.get("outputs")
    if outputs is not None:
        outputs = _list(raw, "outputs")
        if len(outputs) != len(sent.get("inputs", [])):
            raise MalformedReply(f"{what}: {len(outputs)} outputs for the "
                                 f"{len(sent.get('inputs', []))} inputs sent")
        outputs = tuple(_plain(o, f"{what}: output") for o in outputs)
    train = tuple(_plain(o, f"{what}: train output") for o in _list(raw, "train_outputs", []))
    if len(train) > max(int(sent.get("train_calls", 0) or 0), 0):
        raise MalformedReply(f"{what}: more training-mode outputs than calls asked for")
    gradients = raw.get("gradients")
    if gradients is not None:
        if not isinstance(gradients, dict) or len(gradients) > MAX_NAMES:
            raise MalformedReply(f"{what}: gradients is not a mapping of parameter names")
        named = {name for name, _, _ in parameters}
        if set(gradients) - named:
            raise MalformedReply(f"{what}: gradients of parameters the module does not have")
        gradients = {name: None if value is None else _tensor(value, f"{what}: gradient")
                     for name, value in gradients.items()}
    transposed = raw.get("transposed", {})
    if not isinstance(transposed, dict) or set(transposed) - set(sent.get("transpose_buffers", [])):
        raise MalformedReply(f"{what}: outputs for buffers the grader did not transpose")
    transposed = {name: _plain(value, f"{what}: transposed output") for name, value in transposed.items()}
    return ModuleReport(
        class_name=_string(raw.get("class", ""), f"{what}: class")[:200],
        parameters=tuple(parameters),
        buffers=buffers,
        tensor_attributes=tensor_attributes,
        attributes=attributes,
        parameter_values=values,
        harness_error=None if harness is None else _string(harness, f"{what}: harness_error"),
        forward_error=None if forward is None else decode_error(forward, f"{what}: forward_error"),
        outputs=outputs,
        train_outputs=train,
        gradients=gradients,
        transposed=transposed,
    )


# ------------------------------------------------------------------------------ field helpers


def _mapping(raw: Any, what: str) -> dict:
    if not isinstance(raw, dict):
        raise MalformedReply(f"{what} is not a mapping")
    return raw


def _list(raw: dict, key: str, default: list | None = None) -> list:
    value = raw.get(key, default)
    if not isinstance(value, list):
        raise MalformedReply(f"`{key}` is missing or not a list")
    if len(value) > MAX_NAMES:
        raise MalformedReply(f"`{key}` has {len(value):,} items")
    return value


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise MalformedReply(f"{what} is not a string")
    return printable(value)


def _flag(raw: dict, key: str, what: str) -> bool:
    value = raw.get(key, False)
    if type(value) is not bool:
        raise MalformedReply(f"{what}: `{key}` is not true or false")
    return value


def _shape(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > 16 or not all(
            type(n) is int and 0 <= n < 2**40 for n in value):
        raise MalformedReply(f"{what}: a shape is not a list of sizes")
    return tuple(value)


def _named_shape(item: Any, what: str) -> tuple[str, tuple[int, ...]]:
    if not (isinstance(item, list) and len(item) == 2):
        raise MalformedReply(f"{what}: an entry is not [name, shape]")
    return _string(item[0], f"{what}: a name"), _shape(item[1], what)


def _tensor(raw: Any, what: str):
    import torch

    if not isinstance(raw, torch.Tensor):
        raise MalformedReply(f"{what} is not a tensor")
    return raw


def _module_marker(sent: Any) -> bool:
    """Whether a procedure's argument was sent as a module (a shell or a course fixture)."""
    return isinstance(sent, dict) and len(sent) == 1 and next(iter(sent)) in ("$shell", "$fixture")


def _tensor_map(raw: Any, what: str) -> dict[str, Any]:
    import torch

    if not isinstance(raw, dict) or len(raw) > MAX_NAMES:
        raise MalformedReply(f"{what} is not a mapping of names to tensors")
    if not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise MalformedReply(f"{what} holds something other than tensors")
    return {str(k): v for k, v in raw.items()}


# The wire refuses longer ints as it reads them; a reply handed to the decoders by any other way is
# held to the same bound, so no returned int can be too long to print or to turn into a float.
_INT_BOUND = 10 ** MAX_INT_DIGITS


def _plain(value: Any, what: str, depth: int = 0) -> Any:
    """A returned value as the grader reads it: tensors, numbers, strings, tuples, lists, Opaque."""
    import torch

    if depth > 8:
        return Opaque("deeply nested value")
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _INT_BOUND:
        raise MalformedReply(f"{what}: an integer of more than {MAX_INT_DIGITS} digits")
    if value is None or isinstance(value, (bool, int, float, torch.Tensor)):
        return value
    if isinstance(value, tuple):
        return tuple(_plain(v, what, depth + 1) for v in value)
    if isinstance(value, list):
        return [_plain(v, what, depth + 1) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$map"} and isinstance(value["$map"], list):  # a returned dict
            pairs = value["$map"]
            if len(pairs) > MAX_NAMES or not all(isinstance(p, list) and len(p) == 2 and
                                                 type(p[0]) in (str, int) for p in pairs):
                raise MalformedReply(f"{what}: a dict that is not a list of [key, value] pairs")
            return {_plain(k, what, depth + 1): _plain(v, what, depth + 1) for k, v in pairs}
        if set(value) == {"$object"} and isinstance(value["$object"], str):
            return Opaque(value["$object"][:200])
        if set(value) == {"$module", "p"}:  # an attribute that is a submodule
            return {"$module": _string(value["$module"], what)[:200], "p": value["p"]
                    if value["p"] is None or type(value["p"]) in (int, float) else None}
    raise MalformedReply(f"{what}: a value of an unexpected form")


__all__ = ["Answered", "Built", "CaseReply", "Died", "LoadFailed", "LoadReply", "Malformed",
           "MalformedReply", "Missing", "ModuleReport", "NotCallable", "NotModule", "Opaque", "Raised",
           "RaisedError", "Returned", "StepReply", "TimedOut", "decode_error", "decode_load",
           "decode_probe", "decode_step"]
