"""grade(): read the submission, run it in a worker, compare with the reference, explain.

    rubric     = load_rubric(...)                 the course's config.yaml, validated
    submission = read_submission(...)             .py or .ipynb into code chunks; never run here
    session    = Session(submission, rubric)      a worker process starts running the code
    prepared   = Preparer(...).prepare(step)      the grader's inputs and the reference's answers
    reply      = session.run(prepared)            what the worker said, typed (grader/replies.py)
    result     = judge(prepared, reply, context)  checks with numbers, diagnosis -> a StepResult
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
from pathlib import Path

from . import __version__
from .models import Report, StepResult, total
from .paths import find_rubric
from .quiet import course_code
from .registry import applies
from .replies import (
    Answered,
    Built,
    Died,
    LoadFailed,
    LoadReply,
    Malformed,
    MalformedReply,
    StepReply,
    TimedOut,
    decode_probe,
)
from .replies import decode_step as replies_decode_step
from .rubric import Rubric, Step, load_rubric
from .sandbox import Limits, Worker, WorkerDied, WorkerTimeout
from .submission import Submission, UnreadableSubmission, read_submission

GRACE = 5.0  # seconds past a time limit before a worker that ignores its alarm is killed


def grade(submission: str | Path | Submission, *, rubric: str | Path | Rubric | None = None,
          steps: list[str] | None = None, seed: int | None = None) -> Report:
    """Grade one submission (a file, or code already read) against the rubric; every chosen step
    is in the report. With `seed` (and one step), only that step's case with this seed is replayed.
    Without `rubric`, the rubric is found by the rule in grader/paths.py.
    """
    started = time.monotonic()
    rubric = rubric if isinstance(rubric, Rubric) else load_rubric(find_rubric(rubric))
    chosen = [rubric.step(s) for s in steps] if steps else list(rubric.steps)
    if seed is not None:
        chosen = [replay_case(step, seed) for step in chosen]
    try:
        read = submission if isinstance(submission, Submission) else read_submission(submission)
    except UnreadableSubmission as problem:
        return _report(str(submission), rubric, [_unread(step) for step in chosen],
                       (str(problem),), started, unreadable=str(problem))
    session = Session(read, rubric)  # the worker starts now and imports torch ...
    try:
        # ... while this process does the same: the two imports overlap on two cores.
        prepared, diagnoser = prepare(rubric, chosen)
        session.expect(prepared)
        results = _blamed([_graded(session, p, diagnoser) for p in prepared], rubric)
    finally:
        session.close()
    return _report(read.path, rubric, results, session.notes(), started, session.sandbox)


def prepare(rubric: Rubric, steps: list[Step]):
    """Every step's inputs and reference answers, and the mistake diagnoser: computed once, before
    any grading (a bad case is a rubric error here), and reusable for a whole class. It sets this
    process's torch to one thread (torch.set_num_threads(1)) for the judging that follows."""
    import torch

    # One thread, as in the worker: the grader's tensors are small, and a second OpenMP thread
    # only competes with the workers for the cores (judging took 40 ms of CPU per submission with
    # two threads, 25 with one).
    torch.set_num_threads(1)
    if rubric.expected is not None:  # a student bundle: the answers were computed by the course
        from .bundle import StoredAnswers

        return StoredAnswers(rubric).prepare(steps)
    from .cases import Preparer, load_reference
    from .diagnose import Diagnoser

    preparer = Preparer(rubric, load_reference(rubric.reference))
    prepared = [predicted(preparer, preparer.prepare(step)) for step in steps]
    diagnoser = Diagnoser(rubric, preparer)
    diagnoser.replays = {(p.step.id, e.case.name): e.replays for p in prepared for e in p.expected
                         if e.replays}
    return prepared, diagnoser


PROBE_TOKENS = 3  # tokens of the input a factory's module is run on to confirm it


