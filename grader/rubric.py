"""Load and validate the rubric (config.yaml) into typed objects, before any grading starts.

Every problem is a `RubricError` naming the file, the key path (`steps[3].cases[1].seed`) and what
was expected. Defaults live here, in `Defaults`, and nowhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import RubricError
from .registry import KINDS, REGISTRY, applies, missing_case_text

PROBES = ("look_ahead", "batch")
WEIGHTS = ("reference_init", "random")
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STEM = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")  # `course.exercise`: a file's stem


@dataclass(frozen=True)
class Defaults:
    atol: float = 1e-5
    rtol: float = 1e-4
    step_timeout: float = 10.0  # wall-clock seconds for one step's cases in the worker
    load_timeout: float = 30.0  # wall-clock seconds to start the worker and run the submission's code
    submission_timeout: float = 300.0  # wall-clock seconds for everything of one submission
    weight_scale: float = 0.5  # random weights are randn * weight_scale
    # Limits of the worker process that runs student code (see grader/confine.py)
    cpu_seconds: float = 120.0  # CPU time of one worker process
    memory_mb: int = 2048  # address space; torch itself needs about 700 MB
    file_size_mb: int = 16  # the largest file it may write
    output_kb: int = 1024  # what it may print, in all, before it is stopped
    processes: int = 32  # processes and threads it may run (when the grader runs as root)
    open_files: int = 256


LIMIT_KEYS = ("cpu_seconds", "memory_mb", "file_size_mb", "output_kb", "processes", "open_files")


@dataclass(frozen=True)
class Labels:
    """A case's axis labels for the pictures of its outputs: `labels: {rows: [...], cols: [...]}`
    (a list alone labels both), and optionally what a row and a column are (`row_name: query`)."""

    rows: tuple[str, ...] = ()
    cols: tuple[str, ...] = ()
    row_name: str = ""  # default: "query" where rows are labelled, else "row"
    col_name: str = ""  # default: "key" where columns are labelled, else "column"


@dataclass(frozen=True)
class Case:
    name: str
    visible: bool
    seed: int
    args: dict[str, Any]  # constructor or call arguments by the signature's names (tensor specs)
    inputs: tuple[Any, ...] = ()  # forward inputs (tensor specs), for class cases
    weights: str | None = None  # "reference_init" | "random" | None (the student's own init)
    mode: str = "eval"
    replay: tuple[str, ...] = ()  # submodules replaced by the reference's outputs (shells.install)
    raises: tuple[str, ...] = ()  # exception names the call must raise (a refusal case)
    let: dict[str, Any] = field(default_factory=dict)  # named values built first, in order
    probes: tuple[str, ...] = ()  # extra inputs derived from the first: look_ahead, batch
    train_calls: int = 0  # extra forward calls in training mode (dropout behaviour)
    gradients: bool = False  # run backward and report which parameters got a gradient
    # the look_ahead probe: the input's time dimension (default: -1 for integer token ids, -2 for
    # (batch, tokens, features) floats) and, for token ids, the range later tokens are redrawn from
    # (default: [0, the largest id + 1])
    time_dim: int | None = None
    token_range: tuple[int, int] | None = None
    meta: bool = False  # built on the meta device on both sides: shapes only, no memory (GPT-2 sized)
    draws: int = 0  # a sampler: called this many times under one seed, its outputs stacked
    labels: Labels = Labels()  # the axes of the pictures of its outputs (grader.figures)


@dataclass(frozen=True)
class Check:
    check: str
    points: float
    cases: tuple[str, ...] = ()  # the cases it looks at; empty: all that apply
    tolerance: float | None = None
    advice: str = ""  # what to do when it fails, in the course's words (replaces the built-in's)


@dataclass(frozen=True)
class Hint:
    """A hint and when it fits: untagged, on any failure of its step; tagged, only when one of its
    `checks` failed (where the code raised and nothing could be judged: was not judged) or one of
    its known `mistakes` was named (grader.judge.fitting_hints)."""

    text: str
    checks: tuple[str, ...] = ()
    mistakes: tuple[str, ...] = ()

    @property
    def tagged(self) -> bool:
        return bool(self.checks or self.mistakes)


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    section: str
    kind: str
    signature: str
    points: float
    cases: tuple[Case, ...]
    checks: tuple[Check, ...]
    hints: tuple[str, ...] = ()  # every hint's text, in order
    atol: float = Defaults.atol
    rtol: float = Defaults.rtol
    timeout: float = Defaults.step_timeout
    memory_mb: int = Defaults.memory_mb  # per-step limits, lower than or equal to the defaults
    cpu_seconds: float = Defaults.cpu_seconds
    parameters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    attributes: tuple[str, ...] = ()
    shells: tuple[str, ...] = ()  # for procedures: the reference classes its arguments mimic
    reference: str = ""  # the reference name, when it differs from the id
    mistakes: tuple[str, ...] = ()  # known mistakes to recognise when the step fails
    hint_rules: tuple[Hint, ...] = ()  # the hints with when each fits; empty: all untagged
    grad: bool = False  # a function or procedure that trains (calls backward): run with autograd on
    pictures: bool = True  # draw a failed visible case's matrices in the feedback (grader.figures)
    uses: tuple[str, ...] = ()  # other steps whose code this one runs (blamed when they fail)

    @property
    def tagged_hints(self) -> tuple[Hint, ...]:
        """Every hint with its tags (a step made without `hint_rules` has untagged hints only)."""
        if self.hint_rules and tuple(h.text for h in self.hint_rules) == self.hints:
            return self.hint_rules
        return tuple(Hint(text) for text in self.hints)

    @property
    def arg_names(self) -> tuple[str, ...]:
        return signature_names(self.signature)

    @property
    def reference_name(self) -> str:
        return self.reference or self.id


@dataclass(frozen=True)
class Rubric:
    path: str
    title: str
    reference: Path | None  # the reference solutions file (None in a student bundle)
    constants: dict[str, Any]
    steps: tuple[Step, ...]
    defaults: Defaults = Defaults()
    mistakes: Path | None = None  # the file of known-mistake implementations
    expected: Path | None = None  # a student bundle's precomputed answers (instead of a reference)
    expected_sha256: str = ""
    require: tuple[str, ...] = ()  # sandbox layers without which nothing is graded (`sandbox.require`)
    course_checks: Path | None = None  # the course's own checks (grader.course), if any
    # `course:`, with its defaults applied by load_rubric
    exercise: str = ""  # the stem of the file students hand in (attention: attention.ipynb or .py)
    exercises_dir: Path | None = None  # the folder of the exercise stubs (`course.exercises`)
    course_name: str = ""  # a short name for titles (`course.name`; default: the title)

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        known = ", ".join(s.id for s in self.steps)
        raise KeyError(f"no step {step_id!r} in the rubric; the steps are: {known}")


# The case keys that only some kinds of step use: (those kinds, what the key does). A key given to
# another kind would be taken and do nothing, so loading the rubric refuses it.
CASE_KEY_KINDS: dict[str, tuple[tuple[str, ...], str]] = {
    "inputs": (("class",), "it is what forward runs on"),
    "weights": (("class",), "it loads weights into the module before forward"),
    "mode": (("class",), "it puts the module in train or eval mode before forward"),
    "replay": (("class",), "it stands in for submodules while forward runs"),
    "probes": (("class",), "it derives extra inputs for forward"),
    "train_calls": (("class",), "it calls forward again in train mode"),
    "gradients": (("class",), "it sends a gradient back through forward"),
    "time_dim": (("class",), "it tells the look-ahead probe which dimension is time"),
    "token_range": (("class",), "it tells the look-ahead probe which token ids to draw"),
    "meta": (("class", "factory"), "it builds the module on the meta device"),
    "raises": (("function", "class", "factory"), "it expects the call to raise"),
    "draws": (("function",), "it calls a sampler many times and counts what it draws"),
}
MAX_DRAWS = 100_000


def signature_names(signature: str) -> tuple[str, ...]:
    """The argument names of `name(a, b, c=1)`: ("a", "b", "c")."""
    inside = signature[signature.index("(") + 1 : signature.rindex(")")]
    return tuple(p.split("=")[0].strip() for p in inside.split(",") if p.strip())


# ------------------------------------------------------------------------------ loading


def read_yaml(text: str) -> Any:
    """YAML's safe subset, read by libyaml where PyYAML has it (8 times faster than the pure-Python
    reader on this rubric: 0.03 s instead of 0.2 s of every cold check)."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - safe


