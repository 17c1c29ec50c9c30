"""attention-grader: grades chapter 3 attention exercises step by step.

    from grader import grade
    report = grade("attention.ipynb")          # a Report: score, max_score, steps

    from grader import check                   # inside a notebook: grade the cells run so far
    check("causal_attention_weights")
"""

__version__ = "0.1.0"

from .engine import grade  # noqa: E402
from .errors import GraderError, InternalError, RubricError, UsageError  # noqa: E402
from .models import CheckResult, Report, StepResult  # noqa: E402
from .notebook import check  # noqa: E402
from .paths import find_rubric  # noqa: E402
from .rubric import Rubric, load_rubric  # noqa: E402

__all__ = [
    "CheckResult",
    "GraderError",
    "InternalError",
    "Report",
    "Rubric",
    "RubricError",
    "StepResult",
    "UsageError",
    "__version__",
    "check",
    "find_rubric",
    "grade",
    "load_rubric",
]
