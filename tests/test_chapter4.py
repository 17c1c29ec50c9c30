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
SUBMISSIONS = {"reference": SOURCE, "stubs": (COURSE / "exercises" / "gpt.py").read_text(),
               "gpt2_six_heads": edit('"n_heads": 12,  ', '"n_heads": 6,   '),
               "no_causal_mask": edit("        attn_scores.masked_fill_(self.mask.bool()"
                                      "[:num_tokens, :num_tokens], -torch.inf)\n", ""),
               "no_dropout": SOURCE.replace("dropout=cfg[\"drop_rate\"]", "dropout=0.0")
               .replace("self.drop_shortcut(self.att(self.norm1(x)))", "self.att(self.norm1(x))")
               .replace("self.drop_shortcut(self.ff(self.norm2(x)))", "self.ff(self.norm2(x))"),
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