def predicted(preparer, prepared):
    """A factory step with, on each case it builds for real, what confirms the module: the
    reference's module given random weights (drawn from the case's seed) and run on an input the
    grader chose, its output predicted here. The worker gives the student's module the same
    weights and input (`_bound` binds them by structure where the names differ); the structure
    and counts the student's process reports earn points only where that output is the
    reference's (grader.judge). A case built on the meta device (`meta: true`) runs nothing."""
    from .cases import meta_build

    step = prepared.step
    if step.kind != "factory":
        return prepared
    cases = list(prepared.request["cases"])
    for index, expected in enumerate(prepared.expected):
        case = expected.case
        if case.raises or expected.raised is not None or expected.inputs or meta_build(step, case):
            continue
        with course_code():  # the reference's code: what it prints reaches nobody
            _predict(preparer, step, expected)
        cases[index] = {**cases[index], "weights": expected.weights, "mode": "eval",
                        "inputs": [x.clone() for x in expected.inputs]}
    return dataclasses.replace(prepared, request={**prepared.request, "cases": cases})


def _predict(preparer, step: Step, expected) -> None:
    """Build the reference's module of one factory case, give it seeded random weights, and
    record them, the input it runs on and its output in `expected`; a RubricError where no input
    the grader knows how to make runs it."""
    import torch

    from .cases import _fresh, call, seed_cpu
    from .errors import RubricError

    case = expected.case
    seed_cpu(case.seed)
    with _constructions(preparer) as built:
        module = call(getattr(preparer.reference, step.reference_name), step, expected.arg_names,
                      _fresh(expected.args))
    generator = torch.Generator().manual_seed(case.seed + 1)
    scale = preparer.rubric.defaults.weight_scale
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    module.eval()
    for x in _probe_inputs(module, generator):
        try:
            with torch.no_grad():
                output = module(x)
        except Exception:  # noqa: BLE001, S112 - not an input this module takes: try the next
            continue
        if isinstance(output, torch.Tensor):
            expected.weights = {n: p.detach().clone() for n, p in module.named_parameters()}
            expected.inputs, expected.output = [x], [output]
            # Where in the module the rubric's classes were built, and with what: a known mistake
            # of one of them gives the prediction it would (grader.judge), so a mistake is
            # charged to its own step only. Kept on the case's answer, which dies with it.
            expected.constructions = tuple((path, *built[id(m)]) for path, m in
                                           module.named_modules() if id(m) in built)
            return
    raise RubricError(preparer.rubric.path, f"steps.{step.id}.cases",
                      f"on case {case.name!r}, the grader found no input that the reference's "
                      f"{type(module).__name__} takes, to confirm the student's module by running "
                      "it; build this case on the meta device (`meta: true`) to judge its "
                      "structure alone")


@contextlib.contextmanager
def _constructions(preparer):
    """While the block runs, each module of a class that a class step of the rubric grades (and
    that has known mistakes) records, by its id, that step's id and its constructor's arguments.
    Only while steps are prepared, before any grading thread runs."""
    classes = {}
    for step in preparer.rubric.steps:
        cls = getattr(preparer.reference, step.reference_name, None)
        if step.kind == "class" and step.mistakes and isinstance(cls, type):
            classes[step.id] = cls
    built: dict[int, tuple] = {}
    saved = {}

    def recording(step_id, init):
        def __init__(self, *args, **kwargs):
            built[id(self)] = (step_id, copy.deepcopy(args), copy.deepcopy(kwargs))
            init(self, *args, **kwargs)
        return __init__

    for step_id, cls in classes.items():
        saved[cls] = cls.__dict__.get("__init__")
        cls.__init__ = recording(step_id, cls.__init__)
    try:
        yield built
    finally:
        for cls, init in saved.items():
            if init is None:
                del cls.__init__
            else:
                cls.__init__ = init


def _probe_inputs(module, generator):
    """Inputs the grader can make for a module, one per layer in the order of its modules: token
    ids below an embedding's size, or (batch, tokens, in_features) for a linear layer, of
    PROBE_TOKENS tokens. Not as many as a causal mask holds: GPT-2 small's 1024 tokens took the
    worker past a small container's memory (768 MB) for a correct module. Code that forgets to slice
    its mask to the input fails here as the known mistake `mask_not_sliced` does, and so is charged
    to the class's own step, not the factory's (grader.judge.confirmed)."""
    import torch
    import torch.nn as nn

    tokens, batch = PROBE_TOKENS, 2
    for layer in module.modules():
        if isinstance(layer, nn.Embedding):
            yield torch.randint(0, layer.num_embeddings, (batch, tokens), generator=generator)
        elif isinstance(layer, nn.Linear):
            yield torch.randn(batch, tokens, layer.in_features, generator=generator)


