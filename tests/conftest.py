import sys
from pathlib import Path

# Make `solutions`, `exercises` and `grader` importable however pytest is started.
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import json  # noqa: E402
import os  # noqa: E402

import nbformat  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Property-based tests: a bounded number of examples, no per-example deadline (the suite must not depend
# on the machine being quiet), and no example database written into the checkout.
# Under CI (CI=true) the examples are derandomized: the same ones each run, so a run's verdict is
# the code's, never the draw's; elsewhere each run explores new ones.
settings.register_profile("attention-grader", max_examples=150, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow],
                          derandomize=os.environ.get("CI") == "true")
settings.load_profile("attention-grader")

from grader import grade, load_rubric  # noqa: E402
from grader.authoring import parse_percent, to_notebook  # noqa: E402

SOLUTIONS = REPO_ROOT / "solutions" / "attention.py"
EXERCISES = REPO_ROOT / "exercises"
RUBRIC = REPO_ROOT / "config.yaml"
SUBMISSIONS = Path(__file__).resolve().parent / "submissions"


@pytest.fixture(scope="session")
def rubric():
    return load_rubric(RUBRIC)


@pytest.fixture(scope="session")
def solution_source() -> str:
    return SOLUTIONS.read_text()


def write_notebook(path: Path, cells: list[tuple[str, str]]) -> Path:
    """A notebook of ("code" | "markdown", source) cells."""
    nb = nbformat.v4.new_notebook()
    for index, (kind, source) in enumerate(cells, start=1):
        make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
        nb.cells.append(make(source, id=f"cell-{index}"))
    nbformat.write(nb, path)
    return path


def solutions_notebook(path: Path) -> Path:
    nbformat.write(to_notebook(parse_percent(SOLUTIONS.read_text())), path)
    return path


def statuses(report) -> dict[str, str]:
    return {step.id: step.status for step in report.steps}


def not_passed(report) -> set[str]:
    return {step.id for step in report.steps if step.status != "passed"}


# CI sets this (.ci/run): a sandbox test that would skip for want of a layer (or of root, useradd, a
# Python the created user may run) fails instead, so that a green CI proves the confinement.
REQUIRE_SANDBOX = os.environ.get("ATTENTION_GRADER_REQUIRE_SANDBOX") == "1"


def sandbox_skip(reason: str) -> None:
    """Skip a sandbox test for `reason`, or fail it where ATTENTION_GRADER_REQUIRE_SANDBOX=1."""
    if REQUIRE_SANDBOX:
        pytest.fail(f"ATTENTION_GRADER_REQUIRE_SANDBOX=1 demands every sandbox test run, but {reason}",
                    pytrace=False)
    pytest.skip(reason)


__all__ = ["grade", "json", "solutions_notebook", "statuses", "not_passed", "write_notebook"]


def grade_many(rubric, sources: dict[str, str], folder: Path, jobs: int = 2) -> dict:
    """Grade many .py sources in one batch (one warm worker factory, prepared once), as
    `attention-grader grade` does: name -> Report."""
    from concurrent.futures import ThreadPoolExecutor

    from grader.engine import grade_prepared, prepare
    from grader.sandbox import Zygote
    from grader.submission import read_submission

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, source in sources.items():
        paths[name] = folder / f"{name}.py"
        paths[name].write_text(source)
    prepared, diagnoser = prepare(rubric, list(rubric.steps))
    with Zygote() as zygote, ThreadPoolExecutor(max_workers=jobs) as pool:
        zygote.prepare_for(prepared)
        futures = {name: pool.submit(grade_prepared, read_submission(path), rubric, prepared,
                                     diagnoser, zygote) for name, path in paths.items()}
        return {name: future.result() for name, future in futures.items()}


JUNIT_XSD = Path(__file__).resolve().parent / "schemas" / "junit-10.xsd"  # Jenkins' schema, see its header


def assert_junit_10(root) -> None:
    """This JUnit XML (an ElementTree element) is valid against the real junit-10.xsd, as libxml2's
    validator (lxml) reads it; a failure lists each of the validator's errors."""
    import xml.etree.ElementTree as ET

    from lxml import etree

    schema = etree.XMLSchema(etree.parse(str(JUNIT_XSD)))
    document = etree.fromstring(ET.tostring(root))
    if not schema.validate(document):
        errors = [f"line {e.line}: {e.message}" for e in schema.error_log]
        raise AssertionError(f"not valid against junit-10.xsd ({len(errors)} errors):\n" + "\n".join(errors))
