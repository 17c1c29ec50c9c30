"""The `attention-grader` command ends its process without Python's teardown of torch (grader.cli
`entry`): what the user sees must be the same as an ordinary exit: every byte of the report, the
exit code, the files written and no temporary folder left behind."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys

from conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "student_notebook.ipynb"
PAGE = 4096  # the smallest pipe Linux makes: the HTML report (about 10 KB) cannot fit in it


def _small_pipe() -> tuple[int, int]:
    read, write = os.pipe()
    fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, PAGE)
    return read, write


def _check(tmp_path, *args, **kwargs):
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    return subprocess.Popen([sys.executable, "-m", "grader", "check", str(EXAMPLE), *map(str, args)],
                            cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, **kwargs)


def test_a_report_longer_than_the_pipe_arrives_whole_with_its_exit_code_and_files(tmp_path):
    junit = tmp_path / "junit.xml"
    read, write = _small_pipe()
    process = _check(tmp_path, "--format", "html", "--junit", junit, stdout=write)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        report = pipe.read().decode()
    _, err = process.communicate(timeout=300)
    assert process.returncode == 1, err  # the example notebook has mistakes
    assert len(report) > PAGE and report.rstrip().endswith("</html>") and "90 / 98" in report
    assert junit.read_text(encoding="utf-8").rstrip().endswith("</testsuites>")
    assert list((tmp_path / "tmp").iterdir()) == []  # the workers' folders are removed


def test_a_reader_that_stops_early_gets_an_error_exit_not_a_success(tmp_path):
    read, write = _small_pipe()
    os.close(read)  # like `| head -c 0`: nobody reads the report
    process = _check(tmp_path, "--format", "html", stdout=write)
    os.close(write)
    _, err = process.communicate(timeout=300)
    assert process.returncode not in (0, 1), err
