"""Values beyond float tensors: integer token ids, literal YAML values (a `cfg` mapping, strings),
and plain outputs (ints, strings, tuples, dicts) compared exactly, from a small course written for
this test."""

import textwrap

import pytest
import yaml
from conftest import grade_many

from grader import RubricError, load_rubric
from grader.engine import prepare

REFERENCE = '''
import torch


def count_tokens(token_ids):
    return int(token_ids.numel())


def describe(cfg):
    return {"vocab": cfg["vocab_size"], "dims": (cfg["emb_dim"], cfg["n_heads"])}


def embed_ids(token_ids, table):
    return table[token_ids]


def greet(name):
    return f"hello {name}"
'''

RUBRIC = {
    "rubric": 1, "title": "plain values", "reference": "reference.py",
    "constants": {"cfg": {"vocab_size": 50, "emb_dim": 8, "n_heads": 2}},
    "steps": [
        {"id": "count_tokens", "title": "count", "section": "1", "kind": "function",
         "signature": "count_tokens(token_ids)", "points": 1,
         "cases": [{"name": "ids", "visible": True, "seed": 1,
                    "args": {"token_ids": {"randint": [0, 50, [2, 5]]}}}],
         "checks": [{"check": "values", "points": 1}]},
        {"id": "describe", "title": "describe", "section": "1", "kind": "function",
         "signature": "describe(cfg)", "points": 1,
         "cases": [{"name": "cfg", "visible": True, "args": {"cfg": "cfg"}},
                   {"name": "literal", "args": {"cfg": {"value": {"vocab_size": 7, "emb_dim": 4,
                                                                  "n_heads": 1}}}}],
         "checks": [{"check": "values", "points": 1}]},
        {"id": "embed_ids", "title": "embed", "section": "1", "kind": "function",
         "signature": "embed_ids(token_ids, table)", "points": 3,
         "cases": [{"name": "ids", "visible": True, "seed": 2,
                    "args": {"token_ids": {"randint": [0, 10, [2, 3]]},
                             "table": {"randn": [10, 4], "dtype": "float64"}}}],
         "checks": [{"check": "shape", "points": 1}, {"check": "dtype", "points": 1},
                    {"check": "values", "points": 1}]},
        {"id": "greet", "title": "greet", "section": "1", "kind": "function",
         "signature": "greet(name)", "points": 1,
         "cases": [{"name": "ada", "visible": True, "args": {"name": {"value": "Ada"}}}],
         "checks": [{"check": "values", "points": 1}]},
    ],
}


def course(tmp_path, rubric=RUBRIC):
    (tmp_path / "reference.py").write_text(REFERENCE)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(rubric, sort_keys=False))
    return load_rubric(path)


WRONG = REFERENCE.replace("int(token_ids.numel())", "float(token_ids.numel())") \
    .replace('"vocab": cfg["vocab_size"]', '"vocabulary": cfg["vocab_size"]') \
    .replace("table[token_ids]", "table[token_ids].float()") \
    .replace('f"hello {name}"', 'f"Hello {name}"')


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plain")
    return grade_many(course(folder), {"right": REFERENCE, "wrong": WRONG}, folder / "work")


def test_plain_values_and_integer_inputs_grade_in_full(reports):
    report = reports["right"]
    assert report.score == report.max_score, [(s.id, s.feedback) for s in report.steps]


def test_plain_values_are_compared_exactly_and_said_so(reports):
    steps = {s.id: s for s in reports["wrong"].steps}
    assert "is float 10.0; expected int 10" in steps["count_tokens"].feedback
    assert "has the keys ['dims', 'vocabulary']; expected ['dims', 'vocab']" in \
        steps["describe"].feedback
    assert "dtype torch.float32; expected torch.float64" in steps["embed_ids"].feedback
    assert "is 'Hello Ada'; expected 'hello Ada'" in steps["greet"].feedback
    assert reports["wrong"].score == 2  # embed_ids: shape and values are right


