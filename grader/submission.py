"""Read a submission (.py or .ipynb) into the code the worker will run. Never runs it.

A submission becomes a list of `Chunk`s: the whole file for a .py, one chunk per code cell for a
notebook, each with the label the student knows it by ("code cell 4"), so that an error can be
reported where it happened. Outputs stored in a notebook are ignored: grading always runs the code.
IPython syntax that students leave in (`softmax_naive?`, `%matplotlib inline`, `!pip install ...`,
`%timeit f(x)`, `%%time`) is read by IPython's own input transformer, as Jupyter reads it, and what
it becomes is made plain Python that runs without IPython: code that a magic times or profiles runs
once, the rest does nothing (shell escapes never run). Line numbers are kept.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .pyparse import LOCK as PARSE_LOCK
from .pyparse import parse

MAX_BYTES = 20_000_000  # larger files are refused unread

# Cell magics whose body is Python that runs once (`%%timeit`'s first line, its setup, runs before it);
# any other cell magic (%%bash, %%writefile, %%html, ...) is skipped whole.
RUN_ONCE_CELL_MAGICS = {"time", "timeit", "capture", "prun"}
# Line magics that run a statement, which runs once (`%time x = f()` runs `x = f()`), with the options
# IPython's own magics take before it (getopt style: a letter followed by ":" takes a value).
RUN_ONCE_LINE_MAGICS = {"time": "", "timeit": "n:r:tcp:qov:", "prun": "D:l:rs:T:q"}


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
    if raw.get("nbformat") == 4:
        cells = raw.get("cells")  # what Jupyter writes today: read as it is
    else:
        cells = _older_notebook_cells(path, text)
    if not isinstance(cells, list):
        raise UnreadableSubmission(f"{path.name} is not a notebook Jupyter writes: its `cells` is not "
                                   "a list. Open it in Jupyter, save it, and submit again.")
    chunks, notes = [], []
    budget = ReadingBudget()  # one for the whole notebook
    for index, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(line, str) for line in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise UnreadableSubmission(
                f"{path.name} is not a notebook Jupyter writes: the source of cell {index} is not "
                "text. Open it in Jupyter, save it, and submit again.")
        label = _cell_label(index, source)
        code, note = transform_ipython(source, budget)
        if note:
            notes.append(f"{label}: {note}")
        chunks.append(Chunk(code, f"<cell {index}>", label))
    return Submission(str(path), "ipynb", tuple(chunks), tuple(notes))


def _older_notebook_cells(path: Path, text: str) -> object:
    """The cells of a notebook in an older format (worksheets), converted by nbformat as Jupyter
    converts it. Not validated: nbformat only logs what its schema finds, and grading needs only
    each code cell's source."""
    import nbformat  # 0.1 s of imports, which a notebook of today's format does not need

    try:
        return nbformat.convert(nbformat.reader.reads(text), 4).get("cells")
    except Exception as exc:  # nbformat raises several types for malformed notebooks
        raise UnreadableSubmission(
            f"{path.name} is not a valid notebook ({exc}). Open it in Jupyter, save it, and submit"
            " again."
        ) from None


def _cell_label(index: int, source: str) -> str:
    first = next((line.strip() for line in source.splitlines() if line.strip()), "")
    if len(first) > 40:
        first = first[:37] + "..."
    return f"cell {index} (`{first}`)" if first else f"cell {index}"


# IPython's transformer tokenizes the whole cell again after each piece of IPython syntax it rewrites,
# so its work grows as (IPython lines + 1) x (lines). Past these bounds (a second or two in all) a cell
# is left as it is, and the worker reports its SyntaxError; a student's cells are far below them.
MAX_CELL_WORK = 10_000
MAX_NOTEBOOK_WORK = 40_000  # summed over one notebook's cells
MAX_DEPTH = 3  # IPython syntax read inside IPython syntax (`%time %timeit f()`, a cell magic's body)
_MAYBE_IPYTHON = re.compile(r"^\s*[%!?,;/]|\?\s*$|=\s*[%!]", re.MULTILINE)  # what IPython may rewrite
_SHELL_CALL = re.compile(r"^(?P<lhs>.*?)get_ipython\(\)\.(?P<method>\w+)\((?P<args>.*)\)$")


@dataclass
class ReadingBudget:
    """How much more work reading IPython syntax may take, in one notebook (see MAX_CELL_WORK)."""

    left: int = MAX_NOTEBOOK_WORK


