"""Packs the course beside the grader in a wheel, so that an installed grader (a wheel, or
`pip install .`) finds its rubric, reference solutions and exercises without the checkout.

Everything else is in pyproject.toml. The course files (config.yaml, solutions/, exercises/, the
pyproject.toml and README.md that the Gradescope archive carries, and this file, which the student
bundle carries; in a bundle, expected.bin instead of solutions/) are copied into the built package
as `grader/course/`; `grader.paths.course_root()` finds them there, or in the checkout when the
grader runs from one (an editable install, the tests).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# what exists of these is packed: a course has solutions/, a student bundle expected.bin instead
COURSE = ("config.yaml", "solutions", "exercises", "expected.bin", "pyproject.toml", "README.md",
          "setup.py")


class BuildWithCourse(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout itself
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib, "grader", "course")
        target.mkdir(parents=True, exist_ok=True)
        for name in COURSE:
            source = root / name
            if source.is_dir():
                shutil.copytree(source, target / name, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif source.is_file():
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": BuildWithCourse})
