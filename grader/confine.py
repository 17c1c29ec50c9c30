"""The worker's side of the sandbox: confine this process before any student code runs.

Loaded by file path in the worker (standard library only) and applied before torch is imported (or,
in a worker forked from the warm zygote, right after the fork) and before the submission runs. It
reports every layer it applied, and names each one the kernel refused, so that the grader can say so
and a rubric can demand layers (`require:`). The layers, in the order they are applied:

    limits        address space, CPU time, file size, open files, no core dumps (every platform)
    user          an unprivileged user namespace (Linux, not root): the layers below without root
    network       a private network namespace: no network at all
    ipc           a private IPC namespace: SysV shared memory and queues die with the worker, and
                  its limits (kernel.shmall, shmmax, msgmnb...) are written to fit `memory_mb`
    mount         a private mount namespace: fresh tmpfs on /tmp, /var/tmp and /dev/shm, each of a
                  size that fits `memory_mb` (`shared_memory_budget`), the worker's
                  folder inside that /tmp (so its writes are bounded and vanish), and the hidden
                  paths (reference solutions, the checkout's history...) under empty read-only tmpfs
    pid           a private PID namespace: the worker cannot signal any process but its own, and
                  when it ends every process it started ends with it
    proc          a fresh /proc for that namespace: the grader's command line and the classmates'
                  workers are not there to be read
    uid           as root: an unprivileged uid of its own, with `processes` processes and threads
    capabilities  every capability dropped (and the bounding set emptied), so mounts cannot be undone
    no_new_privs  no privileges gained through a set-user-ID program
    seccomp       a filter refusing mount, umount2, unshare, setns, ptrace, new namespaces, io_uring,
                  bpf, memfd_create and Unix-domain sockets
    landlock      read only the Python installation, torch, these files and the system folders; write
                  only the worker's folder; no TCP; no signals or abstract sockets beyond its own
    dies_with_parent  PR_SET_PDEATHSIG: nothing outlives the grader, even one killed outright

With the PID namespace, the worker is the namespace's init (process 1), whose end ends every
process the student left behind. A zygote running as root forks each worker straight into a
namespace of its own (`fork_as_init`). Elsewhere (not root), the process forked for the worker
stays outside as a relay: it enters the namespaces, forks the worker and passes its exit status
on. (A relay costs one more fork and exit of a torch-sized process per submission; a separate
init, forking the worker in turn, would cost another.)

Memory that no process maps is outside the address-space limit: SysV segments left detached, files
on a tmpfs, memfds. The worker's shared memory is therefore bounded where it can live: SysV
segments by its IPC namespace's limits, tmpfs files by each private tmpfs's size (the three and
SysV together within `memory_mb`), and memfds are refused (seccomp).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import resource
import signal
import struct

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER
                   | CLONE_NEWPID | CLONE_NEWNET)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_REC = 16384
MNT_DETACH = 2
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")  # noqa: S108 - covered, not used
WORK = "/tmp/work"  # noqa: S108 - the worker's folder, inside its private /tmp
SYSTEM_READ = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc", "/proc",
               "/sys", "/dev")
LAYERS = ("limits", "user", "network", "ipc", "mount", "pid", "proc", "uid", "capabilities", "no_new_privs",
          "seccomp", "landlock", "dies_with_parent")
STOPS = {  # what each layer stops, as `attention-grader sandbox` and the README say
    "limits": "runaway memory, CPU time, file sizes, open files and core dumps (per process)",
    "user": "(not root) gives the layers below without privileges; the worker is root of nothing",
    "network": "any network access, even loopback",
    "ipc": "SysV shared memory, semaphores and queues shared with the host, outliving the worker "
           "or beyond `memory_mb`",
    "mount": "reading the reference, .git, tests/ and examples/ by path; files left in /tmp; "
             "unbounded writes (/tmp, /var/tmp, /dev/shm and the worker's folder are tmpfs sized "
             "to fit `memory_mb`)",
    "pid": "signalling the grader or classmates; processes outliving the worker",
    "proc": "reading other processes' command lines (the grader's --out, the class folder)",
    "uid": "(root) touching anything not world-writable; more than `processes` processes",
    "capabilities": "undoing the hiding mounts (umount2), raising limits, re-entering namespaces",
    "no_new_privs": "gaining privileges through a set-user-ID program",
    "seccomp": "mount, umount2, unshare, setns, ptrace, io_uring, bpf, new namespaces, memfds "
               "(memory no limit counts), Unix sockets",
    "landlock": "reading anything but Python, torch and system folders; writing outside the "
                "worker's folder; TCP; signals and abstract sockets beyond its own processes",
    "dies_with_parent": "a worker outliving a grader that was killed outright",
}


def expected_layers(root: bool) -> tuple[str, ...]:
    """The layers a full sandbox has: `uid` as root, `user` (a user namespace) otherwise."""
    return tuple(name for name in LAYERS if name != ("user" if root else "uid"))


def summary(sandbox: dict) -> str:
    """One line for a report: the layers in force, and those refused with why."""
    layers = sandbox.get("layers", [])
    refused = sandbox.get("refused", {})
    text = f"Sandbox: {', '.join(layers) or 'none'}"
    if refused:
        text += "; not applied: " + "; ".join(f"{name} ({why})" for name, why in refused.items())
    return text


def confine(config: dict) -> dict:
    """Apply `config` (limits, uid, paths to hide) to this process; return what was applied.

    `applied["layers"]` lists the layers in force, `applied["refused"]` maps each layer that was
    tried and could not be applied to why.
    """
    applied: dict = {"limits": set_limits(config["limits"]), "layers": ["limits"], "refused": {},
                     "namespaces": [], "uid": None}
    libc = _libc()
    if libc is None or not _linux():
        applied["refused"]["namespaces"] = "not Linux"
        return applied
    root = os.geteuid() == 0
    # The folder the grader made, and its parent: unreachable by name once /tmp is private.
    folder = (os.getcwd(), os.open("..", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
    if root or _layer(applied, "user", _enter_user_namespace(libc)):
        _namespaces(libc, config, applied)
    if "pid" in applied["layers"] and not config.get("pid_init"):
        _relay(libc, config, folder)  # only the namespace's first process returns
    os.close(folder[1])
    if "private /tmp" in applied["namespaces"]:
        os.chdir(WORK)
        os.environ["HOME"] = os.environ["TMPDIR"] = WORK
        if "mount" in applied["layers"]:
            _layer(applied, "proc", _fresh_proc(libc))
    if root and config.get("uid") and "mount" in applied["layers"]:
        # Python itself may live under a folder only root can enter (/root/.pyenv here): make the
        # folders it needs enterable, in this mount namespace only, before giving up root.
        _make_traversable(libc, config.get("needed", []))
        _hide(libc, config, applied["namespaces"])
    landlock = _landlock_rules(libc, config, applied)  # opened while every folder is reachable
    processes = config["limits"].get("processes")
    if processes and (root and config.get("uid") or "user" in applied["layers"]):
        # Counted per user namespace: the worker's own processes and threads, not the grader's.
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
        applied["limits"]["processes"] = processes
    if root and config.get("uid"):
        uid = config["uid"]
        _drop_capability_bounds(libc)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        applied["uid"] = uid
        applied["layers"].append("uid")
    if root or "user" in applied["layers"]:
        _layer(applied, "capabilities", _drop_capabilities(libc))
    applied.update(tie_to_parent(libc, config.get("parent") if "pid" not in applied["layers"] else None))
    for name in ("no_new_privs", "dies_with_parent"):
        _layer(applied, name, applied.get(name) or "the kernel refused it")
    if applied.get("no_new_privileges") or applied.get("no_new_privs"):
        _layer(applied, "seccomp", _seccomp(libc))
        _layer(applied, "landlock", _restrict_landlock(libc, *landlock) if landlock[0] is not None
               else landlock[1])
    if "pid" in applied["layers"]:
        _as_init()
    applied["layers"].sort(key=LAYERS.index)
    return applied


def _layer(applied: dict, name: str, outcome) -> bool:
    """Record one layer: `True` applied, a string says why the kernel refused it."""
    if outcome is True:
        applied["layers"].append(name)
        return True
    applied["refused"][name] = str(outcome or "the kernel refused it")
    return False


def tie_to_parent(libc, parent: int | None, signum: int = signal.SIGKILL) -> dict:
    """Die with the process that started this one (set after the uid change, which clears it),
    and never gain privileges through a set-user-ID program."""
    applied = {}
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
        applied["no_new_privs"] = True
    if libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0:
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


# ---------------------------------------------------------------- namespaces


def shared_memory_budget(limits: dict) -> dict[str, int]:
    """How `memory_mb` is shared among the memory no process maps (outside RLIMIT_AS), in MiB:
    each of the three private tmpfs (/tmp, /var/tmp, /dev/shm) holds at most `tmpfs_mb` (four
    times the file-size limit, at most a quarter of `memory_mb`), SysV segments `sysv_mb` (a
    quarter): together at most `memory_mb`."""
    quarter = max(limits.get("memory_mb") or 2048, 4) // 4
    return {"tmpfs_mb": min((limits.get("file_size_mb") or 16) * 4, quarter), "sysv_mb": quarter}


def ipc_limits(limits: dict) -> dict[str, str]:
    """The IPC namespace's sysctls (/proc/sys/kernel/..., /proc/sys/fs/mqueue/...) that bound its
    SysV shared memory to `shared_memory_budget`'s share and its queues and semaphores to little."""
    sysv = shared_memory_budget(limits)["sysv_mb"] << 20
    return {"kernel/shmmax": str(sysv), "kernel/shmall": str(sysv // resource.getpagesize()),
            "kernel/shmmni": "64", "kernel/msgmni": "16", "kernel/msgmnb": "65536",
            "kernel/msgmax": "8192", "kernel/sem": "250 4096 32 16", "fs/mqueue/queues_max": "16",
            "fs/mqueue/msg_max": "16", "fs/mqueue/msgsize_max": "8192"}


def _bound_ipc(limits: dict) -> bool | str:
    """Write `ipc_limits` into this (new) IPC namespace's sysctls; the kernel lets the namespace's
    owner write them, as root and as root of a user namespace."""
    for name, value in ipc_limits(limits).items():
        try:
            with open(f"/proc/sys/{name}", "w") as f:
                f.write(value + "\n")
        except OSError as exc:
            return f"could not bound its SysV IPC ({name}: {exc.strerror})"
    return True


def _namespaces(libc, config: dict, applied: dict) -> None:
    _layer(applied, "network", libc.unshare(CLONE_NEWNET) == 0 or _error())
    _layer(applied, "ipc", _bound_ipc(config["limits"]) if libc.unshare(CLONE_NEWIPC) == 0 else _error())
    if not _layer(applied, "mount", (libc.unshare(CLONE_NEWNS) == 0
                                     and _mount(libc, b"none", b"/", None, MS_REC | MS_PRIVATE)) or _error()):
        return
    done = applied["namespaces"]
    needed = config.get("needed", [])
    size = f"size={shared_memory_budget(config['limits'])['tmpfs_mb']}m,mode=1777"
    for path in PRIVATE_TMP:
        # Python, torch and the grader may be installed under /tmp (a CI checkout): those
        # folders stay visible in the fresh tmpfs.
        if os.path.isdir(path) and _cover(libc, path, needed, size):
            done.append(f"private {path}")
    if "private /tmp" in done:
        # The worker's folder moves into its private /tmp: what it writes is bounded and vanishes.
        # (entered after the fork of the relay, which keeps the real folder to remove it)
        os.mkdir(WORK, 0o700)
        if config.get("uid"):
            os.chown(WORK, config["uid"], config["uid"])
    _hide(libc, config, done)
    if config.get("pid_init"):  # forked into a namespace of its own (fork_as_init)
        _layer(applied, "pid", os.getpid() == 1 or "not the first process of a PID namespace")
    else:  # last: the namespace's first child, forked by _relay, is the PID namespace's init
        _layer(applied, "pid", libc.unshare(CLONE_NEWPID) == 0 or _error())


def _hide(libc, config: dict, done: list[str]) -> None:
    """An empty read-only tmpfs over each hidden folder (again after the folders on the way to
    Python were covered: a mount made before may be under what was bound back)."""
    needed = config.get("needed", [])
    for path in config.get("hide", []):
        if any(n == path or n.startswith(path.rstrip("/") + "/") for n in needed):
            continue  # Python, torch or the grader live in there: it must stay visible
        if os.path.isdir(path) and _mount(libc, b"tmpfs", path.encode(), b"tmpfs",
                                          MS_RDONLY | MS_NOSUID | MS_NODEV, b"size=4k,mode=555"):
            if f"hidden {path}" not in done:
                done.append(f"hidden {path}")


def _fresh_proc(libc) -> bool | str:
    """A /proc that shows only this PID namespace (not the grader's command line, nor classmates)."""
    if _mount(libc, b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC):
        return True
    return f"could not mount a fresh /proc ({_error()})"


def _relay(libc, config: dict, folder: tuple[str, int]) -> None:
    """Fork the PID namespace's init; this process stays outside as the grader's handle on it.

    The relay holds nothing of the worker's (its descriptors are closed, so the grader sees the
    worker's pipes close when the worker ends) and exits as the worker did. Killed (by the grader,
    or by the death of its own parent), it takes the namespace with it.
    """
    pid = os.fork()
    if pid == 0:
        return
    _become_bystander(keep=folder[1])

    def cleanup(signum, frame):  # the grader went away: remove the worker's real folder, then go
        remove_folder(*folder)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, cleanup)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if config.get("parent") is not None and os.getppid() != config["parent"]:
        cleanup(signal.SIGTERM, None)
    status = _wait_for(pid)
    remove_folder(*folder)
    _exit_like(status)


