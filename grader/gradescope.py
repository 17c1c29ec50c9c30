"""Gradescope: build the autograder archive, and grade one submission inside Gradescope.

    attention-grader gradescope --out autograder.zip [--rubric config.yaml]

Gradescope unzips the archive into /autograder/source, runs `setup.sh` there once to build the
image, then, for every submission, copies `run_autograder` to /autograder/run_autograder and runs
it with the student's files in /autograder/submission; it reads /autograder/results/results.json.
So the archive's root holds:

    setup.sh         installs python3 and a virtual environment with torch and the grader
    run_autograder   runs `python -m grader gradescope-run` with this folder first on PYTHONPATH
    grader/          the grader package
    pyproject.toml   (and README.md) so that setup.sh can install the grader's dependencies
    config.yaml      the rubric (or the one given with --rubric, under its own name)
    solutions/       the reference solutions and known mistakes the rubric names

The reference solutions are in the archive: it runs on the course's side, students never see it.

`gradescope-run` finds the student's notebook or .py file in the submission folder (the exercise's
own, named by the rubric's `course.exercise`: attention.ipynb or attention.py for chapter 3, at any
depth; else the only notebook, else the only .py file), grades it with the
whole rubric and writes results.json (see grader/report/gradescope.py; every step is one test,
visible at once). The root folder is `$AUTOGRADER_ROOT` (default /autograder), so that a test can
lay out a fake one.

results.json is written in every outcome, as Gradescope asks. When the grader itself cannot grade
(a broken archive, a rubric error, a bug), the student sees that the submission could not be graded
and that it is not their fault; the reason and the traceback go in a test only the staff see
(`visibility: hidden`) and in the log; the exit status is 2, and the staff regrade once it is fixed.

Memory: Gradescope's default container has 768 MB, and the rubric's default `memory_mb` (2048, address
space) would let one submission take the container down with the grader. So the worker's limit is
lowered at run time to what the container leaves beside the grader (768 MB there: see fit_memory),
and the log says so; where even torch would not fit, the submission is not graded, with the reason
for the staff (give the autograder more memory in the assignment's settings).
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import sys
import time
import traceback
import zipfile
from pathlib import Path, PurePosixPath

from .bundle import pyproject_text
from .choose import EXERCISE, choose
from .engine import grade
from .errors import GraderError, UsageError
from .paths import find_rubric
from .report.gradescope import results
from .report.text import render_text
from .rubric import Rubric, load_rubric
from .safe_text import terminal

PACKAGE = Path(__file__).resolve().parent
MEMORY_ENVIRONMENT = "AUTOGRADER_MEMORY_MB"  # the container's memory, where it cannot be read
# The worker's limit is address space; the container's is resident memory. Measured on Linux x86-64
# with torch 2.13 (benchmarks/ is not needed for these: /proc/self/status after `import torch`):
GRADER_RESIDENT_MB = 300  # the grader's own process with torch and the reference loaded (265 MB)
WORKER_UNRESIDENT_MB = 400  # what torch maps in the worker but does not touch (VmSize 623, VmRSS 218)
MARGIN_MB = 100
WORKER_FLOOR_MB = 700  # the address space the worker needs to import torch and grade

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, in /autograder/source, to build the autograder's image.
set -euxo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends python3 python3-pip python3-venv
# A virtual environment: newer base images refuse `pip install` into the system Python.
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --quiet --upgrade pip
# torch is pinned, and taken from PyTorch's CPU-only index: from PyPI, Linux gets the CUDA build
# (several GB of wheels, useless here: Gradescope's containers have no GPU).
/autograder/venv/bin/pip install --quiet torch==2.13.0 \
    --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple
# The grader's other dependencies (numpy, nbformat, nbconvert, pyyaml) from this folder.
/autograder/venv/bin/pip install --quiet -e .
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission. It grades the student's notebook or .py file in
# $ROOT/submission with the rubric in $ROOT/source and writes $ROOT/results/results.json.
# AUTOGRADER_ROOT and PYTHON are there for testing the archive outside Gradescope.
set -uo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
export PYTHONPATH="$ROOT/source${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-$ROOT/venv/bin/python3}" -m grader gradescope-run \\
    --submission-dir "$ROOT/submission" --results "$ROOT/results/results.json" \\
    --rubric "$ROOT/source/%(rubric)s"
"""


