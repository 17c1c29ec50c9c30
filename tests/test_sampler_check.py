"""A sampler is graded by what it draws from, not by its exact draws under the seed (issue 28,
item 10): a case with `draws: N` calls it N times, and `samples_match` compares the counts with
the reference's own draws under other seeds by a chi-square test whose false-fail rate is
grader.sampling.ALPHA. Graded with a small course written for this test."""

import dataclasses

import pytest
import torch
import yaml
from conftest import grade_many

from grader import load_rubric
from grader.cases import Preparer, load_reference, seed_cpu
from grader.checks import Outcome, run_checks
from grader.errors import RubricError
from grader.replies import Returned
from grader.sampling import ALPHA

REFERENCE = '''
import torch


def sample_next(logits, temperature=1.0, top_k=None):
    """One token id per row, drawn from the softmax of the top-k logits over the temperature."""
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = torch.where(logits < kth, torch.tensor(float("-inf")), logits)
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, num_samples=1)
'''

CATEGORICAL = REFERENCE.replace("    return torch.multinomial(probs, num_samples=1)",
                                "    return torch.distributions.Categorical(probs=probs).sample()"
                                ".unsqueeze(-1)")
TEMPERATURE_AFTER_SOFTMAX = REFERENCE.replace("torch.softmax(logits / temperature, dim=-1)",
                                              "torch.softmax(logits, dim=-1) / temperature")
TOP_K_PLUS_ONE = REFERENCE.replace("torch.topk(logits, top_k, dim=-1)",
                                   "torch.topk(logits, top_k + 1, dim=-1)")
INVERSE_CDF = REFERENCE.replace(  # the right distribution, drawn from torch.rand: other draws
    "    return torch.multinomial(probs, num_samples=1)",
    "    u = torch.rand(probs.shape[:-1] + (1,))\n"
    "    return (probs.cumsum(-1) < u).sum(-1, keepdim=True).clamp(max=probs.shape[-1] - 1)")
ARGMAX = REFERENCE.replace("torch.multinomial(probs, num_samples=1)",
                           "torch.argmax(probs, dim=-1, keepdim=True)")

LOGITS = [[1.5, 1.2, 0.9, 0.6, 0.4, -0.5]]
TEMPERATURE, TOP_K, DRAWS = 0.5, 4, 2000


WRONG = {"temperature_after_softmax": TEMPERATURE_AFTER_SOFTMAX, "top_k_plus_one": TOP_K_PLUS_ONE,
         "argmax": ARGMAX}


def mistakes_file() -> str:
    """The known mistakes, each the wrong sampler of that name (grader/diagnose.py's format)."""
    parts = ["from types import SimpleNamespace\n"]
    for name, source in WRONG.items():
        parts.append(source.replace("def sample_next(", f"def {name}("))
    parts.append("MISTAKES = {name: SimpleNamespace(title=name, explanation=name, hint=name, "
                 "implementations={'sample_next': (globals()[name],)}) for name in "
                 f"{list(WRONG)!r}}}\n")
    return "\n".join(parts)


def rubric_data(draws=DRAWS, checks=None):
    return {
        "rubric": 1, "title": "sampling", "reference": "reference.py", "mistakes": "mistakes.py",
        "steps": [
            {"id": "sample_next", "title": "sample", "section": "1", "kind": "function",
             "signature": "sample_next(logits, temperature=1.0, top_k=None)", "points": 3,
             "cases": [{"name": "top-k with temperature", "visible": True, "seed": 7,
                        "draws": draws,
                        "args": {"logits": {"tensor": LOGITS}, "temperature": TEMPERATURE,
                                 "top_k": TOP_K}}],
             "checks": checks or [{"check": "shape", "points": 1},
                                  {"check": "samples_match", "points": 2}],
             "mistakes": list(WRONG)},
        ],
    }


