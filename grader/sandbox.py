"""The grader's side of the worker: start it, send it requests, receive plain data, with limits.

The worker (`worker.py`) is a separate Python process started with `-I` (isolated: no user site,
no PYTHONPATH, not even its own folder on sys.path) in an empty temporary directory, with a scrubbed
environment. Before it imports torch or runs any student code it confines itself (`confine.py`:
resource limits, namespaces, an unprivileged uid of its own when the grader runs as root) and says
`ready`; a worker that dies before that is the grader's failure, never the student's.

It talks over two pipes of its own. Whatever the student's code prints goes to a third pipe, which a
thread here drains, keeping only the first and last few KB and stopping the worker once it has
printed more than the limit. Everything it sends back is decoded by `grader.wire` into fresh tensors.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from . import replies, wire
from .errors import InternalError
from .rubric import LIMIT_KEYS, Defaults
from .safe_text import printable
from .submission import Submission

WORKER = Path(__file__).with_name("worker.py")
KEEP_PRINTED = 2048  # bytes of the head and of the tail of the student's output that are kept
READY_TIMEOUT = 120.0  # seconds for the worker to start and import torch


@dataclass(frozen=True)
class Limits:
    """What one worker process may use; the defaults live in `grader.rubric.Defaults`."""

    cpu_seconds: float
    memory_mb: int
    file_size_mb: int
    output_kb: int
    processes: int
    open_files: int

    @classmethod
    def of(cls, defaults: Defaults) -> Limits:
        return cls(**{key: getattr(defaults, key) for key in LIMIT_KEYS})

    def for_worker(self) -> dict:
        return {"cpu_seconds": self.cpu_seconds, "memory_mb": self.memory_mb,
                "file_size_mb": self.file_size_mb, "processes": self.processes,
                "open_files": self.open_files}


class SandboxRefused(InternalError):
    """The rubric requires a sandbox layer this machine does not give: nothing is graded."""

    def __init__(self, missing: dict[str, str]):
        reasons = "; ".join(f"{name}: {why}" for name, why in missing.items())
        super().__init__(f"the rubric requires sandbox layers this machine does not give ({reasons}), "
                         "so nothing was graded. Run `attention-grader sandbox` here to see every "
                         "layer; grade where they are available, or remove them from the rubric's "
                         "`sandbox: require:`.")
        self.missing = missing


def missing_layers(sandbox: dict, require: tuple[str, ...]) -> dict[str, str]:
    """The required layers the worker did not apply, each with the reason it gave."""
    layers = sandbox.get("layers", [])
    refused = sandbox.get("refused", {})
    return {name: str(refused.get(name, "not applied on this platform or as this user"))
            for name in require if name not in layers}


def probe(limits: Limits | None = None, hide: tuple[str, ...] = ()) -> dict:
    """What the sandbox applies on this machine, as a worker reports it before any code runs."""
    worker = Worker(Submission("<probe>", "py", ()), limits, hide=hide)
    try:
        worker.start()
        worker._wait_ready()
        return worker.sandbox
    finally:
        worker.close()


class WorkerTimeout(Exception):
    def __init__(self, seconds: float):
        super().__init__(f"no answer within {seconds:g} s")
        self.seconds = seconds


class WorkerDied(Exception):
    """The worker process ended without answering (os._exit, a crash, a limit, a kill)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def describe_exit(returncode: int | None, limits: Limits) -> str:
    if returncode is None:
        return "the Python process stopped answering"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        explained = {
            "SIGSEGV": "a segmentation fault (a crash in native code)",
            "SIGXCPU": f"its CPU time limit ({limits.cpu_seconds:g} s)",
            "SIGKILL": "SIGKILL (killed, often for using too much memory)",
            "SIGABRT": "SIGABRT (an abort in native code)",
        }
        return f"the Python process was ended by {explained.get(name, name)}"
    return f"the Python process exited with code {returncode}"


def _scrubbed_env(home: str) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "LD_LIBRARY_PATH"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


REPLY_PIPE_BYTES = 1 << 20


def _widen(fd: int) -> None:
    """A reply pipe that holds a whole step's reply (a few hundred KB at most): the worker
    writes it and goes on with the next step while this process is busy judging the last one,
    instead of waiting for each 64 KB to be read. Where the kernel refuses (a per-user pipe
    budget), the pipe keeps its size and only the overlap is lost."""
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        try:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, REPLY_PIPE_BYTES)
        except OSError:
            pass


