"""Outputs that compute nothing earn nothing, and NaN never passes (issue 32).

A set of submissions that compute none of chapter 3's quantities, each graded in one batch: zeros of
the right shape everywhere, every input handed back, and modules whose output is a causal running
mean of the input, whatever their weights. Each keeps a correct constructor where it has one, and
scores exactly what that constructor is worth in the rubric (and what handing an input back is
worth where the reference hands it back too). Then NaN: an output holding NaN where the
reference's is finite fails every check that reads it, a course check's as well."""

from pathlib import Path

import pytest
import torch
from conftest import grade_many

from grader import load_rubric

COURSE4 = Path(__file__).resolve().parent.parent / "examples" / "chapter4"
CONSTRUCTOR_CHECKS = {"parameters", "init", "raises"}  # what a correct __init__ earns by itself

# Book constructors (the contract's names, in the book's order) with a forward given per submission.
CLASSES = '''
class SelfAttention_v1(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))
        self.d_out = d_out

    def forward(self, x):
        return FORWARD


class SelfAttention_v2(nn.Module):
    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.d_out = d_out

    def forward(self, x):
        return FORWARD


class CausalAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        return self.dropout(FORWARD)


class MultiHeadAttentionWrapper(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.heads = nn.ModuleList(
            [CausalAttention(d_in, d_out, context_length, dropout, qkv_bias) for _ in range(num_heads)])
        self.d_out = d_out * num_heads

    def forward(self, x):
        return FORWARD


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        return self.dropout(FORWARD)
'''

ZEROS = '''import torch
import torch.nn as nn


def attn_scores_for_query(inputs, query):
    return torch.zeros(inputs.shape[0])


def softmax_naive(x):
    return torch.zeros_like(x)


def context_vector(attn_weights, inputs):
    return torch.zeros(inputs.shape[1])


def attention_scores(inputs):
    return torch.zeros(inputs.shape[0], inputs.shape[0])


def attention_weights(attn_scores):
    return torch.zeros_like(attn_scores)


def context_vectors(attn_weights, inputs):
    return torch.zeros(attn_weights.shape[0], inputs.shape[1])


def project_qkv(x, W_query, W_key, W_value):
    return tuple(torch.zeros(x.shape[0], W_query.shape[1]) for _ in range(3))


def scaled_attention_weights(queries, keys):
    return torch.zeros(*queries.shape[:-1], keys.shape[0])


def renormalized_causal_weights(attn_weights):
    return torch.zeros_like(attn_weights)


def causal_attention_weights(queries, keys):
    return torch.zeros(queries.shape[0], keys.shape[0])


def attention_dropout(attn_weights, p):
    return torch.zeros_like(attn_weights)
''' + CLASSES.replace("FORWARD", "torch.zeros(*x.shape[:-1], self.d_out)")

HANDED_BACK = '''import torch
import torch.nn as nn


def attn_scores_for_query(inputs, query):
    return inputs


def softmax_naive(x):
    return x


def context_vector(attn_weights, inputs):
    return attn_weights


def attention_scores(inputs):
    return inputs


def attention_weights(attn_scores):
    return attn_scores


def context_vectors(attn_weights, inputs):
    return attn_weights


def project_qkv(x, W_query, W_key, W_value):
    return x


def scaled_attention_weights(queries, keys):
    return queries


def renormalized_causal_weights(attn_weights):
    return attn_weights


def causal_attention_weights(queries, keys):
    return queries


def attention_dropout(attn_weights, p):
    return attn_weights
''' + CLASSES.replace("FORWARD", "x")

