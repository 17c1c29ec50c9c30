"""Batch grading: a whole class, from files, folders and a platform's zip, into a gradebook that
survives interruptions, shards and merges back, and comes out the same on a Dask cluster."""

import csv
import io
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from conftest import EXERCISES, REPO_ROOT, RUBRIC, SOLUTIONS

from grader.batch import collect, grade_class, merge
from grader.rubric import load_rubric

collect_module = sys.modules["grader.batch.collect"]  # the module (its limits), not the function

EXAMPLE = REPO_ROOT / "examples" / "student_notebook.ipynb"


def make_class(folder: Path) -> Path:
    """A small class: Canvas-named files (one student twice), a Moodle folder, a stub, a hang."""
    folder.mkdir()
    shutil.copy(SOLUTIONS, folder / "adams_101_5001_attention.py")
    shutil.copy(EXERCISES / "attention.ipynb", folder / "brown_102_5002_attention.ipynb")
    shutil.copy(EXAMPLE, folder / "brown_102_5010_attention-1.ipynb")  # resubmitted: newest counts
    moodle = folder / "Chen Li_103_assignsubmission_file_"
    moodle.mkdir()
    shutil.copy(EXAMPLE, moodle / "attention.ipynb")
    hang = SOLUTIONS.read_text() + "\n\ndef softmax_naive(x):\n    while True:\n        pass\n"
    (folder / "davis_104_5004_attention.py").write_text(hang)
    return folder


@pytest.fixture(scope="module")
def fast_rubric(tmp_path_factory):
    import yaml

    data = yaml.safe_load(RUBRIC.read_text())
    data["reference"] = str(SOLUTIONS)
    data["mistakes"] = str(SOLUTIONS.parent / "mistakes.py")
    data["defaults"].update(step_timeout=3, load_timeout=10)
    path = tmp_path_factory.mktemp("rubric") / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_a_class_is_graded_into_a_complete_gradebook(tmp_path, fast_rubric):
    outcome = grade_class([make_class(tmp_path / "class")], out=tmp_path / "out", rubric=fast_rubric,
                          jobs=2)
    rows = {row["name"]: row for row in read_csv(tmp_path / "out" / "grades.csv")}
    assert sorted(rows) == ["Chen Li", "adams", "brown", "davis"]
    # each keyed by the platform's own id: Canvas's user id, Moodle's participant id
    assert {name: row["id"] for name, row in rows.items()} == {
        "adams": "101", "brown": "102", "Chen Li": "103", "davis": "104"}
    assert rows["adams"]["total"] == rows["adams"]["max"] == "98"
    assert rows["brown"]["total"] == "90" and rows["brown"]["file"].endswith("5010_attention-1.ipynb")
    assert rows["Chen Li"]["total"] == "90"
    assert rows["davis"]["softmax_naive"] == "0" and rows["davis"]["total"] == "93"  # the hang cost 5
    assert {row["status"] for row in rows.values()} == {"graded"}
    assert outcome.graded == 4
    brown = next(r for r in outcome.rows if r.name == "brown")
    assert brown.report.notes[0].startswith("Also handed in, not graded: brown_102_5002_attention.ipynb")
    # per-student feedback and the class summary
    out = tmp_path / "out"
    assert (out / "feedback" / "102.md").read_text().count("softmax_wrong_dim") >= 1
    assert (out / "feedback" / "103.html").exists()
    summary = (out / "summary.md").read_text()
    assert "| students | 4 |" in summary and "![scores](plots/scores.svg)" in summary
    assert "| `attention_weights` | `softmax_wrong_dim` | 2 |" in summary
    assert "| 103 | Chen Li | 90 / 98 | graded | [report](feedback/103.html) |" in summary  # roster
    html = (out / "summary.html").read_text()
    assert html.count("<svg ") == 2 and 'aria-label="Score distribution"' in html
    assert len((out / "results.jsonl").read_text().splitlines()) == 4