def grade_prepared(submission: Submission, rubric: Rubric, prepared, diagnoser, zygote=None,
                   notes: tuple[str, ...] = ()) -> Report:
    """Grade code already read against steps already prepared (batch grading's inner loop)."""
    started = time.monotonic()
    session = Session(submission, rubric, zygote)
    try:
        session.expect(prepared)
        results = _blamed([_graded(session, p, diagnoser) for p in prepared], rubric)
    finally:
        session.close()
    return _report(submission.path, rubric, results, (*notes, *session.notes()), started,
                   session.sandbox)


def unreadable_report(path: str, rubric: Rubric, problem: str, notes: tuple[str, ...] = ()) -> Report:
    """The complete report (every step present) of a submission that could not be read."""
    return _report(path, rubric, [_unread(step) for step in rubric.steps], (*notes, problem),
                   time.monotonic(), unreadable=problem)


def hidden_paths(rubric: Rubric) -> tuple[str, ...]:
    """What the worker must not see: the folders of the reference and the known mistakes and, in
    the repository that holds them, its history (`.git`: every committed version of the
    reference), its tests and its examples (graded submissions, some of them right)."""
    folders = {path.resolve().parent for path in (rubric.reference, rubric.mistakes) if path}
    for folder in list(folders):
        root = next((a for a in (folder, *folder.parents) if (a / ".git").is_dir()), None)
        if root is not None:
            folders |= {root / ".git", root / "tests", root / "examples"}
    return tuple(sorted(str(folder) for folder in folders if folder.is_dir()))


BROKEN = ("failed", "error", "timeout")  # a step whose own code ran and was wrong


def _blamed(results: list[StepResult], rubric: Rubric) -> list[StepResult]:
    """Each step that did not pass and `uses:` another step that failed says so in its feedback:
    its failure may come from that step's code, which is the one to fix first."""
    by_id = {result.id: result for result in results}
    return [_blame(result, rubric.step(result.id).uses, by_id) for result in results]


def _blame(result: StepResult, uses: tuple[str, ...], by_id: dict[str, StepResult]) -> StepResult:
    broken = [by_id[name] for name in uses if name in by_id and by_id[name].status in BROKEN]
    if result.passed or not broken:
        return result
    names = ", ".join(f"`{used.id}` (step {used.section})" for used in broken)
    one = len(broken) == 1
    note = (f"This step uses your {names}, which {'fails' if one else 'fail'} on its own: fix "
            f"{'it' if one else 'them'} first, as this step's failure may come from "
            f"{'it' if one else 'them'}.")
    return dataclasses.replace(result, feedback=f"{result.feedback}\n\n{note}".strip())


def _graded(session: Session, prepared, diagnoser) -> StepResult:
    """Run one step in the session's worker, then judge the typed reply."""
    from .judge import Context, judge

    started = time.monotonic()
    reply = session.run(prepared)
    if prepared.step.kind in ("class", "factory") and isinstance(reply, Answered):
        prepared, reply = _bound(session, prepared, reply, diagnoser)
    context = Context(session.load or session.first_load, session.submission, diagnoser,
                      session.rubric.defaults, step_ids=tuple(s.id for s in session.rubric.steps))
    return judge(prepared, reply, context, time.monotonic() - started)


