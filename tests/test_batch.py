"""Batch grading: a whole class, from files, folders and a platform's zip, into a gradebook that
survives interruptions, shards and merges back, and comes out the same on a Dask cluster."""

import csv
import io
import os
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
    rows = {row["id"]: row for row in read_csv(tmp_path / "out" / "grades.csv")}
    assert sorted(rows) == ["Chen Li", "adams", "brown", "davis"]
    assert rows["adams"]["total"] == rows["adams"]["max"] == "98"
    assert rows["brown"]["total"] == "90" and rows["brown"]["file"].endswith("5010_attention-1.ipynb")
    assert rows["Chen Li"]["total"] == "90"
    assert rows["davis"]["softmax_naive"] == "0" and rows["davis"]["total"] == "93"  # the hang cost 5
    assert {row["status"] for row in rows.values()} == {"graded"}
    assert outcome.graded == 4
    brown = next(r for r in outcome.rows if r.student == "brown")
    assert "2 submissions; graded the newest" in brown.report.notes[0]
    # per-student feedback and the class summary
    out = tmp_path / "out"
    assert (out / "feedback" / "brown.md").read_text().count("softmax_wrong_dim") >= 1
    assert (out / "feedback" / "Chen_Li.html").exists()
    summary = (out / "summary.md").read_text()
    assert "| students | 4 |" in summary and "![scores](plots/scores.png)" in summary
    assert "| `attention_weights` | `softmax_wrong_dim` | 2 |" in summary
    html = (out / "summary.html").read_text()
    assert html.count("data:image/png;base64,") == 2
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
    assert [e.student for e in found.entries] == ["adams"]
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
    assert [e.student for e in found.entries] == ["adams", "brown", "clark"]
    extracted = sorted(p.name for p in staging.iterdir())
    assert extracted == ["00039_adams_101_5040_attention.py", "00040_brown_102_6001_attention.py"]
    clark = found.entries[2]
    assert clark.path is None
    assert "would extract to more than" in clark.notes[-1]
    assert any(p.startswith("export.zip:clark_103_7001_attention.py") for p in found.problems)

    # graded, the refused one is a row with its reason, not a gap
    outcome = grade_class([archive], out=tmp_path / "out", rubric=load_rubric(RUBRIC), jobs=1)
    rows = {row.student: row for row in outcome.rows}
    assert set(rows) == {"adams", "brown", "clark"}
    assert rows["brown"].report.score == rows["brown"].report.max_score
    assert rows["clark"].status == "graded" and rows["clark"].report.score == 0
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
                                         "adams"), capture_output=True, text=True, timeout=300,
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
    rows = {row["id"]: row for row in read_csv(tmp_path / "out" / "grades.csv")}
    assert sorted(rows) == ["Gray Kim", "evans", "fox", "hale"]
    for student in ("fox", "Gray Kim", "hale"):
        assert rows[student]["total"] == "0", rows[student]
    feedback = (tmp_path / "out" / "feedback" / "fox.md").read_text()
    assert "is a symbolic link" in feedback
    assert "def attention_scores" not in feedback  # the linked file is never quoted back


def test_a_grader_failure_on_one_student_is_that_students_row(tmp_path, fast_rubric, monkeypatch):
    """Whatever goes wrong while grading one submission, the class run ends with every row."""
    from grader.batch import run

    real = run.grade_entry

    def failing_for_adams(entry, *args):
        if entry.student == "adams":
            raise ValueError("something no one foresaw")
        return real(entry, *args)

    monkeypatch.setattr(run, "grade_entry", failing_for_adams)
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copy(SOLUTIONS, folder / "adams_101_5001_attention.py")
    shutil.copy(SOLUTIONS, folder / "baker_102_5002_attention.py")
    grade_class([folder], out=tmp_path / "out", rubric=fast_rubric, jobs=2)
    rows = {row["id"]: row for row in read_csv(tmp_path / "out" / "grades.csv")}
    assert rows["baker"]["total"] == "98" and rows["baker"]["status"] == "graded"
    assert "something no one foresaw" in rows["adams"]["status"]
