"""The bare floor of grading a class: what any grader must spend, with nothing of ours around it.

    python benchmarks/floor.py CLASS_FOLDER [--rubric config.yaml] [--jobs 1] [--json]

A parent imports torch once and prepares the rubric's cases with the grader's own code
(`grader.engine.prepare`: the very inputs, weights and reference answers a grading uses, so the
floor cannot drift from the grader). Then, for each submission (.py or .ipynb) in the folder, it
forks a child that executes the submission's code, calls every step on the grader's inputs (builds
the module, loads the weights by name, runs forward), and sends the outputs back as bytes
(`grader.wire`); the parent decodes them and compares each output with the reference's answer.
No sandbox, no checks beyond one comparison, no diagnosis, no reports: the floor.

A step runs under its rubric time limit (SIGALRM in the child), and the child under the rubric's
memory and CPU limits (RLIMIT_AS, RLIMIT_CPU), as in the grader: a memory bomb ends at its limit in
both, and neither pays for a hostile submission more than the other. A child still running past
the sum of the step limits is killed. Prints the submissions, the wall time, ms per submission
and the load average before and after (another process's load shows there).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _child(submission, prepared, limits: dict, write_fd: int) -> None:
    """Run one submission's code and steps; write one frame of outputs; never return."""
    import torch

    from grader import confine, shells, wire

    def ring(signum, frame):
        raise TimeoutError

    devnull = os.open(os.devnull, os.O_WRONLY)  # what the submissions print is not the floor's output
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)

    confine.set_limits(limits)  # the worker's own: RLIMIT_AS, RLIMIT_CPU, no core dumps
    signal.signal(signal.SIGALRM, ring)
    namespace: dict = {"__name__": submission.module_name}
    for chunk in submission.chunks:
        try:
            signal.setitimer(signal.ITIMER_REAL, 30)
            exec(compile(chunk.code, chunk.filename, "exec"), namespace)  # noqa: S102
        except BaseException:  # noqa: BLE001, S110 - a cell that fails: the next one still runs
            pass
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    results = []
    for step in prepared:
        request, outputs = step.request, []
        target = namespace.get(request["target"])
        signal.setitimer(signal.ITIMER_REAL, step.step.timeout)
        try:
            for case in request["cases"]:
                outputs.append(_run_case(torch, shells, target, request["kind"], case))
        except BaseException:  # noqa: BLE001 - raised, stopped or missing: nothing to send
            outputs = []
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        results.append(outputs)
    data = wire.encode({"results": results})
    view = memoryview(data)
    while view:
        view = view[os.write(write_fd, view):]
    os._exit(0)


def _run_case(torch, shells, target, kind: str, case: dict):
    torch.default_generator.manual_seed(case.get("seed", 0))  # as the grader's worker seeds
    if kind == "procedure":
        built = [shells.build_shell(s["class"], s["layout"]) for s in case["shells"]]
        target(*built)
        return [{n: p.detach().clone() for n, p in m.named_parameters()} for m in built]
    with torch.no_grad():
        if kind == "function":
            out = target(*case["args"])
            return out if isinstance(out, (torch.Tensor, tuple, int, float)) else None
        module = target(*case["args"])
        if not case.get("inputs"):
            return None
        params = dict(module.named_parameters())
        for name, value in (case.get("weights") or {}).items():
            if name in params and params[name].shape == value.shape:
                params[name].copy_(value)
        module.train(case.get("mode") == "train")
        return [module(x) for x in case["inputs"]]


def _compare(prepared, results) -> int:
    """How many case outputs match the reference's (the floor's one comparison per output)."""
    import torch

    from grader.checks import compare

    right = 0
    for step, outputs in zip(prepared, results):
        for expected, got in zip(step.expected, outputs):
            want = expected.output
            pairs = list(zip(want, got)) if isinstance(want, list) and isinstance(got, list) else \
                [(want, got)]
            for w, g in pairs:
                if isinstance(w, torch.Tensor) and isinstance(g, torch.Tensor) and \
                        w.shape == g.shape and not compare(w, g, step.step.atol, step.step.rtol):
                    right += 1
    return right


def run_floor(folder: Path, rubric_path: Path, jobs: int) -> dict:
    import torch

    from grader import wire
    from grader.engine import prepare
    from grader.rubric import load_rubric
    from grader.submission import UnreadableSubmission, read_submission

    torch.set_num_threads(1)  # as the grader's zygote: forking after an OpenMP pool can hang
    rubric = load_rubric(rubric_path)
    prepared, _ = prepare(rubric, list(rubric.steps))
    paths = sorted(p for p in folder.rglob("*") if p.suffix in (".py", ".ipynb") and p.is_file())
    limits = {"memory_mb": rubric.defaults.memory_mb, "cpu_seconds": rubric.defaults.cpu_seconds}
    limit = rubric.defaults.load_timeout + sum(p.step.timeout for p in prepared) + 5
    load_before = os.getloadavg()
    started = time.monotonic()
    queue, running, right, graded = list(paths), {}, 0, 0
    while queue or running:
        while queue and len(running) < jobs:
            path = queue.pop(0)
            try:
                submission = read_submission(path)
            except UnreadableSubmission:
                graded += 1
                continue
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                _child(submission, prepared, limits, write_fd)
            os.close(write_fd)
            running[read_fd] = (pid, bytearray(), time.monotonic() + limit)
        ready, _, _ = select.select(list(running), [], [], 0.5)
        for fd in ready:
            chunk = os.read(fd, 1 << 20)
            if chunk:
                running[fd][1].extend(chunk)
                continue
            pid, data, _ = running.pop(fd)
            os.close(fd)
            os.waitpid(pid, 0)
            graded += 1
            if data:
                right += _compare(prepared, wire.decode(bytes(data))["results"])
        for pid, _data, deadline in list(running.values()):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
    seconds = time.monotonic() - started
    return {"submissions": graded, "seconds": round(seconds, 3),
            "ms_per_submission": round(1000 * seconds / max(graded, 1), 1),
            "outputs_right": right, "jobs": jobs,
            "load_before": [round(v, 2) for v in load_before],
            "load_after": [round(v, 2) for v in os.getloadavg()]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--rubric", type=Path, default=ROOT / "config.yaml")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    result = run_floor(args.folder, args.rubric, args.jobs)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"floor: {result['submissions']} submissions in {result['seconds']:.2f} s "
              f"({result['ms_per_submission']:.1f} ms each, --jobs {args.jobs}); load average "
              f"{result['load_before'][0]:.2f} before, {result['load_after'][0]:.2f} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
