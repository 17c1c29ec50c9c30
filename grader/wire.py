"""The wire format between the grader and the worker that runs student code.

No pickle, ever: a message is a JSON header followed by raw tensor bytes.

    frame   = header length | blob length | header (UTF-8 JSON) | blob bytes ...
              (both lengths 8-byte big-endian; the blobs are the tensors' bytes, in order)
    value   = null | bool | int | float | str | [value, ...]            (a list)
            | {"$tuple": [value, ...]} | {"$dict": [[str, value], ...]}
            | {"$tensor": {"dtype": str, "shape": [int, ...], "blob": int}}

The grader decodes what the worker sends into fresh, ordinary tensors that it builds itself from
the bytes, checking every dtype, shape and length (the blobs must be exactly the bytes the header's
tensors claim): whatever the student process does, what comes back is plain data. This module
is loaded by both sides and imports only the standard library and torch.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import struct
import sys

MAX_FRAME_BYTES = 512 * 1024 * 1024
MAX_HEADER_BYTES = 8 * 1024 * 1024  # the JSON part; tensors travel as blobs after it
MAX_RANK = 16
# An int's decimal digits: every int a float can hold (a check may mix it with floats) and that
# prints under Python's default limit (4,300 digits); a longer one is refused as it is read.
MAX_INT_DIGITS = 300
MAX_NUMEL = MAX_FRAME_BYTES  # elements of one tensor, checked before anything is allocated
_HEADER = struct.Struct(">QQ")  # the header's length, the blobs' length

# dtype name -> bytes per element. torch is imported only when a tensor is met, so that starting
# a worker does not wait for the grader's own `import torch`.
ITEMSIZE: dict[str, int] = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "int64": 8,
                            "int32": 4, "int16": 2, "int8": 1, "uint8": 1, "bool": 1}


class WireError(Exception):
    """A frame or a value that breaks the format (the other side is broken or hostile)."""


# ---------------------------------------------------------------- encoding


def encode(value: object) -> bytes:
    """One frame holding `value`."""
    blobs: list[bytes] = []
    header = json.dumps(_pack(value, blobs, depth=0)).encode()
    return b"".join([_HEADER.pack(len(header), sum(map(len, blobs))), header, *blobs])


def _pack(value: object, blobs: list[bytes], depth: int) -> object:
    if depth > 32:
        raise WireError("value nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)) and type(value) in (int, float):
        return value
    torch = sys.modules.get("torch")  # no tensor can exist before torch is imported
    if torch is not None and isinstance(value, torch.Tensor):
        return {"$tensor": _pack_tensor(value, blobs)}
    if type(value) is tuple:
        return {"$tuple": [_pack(item, blobs, depth + 1) for item in value]}
    if type(value) is list:
        return [_pack(item, blobs, depth + 1) for item in value]
    if type(value) is dict:
        return {"$dict": [[str(k), _pack(v, blobs, depth + 1)] for k, v in value.items()]}
    raise WireError(f"cannot send a value of type {type(value).__name__}")


def _pack_tensor(tensor, blobs: list[bytes]) -> dict:
    import torch

    # Plain Tensor methods, so that a subclass's overrides are not consulted.
    plain = torch.Tensor.detach(tensor)
    name = str(plain.dtype).removeprefix("torch.")
    if name not in ITEMSIZE:
        raise WireError(f"cannot send a tensor of dtype {plain.dtype}")
    plain = torch.Tensor.contiguous(torch.Tensor.cpu(plain))
    nbytes = plain.numel() * plain.element_size()
    data = ctypes.string_at(plain.data_ptr(), nbytes) if nbytes else b""
    blobs.append(data)
    return {"dtype": name, "shape": list(plain.shape), "blob": len(blobs) - 1}


# ---------------------------------------------------------------- decoding


def decode(frame: bytes) -> object:
    """The value in one frame, with every tensor rebuilt as a fresh, ordinary tensor.

    The one boundary: whatever a broken or hostile frame trips over while it is read is a
    `WireError`, never another exception; what it returns holds no value that raises later (an int
    too long to print, a string that cannot be written as UTF-8)."""
    try:
        return _decode(frame)
    except WireError:
        raise
    except RecursionError:
        raise WireError("value nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - any other failure is the frame's, whatever its type
        raise WireError(f"frame could not be read ({type(exc).__name__}: {str(exc)[:200]})") from None


def _decode(frame: bytes) -> object:
    if len(frame) < _HEADER.size:
        raise WireError("frame shorter than its header")
    header_len, blob_len = _HEADER.unpack_from(frame)
    start = _HEADER.size + header_len
    if header_len > MAX_HEADER_BYTES:
        raise WireError(f"header of {header_len:,} bytes, over the {MAX_HEADER_BYTES:,} limit")
    if start + blob_len != len(frame):
        raise WireError("frame not as long as its lengths say")
    text = frame[_HEADER.size : start]
    blobs = _split_blobs(frame, start)
    value = _unpack(_json(text), blobs, depth=0)
    if blobs.offset != blob_len:
        raise WireError("tensor data longer than the tensors' shapes say")
    return _printable_strings(value) if _SURROGATE_ESCAPE.search(text) else value


# Every digit as "0", every other byte as " ": a header holds a run of more than MAX_INT_DIGITS
# digits (in a number, or in a string) where its translation holds _LONG_RUN (a search in C).
_DIGITS_AS_ZERO = bytes(ord("0") if byte in b"0123456789" else ord(" ") for byte in range(256))
_LONG_RUN = b"0" * (MAX_INT_DIGITS + 1)


def _has_long_digit_run(data: bytes) -> bool:
    return _LONG_RUN in data.translate(_DIGITS_AS_ZERO)


def _json(data: bytes) -> object:
    # Only a header with a long run of digits somewhere has its integers read one by one.
    parse_int = _bounded_int if _has_long_digit_run(data) else None
    try:
        return json.loads(data.decode(), parse_int=parse_int)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"header is not JSON: {exc}") from None
    except RecursionError:
        raise WireError("header nested too deeply") from None


def _bounded_int(digits: str) -> int:
    """A JSON integer, refused before it is converted when it has more than MAX_INT_DIGITS."""
    count = len(digits.lstrip("-"))
    if count > MAX_INT_DIGITS:
        raise WireError(f"an integer of {count:,} digits, over the {MAX_INT_DIGITS}-digit limit "
                        "of what the grader reads")
    return int(digits)


# A surrogate reaches a string only through a \uD800-\uDFFF escape (UTF-8 cannot encode one); JSON
# joins a valid pair into one character, so what is left of one after json.loads is alone.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _printable_strings(value: object) -> object:
    """`value` with a lone surrogate in any string (one that cannot be printed or written as
    UTF-8) replaced by U+FFFD."""
    if type(value) is str:
        return _LONE_SURROGATE.sub("\N{REPLACEMENT CHARACTER}", value)
    if type(value) is list:
        return [_printable_strings(item) for item in value]
    if type(value) is tuple:
        return tuple(_printable_strings(item) for item in value)
    if type(value) is dict:
        return {_printable_strings(k): _printable_strings(v) for k, v in value.items()}
    return value


def _split_blobs(frame: bytes, start: int) -> _Blobs:
    return _Blobs(memoryview(frame)[start:])


class _Blobs:
    """The blob bytes after the header, handed out in order as tensors claim them."""

    def __init__(self, data: memoryview):
        self.data = data
        self.offset = 0
        self.count = 0

    def take(self, index: int, nbytes: int) -> bytearray:
        """A copy of the next blob, owned by nobody else."""
        if type(index) is not int or index != self.count:
            raise WireError("tensor blobs out of order")
        end = self.offset + nbytes
        if end > len(self.data):
            raise WireError("tensor data shorter than its shape says")
        chunk = bytearray(self.data[self.offset : end])
        self.offset, self.count = end, self.count + 1
        return chunk


_SCALARS = frozenset({type(None), bool, int, float, str})  # what json.loads gives besides list, dict


def _unpack(node: object, blobs: _Blobs, depth: int) -> object:
    # A reply is mostly scalars (names, shapes, dtypes): they are taken as they are, inline, without
    # a call each.
    if type(node) in _SCALARS:
        return node
    if depth > 32:
        raise WireError("value nested too deeply")
    if type(node) is list:
        return [item if type(item) in _SCALARS else _unpack(item, blobs, depth + 1) for item in node]
    if type(node) is dict and len(node) == 1:
        ((tag, body),) = node.items()
        if tag == "$tuple" and type(body) is list:
            return tuple(item if type(item) in _SCALARS else _unpack(item, blobs, depth + 1)
                         for item in body)
        if tag == "$dict" and type(body) is list:
            if not all(type(pair) is list and len(pair) == 2 and type(pair[0]) is str
                       for pair in body):
                raise WireError("a $dict entry that is not a [key, value] pair with a string key")
            return {k: _unpack(v, blobs, depth + 1) for k, v in body}
        if tag == "$tensor" and type(body) is dict:
            return _unpack_tensor(body, blobs)
    raise WireError(f"unexpected value in frame: {str(node)[:80]}")


def _unpack_tensor(body: dict, blobs: _Blobs):
    import torch

    name = body.get("dtype")
    shape = body.get("shape")
    if type(name) is not str or name not in ITEMSIZE:
        raise WireError(f"unknown tensor dtype {name!r}")
    dtype = getattr(torch, name)
    numel = _numel(shape)
    data = blobs.take(body.get("blob"), numel * ITEMSIZE[name])  # type: ignore[arg-type]
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    # The tensor owns its copy of the bytes: nothing else refers to them.
    return torch.frombuffer(data, dtype=dtype).reshape(shape)


# ---------------------------------------------------------------- framing over file descriptors


def write_frame(fd: int, frame: bytes) -> None:
    view = memoryview(frame)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_frame(fd: int, deadline_read=None) -> bytes:
    """Read one frame from `fd`; `deadline_read(fd, n)` may replace os.read to enforce a timeout.
    Its lengths are checked before its body is read; its content is checked by `decode`."""
    read = deadline_read or _read_exactly
    head = read(fd, _HEADER.size)
    if len(head) != _HEADER.size:
        raise WireError("frame shorter than its header")
    header_len, blob_len = _HEADER.unpack(head)
    if header_len > MAX_HEADER_BYTES:
        raise WireError(f"frame header of {header_len:,} bytes, over the {MAX_HEADER_BYTES:,} limit")
    if header_len + blob_len > MAX_FRAME_BYTES:
        raise WireError(f"frame of {header_len + blob_len:,} bytes, over the {MAX_FRAME_BYTES:,} limit")
    return head + read(fd, header_len + blob_len)


def _numel(shape: object) -> int:
    """The element count of a shape, refused before any allocation when it is not plausible."""
    if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(
            type(n) is int and 0 <= n <= MAX_NUMEL for n in shape):
        raise WireError(f"bad tensor shape {str(shape)[:80]}")
    numel = 1
    for n in shape:
        numel *= n
    if numel > MAX_NUMEL:
        raise WireError(f"tensor of {numel:,} elements, over the limit")
    return numel


def _read_exactly(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the channel")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)