@dataclass
class _Said:
    """What reading a cell as IPython changed, for the student's note."""

    ran: list[str] = field(default_factory=list)  # magics whose code ran once, as plain Python
    dropped: list[str] = field(default_factory=list)  # IPython syntax that does nothing here
    shell: list[str] = field(default_factory=list)  # shell commands: never run
    skipped: list[str] = field(default_factory=list)  # cell magics skipped whole
    unread: bool = False  # too much IPython syntax to read

    def text(self) -> str:
        parts = [f"skipped: the {magic} cell magic does not run here"
                 for magic in dict.fromkeys(self.skipped)]
        for items, what in ((self.ran, "run once, as plain Python"), (self.dropped, "IPython syntax not run"),
                            (self.shell, "shell commands are not run by the grader")):
            if items:
                parts.append(f"{what}: " + ", ".join(dict.fromkeys(items)))
        if self.unread:
            parts.append("IPython syntax not read: this cell has too much of it, in too many lines, for "
                         "the grader to read, so it runs as plain Python; split it into smaller cells")
        return "; ".join(parts)


def transform_ipython(source: str, budget: ReadingBudget | None = None) -> tuple[str, str]:
    """Plain Python for a cell that may hold IPython syntax, and a note on what was changed.

    A cell that parses as Python is left untouched. Any other is read by IPython's own input
    transformer, as Jupyter reads it, and each line that it makes a call of IPython's shell
    (`get_ipython().run_line_magic(...)`) is made Python that runs without one (`_plain`). Line
    numbers are kept. A cell IPython cannot read is left as it is, and one that is still not Python
    once read is sent as read: either way the worker reports its SyntaxError at its line.
    """
    if _parses(source):
        return source, ""
    said = _Said()
    code = _read_ipython(source, said, budget or ReadingBudget(), 0)
    return (source if code is None else code), said.text()


def _read_ipython(source: str, said: _Said, budget: ReadingBudget, depth: int) -> str | None:
    lines = source.splitlines()
    work = (len(_MAYBE_IPYTHON.findall(source)) + 1) * len(lines)
    if work > min(MAX_CELL_WORK, budget.left):
        said.unread = True
        return None
    budget.left -= work
    try:
        with PARSE_LOCK:
            read = _transformer().transform_cell(source).splitlines()
    except Exception:  # IPython cannot read it (an unclosed bracket or string, ...): left as it is
        return None
    # IPython drops the cell's leading blank lines; they are put back, so that lines keep their numbers.
    lead = next((index for index, line in enumerate(lines) if line.strip()), 0)
    magic = _cell_magic(read)
    if magic is not None:
        name, first, body = magic
        if name not in RUN_ONCE_CELL_MAGICS or depth >= MAX_DEPTH:
            said.skipped.append(f"%%{name}")
            return "pass\n" * len(lines)
        said.ran.append(f"`%%{name}`")
        setup = _options_removed(name, first) if name in ("timeit", "prun") else ""
        code = body if _parses(body) else _read_ipython(body, said, budget, depth + 1)
        read = [setup or "pass"] + (body if code is None else code).splitlines()
    read = [""] * lead + read
    read += [""] * (len(lines) - len(read))
    if magic is not None:
        return "\n".join(read) + "\n"
    return "\n".join(_plain(line, said, budget, depth)
                     if "get_ipython()" in line and "get_ipython()" not in original else line
                     for line, original in zip(read, lines + [""] * (len(read) - len(lines)))) + "\n"


@functools.lru_cache(maxsize=1)
def _transformer():
    """IPython's input transformer, as Jupyter's kernel has it, with one change: where it joins
    lines into one (a `\\`-continued `%magic` or `!command`), blank lines are put after the joined
    line, so that the lines after it keep their numbers."""
    from IPython.core.inputtransformer2 import TransformerManager

    def keeping_lines(transformer):
        class KeepingLines(transformer):
            def transform(self, lines):
                new = super().transform(lines)
                at = self.start_line + 1
                return new[:at] + ["\n"] * (len(lines) - len(new)) + new[at:]

        KeepingLines.__name__ = transformer.__name__
        return KeepingLines

    manager = TransformerManager()
    manager.token_transformers = [keeping_lines(t) for t in manager.token_transformers]
    return manager


def _arguments(text: str) -> tuple[str, ...] | None:
    """The string arguments of a call IPython wrote, `'time', 'x = f()'`, read as literals."""
    try:
        found = ast.literal_eval(f"({text},)")
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return found if isinstance(found, tuple) and all(isinstance(a, str) for a in found) else None


def _cell_magic(read: list[str]) -> tuple[str, str, str] | None:
    """(name, the rest of its first line, its body) when IPython read the cell as a cell magic."""
    match = _SHELL_CALL.match(read[0].rstrip()) if len(read) == 1 else None
    if not match or match["lhs"] or match["method"] != "run_cell_magic":
        return None
    found = _arguments(match["args"])
    return found if found is not None and len(found) == 3 else None


