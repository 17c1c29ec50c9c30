"""Find the students' submissions: files, folders (one per student) or a learning platform's zip.

A student is keyed by the platform's own stable id, with the display name kept beside it:

    Canvas   smithjohn_12345_678901_attention.ipynb (and smithjohn_LATE_12345_...): user id 12345,
             name smithjohn; the third number (the upload's id) orders a student's files
    Moodle   a folder "John Smith_1234567_assignsubmission_file_" per student (under blind marking
             "Participant_1234567_..."): participant id 1234567, name John Smith; downloaded
             without folders, that prefix and the file's name: "John Smith_1234567_assignsub..._a.py"
    Blackboard  Homework 3_jsmith_attempt_2026-11-02-14-05-09_attention.ipynb: user name jsmith;
             the attempt's date orders a student's files
    --id-pattern  a regular expression whose group `id` (or first group) is the id; a group `name`,
             if any, is the name
    anything else  the file's name without its suffix, or the folder's name

Each naming is read by its structure, anchored where the platform writes the id, never from the
part the student chose: Canvas's and Blackboard's part comes first (a file named
"x_alice_attempt_2099-..." inside mallory's Blackboard name is mallory's), a Moodle folder's id is
the one its name ends with (a full name ending in "_7_assignsubmission_file_" is only a name). A
name that still fits with more than one id (a Moodle file whose full name and file name both hold
the mark, a name that is Canvas's with one id and Moodle's with another) gets no id: it is a row
of its own keyed by its full name, and the problem is reported. A bare name never takes a
platform id's row.

Two submissions are one student's only when the platform says so (the same user or participant
id). Files that only share a name (alice.py and alice.ipynb) are never merged: each is a row of its
own, keyed by its full name, and the collision is reported.

Which file of a submission is graded follows `grader.choose` (the exercise's own file name first);
across a student's submissions the newest counts, and the others are named in the student's notes.
A zip entry is never extracted blindly: a path that escapes, a link, a duplicate, an unreadable or
oversized entry is reported and skipped, and only the entries to be graded are extracted, within
`MAX_EXTRACTED_BYTES` in all.
"""

from __future__ import annotations

import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..choose import EXERCISE, Choice, choose, counts
from ..errors import UsageError
from ..submission import MAX_BYTES

SUFFIXES = (".ipynb", ".py")
MAX_EXTRACTED_BYTES = 2_000_000_000  # what a class's archives may extract to, in all
# Each platform's naming, anchored where the platform writes it: the id is read from the
# platform's part, never from the part the student chose (their file's name, their full name).
# Canvas: smithjohn_12345_678901_attention.ipynb, smithjohn_LATE_12345_678901_attention-1.ipynb:
# Canvas's part (a name of letters and digits, no "_") comes first, the student's file after it.
CANVAS = re.compile(r"^(?P<name>[a-z0-9]+)_(?:late_)?(?P<user>[0-9]+)_(?P<version>[0-9]+)_(?P<rest>.+)$",
                    re.IGNORECASE | re.ASCII)
# Moodle: "John Smith_1234567_assignsubmission_file_", a folder per student, or that prefix before
# the file's name (downloaded without folders): the student's full name before the mark, and in the
# flat form their file's name after it.
MOODLE_MARK = re.compile(r"_(?P<user>[0-9]+)_assignsubmission_(?:file|onlinetext)(?:_|$)", re.ASCII)
# Blackboard: Homework 3_jsmith_attempt_2026-11-02-14-05-09_attention.ipynb: the assignment, the
# user and the attempt's date come first (the first `_user_attempt_`), the student's file after it.
BLACKBOARD_MARK = re.compile(r"_(?P<user>[^_]+)_attempt_")
BLACKBOARD_REST = re.compile(r"(?P<when>[0-9]{4}(?:-[0-9]{2}){5})(?:_(?P<rest>.+))?", re.ASCII)

@dataclass(frozen=True)
class Identity:
    id: str  # the key: the platform's stable id
    name: str  # the display name, beside it
    platform: bool  # the id came from the platform's naming (or --id-pattern), not a bare name
    version: tuple = ()  # larger is newer, where the name shows it
    file: str = ""  # the file's own name within the platform's (Canvas: "attention.ipynb")
    problem: str = ""  # why the name gives no id, where it fits a platform's naming more than one way


