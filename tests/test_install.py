"""The grader installed from a wheel (`pip install .`, a wheel file), not from the checkout. The
instructor's wheel carries no course (no reference solutions in anything a student could install):
every entry point finds the course folder by the documented rule. The student bundle's wheel
carries its own rubric and expected answers."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import REPO_ROOT

pytest.importorskip("setuptools", reason="building the wheel offline needs setuptools here")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A virtual environment with the grader's wheel installed, and this one's packages (torch...)
    visible; returns its bin folder."""
    base = tmp_path_factory.mktemp("install")
    source = base / "source"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", "__pycache__", "build", "dist", "*.egg-info", ".ruff_cache", ".git"))
    bin_folder = install_wheel_of(source, base)
    (wheel,) = (base / "wheel").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "grader/cli.py" in names
    assert not any("solutions" in name or "mistakes" in name or name.endswith("config.yaml")
                   for name in names), names
    return bin_folder


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """The course folder an instructor keeps beside the installed grader (no grader/ in it)."""
    folder = tmp_path_factory.mktemp("course")
    for name in ("config.yaml", "solutions", "exercises"):
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, folder / name)
    return folder


def install_wheel_of(project: Path, base: Path) -> Path:
    """Build `project`'s wheel offline, install it (not editable) into a fresh `base/venv` that sees
    this environment's packages (torch...) but not this checkout; return its bin folder."""
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "--no-index", "-w", str(base / "wheel"), str(project)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (base / "wheel").glob("*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "zz-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                           "install", "--no-deps", "--no-index", str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return venv / "bin"


def run(bin_folder: Path, cwd: Path, *args: str, **environment) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ATTENTION_GRADER_RUBRIC"}
    return subprocess.run([str(bin_folder / "attention-grader"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={**env, **environment})


def test_check_from_a_wheel_finds_the_course_by_the_documented_rule(installed, course, tmp_path):
    shutil.copy(REPO_ROOT / "examples" / "student_notebook.ipynb", tmp_path)
    # nowhere to find a rubric: a clear refusal naming the three ways to give one
    lost = run(installed, tmp_path, "check", "student_notebook.ipynb")
    assert lost.returncode == 2
    assert "no rubric found" in lost.stderr and "--rubric" in lost.stderr
    assert "ATTENTION_GRADER_RUBRIC" in lost.stderr and "Traceback" not in lost.stderr
    # another tool's config.yaml is passed over, and named
    (tmp_path / "config.yaml").write_text("lint: {line: 100}\n")
    other = run(installed, tmp_path, "check", "student_notebook.ipynb")
    assert other.returncode == 2 and "not a grader rubric" in other.stderr
    # --rubric, the environment variable, and the course folder (or one below it) as cwd
    given = run(installed, tmp_path, "check", "student_notebook.ipynb", "--rubric",
                str(course / "config.yaml"))
    named = run(installed, tmp_path, "check", "student_notebook.ipynb",
                ATTENTION_GRADER_RUBRIC=str(course / "config.yaml"))
    inside = run(installed, course / "exercises", "check", str(tmp_path / "student_notebook.ipynb"))
    for done in (given, named, inside):
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Score: 90 / 98" in done.stdout


def test_the_worker_cannot_read_the_course_of_an_installed_grader(installed, course, tmp_path):
    (tmp_path / "peek.py").write_text(
        "def softmax_naive(x):\n    import torch\n    try:\n"
        f"        text = open({str(course / 'solutions' / 'attention.py')!r}).read()\n"
        "    except OSError:\n        text = ''\n"
        "    if 'def softmax_naive' in text:\n        raise RuntimeError('read the reference')\n"
        "    e = torch.exp(x)\n    return e / e.sum(dim=0)\n")
    peek = run(installed, course, "check", str(tmp_path / "peek.py"), "--step", "softmax_naive")
    if "mount" in peek.stdout.split("Sandbox:")[-1]:  # hidden by the mount layer, and Landlock
        assert "softmax_naive                   5/5   passed" in peek.stdout, peek.stdout


def test_gradescope_and_bundle_from_a_wheel(installed, course, tmp_path):
    rubric = str(course / "config.yaml")
    built = run(installed, tmp_path, "gradescope", "--out", "autograder.zip", "--rubric", rubric)
    assert built.returncode == 0, built.stderr
    names = set(zipfile.ZipFile(tmp_path / "autograder.zip").namelist())
    assert {"pyproject.toml", "config.yaml", "solutions/attention.py", "grader/cli.py"} <= names
    assert not any(name.startswith("grader/course/") for name in names)
    bundled = run(installed, tmp_path, "bundle", "--out", "bundle", "--rubric", rubric)
    assert bundled.returncode == 0, bundled.stderr
    bundle = tmp_path / "bundle"
    assert (bundle / "exercises" / "attention.ipynb").is_file()
    assert not any("solution" in p.name.lower() or "mistakes" in p.name for p in bundle.rglob("*"))
    reference = (REPO_ROOT / "solutions" / "attention.py").read_text()
    assert not any(p.is_file() and p.read_bytes() == reference.encode() for p in bundle.rglob("*"))

    # the bundle installed as a student would, not editable: check finds its own rubric
    student = install_wheel_of(bundle, tmp_path / "student")
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "examples" / "student_notebook.ipynb", home / "mine.ipynb")
    checked = run(student, home, "check", "mine.ipynb")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "hidden cases" in checked.stdout, checked.stdout
    # and the pytest route: the bundle's wheel registers the plugin
    tested = subprocess.run([str(student / "python"), "-m", "pytest", "-p", "no:cacheprovider",
                             "--attention-submission", "mine.ipynb", "-q"], cwd=home,
                            capture_output=True, text=True, timeout=300)
    assert tested.returncode == 1, tested.stdout + tested.stderr
    assert "FAILED mine.ipynb::attention_weights" in tested.stdout, tested.stdout
