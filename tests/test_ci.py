"""CI output of `attention-grader check`: the JUnit report, the --min-score pass mark, and, under
GitHub Actions, the step summary and one annotation per failed step; the example workflow's own
command, run as GitHub would run it."""

import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, assert_junit_10, grade

from grader import ci, cli
from grader.models import Report
from grader.report.junit import render_junit

EXAMPLE = REPO_ROOT / "examples" / "student_notebook.ipynb"
WORKFLOW = REPO_ROOT / "examples" / "github-workflow.yml"
FAILING = {"attention_weights", "scaled_attention_weights"}


@pytest.fixture(autouse=True)
def not_in_github_actions(monkeypatch):
    """This suite may itself run under GitHub Actions: keep its summary and log clean."""
    for name in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def example_report() -> Report:
    return grade(EXAMPLE)


@pytest.fixture
def graded(monkeypatch, example_report):
    """`check` reports the example notebook's real report, graded once for the module."""
    monkeypatch.setattr(cli, "grade", lambda *args, **kwargs: example_report)
    return example_report


def suite_of(xml_text: str) -> ET.Element:
    root = ET.fromstring(xml_text)
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None and suite.get("name") == "attention-grader"
    return suite


def test_junit_has_one_testcase_per_step_with_failures_and_skips(example_report):
    suite = suite_of(render_junit(example_report))
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [s.id for s in example_report.steps]
    assert all(c.get("classname") == f"attention.section_{s.section.replace('.', '_')}"
               for c, s in zip(cases, example_report.steps))
    assert suite.get("file") == example_report.submission
    assert all(f"defined at: {example_report.submission}:1" in c.find("failure").text
               for c in cases if c.find("failure") is not None)  # a notebook: line 1
    by_name = {c.get("name"): c for c in cases}
    assert {n for n, c in by_name.items() if c.find("failure") is not None} == FAILING
    failure = by_name["attention_weights"].find("failure")
    assert "softmax_wrong_dim" in failure.get("message")
    assert "differs in 30 of 36 elements" in failure.text
    skipped = by_name["gpt2_small_attention"].find("skipped")
    assert skipped is not None and "NotImplementedError" in skipped.get("message")
    assert by_name["softmax_naive"].find("*") is None  # passed: no child element
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == (
        "19", "2", "0", "1")
    assert float(suite.get("time")) == pytest.approx(example_report.seconds, abs=1e-3)


def test_junit_errors_for_crashes_and_timeouts_and_survives_any_text(example_report):
    hostile = "raised <ValueError> & \"quotes\" ]]> \x00\x1b[31m\ud800 done"
    steps = list(example_report.steps)
    steps[0] = dataclasses.replace(steps[0], status="error", score=0.0, feedback=hostile)
    steps[1] = dataclasses.replace(steps[1], status="timeout", score=0.0, feedback="stopped")
    steps[2] = dataclasses.replace(steps[2], status="missing", score=0.0, feedback="not defined")
    report = dataclasses.replace(example_report, steps=tuple(steps), notes=("printed \x07 bell",))
    suite = suite_of(render_junit(report))
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert "<ValueError> & \"quotes\" ]]>" in cases[steps[0].id].find("error").text
    assert cases[steps[1].id].find("error").get("type") == "timeout"
    assert cases[steps[2].id].find("failure") is not None
    assert (suite.get("failures"), suite.get("errors")) == ("3", "2")


def test_check_writes_junit_next_to_the_usual_report(tmp_path, graded, capsys):
    target = tmp_path / "results.xml"
    assert cli.main(["check", str(EXAMPLE), "--junit", str(target)]) == 1
    assert "Score: 90 / 98" in capsys.readouterr().out
    assert len(suite_of(target.read_text(encoding="utf-8")).findall("testcase")) == 19


def test_an_unwritable_junit_file_is_the_graders_exit_code_2(tmp_path, graded, capsys):
    assert cli.main(["check", str(EXAMPLE), "--junit", str(tmp_path / "no" / "such.xml")]) == 2
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "code"), [
    ([], 1),                               # default: every step must pass
    (["--min-score", "90"], 0),            # 90 / 98
    (["--min-score", "90.5"], 1),
    (["--min-score", "91%"], 0),           # 91.8 %
    (["--min-score", "92%"], 1),
    (["--min-score", "0"], 0),
])
def test_min_score_is_the_pass_mark_for_the_exit_code(graded, capsys, argv, code):
    assert cli.main(["check", str(EXAMPLE), *argv]) == code


@pytest.mark.parametrize("bad", ["lots", "-5", "nan%"])
def test_a_bad_min_score_is_a_usage_error(bad, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["check", str(EXAMPLE), "--min-score", bad])
    assert exit_.value.code == 2


def test_workflow_command_escaping():
    assert ci.escape_data("100% sure\r\nnext: a, b") == "100%25 sure%0D%0Anext: a, b"
    assert ci.escape_property("dir,x/a:b.py") == "dir%2Cx/a%3Ab.py"
    command = ci.error_command("a.py", 3, "t:1", "50%\nmore")
    assert command == "::error file=a.py,line=3,title=t%3A1::50%25%0Amore"


