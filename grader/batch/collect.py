"""Find the students' submissions: files, folders (one per student) or a learning platform's zip.

Student ids come from the names, with Canvas's and Moodle's export naming understood out of the
box and `--id-pattern` for anything else. When a student submitted several times, the newest
counts, and the others are named in a note. A zip entry is never extracted blindly: a path that
escapes, a link, a duplicate, an unreadable or oversized entry is reported and skipped, and only
the entries to be graded (each student's newest) are extracted, within `MAX_EXTRACTED_BYTES` in all.
"""

from __future__ import annotations

import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..submission import MAX_BYTES

SUFFIXES = (".ipynb", ".py")
MAX_EXTRACTED_BYTES = 2_000_000_000  # what a class's archives may extract to, in all
# Canvas: smithjohn_12345_678901_attention.ipynb, smithjohn_LATE_12345_678901_attention-1.ipynb
CANVAS = re.compile(r"^(?P<id>[a-z0-9]+)_(?:late_)?(?P<user>\d+)_(?P<version>\d+)_", re.IGNORECASE)
# Moodle: a folder "John Smith_1234567_assignsubmission_file_" per student
MOODLE = re.compile(r"^(?P<id>.+?)_(?P<user>\d+)_assignsubmission_(?:file|onlinetext)_?")


@dataclass(frozen=True)
class Candidate:
    student: str
    path: Path  # the file to grade (for zip entries: where it was extracted)
    source: str  # as the instructor knows it: a path, or "archive.zip:entry"
    version: tuple  # larger is newer
    member: tuple[Path, zipfile.ZipInfo] | None = None  # a zip entry, extracted only if chosen


@dataclass(frozen=True)
class Entry:
    """One student's submission to grade: the newest of what they handed in."""

    student: str
    path: Path | None
    source: str
    notes: tuple[str, ...] = ()


@dataclass
class Collection:
    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # entries that were refused, and why


def collect(inputs: list[Path], staging: Path, id_pattern: str | None = None) -> Collection:
    """Every student's newest submission among `inputs`; archives are extracted into `staging`."""
    pattern = re.compile(id_pattern) if id_pattern else None
    candidates: list[Candidate] = []
    result = Collection()
    for item in inputs:
        if not item.exists():
            result.problems.append(f"{item}: no such file or folder")
        elif item.is_dir():
            candidates += _from_folder(item, pattern, result)
        elif item.suffix.lower() == ".zip":
            candidates += _from_zip(item, staging, pattern, result)
        elif item.suffix.lower() in SUFFIXES:
            candidates.append(_candidate(item, item.name, str(item), pattern, item.stat().st_mtime))
        else:
            result.problems.append(f"{item}: not a .py, .ipynb, folder or .zip; skipped")
    result.entries = _extract(_newest(candidates), result)
    return result


def student_id(name: str, pattern: re.Pattern | None) -> tuple[str, tuple]:
    """The student id in a file or folder name, and a version (larger is newer) where it shows."""
    if pattern is not None:
        match = pattern.search(name)
        if match:
            groups = match.groupdict()
            return (groups.get("id") or match.group(1) if match.groups() else match.group(0)), ()
    if match := CANVAS.match(name):
        return match["id"], (int(match["version"]),)
    if match := MOODLE.match(name):
        return match["id"].strip(), ()
    stem = name
    for suffix in SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem, ()


def _candidate(path: Path, name: str, source: str, pattern, mtime: float) -> Candidate:
    student, version = student_id(name, pattern)
    return Candidate(student, path, source, (*version, mtime))


def _from_folder(folder: Path, pattern, result: Collection) -> list[Candidate]:
    found = []
    for item in sorted(folder.iterdir()):
        if item.name.startswith("."):
            continue
        if item.is_symlink():  # never followed: graded as what it is, an unreadable submission
            found.append(_candidate(item, item.name, str(item), pattern, item.lstat().st_mtime))
            continue
        if item.is_dir():  # one folder per student: its newest notebook or .py file
            files = sorted((f for f in item.rglob("*") if f.suffix.lower() in SUFFIXES and f.is_file()),
                           key=lambda f: (f.suffix.lower() != ".ipynb", -f.stat().st_mtime))
            if not files:
                result.problems.append(f"{item}: no .ipynb or .py file inside; skipped")
                continue
            student, version = student_id(item.name, pattern)
            for file in files:
                found.append(Candidate(student, file, str(file), (*version, file.stat().st_mtime)))
        elif item.suffix.lower() in SUFFIXES:
            found.append(_candidate(item, item.name, str(item), pattern, item.stat().st_mtime))
    return found