def test_a_zip_export_is_never_extracted_blindly(tmp_path):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("adams_101_5001_attention.py", SOLUTIONS.read_text())
        zf.writestr("../escape_102_5002_attention.py", "print('out')")
        zf.writestr("/etc/absolute_103_5003_attention.py", "print('abs')")
        zf.writestr("adams_101_5001_attention.py", "duplicate")
        link = zipfile.ZipInfo("link_104_5004_attention.py")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("notes.txt", "not a submission")
    staging = tmp_path / "staging"
    found = collect([archive], staging)
    assert [(e.student, e.name) for e in found.entries] == [("101", "adams")]
    problems = "\n".join(found.problems)
    assert "escapes the archive's folder" in problems
    assert "an absolute path" in problems
    assert "a second entry with this name" in problems
    assert "a symbolic link" in problems
    assert sorted(p.name for p in staging.iterdir()) == ["00000_adams_101_5001_attention.py"]
    assert not (tmp_path / "escape_102_5002_attention.py").exists()


def test_a_zip_extracts_only_what_is_graded_within_a_total_cap(tmp_path, monkeypatch):
    """Only each student's newest entry is extracted (a zip bomb of old versions costs nothing),
    and past the class's total the rest are refused, each with the reason, never dropped."""
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for version in range(5001, 5041):  # forty resubmissions, 1 MB each once extracted
            zf.writestr(f"adams_101_{version}_attention.py", "x = 1\n" + "#" * 1_000_000)
        zf.writestr("brown_102_6001_attention.py", SOLUTIONS.read_text())
        zf.writestr("clark_103_7001_attention.py", "y = 2\n" + "#" * 1_500_000)
    assert archive.stat().st_size < 200_000
    monkeypatch.setattr(collect_module, "MAX_EXTRACTED_BYTES", 2_000_000)
    staging = tmp_path / "staging"
    found = collect([archive], staging)
    assert [e.name for e in found.entries] == ["adams", "brown", "clark"]
    extracted = sorted(p.name for p in staging.iterdir())
    assert extracted == ["00039_adams_101_5040_attention.py", "00040_brown_102_6001_attention.py"]
    clark = found.entries[2]
    assert clark.path is None
    assert "would extract to more than" in clark.notes[-1]
    assert any(p.startswith("export.zip:clark_103_7001_attention.py") for p in found.problems)

    # graded, the refused one is a row with its reason, not a gap
    outcome = grade_class([archive], out=tmp_path / "out", rubric=load_rubric(RUBRIC), jobs=1)
    rows = {row.name: row for row in outcome.rows}
    assert set(rows) == {"adams", "brown", "clark"}
    assert rows["brown"].report.score == rows["brown"].report.max_score
    assert rows["clark"].status.startswith("unreadable: not extracted: the class's archives would "
                                           "extract to more than 2 MB in all")
    assert rows["clark"].report.score == 0
    assert any("would extract to more than" in note for note in rows["clark"].report.notes)


