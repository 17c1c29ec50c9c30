"""The student bundle: what a course hands to students, without the solutions.

    attention-grader bundle --out DIR

writes DIR/exercises/ (the stubs, notebook and .py: the files named after the rubric's
`course.exercise` in its `course.exercises` folder), DIR/grader/ (this package), DIR/config.yaml
(a student rubric with only the visible cases, no reference, no mistakes file), DIR/expected.bin
(the visible cases' inputs, the reference's answers and the known mistakes' answers, precomputed:
plain tensors in the grader's wire format, never pickle; its SHA-256 is recorded in the rubric), a
pyproject.toml so that `pip install DIR` installs the grader, and a README for students (its title
and file names from the rubric's `course:`).

`attention-grader check` run from the bundle grades the visible cases against the stored answers,
with the same checks, feedback and mistake diagnosis, and says that hidden cases are graded by the
course. Nothing in the bundle can reproduce a reference answer for inputs of the student's choosing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from . import wire
from .errors import RubricError, UsageError
from .registry import applies
from .rubric import Rubric, Step, read_yaml

EXPECTED_FILE = "expected.bin"
COURSE_CHECKS_FILE = "course_checks.py"  # the course's own checks (`course_checks:`), in a bundle
HIDDEN_NOTE = ("This bundle grades the visible cases only; the hidden cases (other shapes, batch "
               "sizes and sequence lengths) are graded by the course.")
_FIELDS = ("args", "output", "inputs", "parameters", "buffers", "attributes", "raised",
           "raised_message", "weights",
           "replays", "look_ahead", "batch_items", "repeats", "projection", "gradients", "transposed",
           "arguments_after")


# ------------------------------------------------------------------------------ building a bundle


def build_bundle(rubric: Rubric, out: Path) -> list[Path]:
    """Write the student bundle for `rubric` into `out`; return the files written."""
    from .engine import prepare

    if rubric.reference is None:
        raise UsageError(f"{rubric.path} is already a student bundle's rubric; build the bundle from "
                         "the course's rubric (the one with the reference solutions), with --rubric")
    stubs = exercise_stubs(rubric)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} exists and is not empty; choose a new folder for the bundle")
    steps = [visible_step(step) for step in rubric.steps]
    steps = [step for step in steps if step is not None]
    prepared, diagnoser = prepare(rubric, steps)
    stored: dict[str, Any] = {}
    for item in prepared:
        step = item.step
        mistakes = {}
        for mistake_id in step.mistakes:
            variants = diagnoser.known[mistake_id].implementations[step.id]
            mistakes[mistake_id] = {
                "title": diagnoser.known[mistake_id].title,
                "explanation": diagnoser.known[mistake_id].explanation,
                "hint": diagnoser.known[mistake_id].hint,
                "variants": [[_expected_record(step, diagnoser.preparer.expect(
                    step, case, variant, f"{step.id}.{case.name}", tolerant=True))
                    for case in step.cases] for variant in variants],
            }
        stored[step.id] = _compacted({"request": item.request,
                                      "expected": [_expected_record(step, e) for e in item.expected],
                                      "mistakes": mistakes}, rubric, step)
    out.mkdir(parents=True, exist_ok=True)
    data = wire.encode(stored)
    (out / EXPECTED_FILE).write_bytes(data)
    (out / "config.yaml").write_text(_student_rubric(rubric, steps, hashlib.sha256(data).hexdigest()))
    (out / "exercises").mkdir()
    for stub in stubs:
        shutil.copyfile(stub, out / "exercises" / stub.name)
    if rubric.course_checks is not None:  # the course's own checks judge the visible cases too
        shutil.copyfile(rubric.course_checks, out / COURSE_CHECKS_FILE)
    package = Path(__file__).resolve().parent

    def not_for_students(folder: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n == "__pycache__" or n.endswith(".pyc")}
        if Path(folder).resolve() == package:
            skipped.add("course")  # an installed grader's packed course: its solutions above all
        return skipped

    shutil.copytree(package, out / "grader", ignore=not_for_students)
    (out / "pyproject.toml").write_text(pyproject_text(
        f"{_capital(rubric.course_name)}: the exercise stubs and their grader (visible cases only).",
        plugin=True))
    # installed (not editable), the grader finds its rubric and answers packed beside it
    (out / "setup.py").write_text(_SETUP_PY)
    (out / "README.md").write_text(readme_text(rubric, [stub.name for stub in stubs], steps))
    return sorted(p for p in out.rglob("*") if p.is_file())


def exercise_stubs(rubric: Rubric) -> list[Path]:
    """The exercise's stubs the bundle hands out: `<exercise>.ipynb` and `<exercise>.py` in the
    rubric's `course.exercises` folder (those of them that exist); UsageError when there are none."""
    folder = rubric.exercises_dir
    names = [f"{rubric.exercise}{suffix}" for suffix in (".ipynb", ".py")]
    stubs = [folder / name for name in names if (folder / name).is_file()] if folder else []
    if not stubs:
        raise UsageError(f"no exercise stubs for the bundle: {' or '.join(names)} should be in {folder} "
                         "(the rubric's `course.exercises` folder, named after `course.exercise`); "
                         "generate them from the solutions with `python -m grader.authoring`, or "
                         "point `course:` at them")
    return stubs


