"""How long does a cold `attention-grader check` take, and how much of it is importing torch?

    python benchmarks/check_time.py [--repeat N] [--warmup K] [--baseline REV]

Times, on this machine and in the same run, each in a fresh Python process every time:

  a. `python -c "import torch"`                                            (the floor)
  t. `python -c "import torch, os; os._exit(0)"`          (the same, without Python's teardown)
  b. `python -m grader check solutions/attention.py --format json`         (a .py submission)
  c. `python -m grader check examples/student_notebook.ipynb --format json` (a notebook)

and prints min / median / max wall time of each, median(b) - median(a), and the machine. With
`--baseline REV` it also times (d) the same check as (b) with the grader of git revision REV
(checked out in a temporary worktree), interleaved, to show what a change cost.
Stdlib only; the subprocesses use the same interpreter as this script (sys.executable) and run in
the repository root, found from this file's location.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (key, description, command after the interpreter, exit codes that mean "it worked", folder)
BENCHMARKS = [
    ("a", "import torch", ["-c", "import torch"], {0}, ROOT),
    # The grader's command ends with os._exit once its work is done (grader/cli.py `entry`), so it
    # does not pay Python's teardown of torch's modules that (a) pays: (t) shows what that is worth.
    ("t", "import torch, then os._exit(0)", ["-c", "import torch, os; os._exit(0)"], {0}, ROOT),
    ("b", "check solutions/attention.py",
     ["-m", "grader", "check", "solutions/attention.py", "--format", "json"], {0}, ROOT),
    # The example notebook has deliberate mistakes, so the grader exits 1 (some step did not pass).
    ("c", "check examples/student_notebook.ipynb",
     ["-m", "grader", "check", "examples/student_notebook.ipynb", "--format", "json"], {1}, ROOT),
]


def run_once(args: list[str], ok_codes: set[int], cwd: Path) -> float:
    """Wall time of one fresh process running `sys.executable *args` in `cwd`."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=cwd, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode not in ok_codes:
        tail = (done.stderr or done.stdout).strip()[-2000:]
        raise SystemExit(f"`{' '.join(args)}` exited {done.returncode} (expected "
                         f"{' or '.join(map(str, sorted(ok_codes)))}):\n{tail}")
    return elapsed


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def processor_name() -> str:
    """The CPU model: /proc/cpuinfo on Linux (where platform.processor() is often empty)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_lines() -> list[str]:
    return [
        f"platform: {platform.platform()} ({platform.machine()})",
        f"processor: {processor_name()}",
        f"CPUs: {os.cpu_count()} (usable by this process: {len(os.sched_getaffinity(0))})"
        if hasattr(os, "sched_getaffinity") else f"CPUs: {os.cpu_count()}",
        f"python: {platform.python_version()} ({platform.python_implementation()}) "
        f"at {sys.executable}",
        f"torch: {package_version('torch')}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5,
                        help="timed runs of each benchmark (default: 5)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed runs of each benchmark first, to warm the file cache "
                        "(default: 1)")
    parser.add_argument("--baseline", metavar="REV",
                        help="also time the check with the grader of this git revision")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0:
        parser.error("--repeat must be at least 1 and --warmup at least 0")
    if args.baseline:
        with tempfile.TemporaryDirectory(prefix="check-time-baseline-") as folder:
            worktree = Path(folder) / "baseline"
            subprocess.run(["git", "worktree", "add", "--detach", "-q", str(worktree), args.baseline],
                           cwd=ROOT, check=True)
            try:
                BENCHMARKS.append(("d", f"check solutions/attention.py at {args.baseline}",
                                   BENCHMARKS[1][2], {0}, worktree))
                return measure(args)
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT,
                               check=False)
    return measure(args)


def measure(args) -> int:
    print("machine")
    for line in machine_lines():
        print(f"  {line}")
    print(f"\nrepository: {ROOT}")
    print(f"{args.repeat} timed run(s) of each, after {args.warmup} untimed warm-up run(s); "
          "every run is a fresh process\n")

    for _ in range(args.warmup):
        for _key, _label, command, ok_codes, cwd in BENCHMARKS:
            run_once(command, ok_codes, cwd)

    # Round-robin (a, b, c, a, b, c, ...) so that a slow patch of the machine hits all of them.
    times: dict[str, list[float]] = {key: [] for key, *_ in BENCHMARKS}
    for _ in range(args.repeat):
        for key, _label, command, ok_codes, cwd in BENCHMARKS:
            times[key].append(run_once(command, ok_codes, cwd))

    width = max(len(label) for _, label, *_ in BENCHMARKS) + 4
    print(f"{'benchmark':<{width}} {'min':>8} {'median':>8} {'max':>8}")
    print("-" * (width + 27))
    for key, label, *_ in BENCHMARKS:
        values = times[key]
        print(f"{key}. {label:<{width - 3}} {min(values):>7.2f}s {statistics.median(values):>7.2f}s "
              f"{max(values):>7.2f}s")
    overhead = statistics.median(times["b"]) - statistics.median(times["a"])
    print(f"\nmedian(b) - median(a) = {overhead:.2f}s  "
          "(cold grading of the .py solutions beyond one `import torch`)")
    teardown = statistics.median(times["a"]) - statistics.median(times["t"])
    print(f"median(a) - median(t) = {teardown:.2f}s  (Python's teardown of torch, which the grader skips)")
    if "d" in times:
        change = statistics.median(times["b"]) - statistics.median(times["d"])
        print(f"median(b) - median(d) = {change:+.2f}s  (this tree against {args.baseline})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
