"""A second exercise set, chapter 4 (examples/chapter4/), graded with no chapter-4 code in grader/:
cfg mappings as arguments, a course-written check, course advice in a built-in check's message,
known mistakes named, generated stubs. Every submission is graded in one batch."""

import re
from pathlib import Path

import pytest
from conftest import grade_many

from grader import load_rubric
from grader.authoring import check_exercises

COURSE = Path(__file__).resolve().parent.parent / "examples" / "chapter4"
SOURCE = (COURSE / "solutions" / "gpt.py").read_text()


def edit(old: str, new: str) -> str:
    assert SOURCE.count(old) == 1, old
    return SOURCE.replace(old, new)


# each known mistake, written as a student would, and the one step it should cost
MISTAKES = {
    "layernorm_unbiased_variance": (
        edit("var = x.var(dim=-1, keepdim=True, unbiased=False)", "var = x.var(dim=-1, keepdim=True)"),
        "LayerNorm"),
    "gelu_exact_erf": (
        re.sub(r"return 0\.5 \* x \* \(1 \+ torch\.tanh\(\n.*\n        \)\)",
               "return 0.5 * x * (1 + torch.erf(x / 2 ** 0.5))", SOURCE), "GELU"),
    "feedforward_relu": (edit("            GELU(),\n", "            nn.ReLU(),\n"), "FeedForward"),
    "block_post_norm": (
        edit("x = self.drop_shortcut(self.att(self.norm1(x)))\n        x = x + shortcut",
             "x = self.norm1(x + self.drop_shortcut(self.att(x)))").replace(
            "x = self.drop_shortcut(self.ff(self.norm2(x)))\n        return x + shortcut",
            "return self.norm2(x + self.drop_shortcut(self.ff(x)))"),
        "TransformerBlock"),
    "block_missing_shortcut": (edit("        x = x + shortcut                  # the first shortcut\n",
                                    ""), "TransformerBlock"),
    "gpt_no_positional_embedding": (edit("x = self.drop_emb(tok_embeds + pos_embeds)",
                                         "x = self.drop_emb(tok_embeds)"), "GPTModel"),
    "generate_without_cropping": (edit("idx_cond = idx[:, -context_size:]", "idx_cond = idx"),
                                  "generate_text_simple"),
    "tying_counted_wrong": (edit("    return total - sum(p.numel() for p in model.out_head.parameters())",
                                 "    return total"), "count_parameters_tied"),
    "generate_from_first_position": (edit("logits = logits[:, -1, :]", "logits = logits[:, 0, :]"),
                                     "generate_text_simple"),
}
def with_class(source: str, name: str, text: str) -> str:
    """`source` with class `name` (up to the next class or cell) replaced by `text`."""
    start = source.index(f"class {name}(")
    ends = [i for i in (source.find("\nclass ", start + 1), source.find("\n# %%", start))
            if i != -1]
    return source[:start] + text + source[min(ends):]


# The book's KV-cache variant, written as rasbt/LLMs-from-scratch ch04/03_kv-cache/
# gpt_with_kv_cache.py writes it: attention that can keep its keys and values (use_cache), blocks
# that pass use_cache on, and a GPTModel whose trf_blocks is an nn.ModuleList it loops over,
# `x = blk(x, use_cache=use_cache)`. With use_cache=False (how the grader calls it) it computes
# what the reference does.
KV_ATTENTION = """class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.d_out, self.num_heads, self.head_dim = d_out, num_heads, d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), 1),
                             persistent=False)
        self.register_buffer("cache_k", None, persistent=False)
        self.register_buffer("cache_v", None, persistent=False)

    def forward(self, x, use_cache=False):
        b, num_tokens, _ = x.shape
        split = lambda t: t.view(b, num_tokens, self.num_heads, self.head_dim)
        keys, values, queries = split(self.W_key(x)), split(self.W_value(x)), split(self.W_query(x))
        if use_cache:
            if self.cache_k is not None:
                keys = torch.cat([self.cache_k, keys], dim=1)
                values = torch.cat([self.cache_v, values], dim=1)
            self.cache_k, self.cache_v = keys, values
        keys, values, queries = keys.transpose(1, 2), values.transpose(1, 2), queries.transpose(1, 2)
        scores = queries @ keys.transpose(2, 3)
        scores.masked_fill_(self.mask.bool()[:num_tokens, :num_tokens], -torch.inf)
        weights = self.dropout(torch.softmax(scores / keys.shape[-1] ** 0.5, dim=-1))
        context = (weights @ values).transpose(1, 2).contiguous().view(b, num_tokens, self.d_out)
        return self.out_proj(context)

    def reset_cache(self):
        self.cache_k, self.cache_v = None, None


"""
KV_BLOCK_FORWARD = ("    def forward(self, x, use_cache=False):\n"
                    "        x = x + self.drop_shortcut(self.att(self.norm1(x), use_cache=use_cache))\n"
                    "        return x + self.drop_shortcut(self.ff(self.norm2(x)))\n")
