"""`attention-grader gradescope` builds the archive Gradescope expects, and its run_autograder,
run in a fake /autograder folder, grades the submission with the archived grader and writes
Gradescope's results.json."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from grader import cli, load_rubric
from grader.gradescope import find_submission


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    out = tmp_path_factory.mktemp("build") / "autograder.zip"
    assert cli.main(["gradescope", "--out", str(out)]) == 0
    return out


def autograder(tmp_path, archive, submission, name, *, exit_code=0, damage=None, **environment):
    """Lay out /autograder as Gradescope does, run run_autograder, return results.json."""
    source = tmp_path / "source"
    with zipfile.ZipFile(archive) as z:
        z.extractall(source)
    if damage:
        damage(source)
    (tmp_path / "submission").mkdir()
    (tmp_path / "results").mkdir()
    shutil.copy(submission, tmp_path / "submission" / name)
    env = {**os.environ, "AUTOGRADER_ROOT": str(tmp_path), "PYTHON": sys.executable,
           "PYTHONPATH": str(source), **environment}
    done = subprocess.run(["bash", str(source / "run_autograder")], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == exit_code, done.stdout + done.stderr
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    results["log"] = done.stdout + done.stderr
    return results


def test_the_archive_has_what_gradescope_runs(archive):
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
        modes = {info.filename: info.external_attr >> 16 for info in z.infolist()}
        run = z.read("run_autograder").decode()
        setup = z.read("setup.sh").decode()
    # torch from PyTorch's CPU-only index, never PyPI's CUDA build (several GB, no GPU there)
    install = next(line for line in setup.replace("\\\n", " ").splitlines() if "torch==" in line)
    assert "--index-url https://download.pytorch.org/whl/cpu" in install
    assert {"setup.sh", "run_autograder", "config.yaml", "pyproject.toml",
            "grader/__init__.py", "grader/worker.py", "grader/report/text.py",
            "solutions/attention.py", "solutions/mistakes.py"} <= names
    assert not any("__pycache__" in name for name in names)
    assert modes["run_autograder"] & 0o111 and modes["setup.sh"] & 0o111
    assert "gradescope-run" in run and '"$ROOT/source/config.yaml"' in run


def test_the_example_notebook_scores_90_of_98(tmp_path, archive):
    results = autograder(tmp_path, archive, REPO_ROOT / "examples" / "student_notebook.ipynb",
                         "attention.ipynb")
    assert results["score"] == 90
    assert len(results["tests"]) == 19
    assert sum(t["max_score"] for t in results["tests"]) == 98
    tests = {t["name"].split()[1].rstrip(":"): t for t in results["tests"]}
    assert tests["attention_weights"]["score"] == 2 and tests["attention_weights"]["status"] == "failed"
    assert "softmax_wrong_dim" in tests["attention_weights"]["output"]
    assert tests["softmax_naive"]["status"] == "passed"
    assert all(t["visibility"] == "visible" for t in results["tests"])
    assert "NameError" in results["output"]  # the notes on the notebook as a whole


def test_the_reference_solution_gets_full_marks(tmp_path, archive):
    results = autograder(tmp_path, archive, REPO_ROOT / "solutions" / "attention.py", "attention.py")
    assert results["score"] == 98 and len(results["tests"]) == 19
    assert all(t["score"] == t["max_score"] for t in results["tests"])


def test_finding_the_submission(tmp_path):
    assert find_submission(tmp_path) == (None, find_submission(tmp_path)[1])
    assert "no notebook" in find_submission(tmp_path)[1]
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "attention-checkpoint.ipynb").write_text("{}")
    (tmp_path / "helper.py").write_text("")
    assert find_submission(tmp_path)[0] == tmp_path / "helper.py"  # the only candidate
    (tmp_path / "mine.ipynb").write_text("{}")
    assert find_submission(tmp_path)[0] == tmp_path / "mine.ipynb"  # a notebook first
    (tmp_path / "other.ipynb").write_text("{}")
    path, problem = find_submission(tmp_path)
    assert path is None and "mine.ipynb, other.ipynb" in problem
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "attention.py").write_text("")
    assert find_submission(tmp_path)[0] == tmp_path / "repo" / "attention.py"


def test_an_empty_submission_scores_zero_with_a_reason(tmp_path, archive):
    (tmp_path / "submission").mkdir()
    results = tmp_path / "results.json"
    env_root = {"AUTOGRADER_ROOT": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "grader", "gradescope-run", "--results", str(results)],
                          env={**os.environ, **env_root}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    data = json.loads(results.read_text())
    assert data["score"] == 0 and "no notebook" in data["output"]


def test_an_invalid_rubric_builds_no_archive(tmp_path, capsys):
    rubric = tmp_path / "config.yaml"
    rubric.write_text("rubric: 1\nsteps: 3\n")
    assert cli.main(["gradescope", "--out", str(tmp_path / "a.zip"), "--rubric", str(rubric)]) == 2
    assert "config.yaml" in capsys.readouterr().err
    assert not (tmp_path / "a.zip").exists()


def test_a_grader_that_cannot_grade_still_writes_results_for_staff_eyes(tmp_path, archive):
    """Gradescope asks for results.json in every outcome: the student reads that it is not their
    fault, the reason is in a test only the staff see, and the exit status says the grader failed."""
    def break_reference(source):
        (source / "solutions" / "attention.py").write_text("raise RuntimeError('half-edited')\n")

    results = autograder(tmp_path, archive, REPO_ROOT / "solutions" / "attention.py", "attention.py",
                         exit_code=2, damage=break_reference)
    assert results["score"] == 0
    assert "not your work" in results["output"] and "regrade" in results["output"]
    (staff,) = results["tests"]
    assert staff["visibility"] == "hidden" and "half-edited" in staff["output"]
    assert results["extra_data"]["grader_failed"] is True


def test_the_worker_is_limited_to_what_a_small_container_leaves(tmp_path, archive):
    """The rubric's 2048 MB of address space would let a submission take a 768 MB container (and the
    grader with it) down: the limit is lowered to fit, and a container too small is refused."""
    hog = tmp_path / "hog.py"
    hog.write_text((REPO_ROOT / "solutions" / "attention.py").read_text() + """
