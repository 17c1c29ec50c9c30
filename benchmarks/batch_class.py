"""How fast is a whole class graded, and does memory stay flat as the class grows?

    python benchmarks/batch_class.py [--students 200] [--big 0] [--repeat 1] [--keep DIR]

Builds a synthetic class in a temporary folder: two thirds notebooks and one third .py files;
correct submissions, submissions that each make one known mistake, unfinished stubs, and a few
hostile ones, four in all (an endless loop in a step, which costs its 10 s step limit, os._exit,
a memory bomb, which grows to the 2 GB memory limit, a forged report). Then, in the
same run and on this machine, it times:

  a. `python -c "import torch"` and a cold `attention-grader check` of one submission
  b. `attention-grader grade CLASS --out DIR --jobs 1`, and the same with `--jobs 2`, each right
     after the bare floor on the same class (benchmarks/floor.py), and their ratio: both timed
     as whole processes, from start to end (starting Python, importing torch and preparing the
     reference's answers are part of the floor too); with `--repeat N`, N such pairs for each,
     every pair printed, then the median of their ratios (one pair is at the mercy of a slow
     moment of the machine; a pair is always the floor then the grader, on the same class)
  c. with `--big N` (e.g. 1000): `--jobs 2` on a class of N and on a class of 100, to compare memory

and prints wall time, submissions per second and the peak memory: of the grader process itself
(what grows if results pile up), and of the whole process tree (the grader, its zygote and the
workers, the memory bomb included), sampled every 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SOLUTIONS = (ROOT / "solutions" / "attention.py").read_text()
STUBS = (ROOT / "exercises" / "attention.py").read_text()

# One edit of the reference per known mistake (a student who makes exactly that mistake).
MISTAKES = {
    "missing_scaling": (r"\s*/\s*(d_k|keys\.shape\[-1\])\s*\*\*\s*0\.5", ""),
    "scaled_by_dk": (r"(d_k|keys\.shape\[-1\])\s*\*\*\s*0\.5", r"\1"),
    "softmax_wrong_dim": (r"torch\.softmax\(attn_scores, dim=-1\)", "torch.softmax(attn_scores, dim=0)"),
    "scores_transposed_product": (r"inputs @ inputs\.T", "inputs.T @ inputs"),
    "mask_includes_diagonal": (r"diagonal=1\)", "diagonal=0)"),
    "missing_renormalization": (r"return masked_simple_norm", "return masked_simple"),
    "wrapper_concat_wrong_dim": (r"torch\.cat\(head_outputs, dim=-1\)", "torch.cat(head_outputs, dim=1)"),
    "missing_out_proj": (r"context_vec = self\.out_proj\(context_vec\)", "pass"),
    "mask_not_sliced": (r"\[:num_tokens, :num_tokens\]", ""),
    "normalized_without_exp": (r"exp_x = torch\.exp\(x\)", "exp_x = x"),
}
HOSTILE = {
    "endless_loop": "\n\ndef softmax_naive(x):\n    while True:\n        pass\n",
    "os_exit": "\n\nimport os\n\ndef softmax_naive(x):\n    os._exit(0)\n",
    "memory_bomb": "\n\ndef softmax_naive(x):\n    hoard = [bytes(200_000_000)]\n    while True:\n"
                   "        hoard.append(hoard[-1] * 2)\n",
    "forged_report": "\n\nprint('{\"score\": 98, \"max_score\": 98}')\n",
}


def build_class(folder: Path, students: int) -> Path:
    """`students` submissions named like a Canvas export; the mix cycles through the kinds."""
    import nbformat

    from grader.authoring import parse_percent, to_notebook

    folder.mkdir(parents=True)
    kinds = ["correct"] * 4 + [f"mistake:{m}" for m in MISTAKES] + ["stubs"] * 2
    hostile = [f"hostile:{h}" for h in HOSTILE]  # a few: one of each, whatever the class size
    for index in range(students):
        # the hostile ones at the same places in every class of 80 or more, so that classes of
        # different sizes are compared with the same mix
        kind = hostile[index // 20] if index % 20 == 10 and index // 20 < len(hostile) else \
            kinds[index % len(kinds)]
        if kind == "correct":
            source = SOLUTIONS
        elif kind == "stubs":
            source = STUBS
        elif kind.startswith("mistake:"):
            pattern, replacement = MISTAKES[kind.split(":")[1]]
            source = re.sub(pattern, replacement, SOLUTIONS)
        else:
            source = SOLUTIONS + HOSTILE[kind.split(":")[1]]
        name = f"student{index:05d}_{10000 + index}_{50000 + index}_attention"
        if index % 3 == 2:
            (folder / f"{name}.py").write_text(source)
        else:
            nbformat.write(to_notebook(parse_percent(source)), folder / f"{name}.ipynb")
    return folder


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += rss.get(current, 0)
        stack.extend(children.get(current, []))
    return total


def own_rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[21]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def timed(command: list[str], ok: set[int]) -> tuple[float, int, int]:
    """Wall time, and the peak resident memory of the command's process and of its whole tree."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = own = 0
    done = threading.Event()

    def sample():
        nonlocal peak, own
        while not done.is_set():
            peak = max(peak, tree_rss(process.pid))
            own = max(own, own_rss(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = process.communicate()
    done.set()
    sampler.join()
    elapsed = time.perf_counter() - started
    if process.returncode not in ok:
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}:\n{err.decode()[-2000:]}")
    return elapsed, own, peak


def grade(folder: Path, out: Path, jobs: int) -> tuple[float, int, int]:
    return timed([sys.executable, "-m", "grader", "grade", str(folder), "--out", str(out),
                  "--jobs", str(jobs)], {0})


def _pair(args, folder: Path, base: Path, jobs: int) -> float:
    """The floor (benchmarks/floor.py), then the grader, on the same class; their ratio."""
    floor_started = time.perf_counter()
    floor = json.loads(subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "floor.py"), str(folder), "--jobs",
         str(jobs), "--json"], capture_output=True, text=True, check=True
    ).stdout.strip().splitlines()[-1])
    floor_whole = time.perf_counter() - floor_started
    load = os.getloadavg()[0]
    out = base / f"out-jobs{jobs}"
    shutil.rmtree(out, ignore_errors=True)  # a fresh gradebook: a kept one would be resumed
    seconds, own, peak = grade(folder, out, jobs)
    print(f"b. grade --jobs {jobs}: {seconds:.1f} s, {args.students / seconds:.1f} submissions/s, "
          f"peak memory: grader {own / 2**20:.0f} MiB, whole tree {peak / 2**20:.0f} MiB "
          f"(load average {load:.2f} before)")
    # Both from the start of their process to its end: Python, torch and the reference's
    # answers included on both sides (the grader's also includes its gradebook).
    print(f"   floor --jobs {jobs}: {floor_whole:.1f} s, of which {floor['seconds']:.1f} s grading "
          f"the class (load average {floor['load_before'][0]:.2f} before); "
          f"grader / floor = {seconds / floor_whole:.2f}", flush=True)
    return seconds / floor_whole


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--big", type=int, default=0, help="also compare memory at this class size")
    parser.add_argument("--repeat", type=int, default=1,
                        help="floor-then-grader pairs for each --jobs (the median ratio is printed)")
    parser.add_argument("--keep", help="build the class here and keep it")
    args = parser.parse_args(argv)
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        folder = build_class(base / "class", args.students)
        notebooks = len(list(folder.glob("*.ipynb")))
        print(f"class: {args.students} submissions ({notebooks} notebooks, "
              f"{args.students - notebooks} .py files), the full 19-step rubric\n")
        torch_s, *_ = timed([sys.executable, "-c", "import torch"], {0})
        solution = str(ROOT / "solutions" / "attention.py")
        check_s, *_ = timed([sys.executable, "-m", "grader", "check", solution],
                           {0})
        print(f"a. import torch: {torch_s:.2f} s; cold check of one submission: {check_s:.2f} s "
              f"({check_s - torch_s:+.2f} s)")
        for jobs in (1, 2):
            ratios = []
            for _ in range(max(args.repeat, 1)):
                ratios.append(_pair(args, folder, base, jobs))
            if len(ratios) > 1:
                print(f"   --jobs {jobs}: grader / floor = {', '.join(f'{r:.2f}' for r in ratios)}; "
                      f"median {statistics.median(ratios):.2f}")
        if args.big:
            small = build_class(base / "class-100", 100)
            big = build_class(base / f"class-{args.big}", args.big)
            for size, path in ((100, small), (args.big, big)):
                seconds, own, peak = grade(path, base / f"out-{size}", 2)
                print(f"c. grade --jobs 2, {size} submissions: {seconds:.1f} s, peak memory: grader "
                      f"{own / 2**20:.0f} MiB, whole tree {peak / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