KV_GPT = """class GPTModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.current_pos = 0
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx, use_cache=False):
        seq_len = in_idx.shape[1]
        start = self.current_pos if use_cache else 0
        if use_cache:
            self.current_pos += seq_len
        positions = torch.arange(start, start + seq_len, device=in_idx.device)
        x = self.drop_emb(self.tok_emb(in_idx) + self.pos_emb(positions).unsqueeze(0))
        for blk in self.trf_blocks:
            x = blk(x, use_cache=use_cache)
        return self.out_head(self.final_norm(x))

    def reset_kv_cache(self):
        for blk in self.trf_blocks:
            blk.att.reset_cache()
        self.current_pos = 0


"""


def kv_cache_source() -> str:
    source = with_class(SOURCE, "MultiHeadAttention", KV_ATTENTION)
    forward = source.index("    def forward(self, x):", source.index("class TransformerBlock("))
    end = source.index("\n# %%", forward)
    source = source[:forward] + KV_BLOCK_FORWARD + source[end:]
    return with_class(source, "GPTModel", KV_GPT)



SUBMISSIONS = {"reference": SOURCE, "stubs": (COURSE / "exercises" / "gpt.py").read_text(),
               "gpt2_six_heads": edit('"n_heads": 12,  ', '"n_heads": 6,   '),
               "no_causal_mask": edit("        attn_scores.masked_fill_(self.mask.bool()"
                                      "[:num_tokens, :num_tokens], -torch.inf)\n", ""),
               "no_dropout": SOURCE.replace("dropout=cfg[\"drop_rate\"]", "dropout=0.0")
               .replace("self.drop_shortcut(self.att(self.norm1(x)))", "self.att(self.norm1(x))")
               .replace("self.drop_shortcut(self.ff(self.norm2(x)))", "self.ff(self.norm2(x))"),
               "gpt_with_kv_cache": kv_cache_source(),
               "feedforward_with_torchs_exact_gelu": edit("            GELU(),\n",
                                                          "            nn.GELU(),\n"),
               "gelu_constant_typo": edit("(x + 0.044715 * torch.pow(x, 3))",
                                          "(x + 0.44715 * torch.pow(x, 3))"),
               **{name: source for name, (source, _) in MISTAKES.items()}}


@pytest.fixture(scope="module")
def course():
    return load_rubric(COURSE / "config.yaml")


@pytest.fixture(scope="module")
def reports(course, tmp_path_factory):
    return grade_many(course, SUBMISSIONS, tmp_path_factory.mktemp("chapter4"))


def test_the_reference_gets_full_marks(reports):
    report = reports["reference"]
    assert report.score == report.max_score == 40, [(s.id, s.feedback) for s in report.steps]


def test_the_stubs_get_nothing(reports):
    report = reports["stubs"]
    assert report.score == 0
    assert {s.status for s in report.steps} == {"not_implemented"}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_each_mistake_fails_exactly_its_step_and_is_named(reports, mistake):
    step_id = MISTAKES[mistake][1]
    report = reports[mistake]
    failed = {s.id: s for s in report.steps if s.status != "passed"}
    # the classes that use the wrong one are graded with stand-ins for it (`replay:`), so only its
    # own step fails; GELU is part of FeedForward, which has no stand-in for it
    expected = {step_id} | ({"FeedForward"} if step_id == "GELU" else set())
    assert set(failed) == expected, {k: v.feedback for k, v in failed.items()}
    assert failed[step_id].mistake == mistake, failed[step_id].feedback


