"""Hostile submissions: whatever they do, the grader finishes, scores them honestly, grades the
honest steps, and leaves nothing running or written outside the sandbox."""

import json
import os
import random
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, RUBRIC, SOLUTIONS, grade, sandbox_skip, statuses

HOSTILE = Path(__file__).resolve().parent / "hostile"
AS_ROOT = os.geteuid() == 0 and sys.platform.startswith("linux")


@pytest.fixture(scope="module")
def layers():
    """The sandbox layers this machine gives a worker (root or not), as the worker reports them."""
    from grader.sandbox import probe

    return set(probe().get("layers", []))
ALL_STEPS = [step["id"] for step in yaml.safe_load(RUBRIC.read_text())["steps"]]
LATE_STEPS = ["CausalAttention", "MultiHeadAttentionWrapper", "wrapper_with_2d_output",
              "MultiHeadAttention", "gpt2_small_attention"]


@pytest.fixture(scope="module")
def fast_rubric(tmp_path_factory):
    """The course rubric with tight limits, so that hostile code is stopped quickly."""
    data = yaml.safe_load(RUBRIC.read_text())
    data["reference"] = str(SOLUTIONS)
    data["mistakes"] = str(SOLUTIONS.parent / "mistakes.py")
    data["defaults"].update(step_timeout=5, load_timeout=8, submission_timeout=120, output_kb=64,
                            memory_mb=1536, cpu_seconds=60)
    path = tmp_path_factory.mktemp("rubric") / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass(frozen=True)
class Hostile:
    name: str
    fails: dict[str, str]  # step id -> status; every other step must pass
    feedback: str = ""  # a phrase the first failing step's feedback must contain
    note: str = ""  # a phrase one of the report's notes must contain
    insert_before: str = ""  # where the snippet goes; appended at the end by default
    needs: tuple[str, ...] = ()  # the sandbox layers it is stopped by
    extra: dict = field(default_factory=dict)
    # What the steps in `fails` earn, by step id (those not named earn 0): the report's score is
    # then every other step's points, from the rubric, plus these. None: the score is not asserted.
    earns: dict[str, float] | None = None


CORPUS = [
    Hostile("endless_loop_at_import", {}, note="was stopped"),
    Hostile("endless_loop_in_one_step", {"softmax_naive": "timeout"}, feedback="did not finish"),
    Hostile("memory_bomb_in_one_step", {"softmax_naive": "error"}, feedback="ran out of memory"),
    Hostile("sys_exit_at_import", dict.fromkeys(LATE_STEPS, "error"), feedback="SystemExit",
            insert_before="class CausalAttention(", note="SystemExit"),
    Hostile("os_exit_in_one_step", {"softmax_naive": "error"}, feedback="exited with code 0"),
    Hostile("segfault_in_one_step", {"softmax_naive": "error"}, feedback="segmentation fault"),
    Hostile("recursion_blowup_in_one_step", {"softmax_naive": "error"}, feedback="RecursionError"),
    Hostile("output_flood_in_one_step", {"softmax_naive": "error"}, feedback="printed more than",
            note="All tests passed!"),
    # its zeros are refused in the grader (grader.checks.trivial), whatever the worker's torch says
    Hostile("monkeypatched_comparisons", {"softmax_naive": "failed"}, feedback="all zeros"),
    Hostile("lying_tensor_subclass", {"softmax_naive": "failed"}),
    Hostile("forged_report_at_import", {"softmax_naive": "failed"}),
    Hostile("imports_reference_solutions", {"softmax_naive": "error"}, feedback="out of reach",
            needs=("mount",)),
    Hostile("writes_outside_workdir", {}, needs=("landlock",)),
    Hostile("mutates_inputs_in_place", {}),
    Hostile("leaves_threads_and_processes", {}),
    Hostile("interrupts_in_steps", {"softmax_naive": "error", "attention_scores": "error"},
            feedback="KeyboardInterrupt"),
    Hostile("reads_the_repository_history", {}, needs=("landlock",)),
    Hostile("stops_reading_its_requests", {"attention_dropout": "timeout"}, feedback="stopped"),
    # the third round: the same confinement with or without root
    Hostile("unmounts_the_hidden_reference", {}, needs=("mount", "capabilities", "seccomp")),
    Hostile("reads_the_graders_command_line", {}, needs=("proc",)),
    Hostile("signals_every_process", {}, needs=("pid",)),
    Hostile("keeps_shared_memory_and_locks", {}, needs=("ipc", "landlock")),
    Hostile("connects_to_a_host_socket", {}, needs=("seccomp", "landlock")),
    Hostile("rewrites_the_grader", {}, needs=("landlock",)),
    Hostile("forks_hundreds_and_fills_the_disk", {}, needs=("pid", "mount")),
    # facts the student's process reports score only when the grader confirmed them
    Hostile("procedure_does_nothing", {"transfer_weights_v2_to_v1": "failed"},
            feedback="changed nothing", earns={}),
    Hostile("constructor_always_raises", {"MultiHeadAttention": "error",
                                          "gpt2_small_attention": "error"},
            feedback="AssertionError", earns={}),
    # gpt2_small_attention's fused qkv holds the reference's weights (grader.binding) and gives
    # its output: the count is confirmed, the names are not the contract's
    Hostile("forward_always_raises", {"MultiHeadAttention": "error", "gpt2_small_attention": "failed"},
            feedback="forward of the module built by", earns={"gpt2_small_attention": 1}),
    Hostile("wraps_torch_multihead_attention", {"MultiHeadAttention": "error",
                                                "gpt2_small_attention": "failed"},
            feedback="forward of the module built by", earns={}),
    Hostile("forges_factory_parameters", dict.fromkeys(ALL_STEPS, "error") | {
        "wrapper_with_2d_output": "failed", "gpt2_small_attention": "failed"},
        feedback="reply it cannot read", earns={}),
]