def test_definition_line_finds_the_last_def_or_class():
    source = ("import torch\n\ndef softmax_naive(x):\n    pass\n\n\nclass CausalAttention(nn.Module):\n"
              "    def softmax_naive_helper(self):\n        pass\n\ndef softmax_naive (x):\n    ...\n"
              "attention_weights = torch.softmax\n")
    assert ci.definition_line(source, "softmax_naive") == 11
    assert ci.definition_line(source, "CausalAttention") == 7
    assert ci.definition_line(source, "attention_weights") == 13
    assert ci.definition_line(source, "context_vector") is None


def test_definition_cell_counts_every_cell_as_the_reports_do():
    cells = [("markdown", "def softmax_naive(x): in prose"), ("code", "import torch"),
             ("code", "x = 1\ndef softmax_naive(x):\n    return x")]
    assert ci.definition_cell(cells, "softmax_naive") == (3, 2)
    assert ci.definition_cell(cells, "nothing") is None


def test_annotations_of_a_py_file_point_at_the_definition(tmp_path, example_report):
    submission = tmp_path / "attention.py"
    shutil.copy(REPO_ROOT / "solutions" / "attention.py", submission)
    source = submission.read_text()
    lines = ci.annotations(example_report, submission, workspace=str(tmp_path))
    assert len(lines) == 2
    line = source.splitlines().index(next(x for x in source.splitlines()
                                          if x.startswith("def attention_weights("))) + 1
    assert lines[0].startswith(f"::error file=attention.py,line={line},title=attention_weights::")


def test_the_example_workflow_runs_as_github_would(tmp_path):
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = workflow["jobs"]["grade"]["steps"]
    runs = [step["run"] for step in steps if "attention-grader check" in step.get("run", "")]
    assert len(runs) == 1
    after = steps[[step.get("run") for step in steps].index(runs[0]) + 1:]
    # what follows the check runs even when it fails, and publishes its JUnit file
    assert after and all("cancelled()" in step["if"] for step in after)
    assert any(step.get("with", {}).get("report_paths") == "grader-results.xml" for step in after)
    # once per change, with pip's cache, and torch from the CPU-only index
    assert workflow[True]["push"] == {"branches": ["main"]} and "pull_request" in workflow[True]
    setup = next(step for step in steps if step.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["cache"] == "pip"
    torch_line = next(step["run"] for step in steps if "torch==" in step.get("run", ""))
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch_line
    command = shlex.split(runs[0])
    assert command[0] == "attention-grader"
    shutil.copy(EXAMPLE, tmp_path / "attention.ipynb")
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step's summary\n")
    env = {**os.environ, "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary),
           "GITHUB_WORKSPACE": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "grader", *command[1:]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr

    junit_file = tmp_path / command[command.index("--junit") + 1]
    suite = suite_of(junit_file.read_text(encoding="utf-8"))
    assert len(suite.findall("testcase")) == 19
    assert {c.get("name") for c in suite.findall("testcase") if c.find("failure") is not None} == FAILING

    text = summary.read_text(encoding="utf-8")
    assert text.startswith("earlier step's summary\n"), "the summary is appended to"
    assert "| | Step | Section | Score | Status |" in text and "**Score: 90 / 98**" in text

    errors = [line for line in done.stderr.splitlines() if line.startswith("::error ")]
    assert len(errors) == 2
    assert "::error" not in done.stdout  # stdout is the report alone
    for step, line in zip(sorted(FAILING), sorted(errors)):
        assert line.startswith(f"::error file=attention.ipynb,line=1,title={step} (cell ")
    assert "known mistake (softmax_wrong_dim)" in sorted(errors)[0]
    assert not any("softmax_naive" in line or "gpt2_small_attention" in line for line in errors)


def test_json_on_stdout_stays_valid_json_under_github_actions(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "attention.ipynb")
    env = {**os.environ, "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path / "s.md"),
           "GITHUB_WORKSPACE": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "grader", "check", "attention.ipynb", "--format",
                           "json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["score"] == 90
    assert done.stderr.count("::error ") == 2


def test_junit_follows_the_junit_10_schema(example_report, tmp_path):
    report = dataclasses.replace(example_report, submission=str(tmp_path / "attention.py"))
    shutil.copy(REPO_ROOT / "solutions" / "attention.py", tmp_path / "attention.py")
    root = ET.fromstring(render_junit(report))
    assert root.tag == "testsuites"
    assert_junit_10(root)
    lines = (tmp_path / "attention.py").read_text().splitlines()
    case = next(c for c in root.iter("testcase") if c.get("name") == "attention_weights")
    line = int(case.find("failure").text.rsplit(":", 1)[1])
    assert lines[line - 1].startswith("def attention_weights(")


def test_the_example_workflow_passes_zizmors_audit():
    """zizmor, the workflow auditor, offline (no GitHub API): actions pinned to commits, no token
    left in the clone, no template injection, least permissions."""
    zizmor = Path(sys.executable).with_name("zizmor")
    assert zizmor.exists(), "zizmor is a test dependency: pip install -e '.[test]'"
    ran = subprocess.run([str(zizmor), "--offline", "--no-progress", str(WORKFLOW)],
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "No findings to report" in ran.stdout + ran.stderr
