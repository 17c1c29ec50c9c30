"""Only a NotImplementedError raised in the student's own code is an unfinished step. One raised
inside a library (the book's FlexAttention variant calls flex_attention, which a CPU build of torch
refuses) is that library's limit on the grading machine, and the report says so instead of telling
the student to replace a line they wrote. A class with no forward at all is still unfinished."""

import pytest
from conftest import SOLUTIONS, grade_many

LIBRARY_REFUSES = '''

import logging


def softmax_naive(x):
    logging.Handler().emit(None)  # the standard library's "not implemented here"
    return torch.exp(x) / torch.exp(x).sum(dim=0)


class SelfAttention_v1(nn.Module):  # no forward: still unfinished
    def __init__(self, d_in, d_out):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))
'''


@pytest.fixture(scope="module")
def steps(rubric, tmp_path_factory):
    report = grade_many(rubric, {"library": SOLUTIONS.read_text() + LIBRARY_REFUSES},
                        tmp_path_factory.mktemp("nie"))["library"]
    return {step.id: step for step in report.steps}


def test_a_library_that_raises_not_implemented_is_named_not_called_a_stub(steps):
    step = steps["softmax_naive"]
    assert step.status == "error", step.feedback
    assert "raised inside logging/__init__.py, not in your code" in step.feedback
    assert "replace that line with your implementation" not in step.feedback


def test_a_module_without_forward_is_still_unfinished(steps):
    assert steps["SelfAttention_v1"].status == "not_implemented", steps["SelfAttention_v1"].feedback