def test_the_course_check_judges_the_statistics(reports):
    layer_norm = next(s for s in reports["layernorm_unbiased_variance"].steps if s.id == "LayerNorm")
    check = next(c for c in layer_norm.checks if c.name == "normalized")
    assert not check.passed and "variance 0.8" in check.message, check.message
    assert "the unbiased variance" in layer_norm.feedback.lower()


def test_a_built_in_check_speaks_in_the_courses_words(reports):
    block = next(s for s in reports["no_dropout"].steps if s.id == "TransformerBlock")
    check = next(c for c in block.checks if c.name == "dropout_train_eval")
    assert not check.passed
    assert "apply self.drop_shortcut" in check.message and "attention weights" not in check.message


def test_the_stubs_are_generated_from_the_solutions():
    assert check_exercises(COURSE / "solutions" / "gpt.py", COURSE / "exercises") == []


def test_a_gpt_without_a_causal_mask_is_caught_looking_ahead_on_token_ids(reports):
    gpt = next(s for s in reports["no_causal_mask"].steps if s.id == "GPTModel")
    check = next(c for c in gpt.checks if c.name == "no_look_ahead")
    assert not check.passed and "a token looks at tokens after it" in check.message, check.message


def test_generation_past_the_context_names_the_cropping(reports):
    step = next(s for s in reports["generate_without_cropping"].steps
                if s.id == "generate_text_simple")
    assert step.mistake == "generate_without_cropping"
    assert "IndexError" in step.feedback and "generate_text_simple(model=" in step.feedback


@pytest.mark.parametrize("edit_case, problem", [
    (lambda case: case.update(inputs=[{"randint": [0, 50, [2, 1]]}]), "does not change the reference"),
    (lambda case: case.update(time_dim=0), "does not change the reference"),
    (lambda case: case.update(token_range=[5, 5]), "low < high"),
])
def test_a_probe_that_cannot_act_on_its_input_is_a_rubric_error(tmp_path, edit_case, problem):
    import shutil

    import yaml

    from grader import RubricError
    from grader.engine import prepare

    shutil.copytree(COURSE, tmp_path / "course")
    path = tmp_path / "course" / "config.yaml"
    data = yaml.safe_load(path.read_text())
    gpt = next(s for s in data["steps"] if s["id"] == "GPTModel")
    edit_case(gpt["cases"][2])
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(RubricError, match=problem):
        rubric = load_rubric(path)
        prepare(rubric, [rubric.step("GPTModel")])


def test_gpt2_small_is_checked_through_a_dotted_attribute_without_building_it(reports):
    step = next(s for s in reports["gpt2_six_heads"].steps if s.id == "gpt2_small")
    structure = next(c for c in step.checks if c.name == "structure")
    assert not structure.passed
    assert "`trf_blocks.0.att.num_heads` is 6; expected 12" in structure.message
    count = next(c for c in step.checks if c.name == "param_count")
    assert count.passed and "163,009,536" in count.message  # the same count with 6 heads


def test_a_structure_case_is_built_on_the_meta_device(course):
    from grader.cases import Preparer, load_reference

    preparer = Preparer(course, load_reference(course.reference))
    (expected,) = preparer.prepare(course.step("gpt2_small")).expected
    assert {p.device.type for p in expected.parameters.values()} == {"meta"}
    assert sum(p.numel() for p in expected.parameters.values()) == 163_009_536


def test_the_stubs_are_made_from_the_rubric_alone(capsys):
    from grader.authoring import main

    assert main(["--rubric", str(COURSE / "config.yaml"), "--check"]) == 0
    assert "examples/chapter4/exercises are up to date" in capsys.readouterr().out


def test_gpt2s_tied_count_is_the_books_on_a_model_that_costs_no_memory(reports):
    step = next(s for s in reports["tying_counted_wrong"].steps if s.id == "count_parameters_tied")
    assert "is 163009536; expected 124412160" in step.feedback, step.feedback