@dataclass(frozen=True)
class File:
    """One file of a submission, not read yet."""

    name: str  # within the submission, as the choice rule sees it
    version: tuple
    source: str  # as the instructor knows it: a path, or "archive.zip:entry"
    path: Path  # where it is (for a zip entry: where it will be extracted)
    member: tuple[Path, zipfile.ZipInfo] | None = None  # a zip entry, extracted only if chosen
    symlink: bool = False


@dataclass
class Handed:
    """One submission: what one student handed in at one time, in one place."""

    identity: Identity
    label: str  # as the instructor knows it
    files: list[File] = field(default_factory=list)


@dataclass(frozen=True)
class Entry:
    """One student's submission to grade: the chosen file of their newest submission."""

    student: str  # the id
    path: Path | None  # None: nothing can be graded; the last note says why
    source: str
    notes: tuple[str, ...] = ()
    name: str = ""  # the display name


@dataclass
class Collection:
    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what was refused or is doubtful, and why


@dataclass(frozen=True)
class Groups:
    """Who is in which group (`--groups FILE`): a group's submission is graded for every member."""

    group_of: dict[str, str]  # member id -> group
    members: dict[str, list[tuple[str, str]]]  # group -> [(member id, name)]


def read_groups(path: Path) -> Groups:
    """A CSV file with the columns `group` and `id` (the platform's id), and `name` if you like."""
    import csv

    try:
        lines = list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--groups {path}: cannot be read ({exc})") from None
    if not lines or not {"group", "id"} <= set(lines[0]):
        raise UsageError(f"--groups {path}: expected a CSV file with the columns group and id "
                         "(and name, if you like): one line per member")
    group_of: dict[str, str] = {}
    members: dict[str, list[tuple[str, str]]] = {}
    for number, line in enumerate(lines, start=2):
        member, group = (line.get("id") or "").strip(), (line.get("group") or "").strip()
        if not member or not group:
            raise UsageError(f"--groups {path}, line {number}: a member needs both a group and an id")
        if member in group_of and group_of[member] != group:
            raise UsageError(f"--groups {path}, line {number}: {member} is in two groups, "
                             f"{group_of[member]} and {group}")
        group_of[member] = group
        members.setdefault(group, []).append((member, (line.get("name") or "").strip() or member))
    return Groups(group_of, members)


def collect(inputs: list[Path], staging: Path, id_pattern: str | None = None,
            groups: Groups | None = None, exercise: str = EXERCISE) -> Collection:
    """Every student's submission to grade among `inputs`; archives are extracted into `staging`.
    `exercise`: the stem of the exercise's own file (the rubric's `course.exercise`)."""
    pattern = compile_pattern(id_pattern)
    result = Collection()
    handed: list[Handed] = []
    loose = Loose("the command line")
    for item in inputs:
        if item.is_symlink() and not item.is_dir():
            loose.add(_file_identity(item.name, pattern), File(item.name, (), str(item), item,
                                                                 symlink=True))
        elif not item.exists():
            result.problems.append(f"{item}: no such file or folder")
        elif item.is_dir():
            handed += _from_folder(item, pattern, result)
        elif item.suffix.lower() == ".zip":
            handed += _from_zip(item, staging, pattern, result)
        elif item.suffix.lower() in SUFFIXES:
            loose.add(_file_identity(item.name, pattern),
                      File(item.name, (item.stat().st_mtime,), str(item), item))
        else:
            result.problems.append(f"{item}: not a .py, .ipynb, folder or .zip; skipped")
    handed += loose.submissions()
    chosen = _per_student(handed, result, exercise)
    if groups is not None:
        chosen = _per_group(chosen, groups, result)
    result.entries = _extract(chosen, result)
    return result