def own_pid_namespace(libc) -> int | None:
    """For a zygote running as root: a descriptor of its own PID namespace, where the kernel lets
    it fork each worker straight into a new one (`fork_as_init`, tried here once); None where it
    does not (not root, not Linux, a container without CAP_SYS_ADMIN): the worker's relay does it."""
    if libc is None or not _linux() or os.geteuid() != 0:
        return None
    try:
        own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        pid = fork_as_init(libc, own)
    except OSError:
        os.close(own)
        return None
    if pid == 0:
        os._exit(0 if os.getpid() == 1 else 1)
    if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
        os.close(own)
        return None
    return own


def fork_as_init(libc, own: int) -> int:
    """`os.fork()`, the child the first process (init) of a new PID namespace: no relay between it
    and this process. `own` is this process's namespace (`own_pid_namespace`), which its next
    children are put back into. Raises OSError if the kernel refuses the new namespace."""
    if libc.unshare(CLONE_NEWPID) != 0:
        raise OSError(ctypes.get_errno(), f"no new PID namespace ({_error()})")
    pid = -1
    try:
        pid = os.fork()
        return pid
    finally:
        if pid != 0 and libc.setns(own, CLONE_NEWPID) != 0:
            # Every later child would land in that namespace, a classmate's: never go on.
            os.write(2, f"cannot return to its own PID namespace ({_error()})\n".encode())
            os._exit(70)


