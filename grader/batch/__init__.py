"""Batch grading of a whole class: `attention-grader grade` and `attention-grader merge`."""

from .collect import collect
from .gradebook import Row, merge
from .run import grade_class

__all__ = ["Row", "collect", "grade_class", "merge"]