def _per_group(chosen: list[tuple[Entry, File | None]], groups: Groups,
               result: Collection) -> list[tuple[Entry, File | None]]:
    """A group's newest submission is graded for every member, each a row of their own; everyone
    else as they are. A submission is a group's when its key (the platform's id) is a member's id,
    or is the group column itself (Moodle 4's folder per group, keyed by the group's id; a bare
    folder or file named as the group): never by a display name, which a student may choose."""
    kept, by_group = [], {}
    for entry, file in chosen:
        group = groups.group_of.get(entry.student) or (
            entry.student if entry.student in groups.members else None)
        if group is None:
            kept.append((entry, file))
        else:
            by_group.setdefault(group, []).append((entry, file))
    for group, handed in sorted(by_group.items()):
        handed.sort(key=lambda item: item[1].version if item[1] is not None else (), reverse=True)
        entry, file = handed[0]
        by = entry.name or entry.student
        notes = [f"Graded as the submission of group {group}, handed in by {by}."]
        if len(handed) > 1:
            notes.append("The group's other submissions, not graded: "
                         + ", ".join(Path(e.source).name for e, _ in handed[1:]))
        for member, name in groups.members[group]:
            kept.append((Entry(member, entry.path, entry.source, (*notes, *entry.notes), name), file))
    return sorted(kept, key=lambda item: item[0].student)


def compile_pattern(id_pattern: str | None) -> re.Pattern | None:
    if not id_pattern:
        return None
    try:
        pattern = re.compile(id_pattern)
    except re.error as exc:
        raise UsageError(f"--id-pattern {id_pattern!r} is not a valid regular expression: {exc}") from None
    if pattern.groups == 0:
        raise UsageError(f"--id-pattern {id_pattern!r} has no group: put the student id in one, "
                         r"e.g. 'hw3-(?P<id>s\d+)'")
    return pattern


def student_id(name: str, pattern: re.Pattern | None, folder: bool = False) -> Identity:
    """Who a file or folder name belongs to, by the platform's naming (see the module's doc).
    A name that fits the naming with more than one id is nobody's: it is keyed by its full name,
    with the problem said (`Identity.problem`)."""
    found = _by_pattern(name, pattern) if pattern is not None else []
    if not found and folder:  # of the platforms, only Moodle names folders
        found = _moodle(name, folder=True)
    elif not found:
        found = [*_canvas(name), *_moodle(name, folder=False), *_blackboard(name)]
    ids = sorted({identity.id for identity in found})
    if len(ids) == 1:
        return found[0]
    if len(ids) > 1:
        return Identity(name, name, False, problem=(
            f"{name}: this name fits the platform's naming with more than one id "
            f"({', '.join(ids)}), so no id is guessed: it is graded as its own row, keyed by its "
            "full name. Check whose submission it is, and grade it under that id with --id-pattern "
            "or by renaming it."))
    return Identity(_stem(name), _stem(name), False)


def _by_pattern(name: str, pattern: re.Pattern) -> list[Identity]:
    """--id-pattern: every match's `id` group (or first group), and its `name` group, if any."""
    found = []
    for match in pattern.finditer(name):
        groups = match.groupdict()
        user = groups.get("id") or match.group(1)
        if user:
            found.append(Identity(user, groups.get("name") or user, True))
    return found


def _canvas(name: str) -> list[Identity]:
    match = CANVAS.match(name)
    if match is None:
        return []
    return [Identity(match["user"], match["name"], True, (int(match["version"]),), match["rest"])]


def _moodle(name: str, folder: bool) -> list[Identity]:
    """A folder's id is the one its name ends with; a file's, each mark with the student's full
    name before it and a file's name after it (more than one: the name is ambiguous)."""
    found = []
    for start in range(1, len(name)):
        match = MOODLE_MARK.match(name, start)
        if match is None or (match.end() == len(name)) != folder:
            continue
        display = name[:start].strip()
        if display.lower() == "participant":  # blind marking: the id is all there is
            display = f"Participant {match['user']}"
        found.append(Identity(match["user"], display, True, file=name[match.end():]))
    return found


def _blackboard(name: str) -> list[Identity]:
    mark = BLACKBOARD_MARK.search(name, 1)
    rest = mark and BLACKBOARD_REST.fullmatch(name, mark.end())
    if not rest:
        return []
    when = int(re.sub(r"[^0-9]", "", rest["when"]))
    return [Identity(mark["user"], mark["user"], True, (when,), rest["rest"] or "")]