def _as_init() -> None:
    """The worker is its PID namespace's init (process 1): no process of its own stands between
    it and its parent (the zygote, or its relay), and when it ends, the kernel ends every process
    the student left behind.

    An init is sent only the signals it has a handler for. The fatal ones the kernel raises for
    a fault (SIGSEGV, SIGBUS, SIGFPE, SIGILL) and SIGKILL still end it; a limit's SIGXCPU would
    not, so it has a handler that ends the worker as that signal would (exit code 128 + n, which
    the relay, or the zygote, passes on as the signal). What the student's code sends itself
    (SIGTERM, SIGSTOP...) has no effect: the worker goes on, as it would had the signal been
    ignored."""
    signal.signal(signal.SIGXCPU, lambda signum, frame: os._exit(128 + signum))


def _wait_for(pid: int) -> int:
    while True:
        try:
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        except ChildProcessError:
            return 70


def _exit_like(code: int) -> None:
    """Exit as the worker did: its code, or its signal n (negative, or 128 + n from a handler of
    the init's: see `_as_init`)."""
    signum = -code if code < 0 else code - 128 if code > 128 else 0
    if signum in signal.valid_signals():
        if signum not in (signal.SIGKILL, signal.SIGSTOP):  # those two have no handler to reset
            signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    os._exit(code if 0 <= code < 256 else 70)


