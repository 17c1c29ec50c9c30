"""The rubric is validated before any grading; each problem names the file, the key path and what
was expected."""

import copy

import pytest
import yaml
from conftest import RUBRIC

from grader import RubricError, load_rubric

BASE = yaml.safe_load(RUBRIC.read_text())


def broken(tmp_path, edit):
    data = copy.deepcopy(BASE)
    edit(data)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    # the reference path is relative to the rubric file
    (tmp_path / "solutions").mkdir(exist_ok=True)
    for name in ("attention.py", "mistakes.py"):
        (tmp_path / "solutions" / name).write_text((RUBRIC.parent / "solutions" / name).read_text())
    return path


def error_for(tmp_path, edit) -> str:
    path = broken(tmp_path, edit)
    with pytest.raises(RubricError) as info:
        load_rubric(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    return message


def test_the_bundled_rubric_is_valid_and_complete():
    rubric = load_rubric(RUBRIC)
    assert len(rubric.steps) == 19
    for step in rubric.steps:
        assert step.cases and step.checks and step.hints, step.id
        assert any(case.visible for case in step.cases), f"{step.id} has no visible case"


@pytest.mark.parametrize("edit, key_path, expected", [
    (lambda d: d["steps"][2].update(colour="red"), "steps[2].colour", "unknown key"),
    (lambda d: d["steps"][0].update(points="four"), "steps[0].points", "expected a number, got a string"),
    (lambda d: d["steps"][3].pop("signature"), "steps[3].signature", "missing required key"),
    (lambda d: d["steps"][1]["cases"][0].update(seed=1.5), "steps[1].cases[0].seed",
     "expected an integer seed"),
    (lambda d: d["steps"][1]["checks"][0].update(check="looks_nice"), "steps[1].checks[0].check",
     "unknown check 'looks_nice'"),
    (lambda d: d["steps"][1].update(points=99), "steps[1].points", "its checks' points add up to 5"),
    (lambda d: d["steps"][1].update(kind="lambda"), "steps[1].kind", "expected one of function"),
    (lambda d: d["defaults"].update(atol=-1), "defaults.atol", "expected a number >= 0"),
    (lambda d: d["steps"][8]["cases"][0].update(weights="zeros"), "steps[8].cases[0].weights",
     "expected one of reference_init, random"),
    (lambda d: d["steps"][0]["checks"].append({"check": "init", "points": 1}),
     "steps[0].checks[3].check", "does not apply to a function step"),
    (lambda d: d.update(rubric=2), "rubric", "expected format version 1"),
    (lambda d: d["steps"][4].update(id=d["steps"][3]["id"]), "steps[4].id", "duplicate step id"),
    (lambda d: d.update(sandbox={"require": ["landlock", "chroot"]}), "sandbox.require[1]",
     "unknown sandbox layer 'chroot'; the layers are: limits, user"),
    (lambda d: d.update(sandbox={"require": "landlock"}), "sandbox.require",
     "expected a list of strings, got a string"),
    (lambda d: d.update(sandbox={"needs": []}), "sandbox.needs", "unknown key"),
])
def test_a_bad_rubric_names_the_key_path_and_what_was_expected(tmp_path, edit, key_path, expected):
    message = error_for(tmp_path, edit)
    assert f": {key_path}: " in message
    assert expected in message


def test_unknown_mistakes_are_named_before_grading(tmp_path):
    from grader import grade

    def edit(d):
        d["steps"][1]["mistakes"] = ["forgot_to_exist"]

    with pytest.raises(RubricError, match=r"steps\[1\]\.mistakes: unknown mistake 'forgot_to_exist'"):
        grade(RUBRIC.parent / "solutions" / "attention.py", rubric=broken(tmp_path, edit),
              steps=["softmax_naive"])


def test_a_missing_reference_file_is_named(tmp_path):
    message = error_for(tmp_path, lambda d: d.update(reference="nowhere/solutions.py"))
    assert "reference" in message and "nowhere/solutions.py" in message


def test_unreadable_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("steps: [\n  - id: x\n")
    with pytest.raises(RubricError, match="not valid YAML"):
        load_rubric(bad)
    with pytest.raises(RubricError, match="no such file"):
        load_rubric(tmp_path / "absent.yaml")


def test_a_case_spec_the_reference_cannot_build_is_a_rubric_error(tmp_path):
    from grader import grade

    def edit(d):
        d["steps"][0]["cases"][0]["args"]["inputs"] = "no_such_constant"

    with pytest.raises(RubricError, match=r"steps\.attn_scores_for_query\.cases\[0\]\.args\.inputs"):
        grade(RUBRIC.parent / "solutions" / "attention.py", rubric=broken(tmp_path, edit),
              steps=["attn_scores_for_query"])


@pytest.mark.parametrize("attribute", ["num_head", "out_proj.no_such", "heads.0.p"])
def test_an_attribute_the_reference_lacks_is_a_rubric_error(tmp_path, attribute):
    # compared as absent on both sides, such an attribute used to pass for any module
    from grader.cases import Preparer, load_reference

    def edit(d):
        step = next(s for s in d["steps"] if s["id"] == "gpt2_small_attention")
        step["attributes"] = ["num_heads", attribute]

    rubric = load_rubric(broken(tmp_path, edit))
    preparer = Preparer(rubric, load_reference(rubric.reference))
    with pytest.raises(RubricError, match=rf"steps\.gpt2_small_attention\.attributes.*no attribute "
                                          rf"'{attribute}'"):
        preparer.prepare(rubric.step("gpt2_small_attention"))


def test_a_dotted_attribute_is_compared_through_the_path(rubric):
    from grader.cases import _attribute, load_reference

    module = load_reference(rubric.reference).MultiHeadAttention(4, 4, 6, 0.1, num_heads=2)
    assert _attribute(module, "dropout.p") == 0.1
    assert _attribute(module, "out_proj.in_features") == 4


def _first_step_of_kind(data: dict, kind: str) -> int:
    return next(i for i, step in enumerate(data["steps"]) if step["kind"] == kind)


# What each case key does is read from the grader's requests: a function's or a procedure's call has
# no forward, so nothing in it can stand in for submodules, load weights, or probe a forward's inputs.
FORWARD_KEYS = {"inputs": [{"randn": [2, 6, 3]}], "weights": "random", "mode": "train",
                "replay": "heads", "probes": ["batch"], "train_calls": 2, "gradients": True}


@pytest.mark.parametrize("kind", ["function", "procedure", "factory"])
@pytest.mark.parametrize("key", sorted(FORWARD_KEYS))
def test_a_case_key_that_means_nothing_for_its_kind_is_a_rubric_error(tmp_path, kind, key):
    def edit(data):
        index = _first_step_of_kind(data, kind)
        data["steps"][index]["cases"][0][key] = FORWARD_KEYS[key]
        edit.index = index
    message = error_for(tmp_path, edit)
    assert f": steps[{edit.index}].cases[0].{key}: means nothing in a case of a {kind} step" in message
    assert "which only a class step does; remove it" in message


def test_a_procedure_case_cannot_expect_a_raise(tmp_path):
    def edit(data):
        edit.index = _first_step_of_kind(data, "procedure")
        data["steps"][edit.index]["cases"][0]["raises"] = "ValueError"
    message = error_for(tmp_path, edit)
    assert f"steps[{edit.index}].cases[0].raises: means nothing in a case of a procedure step" in message
