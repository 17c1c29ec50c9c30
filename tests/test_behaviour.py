"""Behaviour checks fail on purpose-built wrong modules, each for its own reason, and only there."""

import pytest
from conftest import SOLUTIONS, grade

CAUSAL = "CausalAttention"


@pytest.fixture(scope="module")
def causal_source():
    source = SOLUTIONS.read_text()
    start = source.index("class CausalAttention(")
    end = source.index("# %%", start)
    return source, source[start:end]


def graded_checks(tmp_path, rubric, causal_source, old, new):
    source, block = causal_source
    assert old in block, old
    path = tmp_path / "module.py"
    path.write_text(source.replace(block, block.replace(old, new, 1)))
    step = grade(path, rubric=rubric, steps=[CAUSAL]).steps[0]
    return step, {check.name for check in step.checks if not check.passed}


WRONG_MODULES = [
    # a module that peeks ahead, but only for batches of two (alone, an item is masked: they differ)
    ("peeks_ahead_for_some_inputs",
     "        attn_scores.masked_fill_(",
     "        if b != 2:\n            attn_scores.masked_fill_(",
     # on the behaviour case the output differs, so its gradients cannot be compared
     {"no_look_ahead", "values", "batch_consistency", "gradients_flow"},
     "changing the tokens after position"),
    # the buffer is registered (state_dict has it) but forward builds a mask of its own
    ("mask_registered_but_unused",
     "self.mask.bool()[:num_tokens, :num_tokens]",
     "torch.triu(torch.ones(num_tokens, num_tokens), diagonal=1).bool()",
     {"buffers"}, "does not use the registered buffer `mask`"),
    ("dropout_that_never_drops",
     "attn_weights = self.dropout(attn_weights)", "attn_weights = attn_weights",
     {"dropout_train_eval"}, "training mode gave the same output"),
    ("values_detached_from_the_graph",
     "values = self.W_value(x)", "values = self.W_value(x).detach()",
     {"gradients_flow"}, "no gradient reaches W_value.weight"),
    # every weight gets a gradient, but not the right one: a softmax by hand whose normaliser is
    # detached computes the same forward pass
    ("softmax_with_a_detached_normaliser",
     "attn_weights = torch.softmax(",
     "attn_weights = (lambda s, dim: torch.exp(s) / torch.exp(s).sum(dim, keepdim=True).detach())(",
     {"gradients_flow"}, "the gradient of W_query.weight is not the reference's"),
    ("batch_items_that_mix",
     "attn_scores = queries @ keys.transpose(1, 2)",
     "attn_scores = queries @ keys.transpose(1, 2)\n"
     "        attn_scores = attn_scores - attn_scores.mean(dim=0)",
     {"batch_consistency", "values", "gradients_flow", "buffers"}, "batch item"),
]


@pytest.mark.parametrize("name, old, new, failing, phrase", WRONG_MODULES, ids=[w[0] for w in WRONG_MODULES])
def test_a_wrong_module_fails_exactly_its_behaviour_check(tmp_path, rubric, causal_source, name, old, new,
                                                         failing, phrase):
    step, failed = graded_checks(tmp_path, rubric, causal_source, old, new)
    assert failed == failing, step.feedback
    assert phrase in step.feedback
    assert step.status == "failed"
    assert step.score == step.max_score - sum(c.max_score for c in step.checks if c.name in failing)


def test_a_mask_in_another_encoding_is_confirmed_as_used(tmp_path, rubric, causal_source):
    """A buffer of the allowed positions (tril of ones, masked where 0) is as right as the book's."""
    source, block = causal_source
    changed = block.replace("torch.triu(torch.ones(context_length, context_length), diagonal=1)",
                            "torch.tril(torch.ones(context_length, context_length))")
    changed = changed.replace("self.mask.bool()[:num_tokens, :num_tokens]",
                              "self.mask[:num_tokens, :num_tokens] == 0")
    assert changed.count("tril") == 1 and "== 0" in changed
    path = tmp_path / "module.py"
    path.write_text(source.replace(block, changed))
    step = grade(path, rubric=rubric, steps=[CAUSAL]).steps[0]
    assert step.status == "passed", step.feedback
    buffers = next(check for check in step.checks if check.name == "buffers")
    assert buffers.message == "buffers are registered, and forward uses them"