def test_the_books_kv_cache_gpt_looping_over_a_module_list_of_blocks_gets_full_marks(reports):
    # what it earns is computed: with use_cache=False its blocks and model give the reference's
    # outputs on the same weights, so every step earns what the reference earns
    import torch

    kv, reference = {}, {}
    exec(compile(kv_cache_source(), "gpt_with_kv_cache.py", "exec"), kv)
    exec(compile(SOURCE, "gpt.py", "exec"), reference)
    cfg = {"vocab_size": 50, "context_length": 6, "emb_dim": 8, "n_heads": 2, "n_layers": 2,
           "drop_rate": 0.0, "qkv_bias": False}
    torch.manual_seed(0)
    theirs, ours = kv["GPTModel"](cfg), reference["GPTModel"](cfg)
    missing, unexpected = ours.load_state_dict(theirs.state_dict(), strict=False)
    assert not unexpected and all(key.endswith(".att.mask") for key in missing)  # not persistent
    tokens = torch.randint(0, 50, (2, 5))
    assert isinstance(theirs.trf_blocks, torch.nn.ModuleList)
    assert torch.allclose(theirs(tokens), ours(tokens), atol=1e-6)
    report = reports["gpt_with_kv_cache"]
    assert report.score == reports["reference"].score == report.max_score, \
        [(s.id, s.feedback) for s in report.steps if s.status != "passed"]


def feed_forward_gap(activation) -> float:
    """How far the reference's FeedForward moves, on its visible case's input shape, when its GELU
    is replaced by `activation`, beyond the rubric's tolerance (positive: a values failure)."""
    import torch

    reference = {}
    exec(compile(SOURCE, "gpt.py", "exec"), reference)
    cfg = {"vocab_size": 50, "context_length": 6, "emb_dim": 8, "n_heads": 2, "n_layers": 2,
           "drop_rate": 0.0, "qkv_bias": False}
    torch.manual_seed(401)
    ours = reference["FeedForward"](cfg)
    for parameter in ours.parameters():
        torch.nn.init.normal_(parameter, std=0.5)
    x = torch.randn(2, 3, 8)
    expected = ours(x)
    ours.layers[1] = activation
    gap = (ours(x) - expected).abs() - (1e-5 + 1e-4 * expected.abs())
    return gap.max().item()


def test_a_feed_forward_built_with_torchs_exact_gelu_is_named_the_exact_gelu(reports):
    import torch

    assert feed_forward_gap(torch.nn.GELU()) > 0  # nn.GELU() is the exact form, not the tanh one
    assert feed_forward_gap(torch.nn.GELU(approximate="tanh")) <= 0
    steps = {s.id: s for s in reports["feedforward_with_torchs_exact_gelu"].steps}
    assert steps["GELU"].passed
    assert steps["FeedForward"].status == "failed"
    assert steps["FeedForward"].mistake == "gelu_exact_erf", steps["FeedForward"].feedback


def test_a_typo_in_the_students_gelu_constant_is_blamed_in_their_feed_forward(reports):
    exec_globals = {}
    exec(compile(edit("(x + 0.044715 * torch.pow(x, 3))", "(x + 0.44715 * torch.pow(x, 3))"),
                 "gpt.py", "exec"), exec_globals)
    assert feed_forward_gap(exec_globals["GELU"]()) > 0  # the typo moves FeedForward's output too
    steps = {s.id: s for s in reports["gelu_constant_typo"].steps}
    assert steps["GELU"].status == "failed"
    feedback = steps["FeedForward"].feedback
    assert steps["FeedForward"].status == "failed"
    assert "uses your `GELU` (step 4.3), which fails on its own: fix it first" in feedback, feedback
    # a FeedForward whose own code is wrong, beside a right GELU, blames no one else
    relu = next(s for s in reports["feedforward_relu"].steps if s.id == "FeedForward")
    assert "`GELU`" not in relu.feedback, relu.feedback


@pytest.mark.parametrize("uses, problem", [
    (["GELUU"], "no step has the id 'GELUU'"), (["FeedForward"], "names itself")])
def test_a_course_naming_an_unknown_step_in_uses_is_told_at_its_key(tmp_path, uses, problem):
    import shutil

    import yaml

    from grader import RubricError

    shutil.copytree(COURSE, tmp_path / "course")
    path = tmp_path / "course" / "config.yaml"
    data = yaml.safe_load(path.read_text())
    index = next(i for i, s in enumerate(data["steps"]) if s["id"] == "FeedForward")
    data["steps"][index]["uses"] = uses
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(RubricError, match=rf"steps\[{index}\]\.uses\[0\].*{problem}"):
        load_rubric(path)