class _Printed:
    """Drains the worker's stdout and stderr; keeps the head and the tail; enforces the limit."""

    def __init__(self, fd: int, limit_bytes: int, on_exceeded):
        self.fd = fd
        self.limit = limit_bytes
        self.on_exceeded = on_exceeded
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.exceeded = False
        self.thread = threading.Thread(target=self._drain, name="worker-output", daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.total += len(chunk)
            if len(self.head) < KEEP_PRINTED:
                self.head += chunk[: KEEP_PRINTED - len(self.head)]
            self.tail = (self.tail + chunk)[-KEEP_PRINTED:]
            if self.total > self.limit and not self.exceeded:
                self.exceeded = True
                self.on_exceeded()
        os.close(self.fd)

    def text(self) -> str:
        head = printable(bytes(self.head).decode("utf-8", "replace"))
        if self.total <= KEEP_PRINTED:
            return head
        return (head + f"\n[... {self.total:,} bytes in all ...]\n"
                + printable(bytes(self.tail).decode("utf-8", "replace")))


class Worker:
    """One worker process holding one submission's namespace."""

    def __init__(self, submission: Submission, limits: Limits | None = None, hide: tuple[str, ...] = (),
                 load_timeout: float = Defaults.load_timeout, zygote: Zygote | None = None,
                 require: tuple[str, ...] = ()):
        limits = limits or Limits.of(Defaults())
        self.require = require
        self.zygote = zygote
        self.submission = submission
        self.load_timeout = load_timeout
        self.limits = limits
        self.hide = hide
        self.process: subprocess.Popen | None = None
        self.home = ""
        self.uid: int | None = None
        self.printed: _Printed | None = None
        self.sandbox: dict = {}
        self._ready = False
        self.request_w = self.reply_r = -1

    def start(self) -> None:
        """Start the process and send it the code; the replies are read by `loaded()`."""
        self.home = tempfile.mkdtemp(prefix="attention-grader-")
        if os.geteuid() == 0 and sys.platform.startswith("linux"):
            # A uid of its own: it cannot touch the grader's files or processes, its process count
            # can be limited, and every process it leaves behind can be found and killed.
            self.uid = 200_000 + secrets.randbelow(1_000_000_000)
            os.chown(self.home, self.uid, self.uid)
        request_r, self.request_w = os.pipe()
        os.set_blocking(self.request_w, False)  # writes wait with a deadline, never for ever
        self.reply_r, reply_w = os.pipe()
        _widen(self.reply_r)
        output_r, output_w = os.pipe()
        confinement = {"limits": self.limits.for_worker(), "uid": self.uid, "hide": list(self.hide),
                       "parent": self.zygote.process.pid if self.zygote else os.getpid()}
        try:
            self.process = self._launch(request_r, reply_w, output_w, confinement)
        except OSError as exc:
            os.close(output_r)
            raise InternalError(f"could not start the worker process: {exc}") from exc
        finally:
            for fd in (request_r, reply_w, output_w):
                os.close(fd)
        self.printed = _Printed(output_r, self.limits.output_kb * 1024, self._kill_group)
        self.started = time.monotonic()
        if self.zygote is None:
            self.send({"op": "confine", **confinement})
        chunks = [{"code": c.code, "filename": c.filename, "label": c.label}
                  for c in self.submission.chunks]
        self.send({"op": "load", "chunks": chunks, "module_name": self.submission.module_name,
                   "timeout": self.load_timeout})

    def _launch(self, request_r: int, reply_w: int, output_w: int, confinement: dict):
        if self.zygote is not None:  # a fork of a warm process that has imported torch already
            return self.zygote.spawn((request_r, reply_w, output_w), self.home, confinement)
        return subprocess.Popen(
            [sys.executable, "-I", str(WORKER), str(request_r), str(reply_w)],
            pass_fds=(request_r, reply_w),
            cwd=self.home,
            env=_scrubbed_env(self.home),
            stdin=subprocess.DEVNULL,
            stdout=output_w,
            stderr=output_w,
            start_new_session=True,
        )

    def loaded(self, timeout: float) -> replies.LoadReply:
        """What running the submission's code gave; `MalformedReply` if the reply is broken."""
        self._wait_ready()
        return replace(replies.decode_load(self.receive(timeout)), sandbox=self.sandbox)

    def run_step(self, request: dict, timeout: float) -> replies.StepReply:
        """One step's cases, run by the worker; the reply checked against the request."""
        return replies.decode_step(self.request(request, timeout), request)

    def _wait_ready(self) -> None:
        """The worker's own start-up; a failure here is the grader's, not the student's."""
        if self._ready:
            return
        try:
            reply = self.receive(READY_TIMEOUT)
        except (WorkerDied, WorkerTimeout, replies.MalformedReply) as exc:
            raise InternalError(f"the worker process did not start: {exc}\n{self.output()}") from None
        if reply.get("op") != "ready" or not isinstance(reply.get("sandbox"), dict):
            raise InternalError(f"the worker process did not start: {reply}")
        self.sandbox = reply["sandbox"]
        self._ready = True
        missing = missing_layers(self.sandbox, self.require)
        if missing:
            raise SandboxRefused(missing)

    def request(self, message: dict, timeout: float) -> dict:
        self._wait_ready()
        started = time.monotonic()
        self.send(message, timeout)
        return self.receive(max(timeout - (time.monotonic() - started), 0.001))

    def send(self, message: dict, timeout: float = READY_TIMEOUT) -> None:
        """Write one frame; a worker that stops reading costs `timeout`, never a hang."""
        view = memoryview(wire.encode(message))
        deadline = time.monotonic() + timeout
        try:
            while view:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([], [self.request_w], [], remaining)[1]:
                    raise WorkerTimeout(timeout)
                try:
                    view = view[os.write(self.request_w, view):]
                except BlockingIOError:
                    continue
        except OSError:
            raise WorkerDied(self._death()) from None

    def receive(self, timeout: float) -> dict:
        """The worker's next reply as plain data; `MalformedReply` for any frame it cannot read."""
        deadline = time.monotonic() + timeout

        def read(fd: int, n: int) -> bytes:
            chunks = []
            while n:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                    raise WorkerTimeout(timeout)
                chunk = os.read(fd, min(n, 1 << 20))
                if not chunk:
                    raise WorkerDied(self._death())
                chunks.append(chunk)
                n -= len(chunk)
            return b"".join(chunks)

        try:
            reply = wire.decode(wire.read_frame(self.reply_r, read))
        except wire.WireError as exc:  # any failure to read the frame: the step's Malformed reply
            raise replies.MalformedReply(f"the worker sent a broken reply: {exc}") from None
        if not isinstance(reply, dict):
            raise replies.MalformedReply("the worker sent a reply that is not a mapping")
        return reply

    def _death(self) -> str:
        """Why the worker is gone, in the student's terms."""
        returncode = None
        if self.process is not None:
            try:
                returncode = self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        if self.printed is not None:
            self.printed.thread.join(timeout=1)
            if self.printed.exceeded:
                return (f"your code printed more than {self.limits.output_kb:,} KB, the limit, "
                        "and was stopped")
        return describe_exit(returncode, self.limits)

    def output(self) -> str:
        """What the student's code printed (its head and tail when it printed a lot)."""
        return self.printed.text() if self.printed is not None else ""

    def _kill_group(self) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def close(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                try:
                    os.write(self.request_w, wire.encode({"op": "bye"}))
                    self.process.wait(timeout=0.5)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            self._kill_group()  # the threads and children the student started, too
            self._kill_uid()  # and those that left the process group
            self.process.wait()
            self.process = None
        if self.printed is not None:
            self.printed.thread.join(timeout=2)
        for fd in (self.request_w, self.reply_r):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.request_w = self.reply_r = -1
        shutil.rmtree(self.home, ignore_errors=True)

    def _kill_uid(self) -> None:
        """Kill every process running as this worker's uid (kill(-1) from that uid); not needed
        where the worker had a PID namespace, which ends with it."""
        if self.uid is None or "pid" in self.sandbox.get("layers", ()):
            return
        kill = shutil.which("kill", path="/usr/bin:/bin")  # world-executable, unlike our python
        if kill is None:
            return
        try:
            subprocess.run(
                [kill, "-KILL", "-1"],
                user=self.uid, group=self.uid, extra_groups=[], env={}, cwd="/",
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                timeout=10, check=False,
            )
        except (OSError, subprocess.SubprocessError):
            pass


# ---------------------------------------------------------------- warm workers for a whole class


class Zygote:
    """A warm process that has imported torch once and forks a fresh worker per submission.

    Each forked worker confines itself exactly as one started from scratch does; the zygote never
    runs student code. Safe to share between threads.
    """

    def __init__(self, wait: bool = True):
        """Start the zygote; with `wait=False`, return while it imports torch (the first request
        waits for it to be ready)."""
        self._lock = threading.Lock()
        self.plan: dict[int, tuple[int, dict]] = {}  # id(request) -> (its index, the request)
        # Workers done with are ended here, off the grading threads' path (see `retire`).
        self._retiring = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worker-teardown")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.home = tempfile.mkdtemp(prefix="attention-grader-zygote-")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", str(WORKER), "--zygote", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), cwd=self.home, env=_scrubbed_env(self.home),
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        except OSError as exc:
            raise InternalError(f"could not start the warm worker: {exc}") from exc
        finally:
            theirs.close()
        self.control = ours
        self.control.settimeout(READY_TIMEOUT)
        self._ready = False
        if wait:
            self._wait_ready()

    def _wait_ready(self) -> None:
        if self._ready:
            return
        try:
            reply = json.loads(self.control.recv(1 << 16) or b"null")
        except (OSError, ValueError) as exc:
            self.close()
            raise InternalError(f"the warm worker did not start: {exc}") from None
        if not reply or reply.get("op") != "ready":
            self.close()
            raise InternalError("the warm worker did not start")
        self._ready = True

    def prepare_for(self, prepared) -> None:
        """Load in the zygote, once, what the prepared steps will make every worker load: the
        steps' requests (their inputs and weights, the same for every student, never an answer),
        which each worker then inherits at the fork instead of receiving them step by step, and
        the meta device's kernels (seconds of imports) where a case builds a model for its
        structure only."""
        if any(case.get("meta") for p in prepared for case in p.request["cases"]):
            self._ask({"op": "warm", "meta": True})
        requests = [p.request for p in prepared]
        with tempfile.TemporaryFile(dir=self.home) as f:
            f.write(wire.encode({"steps": requests}))
            f.flush()
            f.seek(0)
            reply = self._ask({"op": "plan"}, (f.fileno(),))
        if reply.get("steps") != len(requests):
            raise InternalError(f"the warm worker did not take the class's steps: {reply}")
        self.plan = {id(request): (index, request) for index, request in enumerate(requests)}

    def planned(self, request: dict) -> int | None:
        """The index of this very request in the plan every worker holds, or None."""
        index, held = self.plan.get(id(request), (None, None))
        return index if held is request else None

    def _ask(self, message: dict, fds: tuple[int, ...] = ()) -> dict:
        with self._lock:
            self._wait_ready()
            try:
                socket.send_fds(self.control, [json.dumps(message).encode()], list(fds))
                return json.loads(self.control.recv(1 << 16))
            except (OSError, ValueError) as exc:
                raise InternalError(f"the warm worker stopped answering: {exc}") from None

    def spawn(self, fds: tuple[int, int, int], home: str, confinement: dict) -> _ForkedChild:
        reply = self._ask({"op": "spawn", "home": home, "confine": confinement}, fds)
        return _ForkedChild(reply["pid"], self)

    def status(self, pid: int) -> int | None:
        return self._ask({"op": "status", "pid": pid})["returncode"]

    def retire(self, worker: Worker) -> None:
        """End a worker whose replies have all been read (`Worker.close`: bye, its process group,
        its folder) while the next submission is graded; `close` waits for every one."""
        try:
            self._retiring.submit(worker.close)
        except RuntimeError:  # shutting down: end it here
            worker.close()

    def close(self) -> None:
        self._retiring.shutdown(wait=True)
        try:
            self.control.close()
        except OSError:
            pass
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _ForkedChild:
    """A worker forked by the zygote, with the part of Popen's interface the Worker uses."""

    def __init__(self, pid: int, zygote: Zygote):
        self.pid = pid
        self.zygote = zygote
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.zygote.status(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.returncode is None:
            self._until_exit(timeout)
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout)
            time.sleep(0.01)
        return self.returncode

    def _until_exit(self, timeout: float | None) -> None:
        """Sleep until the worker exits (a pidfd turns readable then), instead of asking the zygote
        every few milliseconds. The pid cannot be reused meanwhile: the zygote reaps it only when
        asked for its status."""
        try:
            fd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            return  # no pidfd here (or already gone): the polling below does it
        try:
            select.select([fd], [], [], timeout)
        finally:
            os.close(fd)
