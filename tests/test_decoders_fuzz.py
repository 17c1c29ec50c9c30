"""Whatever the worker sends, reading it returns a value or raises the one Malformed error.

The worker runs in the student's process, so any byte it writes may be forged. These properties
feed the wire decoder and the reply decoders random bytes, truncated frames, huge integers, deep
nesting, wrong types and valid frames with mutated fields, and read them as the grader does (the
sandbox's `receive` over a pipe, then the step's decoder). Each read either gives a value that can be
printed and written as UTF-8, or raises `WireError` (the frame) or `MalformedReply` (the reply, and
every frame `receive` cannot read): never any other exception.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import struct
import sys
import threading

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from grader import wire
from grader.replies import MalformedReply, decode_load, decode_probe, decode_step
from grader.sandbox import Worker

FUNCTION_REQUEST = {"kind": "function", "cases": [{"args": []}, {"args": []}]}
PROCEDURE_REQUEST = {"kind": "procedure", "cases": [{"args": [{"$shell": {"class": "S", "layout": {}}}]}]}
BUILD_REQUEST = {"kind": "build", "cases": [{"args": [], "inputs": [torch.ones(2)], "attributes": ["d"],
                                             "train_calls": 1, "transpose_buffers": ["mask"]}]}
PROBE_REQUEST = {"kind": "probe", "cases": [{"candidates": [{}, {}]}]}
REQUESTS = [FUNCTION_REQUEST, PROCEDURE_REQUEST, BUILD_REQUEST]
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


# ------------------------------------------------------------------------------ helpers


@contextlib.contextmanager
def any_int_prints():
    """What `sys.set_int_max_str_digits(0)` gives the student's process: ints of any length print."""
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(before)


def frame_of(header: bytes, blobs: bytes = b"") -> bytes:
    return struct.pack(">QQ", len(header), len(blobs)) + header + blobs


def header_of(node: object) -> bytes:
    """A frame header holding `node` as JSON, written as a worker free of the digit limit would."""
    with any_int_prints():
        return json.dumps(node).encode()


def received(frame: bytes) -> dict:
    """What the sandbox's `receive` reads from a worker that wrote `frame` to its reply pipe."""
    worker = Worker.__new__(Worker)  # only its reply pipe is read
    worker.reply_r, write_end = os.pipe()
    writer = threading.Thread(target=wire.write_frame, args=(write_end, frame))
    writer.start()
    try:
        return worker.receive(10)
    finally:
        os.close(worker.reply_r)  # a writer still blocked on a full pipe gets EPIPE and ends
        writer.join()
        os.close(write_end)


def read_as_the_grader(frame: bytes, request: dict):
    """One frame read as the grader reads a step's reply: `receive`, then `decode_step`."""
    return decode_step(received(frame), request)


def digits(value: int) -> int:
    with any_int_prints():
        return len(str(abs(value)))


def has_long_int(node: object) -> bool:
    if isinstance(node, bool):
        return False
    if isinstance(node, int):
        return digits(node) > wire.MAX_INT_DIGITS
    if isinstance(node, (list, tuple)):
        return any(has_long_int(item) for item in node)
    if isinstance(node, dict):
        return any(has_long_int(item) for item in node.values())
    return False


def usable(value: object) -> None:
    """What the grader may do with anything it read: print it, write it as UTF-8."""
    repr(value).encode("utf-8")


def as_read_back(value: object) -> object:
    """What a well-formed value should come back as: equal, each string as JSON carries it (a
    surrogate pair joined) with what remains of a lone surrogate shown as U+FFFD."""
    if isinstance(value, str):
        return LONE_SURROGATE.sub("\N{REPLACEMENT CHARACTER}", json.loads(json.dumps(value)))
    if isinstance(value, tuple):
        return tuple(as_read_back(item) for item in value)
    if isinstance(value, list):
        return [as_read_back(item) for item in value]
    if isinstance(value, dict):
        return {as_read_back(k): as_read_back(v) for k, v in value.items()}
    return value


