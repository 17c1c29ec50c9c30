"""Grade a whole class: find the submissions, grade what is not graded yet, write the gradebook.

    collection = collect(inputs)              every student's newest submission
    pending    = [not yet in results/]        a result is keyed by the submission's content, the
                                              rubric, the reference, the mistakes and the grader
    prepared   = prepare(rubric)              the reference's answers, once for the class
    zygote     = Zygote()                     torch imported once; a fresh confined fork per student
    results/   <- grade_prepared(...)         written atomically, one file per result, as they come
    gradebook  = write_gradebook(...)         grades.csv, results.jsonl, feedback/, summary

Interrupted (Ctrl-C, a kill, a reboot), the same command grades only what is missing and writes
the same gradebook. Nothing already graded is rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .. import __version__
from ..engine import grade_prepared, prepare, unreadable_report
from ..errors import GraderError, UsageError
from ..models import Report
from ..paths import find_rubric
from ..rubric import Rubric, load_rubric
from ..submission import UnreadableSubmission, read_submission
from .collect import Collection, Entry, collect, read_groups
from .gradebook import Row, read_result, write_gradebook


@dataclass(frozen=True)
class Outcome:
    rows: list[Row]
    problems: list[str]  # archive entries refused, grader failures
    graded: int  # how many were graded in this run (the rest came from results/)
    seconds: float

    @property
    def grader_failures(self) -> int:
        return sum(1 for row in self.rows if row.status.startswith("not graded"))


def grade_class(inputs: list[str | Path], *, out: str | Path, rubric: str | Path | Rubric | None = None,
                jobs: int | None = None, id_pattern: str | None = None, regrade: tuple[str, ...] = (),
                groups: str | Path | None = None,
                shard: tuple[int, int] | None = None, executor: str = "local",
                scheduler: str | None = None, progress=None) -> Outcome:
    started = time.monotonic()
    out = Path(out)
    rubric = rubric if isinstance(rubric, Rubric) else load_rubric(find_rubric(rubric))
    (out / "results").mkdir(parents=True, exist_ok=True)
    collection = collect([Path(i) for i in inputs], out / "submissions", id_pattern,
                         read_groups(Path(groups)) if groups else None, exercise=rubric.exercise)
    if not collection.entries:
        raise UsageError("nothing to grade: " + ("; ".join(collection.problems) or
                                                 "no .py, .ipynb, folder or .zip among the inputs"))
    entries = select_shard(collection.entries, shard)
    if shard is not None:
        write_atomically(out / "shard.json", json.dumps({"shard": list(shard)}))
    unknown = sorted(set(regrade) - {e.student for e in collection.entries})
    if unknown:
        raise UsageError(f"--regrade: no student {', '.join(unknown)} among the submissions")
    fingerprint = rubric_fingerprint(rubric)
    keys = {entry.student: result_key(entry, fingerprint) for entry in entries}
    for student in regrade:
        if student in keys:
            (out / "results" / f"{keys[student]}.json").unlink(missing_ok=True)
    pending = [e for e in entries if not (out / "results" / f"{keys[e.student]}.json").exists()]
    failures: dict[str, str] = {}
    if pending and rubric.require:
        _demand_sandbox(rubric)  # before anyone is graded: the layers are the machine's, not theirs
    if pending:
        run = _run_dask if executor == "dask" else _run_local
        failures = run(pending, rubric, out, keys, jobs or os.cpu_count() or 1, scheduler,
                       progress or Progress(len(pending)))
    rows = [_row(entry, out, keys[entry.student], failures.get(entry.student)) for entry in entries]
    write_gradebook(out, rubric, rows, collection.problems)
    problems = collection.problems + [f"{s}: not graded: {why}" for s, why in failures.items()]
    return Outcome(rows, problems, len(pending) - len(failures), time.monotonic() - started)


def _demand_sandbox(rubric: Rubric) -> None:
    from ..engine import hidden_paths
    from ..sandbox import Limits, SandboxRefused, missing_layers, probe

    missing = missing_layers(probe(Limits.of(rubric.defaults), hidden_paths(rubric)), rubric.require)
    if missing:
        raise SandboxRefused(missing)


def select_shard(entries: list[Entry], shard: tuple[int, int] | None) -> list[Entry]:
    """Shard K of N (1-based): every N-th student in id order, so shards never overlap."""
    if shard is None:
        return entries
    k, n = shard
    return [entry for index, entry in enumerate(sorted(entries, key=lambda e: e.student))
            if index % n == k - 1]


def rubric_fingerprint(rubric: Rubric) -> str:
    digest = hashlib.sha256(__version__.encode())
    for path in (Path(rubric.path), rubric.reference, rubric.mistakes, rubric.expected):
        if path is not None:
            digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def result_key(entry: Entry, fingerprint: str) -> str:
    digest = hashlib.sha256(fingerprint.encode())
    digest.update(entry.student.encode())
    if entry.path is None:
        content = b""
    elif entry.path.is_symlink():  # never followed: the link itself is what was handed in
        content = b"symbolic link to " + os.fsencode(os.readlink(entry.path))
    else:
        content = entry.path.read_bytes()
    digest.update(content)
    return digest.hexdigest()[:32]


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


@contextmanager
def atomic_file(path: Path) -> Iterator[TextIO]:
    """A text file written beside `path` and renamed onto it when the block ends: readers see all
    of it or none, and a block that fails leaves the old file as it was."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as readable as any file the user makes (mkstemp: 0600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: readers see all of it or none."""
    with atomic_file(path) as f:
        f.write(text)


