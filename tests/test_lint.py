"""The code passes the project's own lint rules (pyproject.toml's [tool.ruff]): pyflakes, pycodestyle,
isort, bugbear, pyupgrade and bandit's security rules."""

import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT


def test_ruff_finds_nothing():
    ruff = Path(sys.executable).with_name("ruff")
    assert ruff.exists(), "ruff is a test dependency: pip install -e '.[test]'"
    ran = subprocess.run([str(ruff), "check", "--no-cache", "--output-format", "concise",
                          "grader", "tests", "benchmarks", "examples"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
