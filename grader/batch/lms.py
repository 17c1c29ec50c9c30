"""Import files for learning platforms, made from a graded class and the platform's own roster.

    attention-grader export OUT --lms canvas --roster gradebook-export.csv
    attention-grader export OUT --lms moodle --roster grading-worksheet.csv
    attention-grader export OUT --lms blackboard --roster grade-center-download.csv

Each platform keys students its own way, and so do these files:

    canvas      the Gradebook export (Grades > Export): Student, ID, SIS User ID, SIS Login ID,
                Section, then the assignments. Written: those five columns, one assignment column
                (the roster's own `Name (id)` column when its name matches `--assignment`, which
                updates it; otherwise a new one, which Canvas creates), a `Points Possible` row,
                one row per roster student, matched on ID (the Canvas user id in the file names).
    moodle      the offline grading worksheet (Assignment > View all submissions > Download grading
                worksheet): the same file back, with Grade and Feedback comments filled in,
                matched on Identifier (`Participant 1234567`, the participant id in the folder
                names); a grade is scaled to the worksheet's Maximum Grade when it differs.
    blackboard  the Grade Center download (Work Offline > Download, comma or tab delimited):
                Last Name, First Name, Username, Student ID and one grade column, matched on
                Username (the user name in `Assignment_user_attempt_..._file` names); the roster's
                column whose name matches `--assignment` is updated (`Name [Total Pts: ...] |id`),
                else a new column is created.

A roster student with no submission, or one the grader failed on (`not graded`), is listed and
gets no grade: Canvas's file leaves them out (its importer counts a blank cell over a score as a
change, so a grade given by hand would be at risk); Moodle's worksheet and Blackboard's upload keep
their row with an empty cell, which those importers leave as it is. A submission with no roster
entry is listed too. Nothing is guessed: students are matched only on the platform's id.

The roster's name columns (Student, Full name, Last Name, First Name), which students may set in
some platforms, are written back as a spreadsheet's text (`grader.safe_text.csv_cell`: a name that
begins like a formula gets a leading `'`); no platform matches on them. Every other value is written
as the roster has it. What `export` prints of the mismatches goes through `grader.cli.say`.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..safe_text import csv_cell
from .gradebook import Row

PLATFORMS = ("canvas", "moodle", "blackboard")
CANVAS_FIXED = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
MOODLE_REQUIRED = ("Identifier", "Grade")
BLACKBOARD_FIXED = ("Last Name", "First Name", "Username", "Student ID")
# Columns of people's names, which a student may set themselves: written as text, never a formula
# (no platform matches on them; the ids, matched on, are left exactly as the roster has them).
NAME_COLUMNS = ("Student", "Full name", "Last Name", "First Name")


@dataclass
class Export:
    text: str  # the file to upload
    filename: str
    no_submission: list[str] = field(default_factory=list)  # roster students without a grade
    no_roster: list[str] = field(default_factory=list)  # graded students the roster lacks
    notes: list[str] = field(default_factory=list)


def export(platform: str, rows: list[Row], roster: Path, assignment: str, maximum: float) -> Export:
    if platform not in PLATFORMS:
        raise UsageError(f"--lms {platform!r}: expected one of {', '.join(PLATFORMS)}")
    header, records = read_roster(roster)
    return {"canvas": _canvas, "moodle": _moodle, "blackboard": _blackboard}[platform](
        rows, roster, header, records, assignment, maximum)


def read_roster(path: Path) -> tuple[list[str], list[list[str]]]:
    """The roster's header and rows, whatever its encoding (UTF-8, with or without a BOM, or the
    UTF-16 of Blackboard's tab-delimited download) and delimiter (comma or tab)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"--roster {path}: cannot be read ({exc.strerror})") from None
    for encoding in ("utf-16",) if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise UsageError(f"--roster {path}: not a text file (UTF-8, UTF-16 or Windows-1252)")
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    table = [row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if any(c.strip() for c in row)]
    if not table:
        raise UsageError(f"--roster {path}: empty")
    return [c.strip() for c in table[0]], table[1:]


def _need(header: list[str], columns, roster: Path, what: str) -> dict[str, int]:
    missing = [c for c in columns if c not in header]
    if missing:
        raise UsageError(f"--roster {roster}: not {what}: no column {', '.join(map(repr, missing))} "
                         f"(its header is: {', '.join(header[:8])}{' ...' if len(header) > 8 else ''})")
    return {c: header.index(c) for c in columns}


def _grade(row: Row | None) -> str | None:
    """The points to upload, or None (no submission, or the grader failed: leave it empty)."""
    if row is None or row.report is None:
        return None
    return f"{row.report.score:g}"


def _match(rows: list[Row], keys: list[str], result: Export, label) -> dict[str, Row]:
    by_id = {row.student: row for row in rows}
    for key in keys:
        row = by_id.get(key)
        if row is None or row.report is None:
            why = "no submission" if row is None else row.status
            result.no_submission.append(f"{label(key)} ({why})")
    known = set(keys)
    result.no_roster += [f"{row.student} ({row.name or row.student})" for row in rows
                         if row.student not in known]
    return by_id


