"""The grader's side of the worker: start it, send it requests, receive plain data, with timeouts.

The worker (`worker.py`) is a separate Python process started with `-I` (isolated: no user site,
no PYTHONPATH, not even its own folder on sys.path) in an empty temporary directory, with a scrubbed
environment. It talks over two pipes of its own; whatever the student's code prints goes to a file,
never into the channel. Everything it sends back is decoded by `grader.wire` into fresh tensors.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import wire
from .errors import InternalError
from .submission import Submission

WORKER = Path(__file__).with_name("worker.py")
PRINTED_TAIL = 2000  # characters of the student's printed output kept for the report


class WorkerTimeout(Exception):
    def __init__(self, seconds: float):
        super().__init__(f"no answer within {seconds:g} s")
        self.seconds = seconds


class WorkerDied(Exception):
    """The worker process ended without answering (os._exit, a crash, a kill)."""

    def __init__(self, returncode: int | None, printed: str):
        self.returncode = returncode
        self.printed = printed
        super().__init__(describe_exit(returncode))


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "the process stopped answering"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = {"SIGSEGV": " (a segmentation fault)", "SIGKILL": " (killed, often for memory)"}
        return f"the Python process was ended by {name}{hint.get(name, '')}"
    return f"the Python process exited with code {returncode}"


@dataclass(frozen=True)
class LoadResult:
    errors: tuple[dict, ...]  # exceptions raised while running the submission's code
    defined: tuple[str, ...]  # the names it defined
    seconds: float


def _scrubbed_env(home: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "LD_LIBRARY_PATH"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


class Worker:
    """One worker process holding one submission's namespace."""

    def __init__(self, submission: Submission):
        self.submission = submission
        self.process: subprocess.Popen | None = None
        self.home = ""
        self.output_path = ""

    def start(self) -> None:
        """Start the process and send it the code; the reply is read by `loaded()`."""
        self.home = tempfile.mkdtemp(prefix="attention-grader-")
        request_r, self.request_w = os.pipe()
        self.reply_r, reply_w = os.pipe()
        fd, self.output_path = tempfile.mkstemp(prefix="attention-grader-output-")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", str(WORKER), str(request_r), str(reply_w)],
                pass_fds=(request_r, reply_w),
                cwd=self.home,
                env=_scrubbed_env(self.home),
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                start_new_session=True,
            )
        except OSError as exc:
            raise InternalError(f"could not start the worker process: {exc}") from exc
        finally:
            os.close(fd)
            os.close(request_r)
            os.close(reply_w)
        self.started = time.monotonic()
        chunks = [{"code": c.code, "filename": c.filename, "label": c.label}
                  for c in self.submission.chunks]
        self.send({"op": "load", "chunks": chunks, "module_name": self.submission.module_name})

    def loaded(self, timeout: float) -> LoadResult:
        reply = self.receive(timeout)
        return LoadResult(tuple(reply["errors"]), tuple(reply["defined"]),
                          time.monotonic() - self.started)

    def request(self, message: dict, timeout: float) -> dict:
        self.send(message)
        return self.receive(timeout)

    def send(self, message: dict) -> None:
        try:
            wire.write_frame(self.request_w, wire.encode(message))
        except (BrokenPipeError, OSError):
            raise WorkerDied(self._wait_exit(), self.printed()) from None

    def receive(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout

        def read(fd: int, n: int) -> bytes:
            chunks = []
            while n:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                    raise WorkerTimeout(timeout)
                chunk = os.read(fd, min(n, 1 << 20))
                if not chunk:
                    raise WorkerDied(self._wait_exit(), self.printed())
                chunks.append(chunk)
                n -= len(chunk)
            return b"".join(chunks)

        try:
            reply = wire.decode(wire.read_frame(self.reply_r, read))
        except wire.WireError as exc:
            raise WorkerDied(None, f"sent a broken reply ({exc})") from None
        if not isinstance(reply, dict):
            raise WorkerDied(None, "sent a reply that is not a mapping")
        return reply

    def printed(self) -> str:
        """The tail of what the student's code printed."""
        try:
            with open(self.output_path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - PRINTED_TAIL))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _wait_exit(self) -> int | None:
        try:
            return self.process.wait(timeout=2) if self.process else None
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                try:
                    os.write(self.request_w, wire.encode({"op": "bye"}))
                    self.process.wait(timeout=0.5)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            try:  # the whole process group: threads and children the student started too
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.process.wait()
            self.process = None
        for fd in ("request_w", "reply_r"):
            if hasattr(self, fd):
                try:
                    os.close(getattr(self, fd))
                except OSError:
                    pass
                delattr(self, fd)
        shutil.rmtree(self.home, ignore_errors=True)
        if self.output_path:
            try:
                os.unlink(self.output_path)
            except OSError:
                pass
            self.output_path = ""
