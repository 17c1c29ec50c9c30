"""Identity by structure: a student's row, grade and report are theirs alone. Each platform's name
is read where the platform writes the id, never from the part the student chose (their file's
name, their full name); a group is known by the groups file, never by a display name; and every
student's feedback has a file of its own."""

import pytest
import yaml
from conftest import RUBRIC, SOLUTIONS
from hypothesis import given
from hypothesis import strategies as st

from grader.batch import collect, grade_class
from grader.batch.collect import compile_pattern, student_id
from grader.batch.gradebook import feedback_names, safe_filename

OWN_WORK = ("import torch\n\n\ndef softmax_naive(x):\n"
            "    return torch.exp(x) / torch.exp(x).sum(dim=0)\n")  # softmax_naive's 5 points
STUB = "x = 1\n"  # nothing: 0 points
OWN_POINTS = 5

MALLORY_BB = ("Homework 3_mallory_attempt_2026-11-02-14-05-09_"
              "x_alice_attempt_2099-12-31-23-59-59_attention.py")
ALICE_BB = "Homework 3_alice_attempt_2026-11-01-10-00-00_attention.py"
CAROL_MOODLE = "Carol Wu_222_assignsubmission_file_"
EVE_MOODLE = "Eve_222_assignsubmission_file__333_assignsubmission_file_"  # her full name: Eve_222_...
DAN_MOODLE = "Dan Lee_501_assignsubmission_file_"  # Team A, with Fay (502)
TEAM_A_MOODLE = "Team A_444_assignsubmission_file_"  # a participant in no group, named "Team A"


@pytest.fixture(scope="module")
def fast_rubric(tmp_path_factory):
    data = yaml.safe_load(RUBRIC.read_text())
    data["reference"] = str(SOLUTIONS)
    data["mistakes"] = str(SOLUTIONS.parent / "mistakes.py")
    data["defaults"].update(step_timeout=3, load_timeout=10)
    path = tmp_path_factory.mktemp("rubric") / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def graded(tmp_path_factory, fast_rubric):
    """One class run of every observed defect: Blackboard, Moodle, --groups, and `alice!`."""
    root = tmp_path_factory.mktemp("identity")
    klass = root / "class"
    klass.mkdir()
    (klass / MALLORY_BB).write_text(STUB)
    (klass / ALICE_BB).write_text(OWN_WORK)
    (klass / "alice!.py").write_text(STUB)  # a bare name whose file name is alice's
    for folder, source in ((CAROL_MOODLE, OWN_WORK), (EVE_MOODLE, STUB), (DAN_MOODLE, OWN_WORK),
                           (TEAM_A_MOODLE, STUB)):
        (klass / folder).mkdir()
        (klass / folder / "attention.py").write_text(source)
    groups = root / "groups.csv"
    groups.write_text("group,id,name\nTeam A,501,Dan Lee\nTeam A,502,Fay Ono\n")
    out = root / "out"
    outcome = grade_class([klass], out=out, rubric=fast_rubric, jobs=2, groups=groups)
    rows = {row.student: row for row in outcome.rows}
    return rows, outcome.problems, out, klass


def score_of(rows, student):
    return rows[student].report.score


def test_blackboard_upload_named_after_a_classmate_keeps_its_own_row(graded):
    rows, _, _, klass = graded
    assert rows["mallory"].file == str(klass / MALLORY_BB)
    assert score_of(rows, "mallory") == 0
    assert rows["alice"].file == str(klass / ALICE_BB)  # her own, not mallory's "newer" stub
    assert score_of(rows, "alice") == OWN_POINTS
    assert not any(MALLORY_BB in note for note in rows["alice"].report.notes)


def test_moodle_full_name_ending_in_a_classmates_id_keeps_its_own_row(graded):
    rows, _, _, klass = graded
    assert rows["333"].file == str(klass / EVE_MOODLE / "attention.py")
    assert rows["222"].file == str(klass / CAROL_MOODLE / "attention.py")
    assert score_of(rows, "222") == OWN_POINTS and score_of(rows, "333") == 0


def test_participant_named_like_a_group_is_graded_alone(graded):
    rows, _, _, klass = graded
    assert rows["444"].file == str(klass / TEAM_A_MOODLE / "attention.py")
    assert score_of(rows, "444") == 0
    for member in ("501", "502"):  # the group's own submission, Dan's
        assert rows[member].file == str(klass / DAN_MOODLE / "attention.py")
        assert score_of(rows, member) == OWN_POINTS


def test_ids_that_make_one_file_name_get_a_feedback_file_each(graded, fast_rubric):
    rows, problems, out, _ = graded
    maximum = sum(step["points"] for step in yaml.safe_load(fast_rubric.read_text())["steps"])
    assert {"alice", "alice!"} <= set(rows)
    # alice is her own safe file name: her report is there, with her score
    assert f"**Score: {OWN_POINTS:g} / {maximum:g}**" in (out / "feedback" / "alice.md").read_text()
    # one report file per graded row, each with the score of a different row
    reports = sorted(out.glob("feedback/*.md"))
    assert len(reports) == len(rows)
    scores = sorted(float(p.read_text().split("**Score: ")[1].split(" /")[0]) for p in reports)
    assert scores == sorted(row.report.score for row in rows.values())
    assert len(list(out.glob("feedback/*.html"))) == len(rows)
    assert any(p.startswith("alice!:") and "feedback/alice.md" in p for p in problems)
    # the summary's roster links alice! to a file of her own
    summary = (out / "summary.md").read_text()
    line = next(line for line in summary.splitlines() if line.startswith("| alice\\!"))
    link = line.split("(feedback/")[1].split(")")[0]
    assert link != "alice.html" and (out / "feedback" / link).is_file()