def grade_entry(entry: Entry, rubric: Rubric, prepared, diagnoser, zygote) -> Report:
    if entry.path is None:  # it could not be extracted: its notes say why
        return unreadable_report(entry.source, rubric, entry.notes[-1], entry.notes[:-1])
    try:
        submission = read_submission(entry.path)
    except UnreadableSubmission as problem:
        return unreadable_report(entry.source, rubric, str(problem), entry.notes)
    submission = type(submission)(entry.source, submission.kind, submission.chunks, submission.notes)
    return grade_prepared(submission, rubric, prepared, diagnoser, zygote, entry.notes)


def _save(out: Path, key: str, entry: Entry, report: Report) -> None:
    record = {"student": entry.student, "file": entry.source, "report": report.to_dict()}
    write_atomically(out / "results" / f"{key}.json", json.dumps(record))


def _run_local(pending, rubric, out, keys, jobs, scheduler, progress) -> dict[str, str]:
    from ..sandbox import Zygote

    failures: dict[str, str] = {}
    with Zygote(wait=False) as zygote, ThreadPoolExecutor(max_workers=jobs) as pool:
        # the zygote imports torch while this process does and prepares the reference's answers
        prepared, diagnoser = prepare(rubric, list(rubric.steps))
        zygote.prepare_for(prepared)
        _canary(rubric, prepared, diagnoser, zygote)
        futures: dict[Future, Entry] = {}
        queue = list(pending)
        try:
            while queue or futures:
                while queue and len(futures) < jobs * 2:
                    entry = queue.pop(0)
                    futures[pool.submit(grade_entry, entry, rubric, prepared, diagnoser, zygote)] = entry
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    entry = futures.pop(future)
                    try:
                        _save(out, keys[entry.student], entry, future.result())
                    except GraderError as exc:
                        failures[entry.student] = str(exc).splitlines()[0]
                    except Exception as exc:  # noqa: BLE001 - one student never stops the class
                        failures[entry.student] = (f"the grader failed on this submission "
                                                   f"({type(exc).__name__}: {exc}); please report it")
                    progress.advance(entry.student)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    progress.finish()
    return failures


