"""The pytest plugin (installed with the grader): with a submission configured, each rubric step is
a test that passes, fails with the step's feedback, or is skipped when not implemented; without
one, it does nothing."""

import re
import shutil
import xml.etree.ElementTree as ET

import pytest
import torch  # noqa: F401
from conftest import REPO_ROOT, assert_junit_10

# pytester runs pytest in this process and afterwards removes the modules the run imported: torch
# must be imported before, here, or the next run would import it a second time (which crashes).
pytest_plugins = ["pytester"]

SOLUTIONS = REPO_ROOT / "solutions" / "attention.py"
EXAMPLE = REPO_ROOT / "examples" / "student_notebook.ipynb"


@pytest.fixture
def broken(tmp_path):
    """The reference solutions with the softmax of attention_weights over dim=0."""
    source = SOLUTIONS.read_text()
    start = source.index("def attention_weights(")
    end = source.index("\ndef ", start + 1)
    fixed = re.sub(r"dim=-1", "dim=0", source[start:end])
    assert fixed != source[start:end]
    path = tmp_path / "broken.py"
    path.write_text(source[:start] + fixed + source[end:])
    return path


def test_each_step_is_a_test(pytester, broken):
    result = pytester.runpytest("--attention-submission", str(broken), "-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=18, failed=1)
    result.stdout.fnmatch_lines([
        "*softmax_wrong_dim*",
        "attention_weights: failed, 2/5 points",
        "FAILED *broken.py::attention_weights - This looks*",
    ])
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("*runtest*")


def test_not_implemented_steps_are_skipped_and_k_selects(pytester, tmp_path):
    notebook = tmp_path / "attention.ipynb"
    shutil.copy(EXAMPLE, notebook)
    result = pytester.runpytest("--attention-submission", str(notebook), "-k", "attention_weights or gpt2",
                                "-rs", "-p", "no:cacheprovider")
    # attention_weights, scaled_attention_weights, causal_attention_weights, gpt2_small_attention
    result.assert_outcomes(passed=1, failed=2, skipped=1, deselected=15)
    result.stdout.fnmatch_lines(["collected 19 items / 15 deselected / 4 selected"])
    result.stdout.fnmatch_lines(["SKIPPED*`gpt2_small_attention` still raises NotImplementedError*"])


def test_x_stops_at_the_first_failure_and_junitxml_has_the_steps(pytester, broken, tmp_path):
    xml = tmp_path / "junit.xml"
    result = pytester.runpytest("--attention-submission", str(broken), "-x", f"--junitxml={xml}",
                                "-p", "no:cacheprovider")
    # steps 1 to 4 pass, attention_weights (step 5) fails, and the run stops
    result.assert_outcomes(passed=4, failed=1)
    assert_junit_10(ET.parse(xml).getroot())  # no <properties> inside a testcase, say
    cases = ET.parse(xml).getroot().iter("testcase")
    outcome = {c.get("name"): c.find("failure") is not None for c in cases}
    assert list(outcome) == ["attn_scores_for_query", "softmax_naive", "context_vector",
                             "attention_scores", "attention_weights"]
    assert outcome["attention_weights"] and not outcome["softmax_naive"]


def test_configured_in_pyproject_and_ini(pytester):
    shutil.copy(SOLUTIONS, pytester.path / "attention.py")
    pytester.makepyprojecttoml('[tool.attention-grader]\nsubmission = "attention.py"\n')
    pytester.makepyfile(test_own="def test_own():\n    pass\n")
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=20)  # a run naming no paths: the steps beside the project's tests
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "test_own.py")
    result.assert_outcomes(passed=1)  # a run naming other paths: those alone

    (pytester.path / "pyproject.toml").unlink()
    pytester.makeini("[pytest]\nattention_submission = attention.py\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "softmax")
    result.assert_outcomes(passed=1, deselected=19)  # the other steps and test_own
    result.stdout.fnmatch_lines([f"attention-grader: *attention.py (rubric: {REPO_ROOT}/config.yaml)"])


def test_without_a_submission_the_plugin_does_nothing(pytester):
    pytester.makepyfile(test_own="def test_own():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("attention-grader: *")  # no report header


def test_a_bad_rubric_is_a_usage_error(pytester, tmp_path):
    rubric = tmp_path / "config.yaml"
    rubric.write_text("rubric: 1\nsteps: 3\n")
    result = pytester.runpytest("--attention-submission", str(SOLUTIONS),
                                "--attention-rubric", str(rubric), "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting*", "attention-grader: *config.yaml: *"])


def test_a_printed_node_id_can_be_rerun(pytester, broken):
    shutil.copy(broken, pytester.path / "attention.py")
    pytester.makeini("[pytest]\nattention_submission = attention.py\n")
    first = pytester.runpytest("-p", "no:cacheprovider", "-q")
    first.assert_outcomes(passed=18, failed=1)
    (failed,) = re.findall(r"FAILED (\S+)", first.stdout.str())
    assert failed == "attention.py::attention_weights"
    again = pytester.runpytest("-p", "no:cacheprovider", "-q", failed)
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines(["*softmax_wrong_dim*"])


def test_strict_makes_untouched_stubs_fail(pytester):
    stubs = REPO_ROOT / "exercises" / "attention.py"
    relaxed = pytester.runpytest("--attention-submission", str(stubs), "-p", "no:cacheprovider", "-q")
    relaxed.assert_outcomes(skipped=19)
    assert relaxed.ret == pytest.ExitCode.OK
    strict = pytester.runpytest("--attention-submission", str(stubs), "--attention-strict",
                                "-p", "no:cacheprovider", "-q")
    strict.assert_outcomes(failed=19)
    strict.stdout.fnmatch_lines(["*NotImplementedError*"])


def test_a_missing_submission_is_a_usage_error_and_notes_are_printed(pytester, tmp_path):
    result = pytester.runpytest("--attention-submission", str(tmp_path / "nowhere.ipynb"),
                                "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*nowhere.ipynb does not exist*"])
    noisy = tmp_path / "noisy.py"
    noisy.write_text(SOLUTIONS.read_text() + "\nraise ValueError('a stray cell')\n")
    result = pytester.runpytest("--attention-submission", str(noisy), "-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=19)
    result.stdout.fnmatch_lines(["*attention-grader: notes on the submission*", "*ValueError*"])


def test_under_xdist_the_submission_is_graded_once(pytester, broken, tmp_path, monkeypatch):
    pytest.importorskip("xdist")
    count = tmp_path / "gradings"
    pytester.makeconftest(
        "import os\nimport grader.engine\n\nreal = grader.engine.grade\n\n\n"
        "def counting(*args, **kwargs):\n"
        "    with open(os.environ['GRADINGS'], 'a') as f:\n        f.write('graded\\n')\n"
        "    return real(*args, **kwargs)\n\n\ngrader.engine.grade = counting\n")
    monkeypatch.setenv("GRADINGS", str(count))
    result = pytester.runpytest_subprocess("--attention-submission", str(broken), "-n", "2",
                                           "-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=18, failed=1)
    assert count.read_text().splitlines() == ["graded"]


def test_a_skipped_step_is_located_in_the_students_file(pytester, tmp_path):
    stubbed = tmp_path / "attention.py"  # the last definition is the one that counts
    stub = "\n\ndef gpt2_small_attention():\n    raise NotImplementedError\n"
    stubbed.write_text(SOLUTIONS.read_text() + stub)
    line = len(stubbed.read_text().splitlines()) - 1
    result = pytester.runpytest("--attention-submission", str(stubbed), "-rs", "-p", "no:cacheprovider",
                                "-k", "gpt2_small_attention")
    result.assert_outcomes(skipped=1, deselected=18)
    result.stdout.fnmatch_lines([f"SKIPPED [[]1[]] *{stubbed.name}:{line}: *NotImplementedError*"])
    result.stdout.no_fnmatch_line("*pytest_plugin.py*")


def test_each_step_is_timed_by_its_own_grading_not_the_whole(pytester, broken):
    """The grading happens before the first step, outside every test's timing: each step's call
    takes the time the grader's report gives that step, the first one's included (it held the
    whole grading before)."""
    recorder = pytester.inline_run("--attention-submission", str(broken), "-p", "no:cacheprovider", "-q")
    recorder.assertoutcome(passed=18, failed=1)
    report = recorder._pluginmanager.get_plugin("attention-grader-session").report
    own = {step.id: step.seconds for step in report.steps}
    calls = [r for r in recorder.getreports("pytest_runtest_logreport") if r.when == "call"]
    assert [r.nodeid.rsplit("::", 1)[1] for r in calls] == list(own)
    assert all(r.duration == own[r.nodeid.rsplit("::", 1)[1]] for r in calls), \
        [(r.nodeid, r.duration) for r in calls[:3]]

def test_under_xdist_the_notes_are_printed_by_the_controller(pytester, tmp_path):
    pytest.importorskip("xdist")
    noisy = tmp_path / "noisy.py"
    noisy.write_text(SOLUTIONS.read_text() + "\nraise ValueError('a stray cell')\n")
    result = pytester.runpytest_subprocess("--attention-submission", str(noisy), "-n", "2",
                                           "-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=19)
    result.stdout.fnmatch_lines(["*attention-grader: notes on the submission*", "*ValueError*a stray cell*"])