def build(hostile: Hostile, tmp_path: Path, marker: str) -> Path:
    snippet = (HOSTILE / f"{hostile.name}.py").read_text()
    snippet = (snippet.replace("{REPO_ROOT}", str(REPO_ROOT)).replace("{MARKER}", marker)
               .replace("{OUTSIDE}", str(tmp_path / "escaped.txt"))
               .replace("{SHM_KEY}", str(shm_key(marker))).replace("{SOCKET}", str(host_socket_path(marker))))
    source = SOLUTIONS.read_text()
    if hostile.insert_before:
        at = source.index(hostile.insert_before)
        source = source[:at] + snippet + "\n\n" + source[at:]
    else:
        source += "\n\n" + snippet
    path = tmp_path / "submission" / f"{hostile.name}.py"
    path.parent.mkdir()
    path.write_text(source)
    return path


def host_socket_path(marker: str) -> Path:
    """Outside /tmp (which the worker sees as its own), where a host's sockets usually are."""
    return REPO_ROOT / f".{marker}.sock"


def shm_key(marker: str) -> int:
    return int(marker.replace(".", "")) % (1 << 31)


def left_behind(marker: str) -> list[str]:
    """What outlives a worker: SysV segments with the marker's key, files named by the marker."""
    found = []
    try:
        segments = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    except OSError:
        segments = []
    found += [f"shm {line.split()[0]}" for line in segments if int(line.split()[0]) == shm_key(marker)]
    for path in (f"/run/lock/{marker}", f"/dev/shm/{marker}", f"/var/tmp/{marker}", f"/tmp/{marker}",
                 str(REPO_ROOT / f"{marker}.fifo")):
        if os.path.lexists(path):
            found.append(path)
    return found