# The mean of the tokens so far, its features repeated to d_out: causal, batch items apart, dropout
# in training mode, a refusal of d_out % num_heads != 0; and not one weight used. Its parameters have
# names of its own, so forward runs on them (the own-weights path).
RUNNING_MEAN = '''import torch
import torch.nn as nn


def running_mean(x, d_out):
    mean = x.cumsum(dim=-2) / torch.arange(1, x.shape[-2] + 1).unsqueeze(-1)
    return mean[..., torch.arange(d_out) % x.shape[-1]]


class SelfAttention_v1(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.projection = nn.Linear(d_in, d_out)
        self.d_out = d_out

    def forward(self, x):
        return running_mean(x, self.d_out)


class SelfAttention_v2(SelfAttention_v1):
    def __init__(self, d_in, d_out, qkv_bias=False):
        super().__init__(d_in, d_out)


class CausalAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, qkv_bias=False):
        super().__init__()
        self.projection = nn.Linear(d_in, d_out)
        self.dropout = nn.Dropout(dropout)
        self.d_out = d_out

    def forward(self, x):
        return self.dropout(running_mean(x, self.d_out))


class MultiHeadAttention(CausalAttention):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        if d_out % num_heads:
            raise ValueError("d_out must be divisible by num_heads")
        super().__init__(d_in, d_out, context_length, dropout)

'''
NO_PARAMETERS = RUNNING_MEAN.replace("        self.projection = nn.Linear(d_in, d_out)\n", "")

# The same running mean in the book's constructors: the grader's weights load, and change nothing.
# (MultiHeadAttentionWrapper is left out: its heads stand in with the reference's outputs, and
# whether forward uses them is not asked here.)
WITH_THE_CONTRACTS_NAMES = RUNNING_MEAN[:RUNNING_MEAN.index("class SelfAttention_v1")] + CLASSES[
    :CLASSES.index("class MultiHeadAttentionWrapper")].replace(
    "FORWARD", "running_mean(x, self.d_out)") + CLASSES[CLASSES.index("class MultiHeadAttention("):].replace(
    "FORWARD", "running_mean(x, self.d_out)")

SUBMISSIONS = {"zeros": ZEROS, "handed_back": HANDED_BACK, "running_mean": RUNNING_MEAN,
               "running_mean_without_parameters": NO_PARAMETERS,
               "running_mean_with_the_contracts_names": WITH_THE_CONTRACTS_NAMES}


@pytest.fixture(scope="module")
def reports(rubric, tmp_path_factory):
    return grade_many(rubric, SUBMISSIONS, tmp_path_factory.mktemp("nothing"))


def defined(source: str, rubric) -> list:
    return [step for step in rubric.steps if f"def {step.id}(" in source or f"class {step.id}(" in source]


def constructor_points(steps, named=CONSTRUCTOR_CHECKS) -> float:
    return sum(c.points for step in steps if step.kind == "class" for c in step.checks
               if c.check in named)


def identity_values_points(rubric) -> float:
    """The `values` points of function steps where, on every case the check looks at, the
    reference's output is its first argument: there, handing the input back is the answer. As
    `values` waits for `shape`, that counts only where `shape`'s cases are such cases too."""
    from grader.cases import Preparer, load_reference

    preparer = Preparer(rubric, load_reference(rubric.reference))
    points = 0.0
    for step in rubric.steps:
        if step.kind != "function":
            continue
        expected = preparer.prepare(step).expected
        def identity(check, expected=expected) -> bool:
            looked_at = [e for e in expected if not check.cases or e.case.name in check.cases]
            return bool(looked_at) and all(isinstance(e.output, torch.Tensor)
                                           and torch.equal(e.output, e.args[0]) for e in looked_at)

        shape = next((c for c in step.checks if c.check == "shape"), None)
        points += sum(c.points for c in step.checks if c.check == "values" and identity(c)
                      and (shape is None or identity(shape)))
    return points


def scored(report) -> dict:
    return {(step.id, check.name): check.score for step in report.steps for check in step.checks
            if check.score}


def test_zeros_of_the_right_shape_earn_only_their_constructors(reports, rubric):
    report = reports["zeros"]
    honest = constructor_points(defined(ZEROS, rubric))
    assert honest > 0
    assert report.score == honest, scored(report)
    step = next(s for s in report.steps if s.id == "attention_weights")
    shape = next(c for c in step.checks if c.name == "shape")
    assert not shape.passed and "all zeros" in shape.message


def test_inputs_handed_back_earn_only_their_constructors_and_the_identity_cases(reports, rubric):
    report = reports["handed_back"]
    honest = constructor_points(defined(HANDED_BACK, rubric)) + identity_values_points(rubric)
    assert report.score == honest, scored(report)
    step = next(s for s in report.steps if s.id == "softmax_naive")
    shape = next(c for c in step.checks if c.name == "shape")
    assert not shape.passed and "input handed back" in shape.message