def readme_text(rubric: Rubric, stubs: list[str], steps: list[Step]) -> str:
    """The students' README: the course's name and title, and its exercise files by name."""
    files = [f"exercises/{name}" for name in stubs]
    fill = f"`{files[0]}`" + "".join(f" (or `{other}`)" for other in files[1:])
    about = f"\n{rubric.title}\n" if rubric.title and rubric.title != rubric.course_name else ""
    return _README.format(name=_capital(rubric.course_name), about=about, fill=fill, first=files[0],
                          step=steps[0].id if steps else rubric.steps[0].id)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def visible_step(step: Step) -> Step | None:
    """The step with only its visible cases and the checks that still have a case to look at."""
    cases = tuple(case for case in step.cases if case.visible)
    if not cases:
        return None
    names = {case.name for case in cases}
    checks = []
    for check in step.checks:
        if not any(applies(check, case) for case in cases):
            continue
        checks.append(dataclasses.replace(check, cases=tuple(n for n in check.cases if n in names)))
    return dataclasses.replace(step, cases=cases, checks=tuple(checks),
                               points=sum(check.points for check in checks))


def _expected_record(step: Step, expected) -> dict:
    from .cases import _as_fixture_marker

    record = {name: getattr(expected, name) for name in _FIELDS}
    # a course fixture (a stand-in model) travels as its name and init; the stored request carries
    # its source for the worker
    record["args"] = [_as_fixture_marker(a) for a in expected.args]
    record["arg_names"] = list(expected.arg_names)
    if step.kind == "procedure":
        record["args"] = []  # the stored request carries them (a module as a shell)
        if expected.output is not None:  # each argument after the call, already detached
            record["output"] = list(expected.output)
    record["buffers"] = {k: list(v) for k, v in expected.buffers.items()}
    record["look_ahead"] = [list(t) for t in expected.look_ahead]
    record["batch_items"] = [list(t) for t in expected.batch_items]
    record["repeats"] = [list(t) for t in expected.repeats]
    if any(check.check == "init" for check in step.checks):  # the values are compared
        record["parameters"] = {k: v.detach() for k, v in expected.parameters.items()}
    else:  # only names and shapes are: do not ship GPT-2's 2.4 million numbers
        record["parameters"] = {k: {"shape": list(v.shape)} for k, v in expected.parameters.items()}
    record["case"] = expected.case.name
    return record


def _student_rubric(rubric: Rubric, steps: list[Step], checksum: str) -> str:
    source = read_yaml(Path(rubric.path).read_text(encoding="utf-8"))
    source.pop("reference", None)
    source.pop("mistakes", None)
    if rubric.course_checks is not None:  # shipped beside the student rubric (build_bundle)
        source["course_checks"] = COURSE_CHECKS_FILE
    # the course's metadata, explicit: a bundle's rubric has no reference to take the stem from
    course = {"exercise": rubric.exercise, "exercises": "exercises", "name": rubric.course_name}
    source = {key: value for key, value in source.items() if key != "course"}
    at = list(source).index("title") + 1 if "title" in source else 1
    source = dict([*list(source.items())[:at], ("course", course), *list(source.items())[at:]])
    source["expected"] = EXPECTED_FILE
    source["expected_sha256"] = checksum
    by_id = {step.id: step for step in steps}
    kept = []
    for step_data in source["steps"]:
        step = by_id.get(step_data["id"])
        if step is None:
            continue
        names = {case.name for case in step.cases}
        step_data["cases"] = [c for c in step_data["cases"] if c["name"] in names]
        kept_checks = {(c.check, c.cases) for c in step.checks}
        step_data["checks"] = [c for c in step_data["checks"]
                               if (c["check"], tuple(n for n in c.get("cases", ()) if n in names))
                               in kept_checks]
        for check in step_data["checks"]:
            if "cases" in check:
                check["cases"] = [n for n in check["cases"] if n in names]
        step_data["points"] = step.points
        if "hints" in step_data:
            step_data["hints"] = _student_hints(step_data["hints"], {c.check for c in step.checks})
        kept.append(step_data)
    source["steps"] = kept
    header = ("# The student rubric: the visible cases only. Their expected answers are precomputed\n"
              f"# in {EXPECTED_FILE} (checksum below); the hidden cases are graded by the course.\n")
    return header + yaml.safe_dump(source, sort_keys=False, allow_unicode=True, width=100)


