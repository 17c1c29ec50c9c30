"""Feedback that names what to do: a near-miss name gets the contract's name to rename it to, a
contract name rebound at the top level gets the line that rebinds it, and a failed step gets the
hints that fit how it failed."""

import copy
import dataclasses
import re

import pytest
import yaml
from conftest import RUBRIC, SOLUTIONS, write_notebook

from grader import RubricError, grade, load_rubric
from grader.bundle import _student_hints
from grader.judge import _last_rebinding, result_for
from grader.models import CheckResult
from grader.replies import MalformedReply, NotCallable, decode_step
from grader.rubric import Hint
from grader.submission import Chunk, Submission

SOURCE = SOLUTIONS.read_text()
MASK_HINT = "register_buffer('mask'"
TRANSPOSE_HINT = "transpose only the last two dimensions"


def step_of(report, step_id):
    return next(s for s in report.steps if s.id == step_id)


def in_class(step: str, old: str, new: str) -> str:
    """The solutions with `old` replaced by `new` inside class `step` only."""
    start = SOURCE.index(f"\nclass {step}(")
    end = SOURCE.index("\nclass ", start + 1)
    part = SOURCE[start:end]
    assert old in part, f"{old!r} is no longer in {step}"
    return SOURCE[:start] + part.replace(old, new) + SOURCE[end:]


# ------------------------------------------------------------------------------ near-miss names


@pytest.fixture(scope="module")
def misnamed(tmp_path_factory):
    """One notebook with near-miss class names and a contract name rebound to a tensor."""
    path = write_notebook(tmp_path_factory.mktemp("misnamed") / "misnamed.ipynb", [
        ("code", "import torch\nimport torch.nn as nn"),
        ("code", "class SelfAttentionV1(nn.Module):\n    pass"),
        ("code", "class Multihead_Attention_Wrapper(nn.Module):\n    pass"),
        ("code", "def attention_scores(inputs):\n    return inputs @ inputs.T"),
        ("code", "inputs = torch.rand(6, 3)\nattention_scores = attention_scores(inputs)\n"
                 "attn_weights = torch.softmax(attention_scores, dim=-1)"),
    ])
    return grade(path, rubric=RUBRIC, steps=["SelfAttention_v1", "MultiHeadAttentionWrapper",
                                             "attention_scores", "attention_weights"])


@pytest.mark.parametrize("step_id, written", [("SelfAttention_v1", "SelfAttentionV1"),
                                              ("MultiHeadAttentionWrapper", "Multihead_Attention_Wrapper")])
def test_a_class_name_spelt_differently_is_suggested_with_the_contract_name(misnamed, step_id, written):
    step = step_of(misnamed, step_id)
    assert step.status == "missing"
    assert f"Did you mean to call `{written}` `{step_id}`?" in step.feedback
    assert f"rename your `{written}` to `{step_id}`" in step.feedback


def test_a_name_with_a_word_left_out_is_suggested_but_never_another_steps_name(tmp_path):
    path = tmp_path / "short.py"
    path.write_text("import torch\nimport torch.nn as nn\n\n\nclass Attention_v1(nn.Module):\n"
                    "    pass\n\n\nclass SelfAttention_v2(nn.Module):\n    pass\n\n\n"
                    "attn_weights = torch.ones(3)\n")
    report = grade(path, rubric=RUBRIC, steps=["SelfAttention_v1", "attention_weights"])
    step = step_of(report, "SelfAttention_v1")
    assert step.status == "missing"
    assert "rename your `Attention_v1` to `SelfAttention_v1`" in step.feedback
    assert "`SelfAttention_v2`" not in step.feedback  # closer, but the contract of another step
    step = step_of(report, "attention_weights")  # `attn_weights` is a tensor, not a def
    assert step.status == "missing"
    assert "Did you mean" not in step.feedback


# ------------------------------------------------------------------------------ a rebound contract name


def test_a_contract_name_rebound_to_a_tensor_names_the_line_that_rebinds_it(misnamed):
    step = step_of(misnamed, "attention_scores")
    assert step.status == "error"
    assert "'Tensor' object is not callable" not in step.feedback
    assert "`attention_scores` holds a Tensor when grading starts, not a function" in step.feedback
    assert re.search(r"at cell 5 \(`inputs = torch\.rand\(6, 3\)`\), line 2:\n +"
                     r"attention_scores = attention_scores\(inputs\)", step.feedback), step.feedback
    assert step.location == "cell 5 (`inputs = torch.rand(6, 3)`), line 2"
    assert "another name" in step.feedback


def test_the_rebinding_line_is_the_last_top_level_binding_found_by_parsing():
    code = ("import torch\n"
            "def f(x):\n    f = 1\n    return x\n"        # inside a def: not top level
            "f = f(2)\n"                                    # line 5
            "for f in range(3):\n    pass\n"                # line 6: a for target
            "if True:\n    f += 1\n"                        # line 9: in a block, still top level
            "if __name__ == '__main__':\n    f = 0\n")      # a .py file's demo block never runs
    later = "import numpy as f\n"
    py = Submission("s.py", "py", (Chunk(code, "s.py", ""),))
    assert _last_rebinding("f", py) == ("line 9", "f += 1")
    notebook = Submission("s.ipynb", "ipynb", (Chunk(code, "<cell 1>", "cell 1 (`import torch`)"),
                                               Chunk(later, "<cell 2>", "cell 2 (`import numpy as f`)"),
                                               Chunk("f = (", "<cell 3>", "cell 3 (`f = (`)")))
    assert _last_rebinding("f", notebook) == ("cell 2 (`import numpy as f`), line 1", "import numpy as f")
    assert _last_rebinding("g", py) is None