def load_rubric(path: str | Path) -> Rubric:
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RubricError(where, "", "no such file; pass the course's config.yaml with --rubric") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RubricError(where, "", f"cannot be read ({exc})") from None
    try:
        data = read_yaml(text)
    except yaml.YAMLError as exc:
        raise RubricError(where, "", f"is not valid YAML: {exc}") from None
    return _Validator(where, path.parent).rubric(data)


class _Validator:
    def __init__(self, where: str, base: Path):
        self.where = where
        self.base = base

    def fail(self, key_path: str, problem: str):
        raise RubricError(self.where, key_path, problem)

    # -- generic helpers

    def mapping(self, data: Any, key_path: str, allowed: dict[str, bool]) -> dict:
        """`data` as a dict whose keys are in `allowed` (name -> required)."""
        if not isinstance(data, dict):
            self.fail(key_path, f"expected a mapping, got {_kind(data)}")
        for key in data:
            if key not in allowed:
                self.fail(_join(key_path, key), f"unknown key; expected one of: {', '.join(allowed)}")
        for key, required in allowed.items():
            if required and key not in data:
                self.fail(_join(key_path, key), "missing required key")
        return data

    def typed(self, data: dict, key: str, key_path: str, types, what: str, default=None):
        if key not in data:
            return default
        value = data[key]
        if isinstance(value, bool) and bool not in _as_tuple(types):
            self.fail(_join(key_path, key), f"expected {what}, got {_kind(value)}")
        if not isinstance(value, types):
            self.fail(_join(key_path, key), f"expected {what}, got {_kind(value)}")
        return value

    def number(self, data, key, key_path, default=None, minimum=0.0):
        value = self.typed(data, key, key_path, (int, float), "a number", default)
        if value is not None and value < minimum:
            self.fail(_join(key_path, key), f"expected a number >= {minimum}, got {value}")
        return value

    def text(self, data, key, key_path, default=None):
        return self.typed(data, key, key_path, str, "a string", default)

    def strings(self, data, key, key_path) -> tuple[str, ...]:
        value = self.typed(data, key, key_path, list, "a list of strings", [])
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(f"{_join(key_path, key)}[{index}]", f"expected a string, got {_kind(item)}")
        return tuple(value)

    # -- the rubric

    def rubric(self, data: Any) -> Rubric:
        data = self.mapping(
            data, "", {"rubric": True, "title": False, "reference": False, "mistakes": False,
                       "expected": False, "expected_sha256": False, "defaults": False,
                       "constants": False, "sandbox": False, "course_checks": False,
                       "course": False, "steps": True},
        )
        version = data["rubric"]
        if version != 1:
            self.fail("rubric", f"expected format version 1, got {version!r}")
        defaults = self.defaults(data.get("defaults", {}))
        reference = expected = None
        if "expected" in data:  # a student bundle: precomputed answers, no solutions
            expected = self.base / self.text(data, "expected", "")
            if not expected.is_file():
                self.fail("expected", f"the precomputed answers {expected} do not exist")
            if not isinstance(data.get("expected_sha256"), str):
                self.fail("expected_sha256", "missing: the checksum of the precomputed answers")
        elif "reference" in data:
            reference = self.base / self.text(data, "reference", "")
            if not reference.is_file():
                self.fail("reference", f"the reference solutions file {reference} does not exist")
        else:
            self.fail("reference", "missing required key (the reference solutions file)")
        title = self.text(data, "title", "", "")
        exercise, exercises_dir, course_name = self.course_metadata(data.get("course", {}), reference, title)
        constants = self.typed(data, "constants", "", dict, "a mapping of names to values", {})
        course_checks = None
        if "course_checks" in data:  # the course's own checks join the registry before the steps
            from .course import load_checks

            course_checks = self.base / self.text(data, "course_checks", "")
            load_checks(course_checks, self.where)
        steps_data = self.typed(data, "steps", "", list, "a list of steps")
        if not steps_data:
            self.fail("steps", "expected at least one step")
        steps = tuple(self.step(s, f"steps[{i}]", defaults, constants) for i, s in enumerate(steps_data))
        seen: set[str] = set()
        for index, step in enumerate(steps):
            if step.id in seen:
                self.fail(f"steps[{index}].id", f"duplicate step id {step.id!r}")
            seen.add(step.id)
        self.check_uses(steps)
        mistakes = None
        if "mistakes" in data:
            mistakes = self.base / self.text(data, "mistakes", "")
            if not mistakes.is_file():
                self.fail("mistakes", f"the known-mistakes file {mistakes} does not exist")
        elif expected is None and any(step.mistakes for step in steps):
            self.fail("mistakes", "steps list mistakes, but no `mistakes:` file is given")
        return Rubric(self.where, title, reference, constants, steps,
                      defaults, mistakes, expected, data.get("expected_sha256", ""),
                      self.sandbox(data.get("sandbox", {})), course_checks,
                      exercise=exercise, exercises_dir=exercises_dir, course_name=course_name)

    def course_metadata(self, data: Any, reference: Path | None, title: str) -> tuple[str, Path, str]:
        """`course: {exercise, exercises, name}`: the stem of the file students hand in (default: the
        reference's; a student bundle's rubric names it), the stubs folder (default exercises/) and a
        short name for titles (default: the title)."""
        data = self.mapping(data, "course", {"exercise": False, "exercises": False, "name": False})
        exercise = self.text(data, "exercise", "course")
        if exercise is None:
            from .choose import EXERCISE  # a bundle made before `course:` existed was chapter 3's

            exercise = reference.stem if reference is not None else EXERCISE
        elif not _STEM.match(exercise):
            self.fail("course.exercise", f"expected a file's stem (e.g. attention for attention.ipynb and "
                      f"attention.py: letters, digits, _ and -, no folder, no suffix), got {exercise!r}")
        elif re.search(r"-\d+$", exercise):
            self.fail("course.exercise", f"{exercise!r} ends like a learning platform's copy of a "
                      "repeated upload (attention-1.ipynb); drop the -number")
        exercises = self.text(data, "exercises", "course", "exercises")
        if not exercises.strip():
            self.fail("course.exercises", "expected the stubs folder, relative to the rubric; got nothing")
        name = self.text(data, "name", "course")
        if name is not None and not name.strip():
            self.fail("course.name", "expected a short name for titles; got nothing")
        return exercise, self.base / exercises, " ".join((name or title or f"{exercise} exercises").split())

    def sandbox(self, data: Any) -> tuple[str, ...]:
        """`sandbox: {require: [landlock, pid, ...]}`: the layers a grading machine must have."""
        from .confine import LAYERS

        data = self.mapping(data, "sandbox", {"require": False})
        required = self.strings(data, "require", "sandbox")
        for index, name in enumerate(required):
            if name not in LAYERS:
                self.fail(f"sandbox.require[{index}]",
                          f"unknown sandbox layer {name!r}; the layers are: {', '.join(LAYERS)}")
        return required

    def defaults(self, data: Any) -> Defaults:
        base = Defaults()
        names = dict.fromkeys(base.__dataclass_fields__, False)
        data = self.mapping(data, "defaults", names)
        values = {}
        for name in names:
            kind = type(getattr(base, name))
            value = self.number(data, name, "defaults", getattr(base, name))
            if kind is int and value != int(value):
                self.fail(f"defaults.{name}", f"expected a whole number, got {value}")
            values[name] = kind(value)
        return Defaults(**values)

    def step(self, data: Any, key_path: str, defaults: Defaults, constants: dict) -> Step:
        data = self.mapping(data, key_path, {
            "id": True, "title": True, "section": True, "kind": True, "signature": True,
            "points": True, "cases": True, "checks": True, "hints": False, "atol": False,
            "rtol": False, "timeout": False, "parameters": False, "attributes": False,
            "shells": False, "reference": False, "memory_mb": False, "cpu_seconds": False,
            "mistakes": False, "grad": False, "pictures": False, "uses": False,
        })
        step_id = self.text(data, "id", key_path)
        if not _ID.match(step_id):
            self.fail(f"{key_path}.id", f"expected a Python name, got {step_id!r}")
        kind = self.text(data, "kind", key_path)
        if kind not in KINDS:
            self.fail(f"{key_path}.kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
        signature = self.text(data, "signature", key_path)
        if not re.match(r"^\w+\(.*\)$", signature):
            self.fail(f"{key_path}.signature", f"expected `name(arg, ...)`, got {signature!r}")
        names = signature_names(signature)
        cases = self.typed(data, "cases", key_path, list, "a list of cases")
        if not cases:
            self.fail(f"{key_path}.cases", "expected at least one case")
        cases = tuple(self.case(c, f"{key_path}.cases[{i}]", kind, names) for i, c in enumerate(cases))
        case_names = [c.name for c in cases]
        if len(set(case_names)) != len(case_names):
            self.fail(f"{key_path}.cases", f"case names must be unique, got {case_names}")
        checks = self.typed(data, "checks", key_path, list, "a list of checks")
        checks = tuple(
            self.check(c, f"{key_path}.checks[{i}]", kind, case_names) for i, c in enumerate(checks)
        )
        for index, check in enumerate(checks):
            if not any(applies(check, case) for case in cases):
                self.fail(f"{key_path}.checks[{index}]", missing_case_text(check))
        points = float(self.number(data, "points", key_path))
        if abs(sum(c.points for c in checks) - points) > 1e-9:
            self.fail(f"{key_path}.points", f"is {points:g}, but its checks' points add up to "
                      f"{sum(c.points for c in checks):g}; make them agree")
        for name in ("memory_mb", "cpu_seconds"):
            value = self.number(data, name, key_path)
            if value is not None and value > getattr(defaults, name):
                self.fail(f"{key_path}.{name}", f"is {value:g}, above defaults.{name} "
                          f"({getattr(defaults, name):g}); a step may only tighten a limit")
        parameters = self.typed(data, "parameters", key_path, dict, "a mapping name -> shape", {})
        for name, shape in parameters.items():
            if not isinstance(shape, list) or not all(isinstance(s, (str, int)) for s in shape):
                self.fail(f"{key_path}.parameters.{name}", "expected a list of dimension names")
        mistakes = self.strings(data, "mistakes", key_path)
        hints = self.hints(data, key_path, [c.check for c in checks], mistakes)
        grad = self.typed(data, "grad", key_path, bool, "true or false", False)
        if grad and kind not in ("function", "procedure"):
            self.fail(f"{key_path}.grad", f"means nothing for a {kind} step: a module's forward already "
                      "runs with autograd where a check needs gradients (gradients_flow); `grad: true` "
                      "is for a function or procedure that calls backward()")
        return Step(
            id=step_id,
            title=self.text(data, "title", key_path),
            section=str(self.typed(data, "section", key_path, (str, int, float), "a section number")),
            kind=kind,
            signature=signature,
            points=points,
            cases=cases,
            checks=checks,
            hints=tuple(hint.text for hint in hints),
            atol=float(self.number(data, "atol", key_path, defaults.atol)),
            rtol=float(self.number(data, "rtol", key_path, defaults.rtol)),
            timeout=float(self.number(data, "timeout", key_path, defaults.step_timeout)),
            memory_mb=int(self.number(data, "memory_mb", key_path, defaults.memory_mb)),
            cpu_seconds=float(self.number(data, "cpu_seconds", key_path, defaults.cpu_seconds)),
            parameters={k: tuple(str(d) for d in v) for k, v in parameters.items()},
            attributes=self.strings(data, "attributes", key_path),
            shells=self.strings(data, "shells", key_path),
            reference=self.text(data, "reference", key_path, ""),
            mistakes=mistakes,
            hint_rules=hints,
            grad=grad,
            pictures=self.typed(data, "pictures", key_path, bool, "true or false", True),
            uses=self.strings(data, "uses", key_path),
        )

    def check_uses(self, steps: tuple[Step, ...]) -> None:
        """Each step's `uses:` names other steps of this rubric (whose failure its feedback names)."""
        ids = [step.id for step in steps]
        for index, step in enumerate(steps):
            for position, name in enumerate(step.uses):
                if name == step.id:
                    self.fail(f"steps[{index}].uses[{position}]",
                              f"{step.id!r} names itself; list the other steps whose code it runs")
                elif name not in ids:
                    self.fail(f"steps[{index}].uses[{position}]",
                              f"no step has the id {name!r}; the steps are: {', '.join(ids)}")

    def hints(self, data: dict, key_path: str, checks: list[str], mistakes: tuple[str, ...]
              ) -> tuple[Hint, ...]:
        """`hints:` items: a string (shown on any failure) or `{text, checks, mistakes}` (shown when
        one of those checks failed or one of those known mistakes was named)."""
        items = self.typed(data, "hints", key_path, list, "a list of hints", [])
        hints = []
        for index, item in enumerate(items):
            where = f"{_join(key_path, 'hints')}[{index}]"
            if isinstance(item, str):
                hints.append(Hint(item))
                continue
            if not isinstance(item, dict):
                self.fail(where, f"expected a string or a mapping {{text, checks, mistakes}}, got "
                          f"{_kind(item)}")
            item = self.mapping(item, where, {"text": True, "checks": False, "mistakes": False})
            text = self.text(item, "text", where)
            tagged = {}
            for key, known, what in (("checks", checks, "check"), ("mistakes", mistakes, "mistake")):
                names = self.strings(item, key, where)
                for number, name in enumerate(names):
                    if name not in known:
                        self.fail(f"{where}.{key}[{number}]", f"this step has no {what} {name!r}; its "
                                  f"{key} are: {', '.join(dict.fromkeys(known)) or 'none'}")
                tagged[key] = names
            if not tagged["checks"] and not tagged["mistakes"]:
                self.fail(where, "a hint mapping needs `checks:` or `mistakes:` (when to show it); a "
                          "hint for any failure is a plain string")
            hints.append(Hint(text, tagged["checks"], tagged["mistakes"]))
        return tuple(hints)

    def case(self, data: Any, key_path: str, kind: str, names: tuple[str, ...]) -> Case:
        data = self.mapping(data, key_path, {
            "name": True, "visible": False, "seed": False, "args": False, "inputs": False,
            "weights": False, "mode": False, "replay": False, "raises": False, "let": False,
            "probes": False, "train_calls": False, "gradients": False, "time_dim": False,
            "token_range": False, "meta": False, "draws": False, "labels": False,
        })
        for key in data:
            if key in CASE_KEY_KINDS and kind not in CASE_KEY_KINDS[key][0]:
                kinds, use = CASE_KEY_KINDS[key]
                self.fail(f"{key_path}.{key}", f"means nothing in a case of a {kind} step: {use}, "
                          f"which only a {' or '.join(kinds)} step does; remove it")
        args = self.typed(data, "args", key_path, dict, "a mapping of argument names to values", {})
        for name in args:
            if name not in names:
                self.fail(f"{key_path}.args.{name}", f"not an argument of the signature {names}")
        weights = self.text(data, "weights", key_path)
        if weights is not None and weights not in WEIGHTS:
            self.fail(f"{key_path}.weights", f"expected one of {', '.join(WEIGHTS)}, got {weights!r}")
        mode = self.text(data, "mode", key_path, "eval")
        if mode not in ("eval", "train"):
            self.fail(f"{key_path}.mode", f"expected eval or train, got {mode!r}")
        inputs = self.typed(data, "inputs", key_path, list, "a list of tensor specs", [])
        probes = self.strings(data, "probes", key_path)
        for probe in probes:
            if probe not in PROBES:
                self.fail(f"{key_path}.probes", f"unknown probe {probe!r}; expected {', '.join(PROBES)}")
        if probes and not inputs:
            self.fail(f"{key_path}.probes", "probes derive extra inputs from `inputs`; give one")
        time_dim = self.typed(data, "time_dim", key_path, int, "a dimension (an integer)", None)
        token_range = self.typed(data, "token_range", key_path, list, "[low, high]", None)
        if token_range is not None and not (len(token_range) == 2 and all(
                type(t) is int for t in token_range) and token_range[0] < token_range[1]):
            self.fail(f"{key_path}.token_range", f"expected [low, high] integers, low < high, got "
                      f"{token_range!r}")
        meta = self.typed(data, "meta", key_path, bool, "true or false", False)
        if meta and (inputs or weights or data.get("raises")):
            self.fail(f"{key_path}.meta", "only a case that builds a module for its structure (no "
                      "inputs, weights or raises) is built on the meta device")
        draws = self.draws(data, key_path)
        if (time_dim is not None or token_range is not None) and "look_ahead" not in probes:
            self.fail(f"{key_path}.{'time_dim' if time_dim is not None else 'token_range'}",
                      "only the look_ahead probe uses it; add `probes: [look_ahead]`")
        return Case(
            name=self.text(data, "name", key_path),
            visible=self.typed(data, "visible", key_path, bool, "true or false", False),
            seed=self.typed(data, "seed", key_path, int, "an integer seed", 0),
            args=args,
            inputs=tuple(inputs),
            weights=weights,
            mode=mode,
            replay=self.replay(data, key_path),
            raises=self.strings(data, "raises", key_path),
            let=self.typed(data, "let", key_path, dict, "a mapping of names to tensor specs", {}),
            probes=probes,
            train_calls=self.typed(data, "train_calls", key_path, int, "a number of calls", 0),
            gradients=self.typed(data, "gradients", key_path, bool, "true or false", False),
            time_dim=time_dim,
            token_range=None if token_range is None else tuple(token_range),
            meta=meta,
            draws=draws,
            labels=self.labels(data, key_path),
        )

    def labels(self, data: dict, key_path: str) -> Labels:
        """`labels:` of a case: a list of strings for both axes, or `{rows, cols, row_name,
        col_name}`, each optional."""
        value = data.get("labels")
        if value is None:
            return Labels()
        where = f"{key_path}.labels"
        if isinstance(value, list):
            value = {"rows": value, "cols": value}
        value = self.mapping(value, where, {"rows": False, "cols": False, "row_name": False,
                                            "col_name": False})
        axes = {}
        for axis in ("rows", "cols"):
            names = value.get(axis, [])
            if not isinstance(names, list) or not all(isinstance(n, (str, int, float)) for n in names):
                self.fail(f"{where}.{axis}", "expected a list of labels, e.g. the tokens "
                          '["Your", "journey", "starts"]')
            axes[axis] = tuple(str(n) for n in names)
        for name in ("row_name", "col_name"):
            if not isinstance(value.get(name, ""), str):
                self.fail(f"{where}.{name}", "expected a word, e.g. query or key")
        return Labels(axes["rows"], axes["cols"], value.get("row_name", ""), value.get("col_name", ""))

    def draws(self, data: dict, key_path: str) -> int:
        """`draws: 2000`: the sampler is called that many times (one seed, its generator running
        on), each call's tensor stacked into one, which `samples_match` counts."""
        draws = self.typed(data, "draws", key_path, int, "a number of calls (an integer)", 0)
        if "draws" in data and not 20 <= draws <= MAX_DRAWS:
            self.fail(f"{key_path}.draws", f"expected between 20 and {MAX_DRAWS:,} calls, got "
                      f"{draws}; a goodness-of-fit test needs enough draws to see a distribution")
        if draws and data.get("raises"):
            self.fail(f"{key_path}.draws", "a refusal case raises once; remove `draws` or `raises`")
        return draws

    def replay(self, data: dict, key_path: str) -> tuple[str, ...]:
        """`replay: heads` or `replay: [att, ff]`: the submodules that stand in with the reference's
        outputs (an nn.ModuleList: each of its modules)."""
        value = data.get("replay")
        if value is None:
            return ()
        paths = [value] if isinstance(value, str) else value
        if not isinstance(paths, list) or not paths or not all(
                isinstance(p, str) and p for p in paths):
            self.fail(f"{key_path}.replay", f"expected a submodule path or a list of them, got "
                      f"{_kind(value)}")
        return tuple(paths)

    def check(self, data: Any, key_path: str, kind: str, case_names: list[str]) -> Check:
        data = self.mapping(data, key_path, {"check": True, "points": True, "cases": False,
                                             "tolerance": False, "advice": False})
        name = self.text(data, "check", key_path)
        if name not in REGISTRY:
            self.fail(f"{key_path}.check", f"unknown check {name!r}; expected one of {', '.join(REGISTRY)}")
        if kind not in REGISTRY[name].kinds:
            self.fail(f"{key_path}.check", f"check {name!r} does not apply to a {kind} step")
        cases = self.strings(data, "cases", key_path)
        for case in cases:
            if case not in case_names:
                self.fail(f"{key_path}.cases", f"no case named {case!r} in this step")
        tolerance = self.number(data, "tolerance", key_path)
        return Check(name, float(self.number(data, "points", key_path)), cases,
                     None if tolerance is None else float(tolerance),
                     self.text(data, "advice", key_path, ""))


def _join(key_path: str, key: object) -> str:
    return f"{key_path}.{key}" if key_path else str(key)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__) + (
        f" ({value!r})" if isinstance(value, (bool, int, float, str)) else "")


def _as_tuple(types) -> tuple:
    return types if isinstance(types, tuple) else (types,)
