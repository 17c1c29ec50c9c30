"""Course code run in the grader's own process prints nowhere.

The reference solutions, the known mistakes, a course's fixtures and checks are the course's code,
run in the grader to compute what is expected. The book's code prints as it goes (chapter 5's
`train_model_simple` calls `generate_and_print_sample`), and what it printed would land in the
middle of the grader's own output: `check --format json` would no longer be JSON. So while course
code runs, what it writes to `sys.stdout` and `sys.stderr` from that thread is dropped; what other
threads of the grader write at the same time (a class run's progress bar) still goes through.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator

_local = threading.local()
_install_lock = threading.Lock()


class _PerThread:
    """A stream that drops what the threads running course code write, and passes on the rest."""

    def __init__(self, real):
        self._real = real

    def write(self, text: str) -> int:
        if getattr(_local, "depth", 0):
            return len(text)
        return self._real.write(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not getattr(_local, "depth", 0):
            self._real.flush()

    def __getattr__(self, name: str):  # fileno, encoding, isatty...: the real stream's
        return getattr(self._real, name)


def _routed(name: str) -> None:
    stream = getattr(sys, name)
    if not isinstance(stream, _PerThread):
        setattr(sys, name, _PerThread(stream))


@contextlib.contextmanager
def course_code() -> Iterator[None]:
    """Run the course's code inside this: nothing it prints from this thread reaches the grader's
    output. Nested uses are one."""
    with _install_lock:
        _routed("stdout")
        _routed("stderr")
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1


__all__ = ["course_code"]