def _canary(rubric: Rubric, prepared, diagnoser, zygote) -> None:
    """Grade the rubric's own reference solutions first, under its limits: if they do not pass,
    the grader cannot grade here (a `memory_mb` too small for torch, a broken machine), and no
    student is scored for the grader's failure."""
    if rubric.reference is None:  # a student bundle: no reference to try
        return
    from ..errors import InternalError

    report = grade_prepared(read_submission(rubric.reference), rubric, prepared, diagnoser, zygote)
    if not report.all_passed:
        failed = next(step for step in report.steps if not step.passed)
        raise InternalError(
            f"the grader cannot grade under this rubric here: its own reference solutions scored "
            f"{report.score:g}/{report.max_score:g} ({failed.id}: {failed.feedback.splitlines()[0]}"
            f"{'; ' + report.notes[0] if report.notes else ''}). Nobody was graded; check the "
            "rubric's limits (memory_mb must leave room for torch, about 700 MB) and run again.")


def _run_dask(pending, rubric, out, keys, jobs, scheduler, progress) -> dict[str, str]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise UsageError("--executor dask needs dask.distributed: pip install 'attention-grader[dask]'"
                         ) from None
    from .remote import grade_remote

    failures: dict[str, str] = {}
    rubric_path = str(Path(rubric.path).resolve())
    local = [e for e in pending if e.path is None or e.path.is_symlink()]
    for entry in local:  # never sent: graded here, as unreadable
        _save(out, keys[entry.student], entry, grade_entry(entry, rubric, None, None, None))
        progress.advance(entry.student)
    pending = [e for e in pending if e not in local]
    try:
        client = Client(scheduler, timeout=10)
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {scheduler} ({exc}); is it running, "
                         "and is the address right (e.g. tcp://host:8786)?") from None
    with client:
        futures = {client.submit(grade_remote, entry.student, entry.source, entry.path.read_bytes(),
                                 entry.path.suffix, entry.notes, rubric_path, pure=False): entry
                   for entry in pending}
        for future in as_completed(futures):
            entry = futures[future]
            try:
                _save(out, keys[entry.student], entry, Report.from_json(future.result()))
            except GraderError as exc:
                failures[entry.student] = str(exc).splitlines()[0]
            except Exception as exc:  # a task that died on its worker: the machine's failure
                failures[entry.student] = f"the dask task failed: {type(exc).__name__}: {exc}"
            progress.advance(entry.student)
    progress.finish()
    return failures


def _row(entry: Entry, out: Path, key: str, failure: str | None) -> Row:
    path = out / "results" / f"{key}.json"
    if failure is not None or not path.exists():
        return Row(entry.student, entry.source, None, f"not graded: {failure or 'no result'}",
                   entry.name)
    report = read_result(path)
    status = f"unreadable: {report.unreadable.splitlines()[0]}" if report.unreadable else "graded"
    return Row(entry.student, entry.source, None, status, entry.name, result=path)


class Progress:
    """A bar with the count, the rate and the time left on a terminal; plain lines otherwise."""

    def __init__(self, total: int, stream=None):
        self.total = total
        self.stream = stream or sys.stderr
        self.done = 0
        self.started = time.monotonic()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.lock = threading.Lock()
        self.step = max(1, total // 10)

    def advance(self, student: str) -> None:
        with self.lock:
            self.done += 1
            elapsed = time.monotonic() - self.started
            rate = self.done / elapsed if elapsed > 0 else 0.0
            left = (self.total - self.done) / rate if rate else 0.0
            if self.tty:
                filled = int(30 * self.done / self.total)
                self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} "
                                  f"{rate:.1f}/s, {left:.0f} s left ")
                self.stream.flush()
            elif self.done % self.step == 0 or self.done == self.total:
                self.stream.write(f"graded {self.done}/{self.total} ({rate:.1f}/s, {left:.0f} s left)\n")

    def finish(self) -> None:
        if self.tty and self.total:
            self.stream.write("\n")


__all__ = ["Collection", "Outcome", "Progress", "grade_class", "select_shard", "write_atomically"]