def _become_bystander(keep: int | None = None) -> None:
    """Close every descriptor of the worker's (pipes, output) in a process that only waits."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if keep is None:
        os.closerange(3, 1 << 16)
    else:
        os.closerange(3, keep)
        os.closerange(keep + 1, 1 << 16)


def remove_folder(folder: str, parent: int | None = None) -> None:
    """Remove `folder`, the working directory the grader made for this process, when the grader
    went away without removing it (it was killed). `parent` is a descriptor of the folder's parent,
    opened before a private /tmp covered it (`..` would lead into the private one)."""
    import shutil

    name = os.path.basename(folder)
    if not name.startswith("attention-grader-"):
        return
    try:
        if parent is None:
            os.chdir("..")
        shutil.rmtree(name, ignore_errors=True, dir_fd=parent)
    except OSError:
        pass


def remove_folder_at(path: str) -> None:
    """Remove a worker's or the zygote's folder by its full path (one the grader made)."""
    import shutil

    if os.path.basename(path).startswith("attention-grader-"):
        shutil.rmtree(path, ignore_errors=True)


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
        # recursive: what is mounted below (a hidden folder's tmpfs) stays mounted in what is kept
        if not _mount(libc, directory.encode(), stage.encode(), None, MS_BIND | MS_REC):
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


def _enter_user_namespace(libc) -> bool | str:
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(CLONE_NEWUSER) != 0:
        return f"no unprivileged user namespace ({_error()})"
    try:
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"0 {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"0 {gid} 1")
    except OSError as exc:
        return f"could not map the user namespace's ids ({exc.strerror})"
    return True


# ---------------------------------------------------------------- capabilities


def _drop_capability_bounds(libc) -> None:
    """Empty the bounding set: no program executed later can hold a capability."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
    except (OSError, ValueError):
        last = 40
    for cap in range(last + 1):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)


