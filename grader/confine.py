"""The worker's side of the sandbox: confine this process before any student code runs.

Loaded by file path in the worker (standard library only) and applied before torch is imported and
before the submission runs. What it can do depends on the platform and on who runs the grader; it
reports what it did, and the grader says so in the README's sandbox section:

    always            resource limits (address space, CPU time, file size, open files, no core
                      dumps); writing past the file-size limit raises OSError instead of killing
    Linux, as root    a private network namespace (no network at all), a private mount namespace
                      with fresh tmpfs on /tmp, /var/tmp and /dev/shm (what the code writes there
                      vanishes with it), the reference solutions' folder hidden under an empty
                      read-only tmpfs, then a drop to an unprivileged uid of its own (so it cannot
                      write the grader's files, signal the grader, or start more than `processes`
                      processes and threads)
    Linux, not root   the same namespaces through an unprivileged user namespace, where the kernel
                      allows one; no uid change and no process limit
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_BIND = 4096
MS_REC = 16384
MNT_DETACH = 2
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")  # noqa: S108 - covered, not used


def confine(config: dict) -> dict:
    """Apply `config` (limits, uid, paths to hide) to this process; return what was applied."""
    applied: dict = {"limits": set_limits(config["limits"]), "namespaces": [], "uid": None}
    libc = _libc()
    root = os.geteuid() == 0
    if libc is not None and _linux():
        if root or _enter_user_namespace(libc):
            applied["namespaces"] = _namespaces(libc, config, applied)
    uid = config.get("uid")
    if root and uid and "mount" in applied["namespaces"]:
        # Python itself may live under a folder only root can enter (/root/.pyenv here): make the
        # folders it needs enterable, in this mount namespace only, before giving up root.
        _make_traversable(libc, config.get("needed", []))
    if root and uid:
        processes = config["limits"].get("processes")
        if processes:
            resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        applied["uid"] = uid
    if libc is not None and _linux():
        applied.update(tie_to_parent(libc, config.get("parent")))
    return applied


def tie_to_parent(libc, parent: int | None) -> dict:
    """Die with the process that started this one (set after the uid change, which clears it),
    and never gain privileges through a set-user-ID program."""
    applied = {}
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
        applied["no_new_privileges"] = True
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
        applied["dies_with_parent"] = True
        if parent is not None and os.getppid() != parent:
            os._exit(70)  # the parent is already gone: nobody will read what this one does
    return applied


def set_limits(limits: dict) -> dict:
    mb = 1024 * 1024
    wanted = {
        resource.RLIMIT_AS: limits.get("memory_mb", 0) * mb,
        resource.RLIMIT_CPU: int(limits.get("cpu_seconds", 0)),
        resource.RLIMIT_FSIZE: limits.get("file_size_mb", 0) * mb,
        resource.RLIMIT_NOFILE: limits.get("open_files", 0),
        resource.RLIMIT_CORE: 0,
    }
    applied = {}
    for which, value in wanted.items():
        if value is None or (value == 0 and which != resource.RLIMIT_CORE):
            continue
        soft, hard = resource.getrlimit(which)
        value = int(value) if hard == resource.RLIM_INFINITY else min(int(value), hard)
        try:
            resource.setrlimit(which, (value, value))
            applied[_RLIMIT_NAMES[which]] = value
        except (ValueError, OSError):
            pass
    # Past the file-size limit, write() fails with EFBIG instead of the process being killed.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return applied


def lower_limit(which: str, value: int) -> None:
    """Tighten one limit for the step about to run (a soft limit within the hard one)."""
    code = {name: code for code, name in _RLIMIT_NAMES.items()}[which]
    soft, hard = resource.getrlimit(code)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(code, (value, hard))


_RLIMIT_NAMES = {
    resource.RLIMIT_AS: "memory_bytes",
    resource.RLIMIT_CPU: "cpu_seconds",
    resource.RLIMIT_FSIZE: "file_size_bytes",
    resource.RLIMIT_NOFILE: "open_files",
    resource.RLIMIT_CORE: "core_bytes",
}


def _namespaces(libc, config: dict, applied: dict) -> list[str]:
    done = []
    if libc.unshare(CLONE_NEWNET) == 0:
        done.append("network")
    if libc.unshare(CLONE_NEWNS) == 0 and _mount(libc, b"none", b"/", None, MS_REC | MS_PRIVATE):
        done.append("mount")
        needed = config.get("needed", [])
        size = f"size={config['limits'].get('file_size_mb', 16) * 4}m,mode=1777"
        for path in PRIVATE_TMP:
            # Python, torch and the grader may be installed under /tmp (a CI checkout): those
            # folders stay visible in the fresh tmpfs.
            if os.path.isdir(path) and _cover(libc, path, needed, size):
                done.append(f"private {path}")
        if "private /tmp" in done:
            # The working directory's absolute path may now lead into the fresh /tmp.
            os.environ["HOME"] = os.environ["TMPDIR"] = "/tmp"  # noqa: S108 - the private one
        for path in config.get("hide", []):
            if any(n == path or n.startswith(path.rstrip("/") + "/") for n in needed):
                continue  # Python, torch or the grader live in there: it must stay visible
            if os.path.isdir(path) and _mount(libc, b"tmpfs", path.encode(), b"tmpfs",
                                              MS_RDONLY | MS_NOSUID | MS_NODEV, b"size=4k,mode=555"):
                done.append(f"hidden {path}")
    return done


def _make_traversable(libc, needed: list[str]) -> None:
    """Make every folder on the way to `needed` enterable by others, in this mount namespace.

    Python itself may live under a folder only root may enter (/root/.pyenv here); such a folder
    is covered by a tmpfs holding only the entries on the way, so nothing else in it is exposed.
    """
    for _ in range(8):  # a blocked folder inside a blocked folder shows up on the next round
        blocked = sorted({a for p in needed for a in _ancestors(p)
                          if os.path.isdir(a) and not os.stat(a).st_mode & 0o001}, key=len)
        if not blocked or not _cover(libc, blocked[0], needed, "mode=755,size=4k"):
            return


def _cover(libc, directory: str, keep: list[str], options: str) -> bool:
    """Mount a fresh tmpfs over `directory`, with the entries leading to `keep` bind-mounted back
    from the original."""
    children = sorted({os.path.relpath(p, directory).split(os.sep)[0] for p in keep
                       if p.startswith(directory.rstrip("/") + "/")})
    stage = ".stage"  # relative: the working directory stays the real one whatever is mounted
    if children:
        os.mkdir(stage, 0o700)
        if not _mount(libc, directory.encode(), stage.encode(), None, MS_BIND):
            os.rmdir(stage)
            return False
    covered = _mount(libc, b"tmpfs", directory.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                     options.encode())
    if covered:
        for child in children:
            source, target = os.path.join(stage, child), os.path.join(directory, child)
            if os.path.isdir(source):
                os.mkdir(target)
            else:
                open(target, "w").close()
            _mount(libc, source.encode(), target.encode(), None, MS_BIND | MS_REC)
    if children:
        libc.umount2(stage.encode(), MNT_DETACH)
        os.rmdir(stage)
    return covered


def _ancestors(path: str) -> list[str]:
    parts = os.path.abspath(path).split(os.sep)[1:]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _enter_user_namespace(libc) -> bool:
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(CLONE_NEWUSER) != 0:
        return False
    try:
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"0 {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"0 {gid} 1")
    except OSError:
        return False
    return True


def _mount(libc, source, target, fstype, flags, data=None) -> bool:
    return libc.mount(source, target, fstype, flags, data) == 0


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _linux() -> bool:
    return os.uname().sysname == "Linux"