def _stem(name: str) -> str:
    for suffix in SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _file_identity(name: str, pattern) -> Identity:
    return student_id(name, pattern)


class Loose:
    """Files handed in side by side (a folder's files, a flat zip, the command line): those of one
    platform id are one submission; any other file is a submission of its own."""

    def __init__(self, label: str):
        self.label = label
        self.by_id: dict[str, Handed] = {}
        self.alone: list[Handed] = []

    def add(self, identity: Identity, file: File) -> None:
        if identity.file:  # Canvas: the file's own name is what the choice rule reads
            file = File(identity.file, (*identity.version, *file.version), file.source, file.path,
                        file.member, file.symlink)
        if identity.platform:
            handed = self.by_id.setdefault(identity.id, Handed(identity, file.source))
            handed.files.append(file)
        else:
            self.alone.append(Handed(identity, file.source, [file]))

    def submissions(self) -> list[Handed]:
        return [*self.by_id.values(), *self.alone]


def _from_folder(folder: Path, pattern, result: Collection) -> list[Handed]:
    loose, handed = Loose(str(folder)), []
    for item in sorted(folder.iterdir()):
        if item.name.startswith("."):
            continue
        if item.is_symlink():  # never followed: graded as what it is, an unreadable submission
            loose.add(student_id(item.name, pattern, folder=item.is_dir()),
                      File(item.name, (item.lstat().st_mtime,), str(item), item, symlink=True))
        elif item.is_dir():  # one folder per student: one submission
            files = [File(f.relative_to(item).as_posix(), (f.lstat().st_mtime,), str(f), f,
                          symlink=f.is_symlink())
                     for f in sorted(item.rglob("*")) if f.is_file() or f.is_symlink()]
            files = [f for f in files if counts(f.name)]
            if not files:
                result.problems.append(f"{item}: no .ipynb or .py file inside; skipped")
                continue
            handed.append(Handed(student_id(item.name, pattern, folder=True), str(item), files))
        elif item.suffix.lower() in SUFFIXES:
            loose.add(student_id(item.name, pattern),
                      File(item.name, (item.stat().st_mtime,), str(item), item))
    return handed + loose.submissions()


def _from_zip(archive: Path, staging: Path, pattern, result: Collection) -> list[Handed]:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        result.problems.append(f"{archive}: not a readable zip archive ({exc})")
        return []
    loose, folders, seen = Loose(archive.name), {}, set()
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
            if not counts("/".join(parts)):
                continue
            if name.lower() in seen:
                result.problems.append(f"{where}: a second entry with this name; not extracted")
                continue
            seen.add(name.lower())
            if info.file_size > MAX_BYTES:
                result.problems.append(f"{where}: {info.file_size / 1e6:.1f} MB, over the "
                                       f"{MAX_BYTES / 1e6:.0f} MB limit; not extracted")
                continue
            mtime = float("".join(f"{n:02d}" for n in info.date_time))
            target = staging / f"{index:05d}_{_safe_name(parts[-1])}"
            if len(parts) > 1:  # a folder per student
                owner = parts[0]
                if owner not in folders:
                    folders[owner] = Handed(student_id(owner, pattern, folder=True),
                                            f"{archive.name}:{owner}/")
                folders[owner].files.append(File("/".join(parts[1:]), (mtime,), where, target,
                                                 (archive, info)))
            else:
                loose.add(student_id(parts[-1], pattern), File(parts[-1], (mtime,), where, target,
                                                                (archive, info)))
    return [*folders.values(), *loose.submissions()]


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


