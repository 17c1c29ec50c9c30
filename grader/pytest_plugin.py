"""A pytest plugin: each step of the rubric is a test of the configured submission.

    pytest --attention-submission attention.ipynb [--attention-rubric config.yaml]

or, in the project's configuration, one of

    [tool.attention-grader]        # pyproject.toml
    submission = "attention.ipynb"
    rubric = "config.yaml"         # optional

    [pytest] / [tool.pytest.ini_options]
    attention_submission = attention.ipynb
    attention_rubric = config.yaml

(the command line wins, then the pytest ini option, then `[tool.attention-grader]`; a relative path
is taken from where it is written: the current directory for the command line, the ini file's folder,
the rootdir's pyproject.toml). It is installed with the grader (a `pytest11` entry point) and does
nothing at all unless a submission is configured.

The items are collected under one collector for the submission file, named by step id
(`attention.ipynb::softmax_naive`): a node id pytest prints can be given back to it
(`pytest attention.ipynb::softmax_naive`), and `-k softmax`, `-x`, `--junitxml` and `-q` behave as
usual. The steps join a run that names no paths (pytest's testpaths or the current folder) or
whose paths include the submission; `pytest tests/test_x.py::test_y` runs that test alone.

The submission is graded once per session, before the first step runs (outside every test's timing:
each step's time is its own grading time, not the whole grading on the first one), for the steps
that were selected; each item then passes, fails with the step's feedback and hint (no Python
traceback), or is skipped with the reason when the step is not implemented yet. Skipping is the
default because a half-finished notebook is work in progress, not a failure, and pytest's `-rs`
lists what is left; `--attention-strict` (ini `attention_strict = true`) makes a step not
implemented a failure, for CI, so that untouched stubs are never green; a skipped step is reported
where the student's file defines it. The submission's notes (a cell that raised, code that was
skipped) are printed in their own section at the end, by the controller too under pytest-xdist (they
travel on the reports). A submission that does not exist, or a rubric that cannot be found or is
invalid, stops the run with a usage error (exit 4); if the grader itself cannot run, every item
fails with its message. `-p no:attention_grader` turns the plugin off.

Under pytest-xdist (`-n 4`) the submission is graded once for the run, not once per worker.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .safe_text import terminal

SECTION = "attention-grader"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("attention-grader", "attention-grader: grade a chapter 3 submission")
    group.addoption("--attention-submission", metavar="PATH", default=None,
                    help="grade this notebook or .py file: one test per rubric step")
    group.addoption("--attention-rubric", metavar="PATH", default=None,
                    help="the rubric (default: found as for `attention-grader check`)")
    group.addoption("--attention-strict", action="store_true", default=None,
                    help="a step not implemented yet fails instead of being skipped (for CI)")
    parser.addini("attention_strict", "attention-grader: a step not implemented fails (for CI)",
                  type="bool", default=False)
    parser.addini("attention_submission", "the submission attention-grader grades (one test per step)",
                  default=None)
    parser.addini("attention_rubric", "the rubric for attention-grader (default: found as for check)",
                  default=None)


def _pyproject_table(rootpath: Path) -> dict:
    path = rootpath / "pyproject.toml"
    if not path.is_file():
        return {}
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            return {}
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise pytest.UsageError(f"attention-grader: cannot read {path}: {exc}") from None
    table = data.get("tool", {}).get(SECTION, {})
    return table if isinstance(table, dict) else {}


def configured(config: pytest.Config, key: str) -> Path | None:
    """The configured path for `submission` or `rubric`, resolved; None when not configured."""
    option = config.getoption(f"--attention-{key}")
    if option:
        return Path(config.invocation_params.dir, option).resolve()
    ini = config.getini(f"attention_{key}")
    if ini:
        base = config.inipath.parent if config.inipath else config.rootpath
        return Path(base, str(ini)).resolve()
    value = _pyproject_table(config.rootpath).get(key)
    if value:
        return Path(config.rootpath, str(value)).resolve()
    return None


def pytest_configure(config: pytest.Config) -> None:
    submission = configured(config, "submission")
    if submission is None:
        return  # not configured: no hooks, no items, nothing
    if submission.is_dir():  # a folder: the file `grade` and `gradescope-run` would grade in it
        from .choose import choose

        choice = choose([(p.relative_to(submission).as_posix(), (), p)
                         for p in sorted(submission.rglob("*")) if p.is_file()], _exercise(config))
        if choice.chosen is None:
            raise pytest.UsageError(f"attention-grader: {submission} has {choice.problem}")
        submission = choice.chosen
    if not submission.is_file():
        raise pytest.UsageError(f"attention-grader: the submission {submission} does not exist; "
                                "check --attention-submission (or attention_submission in the config)")
    from .errors import GraderError
    from .paths import find_rubric

    try:
        rubric = find_rubric(configured(config, "rubric"), start=config.invocation_params.dir)
    except GraderError as exc:
        raise pytest.UsageError(f"attention-grader: {exc}") from None
    strict = config.getoption("--attention-strict") or config.getini("attention_strict")
    include = config.args_source != pytest.Config.ArgsSource.ARGS  # no paths named
    config.pluginmanager.register(GradingPlugin(submission.resolve(), rubric, bool(strict), include),
                                  "attention-grader-session")


def _exercise(config: pytest.Config) -> str:
    """The stem of the exercise's own file, from the rubric (`course.exercise`); the default where
    the rubric cannot be found or read (grading it then says why)."""
    from .choose import EXERCISE
    from .errors import GraderError
    from .paths import find_rubric
    from .rubric import load_rubric

    try:
        return load_rubric(find_rubric(configured(config, "rubric"),
                                       start=config.invocation_params.dir)).exercise
    except GraderError:
        return EXERCISE


class GradingPlugin:
    def __init__(self, submission: Path, rubric: Path, strict: bool, include: bool):
        self.submission = submission
        self.rubric = rubric
        self.strict = strict
        self.include = include  # add the steps to a run that named no paths
        self.report = None
        self.failure: str | None = None  # why the grader could not run
        self.notes: list[str] | None = None  # the notes, as the reports brought them (xdist's controller)
        self.lines: dict[str, int] | None = None  # each step's definition line in the submission

    # A path pytest is given (or finds under one it is given) that is the submission is collected
    # as the steps: so the node ids it prints can be given back to it.
    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector):
        if not self.include and file_path.resolve() == self.submission:
            return Submission.from_parent(parent, path=file_path, grading=self)
        return None

    # A run that named no paths gets one more collector, the submission file, after the others:
    # its items are counted, listed, selected and deselected like any others.
    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector):
        report = yield
        if isinstance(collector, pytest.Session) and report.passed and self.include:
            report.result.append(Submission.from_parent(collector, path=self.submission, grading=self))
        return report

    def pytest_report_header(self, config: pytest.Config) -> str:
        strict = ", strict: a step not implemented fails" if self.strict else ""
        return f"attention-grader: {self.submission} (rubric: {self.rubric}{strict})"

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session):
        # Graded here, before the first item runs, so that no item's time holds the whole grading.
        if not session.config.option.collectonly and any(isinstance(i, Step) for i in session.items):
            self.grade(session)
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call):
        report = yield
        if not isinstance(item, Step) or call.when != "call" or self.report is None:
            return report
        result = next((s for s in self.report.steps if s.id == item.name), None)
        if result is not None:
            report.duration = result.seconds  # the step's own grading time
            if report.skipped and isinstance(report.longrepr, tuple):  # where the student defines it
                report.longrepr = (str(item.path), self.line_of(item.name), report.longrepr[2])
        report.attention_grader_notes = list(self.report.notes)  # serialized to xdist's controller
        return report

    def pytest_runtest_logreport(self, report) -> None:
        if self.notes is None and isinstance(getattr(report, "attention_grader_notes", None), list):
            self.notes = [str(note) for note in report.attention_grader_notes]

    def line_of(self, step_id: str) -> int:
        """The line of the submission that defines the step (1 in a notebook, or when not found)."""
        if self.lines is None:
            from .ci import definition_line

            source = ""
            if self.submission.suffix == ".py":
                try:
                    source = self.submission.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    pass
            self.lines = {s.id: (definition_line(source, s.id) or 1) if source else 1
                          for s in (self.report.steps if self.report else ())}
        return self.lines.get(step_id, 1)

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config) -> None:
        notes = self.report.notes if self.report is not None else self.notes
        if notes:
            terminalreporter.section("attention-grader: notes on the submission")
            for note in notes:
                terminalreporter.line(f"- {terminal(note)}")

    def grade(self, session: pytest.Session):
        """Grade the submission once, for the steps selected in this session: once for the whole
        run under pytest-xdist too, where the first worker to get here grades and the others read
        its report (the workers share the run's id, and a lock file beside the report)."""
        if self.report is None and self.failure is None:
            steps = [item.name for item in session.items if isinstance(item, Step)]
            workerinput = getattr(session.config, "workerinput", None)
            if workerinput is None:
                self._grade(steps)
            else:
                self._grade_shared(steps, str(workerinput.get("testrunuid", "")))
        return self.report

    def _grade(self, steps: list[str]) -> None:
        from . import engine
        from .errors import GraderError

        try:
            self.report = engine.grade(self.submission, steps=steps, rubric=self.rubric)
        except GraderError as exc:
            self.failure = f"attention-grader: error: {exc}"

    def _grade_shared(self, steps: list[str], run_id: str) -> None:
        import fcntl
        import hashlib
        import json
        import os
        import tempfile

        from .models import Report

        key = hashlib.sha256("\0".join([run_id, str(self.submission), str(self.rubric), *steps])
                             .encode()).hexdigest()[:20]
        shared = Path(tempfile.gettempdir()) / f"attention-grader-xdist-{os.getuid()}"
        shared.mkdir(mode=0o700, exist_ok=True)
        done = shared / f"{key}.json"
        with open(shared / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if done.is_file():
                data = json.loads(done.read_text(encoding="utf-8"))
                if data.get("failure"):
                    self.failure = data["failure"]
                else:
                    self.report = Report.from_json(json.dumps(data["report"]))
                return
            self._grade(steps)
            data = {"failure": self.failure,
                    "report": None if self.report is None else json.loads(self.report.to_json())}
            partial = done.with_suffix(".part")
            partial.write_text(json.dumps(data), encoding="utf-8")
            partial.replace(done)


class Submission(pytest.File):
    """The submission file: one item per step of the rubric."""

    def __init__(self, *, grading: GradingPlugin, **kwargs):
        super().__init__(**kwargs)
        self.grading = grading

    def collect(self):
        from .errors import GraderError
        from .rubric import load_rubric

        try:
            steps = load_rubric(self.grading.rubric).steps
        except GraderError as exc:
            raise self.CollectError(f"attention-grader: {exc}") from None
        return [Step.from_parent(self, name=step.id, section=step.section, title=step.title)
                for step in steps]


class StepFailed(Exception):
    """A step that did not pass; its message is the step's feedback."""


class GraderFailed(Exception):
    """The grader could not run (exit code 2 on the command line): not the submission's fault."""


class Step(pytest.Item):
    def __init__(self, *, section: str, title: str, **kwargs):
        super().__init__(**kwargs)
        self.section = section
        self.title = title

    def runtest(self) -> None:
        grading = self.parent.grading
        report = grading.grade(self.session)
        if report is None:
            raise GraderFailed(grading.failure)
        result = next(step for step in report.steps if step.id == self.name)
        if result.status == "not_implemented" and not grading.strict:
            pytest.skip(terminal(result.feedback.strip().splitlines()[0]) if result.feedback.strip()
                        else "not implemented")
        if not result.passed:
            status = result.status.replace("_", " ")
            hint = (f"\n\nHint: {result.hints[0]}" if result.hints and not result.mistake
                    and result.status in ("failed", "error") else "")
            raise StepFailed(f"{terminal(result.feedback.strip(), 20_000)}{hint}\n\n{result.id}: "
                             f"{status}, {result.score:g}/{result.max_score:g} points")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (StepFailed, GraderFailed)):  # what pytest prints: no escapes
            return terminal(str(excinfo.value), None)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        report = self.parent.grading.report
        line = self.parent.grading.line_of(self.name) - 1 if report is not None else None
        return self.path, line, f"{self.section} {self.name}: {self.title}"


__all__ = ["GradingPlugin", "Step", "Submission"]
