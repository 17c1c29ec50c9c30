"""Read a submission (.py or .ipynb) into the code the worker will run. Never runs it.

A submission becomes a list of `Chunk`s: the whole file for a .py, one chunk per code cell for a
notebook, each with the label the student knows it by ("code cell 4"), so that an error can be
reported where it happened. Outputs stored in a notebook are ignored: grading always runs the code.
IPython syntax that students leave in (`%matplotlib inline`, `!pip install ...`, `%%time`) is turned
into plain Python that does nothing (shell escapes never run), keeping line numbers.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

MAX_BYTES = 20_000_000  # larger files are refused unread

# Cell magics whose body is ordinary Python that should still run; any other cell magic
# (%%bash, %%writefile, %%html, ...) is skipped whole.
PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun"}
# Line magics that prefix a statement to run once: `%time x = f()` runs `x = f()`.
STATEMENT_LINE_MAGICS = {"time", "timeit", "prun"}


@dataclass(frozen=True)
class Chunk:
    code: str
    filename: str  # what the code is compiled as; tracebacks name it
    label: str  # what the student calls it: "code cell 4 (`def softmax_naive(x):`)", or ""


@dataclass(frozen=True)
class Submission:
    path: str
    kind: str  # "py" or "ipynb"
    chunks: tuple[Chunk, ...]
    notes: tuple[str, ...] = ()  # what was changed or skipped on reading, said to the student

    @property
    def module_name(self) -> str:
        # A notebook runs as __main__, as in Jupyter; a .py file's `if __name__ == "__main__":`
        # demo block does not run, as when it is imported.
        return "__main__" if self.kind == "ipynb" else "submission"


class UnreadableSubmission(Exception):
    """The file cannot be graded at all; the message says why and what to do."""


def read_submission(path: str | Path) -> Submission:
    path = Path(path)
    if path.is_symlink():  # followed, it could lead to any file the grader can read
        raise UnreadableSubmission(
            f"{path.name} is a symbolic link, not a file; the grader reads only files handed in "
            "themselves: hand in a copy of the file instead of a link to it."
        )
    if not path.exists():
        raise UnreadableSubmission(f"{path}: no such file. Check the path and try again.")
    if path.is_dir():
        raise UnreadableSubmission(
            f"{path} is a folder; give the .py or .ipynb file inside it that holds your solutions."
        )
    suffix = path.suffix.lower()
    if suffix not in (".py", ".ipynb"):
        raise UnreadableSubmission(
            f"{path.name}: unknown file type {suffix or '(no extension)'!r}; "
            "submit a Python file (.py) or a Jupyter notebook (.ipynb)."
        )
    size = path.stat().st_size
    if size > MAX_BYTES:
        advice = ("clear the notebook's outputs (Edit > Clear All Outputs) and submit again"
                  if suffix == ".ipynb" else "is this really your solutions file?")
        raise UnreadableSubmission(
            f"{path.name} is {size / 1e6:.1f} MB, over the {MAX_BYTES / 1e6:.0f} MB limit; {advice}"
        )
    data = path.read_bytes()
    if not data.strip():
        raise UnreadableSubmission(f"{path.name} is empty; did you save it before submitting?")
    text = _decode(path.name, data)
    if suffix == ".py":
        return Submission(str(path), "py", (Chunk(text, path.name, ""),))
    return _read_notebook(path, text)


def _decode(name: str, data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise UnreadableSubmission(f"{name} is a binary file, not Python source or a notebook.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableSubmission(
            f"{name} is not UTF-8 text (byte {exc.start} cannot be read); "
            "save it as UTF-8 in your editor and submit again."
        ) from None


def _read_notebook(path: Path, text: str) -> Submission:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableSubmission(
            f"{path.name} is not a valid notebook: its JSON is broken at line {exc.lineno}, "
            f"column {exc.colno} ({exc.msg}). Open it in Jupyter, save it, and submit again."
        ) from None
    except (RecursionError, MemoryError):
        raise UnreadableSubmission(
            f"{path.name} is not a notebook Jupyter writes: its JSON is nested too deeply to read."
        ) from None
    if not isinstance(raw, dict) or "cells" not in raw and "worksheets" not in raw:
        raise UnreadableSubmission(f"{path.name} is JSON but not a Jupyter notebook (no cells).")
    try:
        notebook = nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat raises several types for malformed notebooks
        raise UnreadableSubmission(
            f"{path.name} is not a valid notebook ({exc}). Open it in Jupyter, save it, and submit"
            " again."
        ) from None
    chunks, notes = [], []
    for index, cell in enumerate(notebook.cells, start=1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        label = _cell_label(index, source)
        code, note = transform_ipython(source)
        if note:
            notes.append(f"{label}: {note}")
        chunks.append(Chunk(code, f"<cell {index}>", label))
    return Submission(str(path), "ipynb", tuple(chunks), tuple(notes))


def _cell_label(index: int, source: str) -> str:
    first = next((line.strip() for line in source.splitlines() if line.strip()), "")
    if len(first) > 40:
        first = first[:37] + "..."
    return f"cell {index} (`{first}`)" if first else f"cell {index}"


_LINE_MAGIC = re.compile(r"^(\s*)%(?!%)(\w+)\s*(.*)$")
_SHELL = re.compile(r"^(\s*)(?:\w[\w.]*\s*=\s*)?!")
_ASSIGNED_MAGIC = re.compile(r"^(\s*)(\w[\w.]*)\s*=\s*%(\w+)")


def transform_ipython(source: str) -> tuple[str, str]:
    """Plain Python for a cell that may hold IPython syntax, and a note on what was changed.

    A cell that already parses as Python is left untouched. Line numbers are kept.
    """
    if _parses(source):
        return source, ""
    lines = source.splitlines()
    first = lines[0].strip() if lines else ""
    if first.startswith("%%"):
        magic = first[2:].split()[0] if first[2:].split() else ""
        if magic not in PYTHON_CELL_MAGICS:
            return "pass\n" * len(lines), f"skipped: the %%{magic} cell magic does not run here"
        lines[0] = "pass"
    changed = []
    for number, line in enumerate(lines):
        indent = line[: len(line) - len(line.lstrip())]
        if m := _LINE_MAGIC.match(line):
            name, rest = m.group(2), m.group(3)
            keep = name in STATEMENT_LINE_MAGICS and rest
            lines[number] = indent + (rest if keep else "pass")
            changed.append(f"%{name}")
        elif m := _ASSIGNED_MAGIC.match(line):
            lines[number] = f"{indent}{m.group(2)} = None"
            changed.append(f"%{m.group(3)}")
        elif _SHELL.match(line):
            lines[number] = indent + "pass"
            changed.append("!shell command")
    note = ""
    if changed:
        note = "IPython syntax not run: " + ", ".join(dict.fromkeys(changed))
    return "\n".join(lines) + "\n", note


MAX_PARSED = 50_000  # characters of a cell parsed in the grader; a longer one is left as it is


def _parses(source: str) -> bool:
    """Whether the cell is plain Python. Parsing costs memory, and the source is untrusted: a
    cell too long or too deep to parse here is left as it is, for the worker to compile."""
    if len(source) > MAX_PARSED:
        return True
    try:
        ast.parse(source)
    except SyntaxError:
        return False
    except (RecursionError, MemoryError, ValueError):
        return True
    return True
