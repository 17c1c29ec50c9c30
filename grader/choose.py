"""Which file of a submission is graded: one rule for `grade` (folders and zips) and `gradescope-run`.

A submission is what one student handed in at one time (an LMS export holds each student's latest
attempt). Of its files, the grader takes:

1. the exercise's own file, named by the rubric's `course.exercise` (`Rubric.exercise`; chapter 3:
   `attention.ipynb`, then `attention.py`; a name an LMS gave a repeated upload, `attention-1.ipynb`,
   counts as the exercise's own; the newest such copy wins);
2. else the only notebook;
3. else the only `.py` file.

Several notebooks (or several `.py` files and no notebook), none of them named for the exercise:
none is graded, and the student is told which files were found and what to rename. Files in
`.ipynb_checkpoints`, `__pycache__`, `__MACOSX` or hidden folders never count. Whatever was not
graded is named in the student's report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Generic, TypeVar

EXERCISE = "attention"  # only where no rubric is at hand; callers pass the rubric's `exercise`
SUFFIXES = (".ipynb", ".py")
IGNORED_PARTS = (".ipynb_checkpoints", "__pycache__", "__MACOSX")
LMS_COPY = re.compile(r"-\d+$")  # Canvas renames a repeated upload attention.ipynb -> attention-1.ipynb

T = TypeVar("T")


@dataclass(frozen=True)
class Choice(Generic[T]):
    chosen: T | None
    name: str  # the chosen file's name within the submission ("" when none)
    problem: str  # why none was chosen, for the student ("" when one was)
    not_graded: tuple[str, ...]  # the other files, by name


def counts(name: str) -> bool:
    """Whether a file (by its path within the submission) can be the one graded."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return (bool(parts) and PurePosixPath(parts[-1]).suffix.lower() in SUFFIXES
            and not any(p in IGNORED_PARTS or p.startswith(".") for p in parts))


def choose(files: list[tuple[str, tuple, T]], exercise: str = EXERCISE) -> Choice[T]:
    """`files`: (name within the submission, version (larger is newer), handle) for each file.
    Returns the handle of the file to grade, or None and the reason."""
    files = [f for f in files if counts(f[0])]
    if not files:
        return Choice(None, "", f"no notebook (.ipynb) or .py file: hand in {exercise}.ipynb "
                      f"(or {exercise}.py)", ())

    def stem(name: str) -> str:
        return LMS_COPY.sub("", PurePosixPath(name).stem).lower()

    def suffix(name: str) -> str:
        return PurePosixPath(name).suffix.lower()

    ranked: list[tuple[str, tuple, T]] = []
    for wanted in (".ipynb", ".py"):
        ranked = [f for f in files if stem(f[0]) == exercise.lower() and suffix(f[0]) == wanted]
        if ranked:
            break
    if not ranked:
        for wanted in (".ipynb", ".py"):
            of_kind = [f for f in files if suffix(f[0]) == wanted]
            if len(of_kind) == 1:
                ranked = of_kind
                break
            if of_kind:
                listed = ", ".join(sorted(f[0] for f in of_kind))
                return Choice(None, "", f"several {wanted} files ({listed}) and none is named "
                              f"{exercise}{wanted}: rename the one to grade to {exercise}{wanted}",
                              tuple(sorted(f[0] for f in files)))
    name, _, chosen = max(ranked, key=lambda f: (f[1], -len(f[0])))
    return Choice(chosen, name, "", tuple(sorted(f[0] for f in files if f[2] is not chosen)))