def _plain(line: str, said: _Said, budget: ReadingBudget, depth: int) -> str:
    """Python for a line that IPython made a call of its shell: the statement of `%time`, `%timeit`
    or `%prun`; for anything else (`x?`, `%matplotlib`, `!pip`, an unknown magic) nothing (`pass`, or
    `None` for the name a `files = !ls` assigns)."""
    match = _SHELL_CALL.match(line.rstrip())
    found = _arguments(match["args"]) if match else None
    lhs = match["lhs"] if match else line
    indent = lhs[: len(lhs) - len(lhs.lstrip())]
    target = lhs.strip()  # "x =" when the result is assigned
    nothing = f"{indent}{target} None" if target else f"{indent}pass"
    method = match["method"] if match else ""
    if found and method in ("system", "getoutput"):
        said.shell.append(_shown("!" + found[0]))
        return nothing
    if found is None or len(found) < 2 or method != "run_line_magic":
        said.dropped.append(_shown(line.strip()))
        return nothing
    name, argument = found[:2]
    if name in ("pinfo", "pinfo2"):  # `x?`, `??x`: help
        said.dropped.append(_shown(argument + ("?" if name == "pinfo" else "??")))
        return nothing
    statement = _options_removed(name, argument) if name in RUN_ONCE_LINE_MAGICS else ""
    if statement and depth < MAX_DEPTH:
        if not _parses(statement):  # `%time %timeit f()`: IPython reads it again
            statement = (_read_ipython(statement, said, budget, depth + 1) or statement).strip()
        if not target:
            said.ran.append(f"`%{name}`")
            return indent + statement
        if name == "time" and _is_expression(statement):  # `x = %time f()` assigns what f() returns
            said.ran.append(f"`%{name}`")
            return f"{indent}{target} {statement}"
    said.dropped.append(f"`%{name}`")
    return nothing


def _options_removed(magic: str, argument: str) -> str:
    """The code a `%time`, `%timeit` or `%prun` line (or cell magic's first line) runs: its argument
    without the options before it, read as IPython's magics read them."""
    spec = RUN_ONCE_LINE_MAGICS.get(magic, "")
    rest = argument.strip()
    if magic == "time" and rest.startswith("--no-raise-error"):
        rest = rest[len("--no-raise-error"):].lstrip()
    while spec and rest.startswith("-") and not rest.startswith("--"):
        word, after = (rest.split(None, 1) + [""])[:2]
        for index, letter in enumerate(word[1:], start=1):
            at = spec.find(letter)
            if letter == ":" or at < 0:
                return rest  # not one of its options: the code starts here
            if spec[at + 1 : at + 2] == ":":  # it takes a value: the rest of the word, or the next word
                if index == len(word) - 1:
                    after = (after.split(None, 1) + [""])[1]
                break
        rest = after.lstrip()
    return rest


def _is_expression(code: str) -> bool:
    try:
        parse(code, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def _shown(code: str) -> str:
    """IPython syntax as a note quotes it: on one line, short."""
    code = " ".join(code.split())
    return f"`{code if len(code) <= 40 else code[:37] + '...'}`"


MAX_PARSED = 50_000  # characters of a cell parsed in the grader; a longer one is left as it is


def _parses(source: str) -> bool:
    """Whether the cell is plain Python. Parsing costs memory, and the source is untrusted: a
    cell too long or too deep to parse here is left as it is, for the worker to compile."""
    if len(source) > MAX_PARSED:
        return True
    try:
        parse(source)
    except SyntaxError:
        return False
    except (RecursionError, MemoryError, ValueError):
        return True
    return True


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.ListComp, ast.SetComp,
           ast.DictComp, ast.GeneratorExp)


def names_bound_from(code: str, line: int = 0) -> dict[str, int]:
    """The names that the code's top level binds (imports, assignments, def, class, `for` and `with`
    targets) in its statements that end at `line` or after, each with the line that binds it first:
    what a cell that stopped at `line` left undefined. Parsed, never run; {} if it does not parse."""
    if len(code) > MAX_PARSED:
        return {}
    try:
        tree = parse(code)
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return {}
    found: dict[str, int] = {}
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.stmt) and (node.end_lineno or node.lineno) < line:
            continue  # it ran before the cell stopped
        names = []
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.asname or alias.name.split(".")[0] for alias in node.names if alias.name != "*"]
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names = [node.id]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.ExceptHandler)):
            names = [node.name] if node.name else []
        for name in names:
            found[name] = min(found.get(name, node.lineno), node.lineno)
        if not isinstance(node, _SCOPES):  # names bound inside a function or class are its own
            stack.extend(ast.iter_child_nodes(node))
    return found
