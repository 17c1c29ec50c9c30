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

`gradescope-run` finds the student's notebook or .py file in the submission folder (attention.ipynb
or attention.py, at any depth, else the only notebook, else the only .py file), grades it with the
whole rubric and writes results.json (see grader/report/gradescope.py; every step is one test,
visible at once). The root folder is `$AUTOGRADER_ROOT` (default /autograder), so that a test can
lay out a fake one. If the grader itself cannot run (exit 2), no results.json is written: Gradescope
then shows the run as an autograder failure the staff can look into and rerun, rather than a score
the student did not earn.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
import traceback
import zipfile
from pathlib import Path, PurePosixPath

from .choose import choose
from .engine import grade
from .errors import GraderError, UsageError
from .paths import course_root
from .report.gradescope import results
from .report.text import render_text
from .rubric import load_rubric

PACKAGE = Path(__file__).resolve().parent
PROJECT = course_root()  # the checkout, or the course packed into an installed grader

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


def archive_files(rubric_path: str | Path = PROJECT / "config.yaml") -> dict[str, Path | str]:
    """What goes into the archive: its path there -> a file to copy, or the text itself."""
    rubric = load_rubric(rubric_path)  # refuse an invalid rubric now, not on Gradescope
    rubric_file = Path(rubric_path).resolve()
    base = rubric_file.parent
    files: dict[str, Path | str] = {
        "setup.sh": SETUP_SH,
        "run_autograder": RUN_AUTOGRADER % {"rubric": rubric_file.name},
        "pyproject.toml": PROJECT / "pyproject.toml",
        "README.md": PROJECT / "README.md",
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
    return files


def build_archive(out: str | Path, rubric_path: str | Path = PROJECT / "config.yaml") -> Path:
    out = Path(out)
    files = archive_files(rubric_path)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, source in files.items():
            info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            executable = name in ("setup.sh", "run_autograder")
            info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
            data = source.encode() if isinstance(source, str) else source.read_bytes()
            archive.writestr(info, data)
    return out


def build_archive_command(out: str, rubric_path: str) -> int:
    try:
        path = build_archive(out, rubric_path)
    except GraderError as exc:
        print(f"attention-grader: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"attention-grader: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"{path}: the autograder archive. On Gradescope: a Programming Assignment, "
          "Configure Autograder, Zip file upload; students submit attention.ipynb (or attention.py).")
    return 0


def find_submission(folder: str | Path) -> tuple[Path | None, str]:
    """The file to grade in Gradescope's submission folder, or None and what to tell the student
    (the rule of `grader.choose`, the same as `grade`'s)."""
    folder = Path(folder)
    files = [(p.relative_to(folder).as_posix(), (), p) for p in sorted(folder.rglob("*"))
             if p.is_file() or p.is_symlink()]
    choice = choose(files)
    if choice.chosen is None:
        return None, f"Your submission has {choice.problem}, and submit again."
    return choice.chosen, ""


def autograder_root() -> Path:
    return Path(os.environ.get("AUTOGRADER_ROOT") or "/autograder")


def run_command(submission_dir: str | None, results_file: str | None, rubric_path: str) -> int:
    root = autograder_root()
    folder = Path(submission_dir) if submission_dir else root / "submission"
    target = Path(results_file) if results_file else root / "results" / "results.json"
    path, problem = find_submission(folder)
    if path is None:
        print(problem)
        _write(target, {"score": 0.0, "output": problem, "visibility": "visible", "tests": []})
        return 0
    try:
        report = grade(path, rubric=rubric_path)
    except GraderError as exc:
        print(f"attention-grader: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception:  # the grader's own failure: never the student's score
        traceback.print_exc()
        print("attention-grader: internal error: the grader failed (not the submission).",
              file=sys.stderr)
        return 2
    sys.stdout.write(render_text(report))  # the autograder log, for the staff
    _write(target, results(report))
    return 0


def _write(target: Path, data: dict) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


__all__ = ["archive_files", "build_archive", "find_submission", "run_command"]
