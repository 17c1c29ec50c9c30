"""The JUnit XML report: one `<testcase>` per step, for CI test reporters (GitHub, GitLab, Jenkins).

    <testsuites name="attention-grader" tests="19" failures="2" errors="0" time="2.3">
      <testsuite name="attention-grader" tests="19" failures="2" errors="0" skipped="1" time="2.3"
                 file="attention.py">
        <properties>score, max_score, submission, rubric, grader_version</properties>
        <testcase classname="attention.section_3_3_2" name="attention_weights" time="0.01">
          <failure message="first line of the feedback" type="failed">the whole feedback,
            then "defined at: attention.py:42"</failure>
        </testcase>
        ...
        <system-out>the notes about the submission as a whole</system-out>
      </testsuite>
    </testsuites>

The classname is the exercise's stem (the rubric's `course.exercise`) and the step's section.
`failed` and `missing` steps are failures, `error` and `timeout` steps are errors (the code raised,
hung or crashed), `not_implemented` steps are skipped. The elements and attributes are those of
junit-10.xsd, Jenkins' schema, which pytest's own JUnit XML follows too, and the tests validate every
report against it (tests/schemas/): no `skipped` on `<testsuites>`, no `file` or `line` on a
testcase, nothing but skipped/error/failure/system-out/system-err in one. The submission is the
suite's `file`; where each step's function or class is defined (line 1 of a notebook) ends its
failure's text. (Under GitHub Actions, `check` annotates the lines itself: grader.ci.)
Built with ElementTree, which escapes text
and attributes; every string passes through `grader.safe_text.xml_text` first, which replaces the
characters XML 1.0 cannot hold at all (control characters a submission printed) by U+FFFD.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..models import Report, StepResult
from ..safe_text import xml_text

FAILURES = ("failed", "missing")
ERRORS = ("error", "timeout")
SKIPPED = ("not_implemented",)


def render_junit(report: Report, *, submission: str | None = None, **_) -> str:
    """`submission`: the path as it should appear in `file` (default: the report's)."""
    counts = report.counts()
    totals = {
        "tests": str(len(report.steps)),
        "failures": str(sum(counts[s] for s in FAILURES)),
        "errors": str(sum(counts[s] for s in ERRORS)),
        "skipped": str(sum(counts[s] for s in SKIPPED)),
        "time": _seconds(report.seconds),
    }
    root = ET.Element("testsuites", {"name": "attention-grader",
                                     **{k: v for k, v in totals.items() if k != "skipped"}})
    where = submission or report.submission
    suite = ET.SubElement(root, "testsuite", {"name": "attention-grader", **totals,
                                              "file": xml_text(where)})
    properties = ET.SubElement(suite, "properties")
    for name, value in (("submission", report.submission), ("score", f"{report.score:g}"),
                        ("max_score", f"{report.max_score:g}"), ("rubric", report.rubric),
                        ("grader_version", report.grader_version)):
        ET.SubElement(properties, "property", {"name": name, "value": xml_text(value)})
    lines = _definition_lines(report, where)
    exercise = report.exercise or _stem(where)
    for step in report.steps:
        suite.append(_testcase(step, where, lines.get(step.id, 1), exercise))
    if report.notes:
        ET.SubElement(suite, "system-out").text = xml_text("\n".join(report.notes))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _definition_lines(report: Report, path: str) -> dict[str, int]:
    """Where each step's name is defined in a .py submission (a notebook: line 1 throughout)."""
    from pathlib import Path

    from ..ci import definition_line

    if not path.endswith(".py"):
        return {}
    try:
        source = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    return {step.id: definition_line(source, step.id) or 1 for step in report.steps}


def _stem(path: str) -> str:
    """The classname's first part for a report that names no exercise: the submission's stem."""
    from pathlib import PurePath

    return PurePath(path).stem.replace(".", "_") or "submission"


def _testcase(step: StepResult, submission: str, line: int, exercise: str) -> ET.Element:
    section = step.section.replace(".", "_")  # dots would read as folders to a reporter
    case = ET.Element("testcase", {"classname": xml_text(f"{exercise}.section_{section}"),
                                   "name": xml_text(step.id), "time": _seconds(step.seconds)})
    if step.passed:
        return case
    points = f"{step.score:g}/{step.max_score:g} points"
    first = step.feedback.strip().splitlines()[0] if step.feedback.strip() else step.status
    message = xml_text(f"{step.status.replace('_', ' ')} ({points}): {first}")
    if step.status in SKIPPED:
        ET.SubElement(case, "skipped", {"message": message})
        return case
    tag = "error" if step.status in ERRORS else "failure"
    ET.SubElement(case, tag, {"message": message, "type": step.status}).text = xml_text(
        _details(step, points) + f"\n\ndefined at: {submission}:{line}")
    return case


def _details(step: StepResult, points: str) -> str:
    lines = [f"{step.section} {step.id}: {step.title}: {points}", "", step.feedback]
    if step.hints and step.status in ("failed", "error") and not step.mistake:
        lines += ["", f"hint: {step.hints[0]}"]
    if step.location:
        lines += ["", f"where: {step.location}"]
    return "\n".join(lines)


def _seconds(seconds: float) -> str:
    return f"{seconds:.3f}"


__all__ = ["render_junit"]