def _column(header: list[str], assignment: str, pattern: str) -> str | None:
    """The roster's own column for the assignment: `Name (123)` (Canvas), `Name [...] |123` (Blackboard)."""
    for name in header:
        match = re.match(pattern, name)
        if match and match["name"].strip().lower() == assignment.strip().lower():
            return name
    return None


def _canvas(rows, roster, header, records, assignment, maximum) -> Export:
    at = _need(header, CANVAS_FIXED, roster, "a Canvas gradebook export")
    result = Export("", "canvas-import.csv")
    students = [r for r in records if len(r) > at["ID"] and r[at["ID"]].strip().isdigit()]
    column = _column(header, assignment, r"^(?P<name>.+?)\s*\((?P<id>\d+)\)$") or assignment
    if column == assignment:
        result.notes.append(f"a new assignment column `{assignment}` ({maximum:g} points): Canvas "
                            "creates it on import")
    by_id = _match(rows, [r[at["ID"]].strip() for r in students], result,
                   lambda key: next(r[at["Student"]] for r in students if r[at["ID"]].strip() == key))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([*CANVAS_FIXED, column])
    writer.writerow(["    Points Possible", "", "", "", "", f"{maximum:g}"])
    for record in students:
        grade = _grade(by_id.get(record[at["ID"]].strip()))
        if grade is None:  # Canvas's importer takes a blank cell as a change: a grade given by hand
            continue  # would be cleared. Left out of the file, listed in no_submission instead.
        writer.writerow([*(_value(c, record[at[c]] if at[c] < len(record) else "") for c in CANVAS_FIXED),
                         grade])
    result.text = buffer.getvalue()
    return result


def _moodle(rows, roster, header, records, assignment, maximum) -> Export:
    at = _need(header, MOODLE_REQUIRED, roster, "a Moodle grading worksheet")
    result = Export("", "moodle-grading-worksheet.csv")

    def participant(record) -> str:
        return re.sub(r"\D", "", record[at["Identifier"]])

    by_id = _match(rows, [participant(r) for r in records], result,
                   lambda key: f"Participant {key}")
    scale_at = header.index("Maximum Grade") if "Maximum Grade" in header else None
    feedback_at = header.index("Feedback comments") if "Feedback comments" in header else None
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    scaled = set()
    for record in records:
        record = record + [""] * (len(header) - len(record))
        row = by_id.get(participant(record))
        grade = _grade(row)
        if grade is not None:
            points = row.report.score
            worksheet_max = _number(record[scale_at]) if scale_at is not None else None
            if worksheet_max and abs(worksheet_max - maximum) > 1e-9:
                points = points * worksheet_max / maximum
                scaled.add(worksheet_max)
            record[at["Grade"]] = f"{points:.2f}"
            if feedback_at is not None:
                counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in row.report.counts().items() if n)
                record[feedback_at] = (f"attention-grader: {row.report.score:g} / {maximum:g} points "
                                       f"({counts}); your report has the details.")
        writer.writerow([*(_value(c, v) for c, v in zip(header, record)), *record[len(header):]])
    for worksheet_max in sorted(scaled):
        result.notes.append(f"the worksheet's Maximum Grade is {worksheet_max:g} and the rubric's "
                            f"{maximum:g}: grades were scaled to {worksheet_max:g}")
    result.text = buffer.getvalue()
    return result


def _blackboard(rows, roster, header, records, assignment, maximum) -> Export:
    at = _need(header, ("Username",), roster, "a Blackboard Grade Center download")
    result = Export("", "blackboard-upload.csv")
    column = _column(header, assignment, r"^(?P<name>.+?)\s*\[.*\]\s*\|\s*\d+$")
    if column is None:
        column = assignment
        result.notes.append(f"a new column `{assignment}`: Blackboard creates it as a text column "
                            f"with 0 points possible; edit it to {maximum:g} points after the upload")
    by_id = _match(rows, [r[at["Username"]].strip() for r in records if len(r) > at["Username"]],
                   result, lambda key: key)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_ALL)  # every value quoted
    fixed = [c for c in BLACKBOARD_FIXED if c in header]
    writer.writerow([*fixed, column])
    for record in records:
        if len(record) <= at["Username"] or not record[at["Username"]].strip():
            continue
        grade = _grade(by_id.get(record[at["Username"]].strip()))
        writer.writerow([*(_value(c, record[header.index(c)] if header.index(c) < len(record) else "")
                           for c in fixed), "" if grade is None else grade])
    result.text = buffer.getvalue()
    return result


def _value(column: str, value: str) -> str:
    """A roster value as it is written back: a name as a spreadsheet's text, anything else as it is."""
    return csv_cell(value) if column in NAME_COLUMNS else value


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "."))
    except ValueError:
        return None
