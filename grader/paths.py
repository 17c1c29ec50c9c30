"""Where the course lives: the rubric, the reference solutions, the exercises.

From a checkout (an editable install, the tests) that is the checkout itself, the folder above
this package. From a wheel (`pip install .`, a wheel file) it is `grader/course/`, which setup.py
copies into the built package.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def course_root() -> Path:
    installed = PACKAGE / "course"
    if (installed / "config.yaml").is_file():
        return installed
    return PACKAGE.parent