def write_course(folder, data):
    (folder / "reference.py").write_text(REFERENCE)
    (folder / "mistakes.py").write_text(mistakes_file())
    (folder / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder / "config.yaml"


def probabilities(temperature, keep, after_softmax=False):
    """The distribution a sampler draws from, computed here without the grader."""
    logits = torch.tensor(LOGITS[0])
    kept = torch.full_like(logits, float("-inf"))
    order = logits.argsort(descending=True)[:keep]
    kept[order] = logits[order]
    probs = torch.softmax(kept, -1) if after_softmax else torch.softmax(kept / temperature, -1)
    return probs / probs.sum()


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sampling")
    return load_rubric(write_course(folder, rubric_data())), folder


@pytest.fixture(scope="module")
def reports(course):
    rubric, folder = course
    return grade_many(rubric, {"multinomial": REFERENCE, "categorical": CATEGORICAL,
                               "inverse_cdf": INVERSE_CDF,
                               "temperature_after_softmax": TEMPERATURE_AFTER_SOFTMAX,
                               "top_k_plus_one": TOP_K_PLUS_ONE, "argmax": ARGMAX},
                      folder / "work")


def samples_match(report):
    step = report.steps[0]
    return next(c for c in step.checks if c.name == "samples_match")


def test_a_sampler_drawing_with_multinomial_like_the_reference_gets_full_marks(reports):
    report = reports["multinomial"]
    assert report.score == report.max_score, report.steps[0].feedback
    assert f"{ALPHA:g}" in samples_match(report).message


def test_a_categorical_sampler_passes(reports):
    report = reports["categorical"]
    assert report.score == report.max_score, report.steps[0].feedback


def test_a_sampler_from_the_right_distribution_passes_though_its_draws_differ(reports):
    right = probabilities(TEMPERATURE, TOP_K).expand(1, -1)
    seed_cpu(7)
    multinomial = [int(torch.multinomial(right, 1)) for _ in range(50)]
    seed_cpu(7)
    inverse_cdf = [int((right.cumsum(-1) < torch.rand(1, 1)).sum()) for _ in range(50)]
    assert multinomial != inverse_cdf  # a check of exact draws under the seed would fail it
    report = reports["inverse_cdf"]
    assert report.score == report.max_score, report.steps[0].feedback


@pytest.mark.parametrize("name, wrong", [
    ("temperature_after_softmax", probabilities(TEMPERATURE, TOP_K, after_softmax=True)),
    ("top_k_plus_one", probabilities(TEMPERATURE, TOP_K + 1)),
    ("argmax", torch.nn.functional.one_hot(torch.tensor(0), 6).float()),
])
def test_a_sampler_drawing_from_another_distribution_fails(reports, name, wrong):
    total_variation = 0.5 * float((wrong - probabilities(TEMPERATURE, TOP_K)).abs().sum())
    assert total_variation > 0.05  # far enough for 2,000 draws to show it
    check = samples_match(reports[name])
    assert not check.passed and check.score == 0, check.message
    assert "do not follow the reference's distribution" in check.message
    assert f"probability {ALPHA:g}" in check.message
    assert reports[name].steps[0].mistake == name  # its own distribution names the mistake


def false_fails(rubric, runs: int, draws: int, alpha: float) -> int:
    """The reference itself graded `runs` times, under seeds 0..runs-1, in this process: how
    many times samples_match fails it."""
    step = rubric.steps[0]
    preparer = Preparer(rubric, load_reference(rubric.reference))
    target = preparer.reference.sample_next
    check = dataclasses.replace(next(c for c in step.checks if c.check == "samples_match"),
                                tolerance=alpha)
    judged = dataclasses.replace(step, checks=(check,))
    failures = 0
    for seed in range(runs):
        case = dataclasses.replace(step.cases[0], seed=seed, draws=draws)
        expected = preparer.expect(step, case, target, "a case")
        seed_cpu(seed)  # as the worker does: one seed, then every call
        own = torch.stack([target(torch.tensor(LOGITS), TEMPERATURE, TOP_K) for _ in range(draws)])
        (result,) = run_checks(judged, [Outcome(expected, Returned(own))])
        failures += not result.passed
    return failures


def test_the_reference_under_200_seeds_never_fails_at_the_stated_false_fail_rate(course):
    rubric, _ = course
    assert false_fails(rubric, runs=200, draws=100, alpha=ALPHA) == 0


def test_the_reference_fails_about_as_often_as_a_looser_alpha_says(course):
    rubric, _ = course
    runs, alpha = 200, 0.05
    mean, sd = runs * alpha, (runs * alpha * (1 - alpha)) ** 0.5
    found = false_fails(rubric, runs=runs, draws=100, alpha=alpha)
    assert mean - 4 * sd <= found <= mean + 4 * sd, found  # a binomial(200, 0.05) count


@pytest.mark.parametrize("change, problem", [
    (lambda d: d["steps"][0]["cases"][0].update(draws=5), "between 20 and"),
    (lambda d: d["steps"][0]["cases"][0].update(draws="many"), "a number of calls"),
    (lambda d: d["steps"][0].update(checks=[{"check": "values", "points": 3}]),
     "cases with `draws:` for shape, dtype and samples_match"),
    (lambda d: d["steps"][0]["cases"][0].pop("draws"), "needs a case with `draws: N`"),
])
def test_a_rubric_that_misuses_draws_is_told_what_to_change(tmp_path, change, problem):
    data = rubric_data()
    change(data)
    with pytest.raises(RubricError, match=problem.replace("`", ".")):
        load_rubric(write_course(tmp_path, data))


def test_draws_of_three_tokens_pool_their_small_cells_and_keep_the_false_fail_rate():
    """216 sequences of three ids, most of them rare: the pooled test stays near its alpha."""
    from grader.sampling import compare_draws

    right = probabilities(TEMPERATURE, TOP_K + 2)
    generator = torch.Generator().manual_seed(0)
    runs, alpha = 400, 0.05

    def draws():
        return torch.multinomial(right.expand(500, -1), 3, replacement=True, generator=generator)

    fails = [compare_draws(draws(), draws()).rejected(alpha) for _ in range(runs)]
    strict = [compare_draws(draws(), draws()).rejected(ALPHA) for _ in range(runs)]
    mean, sd = runs * alpha, (runs * alpha * (1 - alpha)) ** 0.5
    assert sum(fails) <= mean + 4 * sd, sum(fails)  # a binomial(400, 0.05) count, or fewer
    assert sum(strict) == 0
    wrong = probabilities(TEMPERATURE, TOP_K)  # two ids never drawn: many sequences never seen
    assert compare_draws(torch.multinomial(wrong.expand(500, -1), 3, replacement=True,
                                           generator=generator), draws()).rejected(ALPHA)
