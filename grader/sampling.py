"""The goodness-of-fit test behind the `samples_match` check, in the grader's process.

A sampler (`generate` with temperature and top-k, anything drawing with torch.multinomial or
torch.distributions.Categorical) is called `draws:` times on one case, on both sides: the student's
in the worker under the case's seed, the reference here under a seed of its own
(`REFERENCE_SEED_OFFSET` added), so that a correct sampler's draws are not the reference's. Each
call's output (every token id it drew, as one tuple) is a category; the two samples are compared by
Pearson's chi-square test of homogeneity, cells whose expected count is under `MIN_EXPECTED` pooled
into one; a call that draws several ids is also tested position by position (`compare_draws`). A
sampler drawing from the reference's distribution fails with probability at most `ALPHA` (the
false-fail rate, stated in the check's messages); one drawing from another distribution fails with
a probability that grows with the number of draws and the distance between the distributions.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass

import torch

ALPHA = 1e-4  # the false-fail rate: a sampler from the right distribution fails this often
MIN_EXPECTED = 5.0  # a cell expected to hold fewer draws (on either side) is pooled
REFERENCE_SEED_OFFSET = 1_000_003  # the reference draws under the case's seed plus this


@dataclass(frozen=True)
class Fit:
    """A chi-square test of two samples of draws."""

    statistic: float
    df: int
    p_value: float
    cells: int  # after pooling
    worst: tuple  # the category whose counts differ most (its draws, as a tuple of ids)
    obtained_count: int  # how often the student's sampler drew it
    expected_count: int  # how often the reference's did
    where: str = "each call's whole output"  # what the categories are
    tests: int = 1  # how many tests the p-value accounts for (Bonferroni)

    def rejected(self, alpha: float = ALPHA) -> bool:
        return self.p_value < alpha


def categories(draws: torch.Tensor) -> Counter:
    """How often each call's output (one row of the stacked draws, flattened) was drawn."""
    rows = draws.reshape(draws.shape[0], -1).tolist() if draws.dim() else [[draws.item()]]
    return Counter(tuple(row) for row in rows)


def chi_square_p(statistic: float, df: int) -> float:
    """P(X >= statistic) for X chi-square with `df` degrees of freedom (the regularised upper
    incomplete gamma function, in torch: no scipy)."""
    if df <= 0:
        return 1.0
    value = torch.special.gammaincc(torch.tensor(df / 2, dtype=torch.float64),
                                    torch.tensor(statistic / 2, dtype=torch.float64))
    return float(value)


def homogeneity(obtained: Counter, expected: Counter) -> Fit:
    """Pearson's chi-square test that two samples of categories come from one distribution."""
    n_obtained, n_expected = sum(obtained.values()), sum(expected.values())
    total = n_obtained + n_expected
    keys = sorted(set(obtained) | set(expected), key=lambda k: (-(obtained[k] + expected[k]), k))
    big, small = [], []
    for key in keys:
        smaller_side = min(n_obtained, n_expected) * (obtained[key] + expected[key]) / total
        (big if smaller_side >= MIN_EXPECTED else small).append(key)
    cells = [(obtained[k], expected[k]) for k in big]
    pooled = (sum(obtained[k] for k in small), sum(expected[k] for k in small))
    if small:
        if sum(pooled) * min(n_obtained, n_expected) / total >= MIN_EXPECTED or not cells:
            cells.append(pooled)
        else:  # too few even pooled: into the smallest cell kept
            a, b = cells.pop()
            cells.append((a + pooled[0], b + pooled[1]))
    statistic = 0.0
    for a, b in cells:
        for count, n in ((a, n_obtained), (b, n_expected)):
            mean = n * (a + b) / total
            statistic += (count - mean) ** 2 / mean if mean else 0.0
    df = len(cells) - 1
    worst = max(keys, key=lambda k: abs(obtained[k] / n_obtained - expected[k] / n_expected))
    return Fit(statistic, df, chi_square_p(statistic, df), len(cells), worst, obtained[worst],
               expected[worst])


def compare_draws(obtained: torch.Tensor, expected: torch.Tensor) -> Fit:
    """The tests of two stacked tensors of draws, one row per call: each call's whole output as
    one category and, where a call draws more than one id, each position's id on its own (a
    sequence's rare continuations, pooled, hide a wrong distribution its positions show). Each
    test at alpha / the number of tests (Bonferroni), so that a right sampler fails any of them
    with probability at most alpha: the fit of the smallest p-value, that p multiplied by the
    number of tests (at most 1)."""
    fits = [homogeneity(categories(obtained), categories(expected))]
    rows_obtained = obtained.reshape(obtained.shape[0], -1)
    rows_expected = expected.reshape(expected.shape[0], -1)
    if rows_obtained.shape[1] > 1:
        fits += [dataclasses.replace(
            homogeneity(Counter((v,) for v in rows_obtained[:, i].tolist()),
                        Counter((v,) for v in rows_expected[:, i].tolist())),
            where=f"the id at position {i} of each call's output (flattened)")
            for i in range(rows_obtained.shape[1])]
    worst = min(fits, key=lambda fit: fit.p_value)
    return dataclasses.replace(worst, p_value=min(1.0, worst.p_value * len(fits)), tests=len(fits))
