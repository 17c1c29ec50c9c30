"""The grader's one numeric comparison (grader.checks.compare): its fast arithmetic path must give
the same verdict as torch.isclose, NaN and infinities included."""

import math

import pytest
import torch

from grader.checks import compare

ATOL, RTOL = 1e-5, 1e-4


def isclose_verdict(expected, obtained) -> bool:
    return bool(torch.isclose(obtained.double(), expected.double(), rtol=RTOL, atol=ATOL,
                              equal_nan=True).all())


CASES = {
    "equal": ([1.0, -2.0, 3.0], [1.0, -2.0, 3.0]),
    "within atol": ([0.0, 1.0], [0.9e-5, 1.0]),
    "past atol": ([0.0, 1.0], [2e-5, 1.0]),
    "within rtol of a large value": ([1000.0], [1000.05]),
    "past rtol of a large value": ([1000.0], [1000.2]),
    "NaN in both at the same place": ([math.nan, 1.0], [math.nan, 1.0]),
    "NaN obtained only": ([0.5, 1.0], [math.nan, 1.0]),
    "NaN expected only": ([math.nan, 1.0], [0.5, 1.0]),
    "the same infinity": ([math.inf, -math.inf], [math.inf, -math.inf]),
    "opposite infinities": ([math.inf], [-math.inf]),
    "infinity for a number": ([1.0], [math.inf]),
    "a number for infinity": ([math.inf], [1.0]),
}


@pytest.mark.parametrize("name", CASES)
def test_compare_agrees_with_isclose(name):
    expected, obtained = (torch.tensor(v, dtype=torch.float32) for v in CASES[name])
    difference = compare(expected, obtained, ATOL, RTOL)
    assert (difference is None) == isclose_verdict(expected, obtained)
    if difference is not None:
        assert difference.mismatched >= 1 and "differs in" in difference.text(True)


def test_compare_on_random_tensors_near_the_tolerance():
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        expected = torch.randn(7, 5, generator=generator)
        noise = torch.randn(7, 5, generator=generator) * (ATOL + RTOL * expected.abs()) * 1.05
        obtained = expected + noise
        assert (compare(expected, obtained, ATOL, RTOL) is None) == isclose_verdict(expected, obtained)


def test_an_empty_output_matches_an_empty_one():
    assert compare(torch.zeros(0, 3), torch.zeros(0, 3), ATOL, RTOL) is None
