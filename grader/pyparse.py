"""Parsing Python source in the grader's process, one thread at a time.

CPython 3.11 before 3.11.8 raises a spurious `SystemError: AST constructor recursion depth
mismatch` when two threads build ASTs at once (python/cpython gh-106905), which `grade --jobs 2`
does: reading one student's notebook while judging another's. Every parse of student or course
source in the grader (ast.parse, compile, IPython's input transformer) takes this lock.
"""

from __future__ import annotations

import ast
import threading

LOCK = threading.RLock()


def parse(source: str, mode: str = "exec") -> ast.Module:
    with LOCK:
        return ast.parse(source, mode=mode)


__all__ = ["LOCK", "parse"]