def _bound(session: Session, prepared, reply: Answered, diagnoser=None):
    """Where the student's module does not have the contract's parameter names and shapes, bind the
    grader's weights to its parameters by structure (grader.binding) and run the step again.

    A binding is kept only if, on the case's first input, the module given those weights
    reproduces the reference's output (compared here, in the grader's process), or failing that a
    known mistake's output on the same weights (then the mistake is named as usual). With none,
    the case runs on the module's own weights: its behaviour is still judged, its values are not."""
    import torch

    from .binding import Binding, candidates, fits_by_name
    from .checks import compare, weights_ignored

    step = prepared.step
    unbound = []  # (case index, candidate bindings)
    for index, (expected, obtained) in enumerate(zip(prepared.expected, reply.cases)):
        if not isinstance(obtained, Built) or not expected.weights or expected.case.replay:
            continue
        student = [(name, shape) for name, shape, _ in obtained.module.parameters]
        if fits_by_name(student, expected.weights):
            continue
        heads = expected.case.args.get("num_heads", 1)
        unbound.append((index, candidates(student, expected.weights,
                                          heads if isinstance(heads, int) else 1)))
    if not unbound:
        return _ignoring_weights(session, prepared, reply), reply
    probe = {"op": "probe", "target": step.id, "cases": [
        {**{k: v for k, v in prepared.request["cases"][i].items()
            if k in ("seed", "args", "arg_names", "positional", "kwargs", "mode")},
         "input": prepared.expected[i].inputs[0].clone(),
         "candidates": [b.apply(prepared.expected[i].weights) for b in found]
         + _draws(prepared.expected[i], reply.cases[i])}
        for i, found in unbound]}
    outputs = session.probe(step, probe)
    cases, expected = list(prepared.request["cases"]), list(prepared.expected)
    for (index, found), probed in zip(unbound, outputs or [[None] * len(f) for _, f in unbound]):
        e = expected[index]

        def reproduces(want, found=found, probed=probed) -> Binding | None:
            return next((b for b, got in zip(found, probed) if isinstance(got, torch.Tensor)
                         and isinstance(want, torch.Tensor) and got.shape == want.shape
                         and not compare(want, got, step.atol, step.rtol)), None)

        chosen = reproduces(e.output[0])
        for mistake in _mistakes_on(diagnoser, step, e, index) if chosen is None else ():
            chosen = reproduces(mistake.output[0])
            if chosen is not None:
                break
        if chosen is None:
            names = ", ".join(f"`{n}` {tuple(t.shape)}" for n, t in e.weights.items())
            why = ("none of the ways its parameters could hold them by shape and order reproduced "
                   "the reference's output" if found else
                   "their shapes do not fit your module's parameters")
            expected[index] = dataclasses.replace(e, own_weights=(
                f"the grader could not give your module the reference's weights ({names}): "
                f"no parameter has those names, and {why}"), weights_ignored=weights_ignored(
                    step, e, reply.cases[index].module, probed[len(found):]))
            cases[index] = {**cases[index], "weights": None}
            continue
        gradients = chosen.apply(e.gradients) if e.gradients else None
        expected[index] = dataclasses.replace(e, binding=chosen,
                                              bound_parameters=chosen.apply(e.parameters),
                                              bound_gradients=gradients)
        cases[index] = {**cases[index], "weights": chosen.apply(e.weights)}
    rebound = dataclasses.replace(prepared, request={**prepared.request, "cases": cases},
                                  expected=expected)
    reply = session.run(rebound)
    return _ignoring_weights(session, rebound, reply), reply


def _ignoring_weights(session: Session, prepared, reply):
    """The step with `weights_ignored` set on each case where the grader's weights were loaded
    (under the contract's names or bound by structure), forward did not give the reference's
    output, and with random values in its parameters instead it gives the same output again: a
    forward that computes nothing from its weights earns none of the checks that read it. One
    probe for them all; none where every such case gave the reference's output."""
    import torch

    from .checks import compare, weights_ignored

    if not isinstance(reply, Answered):
        return prepared
    step, asked = prepared.step, []
    for index, (expected, obtained) in enumerate(zip(prepared.expected, reply.cases)):
        request = prepared.request["cases"][index]
        got = obtained.module.outputs if isinstance(obtained, Built) else None
        want = expected.output[0] if expected.output else None
        if (not expected.weights_matter or expected.own_weights or not request.get("weights")
                or not got or not isinstance(got[0], torch.Tensor)
                or not isinstance(want, torch.Tensor) or (
                    got[0].shape == want.shape and not compare(want, got[0], step.atol, step.rtol))):
            continue
        asked.append(index)
    if not asked:
        return prepared
    probe = {"op": "probe", "target": step.id, "cases": [
        {**{k: v for k, v in prepared.request["cases"][i].items()
            if k in ("seed", "args", "arg_names", "positional", "kwargs", "mode")},
         "input": prepared.expected[i].inputs[0].clone(),
         "candidates": _draws(prepared.expected[i], reply.cases[i])} for i in asked]}
    outputs = session.probe(step, probe) or [[] for _ in asked]
    expected = list(prepared.expected)
    for index, probed in zip(asked, outputs):
        expected[index] = dataclasses.replace(expected[index], weights_ignored=weights_ignored(
            step, expected[index], reply.cases[index].module, probed))
    return dataclasses.replace(prepared, expected=expected)