def _from_zip(archive: Path, staging: Path, pattern, result: Collection) -> list[Candidate]:
    found, seen = [], set()
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        result.problems.append(f"{archive}: not a readable zip archive ({exc})")
        return found
    with zf:
        for index, info in enumerate(zf.infolist()):
            name = info.filename
            where = f"{archive.name}:{name}"
            if info.is_dir():
                continue
            problem = _unsafe(info)
            if problem:
                result.problems.append(f"{where}: {problem}; not extracted")
                continue
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if PurePosixPath(parts[-1]).suffix.lower() not in SUFFIXES or parts[-1].startswith("."):
                continue
            if name.lower() in seen:
                result.problems.append(f"{where}: a second entry with this name; not extracted")
                continue
            seen.add(name.lower())
            if info.file_size > MAX_BYTES:
                result.problems.append(f"{where}: {info.file_size / 1e6:.1f} MB, over the "
                                       f"{MAX_BYTES / 1e6:.0f} MB limit; not extracted")
                continue
            target = staging / f"{index:05d}_{_safe_name(parts[-1])}"
            owner = parts[0] if len(parts) > 1 else parts[-1]  # a folder per student, or a file
            student, version = student_id(owner, pattern)
            mtime = float("".join(f"{n:02d}" for n in info.date_time))
            found.append(Candidate(student, target, where, (*version, mtime), (archive, info)))
    return found


def _unsafe(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if "\x00" in name:
        return "a name with a NUL byte"
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    if ".." in posix.parts:
        return "a path that escapes the archive's folder (..)"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link"
    return None


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:120] or "submission"


def _extract(chosen: list[tuple[Entry, Candidate]], result: Collection) -> list[Entry]:
    """Extract the chosen zip entries (only those), within MAX_EXTRACTED_BYTES in all; an entry
    that cannot be extracted is graded as an unreadable submission, with the reason."""
    entries, total, archives = [], 0, {}
    try:
        for entry, candidate in chosen:
            if candidate.member is None:
                entries.append(entry)
                continue
            archive, info = candidate.member
            problem = None
            if total + info.file_size > MAX_EXTRACTED_BYTES:
                problem = (f"not extracted: the class's archives would extract to more than "
                           f"{MAX_EXTRACTED_BYTES / 1e9:.0f} GB in all")
            else:
                try:
                    if archive not in archives:
                        archives[archive] = zipfile.ZipFile(archive)
                    with archives[archive].open(info) as source:
                        data = source.read(MAX_BYTES + 1)  # never more than one file may hold
                    if len(data) > MAX_BYTES:
                        problem = f"not extracted: it holds more than {MAX_BYTES / 1e6:.0f} MB"
                except (zipfile.BadZipFile, OSError, RuntimeError, ValueError, EOFError) as exc:
                    problem = f"cannot be read ({exc}); not extracted"
            if problem:
                result.problems.append(f"{candidate.source}: {problem}")
                entries.append(Entry(entry.student, None, entry.source, (*entry.notes, problem)))
                continue
            total += len(data)
            candidate.path.parent.mkdir(parents=True, exist_ok=True)
            candidate.path.write_bytes(data)
            entries.append(entry)
    finally:
        for zf in archives.values():
            zf.close()
    return entries


def _newest(candidates: list[Candidate]) -> list[tuple[Entry, Candidate]]:
    by_student: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        by_student.setdefault(candidate.student, []).append(candidate)
    entries = []
    for student in sorted(by_student):
        ranked = sorted(by_student[student], key=lambda c: c.version, reverse=True)
        newest, older = ranked[0], ranked[1:]
        notes = ()
        if older:
            notes = (f"{len(ranked)} submissions; graded the newest, {newest.source}; not graded: "
                     + ", ".join(c.source for c in older),)
        entries.append((Entry(student, newest.path, newest.source, notes), newest))
    return entries