def _per_student(handed: list[Handed], result: Collection,
                 exercise: str = EXERCISE) -> list[tuple[Entry, File | None]]:
    """One entry per student: the chosen file of their newest submission."""
    # Bare names that collide are two students, never one: key them by their full names. A bare
    # name never takes a platform id's key: the platform's submissions keep it.
    by_id: dict[str, list[Handed]] = {}
    for submission in handed:
        if submission.identity.problem:
            result.problems.append(submission.identity.problem)
        by_id.setdefault(submission.identity.id, []).append(submission)
    for student_key, group in list(by_id.items()):
        bare = [h for h in group if not h.identity.platform]
        if len(group) > 1 and bare:
            labels = ", ".join(sorted(h.label for h in group))
            result.problems.append(
                f"{len(group)} submissions would all be student `{student_key}` ({labels}); nothing "
                "says they are one student's, so each is graded as its own row, keyed by its name. "
                "Name the files by student, or pass --id-pattern.")
            platform = [h for h in group if h.identity.platform]
            if platform:
                by_id[student_key] = platform
            else:
                del by_id[student_key]
            for submission in bare:
                key = _free_key(submission.label, by_id)
                own = Path(submission.label).name.rstrip("/") or submission.label
                by_id[key] = [Handed(Identity(key, own, False), submission.label, submission.files)]
    chosen: list[tuple[Entry, File | None]] = []
    for student_key in sorted(by_id):
        options = []
        for submission in by_id[student_key]:
            if len(submission.files) == 1 and submission.files[0].symlink:
                # a link handed in as the submission: graded as what it is, an unreadable link
                choice = Choice(submission.files[0], submission.files[0].name, "", ())
            else:
                choice = choose([(f.name, f.version, f) for f in submission.files], exercise)
            options.append((submission, choice))
        options.sort(key=lambda o: max((f.version for f in o[0].files), default=()), reverse=True)
        submission, choice = options[0]
        identity = submission.identity
        notes = []
        if len(options) > 1:
            notes.append(f"{len(options)} submissions; graded the newest, {submission.label}; not "
                         "graded: " + ", ".join(o[0].label for o in options[1:]))
        others = [Path(f.source).name for f in submission.files
                  if f is not choice.chosen and counts(f.name)]
        if others:
            notes.append(f"Also handed in, not graded: {', '.join(sorted(others))} (the grader "
                         "takes the exercise's own file, then the only notebook, then the only .py)")
        if choice.chosen is None:
            notes.append(f"Nothing was graded: {choice.problem}.")
            result.problems.append(f"{submission.label}: {choice.problem}")
            chosen.append((Entry(student_key, None, submission.label, tuple(notes), identity.name), None))
            continue
        file = choice.chosen
        chosen.append((Entry(student_key, file.path, file.source, tuple(notes), identity.name), file))
    return chosen


def _free_key(label: str, taken: dict) -> str:
    """A row's key from a submission's label (its own name, else the whole label), one no other
    row has."""
    own = Path(label).name.rstrip("/") or label
    for key in (own, label):
        if key not in taken:
            return key
    number = 2
    while f"{label} ({number})" in taken:
        number += 1
    return f"{label} ({number})"


def _extract(chosen: list[tuple[Entry, File | None]], result: Collection) -> list[Entry]:
    """Extract the chosen zip entries (only those), within MAX_EXTRACTED_BYTES in all; an entry
    that cannot be extracted is graded as an unreadable submission, with the reason."""
    entries, total, archives, done = [], 0, {}, {}
    try:
        for entry, file in chosen:
            if file is None or file.member is None:
                entries.append(entry)
                continue
            if file.path in done:  # a group's file, extracted for another member already
                problem = done[file.path]
                entries.append(entry if problem is None else Entry(
                    entry.student, None, entry.source, (*entry.notes, problem), entry.name))
                continue
            archive, info = file.member
            problem = None
            data = b""
            if total + info.file_size > MAX_EXTRACTED_BYTES:
                problem = (f"not extracted: the class's archives would extract to more than "
                           f"{MAX_EXTRACTED_BYTES / 1e6:,.0f} MB in all")
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
            done[file.path] = problem
            if problem:
                result.problems.append(f"{file.source}: {problem}")
                entries.append(Entry(entry.student, None, entry.source, (*entry.notes, problem),
                                     entry.name))
                continue
            total += len(data)
            file.path.parent.mkdir(parents=True, exist_ok=True)
            file.path.write_bytes(data)
            entries.append(entry)
    finally:
        for zf in archives.values():
            zf.close()
    return entries