def test_id_pattern_for_other_platforms(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("hw3-s1234.ipynb", "hw3-s5678.py"):
        shutil.copy(EXAMPLE if name.endswith("ipynb") else SOLUTIONS, folder / name)
    found = collect([folder], tmp_path / "staging", id_pattern=r"hw3-(?P<id>s\d+)")
    assert [e.student for e in found.entries] == ["s1234", "s5678"]


def grade_command(*args):
    return [sys.executable, "-m", "grader", "grade", *map(str, args)]


def test_an_interrupted_batch_resumes_and_gives_the_same_gradebook(tmp_path, fast_rubric):
    klass = make_class(tmp_path / "class")
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    done = subprocess.run(grade_command(klass, "--out", full, "--rubric", fast_rubric, "--jobs", "1"),
                          capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    # the same command, killed once its first result is written
    process = subprocess.Popen(grade_command(klass, "--out", resumed, "--rubric", fast_rubric,
                                             "--jobs", "1"), cwd=REPO_ROOT, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((resumed / "results").glob("*.json")):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    partial = list((resumed / "results").glob("*.json"))
    assert 1 <= len(partial) < 4, "the kill should land part-way"
    assert not (resumed / "grades.csv").exists()
    again = subprocess.run(grade_command(klass, "--out", resumed, "--rubric", fast_rubric, "--jobs", "1"),
                           capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert again.returncode == 0, again.stderr
    assert f"({4 - len(partial)} in this run)" in again.stdout
    assert (resumed / "grades.csv").read_text() == (full / "grades.csv").read_text()
    # a third run grades nothing; --regrade grades one student again
    third = subprocess.run(grade_command(klass, "--out", resumed, "--rubric", fast_rubric, "--regrade",
                                         "101"), capture_output=True, text=True, timeout=300,
                           cwd=REPO_ROOT)
    assert "(1 in this run)" in third.stdout
    assert (resumed / "grades.csv").read_text() == (full / "grades.csv").read_text()


def test_shards_merge_into_the_same_gradebook(tmp_path, fast_rubric):
    klass = make_class(tmp_path / "class")
    grade_class([klass], out=tmp_path / "full", rubric=fast_rubric, jobs=2)
    for k in (1, 2):
        grade_class([klass], out=tmp_path / f"shard{k}", rubric=fast_rubric, jobs=2, shard=(k, 2))
    sizes = [len(read_csv(tmp_path / f"shard{k}" / "grades.csv")) for k in (1, 2)]
    assert sizes == [2, 2]
    merge([tmp_path / "shard1", tmp_path / "shard2"], tmp_path / "merged", load_rubric(fast_rubric))
    assert (tmp_path / "merged" / "grades.csv").read_text() == (tmp_path / "full" / "grades.csv").read_text()


def test_the_dask_executor_gives_the_same_gradebook(tmp_path, fast_rubric):
    distributed = pytest.importorskip("distributed")
    klass = make_class(tmp_path / "class")
    grade_class([klass], out=tmp_path / "local", rubric=fast_rubric, jobs=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        grade_class([klass], out=tmp_path / "dask", rubric=fast_rubric, executor="dask",
                    scheduler=cluster.scheduler_address)
    assert (tmp_path / "dask" / "grades.csv").read_text() == (tmp_path / "local" / "grades.csv").read_text()


def test_a_symbolic_link_is_never_followed(tmp_path, fast_rubric):
    """A link to the reference (a file, or a student folder) is graded as what it is: an
    unreadable submission, with the reason, in its own row."""
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copy(EXERCISES / "attention.py", folder / "evans_105_5005_attention.py")
    (folder / "fox_106_5006_attention.py").symlink_to(SOLUTIONS)
    (folder / "Gray Kim_107_assignsubmission_file_").symlink_to(SOLUTIONS.parent,
                                                               target_is_directory=True)
    (folder / "hale_108_5008_attention.py").symlink_to(tmp_path / "gone.py")  # dangling
    grade_class([folder], out=tmp_path / "out", rubric=fast_rubric, jobs=2)
    rows = {row["name"]: row for row in read_csv(tmp_path / "out" / "grades.csv")}
    assert sorted(rows) == ["Gray Kim", "evans", "fox", "hale"]
    for student in ("fox", "Gray Kim", "hale"):
        assert rows[student]["total"] == "0", rows[student]
        assert rows[student]["status"].startswith("unreadable: "), rows[student]
        assert "symbolic link" in rows[student]["status"], rows[student]
    feedback = (tmp_path / "out" / "feedback" / "106.md").read_text()
    assert "is a symbolic link" in feedback
    assert "def attention_scores" not in feedback  # the linked file is never quoted back


def test_a_grader_failure_on_one_student_is_that_students_row(tmp_path, fast_rubric, monkeypatch):
    """Whatever goes wrong while grading one submission, the class run ends with every row."""
    from grader.batch import run

    real = run.grade_entry

    def failing_for_adams(entry, *args):
        if entry.name == "adams":
            raise ValueError("something no one foresaw")
        return real(entry, *args)

    monkeypatch.setattr(run, "grade_entry", failing_for_adams)
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copy(SOLUTIONS, folder / "adams_101_5001_attention.py")
    shutil.copy(SOLUTIONS, folder / "baker_102_5002_attention.py")
    grade_class([folder], out=tmp_path / "out", rubric=fast_rubric, jobs=2)
    rows = {row["name"]: row for row in read_csv(tmp_path / "out" / "grades.csv")}
    assert rows["baker"]["total"] == "98" and rows["baker"]["status"] == "graded"
    assert "something no one foresaw" in rows["adams"]["status"]


def test_students_are_keyed_by_the_platforms_own_id(tmp_path):
    """Two Canvas students with one name, a blind-marked Moodle class, _LATE_: one row each."""
    canvas = tmp_path / "canvas"
    canvas.mkdir()
    for name in ("smithjohn_201_9001_attention.ipynb", "smithjohn_202_9002_attention.ipynb",
                 "smithjohn_LATE_202_9010_attention-1.ipynb", "jonesann_203_9003_attention.py"):
        shutil.copy(EXAMPLE if name.endswith("ipynb") else SOLUTIONS, canvas / name)
    moodle = tmp_path / "moodle"
    for participant in (1111111, 2222222, 3333333):
        folder = moodle / f"Participant_{participant}_assignsubmission_file_"
        folder.mkdir(parents=True)
        shutil.copy(EXAMPLE, folder / "attention.ipynb")
    found = collect([canvas, moodle], tmp_path / "staging")
    by_id = {e.student: e for e in found.entries}
    assert sorted(by_id) == ["1111111", "201", "202", "203", "2222222", "3333333"]
    assert by_id["201"].name == by_id["202"].name == "smithjohn"
    assert by_id["202"].source.endswith("smithjohn_LATE_202_9010_attention-1.ipynb")  # the newest
    assert by_id["2222222"].name == "Participant 2222222"
    # nobody's notes name another student's files
    for entry in found.entries:
        theirs = [p.name for p in canvas.iterdir() if f"_{entry.student}_" not in p.name]
        assert not any(name in note for name in theirs for note in entry.notes), entry
    assert "smithjohn_202_9002_attention.ipynb" in by_id["202"].notes[0]  # their own older file


def test_one_rule_for_which_file_is_graded(tmp_path):
    """The exercise's own file first, then the only notebook, then the only .py; never the newest
    file inside one submission; what was not graded is named."""
    klass = tmp_path / "class"
    ann = klass / "ann"  # a folder per student: attention.ipynb, and helper.py saved after it
    ann.mkdir(parents=True)
    shutil.copy(EXAMPLE, ann / "attention.ipynb")
    (ann / "helper.py").write_text("x = 1\n")
    os.utime(ann / "helper.py", (time.time() + 60, time.time() + 60))
    shutil.copy(SOLUTIONS, klass / "lee_301_7001_attention.py")  # a Canvas draft .py ...
    shutil.copy(EXAMPLE, klass / "lee_301_7002_attention.ipynb")  # ... and the notebook beside it
    ben = klass / "ben"  # no file named for the exercise: the only notebook
    ben.mkdir()
    shutil.copy(EXAMPLE, ben / "my_work.ipynb")
    (ben / "scratch.py").write_text("")
    cat = klass / "cat"  # two notebooks, neither named for the exercise: nothing is guessed
    cat.mkdir()
    shutil.copy(EXAMPLE, cat / "a.ipynb")
    shutil.copy(EXAMPLE, cat / "b.ipynb")
    found = collect([klass], tmp_path / "staging")
    chosen = {e.name: e for e in found.entries}
    assert chosen["ann"].path.name == "attention.ipynb"
    assert "helper.py" in chosen["ann"].notes[0]
    assert chosen["lee"].source.endswith("lee_301_7002_attention.ipynb")
    assert "lee_301_7001_attention.py" in chosen["lee"].notes[0]
    assert chosen["ben"].path.name == "my_work.ipynb"
    assert chosen["cat"].path is None
    assert "several .ipynb files (a.ipynb, b.ipynb)" in chosen["cat"].notes[-1]


def test_files_that_only_share_a_name_are_never_merged(tmp_path):
    klass = tmp_path / "class"
    klass.mkdir()
    shutil.copy(SOLUTIONS, klass / "alice.py")
    shutil.copy(EXAMPLE, klass / "alice.ipynb")
    found = collect([klass], tmp_path / "staging")
    assert sorted(e.student for e in found.entries) == ["alice.ipynb", "alice.py"]
    assert any("would all be student `alice`" in p for p in found.problems)


def _grade(*args, timeout=300):
    return subprocess.run(grade_command(*args), capture_output=True, text=True, timeout=timeout,
                          cwd=REPO_ROOT)


def test_nothing_to_grade_and_bad_options_fail_loudly(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    fake = tmp_path / "export.zip"
    fake.write_bytes(b"not a zip at all")
    for inputs, phrase in (([tmp_path / "missing"], "no such file or folder"),
                           ([empty], "nothing to grade"), ([fake], "not a readable zip archive")):
        ran = _grade(*inputs, "--out", tmp_path / "out")
        assert ran.returncode == 2, ran.stdout + ran.stderr
        assert "nothing to grade" in ran.stderr and phrase in ran.stderr
        assert not (tmp_path / "out" / "grades.csv").exists()
    solution = tmp_path / "adams_101_5001_attention.py"
    shutil.copy(SOLUTIONS, solution)
    for options, phrase in ((["--id-pattern", "hw3-(?P<id>"], "not a valid regular expression"),
                            (["--id-pattern", "hw3"], "has no group"),
                            (["--scheduler", "tcp://127.0.0.1:1"], "add --executor dask")):
        ran = _grade(solution, "--out", tmp_path / "out", *options)
        assert ran.returncode == 2 and phrase in ran.stderr, ran.stderr
        assert "Traceback" not in ran.stderr


def test_a_rubric_the_grader_cannot_work_under_scores_nobody(tmp_path, fast_rubric):
    import yaml

    data = yaml.safe_load(fast_rubric.read_text())
    data["defaults"]["memory_mb"] = 300  # too little for torch
    rubric = tmp_path / "config.yaml"
    rubric.write_text(yaml.safe_dump(data, sort_keys=False))
    klass = make_class(tmp_path / "class")
    ran = _grade(klass, "--out", tmp_path / "out", "--rubric", rubric)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    # forked from a zygote that has torch loaded, a worker under 300 MB still runs the small steps,
    # so the reference's score is short of full marks, not necessarily 0: enough to stop the run
    scored = re.search(r"its own reference solutions scored ([\d.]+)/98", ran.stderr)
    assert scored and float(scored.group(1)) < 98 and "memory_mb" in ran.stderr, ran.stderr
    assert not list((tmp_path / "out" / "results").glob("*.json"))  # nobody got a zero for it


def test_merge_refuses_a_missing_or_repeated_shard(tmp_path, fast_rubric):
    klass = tmp_path / "class"
    klass.mkdir()
    shutil.copy(SOLUTIONS, klass / "adams_101_5001_attention.py")
    shutil.copy(SOLUTIONS, klass / "baker_102_5002_attention.py")
    for k in (1, 2):
        ran = _grade(klass, "--out", tmp_path / f"s{k}", "--rubric", fast_rubric, "--shard", f"{k}/2")
        assert ran.returncode == 0, ran.stderr
    merged = [sys.executable, "-m", "grader", "merge", "--rubric", str(fast_rubric), "--out",
              str(tmp_path / "merged")]
    for shards, phrase in (([tmp_path / "s1"], "shard(s) 2/2 missing"),
                           ([tmp_path / "s1", tmp_path / "s1"], "more than once")):
        ran = subprocess.run([*merged, *map(str, shards)], capture_output=True, text=True,
                             timeout=120, cwd=REPO_ROOT)
        assert ran.returncode == 2 and phrase in ran.stderr, ran.stderr
    ran = subprocess.run([*merged, str(tmp_path / "s1"), str(tmp_path / "s2")], capture_output=True,
                         text=True, timeout=120, cwd=REPO_ROOT)
    assert ran.returncode == 0, ran.stderr
    assert len(read_csv(tmp_path / "merged" / "grades.csv")) == 2
    old = os.umask(0o022)
    os.umask(old)
    if old == 0o022:  # the gradebook is as readable as the user's other files
        assert stat.S_IMODE((tmp_path / "merged" / "grades.csv").stat().st_mode) == 0o644


def test_a_broken_notebook_is_unreadable_not_an_untouched_stub(tmp_path, fast_rubric):
    klass = tmp_path / "class"
    klass.mkdir()
    (klass / "adams_101_5001_attention.ipynb").write_text('{"cells": [{"cell_type": "code", "sou')
    outcome = grade_class([klass], out=tmp_path / "out", rubric=fast_rubric, jobs=1)
    (row,) = outcome.rows
    assert row.status.startswith("unreadable: ") and row.report.score == 0, row.status


def test_ctrl_c_keeps_the_results_and_says_how_to_resume(tmp_path, fast_rubric):
    klass = make_class(tmp_path / "class")
    out = tmp_path / "out"
    # A shell's background job starts with SIGINT ignored (as CI may run this suite), and Python
    # keeps an ignored SIGINT ignored: give the grader the disposition a terminal's user gives it.
    process = subprocess.Popen(grade_command(klass, "--out", out, "--rubric", fast_rubric, "--jobs", "1"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((out / "results").glob("*.json")):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "Run the same command again" in err


def test_moodle_team_submissions_give_each_member_a_row(tmp_path):
    """Moodle downloads a team's files once per member, "Team-Full Name_participant_...": each
    member is a row of their own, keyed by their participant id."""
    moodle = tmp_path / "moodle"
    for member in ("Team A-John Smith_1234567", "Team A-Ann Lee_7654321", "Team B-Participant_5555555"):
        folder = moodle / f"{member}_assignsubmission_file_"
        folder.mkdir(parents=True)
        shutil.copy(EXAMPLE, folder / "attention.ipynb")
    found = collect([moodle], tmp_path / "staging")
    assert {e.student: e.name for e in found.entries} == {
        "1234567": "Team A-John Smith", "7654321": "Team A-Ann Lee", "5555555": "Team B-Participant"}


def test_a_group_submission_is_graded_for_every_member(tmp_path):
    """Canvas names a group's submission by whoever handed it in; Moodle 4 may name the folder by
    the group and its id. With --groups, each member gets a row with the group's submission: the
    group column names Moodle's group by its id (a name in a folder is never trusted)."""
    klass = tmp_path / "class"
    klass.mkdir()
    shutil.copy(EXAMPLE, klass / "leeann_301_9001_attention.ipynb")  # Team 1, handed in by Ann
    team = klass / "Team 3_42_assignsubmission_file"  # Moodle 4: one folder per group
    team.mkdir()
    shutil.copy(EXAMPLE, team / "attention.ipynb")
    shutil.copy(SOLUTIONS, klass / "solo_309_9009_attention.py")  # in no group
    groups = tmp_path / "groups.csv"
    groups.write_text("group,id,name\nTeam 1,301,Ann Lee\nTeam 1,302,Bo Park\n"
                      "42,1111111,Cy Diaz\n42,2222222,Di Egan\n")
    found = collect([klass], tmp_path / "staging", groups=collect_module.read_groups(groups))
    entries = {e.student: e for e in found.entries}
    assert sorted(entries) == ["1111111", "2222222", "301", "302", "309"]
    assert entries["302"].name == "Bo Park" and entries["302"].path == entries["301"].path
    assert entries["302"].notes[0] == "Graded as the submission of group Team 1, handed in by leeann."
    assert entries["2222222"].path == team / "attention.ipynb"
    bad = tmp_path / "bad.csv"
    bad.write_text("team,student\nA,1\n")
    with pytest.raises(Exception, match="the columns group and id"):
        collect_module.read_groups(bad)
