"""Where the course lives: which rubric (config.yaml) a command grades with when none is given.

The rule, first match wins:

1. the rubric given: `--rubric FILE`, `rubric=` in Python, `--attention-rubric` in pytest;
2. the file named by the environment variable ATTENTION_GRADER_RUBRIC;
3. `config.yaml` in the current folder or the nearest folder above it that has one, provided it is a
   grader rubric (a mapping with `steps:`; another tool's config.yaml is passed over);
4. the course this grader came with: a student bundle installed from its folder carries its
   rubric (and expected answers) as `grader/course/`; a grader run from a course checkout (an
   editable install, the tests) uses the checkout's config.yaml.

The instructor's grader installed from a wheel carries no course: the reference solutions never
ship in a package a student could install. Point it at the course folder (rules 1-3).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UsageError

PACKAGE = Path(__file__).resolve().parent
ENVIRONMENT = "ATTENTION_GRADER_RUBRIC"
NAME = "config.yaml"


def packed_course() -> Path | None:
    """The folder of the course this grader came with, or None (a wheel of the grader alone)."""
    for folder in (PACKAGE / "course", PACKAGE.parent):  # a bundle's packed course; a checkout
        if (folder / NAME).is_file() and ((folder / "solutions").is_dir()
                                          or (folder / "expected.bin").is_file()):
            return folder
    return None


def find_rubric(given: str | Path | None = None, *, start: str | Path | None = None) -> Path:
    """The rubric file by the rule above; UsageError naming the ways to give one when none is found."""
    if given is not None and str(given) != "":
        return Path(given)
    named = os.environ.get(ENVIRONMENT)
    if named:
        if not Path(named).is_file():
            raise UsageError(f"{ENVIRONMENT}={named}: no such file; set it to the course's "
                             f"{NAME}, or unset it")
        return Path(named)
    passed_over = []
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / NAME
        if candidate.is_file():
            if is_rubric(candidate):
                return candidate
            passed_over.append(str(candidate))
    course = packed_course()
    if course is not None:
        return course / NAME
    over = f" ({', '.join(passed_over)}: not a grader rubric, no `steps:`)" if passed_over else ""
    raise UsageError(f"no rubric found{over}: give the course's {NAME} with --rubric FILE (pytest: "
                     f"--attention-rubric), set {ENVIRONMENT}, or run from the course folder")


def is_rubric(path: Path) -> bool:
    import yaml

    from .rubric import read_yaml

    try:
        data = read_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return True  # it claims the name: let load_rubric say what is wrong with it
    return isinstance(data, dict) and "steps" in data