def _student_hints(hints: list, checks: set[str]) -> list:
    """The hints, each tagged one naming only the checks the visible cases keep; one left with
    neither checks nor mistakes could never be shown, so it is left out."""
    kept = []
    for hint in hints:
        if isinstance(hint, dict):
            hint = {**hint, "checks": [c for c in hint.get("checks", []) if c in checks]}
            if not hint["checks"]:
                del hint["checks"]
                if not hint.get("mistakes"):
                    continue
        kept.append(hint)
    return kept


# ------------------------------------------------------------------------------ grading from one


# A factory case's confirmation (grader.engine.predicted) gives the module seeded random weights:
# GPT-2 small's 2.4 million numbers, in the request and again in the expected answer, made a
# bundle's answers 30 MB. They are stored as the recipe that makes them, checked to make exactly
# them before it replaces them, and the case's input, the same tensor in both, once.
_SEEDED = "$seeded_randn"
_SAME_INPUTS = "$request_inputs"


def _seeded_weights(seed: int, scale: float, shapes: list, then: list | None = None) -> list:
    """randn * scale for each shape, drawn in order from one generator seeded with `seed`; and
    after them, where `then` gives a shape, the input drawn next (randn, unscaled), as
    grader.engine._predict draws a linear layer's input."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    drawn = [torch.randn(tuple(shape), generator=generator) * scale for shape in shapes]
    return drawn + ([torch.randn(tuple(then), generator=generator)] if then is not None else [])


def _compacted(stored: dict, rubric: Rubric, step: Step) -> dict:
    """A step's stored answers with each factory case's seeded weights as their recipe."""
    import torch

    if step.kind != "factory":
        return stored
    scale = rubric.defaults.weight_scale
    cases = [dict(c) for c in stored["request"]["cases"]]
    records = [dict(r) for r in stored["expected"]]
    for case, record, spec in zip(cases, records, step.cases):
        weights = case.get("weights")
        if not isinstance(weights, dict) or not weights:
            continue
        shapes = [list(w.shape) for w in weights.values()]
        drawn = _seeded_weights(spec.seed + 1, scale, shapes)
        if not all(torch.equal(a, b) for a, b in zip(drawn, weights.values())):
            continue  # not what the recipe makes: kept as it is
        recipe = {_SEEDED: {"seed": spec.seed + 1, "scale": scale, "names": list(weights),
                            "shapes": shapes}}
        case["weights"] = recipe
        if record.get("weights") and list(record["weights"]) == list(weights) and all(
                torch.equal(a, b) for a, b in zip(record["weights"].values(), weights.values())):
            record["weights"] = recipe
        inputs = record.get("inputs")
        if inputs and len(inputs) == len(case.get("inputs", [])) and all(
                torch.equal(a, b) for a, b in zip(inputs, case["inputs"])):
            record["inputs"] = _SAME_INPUTS
        sent = case.get("inputs") or []
        if len(sent) == 1 and sent[0].is_floating_point():  # the input drawn next, if it is
            shape = list(sent[0].shape)
            if torch.equal(_seeded_weights(spec.seed + 1, scale, shapes, shape)[-1], sent[0]):
                case["inputs"] = {_SEEDED: {**recipe[_SEEDED], "input": shape}}
    return {**stored, "request": {**stored["request"], "cases": cases}, "expected": records}


def _expanded(stored: dict, rubric: Rubric) -> dict:
    """The stored answers as they were computed: each recipe made into its weights again."""
    def weights(value):
        if isinstance(value, dict) and set(value) == {_SEEDED}:
            recipe = value[_SEEDED]
            drawn = _seeded_weights(int(recipe["seed"]), float(recipe["scale"]), recipe["shapes"])
            return dict(zip(recipe["names"], drawn))
        return value

    def inputs(value):
        if isinstance(value, dict) and set(value) == {_SEEDED}:
            recipe = value[_SEEDED]
            return [_seeded_weights(int(recipe["seed"]), float(recipe["scale"]), recipe["shapes"],
                                    recipe["input"])[-1]]
        return value

    cases = [{**c, "weights": weights(c["weights"])} if "weights" in c else c
             for c in stored["request"].get("cases", [])]
    cases = [{**c, "inputs": inputs(c["inputs"])} if "inputs" in c else c for c in cases]
    records = []
    for case, record in zip(cases, stored["expected"]):
        record = {**record, "weights": weights(record.get("weights", {}))}
        if record.get("inputs") == _SAME_INPUTS:
            record["inputs"] = [x.clone() for x in case.get("inputs", [])]
        records.append(record)
    return {**stored, "request": {**stored["request"], "cases": cases}, "expected": records}


class StoredAnswers:
    """The precomputed answers of a bundle, checked against the checksum in its rubric."""

    def __init__(self, rubric: Rubric):
        path = rubric.expected
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != rubric.expected_sha256:
            raise RubricError(rubric.path, "expected_sha256",
                              f"{path.name} does not match its checksum; the bundle is damaged or was "
                              "edited: download it again from the course")
        try:
            self.stored = wire.decode(data)
        except wire.WireError as exc:
            raise RubricError(rubric.path, "expected", f"{path.name} cannot be read ({exc})") from None
        self.rubric = rubric

    def prepare(self, steps: list[Step]):
        from .cases import PreparedStep

        prepared = []
        for step in steps:
            record = self.stored.get(step.id)
            if record is None:
                raise RubricError(self.rubric.path, f"steps.{step.id}",
                                  f"no stored answers for this step in {self.rubric.expected.name}")
            record = _expanded(record, self.rubric)
            expected = [self._expected(step, r) for r in record["expected"]]
            prepared.append(PreparedStep(step, record["request"], expected))
        return prepared, _StoredDiagnoser(self)

    def _expected(self, step: Step, record: dict):
        import torch

        from .cases import Expected

        case = next(c for c in step.cases if c.name == record["case"])
        fields = {name: record[name] for name in _FIELDS}
        fields["buffers"] = {k: tuple(v) for k, v in fields["buffers"].items()}
        fields["parameters"] = {k: torch.empty(v["shape"]) if isinstance(v, dict) else v
                                for k, v in fields["parameters"].items()}
        fields["look_ahead"] = [tuple(t) for t in fields["look_ahead"]]
        fields["batch_items"] = [tuple(t) for t in fields["batch_items"]]
        fields["repeats"] = [tuple(t) for t in fields["repeats"]]
        return Expected(case, **fields, arg_names=tuple(record.get("arg_names", ())))


class _StoredDiagnoser:
    """Names known mistakes from their precomputed answers, exactly as the course's grader does."""

    def __init__(self, answers: StoredAnswers):
        self.answers = answers

    def explain(self, step: Step, outcomes):
        from .diagnose import explain

        return explain(step, outcomes, self._candidates(step))

    def _candidates(self, step: Step):
        from .diagnose import Diagnosis

        for mistake_id in step.mistakes:
            record = self.answers.stored[step.id]["mistakes"].get(mistake_id)
            if record is None:
                continue
            diagnosis = Diagnosis(mistake_id, record["title"], record["explanation"], record["hint"])
            for variant in record["variants"]:
                by_case = {r["case"]: self.answers._expected(step, r) for r in variant}
                yield diagnosis, lambda case, index, by_case=by_case: by_case[case.name]


