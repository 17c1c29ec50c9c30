"""The wire format carries plain data only, and the grader rebuilds every tensor itself."""

import contextlib
import csv
import io
import json
import struct

import pytest
import torch
from conftest import RUBRIC, SOLUTIONS

from grader import cli, load_rubric, wire
from grader.batch.gradebook import Row


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
    return struct.pack(">QQ", len(data), len(blob)) + data + blob


@pytest.mark.parametrize("bad", [
    frame({"$tensor": {"dtype": "float32", "shape": [4], "blob": 0}}, b"\x00" * 8),  # too short
    frame({"$tensor": {"dtype": "object", "shape": [1], "blob": 0}}, b"\x00" * 8),  # bad dtype
    frame({"$tensor": {"dtype": "float32", "shape": [-1], "blob": 0}}),  # bad shape
    frame({"$pickle": "gASV..."}),  # unknown tag
    frame({"$dict": [1, 2]}),  # entries that are not [key, value] pairs
    frame({"$dict": [["a", 1, 2]]}),
    struct.pack(">QQ", 5, 0) + b"{nope",  # not JSON
    frame({"$tensor": {"dtype": "float32", "shape": [1], "blob": 0}}, b"\x00" * 8),  # data left over
    frame([1, 2], b"\x00" * 4),  # data with no tensor to claim it
    frame([1, 2])[:-1],  # shorter than its lengths say
    frame([1, 2]) + b"\x00",  # longer than its lengths say
])
def test_malformed_frames_are_refused(bad):
    with pytest.raises(wire.WireError):
        wire.decode(bad)


def test_objects_that_are_not_plain_data_cannot_be_sent():
    with pytest.raises(wire.WireError):
        wire.encode(object())


def frame_of(header: bytes, blobs: bytes = b"") -> bytes:
    return struct.pack(">QQ", len(header), len(blobs)) + header + blobs


@pytest.mark.parametrize("header, problem", [
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (json.dumps({"$tensor": {"dtype": "float32", "shape": [0, 2**64], "blob": 0}}).encode(),
     "bad tensor shape"),
    (json.dumps({"$tensor": {"dtype": "float32", "shape": [1] * 40, "blob": 0}}).encode(),
     "bad tensor shape"),
    (json.dumps({"$tensor": {"dtype": "uint8", "shape": [2**20, 2**20], "blob": 0}}).encode(),
     "over the limit"),
])
def test_a_hostile_header_is_refused_before_anything_is_allocated(header, problem):
    with pytest.raises(wire.WireError, match=problem):
        wire.decode(frame_of(header))
    read = iter([struct.pack(">QQ", len(header), 0), header])
    with pytest.raises(wire.WireError, match=problem):
        wire.decode(wire.read_frame(0, lambda fd, n: next(read)))


def test_a_header_larger_than_its_limit_is_refused_unread():
    head = struct.pack(">QQ", wire.MAX_HEADER_BYTES + 1, 0)
    with pytest.raises(wire.WireError, match="over the"):
        wire.read_frame(0, lambda fd, n: head)


def test_a_frame_larger_than_its_limit_is_refused_unread():
    head = struct.pack(">QQ", 2, wire.MAX_FRAME_BYTES)
    asked = []

    def read(fd, n):
        asked.append(n)
        return head
    with pytest.raises(wire.WireError, match="over the"):
        wire.read_frame(0, read)
    assert asked == [len(head)]  # nothing past the lengths was read


# ---------------------------------------------------------------- a reply the grader cannot read, end to end

HUGE_INT_STEP = "attention_scores"


def returns_a_6001_digit_int() -> str:
    """The solutions, with one step whose code lifts Python's digit limit in the worker and returns
    an int of 6,001 digits (the grader's own process still has the limit)."""
    return SOLUTIONS.read_text() + (
        "\nimport sys\nsys.set_int_max_str_digits(0)\n\n\n"
        f"def {HUGE_INT_STEP}(inputs):\n    return 10 ** 6000\n")


def run_cli(*args: str) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main([*args, "--rubric", str(RUBRIC)])
    return code, stdout.getvalue(), stderr.getvalue()


def test_a_step_returning_a_6001_digit_int_fails_with_a_reply_that_could_not_be_read(tmp_path):
    path = tmp_path / "huge_int.py"
    path.write_text(returns_a_6001_digit_int())
    code, stdout, stderr = run_cli("check", str(path), "--format", "json",
                                   "--step", HUGE_INT_STEP, "--step", "softmax_naive")
    assert code == 1, stderr  # a step that did not pass, as for any failed step
    steps = {step["id"]: step for step in json.loads(stdout)["steps"]}
    assert steps[HUGE_INT_STEP]["status"] == "error"
    assert "reply it cannot read" in steps[HUGE_INT_STEP]["feedback"]
    assert "6,001 digits" in steps[HUGE_INT_STEP]["feedback"]
    assert steps["softmax_naive"]["status"] == "passed"  # the next step runs in a fresh worker


def test_a_class_with_a_6001_digit_int_beside_a_correct_submission_is_all_graded(tmp_path):
    """`grade` marked that student "not graded" and exited 2 on every rerun."""
    folder, out = tmp_path / "class", tmp_path / "out"
    folder.mkdir()
    (folder / "huge_int.py").write_text(returns_a_6001_digit_int())
    (folder / "correct.py").write_text(SOLUTIONS.read_text())
    rubric = load_rubric(RUBRIC)
    maximum = sum(step.points for step in rubric.steps)
    lost = next(step.points for step in rubric.steps if step.id == HUGE_INT_STEP)
    for _ in range(2):  # a rerun finds nothing left to grade, and says so the same way
        code, _, stderr = run_cli("grade", str(folder), "--out", str(out), "--jobs", "2")
        assert code == 0, stderr  # 2 is only for a student the grader itself failed on
    rows = {row.student: row for row in map(Row.from_json, (out / "results.jsonl").read_text().splitlines())}
    assert {student: row.status for student, row in rows.items()} == {"correct": "graded",
                                                                       "huge_int": "graded"}
    assert rows["correct"].report.score == maximum
    assert rows["huge_int"].report.score == maximum - lost
    with open(out / "grades.csv", newline="") as grades:
        totals = {line["id"]: float(line["total"]) for line in csv.DictReader(grades)}
    assert totals == {"correct": maximum, "huge_int": maximum - lost}


def test_a_step_raising_a_message_with_a_lone_surrogate_is_reported_as_utf8(tmp_path):
    """check crashed writing the report (UnicodeEncodeError) when an exception message held one."""
    path = tmp_path / "lone_surrogate.py"
    path.write_text(SOLUTIONS.read_text() + (
        f"\n\ndef {HUGE_INT_STEP}(inputs):\n    raise ValueError('bad \\ud800 value')\n"))
    code, stdout, stderr = run_cli("check", str(path), "--step", HUGE_INT_STEP)
    assert code == 1, stderr
    stdout.encode("utf-8")  # what a terminal or a file takes
    assert "ValueError: bad \N{REPLACEMENT CHARACTER} value" in stdout