def test_a_bare_file_named_like_a_classmates_id_leaves_the_classmate_their_row(tmp_path):
    klass = tmp_path / "class"
    klass.mkdir()
    (klass / "adams_101_5001_attention.py").write_text(OWN_WORK)
    (klass / "101.py").write_text(STUB)
    found = collect([klass], tmp_path / "staging")
    entries = {e.student: e for e in found.entries}
    assert entries["101"].source == str(klass / "adams_101_5001_attention.py")
    assert entries["101.py"].source == str(klass / "101.py")


def test_a_moodle_file_with_a_classmates_mark_in_its_name_is_nobodys_id(tmp_path):
    """Downloaded without folders, the student's full name is before Moodle's mark and their file
    name after it: a name with two marks names no id; it is reported and keyed by its full name."""
    klass = tmp_path / "class"
    klass.mkdir()
    crafted = "Mallory_111_assignsubmission_file_x_222_assignsubmission_file_attention.py"
    (klass / crafted).write_text(STUB)
    (klass / "Bob Ray_222_assignsubmission_file_attention.py").write_text(OWN_WORK)
    found = collect([klass], tmp_path / "staging")
    entries = {e.student: e for e in found.entries}
    assert sorted(entries) == ["222", crafted]
    assert entries["222"].source.endswith("Bob Ray_222_assignsubmission_file_attention.py")
    assert any(p.startswith(crafted) and "more than one id" in p for p in found.problems)


def test_a_file_named_with_two_ids_of_the_id_pattern_names_no_id():
    identity = student_id("hw3-s1_copy_of_hw3-s2.py", compile_pattern(r"hw3-(?P<id>s\d+)"))
    assert identity.id == "hw3-s1_copy_of_hw3-s2.py" and "s1, s2" in identity.problem


# ------------------------------------------------------------------------------ properties

ROSTER = {"111": "Mallory", "222": "Alice", "333": "Bob"}  # the attacker is 111
FRAGMENTS = st.sampled_from([
    "_", "__", "-", " ", ".py", ".ipynb", "/", "\\", "\x1b[2K", "\u202e", "é", "名前", "١٢٣",
    "222", "_222_", "333", "_LATE_", "late_", "attempt", "_attempt_", "2099-12-31-23-59-59",
    "_assignsubmission_file_", "_assignsubmission_onlinetext_", "Participant",
    "alice_222_9999_", "bob_333_1_attention.py", "Homework 3_alice_attempt_2099-12-31-23-59-59_",
    "Homework 3_222_attempt_2099-12-31-23-59-59", "Alice_222_assignsubmission_file_",
    "Bob_333_assignsubmission_file", "_222_assignsubmission_file_attention.py",
])
CHOSEN = st.lists(st.one_of(FRAGMENTS, st.text(max_size=4)), max_size=8).map("".join)


def attacker_names(chosen: str) -> list[tuple[str, bool]]:
    """Mallory's names on each platform, her chosen text where the platform lets her choose it
    (file name or full name), with whether the name is a folder's."""
    return [
        (f"mallory_111_5001_{chosen}", False),  # Canvas: her file's name
        (f"mallory_LATE_111_5001_{chosen}", False),
        (f"Homework 3_mallory_attempt_2026-11-02-14-05-09_{chosen}", False),  # Blackboard
        (f"{chosen}_111_assignsubmission_file_", True),  # Moodle folder: her full name
        (f"Mallory{chosen}_111_assignsubmission_file_", True),
        (f"Mallory_111_assignsubmission_file_{chosen}", False),  # Moodle flat: her file's name
        (f"{chosen}_111_assignsubmission_file_{chosen}", False),  # ... and her full name
    ]


@given(CHOSEN)
def test_a_name_a_student_chose_never_yields_a_classmates_id(chosen):
    for name, folder in attacker_names(chosen):
        identity = student_id(name, None, folder)
        if identity.platform:
            assert identity.id not in set(ROSTER) - {"111"}, (name, identity)
        else:  # no id: a row of its own, keyed by the whole name, and said
            assert identity.id not in ROSTER, (name, identity)


@given(st.lists(st.one_of(st.text(max_size=12), FRAGMENTS, st.sampled_from(
    ["alice", "alice!", "Alice", "alice_", "ALICE", ".alice.", "", "student", "con", "a" * 300])),
    max_size=12, unique=True), st.randoms())
def test_no_two_students_share_a_feedback_file(ids, random):
    names = feedback_names(ids, [])
    assert sorted(names) == sorted(ids)
    folded = [name.casefold() for name in names.values()]
    assert len(set(folded)) == len(folded)  # distinct, on a disk blind to case too
    for name in names.values():
        assert name and safe_filename(name) == name and len(name) < 200
    shuffled = list(ids)
    random.shuffle(shuffled)
    assert feedback_names(shuffled, []) == names  # the same ids, the same files
    for student in ids:  # an id that is its own file name, and alone in it, keeps it
        if safe_filename(student) == student and [n.casefold() for n in map(safe_filename, ids)
                                                  ].count(student.casefold()) == 1:
            assert names[student] == student


def test_a_feedback_collision_is_reported_and_each_id_keeps_a_file_of_its_own():
    problems = []
    names = feedback_names(["alice", "alice!", "Alice"], problems)
    assert names["Alice"] == "Alice"  # its own name; the other two, a suffix from their hash
    assert names["alice"].startswith("alice-") and names["alice!"].startswith("alice-")
    assert names["alice"] != names["alice!"]
    assert len(problems) == 2 and any(p.startswith("alice!:") for p in problems)
