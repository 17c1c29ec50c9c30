"""The chapter-4 course's own checks (see grader/course.py): judged in the grader's process, on the
plain outputs the worker sent back, with the built-in checks' layers and evidence rule."""

import torch
from grader.course import CheckFailed, CheckNotJudged, check, expected_and_obtained


@check("normalized", kinds=("class",), evidence="output", after=("shape",),
       summary="each row of the output has mean 0 and variance 1")
def normalized(step, rubric_check, outcomes):
    """Rows of mean 0 and (biased) variance 1, where the reference's are (scale 1, shift 0)."""
    tolerance = rubric_check.tolerance or 1e-4
    judged = False
    for outcome in outcomes:
        for label, expected, obtained in expected_and_obtained(step, outcome):
            want_var = expected.double().var(dim=-1, unbiased=False)
            if not torch.allclose(want_var, torch.ones_like(want_var), atol=1e-3):
                continue  # scaled and shifted: nothing to ask of the statistics here
            judged = True
            mean = obtained.double().mean(dim=-1)
            var = obtained.double().var(dim=-1, unbiased=False)
            if (mean.abs() > tolerance).any():
                raise CheckFailed(f"{outcome.title}: the rows of {label} have means up to "
                                  f"{mean.abs().max().item():.3g}; a normalised row has mean 0")
            if ((var - 1).abs() > tolerance * 10).any():
                worst = var.flatten()[(var - 1).abs().argmax()].item()
                raise CheckFailed(f"{outcome.title}: a row of {label} has variance {worst:.4g}; a "
                                  "normalised row has variance 1 (the biased variance, divided by n)")
    if not judged:
        raise CheckNotJudged("no case of this check has a scale of 1 and a shift of 0")
    return "every row has mean 0 and variance 1"
