"""Import files for Canvas, Moodle and Blackboard, checked against each platform's documented
import rules, from rosters shaped like the files those platforms export."""

import csv
import io
import shutil
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, SOLUTIONS

from grader.batch import collect
from grader.batch.gradebook import Row
from grader.batch.lms import export
from grader.errors import UsageError
from grader.models import Report


def row(student: str, score: float | None, name: str = "", status: str = "graded") -> Row:
    report = None if score is None else Report(f"{student}.ipynb", score, 98.0, ())
    return Row(student, f"{student}.ipynb", report, status if score is not None else
               "not graded: the grader failed", name or student)


def table(text: str, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))


CANVAS_ROSTER = (
    "Student,ID,SIS User ID,SIS Login ID,Section,Homework 1 (1001),Attention (2002),"
    "Current Score,Final Score\n"
    "    Points Possible,,,,,10,98,(read only),(read only)\n"
    '"Smith, John",201,S201,jsmith1,Section A,9,,90,90\n'
    '"Smith, John",202,S202,jsmith2,Section A,8,,80,80\n'
    '"Lee, Ann",203,S203,alee,Section B,10,,100,100\n'
    "\"Student, Test\",999,,,Section A,,,,\n")


def test_canvas_import_has_the_required_columns_and_one_assignment(tmp_path):
    roster = tmp_path / "export.csv"
    roster.write_text(CANVAS_ROSTER)
    rows = [row("201", 90, "smithjohn"), row("202", 98, "smithjohn"), row("203", None, "leeann"),
            row("204", 50, "latejoiner")]
    made = export("canvas", rows, roster, "Attention", 98)
    lines = table(made.text)
    # Canvas: Student, ID, SIS User ID, SIS Login ID, Section, then only assignment columns
    # ("Name (id)" updates that assignment); every other column would become a new assignment
    assert lines[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Attention (2002)"]
    assert lines[1][0].strip() == "Points Possible" and lines[1][5] == "98"
    by_id = {line[1]: line for line in lines[2:]}
    assert by_id["201"] == ["Smith, John", "201", "S201", "jsmith1", "Section A", "90"]
    assert by_id["202"][5] == "98"  # the other John Smith, matched by his own id
    # no grade, no row: Canvas's importer would take a blank cell over a hand-given score as a change
    assert "203" not in by_id and "999" not in by_id  # the grader failed on one, the other handed nothing
    assert sorted(by_id) == ["201", "202"]
    assert any("Student, Test" in s for s in made.no_submission)
    assert any("Lee, Ann" in s and "not graded" in s for s in made.no_submission)
    assert made.no_roster == ["204 (latejoiner)"]
    assert made.text.endswith("\r\n")

    new = export("canvas", rows, roster, "Chapter 3 autograder", 98)
    assert table(new.text)[0][-1] == "Chapter 3 autograder"
    assert "Canvas creates it" in new.notes[0]


MOODLE_ROSTER = (
    "Identifier,Full name,Email address,Status,Grade,Maximum Grade,Grade can be changed,"
    "Last modified (submission),Last modified (grade),Feedback comments\n"
    'Participant 1111111,,,Submitted for grading,,100.00,Yes,"Monday, 2 November 2026, 10:00 AM",-,\n'
    'Participant 2222222,,,Submitted for grading,,100.00,Yes,"Monday, 2 November 2026, 11:00 AM",-,\n'
    "Participant 3333333,,,No submission,,100.00,Yes,-,-,\n")


def test_moodle_worksheet_comes_back_with_grades_keyed_by_participant(tmp_path):
    roster = tmp_path / "worksheet.csv"
    roster.write_text(MOODLE_ROSTER)
    rows = [row("1111111", 98, "Participant 1111111"), row("2222222", 49, "Participant 2222222")]
    made = export("moodle", rows, roster, "ignored", 98)
    lines = table(made.text)
    assert lines[0] == table(MOODLE_ROSTER)[0]  # the worksheet's own header, unchanged
    by_id = {line[0]: line for line in lines[1:]}
    assert by_id["Participant 1111111"][4] == "100.00"  # scaled to the worksheet's maximum
    assert by_id["Participant 2222222"][4] == "50.00"
    assert by_id["Participant 3333333"][4] == ""
    assert by_id["Participant 1111111"][7] == "Monday, 2 November 2026, 10:00 AM"  # kept as it was
    assert "98 / 98 points" in by_id["Participant 1111111"][9]
    assert "scaled to 100" in made.notes[0]
    assert made.no_submission == ["Participant 3333333 (no submission)"]


def test_blackboard_upload_keys_on_username_and_quotes_every_value(tmp_path):
    header = ['"Last Name"', '"First Name"', '"Username"', '"Student ID"', '"Last Access"',
              '"Availability"', '"Attention [Total Pts: 98 Score] |445566"']
    lines = ["\t".join(header),
             "\t".join(['"Smith"', '"John"', '"jsmith"', '"1001"', '"2026-11-01"', '"Yes"', '""']),
             "\t".join(['"Smith"', '"John"', '"jsmith2"', '"1002"', '"2026-11-01"', '"Yes"', '""'])]
    roster = tmp_path / "gc_download.xls"
    roster.write_bytes(("\n".join(lines) + "\n").encode("utf-16"))  # Blackboard's own download
    made = export("blackboard", [row("jsmith", 70), row("jsmith2", 88)], roster, "attention", 98)
    assert made.text.splitlines()[0] == ('"Last Name","First Name","Username","Student ID",'
                                         '"Attention [Total Pts: 98 Score] |445566"')
    rows = table(made.text)
    assert rows[1] == ["Smith", "John", "jsmith", "1001", "70"]
    assert rows[2][2:] == ["jsmith2", "1002", "88"]
    assert all(line.startswith('"') for line in made.text.splitlines())


def test_a_roster_of_another_platform_is_refused_with_what_is_missing(tmp_path):
    roster = tmp_path / "export.csv"
    roster.write_text(MOODLE_ROSTER)
    with pytest.raises(UsageError, match="not a Canvas gradebook export: no column 'Student', 'ID'"):
        export("canvas", [], roster, "a", 98)


def test_blackboard_names_give_the_username(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copy(SOLUTIONS, folder / "Homework 3_jsmith_attempt_2026-11-02-14-05-09_attention.py")
    shutil.copy(SOLUTIONS, folder / "Homework 3_jsmith_attempt_2026-11-03-09-00-00_attention.py")
    (folder / "Homework 3_jsmith_attempt_2026-11-03-09-00-00.txt").write_text("Name: John Smith")
    found = collect([folder], tmp_path / "staging")
    (entry,) = found.entries
    assert entry.student == "jsmith" and entry.source.endswith("2026-11-03-09-00-00_attention.py")


def test_export_from_a_graded_class(tmp_path):
    klass = tmp_path / "class"
    klass.mkdir()
    shutil.copy(SOLUTIONS, klass / "smithjohn_201_7001_attention.py")
    ran = subprocess.run([sys.executable, "-m", "grader", "grade", str(klass), "--out",
                          str(tmp_path / "out"), "--jobs", "1"], capture_output=True, text=True,
                         timeout=300, cwd=REPO_ROOT)
    assert ran.returncode == 0, ran.stderr
    roster = tmp_path / "export.csv"
    roster.write_text(CANVAS_ROSTER)
    ran = subprocess.run([sys.executable, "-m", "grader", "export", str(tmp_path / "out"), "--lms",
                          "canvas", "--roster", str(roster), "--assignment", "Attention"],
                         capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert ran.returncode == 0, ran.stderr
    lines = table((tmp_path / "out" / "canvas-import.csv").read_text())
    assert {line[1]: line[5] for line in lines[2:]}["201"] == "98"
    assert "3 in the roster, no grade written" in ran.stderr