def _draws(expected, obtained) -> list[dict]:
    """Random values for the student's own parameters, under its names, where the reference's
    output depends on its weights: what shows whether the student's does
    (grader.checks.weights_ignored)."""
    from .cases import parameter_draws

    if not expected.weights_matter:
        return []
    return parameter_draws(obtained.module.parameters, expected.case.seed)


def _mistakes_on(diagnoser, step: Step, expected, index: int):
    """The known mistakes' answers on this case, where they ran on the reference's own weights."""
    if diagnoser is None or not hasattr(diagnoser, "answers"):
        return
    for mistake in diagnoser.answers(step, expected.case, index):
        same = {n: tuple(t.shape) for n, t in mistake.weights.items()} == \
            {n: tuple(t.shape) for n, t in expected.weights.items()}
        if same and mistake.raised is None and mistake.output:
            yield mistake


def replay_case(step: Step, seed: int) -> Step:
    """The step with only its case of this seed, and the checks that apply to that case.

    A refusal case keeps the step's first valid case beside it, unscored: a refusal only counts
    from code that builds on valid arguments."""
    cases = [case for case in step.cases if case.seed == seed]
    if not cases:
        seeds = ", ".join(str(case.seed) for case in step.cases)
        raise KeyError(f"step {step.id!r} has no case with seed {seed}; its seeds are: {seeds}")
    case = cases[0]
    checks = tuple(check for check in step.checks if applies(check, case))
    kept = (case,)
    if case.raises:
        kept = tuple(c for c in step.cases if not c.raises)[:1] + (case,)
    return dataclasses.replace(step, cases=kept, checks=checks,
                               points=sum(check.points for check in checks))


def _report(path: str, rubric: Rubric, results: list[StepResult], notes, started,
            sandbox: dict | None = None, unreadable: str = "") -> Report:
    score, max_score = total(results)
    if rubric.expected is not None:
        from .bundle import HIDDEN_NOTE

        notes = (*notes, HIDDEN_NOTE)
    sandbox = {"layers": list(sandbox.get("layers", [])), "refused": dict(sandbox.get("refused", {}))
               } if sandbox else {}
    return Report(path, score, max_score, tuple(results), tuple(notes), rubric.path, __version__,
                  round(time.monotonic() - started, 3), sandbox, unreadable,
                  course=rubric.course_name, exercise=rubric.exercise)


def _unread(step: Step) -> StepResult:
    return StepResult(step.id, step.title, step.section, "missing", 0.0, step.points,
                      "Not graded: the submission could not be read (see the note).",
                      hints=step.hints)


@dataclasses.dataclass
class _Asked:
    """One request the worker was sent and has not answered yet, and then its typed reply."""

    prepared: object  # the PreparedStep (or, for a probe, what names its step)
    request: dict  # what was asked, whole: the reply is checked against it
    probe: bool = False
    reply: object = None


@dataclasses.dataclass(frozen=True)
class _ProbeOf:
    step: Step


