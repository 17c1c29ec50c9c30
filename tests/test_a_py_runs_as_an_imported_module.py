"""A .py runs as an imported module: `__file__` is its own path (a copy in the worker's folder),
`__name__` is not "__main__", so `Path(__file__)` at the top works, as it does for the book's
scripts; a notebook runs as Jupyter runs it, with no `__file__`."""

import pytest
from conftest import SOLUTIONS, grade, grade_many, write_notebook

USES_ITS_FILE = '''from pathlib import Path

HERE = Path(__file__).resolve().parent  # as the book's scripts find their data
OWN_SOURCE = Path(__file__).read_text()
assert "OWN_SOURCE" in OWN_SOURCE and __name__ != "__main__"
'''


@pytest.fixture(scope="module")
def reports(rubric, tmp_path_factory):
    solution = SOLUTIONS.read_text()
    return grade_many(rubric, {"uses_its_file": USES_ITS_FILE + solution}, tmp_path_factory.mktemp("file"))


def test_a_py_that_reads_its_own_file_at_the_top_is_graded_in_full(reports):
    report = reports["uses_its_file"]
    assert report.score == report.max_score, [s.feedback for s in report.steps if s.status != "passed"]


def test_a_notebook_has_no_file_as_in_jupyter(rubric, tmp_path):
    notebook = write_notebook(tmp_path / "attention.ipynb", [("code", "print(__file__)"),
                                                             ("code", SOLUTIONS.read_text())])
    report = grade(notebook, rubric=rubric, steps=["softmax_naive"])
    assert report.score == report.max_score  # the cell's error costs nothing graded
    assert any("NameError" in note and "__file__" in note for note in report.notes), report.notes
