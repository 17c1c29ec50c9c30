"""Whose fault is it: the grader's exceptions.

    GraderError                 base class; never raised itself
    ├── UsageError              the command line was wrong (exit 2)
    ├── RubricError             the course's rubric is invalid: names the file and key path (exit 2)
    └── InternalError           the grader itself failed, e.g. a worker that could not start (exit 2)

The student's mistakes are never exceptions here: they become step results with a status
(`failed`, `error`, `timeout`, `missing`, `not_implemented`) in the report.
"""

from __future__ import annotations


class GraderError(Exception):
    """Something stopped the grader from grading; exit code 2."""

    exit_code = 2


class UsageError(GraderError):
    """The command line or the API was called wrongly."""


class RubricError(GraderError):
    """The rubric (config.yaml) is invalid; the message names the file and the key path."""

    def __init__(self, path: str, key_path: str, problem: str):
        self.path = path
        self.key_path = key_path
        self.problem = problem
        where = f"{path}: {key_path}" if key_path else path
        super().__init__(f"{where}: {problem}")


class InternalError(GraderError):
    """The grader's own machinery failed; never the student's fault, never scored as a zero."""