def test_a_tensor_check_on_a_plain_output_is_a_rubric_error(tmp_path):
    rubric = yaml.safe_load(yaml.safe_dump(RUBRIC))
    rubric["steps"][0]["checks"].insert(0, {"check": "shape", "points": 1})
    rubric["steps"][0]["points"] = 2
    loaded = course(tmp_path, rubric)
    with pytest.raises(RubricError, match=textwrap.dedent(
            r"steps\.count_tokens\.checks\[0\]: check 'shape' compares tensors, but .* the "
            r"reference gives int 10")):
        prepare(loaded, [loaded.step("count_tokens")])


def test_an_unknown_mapping_spec_says_how_to_write_a_literal(tmp_path):
    rubric = yaml.safe_load(yaml.safe_dump(RUBRIC))
    rubric["steps"][1]["cases"][1]["args"]["cfg"] = {"vocab_size": 7, "emb_dim": 4}
    loaded = course(tmp_path, rubric)
    with pytest.raises(RubricError, match=r"unknown tensor spec 'vocab_size'; a literal value .* "
                                          r"\{value: \.\.\.\}"):
        prepare(loaded, [loaded.step("describe")])


@pytest.mark.parametrize("source, problem", [
    ("raise ValueError('oops')", "raised ValueError: oops"),
    ("x = 1", "declares no check"),
    ("from grader.course import check\n@check('values', kinds=('function',))\ndef f(s, c, o): return ''",
     "a built-in check has that name"),
    ("from grader.course import check\n@check('mine', kinds=('lambda',))\ndef f(s, c, o): return ''",
     "kinds must be some of"),
    ("from grader.course import check\n@check('mine2', kinds=('function',), after=('nope',))\n"
     "def f(s, c, o): return ''", "`after` names unknown checks: nope"),
    ("from grader.course import check\n@check('mine3', kinds=('function',), evidence='vibes')\n"
     "def f(s, c, o): return ''", "evidence must be one of"),
])
def test_a_broken_course_checks_file_is_a_rubric_error(tmp_path, source, problem):
    (tmp_path / "course_checks.py").write_text(source + "\n")
    rubric = {**RUBRIC, "course_checks": "course_checks.py"}
    with pytest.raises(RubricError, match=r"course_checks: .*" + problem.replace("(", r"\(")):
        course(tmp_path, rubric)


def test_a_course_check_is_judged_with_the_evidence_rule(tmp_path):
    (tmp_path / "course_checks.py").write_text(textwrap.dedent('''
        from grader.course import CheckFailed, check

        @check("is_even", kinds=("function",), evidence="output", summary="an even count")
        def is_even(step, rubric_check, outcomes):
            for outcome in outcomes:
                if outcome.obtained.output % 2:
                    raise CheckFailed(f"{outcome.title}: {outcome.obtained.output} is odd")
            return "even"
    '''))
    rubric = yaml.safe_load(yaml.safe_dump(RUBRIC))
    rubric["course_checks"] = "course_checks.py"
    rubric["steps"] = rubric["steps"][:1]
    rubric["steps"][0]["checks"].append({"check": "is_even", "points": 1})
    rubric["steps"][0]["points"] = 2
    loaded = course(tmp_path, rubric)
    reports = grade_many(loaded, {"right": REFERENCE,
                                  "odd": REFERENCE.replace("int(token_ids.numel())", "11"),
                                  "raises": REFERENCE.replace("return int(token_ids.numel())",
                                                              "raise ValueError('no')")},
                         tmp_path / "work")
    checks = {name: {c.name: c for c in r.steps[0].checks} for name, r in reports.items()}
    assert checks["right"]["is_even"].passed
    assert not checks["odd"]["is_even"].passed and "11 is odd" in checks["odd"]["is_even"].message
    assert not checks["raises"]["is_even"].judged  # no output, no evidence: not judged
