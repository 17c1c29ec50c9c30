"""The grader installed from a wheel (`pip install .`, a wheel file), not from the checkout: every
entry point finds the course (rubric, reference, exercises) packed beside it."""

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
    site = next(base.glob("venv/lib/python3*/site-packages"))
    assert (site / "grader" / "course" / "config.yaml").is_file()
    return bin_folder


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


def run(bin_folder: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_folder / "attention-grader"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_check_from_a_wheel_grades_with_the_packed_rubric(installed, tmp_path):
    shutil.copy(REPO_ROOT / "examples" / "student_notebook.ipynb", tmp_path)
    # the worker cannot read the installed reference either: it sits in the package it may read
    reference = next(installed.parent.glob("lib/python3*/site-packages/grader/course/solutions"))
    (tmp_path / "peek.py").write_text(
        "def softmax_naive(x):\n    import torch\n    try:\n"
        f"        text = open({str(reference / 'attention.py')!r}).read()\n"
        "    except OSError:\n        text = ''\n"
        "    if 'def softmax_naive' in text:\n        raise RuntimeError('read the reference')\n"
        "    e = torch.exp(x)\n    return e / e.sum(dim=0)\n")
    checked = run(installed, tmp_path, "check", "student_notebook.ipynb")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "Score: 90 / 98" in checked.stdout
    if "mount" in checked.stdout.split("Sandbox:")[-1]:  # hidden by the mount layer, and Landlock
        peek = run(installed, tmp_path, "check", "peek.py", "--step", "softmax_naive")
        assert "softmax_naive                   5/5   passed" in peek.stdout, peek.stdout


def test_gradescope_and_bundle_from_a_wheel(installed, tmp_path):
    built = run(installed, tmp_path, "gradescope", "--out", "autograder.zip")
    assert built.returncode == 0, built.stderr
    names = set(zipfile.ZipFile(tmp_path / "autograder.zip").namelist())
    assert {"pyproject.toml", "config.yaml", "solutions/attention.py", "grader/cli.py"} <= names
    assert not any(name.startswith("grader/course/") for name in names)  # the course, once
    bundled = run(installed, tmp_path, "bundle", "--out", "bundle")
    assert bundled.returncode == 0, bundled.stderr
    bundle = tmp_path / "bundle"
    assert (bundle / "exercises" / "attention.ipynb").is_file()
    # no solutions anywhere in it, not even the packed course of the installed grader
    assert not any("solution" in p.name.lower() or "mistakes" in p.name for p in bundle.rglob("*"))
    reference = (REPO_ROOT / "solutions" / "attention.py").read_text()
    assert not any(p.is_file() and p.read_bytes() == reference.encode() for p in bundle.rglob("*"))

    # the bundle installed as a student would, not editable: check finds its own rubric
    student = install_wheel_of(bundle, tmp_path / "student")
    shutil.copy(REPO_ROOT / "examples" / "student_notebook.ipynb", tmp_path / "mine.ipynb")
    checked = run(student, tmp_path, "check", "mine.ipynb")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "visible cases only" in checked.stdout or "hidden cases" in checked.stdout, checked.stdout