def archive_files(rubric_path: str | Path | None = None) -> dict[str, Path | str]:
    """What goes into the archive: its path there -> a file to copy, or the text itself."""
    rubric_path = find_rubric(rubric_path)
    rubric = load_rubric(rubric_path)  # refuse an invalid rubric now, not on Gradescope
    if rubric.reference is None:
        raise UsageError(f"{rubric_path} is a student bundle's rubric (the visible cases' answers, no "
                         "reference solutions): an archive built from it could not grade the hidden "
                         "cases. Build the archive from the course's rubric, with --rubric")
    rubric_file = Path(rubric_path).resolve()
    base = rubric_file.parent
    files: dict[str, Path | str] = {
        "setup.sh": SETUP_SH,
        "run_autograder": RUN_AUTOGRADER % {"rubric": rubric_file.name},
        "pyproject.toml": pyproject_text(f"{rubric.course_name[:1].upper()}{rubric.course_name[1:]}: "
                                         "the grader, for Gradescope."),
        rubric_file.name: rubric_file,
    }
    for path in sorted(PACKAGE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".typed") \
                and path.relative_to(PACKAGE).parts[0] != "course":
            files[PurePosixPath("grader", *path.relative_to(PACKAGE).parts).as_posix()] = path
    # The reference solutions and the known mistakes, with the .py files beside them (one may
    # import the other), at the same place relative to the rubric as in the course's folder.
    for named in (rubric.reference, rubric.mistakes):
        if named is None:
            continue
        folder = Path(named).resolve().parent
        try:
            where = folder.relative_to(base)
        except ValueError:
            raise UsageError(f"{named} is not in the rubric's folder {base} or below it; keep the "
                             "reference solutions beside the rubric to build the archive") from None
        if where.parts[:1] == ("grader",) or str(where) == ".":
            raise UsageError(f"{named}: put the reference solutions in a folder of their own (e.g. "
                             "solutions/) beside the rubric, not beside it or in grader/")
        for path in sorted(folder.glob("*.py")):
            files[PurePosixPath(*where.parts, path.name).as_posix()] = path
    # The course's own checks and fixtures, which its rubric names relative to itself.
    for named in (rubric.course_checks, *fixture_files(rubric, base)):
        if named is None:
            continue
        try:
            where = Path(named).resolve().relative_to(base)
        except ValueError:
            raise UsageError(f"{named} is not in the rubric's folder {base} or below it; keep the "
                             "course's files beside the rubric to build the archive") from None
        files[where.as_posix()] = Path(named).resolve()
    return files


def fixture_files(rubric, base: Path) -> list[Path]:
    """The fixture files the rubric's cases name (`{fixture: FILE.py:CLASS}`)."""
    found: set[Path] = set()

    def walk(spec) -> None:
        if isinstance(spec, dict):
            if isinstance(spec.get("fixture"), str) and ":" in spec["fixture"]:
                found.add(base / spec["fixture"].split(":")[0])
            for value in spec.values():
                walk(value)
        elif isinstance(spec, list):
            for value in spec:
                walk(value)

    for step in rubric.steps:
        for case in step.cases:
            walk(case.args)
            walk(case.let)
    return sorted(found)


def build_archive(out: str | Path, rubric_path: str | Path | None = None) -> Path:
    out = Path(out)
    files = archive_files(rubric_path)  # everything is checked before the archive is opened
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, source in files.items():
            info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            executable = name in ("setup.sh", "run_autograder")
            info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
            data = source.encode() if isinstance(source, str) else source.read_bytes()
            archive.writestr(info, data)
    return out


def build_archive_command(out: str, rubric_path: str | None) -> int:
    try:
        path = build_archive(out, rubric_path)
        exercise = load_rubric(find_rubric(rubric_path)).exercise
    except GraderError as exc:
        print(f"attention-grader: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"attention-grader: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"{path}: the autograder archive. On Gradescope: a Programming Assignment, "
          f"Configure Autograder, Zip file upload; students submit {exercise}.ipynb (or {exercise}.py).")
    return 0


def find_submission(folder: str | Path, exercise: str = EXERCISE) -> tuple[Path | None, str]:
    """The file to grade in Gradescope's submission folder, or None and what to tell the student
    (the rule of `grader.choose`, the same as `grade`'s; `exercise`: the rubric's exercise stem)."""
    folder = Path(folder)
    files = [(p.relative_to(folder).as_posix(), (), p) for p in sorted(folder.rglob("*"))
             if p.is_file() or p.is_symlink()]
    choice = choose(files, exercise)
    if choice.chosen is None:  # the problem names the student's files: text for a log and a page
        return None, terminal(f"Your submission has {choice.problem}, and submit again.")
    return choice.chosen, ""


