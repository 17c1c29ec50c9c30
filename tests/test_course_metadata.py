"""The rubric's `course:` (the exercise file's stem, the stubs folder, a short name) is what the
grader uses wherever it once said "attention": which file of a folder is graded, the JUnit
classnames, the reports' titles and the student bundle."""

import copy
import xml.etree.ElementTree as ET

import pytest
import yaml
from conftest import REPO_ROOT, RUBRIC, assert_junit_10

from grader import RubricError, load_rubric
from grader.batch.collect import collect
from grader.bundle import build_bundle
from grader.choose import choose
from grader.errors import UsageError
from grader.gradescope import find_submission
from grader.report.html import render_html
from grader.report.junit import render_junit
from grader.report.markdown import render_markdown

CHAPTER4 = REPO_ROOT / "examples" / "chapter4"
CHAPTER4_RUBRIC = CHAPTER4 / "config.yaml"


@pytest.fixture(scope="module")
def chapter4_report():
    from grader.engine import grade

    return grade(CHAPTER4 / "solutions" / "gpt.py", rubric=CHAPTER4_RUBRIC, steps=["LayerNorm"])


def rubric_copy(tmp_path, edit, source=RUBRIC):
    """The rubric `source` edited, written in tmp_path with its files named by absolute paths."""
    data = copy.deepcopy(yaml.safe_load(source.read_text()))
    for key in ("reference", "mistakes", "course_checks"):
        if key in data:
            data[key] = str(source.parent / data[key])
    edit(data)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_the_courses_metadata():
    chapter4 = load_rubric(CHAPTER4_RUBRIC)
    assert chapter4.exercise == "gpt"
    assert chapter4.exercises_dir.resolve() == CHAPTER4 / "exercises"
    assert chapter4.course_name == "chapter 4 GPT exercises"
    chapter3 = load_rubric(RUBRIC)
    assert (chapter3.exercise, chapter3.exercises_dir.resolve(), chapter3.course_name) == (
        "attention", REPO_ROOT / "exercises", "chapter 3 attention exercises")


def test_the_defaults_without_course(tmp_path):
    rubric = load_rubric(rubric_copy(tmp_path, lambda d: d.pop("course"), CHAPTER4_RUBRIC))
    assert rubric.exercise == "gpt"  # the reference's stem
    assert rubric.exercises_dir == tmp_path / "exercises"
    assert rubric.course_name == rubric.title != ""


@pytest.mark.parametrize("course, key_path, expected", [
    ({"exercise": "gpt", "stubs": "exercises"}, "course.stubs", "unknown key"),
    ({"exercise": "gpt.ipynb"}, "course.exercise", "expected a file's stem"),
    ({"exercise": "work/gpt"}, "course.exercise", "expected a file's stem"),
    ({"exercise": "gpt-2"}, "course.exercise", "learning platform's copy"),
    ({"exercise": 4}, "course.exercise", "expected a string, got an integer"),
    ({"name": ["chapter 4"]}, "course.name", "expected a string, got a list"),
    ({"exercises": ""}, "course.exercises", "expected the stubs folder"),
    ("gpt", "course", "expected a mapping, got a string"),
])
def test_a_bad_course_is_a_rubric_error(tmp_path, course, key_path, expected):
    path = rubric_copy(tmp_path, lambda d: d.update(course=course))
    with pytest.raises(RubricError) as info:
        load_rubric(path)
    message = str(info.value)
    assert message.startswith(str(path)) and key_path in message and expected in message, message


def test_junit_classnames_are_the_exercises(chapter4_report):
    root = ET.fromstring(render_junit(chapter4_report))
    assert_junit_10(root)
    cases = root.iter("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [("gpt.section_4_2", "LayerNorm")]


def test_the_reports_titles_are_the_courses(chapter4_report):
    assert chapter4_report.course == "chapter 4 GPT exercises" and chapter4_report.exercise == "gpt"
    assert "<h1>Chapter 4 GPT exercises: grader report</h1>" in render_html(chapter4_report)
    assert "<title>Chapter 4 GPT exercises: grader report for " in render_html(chapter4_report)
    assert render_markdown(chapter4_report).startswith("# Chapter 4 GPT exercises: grader report for ")
    assert "Attention" not in render_html(chapter4_report) + render_markdown(chapter4_report)
    assert '"course": "chapter 4 GPT exercises"' in chapter4_report.to_json()


def test_the_exercises_own_file_is_chosen(tmp_path):
    exercise = load_rubric(CHAPTER4_RUBRIC).exercise
    for name in ("gpt.ipynb", "attention.ipynb", "scratch.ipynb", "gpt.py"):
        (tmp_path / name).write_text("{}")
    assert find_submission(tmp_path, exercise)[0] == tmp_path / "gpt.ipynb"
    assert find_submission(tmp_path)[0] == tmp_path / "attention.ipynb"  # no rubric: chapter 3's
    files = [(name, (), name) for name in ("attention.ipynb", "notes.ipynb")]
    assert "rename the one to grade to gpt.ipynb" in choose(files, exercise).problem
    student = tmp_path / "class" / "alice"
    student.mkdir(parents=True)
    for name in ("scratch.ipynb", "gpt-1.ipynb"):  # an LMS's copy of a repeated upload
        (student / name).write_text("{}")
    found = collect([tmp_path / "class"], tmp_path / "staging", exercise=exercise)
    assert [entry.path.name for entry in found.entries] == ["gpt-1.ipynb"]


def test_a_chapter4_bundle(tmp_path):
    def one_step(data):  # one quick step, the stubs named by an absolute folder
        data["steps"] = [s for s in data["steps"] if s["id"] == "LayerNorm"]
        data["course"]["exercises"] = str(CHAPTER4 / "exercises")

    (tmp_path / "course").mkdir()
    rubric = load_rubric(rubric_copy(tmp_path / "course", one_step, CHAPTER4_RUBRIC))
    out = tmp_path / "bundle"
    names = {p.relative_to(out).as_posix() for p in build_bundle(rubric, out)}
    assert {"exercises/gpt.ipynb", "exercises/gpt.py", "README.md", "config.yaml"} <= names
    assert not any(name.startswith("exercises/attention") for name in names)
    readme = (out / "README.md").read_text()
    assert readme.startswith("# Chapter 4 GPT exercises\n")
    assert "exercises/gpt.ipynb" in readme and "attention.ipynb" not in readme
    student = yaml.safe_load((out / "config.yaml").read_text())
    assert student["course"] == {"exercise": "gpt", "exercises": "exercises",
                                 "name": "chapter 4 GPT exercises"}


def test_a_bundle_without_its_stubs_is_refused(tmp_path):
    rubric = load_rubric(rubric_copy(tmp_path, lambda d: d.update(
        course={"exercise": "gpt", "exercises": str(tmp_path / "nowhere")})))
    with pytest.raises(UsageError, match=r"gpt\.ipynb or gpt\.py should be in .*nowhere"):
        build_bundle(rubric, tmp_path / "bundle")
