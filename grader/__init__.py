"""attention-grader: grades chapter 3 attention exercises step by step.

    from grader import grade
    report = grade("attention.ipynb")          # a Report: score, max_score, steps
"""

__version__ = "0.1.0"

from .engine import DEFAULT_RUBRIC, grade  # noqa: E402
from .errors import GraderError, InternalError, RubricError, UsageError  # noqa: E402
from .models import CheckResult, Report, StepResult  # noqa: E402
from .rubric import Rubric, load_rubric  # noqa: E402

__all__ = [
    "DEFAULT_RUBRIC",
    "CheckResult",
    "GraderError",
    "InternalError",
    "Report",
    "Rubric",
    "RubricError",
    "StepResult",
    "UsageError",
    "__version__",
    "grade",
    "load_rubric",
]