def same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return type(b) is dict and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


# ------------------------------------------------------------------------------ strategies


any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)  # lone surrogates too
huge_ints = st.integers(min_value=wire.MAX_INT_DIGITS - 2, max_value=6_100).flatmap(
    lambda n: st.sampled_from([10**n, -(10**n) + 1, 7 ** (n * 6 // 5)]))
numbers = st.integers() | huge_ints | st.floats(allow_nan=False)
tensors = st.builds(lambda n, dtype: torch.arange(n).to(dtype), st.integers(0, 6),
                    st.sampled_from([torch.float32, torch.float64, torch.int64, torch.bool,
                                     torch.bfloat16, torch.uint8]))
sent_values = st.recursive(
    st.none() | st.booleans() | numbers | any_text | tensors,
    lambda inner: (st.lists(inner, max_size=4) | st.lists(inner, max_size=4).map(tuple)
                   | st.dictionaries(any_text, inner, max_size=3)),
    max_leaves=12)

json_scalars = st.none() | st.booleans() | numbers | any_text
tags = st.sampled_from(["$tuple", "$dict", "$tensor", "$map", "$object", "$module", "$pickle", "p"])


def tagged(inner):
    """Nodes in the wire's own forms, with bodies of every type and tensors with any fields."""
    tensor_body = st.fixed_dictionaries({}, optional={
        "dtype": st.sampled_from([*wire.ITEMSIZE, "object", "complex64"]) | inner,
        "shape": st.lists(st.integers(-2, 2**64), max_size=4) | inner,
        "blob": st.integers(-1, 3) | inner})
    return (st.lists(inner, max_size=4)
            | st.dictionaries(tags, inner, max_size=2)
            | st.builds(lambda body: {"$tensor": body}, tensor_body)
            | st.builds(lambda body: {"$dict": body},
                        st.lists(st.lists(inner, min_size=1, max_size=3), max_size=3)))


json_nodes = st.recursive(json_scalars, tagged, max_leaves=16)


def deep(depth: int, innermost: object = 0) -> object:
    node = innermost
    for level in range(depth):
        node = [node] if level % 2 else {"$tuple": [node]}
    return node


def deep_header(depth: int) -> bytes:
    """The JSON text of `deep(depth)`, written out (json.dumps stops at its recursion limit)."""
    opening = "".join("[" if level % 2 else '{"$tuple": [' for level in range(depth))
    closing = "".join("]" if level % 2 else "]}" for level in reversed(range(depth)))
    return (opening + "0" + closing).encode()


def good_reply(output: object) -> dict:
    return {"missing": False, "results": [{"ok": True, "output": output},
                                          {"ok": False, "error": {"type": "ValueError", "message": "no"}}]}


GOOD_MODULE = {"missing": False, "results": [{
    "ok": True, "class": "M", "parameters": [["w", [2], "torch.float32"]], "buffers": [["mask", [2]]],
    "tensor_attributes": [], "attributes": {"d": 2}, "outputs": [torch.ones(2)],
    "train_outputs": [torch.ones(2)], "gradients": {"w": torch.ones(2)},
    "transposed": {"mask": torch.ones(2)}, "parameter_values": {"w": torch.zeros(2)}}]}


def paths(node: object, prefix: tuple = ()):
    """Every place in a JSON tree, as the keys and indexes that lead to it."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, (*prefix, index))


def replaced(node: object, path: tuple, new: object) -> object:
    if not path:
        return new
    head, *rest = path
    copy = dict(node) if isinstance(node, dict) else list(node)
    copy[head] = replaced(node[head], tuple(rest), new)
    return copy


# ------------------------------------------------------------------------------ the wire


@given(st.binary(max_size=200))
def test_random_bytes_are_a_value_or_a_wire_error(data):
    for frame in (data, frame_of(data), frame_of(data[:10], data[10:])):
        try:
            usable(wire.decode(frame))
        except wire.WireError:
            pass


@given(sent_values, st.data())
def test_a_truncated_frame_is_always_refused(value, data):
    with any_int_prints():
        try:
            frame = wire.encode(value)
        except wire.WireError:  # nested deeper than a worker may send
            return
    cut = data.draw(st.integers(0, len(frame) - 1))
    with pytest.raises(wire.WireError):
        wire.decode(frame[:cut])


@given(sent_values)
def test_what_a_worker_sends_is_read_back_or_refused_for_a_long_int(value):
    """A worker free of the digit limit sends any int: one longer than the grader reads is that
    frame's error, everything else is read back as it was sent."""
    with any_int_prints():
        try:
            frame = wire.encode(value)
        except wire.WireError:
            return
    if has_long_int(value):
        with pytest.raises(wire.WireError, match="digits"):
            wire.decode(frame)
        return
    back = wire.decode(frame)
    usable(back)
    assert same(as_read_back(value), back)


@given(json_nodes, st.binary(max_size=64))
def test_any_header_in_the_wires_own_forms_is_a_value_or_a_wire_error(node, blobs):
    try:
        usable(wire.decode(frame_of(header_of(node), blobs)))
    except wire.WireError:
        pass


@pytest.mark.parametrize("depth", [34, 200, 5_000, 60_000])
def test_nesting_deeper_than_the_wire_allows_is_a_wire_error(depth):
    assert json.loads(deep_header(5)) == deep(5)
    with pytest.raises(wire.WireError, match="nested too deeply"):
        wire.decode(frame_of(deep_header(depth)))


@pytest.mark.parametrize("count", [wire.MAX_INT_DIGITS + 1, 4_301, 6_001, 100_000])
def test_an_int_longer_than_the_grader_reads_is_refused_not_converted(count):
    header = b'{"$tuple": [1, -' + b"9" * count + b"]}"
    with pytest.raises(wire.WireError, match=f"{count:,} digits"):
        wire.decode(frame_of(header))


def test_the_longest_int_the_grader_reads_is_read_and_can_be_used():
    value = wire.decode(frame_of(b"[" + b"9" * wire.MAX_INT_DIGITS + b"]"))[0]
    assert value == 10**wire.MAX_INT_DIGITS - 1
    assert float(value) > 0 and len(repr(value)) == wire.MAX_INT_DIGITS


@pytest.mark.parametrize("node", [
    {"$tensor": {"dtype": ["float32"], "shape": [1], "blob": 0}},  # a dtype that is a list
    {"$tensor": {"dtype": {"a": 1}, "shape": [1], "blob": 0}},
])
def test_a_tensor_field_of_the_wrong_type_is_a_wire_error(node):
    with pytest.raises(wire.WireError):
        wire.decode(frame_of(header_of(node), b"\x00" * 4))


@pytest.mark.parametrize("node", [
    [{"$tensor": {"dtype": "float32", "shape": [1], "blob": 0}},
     {"$tensor": {"dtype": "float32", "shape": [1], "blob": True}}],  # a blob index that is a bool
    {"$dict": [[["a"], 1]]},  # a key that is a list
    {"$dict": [[{"$tuple": []}, 1]]},
    {"$dict": [[3, 1]]},
])
def test_a_key_or_an_index_of_the_wrong_type_is_a_wire_error(node):
    with pytest.raises(wire.WireError):
        wire.decode(frame_of(header_of(node), b"\x00" * (8 if isinstance(node, list) else 0)))


def test_a_lone_surrogate_is_read_as_a_replacement_character():
    back = wire.decode(frame_of(b'{"$dict": [["k\\udc80", "a\\ud800b\\ud83d\\ude00"]]}'))
    assert back == {"k\N{REPLACEMENT CHARACTER}": "a\N{REPLACEMENT CHARACTER}b\N{GRINNING FACE}"}
    usable(back)


# ------------------------------------------------------------------------------ the replies


@given(sent_values | json_nodes, st.sampled_from(REQUESTS))
def test_any_reply_is_a_step_reply_or_malformed(raw, request):
    for decode in (lambda: decode_step(raw, request), lambda: decode_load(raw),
                   lambda: decode_probe(raw, PROBE_REQUEST)):
        try:
            usable(decode())
        except MalformedReply:
            pass


@given(st.sampled_from([good_reply(torch.ones(3)), good_reply([1, "x", (2.5, None)]), GOOD_MODULE]),
       sent_values | json_nodes)
def test_a_valid_reply_with_a_field_replaced_is_a_step_reply_or_malformed(reply, new):
    """Each field in turn replaced by the same value."""
    request = BUILD_REQUEST if reply is GOOD_MODULE else FUNCTION_REQUEST
    for path in paths(reply):
        try:
            usable(decode_step(replaced(reply, path, new), request))
        except MalformedReply:
            pass


@pytest.mark.parametrize("field, value", [
    ("train_outputs", 5), ("train_outputs", None), ("train_outputs", {"$map": []}),
])
def test_a_module_report_with_a_field_of_the_wrong_type_is_malformed(field, value):
    (module,) = GOOD_MODULE["results"]
    with pytest.raises(MalformedReply):
        decode_step({**GOOD_MODULE, "results": [{**module, field: value}]}, BUILD_REQUEST)


# ------------------------------------------------------------------------------ as the grader reads


@given(st.sampled_from([good_reply(torch.ones(3)), good_reply({"a": (1, 2)}), GOOD_MODULE]),
       st.data(), json_nodes)
def test_a_frame_with_one_field_replaced_is_read_as_a_step_reply_or_malformed(reply, data, new):
    frame = wire.encode(reply)
    (header_len,) = struct.unpack_from(">Q", frame)
    tree, blobs = json.loads(frame[16 : 16 + header_len]), frame[16 + header_len :]
    path = data.draw(st.sampled_from(list(paths(tree))))
    mutated = frame_of(header_of(replaced(tree, path, new)), blobs)
    request = BUILD_REQUEST if reply is GOOD_MODULE else FUNCTION_REQUEST
    try:
        usable(read_as_the_grader(mutated, request))
    except MalformedReply:
        pass


@given(st.data())
def test_a_frame_with_bytes_overwritten_is_read_as_a_step_reply_or_malformed(data):
    frame = bytearray(wire.encode(good_reply((torch.arange(6.0), "ok", 12))))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(16, len(frame) - 1))  # past the lengths: the frame stays whole
        frame[at] = data.draw(st.integers(0, 255))
    try:
        usable(read_as_the_grader(bytes(frame), FUNCTION_REQUEST))
    except MalformedReply:
        pass


@pytest.mark.parametrize("header", [
    header_of(good_reply(7**7100)),  # what sys.set_int_max_str_digits(0) lets a worker send
    header_of(good_reply(deep(40))),
    b"[" * 100_000 + b"]" * 100_000,
    b'"a reply"',
    b"\xff\xfe not UTF-8",
    header_of({"$tensor": {"dtype": ["float32"], "shape": [1], "blob": 0}}),
])
def test_a_frame_receive_cannot_read_is_a_malformed_reply(header):
    with pytest.raises(MalformedReply, match="the worker sent a"):
        received(frame_of(header))


def test_a_reply_handed_to_the_decoder_with_a_6001_digit_int_is_malformed():
    """The wire refuses such an int as it reads it; the reply decoder holds any reply to the same
    bound, however it was obtained (found by the property above, once in many runs)."""
    with pytest.raises(MalformedReply, match="more than 300 digits"):
        decode_step(good_reply([1, 10 ** 6000]), FUNCTION_REQUEST)