def _drop_capabilities(libc) -> bool | str:
    """Drop every capability (in the user namespace, the worker is its root): the mounts that hide
    the reference cannot be undone, no namespace re-entered, no limit raised."""
    _drop_capability_bounds(libc)
    header = struct.pack("II", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = bytes(24)  # two empty {effective, permitted, inheritable} sets
    if libc.capset(header, data) != 0:
        return f"capset failed ({_error()})"
    return _capabilities_empty() or "capabilities still held after capset"


def _capabilities_empty() -> bool:
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if line.startswith("Cap"))
    except OSError:
        return False
    return all(int(fields.get(k, "1").strip(), 16) == 0 for k in ("CapEff", "CapPrm", "CapBnd"))


# ---------------------------------------------------------------- seccomp

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# The refused system calls, by architecture (asm/unistd.h): changing mounts or namespaces, tracing
# or reading other processes, loading code into the kernel, io_uring (which would bypass this
# filter), keyrings, handles on other files, memfds (memory outside every limit: the address space
# counts only what is mapped, and no tmpfs size holds them).
REFUSED = {
    "x86_64": {
        "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "unshare": 272,
        "setns": 308, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
        "kexec_load": 246, "init_module": 175, "finit_module": 313, "delete_module": 176,
        "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "keyctl": 250, "add_key": 248,
        "request_key": 249, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "open_by_handle_at": 304, "name_to_handle_at": 303, "open_tree": 428, "move_mount": 429,
        "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "kcmp": 312, "pidfd_getfd": 438, "quotactl": 179, "swapon": 167, "swapoff": 168,
        "reboot": 169, "acct": 163, "syslog": 103, "memfd_create": 319, "memfd_secret": 447,
    },
    "aarch64": {
        "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51, "unshare": 97, "setns": 268,
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "kexec_load": 104,
        "init_module": 105, "finit_module": 273, "delete_module": 106, "bpf": 280,
        "perf_event_open": 241, "userfaultfd": 282, "keyctl": 219, "add_key": 217,
        "request_key": 218, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "open_by_handle_at": 265, "name_to_handle_at": 264, "open_tree": 428, "move_mount": 429,
        "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "kcmp": 272, "pidfd_getfd": 438, "quotactl": 60, "swapon": 224, "swapoff": 225,
        "reboot": 142, "acct": 89, "syslog": 116, "memfd_create": 279, "memfd_secret": 447,
    },
}
# Inspected by argument: socket(AF_UNIX, ...) (pathname sockets of the host reach through any
# network namespace), clone() with namespace flags; clone3 passes its flags by pointer, so it
# answers ENOSYS and the C library falls back to clone().
SOCKET = {"x86_64": 41, "aarch64": 198}
CLONE = {"x86_64": 56, "aarch64": 220}
CLONE3 = 435
AF_UNIX = 1
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_MODE_FILTER = 2
X32_SYSCALL_BIT = 0x40000000
# classic BPF opcodes
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_JGE_K = 0x35
BPF_JSET_K = 0x45
BPF_RET_K = 0x06


