"""The hostile corpus again, graded by an ordinary user: the instructor's laptop, a CI runner that is
not root. The sandbox must hold the same without root (a user namespace, PID, IPC, mount and network
namespaces, capabilities dropped, seccomp, Landlock), so the whole of `tests/test_hostile.py` runs
as an unprivileged user that this test creates, in a copy of the checkout that user owns (so that
only the sandbox, not file permissions, keeps the reference and the grader's source out of reach).
"""

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest
from conftest import REPO_ROOT

USER = "attention-grader-test"
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not sys.platform.startswith("linux") or shutil.which("useradd") is None,
    reason="creates an unprivileged user to grade as: needs root and useradd (CI runs as root)")


def _as_user(user: pwd.struct_passwd, command: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {"HOME": user.pw_dir, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run(command, user=user.pw_uid, group=user.pw_gid, extra_groups=[], env=env,
                          capture_output=True, text=True, **kwargs)


def _user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", USER], check=True)
        return pwd.getpwnam(USER)


def _python_for(user: pwd.struct_passwd) -> str | None:
    """A Python of this minor version that the user may run (root's own may sit in /root)."""
    wanted = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, os.path.realpath(sys.executable), f"/usr/bin/python{wanted}",
                      f"/usr/local/bin/python{wanted}", "/usr/bin/python3"):
        try:
            ran = _as_user(user, [candidate, "-c", "import sys; print(*sys.version_info[:2], sep='.')"],
                           timeout=30)
        except OSError:
            continue
        if ran.returncode == 0 and ran.stdout.strip() == wanted:
            return candidate
    return None


def test_the_hostile_corpus_as_an_unprivileged_user():
    user = _user()
    python = _python_for(user)
    if python is None:
        pytest.skip(f"no Python {sys.version_info.major}.{sys.version_info.minor} that {USER} may run")
    home = Path(tempfile.mkdtemp(prefix="attention-grader-unprivileged-"))
    try:
        os.chmod(home, 0o755)
        checkout = home / "checkout"
        shutil.copytree(REPO_ROOT, checkout, symlinks=True,
                        ignore=shutil.ignore_patterns(".venv", "__pycache__", ".ruff_cache", "*.egg-info"))
        # A virtual environment of the user's own, seeing this one's packages (torch, pytest...)
        venv = home / "venv"
        for path in (checkout, home):
            os.chown(path, user.pw_uid, user.pw_gid)
        ran = _as_user(user, [python, "-m", "venv", "--without-pip", str(venv)], timeout=120)
        assert ran.returncode == 0, ran.stderr
        site = next(venv.glob("lib/python3*/site-packages"))
        (site / "attention-grader-test.pth").write_text(
            f"{sysconfig.get_paths()['purelib']}\n{checkout}\n")
        subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(checkout)], check=True)

        sandbox = _as_user(user, [str(venv / "bin" / "python"), "-m", "grader", "sandbox"],
                           cwd=checkout, timeout=120)
        assert sandbox.returncode == 0, sandbox.stdout + sandbox.stderr
        ran = _as_user(user, [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              "-rs", "tests/test_hostile.py"], cwd=checkout, timeout=900)
        output = ran.stdout[-6000:] + ran.stderr[-3000:]
        assert ran.returncode == 0, output
        if "✘" not in sandbox.stdout:  # every layer there: nothing may be skipped for want of one
            assert " skipped" not in ran.stdout.splitlines()[-1], output
        # nothing the corpus did reached the checkout the user owns
        judge = Path("grader", "judge.py")
        assert (checkout / judge).read_bytes() == (REPO_ROOT / judge).read_bytes()
    finally:
        shutil.rmtree(home, ignore_errors=True)