def autograder_root() -> Path:
    return Path(os.environ.get("AUTOGRADER_ROOT") or "/autograder")


def run_command(submission_dir: str | None, results_file: str | None, rubric_path: str | None) -> int:
    root = autograder_root()
    folder = Path(submission_dir) if submission_dir else root / "submission"
    target = Path(results_file) if results_file else root / "results" / "results.json"
    try:
        rubric = load_rubric(find_rubric(rubric_path))
        rubric, memory_note = fit_memory(rubric, container_memory_mb())
    except GraderError as exc:
        return _cannot_grade(target, f"attention-grader: error: {exc}", exc.exit_code)
    if memory_note:
        print(f"attention-grader: {memory_note}")
    path, problem = find_submission(folder, rubric.exercise)
    if path is None:
        print(problem)
        _write(target, {"score": 0.0, "output": problem, "visibility": "visible", "tests": []})
        return 0
    try:
        report = grade(path, rubric=rubric)
    except GraderError as exc:
        return _cannot_grade(target, f"attention-grader: error: {exc}", exc.exit_code)
    except Exception:  # the grader's own failure: never the student's score
        return _cannot_grade(target, "attention-grader: internal error: the grader failed (not the "
                             "submission).\n" + traceback.format_exc(), 2)
    sys.stdout.write(render_text(report))  # the autograder log, for the staff
    _write(target, results(report))
    return 0


def _cannot_grade(target: Path, reason: str, exit_code: int) -> int:
    """results.json when the grader itself fails: a visible 'not graded, not your fault', and the
    reason in a test that only the staff see."""
    reason = terminal(reason, None)  # it may name the student's files, or quote what they raised
    print(reason, file=sys.stderr)
    _write(target, {
        "score": 0.0,
        "output": ("Your submission could not be graded: the autograder itself failed, not your "
                   "work. The course staff can see why; they will fix it and regrade. You do not "
                   "need to submit again."),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [{"name": "Autograder failure (staff only)", "score": 0.0, "max_score": 0.0,
                   "status": "failed", "output": reason, "visibility": "hidden"}],
        "extra_data": {"grader_failed": True, "exit_code": exit_code},
    })
    return exit_code


def container_memory_mb() -> int | None:
    """The memory this container may use, in MB: $AUTOGRADER_MEMORY_MB, else the cgroup's limit
    (v2, then v1), else the machine's; None when none can be read."""
    named = os.environ.get(MEMORY_ENVIRONMENT)
    if named:
        try:
            return int(named)
        except ValueError:
            raise UsageError(f"{MEMORY_ENVIRONMENT}={named!r} is not a number of MB") from None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # "max", or v1's huge "no limit"
            return int(text) // (1024 * 1024)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def fit_memory(rubric: Rubric, container_mb: int | None) -> tuple[Rubric, str]:
    """The rubric with its memory limits lowered to what the container leaves beside the grader,
    and a note for the log (empty when nothing changed). UsageError where torch would not fit."""
    if container_mb is None:
        return rubric, ""
    # what the worker may map so that its resident memory and the grader's fit in the container
    room = container_mb - GRADER_RESIDENT_MB - MARGIN_MB + WORKER_UNRESIDENT_MB
    if room < WORKER_FLOOR_MB:
        need = WORKER_FLOOR_MB + GRADER_RESIDENT_MB + MARGIN_MB - WORKER_UNRESIDENT_MB
        raise UsageError(f"this container has {container_mb} MB; the grader needs at least {need} MB "
                         "(itself and a worker with torch). Give the autograder more memory in the "
                         "assignment's Autograder Settings and regrade")
    if rubric.defaults.memory_mb <= room and all(step.memory_mb <= room for step in rubric.steps):
        return rubric, ""
    steps = tuple(dataclasses.replace(step, memory_mb=min(step.memory_mb, room)) for step in rubric.steps)
    defaults = dataclasses.replace(rubric.defaults, memory_mb=min(rubric.defaults.memory_mb, room))
    return (dataclasses.replace(rubric, defaults=defaults, steps=steps),
            f"the worker's memory limit is {room} MB (the rubric says {rubric.defaults.memory_mb} MB; "
            f"so that the worker and the grader fit in this container's {container_mb} MB)")


def _write(target: Path, data: dict) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


__all__ = ["archive_files", "build_archive", "container_memory_mb", "find_submission", "fit_memory",
           "run_command"]
