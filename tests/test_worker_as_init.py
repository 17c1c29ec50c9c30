"""The worker is the init (process 1) of its PID namespace: what that changes, and what it must not.

An init takes only the signals it has a handler for. The student's own signals to itself do
nothing; a fault still ends it with its signal; a step's CPU limit still ends the step as that
limit, with its message; whatever the student started ends with the worker.

A single check starts its worker through a relay; in a class run as root, the zygote forks each
worker straight into a namespace of its own (`confine.fork_as_init`) and reports its exit status
itself. Both are checked: `_graded` grades a submission either way.
"""

import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from grader import grade
from grader.batch import grade_class
from grader.sandbox import probe
from tests.conftest import REPO_ROOT, RUBRIC, SOLUTIONS, sandbox_skip


@pytest.fixture(autouse=True, scope="module")
def _a_pid_namespace():
    """Every test here needs the pid layer (a failure under ATTENTION_GRADER_REQUIRE_SANDBOX=1)."""
    if "pid" not in probe().get("layers", []):
        sandbox_skip("no PID namespace on this machine (`attention-grader sandbox` says why)")


def _with(tmp_path, extra: str):
    path = tmp_path / "attention.py"
    path.write_text(SOLUTIONS.read_text() + "\n\n" + extra)
    return path


@pytest.fixture(params=["check", "class run"])
def _graded(request, tmp_path):
    """Grade one submission by a single check, or as the one student of a class run (the zygote)."""
    def graded(submission, rubric=RUBRIC, steps=None):
        if request.param == "check":
            return grade(submission, rubric=rubric, steps=steps)
        folder = tmp_path / "class"
        folder.mkdir(exist_ok=True)
        (folder / "ada_101_5001_attention.py").write_text(submission.read_text())
        grade_class([folder], out=tmp_path / "out", rubric=rubric, jobs=1, progress=None)
        line = (tmp_path / "out" / "results.jsonl").read_text().splitlines()[0]
        report = json.loads(line)["report"]
        wanted = [s for s in report["steps"] if steps is None or s["id"] in steps]
        return [(s["status"], s["feedback"]) for s in wanted], report["seconds"]
    graded.by = request.param
    return graded


def _statuses(report):
    if isinstance(report, tuple):
        return report
    return [(s.status, s.feedback) for s in report.steps], report.seconds


def test_the_worker_is_process_1_of_its_namespace(tmp_path, _graded):
    submission = _with(tmp_path, (
        "import os\n\n"
        "def softmax_naive(x):\n"
        "    import torch\n"
        "    assert os.getpid() == 1, os.getpid()\n"
        "    exp_x = torch.exp(x)\n"
        "    return exp_x / exp_x.sum(dim=0)\n"))
    steps, _ = _statuses(_graded(submission, steps=["softmax_naive"]))
    assert steps[0][0] == "passed", steps[0][1]


def test_signals_the_student_sends_itself_do_not_end_the_worker(tmp_path, _graded):
    submission = _with(tmp_path, (
        "import os, signal\n\n"
        "def softmax_naive(x):\n"
        "    import torch\n"
        "    for signum in (signal.SIGTERM, signal.SIGSTOP, signal.SIGKILL, signal.SIGHUP):\n"
        "        os.kill(os.getpid(), signum)\n"
        "    exp_x = torch.exp(x)\n"
        "    return exp_x / exp_x.sum(dim=0)\n"))
    steps, _ = _statuses(_graded(submission, steps=["softmax_naive", "context_vector"]))
    assert [status for status, _ in steps] == ["passed", "passed"], steps[0][1]


def test_a_fault_still_ends_the_worker_with_its_signal(tmp_path, _graded):
    submission = _with(tmp_path, "import ctypes\n\ndef softmax_naive(x):\n    return ctypes.string_at(0)\n")
    steps, _ = _statuses(_graded(submission, steps=["softmax_naive", "context_vector"]))
    assert steps[0][0] == "error"
    assert "segmentation fault" in steps[0][1]
    assert steps[1][0] == "passed"  # a fresh worker for what follows


def test_a_steps_cpu_limit_still_ends_it_as_that_limit(tmp_path, _graded):
    data = yaml.safe_load(RUBRIC.read_text())
    data["reference"] = str(SOLUTIONS)
    data["mistakes"] = str(SOLUTIONS.parent / "mistakes.py")
    step = next(s for s in data["steps"] if s["id"] == "softmax_naive")
    step.update(cpu_seconds=1, timeout=60)
    rubric = tmp_path / "config.yaml"
    rubric.write_text(yaml.safe_dump(data, sort_keys=False))
    submission = _with(tmp_path, "def softmax_naive(x):\n    while True:\n        pass\n")
    steps, seconds = _statuses(_graded(submission, rubric=rubric, steps=["softmax_naive"]))
    status, feedback = steps[0]
    assert status == "error", feedback
    assert "CPU time limit" in feedback
    assert seconds < 30  # ended by the CPU limit, not by the 60 s step timeout


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                children.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
        except (OSError, ValueError):
            continue
    found, stack = set(), [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def test_a_grader_killed_outright_leaves_no_worker_and_no_folder(tmp_path):
    """Killed mid-step (SIGKILL: no cleanup of its own), the grader takes its zygote and the
    running worker with it, and their folders: the zygote removes them on its way out."""
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "ada_101_5001_attention.py").write_text(
        SOLUTIONS.read_text() + "\n\nimport time\n\ndef softmax_naive(x):\n    time.sleep(60)\n")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "grader", "grade", str(folder), "--out",
                                str(tmp_path / "out"), "--jobs", "1"], cwd=REPO_ROOT,
                               env={**os.environ, "TMPDIR": str(scratch)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(_descendants(process.pid)) < 2:
            time.sleep(0.1)  # the zygote, and a worker (the canary's, then the student's)
        time.sleep(4)  # the canary is done; the student's worker is in its 60 s step
        left = _descendants(process.pid)
        assert left, "the grader started no zygote"
    finally:
        process.kill()
        process.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (any(os.path.exists(f"/proc/{p}") for p in left)
                                           or list(scratch.glob("attention-grader-*"))):
        time.sleep(0.1)
    alive = [p for p in left if os.path.exists(f"/proc/{p}")]
    assert not alive, f"processes outlived the grader: {alive}"
    assert not list(scratch.glob("attention-grader-*"))