def seccomp_program(arch: str) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions; only the refused calls fail (EPERM)."""
    refuse = SECCOMP_RET_ERRNO | errno.EPERM
    program = [(BPF_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
               (BPF_JEQ_K, 1, 0, AUDIT_ARCH[arch]),
               (BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),  # another ABI (32-bit): never allowed
               (BPF_LD_W_ABS, 0, 0, 0)]  # seccomp_data.nr
    if arch == "x86_64":
        program += [(BPF_JGE_K, 0, 1, X32_SYSCALL_BIT), (BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS)]
    for number in sorted(REFUSED[arch].values()):
        program += [(BPF_JEQ_K, 0, 1, number), (BPF_RET_K, 0, 0, refuse)]
    program += [(BPF_JEQ_K, 0, 1, CLONE3), (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS)]
    # socket(): load args[0] (its low 32 bits) and refuse AF_UNIX
    program += [(BPF_JEQ_K, 0, 3, SOCKET[arch]),
                (BPF_LD_W_ABS, 0, 0, 16),
                (BPF_JEQ_K, 0, 1, AF_UNIX), (BPF_RET_K, 0, 0, refuse)]
    program += [(BPF_LD_W_ABS, 0, 0, 0)]  # the number again, after socket's argument
    # clone(): refuse any namespace flag in args[0] (x86_64 and aarch64 both pass flags first)
    program += [(BPF_JEQ_K, 0, 3, CLONE[arch]),
                (BPF_LD_W_ABS, 0, 0, 16),
                (BPF_JSET_K, 0, 1, NAMESPACE_FLAGS), (BPF_RET_K, 0, 0, refuse)]
    program += [(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW)]
    return program


def _seccomp(libc) -> bool | str:
    arch = platform.machine()
    if arch not in AUDIT_ARCH:
        return f"no system-call table for {arch}"
    program = seccomp_program(arch)
    filters = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(filters)
    fprog = struct.pack("HxxxxxxP", len(program), ctypes.addressof(buffer))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.c_char_p(fprog), 0, 0) != 0:
        return f"the kernel refused the filter ({_error()})"
    return True


# ---------------------------------------------------------------- Landlock

LANDLOCK_CREATE_RULESET, LANDLOCK_ADD_RULE, LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
FS = {name: 1 << bit for bit, name in enumerate((
    "execute", "write_file", "read_file", "read_dir", "remove_dir", "remove_file", "make_char",
    "make_dir", "make_reg", "make_sock", "make_fifo", "make_block", "make_sym", "refer",
    "truncate", "ioctl_dev"))}
FS_SINCE = {"refer": 2, "truncate": 3, "ioctl_dev": 5}  # the ABI that introduced each right
NET_BIND_TCP, NET_CONNECT_TCP = 1, 2  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1, 2  # ABI 6
READ = ("execute", "read_file", "read_dir")
WRITE = tuple(n for n in FS if n not in ("execute", "read_file", "read_dir", "ioctl_dev",
                                          "make_char", "make_block"))


def landlock_abi(libc) -> int:
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                       ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    return max(int(abi), 0)


def _rights(names, abi: int) -> int:
    return sum(FS[n] for n in names if FS_SINCE.get(n, 1) <= abi)


def readable_paths(config: dict) -> list[str]:
    """What the worker may read: the system folders, Python, torch and the worker's own files.

    A folder that holds a hidden one (an installed grader whose package carries the course, a
    checkout on sys.path) is granted entry by entry, all but the way to what is hidden: Landlock
    grants whole trees, so the hidden folder must never be inside a granted one.
    """
    # Real paths throughout: a rule follows symbolic links (a venv's lib64 -> lib), so a link to a
    # folder that holds a hidden one must be granted as that folder, entry by entry.
    hidden = [os.path.realpath(h) for h in config.get("hide", [])]
    granted: list[str] = []
    for path in (*SYSTEM_READ, *config.get("needed", []), *config.get("readable", [])):
        if os.path.exists(path):
            granted += _all_but_hidden(path, hidden)
    return list(dict.fromkeys(granted))


def _all_but_hidden(path: str, hidden: list[str], depth: int = 0) -> list[str]:
    path = os.path.realpath(path)
    if any(path == h for h in hidden):
        return []
    if not any(h.startswith(path.rstrip("/") + "/") for h in hidden):
        return [path]
    if depth > 16:
        return []
    try:
        entries = sorted(os.listdir(path))
    except OSError:
        return []
    found = []
    for name in entries:
        found += _all_but_hidden(os.path.join(path, name), hidden, depth + 1)
    return found


def _landlock_rules(libc, config: dict, applied: dict):
    """Build the ruleset (opening each allowed folder now, while it is reachable); returns the
    ruleset's descriptor, or None and the reason there is none."""
    abi = landlock_abi(libc)
    if abi < 1:
        return None, "Landlock is not available in this kernel"
    handled = _rights(FS, abi)
    attr = struct.pack("QQQ", handled, NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0,
                       SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = libc.syscall(LANDLOCK_CREATE_RULESET, attr, ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return None, f"could not create a Landlock ruleset ({_error()})"
    grants = [(p, _rights(READ, abi)) for p in readable_paths(config)]
    grants.append(("/dev", _rights(("ioctl_dev",), abi)))
    grants += [(p, _rights(("write_file",), abi)) for p in ("/dev/null", "/dev/zero", "/dev/full")]
    private_shm = ["/dev/shm"] if "private /dev/shm" in applied["namespaces"] else []  # noqa: S108
    writable = [os.getcwd(), *private_shm]
    grants += [(p, _rights(READ + WRITE, abi)) for p in writable]
    for path, rights in grants:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            # a file takes only file rights (read, write, execute, truncate, ioctl)
            if not os.path.isdir(path):
                rights &= _rights(("execute", "write_file", "read_file", "truncate", "ioctl_dev"), abi)
            rule = struct.pack("=Qi", rights, fd)
            libc.syscall(LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), LANDLOCK_RULE_PATH_BENEATH, rule,
                         ctypes.c_uint32(0))
        finally:
            os.close(fd)
    return ruleset, abi


def _restrict_landlock(libc, ruleset: int, abi: int) -> bool | str:
    result = libc.syscall(LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0))
    os.close(ruleset)
    return True if result == 0 else f"the kernel refused the ruleset ({_error()})"


