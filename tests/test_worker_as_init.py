"""The worker is the init (process 1) of its PID namespace: what that changes, and what it must not.

An init takes only the signals it has a handler for. The student's own signals to itself do
nothing; a fault still ends it with its signal; a step's CPU limit still ends the step as that
limit, with its message; whatever the student started ends with the worker.
"""

import pytest
import yaml

from grader import grade
from grader.sandbox import probe
from tests.conftest import RUBRIC, SOLUTIONS

pytestmark = pytest.mark.skipif("pid" not in probe().get("layers", []),
                                reason="no PID namespace on this machine")


def _with(tmp_path, extra: str):
    path = tmp_path / "attention.py"
    path.write_text(SOLUTIONS.read_text() + "\n\n" + extra)
    return path


def test_the_worker_is_process_1_of_its_namespace(tmp_path):
    submission = _with(tmp_path, (
        "import os\n\n"
        "def softmax_naive(x):\n"
        "    import torch\n"
        "    assert os.getpid() == 1, os.getpid()\n"
        "    exp_x = torch.exp(x)\n"
        "    return exp_x / exp_x.sum(dim=0)\n"))
    report = grade(submission, rubric=RUBRIC, steps=["softmax_naive"])
    assert report.steps[0].status == "passed", report.steps[0].feedback


def test_signals_the_student_sends_itself_do_not_end_the_worker(tmp_path):
    submission = _with(tmp_path, (
        "import os, signal\n\n"
        "def softmax_naive(x):\n"
        "    import torch\n"
        "    for signum in (signal.SIGTERM, signal.SIGSTOP, signal.SIGKILL, signal.SIGHUP):\n"
        "        os.kill(os.getpid(), signum)\n"
        "    exp_x = torch.exp(x)\n"
        "    return exp_x / exp_x.sum(dim=0)\n"))
    report = grade(submission, rubric=RUBRIC, steps=["softmax_naive", "context_vector"])
    assert [s.status for s in report.steps] == ["passed", "passed"], report.steps[0].feedback


def test_a_fault_still_ends_the_worker_with_its_signal(tmp_path):
    submission = _with(tmp_path, "import ctypes\n\ndef softmax_naive(x):\n    return ctypes.string_at(0)\n")
    report = grade(submission, rubric=RUBRIC, steps=["softmax_naive", "context_vector"])
    assert report.steps[0].status == "error"
    assert "segmentation fault" in report.steps[0].feedback
    assert report.steps[1].status == "passed"  # a fresh worker for what follows


def test_a_steps_cpu_limit_still_ends_it_as_that_limit(tmp_path):
    data = yaml.safe_load(RUBRIC.read_text())
    data["reference"] = str(SOLUTIONS)
    data["mistakes"] = str(SOLUTIONS.parent / "mistakes.py")
    step = next(s for s in data["steps"] if s["id"] == "softmax_naive")
    step.update(cpu_seconds=1, timeout=60)
    rubric = tmp_path / "config.yaml"
    rubric.write_text(yaml.safe_dump(data, sort_keys=False))
    submission = _with(tmp_path, "def softmax_naive(x):\n    while True:\n        pass\n")
    report = grade(submission, rubric=rubric, steps=["softmax_naive"])
    result = report.steps[0]
    assert result.status == "error", result.feedback
    assert "CPU time limit" in result.feedback
    assert report.seconds < 30  # ended by the CPU limit, not by the 60 s step timeout