@pytest.mark.parametrize("name", ["running_mean", "running_mean_without_parameters",
                                  "running_mean_with_the_contracts_names"])
def test_a_causal_running_mean_ignoring_its_weights_earns_only_its_constructors(reports, rubric, name):
    report = reports[name]
    # with names of its own, no constructor check passes but the refusal of a bad d_out
    named = CONSTRUCTOR_CHECKS if name.endswith("contracts_names") else {"raises"}
    honest = constructor_points(defined(SUBMISSIONS[name], rubric), named)
    assert honest > 0
    assert report.score == honest, scored(report)
    step = next(s for s in report.steps if s.id == "MultiHeadAttention")
    look_ahead = next(c for c in step.checks if c.name == "no_look_ahead")
    why = "has no parameters" if name.endswith("without_parameters") else "does not depend on its weights"
    assert not look_ahead.passed and why in look_ahead.message, look_ahead.message


NAN_LAYERNORMS = {
    "all_nan": "return torch.full_like(x, float('nan'))",
    "one_nan": "out = (x - x.mean(dim=-1, keepdim=True)) / torch.sqrt(x.var(dim=-1, keepdim=True, "
               "unbiased=False) + self.eps) * self.scale + self.shift\n"
               "        out.view(-1)[1] = float('nan')\n        return out",
    "one_inf": "out = (x - x.mean(dim=-1, keepdim=True)) / torch.sqrt(x.var(dim=-1, keepdim=True, "
               "unbiased=False) + self.eps) * self.scale + self.shift\n"
               "        out.view(-1)[1] = float('inf')\n        return out",
}


def layer_norm(body: str) -> str:
    return f'''import torch
import torch.nn as nn


class LayerNorm(nn.Module):
    def __init__(self, emb_dim):
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x):
        {body}
'''


@pytest.fixture(scope="module")
def nan_reports(tmp_path_factory):
    course = load_rubric(COURSE4 / "config.yaml")
    return course, grade_many(course, {name: layer_norm(body) for name, body in NAN_LAYERNORMS.items()},
                              tmp_path_factory.mktemp("nan"))


@pytest.mark.parametrize("name", sorted(NAN_LAYERNORMS))
def test_a_layernorm_returning_nan_fails_the_course_check_and_every_output_check(nan_reports, name):
    course, reports = nan_reports
    step = next(s for s in reports[name].steps if s.id == "LayerNorm")
    rubric_step = next(s for s in course.steps if s.id == "LayerNorm")
    reads_outputs = {c.check for c in rubric_step.checks} - CONSTRUCTOR_CHECKS
    assert step.score == sum(c.points for c in rubric_step.checks if c.check in CONSTRUCTOR_CHECKS)
    for check in step.checks:
        if check.name in reads_outputs:
            assert not check.passed and check.judged, (check.name, check.message)
    normalized = next(c for c in step.checks if c.name == "normalized")
    value = "+inf" if name == "one_inf" else "NaN"
    where = "[0, 0]" if name == "all_nan" else "[0, 1]"
    assert f"is {value} at {where}" in normalized.message, normalized.message
    assert "finite" in normalized.message


def test_attention_weights_with_one_nan_earn_no_shape_or_dtype(rubric, tmp_path):
    source = ('import torch\n\n\ndef attention_weights(attn_scores):\n'
              '    weights = torch.softmax(attn_scores, dim=-1)\n'
              '    weights.view(-1)[0] = float("nan")\n    return weights\n')
    report = grade_many(rubric, {"one_nan": source}, tmp_path)["one_nan"]
    step = next(s for s in report.steps if s.id == "attention_weights")
    assert step.score == 0, [(c.name, c.message) for c in step.checks]
    first_case = next(s for s in rubric.steps if s.id == "attention_weights").cases[0]
    shape = next(c for c in step.checks if c.name == "shape")
    assert f"`{first_case.name}`" in shape.message and "is NaN at [0, 0]" in shape.message