class Session:
    """The worker for one submission, restarted after a step that hangs or crashes it.

    `run` sends a step's cases and returns the worker's typed reply (`grader.replies`); it never
    judges. A worker that is stopped, dies or sends a broken reply is a reply too.
    """

    def __init__(self, submission: Submission, rubric: Rubric, zygote=None):
        self.zygote = zygote  # a warm worker factory (batch grading), or None: start from scratch
        self.submission = submission
        self.rubric = rubric
        self.worker: Worker | None = None
        self.load: LoadReply | None = None
        self.load_failure: LoadFailed | None = None  # given for every step
        self.first_load: LoadReply | None = None  # what the code raised the first time it ran
        self.restarts = 0
        self.deadline = time.monotonic() + rubric.defaults.submission_timeout
        self.printed: list[str] = []  # output of workers that were stopped, for the notes
        self.sandbox: dict = {}  # what the first worker's confinement applied (before any code ran)
        self.upcoming: list = []  # the steps `run` will be asked for (see `expect`)
        self.queued: list[_Asked] = []  # asked of the worker, in order, not yet read
        self.answered: list[_Asked] = []  # read while waiting for another, not yet taken by `run`
        self.sent_plan: Worker | None = None  # the worker that was sent the upcoming steps' plan
        self._start()

    def _start(self) -> None:
        defaults = self.rubric.defaults
        limits = Limits.of(defaults)
        # The reference solutions are hidden from the worker where the platform allows.
        hide = hidden_paths(self.rubric)
        self.worker = Worker(self.submission, limits, hide=hide,
                             load_timeout=defaults.load_timeout, zygote=self.zygote,
                             require=self.rubric.require)
        self.worker.start()
        self.load = None

    def _ensure_loaded(self) -> None:
        if self.worker is None:
            self.restarts += 1
            self._start()
        if self.load is not None:
            return
        limit = self.rubric.defaults.load_timeout
        try:
            # The worker interrupts code that runs too long itself; this is the backstop.
            self.load = self.worker.loaded(limit + GRACE)
            if self.first_load is None:
                self.first_load = self.load
        except WorkerTimeout:
            self.load_failure = LoadFailed("timeout", limit=limit)
        except WorkerDied as died:
            self.load_failure = LoadFailed("died", died.reason)
            self._keep_output()
        except MalformedReply as problem:
            self.load_failure = LoadFailed("died", f"its process sent a broken reply ({problem})")
        finally:
            self.sandbox = self.sandbox or self.worker.sandbox

    def expect(self, prepared: list) -> None:
        """The steps `run` will be asked for, in order: the worker is given them all at once and
        answers each as soon as it has run it, while this process judges the one before."""
        self.upcoming = list(prepared)

    def run(self, prepared) -> StepReply:
        if self.load_failure is None:
            self._ensure_loaded()
        if self.load_failure is not None:
            return self.load_failure
        for entry in self.answered:  # read while waiting for a later request
            if entry.prepared is prepared:
                self.answered.remove(entry)
                return entry.reply
        if not any(entry.prepared is prepared for entry in self.queued):
            if self.deadline - time.monotonic() <= 0:
                return TimedOut(self.rubric.defaults.submission_timeout, whole_submission=True)
            self._ask_ahead(prepared)
        entry = self._answer(lambda e: e.prepared is prepared)
        if entry is None:  # lost with a worker that failed on an earlier request: ask a new one
            return self.run(prepared)
        return entry.reply

    def _ask_ahead(self, prepared) -> None:
        """Ask the worker for this step and, where it is one of the steps expected, for all those
        after it, by their indices in the plan the worker holds (the zygote's, or one sent now);
        a step outside the plan is asked for whole, alone."""
        index = next((i for i, p in enumerate(self.upcoming) if p is prepared), None)
        ahead = [prepared] if index is None else self.upcoming[index:]
        planned = [self._planned(p) for p in ahead]
        if planned[0] is None:
            ahead, planned = [prepared], []
        elif None in planned:
            ahead, planned = ahead[: planned.index(None)], planned[: planned.index(None)]
        self._answer(lambda e: False)  # the worker reads nothing new before it has answered all
        if self.worker is None:  # it failed on one of them
            self._ensure_loaded()
            if self.load_failure is not None:
                return
            return self._ask_ahead(prepared)
        left = self.deadline - time.monotonic()
        limits = [{"memory_bytes": p.step.memory_mb * 1024 * 1024, "cpu_seconds": p.step.cpu_seconds}
                  for p in ahead]
        requests = [{**p.request, "timeout": min(p.step.timeout, left), "limits": limit}
                    for p, limit in zip(ahead, limits)]
        message = requests[0] if not planned else {
            "op": "steps", "plan": planned, "left": left, "limits": limits,
            "timeouts": [p.step.timeout for p in ahead]}
        self._send(message, [_Asked(p, r) for p, r in zip(ahead, requests)],
                   min(ahead[0].step.timeout, left))

    def _send(self, message: dict, asked: list[_Asked], timeout: float) -> None:
        """Send one request that `asked` answer. A worker that cannot take it answers the first
        with its failure; the others are asked again of a fresh worker."""
        started = time.monotonic()
        try:
            self.worker.send(message, timeout + GRACE)
        except (WorkerTimeout, WorkerDied) as exc:
            failure = self._failure(exc, timeout, started)
            asked[0].reply = None if asked[0].probe else failure
            self.answered.append(asked[0])
            return
        self.queued.extend(asked)

    def _planned(self, prepared) -> int | None:
        """The step's index in the plan the worker holds; a worker that came without one (one
        started from scratch) is sent the plan of all the steps expected."""
        if self.zygote is not None and self.zygote.plan:
            return self.zygote.planned(prepared.request)
        index = next((i for i, p in enumerate(self.upcoming) if p is prepared), None)
        if index is None:
            return None
        if self.sent_plan is not self.worker:
            self._answer(lambda e: False)
            if self.worker is None:
                return None
            try:
                self.worker.send({"op": "plan", "steps": [p.request for p in self.upcoming]},
                                 self.rubric.defaults.load_timeout + GRACE)
            except WorkerTimeout:
                self._discard()
                return None
            except WorkerDied:
                self._keep_output()
                self._discard()
                return None
            self.sent_plan = self.worker
        return index

    def _answer(self, wanted) -> _Asked | None:
        """Read the worker's replies in the order they were asked for, up to the wanted one (the
        others are kept for `run`); each is waited for its own step's time from the moment the
        one before it came. A worker that fails loses every request after the one it failed on:
        None when the wanted one was lost, or when nothing was wanted."""
        while self.queued:
            entry = self.queued.pop(0)
            limit = min(entry.prepared.step.timeout, max(self.deadline - time.monotonic(), 0.001))
            started = time.monotonic()
            try:
                raw = self.worker.receive(limit + GRACE)
                if entry.probe:
                    entry.reply = decode_probe(raw, entry.request)
                elif isinstance(raw, dict) and raw.get("out_of_time") is True:
                    entry.reply = TimedOut(self.rubric.defaults.submission_timeout,
                                           whole_submission=True)
                else:
                    entry.reply = replies_decode_step(raw, entry.request)
            except (WorkerTimeout, WorkerDied, MalformedReply) as exc:
                failure = self._failure(exc, limit, started)
                entry.reply = None if entry.probe else failure
            if wanted(entry):
                return entry
            self.answered.append(entry)
        return None

    def _failure(self, exc: Exception, limit: float, started: float) -> StepReply:
        """The reply of a worker that did not answer; the worker is not asked anything again."""
        if isinstance(exc, WorkerDied):
            self._keep_output()
            reply = Died(exc.reason, time.monotonic() - started)
        elif isinstance(exc, MalformedReply):
            reply = Malformed(str(exc))  # whatever sent it is not to be trusted with another step
        else:
            reply = TimedOut(limit)
        self._discard()
        return reply

    def probe(self, step: Step, request: dict) -> list | None:
        """What the module gave on each candidate binding (grader.binding), or None when the worker
        could not answer (it is then restarted for the step)."""
        self._answer(lambda e: False)  # the steps asked before it are read first
        left = self.deadline - time.monotonic()
        if self.worker is None or self.load_failure is not None or left <= 0:
            return None
        timeout = min(step.timeout, left)
        request = {**request, "timeout": timeout,
                   "limits": {"memory_bytes": step.memory_mb * 1024 * 1024,
                              "cpu_seconds": step.cpu_seconds}}
        asked = _Asked(_ProbeOf(step), request, probe=True)
        self._send(request, [asked], timeout)
        if asked in self.answered:  # it could not be sent
            self.answered.remove(asked)
            return None
        entry = self._answer(lambda e: e is asked)
        return entry.reply if entry is not None else None

    def _keep_output(self) -> None:
        if self.worker is not None and self.worker.printed is not None and self.worker.printed.total:
            self.printed.append(self.worker.output())

    def _discard(self) -> None:
        if self.worker is not None and self.zygote is not None:
            self.zygote.retire(self.worker)  # nothing more is read from it: ended off this path
        elif self.worker is not None:
            self.worker.close()
        self.worker = None
        self.load = None
        self.queued = []  # asked of that worker and not answered: asked again of the next one

    def notes(self) -> list[str]:
        """What reading the submission changed, and what its code raised while it ran: one note per
        cause, naming the cell that caused it (the cell that was running when the time ran out, the
        failed import that left a later cell's name undefined)."""
        import re

        from .submission import names_bound_from

        notes = list(self.submission.notes)
        errors = self.first_load.errors if self.first_load else ()
        limit = self.rubric.defaults.load_timeout
        notebook = self.submission.kind == "ipynb"
        chunks = {chunk.filename: (index, chunk) for index, chunk in enumerate(self.submission.chunks)}

        def cell(label: str) -> str:  # "cell 4 (`def f(x):`), line 2" -> "cell 4"
            return label.split(" (`")[0].split(", line ")[0]

        # The worker gives every cell that never started, the time having run out, an error of its own
        # (type "Timeout"); they are said once, after the cell that was running then.
        not_run = [cell(e.location) for e in errors if e.timeout and e.type == "Timeout"]
        after = ""
        if not_run:
            after = (f"the code cell after it ({not_run[0]})" if len(not_run) == 1 else
                     f"the {len(not_run)} code cells after it ({not_run[0]} to {not_run[-1]})")

        def cause(name: str, error) -> str:
            """Why `name` is not defined, when an earlier cell that would have defined it stopped."""
            here = chunks.get(error.filename, (-1, None))[0]
            for failed in errors:
                index, chunk = chunks.get(failed.filename, (here, None))
                if chunk is None or index >= here or failed.timeout:
                    continue
                suffix = failed.location[len(chunk.label):] if chunk.label and \
                    failed.location.startswith(chunk.label) else ""
                stopped_at = re.fullmatch(r", line (\d+)", suffix)
                line = int(stopped_at[1]) if stopped_at else 0
                bound = names_bound_from(chunk.code, line)
                if name not in bound:
                    continue
                lines = chunk.code.splitlines()
                defining = lines[bound[name] - 1].strip() if bound[name] <= len(lines) else ""
                text = f" `{name}` was to be defined by {cell(chunk.label)}, line {bound[name]}"
                text += f" (`{defining}`)" if defining else ""
                if bound[name] == line:
                    text += f", which raised {failed.text()}"
                else:
                    text += ", which never ran: that cell stopped before it"
                    text += f", at line {line} (`{failed.code}`)" if line and failed.code else ""
                    text += f", with {failed.text()}"
                if failed.type == "ModuleNotFoundError":
                    text += (": remove that import, or give it a cell of its own, and "
                             f"`{name}` will be defined")
                return text + "."
            return ""

        def why(error) -> str:
            """What to do about a load error, where the grader knows better than the message."""
            if error.type == "EOFError" and "input(" in error.code:
                return (" `input()` cannot work under the grader: nothing can be typed in while it "
                        "runs your code, so `input()` gets no input. Remove the call, or give the "
                        "value it asks for as a default (`n = 3` instead of `n = int(input())`).")
            if error.type == "ModuleNotFoundError":
                missing = re.search(r"No module named '([^']+)'", error.message)
                module = f"`{missing[1]}`" if missing else "that module"
                fix = ("give it a cell of its own, so that the rest of the cell runs" if notebook else
                       "move it into the function that uses it, so that the rest of the file runs")
                return (f" The grader runs only this file, with torch and Python's standard library, "
                        f"which have no {module}, and installs nothing (`!pip install` does not run): "
                        f"remove that import, or {fix}.")
            undefined = re.fullmatch(r"name '(\w+)' is not defined", error.message.strip())
            return cause(undefined[1], error) if error.type == "NameError" and undefined else ""

        stopped = False
        for error in errors:
            where = error.location or "your file"
            if error.timeout and error.type == "Timeout":
                continue  # said with the cell that was running (or below)
            if error.timeout:
                stopped = True
                within = error.message.partition("; it was in ")[2]  # the worker's words (worker.py)
                notes.append(f"{where} was stopped: your code may take {limit:g} s to run, in all, and "
                             "it was still running when that time ran out"
                             + (f" (in {within})" if within else "")
                             + (f"; the rest of that cell and {after} did not run." if after else
                                "; what came after it did not run."))
            else:
                notes.append(f"{where} raised {error.text()}; the code after it in that cell "
                             "or file did not run." + why(error))
        if not_run and not stopped:  # the code caught the interruption, or the time ran out between cells
            those = "it" if len(not_run) == 1 else f"the {len(not_run)} code cells from it to {not_run[-1]}"
            notes.append(f"Your code had used up its {limit:g} s to run, in all, before {not_run[0]} "
                         f"could start: {those} did not run.")
        for output in self.printed[:1]:
            notes.append(f"What your code printed before it was stopped:\n{output}")
        return notes

    def close(self) -> None:
        self._discard()


__all__ = ["Session", "grade", "grade_prepared", "prepare",
           "unreadable_report"]