def pyproject_text(description: str, *, plugin: bool = False) -> str:
    """The pyproject.toml of a grader shipped without its course checkout (a bundle, the archive)."""
    entry = ('\n[project.entry-points.pytest11]\nattention_grader = "grader.pytest_plugin"\n'
             if plugin else "")
    return _PYPROJECT % {"description": json.dumps(description)[1:-1]} + entry  # a TOML string


_PYPROJECT = """[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "attention-grader"
version = "0.1.0"
description = "%(description)s"
requires-python = ">=3.10"
dependencies = ["torch>=2.2", "numpy>=1.24", "nbformat>=5.7", "ipython>=8.0", "nbconvert>=7.0",
                "pyyaml>=6.0", "matplotlib>=3.7"]

[project.scripts]
attention-grader = "grader.cli:entry"

[tool.setuptools]
packages = ["grader", "grader.report", "grader.batch"]
"""

_SETUP_PY = """\"\"\"Packs this bundle's course (its rubric, expected answers and exercises) into the built
package as grader/course/, so that the grader installed from here (pip install ., not editable) finds it.
An editable install reads this folder itself. There are no reference solutions here to pack.\"\"\"

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

COURSE = ("config.yaml", "expected.bin", "exercises", "course_checks.py")


class BuildWithCourse(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib, "grader", "course")
        target.mkdir(parents=True, exist_ok=True)
        for name in COURSE:
            source = root / name
            if source.is_dir():
                shutil.copytree(source, target / name, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif source.is_file():
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": BuildWithCourse})
"""

_README = """# {name}
{about}
Fill in {fill}, then check your work:

```bash
python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 . && \\
  .venv/bin/attention-grader check {first}
```

`pip install -e .` works too. Other ways to check, with the same grading:

- in the notebook itself: `from grader import check; check()` in a cell (or `check("{step}")`
  for one step) grades what the kernel has defined now;
- with pytest (install it first): `pytest --attention-submission {first}`, one
  test per step; add `--attention-strict` to count steps not yet implemented as failures.

This bundle grades the visible cases, with the same feedback as the course's grader. The
hidden cases (other shapes, batch sizes and sequence lengths) are graded by the course when you
hand in your work, so a pass here is a good sign, not a promise.
"""