def test_the_workers_not_callable_reply_is_decoded_and_checked():
    request = {"cases": [], "kind": "function"}
    assert decode_step({"missing": False, "not_callable": "Tensor"}, request) == NotCallable("Tensor")
    assert decode_step({"missing": False, "not_callable": "x" * 1000}, request).type_name == "x" * 200
    with pytest.raises(MalformedReply):
        decode_step({"missing": False, "not_callable": 3}, request)


# ------------------------------------------------------------------------------ hints that fit


@pytest.mark.parametrize("name, source, shown, not_shown", [
    ("unscaled", in_class("CausalAttention", "attn_scores / keys.shape[-1] ** 0.5, dim=-1",
                          "attn_scores, dim=-1"), "keys.shape[-1] ** 0.5", MASK_HINT),
    ("plain_mask", in_class("CausalAttention", 'self.register_buffer(\n            "mask", ',
                            "self.mask = ("), MASK_HINT, TRANSPOSE_HINT),
])
def test_a_causal_attention_bug_gets_the_hints_about_it_only(tmp_path, name, source, shown, not_shown):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    step = grade(path, rubric=RUBRIC, steps=["CausalAttention"]).steps[0]
    assert step.status == "failed"
    assert any(shown in hint for hint in step.hints), step.hints
    assert not any(not_shown in hint for hint in step.hints), step.hints


def test_with_no_check_to_go_by_the_plain_hints_are_shown_or_all_if_none_is_plain():
    base = load_rubric(RUBRIC).step("CausalAttention")
    step = dataclasses.replace(base, hints=("plain", "tagged"),
                               hint_rules=(Hint("plain"), Hint("tagged", checks=("values",))))
    assert result_for(step, "missing", "").hints == ("plain",)
    assert result_for(base, "missing", "").hints == base.hints  # every hint tagged: all of them
    failed, passed = CheckResult("values", False, 0, 3, "m"), CheckResult("values", True, 3, 3, "m")
    unjudged = CheckResult("values", False, 0, 3, "not judged: m", judged=False)
    assert result_for(step, "failed", "", [failed]).hints == ("plain", "tagged")
    assert result_for(step, "passed", "", [passed]).hints == ("plain",)
    assert result_for(step, "error", "", [unjudged]).hints == ("plain", "tagged")  # raised: nothing judged
    shape = CheckResult("shape", False, 0, 1, "m")
    assert result_for(step, "failed", "", [shape, unjudged]).hints == ("plain",)  # unjudged for `shape`


def test_hint_mappings_are_read_with_their_tags():
    step = load_rubric(RUBRIC).step("CausalAttention")
    mask = next(h for h in step.tagged_hints if MASK_HINT in h.text)
    assert set(mask.checks) == {"buffers", "no_look_ahead"} and "mask_not_buffer" in mask.mistakes
    assert mask.text in step.hints  # the texts stay a tuple of strings for every reader


def test_a_student_bundle_keeps_only_the_hint_checks_it_still_has():
    hints = ["plain", {"text": "a", "checks": ["shape", "no_look_ahead"]},
             {"text": "b", "checks": ["no_look_ahead"], "mistakes": ["mask_not_buffer"]},
             {"text": "c", "checks": ["dropout_train_eval"]}]
    assert _student_hints(hints, {"shape", "values"}) == [
        "plain", {"text": "a", "checks": ["shape"]}, {"text": "b", "mistakes": ["mask_not_buffer"]}]


# ------------------------------------------------------------------------------ validating hints

BASE = yaml.safe_load(RUBRIC.read_text())
CAUSAL = next(i for i, s in enumerate(BASE["steps"]) if s["id"] == "CausalAttention")


def rubric_error(tmp_path, hint) -> str:
    data = copy.deepcopy(BASE)
    data["reference"] = str(RUBRIC.parent / data["reference"])
    data["mistakes"] = str(RUBRIC.parent / data["mistakes"])
    data["steps"][CAUSAL]["hints"] = ["a plain hint", hint]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(RubricError) as info:
        load_rubric(path)
    return str(info.value)


@pytest.mark.parametrize("hint, key_path, expected", [
    ({"text": "t", "checks": ["values", "looks_nice"]}, "hints[1].checks[1]",
     "this step has no check 'looks_nice'; its checks are: parameters, buffers"),
    ({"text": "t", "mistakes": ["gpt2_qkv_bias"]}, "hints[1].mistakes[0]",
     "this step has no mistake 'gpt2_qkv_bias'"),
    ({"text": "t", "checks": ["values"], "when": "failed"}, "hints[1].when", "unknown key"),
    ({"checks": ["values"]}, "hints[1].text", "missing required key"),
    ({"text": 3, "checks": ["values"]}, "hints[1].text", "expected a string, got an integer"),
    ({"text": "t", "checks": "values"}, "hints[1].checks", "expected a list of strings"),
    ({"text": "t", "checks": [], "mistakes": []}, "hints[1]", "needs `checks:` or `mistakes:`"),
    (42, "hints[1]", "expected a string or a mapping"),
])
def test_a_bad_hint_is_a_rubric_error_naming_its_key_path(tmp_path, hint, key_path, expected):
    message = rubric_error(tmp_path, hint)
    assert f": steps[{CAUSAL}].{key_path}: " in message, message
    assert expected in message, message
