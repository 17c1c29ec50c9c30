"""The hostile corpus again, graded by an ordinary user: the instructor's laptop, a CI runner that is
not root. The sandbox must hold the same without root (a user namespace, PID, IPC, mount and network
namespaces, capabilities dropped, seccomp, Landlock), so the whole of `tests/test_hostile.py` runs
as an unprivileged user that this test creates, in a copy of the checkout that user owns (so that
only the sandbox, not file permissions, keeps the reference and the grader's source out of reach).

Everything the user needs lies in a folder the user owns, wherever the checkout and the test's own
virtual environment are (a fresh clone in a `mktemp -d` folder, root's home): a copy of the checkout,
and the test environment's packages as a tree of hard links (copies where a link is refused).
Where this machine cannot give that (not root, no useradd, no Python the user may run), the test
skips saying so, and fails instead under ATTENTION_GRADER_REQUIRE_SANDBOX=1 (CI).
"""

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from conftest import REPO_ROOT, REQUIRE_SANDBOX, sandbox_skip

USER = "attention-grader-test"


def _as_user(user: pwd.struct_passwd, command: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {"HOME": user.pw_dir, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    if REQUIRE_SANDBOX:
        env["ATTENTION_GRADER_REQUIRE_SANDBOX"] = "1"
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


def _linked_tree(source: Path, target: Path) -> None:
    """`source` at `target` as hard links (sharing the files, not their folders), each file a copy
    where a link is refused (another file system) or the file is not world-readable; every folder
    is the tree's own, open to all. Nothing of `source` changes."""
    def link(src: str, dst: str) -> None:
        try:
            if os.stat(src).st_mode & 0o004:
                os.link(src, dst)
                return
        except OSError:
            pass
        shutil.copy2(src, dst)
        os.chmod(dst, 0o644 | (os.stat(dst).st_mode & 0o111))

    shutil.copytree(source, target, symlinks=True, copy_function=link,
                    ignore=shutil.ignore_patterns("__pycache__"))
    for folder, _, _ in os.walk(target):
        os.chmod(folder, 0o755)


def _test_packages() -> list[Path]:
    """This environment's package folders (torch, pytest, yaml...), once each."""
    paths = sysconfig.get_paths()
    return [Path(p) for p in dict.fromkeys((paths["purelib"], paths["platlib"])) if os.path.isdir(p)]


def _environment_for(user: pwd.struct_passwd, home: Path, checkout: Path) -> Path:
    """A virtual environment of the user's own in `home`, seeing the checkout and a linked tree of
    this environment's packages (the originals may sit where the user cannot enter); its python."""
    python = _python_for(user)
    if python is None:
        sandbox_skip(f"no Python {sys.version_info.major}.{sys.version_info.minor} that {USER} may run")
    venv = home / "venv"
    ran = _as_user(user, [python, "-m", "venv", "--without-pip", str(venv)], timeout=120)
    if ran.returncode != 0:
        sandbox_skip(f"{USER} could not make a virtual environment with {python}: {ran.stderr.strip()}")
    trees = []
    for index, packages in enumerate(_test_packages()):
        trees.append(home / f"packages-{index}")
        _linked_tree(packages, trees[-1])
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "attention-grader-test.pth").write_text("".join(f"{p}\n" for p in (*trees, checkout)))
    return venv / "bin" / "python"


def test_the_hostile_corpus_as_an_unprivileged_user():
    if os.geteuid() != 0 or not sys.platform.startswith("linux") or shutil.which("useradd") is None:
        sandbox_skip("creates an unprivileged user to grade as: needs root, Linux and useradd "
                     "(CI runs as root)")
    user = _user()
    # In the user's own home: every folder above the test's may be closed to others (mktemp -d, /root)
    home = Path(tempfile.mkdtemp(prefix="attention-grader-unprivileged-", dir=user.pw_dir))
    try:
        os.chmod(home, 0o755)
        checkout = home / "checkout"
        shutil.copytree(REPO_ROOT, checkout, symlinks=True,
                        ignore=shutil.ignore_patterns(".venv", "__pycache__", ".ruff_cache", "*.egg-info"))
        subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(checkout)], check=True)
        os.chown(home, user.pw_uid, user.pw_gid)
        python = _environment_for(user, home, checkout)
        ran = _as_user(user, [str(python), "-c", "import torch, yaml, pytest, hypothesis, grader"],
                       cwd=checkout, timeout=120)
        assert ran.returncode == 0, f"the environment made for {USER} cannot import: {ran.stderr}"

        sandbox = _as_user(user, [str(python), "-m", "grader", "sandbox"],
                           cwd=checkout, timeout=120)
        assert sandbox.returncode == 0, sandbox.stdout + sandbox.stderr
        ran = _as_user(user, [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
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