# ---------------------------------------------------------------- plumbing


def _error() -> str:
    return os.strerror(ctypes.get_errno()) or "refused"


def _mount(libc, source, target, fstype, flags, data=None) -> bool:
    return libc.mount(source, target, fstype, flags, data) == 0


MADV_COLLAPSE = 25
HUGE_PAGE = 1 << 21


def collapse_into_huge_pages(libc) -> int:
    """Back the process's anonymous memory with 2 MiB pages where the kernel can (MADV_COLLAPSE,
    Linux 6.1+; elsewhere nothing happens); return how many bytes were asked for.

    For the zygote, which forks a worker per submission: fork copies and exit frees one page
    table entry per page, and torch leaves ~150 MiB of heap. In 2 MiB pages, a fork of the zygote
    took 1.9 ms instead of 6.8 and the child's exit 5.1 ms instead of 10.2 (this machine). The
    regions are not marked for huge pages, so what a worker allocates later gets ordinary pages.
    """
    madvise = libc.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    asked = 0
    try:
        with open("/proc/self/maps", encoding="ascii") as maps:
            regions = maps.read().splitlines()
    except OSError:
        return 0
    for line in regions:
        fields = line.split()
        if "rw" not in fields[1] or (len(fields) > 5 and fields[5] != "[heap]"):
            continue  # only anonymous, writable memory: libraries' pages are shared with the file
        start, end = (int(value, 16) for value in fields[0].split("-"))
        start = (start + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1)
        end &= ~(HUGE_PAGE - 1)
        if end > start and madvise(start, end - start, MADV_COLLAPSE) == 0:
            asked += end - start
    return asked


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _linux() -> bool:
    return os.uname().sysname == "Linux"
