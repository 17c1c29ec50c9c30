"""The worker's reply is typed where it arrives: anything malformed is that step's error."""

import pytest
import torch
from conftest import SOLUTIONS, grade

from grader.replies import Answered, Built, MalformedReply, Missing, Raised, Returned, decode_step

FUNCTION_REQUEST = {"kind": "function", "cases": [{"args": []}, {"args": []}]}
BUILD_REQUEST = {"kind": "build", "cases": [{"args": [], "inputs": [torch.ones(2)],
                                             "attributes": []}]}


def test_a_well_formed_reply_becomes_typed_values():
    reply = decode_step({"missing": False, "results": [
        {"ok": True, "output": torch.zeros(3)},
        {"ok": False, "error": {"type": "ValueError", "message": "no"}},
    ]}, FUNCTION_REQUEST)
    assert isinstance(reply, Answered)
    assert isinstance(reply.cases[0], Returned) and reply.cases[0].output.shape == (3,)
    assert isinstance(reply.cases[1], Raised) and reply.cases[1].error.text() == "ValueError: no"
    assert isinstance(decode_step({"missing": True}, FUNCTION_REQUEST), Missing)


@pytest.mark.parametrize("raw, problem", [
    ({"missing": False, "results": []}, "0 case results for the 2 cases sent"),
    ({"results": [{"ok": True, "output": 1}] * 2}, "`missing` is not true or false"),
    ({"missing": False, "results": [{"ok": True}, {"ok": True, "output": 1}]}, "no `output`"),
    ({"missing": False, "results": [{"ok": "yes", "output": 1}] * 2}, "`ok` is not true or false"),
    ({"missing": False, "results": [{"ok": False, "error": {"type": 3}}] * 2}, "type is not a string"),
    ({"missing": False, "results": "everything passed"}, "`results` is missing or not a list"),
    ([1, 2], "the step reply is not a mapping"),
])
def test_a_malformed_reply_is_refused_with_what_is_wrong(raw, problem):
    with pytest.raises(MalformedReply, match=problem.replace("(", r"\(").replace(")", r"\)")):
        decode_step(raw, FUNCTION_REQUEST)


def test_a_module_report_must_answer_what_was_asked():
    good = {"ok": True, "class": "M", "parameters": [["w", [2, 2], "torch.float32"]],
            "buffers": [], "tensor_attributes": [], "attributes": {}, "outputs": [torch.ones(2)]}
    reply = decode_step({"missing": False, "results": [good]}, BUILD_REQUEST)
    assert isinstance(reply.cases[0], Built)
    assert reply.cases[0].module.shapes() == {"w": (2, 2)}
    for broken in ({**good, "outputs": [torch.ones(2)] * 3},  # outputs for inputs never sent
                   {**good, "attributes": {"num_heads": 12}},  # attributes nobody asked for
                   {**good, "parameters": [["w", "big", "f"]]},
                   {**good, "gradients": {"w": "yes"}},  # a gradient is a tensor or None
                   {**good, "gradients": {"v": torch.ones(2)}},  # of a parameter it does not have
                   {**good, "transposed": {"mask": torch.ones(2)}},  # a buffer never transposed
                   {**good, "transposed": "the same"}):
        with pytest.raises(MalformedReply):
            decode_step({"missing": False, "results": [broken]}, BUILD_REQUEST)


def test_code_that_answers_for_the_worker_with_no_results_scores_nothing(tmp_path):
    """The student's code replaces the worker's step handler: zero case results per step used to
    pass every check over zero outcomes."""
    path = tmp_path / "answers_for_the_worker.py"
    path.write_text(SOLUTIONS.read_text() + (
        "\nimport __main__\n"
        "__main__.Worker.step = lambda self, request: {'missing': False, 'results': []}\n"))
    report = grade(path, steps=["attention_scores", "CausalAttention"])
    assert report.score == 0
    for step in report.steps:
        assert step.status == "error"
        assert "reply it cannot read" in step.feedback and "case results" in step.feedback


CAUSAL_MASK = ('self.register_buffer(\n            "mask", torch.triu(torch.ones(context_length, '
               'context_length), diagonal=1)\n        )')


def _causal_checks(tmp_path, name: str, old: str, new: str, forgery: str) -> dict:
    source = SOLUTIONS.read_text()
    start = source.index("class CausalAttention(")
    block = source[start:source.index("# %%", start)]
    assert old in block
    path = tmp_path / f"{name}.py"
    path.write_text(source.replace(block, block.replace(old, new, 1)) + "\nimport __main__\n" + forgery)
    step = grade(path, steps=["CausalAttention"]).steps[0]
    return {check.name: check for check in step.checks}


def test_gradients_the_worker_makes_up_earn_nothing(tmp_path):
    """Values detached from the graph, and the worker's gradient report replaced by ones: the grader
    compares gradient values with the reference's, so the made-up ones fail."""
    checks = _causal_checks(
        tmp_path, "forges_gradients", "values = self.W_value(x)", "values = self.W_value(x).detach()",
        "import torch\n"
        "__main__.Worker.gradients = lambda self, module, x, projection: {\n"
        "    name: torch.ones_like(p) for name, p in module.named_parameters()}\n")
    assert not checks["gradients_flow"].passed
    assert "is not the reference's" in checks["gradients_flow"].message
    assert checks["values"].passed  # the forward pass itself is right


def test_a_buffer_the_worker_claims_earns_nothing(tmp_path):
    """The mask kept as a plain attribute, and the module report rewritten to list it as a buffer:
    the grader transposes the buffer and predicts the output, so the claim fails."""
    checks = _causal_checks(
        tmp_path, "forges_a_buffer", CAUSAL_MASK,
        "self.mask = torch.triu(torch.ones(context_length, context_length), diagonal=1)",
        "_build = __main__.Worker.build_module\n"
        "def build_module(self, target, case):\n"
        "    reply = _build(self, target, case)\n"
        "    if 'buffers' in reply:\n"
        "        reply['buffers'] = [['mask', list(case['args'][2:3] * 2)]]\n"
        "    return reply\n"
        "__main__.Worker.build_module = build_module\n")
    assert not checks["buffers"].passed
    assert "does not use the registered buffer `mask`" in checks["buffers"].message