def processes_with(marker: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


@pytest.mark.parametrize("hostile", CORPUS, ids=lambda h: h.name)
def test_hostile_submission(hostile, fast_rubric, tmp_path, layers):
    lacking = [layer for layer in hostile.needs if layer not in layers]
    if lacking:
        sandbox_skip(f"this machine's sandbox lacks {', '.join(lacking)} (`attention-grader sandbox`)")
    marker = f"{random.randint(3000, 3999)}.{random.randint(100000, 999999)}"
    path = build(hostile, tmp_path, marker)
    host_socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    host_socket.bind(str(host_socket_path(marker)))
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind(f"\0attention-grader-test-{marker}")
    for listening in (host_socket, abstract):
        listening.listen(4)
        listening.setblocking(False)

    started = time.monotonic()
    try:
        report = grade(path, rubric=fast_rubric)
    finally:
        connected = []
        for listening in (host_socket, abstract):
            try:
                connected.append(listening.accept())
            except BlockingIOError:
                pass
            listening.close()
        host_socket_path(marker).unlink()
    elapsed = time.monotonic() - started

    assert elapsed < 120, "the grader must finish within the submission's limits"
    assert len(report.steps) == 19
    not_passed = {step: status for step, status in statuses(report).items() if status != "passed"}
    assert not_passed == hostile.fails, [s.feedback for s in report.steps if not s.passed]
    if hostile.feedback:
        first = next(s for s in report.steps if s.id in hostile.fails)
        assert hostile.feedback in first.feedback, first.feedback
    if hostile.note:
        assert any(hostile.note in note for note in report.notes), report.notes
    if hostile.earns is not None:
        points = {step["id"]: step["points"] for step in yaml.safe_load(fast_rubric.read_text())["steps"]}
        honest = sum(p for step, p in points.items() if step not in hostile.fails)
        assert report.score == honest + sum(hostile.earns.values()), statuses(report)
        assert {s.id: s.score for s in report.steps if s.id in hostile.fails} == {
            step: hostile.earns.get(step, 0) for step in hostile.fails}
    # honest steps are scored in full; hostile ones get nothing
    for step in report.steps:
        assert step.score == (step.max_score if step.passed else 0) or step.status == "failed"
    # nothing is left behind
    assert processes_with(marker) == []
    assert left_behind(marker) == []
    assert connected == [], "the worker reached a socket of the host"
    assert not (tmp_path / "escaped.txt").exists()
    assert not (path.parent / "results.json").exists()
    assert (REPO_ROOT / "grader" / "judge.py").read_text().endswith("\n")


def test_a_forged_report_never_reaches_the_graders_output(fast_rubric, tmp_path):
    path = build(CORPUS[10], tmp_path, "0")
    result = subprocess.run([sys.executable, "-m", "grader", "check", str(path), "--rubric",
                             str(fast_rubric), "--format", "json"], capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 1
    report = json.loads(result.stdout)  # exactly one JSON document: the grader's
    softmax = next(step for step in report["steps"] if step["id"] == "softmax_naive")
    assert softmax["status"] == "failed"
    assert report["score"] == report["max_score"] - (softmax["max_score"] - softmax["score"])
    assert report["score"] < report["max_score"]
    assert '"score": 88.0, "max_score": 88.0, "steps": []' not in result.stdout + result.stderr
    assert not (tmp_path / "results.json").exists()
    assert not (REPO_ROOT / "results.json").exists()


def test_inputs_are_fresh_for_every_call(fast_rubric, tmp_path):
    """A function that wrecks its inputs still gets clean inputs on the next case and step."""
    report = grade(build(CORPUS[13], tmp_path, "0"), rubric=fast_rubric,
                   steps=["attn_scores_for_query", "context_vector"])
    assert {s.status for s in report.steps} == {"passed"}


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (the worker sits under a relay and its PID namespace's init)."""
    found, frontier = [], [pid]
    while frontier:
        children = _children(frontier.pop())
        found += children
        frontier += children
    return found


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            stat_line = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat_line.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


def _running_student_code(pid: int) -> bool:
    """Confined, torch imported (over 150 MB resident), and past the handshake."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    resident = next((int(line.split()[1]) for line in status.splitlines()
                     if line.startswith("VmRSS:")), 0)
    return "NoNewPrivs:\t1" in status and resident > 150_000


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are Linux's")
def test_a_worker_dies_with_a_grader_killed_outright(tmp_path):
    path = tmp_path / "sleeps_at_import.py"
    path.write_text(SOLUTIONS.read_text() + "\n\nimport time\n\ntime.sleep(120)\n")
    grader = subprocess.Popen([sys.executable, "-m", "grader", "check", str(path)], cwd=REPO_ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        workers: list[int] = []
        while time.monotonic() < deadline and not workers:
            workers = [pid for pid in _descendants(grader.pid) if _running_student_code(pid)]
            time.sleep(0.1)
        assert workers, "the worker never started"
        time.sleep(2)  # the code's time.sleep(120) is running now
    finally:
        grader.kill()
        grader.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), "the worker outlived the grader"


def _never_here() -> str:
    """A layer this user can never have: `user` (a user namespace) as root, `uid` otherwise."""
    return "user" if os.geteuid() == 0 else "uid"


def test_a_rubric_that_requires_a_missing_layer_grades_nothing(fast_rubric, tmp_path):
    data = yaml.safe_load(fast_rubric.read_text())
    data["sandbox"] = {"require": ["limits", _never_here()]}
    rubric = tmp_path / "config.yaml"
    rubric.write_text(yaml.safe_dump(data, sort_keys=False))
    submission = tmp_path / "honest.py"
    submission.write_text(SOLUTIONS.read_text())

    checked = subprocess.run([sys.executable, "-m", "grader", "check", str(submission), "--rubric",
                              str(rubric)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert f"requires sandbox layers this machine does not give ({_never_here()}:" in checked.stderr
    assert "Score" not in checked.stdout

    graded = subprocess.run([sys.executable, "-m", "grader", "grade", str(submission), "--rubric",
                             str(rubric), "--out", str(tmp_path / "out")], capture_output=True,
                            text=True, cwd=REPO_ROOT, timeout=120)
    assert graded.returncode == 2, graded.stdout + graded.stderr
    assert "requires sandbox layers" in graded.stderr
    assert not list((tmp_path / "out").glob("results/*.json"))  # nobody was graded

    info = subprocess.run([sys.executable, "-m", "grader", "sandbox", "--rubric", str(rubric),
                           "--format", "json"], capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=120)
    assert info.returncode == 2
    described = json.loads(info.stdout)
    assert list(described["missing_required"]) == [_never_here()]
    assert "limits" in described["layers"]


def test_every_report_names_the_sandbox_it_was_graded_in(fast_rubric, tmp_path, layers):
    submission = tmp_path / "honest.py"
    submission.write_text(SOLUTIONS.read_text())
    report = grade(submission, rubric=fast_rubric, steps=["softmax_naive"])
    assert set(report.sandbox["layers"]) == layers
    assert report.sandbox["layers"][0] == "limits"
    from grader.report import render_text

    assert "Sandbox: limits" in render_text(report)


def _shmem_kib() -> int:
    """The host's shared memory (tmpfs, SysV segments, memfds) in KiB, from /proc/meminfo."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Shmem:"):
            return int(line.split()[1])
    raise AssertionError("no Shmem line in /proc/meminfo")


def _settled_shmem_kib(seconds: float = 10) -> int:
    """Shmem once it stops falling: the kernel frees an ended worker's namespace a moment later."""
    now = _shmem_kib()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now, before = _shmem_kib(), now
        if now > before - 16 * 1024:
            break
    return now


class _PeakShmem:
    """Samples the host's Shmem in a thread while the block runs; `growth_mb` is its peak over
    what it was before."""

    def __enter__(self):
        import threading

        self.before = self.peak = _settled_shmem_kib()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while not self.stop.wait(0.02):
            self.peak = max(self.peak, _shmem_kib())

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, _shmem_kib())

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.before) / 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/meminfo is Linux's")
@pytest.mark.parametrize("name, needs", [
    ("hoards_detached_sysv_shared_memory", ("ipc",)),
    ("hoards_unmapped_memfds_and_tmpfs_files", ("mount", "seccomp")),
])
def test_memory_no_process_maps_stays_within_memory_mb(name, needs, fast_rubric, tmp_path, layers):
    """Shared memory that no process maps is outside the address-space limit: the worker's
    namespaces bound it, so the host's Shmem grows by less than the rubric's memory_mb."""
    lacking = [layer for layer in needs if layer not in layers]
    if lacking:
        sandbox_skip(f"this machine's sandbox lacks {', '.join(lacking)} (`attention-grader sandbox`)")
    data = yaml.safe_load(fast_rubric.read_text())
    data["defaults"]["step_timeout"] = 60  # writing 3 GiB takes seconds on a busy machine
    rubric = tmp_path / "config.yaml"
    rubric.write_text(yaml.safe_dump(data, sort_keys=False))
    path = build(Hostile(name, {}), tmp_path, "0")
    with _PeakShmem() as shmem:
        report = grade(path, rubric=rubric, steps=["softmax_naive"])
    assert statuses(report) == {"softmax_naive": "passed"}, report.steps[0].feedback
    memory_mb = data["defaults"]["memory_mb"]
    assert shmem.growth_mb < memory_mb, f"host Shmem grew by {shmem.growth_mb:.0f} MB"
