"""The wire format carries plain data only, and the grader rebuilds every tensor itself."""

import json
import struct

import pytest
import torch

from grader import wire


def roundtrip(value):
    return wire.decode(wire.encode(value))


def test_values_and_tensors_survive_the_round_trip():
    value = {"output": (torch.randn(2, 3), torch.arange(4)), "n": [1, 2.5, None, True, "x"],
             "empty": torch.empty(0, 3), "scalar": torch.tensor(1.5, dtype=torch.float64)}
    back = roundtrip(value)
    assert torch.equal(back["output"][0], value["output"][0])
    assert back["output"][1].dtype == torch.int64
    assert back["n"] == [1, 2.5, None, True, "x"]
    assert back["empty"].shape == (0, 3)
    assert back["scalar"].dtype == torch.float64 and back["scalar"].item() == 1.5


def test_a_tensor_subclass_comes_back_as_a_plain_tensor():
    class Liar(torch.Tensor):
        def __eq__(self, other):
            return True

    sent = torch.zeros(3).as_subclass(Liar)
    back = roundtrip(sent)
    assert type(back) is torch.Tensor
    assert not torch.equal(back, torch.ones(3))


def test_noncontiguous_and_bfloat16_tensors():
    x = torch.randn(4, 5).T
    assert torch.equal(roundtrip(x), x)
    y = torch.randn(3).to(torch.bfloat16)
    assert torch.equal(roundtrip(y), y)


def frame(header: object, blob: bytes = b"") -> bytes:
    data = json.dumps(header).encode()
    return struct.pack(">Q", len(data)) + data + blob


@pytest.mark.parametrize("bad", [
    frame({"$tensor": {"dtype": "float32", "shape": [4], "blob": 0}}, b"\x00" * 8),  # too short
    frame({"$tensor": {"dtype": "object", "shape": [1], "blob": 0}}, b"\x00" * 8),  # bad dtype
    frame({"$tensor": {"dtype": "float32", "shape": [-1], "blob": 0}}),  # bad shape
    frame({"$pickle": "gASV..."}),  # unknown tag
    b"\x00\x00\x00\x00\x00\x00\x00\x05{nope",  # not JSON
])
def test_malformed_frames_are_refused(bad):
    with pytest.raises(wire.WireError):
        wire.decode(bad)


def test_objects_that_are_not_plain_data_cannot_be_sent():
    with pytest.raises(wire.WireError):
        wire.encode(object())