_right = softmax_naive


def softmax_naive(x):
    hoard = bytearray(900 * 1024 * 1024)  # more than a 768 MB container leaves the worker
    return _right(x) + 0 * len(hoard)
""")
    small = autograder(tmp_path / "small", archive, hog, "attention.py", AUTOGRADER_MEMORY_MB="768")
    assert "the worker's memory limit is 768 MB" in small["log"]
    (softmax,) = [t for t in small["tests"] if "softmax_naive" in t["name"]]
    assert softmax["score"] == 0 and "memory" in softmax["output"], softmax
    assert small["score"] == 98 - softmax["max_score"]
    roomy = autograder(tmp_path / "roomy", archive, hog, "attention.py", AUTOGRADER_MEMORY_MB="8192")
    assert roomy["score"] == 98, roomy["output"]
    tiny = autograder(tmp_path / "tiny", archive, hog, "attention.py", exit_code=2,
                      AUTOGRADER_MEMORY_MB="400")
    assert "Autograder Settings" in tiny["tests"][0]["output"]


def test_an_archive_is_not_built_from_a_student_bundle(tmp_path, capsys):
    assert cli.main(["bundle", "--out", str(tmp_path / "bundle")]) == 0
    capsys.readouterr()
    out = tmp_path / "a.zip"
    student_rubric = str(tmp_path / "bundle" / "config.yaml")
    assert cli.main(["gradescope", "--out", str(out), "--rubric", student_rubric]) == 2
    assert "student bundle" in capsys.readouterr().err
    assert not out.exists()


def test_an_archive_of_another_course_carries_its_checks_and_fixtures(tmp_path):
    # chapter 4: a course-checks file and a fixtures file beside its rubric; students hand in gpt.py
    course = Path(__file__).resolve().parent.parent / "examples" / "chapter4"
    out = tmp_path / "chapter4.zip"
    assert cli.main(["gradescope", "--out", str(out), "--rubric", str(course / "config.yaml")]) == 0
    with zipfile.ZipFile(out) as z:
        assert {"checks.py", "fixtures.py", "solutions/gpt.py"} <= set(z.namelist())
    results = autograder(tmp_path, out, course / "solutions" / "gpt.py", "gpt.py")
    full = sum(step.points for step in load_rubric(course / "config.yaml").steps)
    assert results["score"] == full, results["log"]
