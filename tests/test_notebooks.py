"""Notebooks run as a student runs them: cell by cell, IPython syntax tolerated, errors located."""

import nbformat
from conftest import grade, statuses, write_notebook

IMPORTS = "import torch\nimport torch.nn as nn"
SCORES = "def attn_scores_for_query(inputs, query):\n    return inputs @ query\n"
SOFTMAX = "def softmax_naive(x):\n    return torch.exp(x) / torch.exp(x).sum(dim=0)\n"
ONLY = ["attn_scores_for_query", "softmax_naive"]


def test_ipython_syntax_does_not_break_grading_and_shell_escapes_never_run(tmp_path, rubric):
    marker = tmp_path / "shell_ran"
    notebook = write_notebook(tmp_path / "magics.ipynb", [
        ("code", f"%matplotlib inline\n!touch {marker}\nfiles = !ls\n{IMPORTS}"),
        ("code", f"%%bash\ntouch {marker}\n"),
        ("code", "%%time\n" + SCORES),
        ("code", "%time x = 1\n" + SOFTMAX),
    ])
    report = grade(notebook, rubric=rubric, steps=ONLY)
    assert statuses(report) == {"attn_scores_for_query": "passed", "softmax_naive": "passed"}
    assert not marker.exists()
    assert any("%%bash" in note for note in report.notes)


def test_a_cell_that_raises_does_not_stop_the_cells_after_it(tmp_path, rubric):
    notebook = write_notebook(tmp_path / "raises_early.ipynb", [
        ("code", IMPORTS),
        ("markdown", "Some scratch work"),
        ("code", "print(atention_scores(BOOK_INPUTS))  # a typo"),
        ("code", SCORES),
        ("code", SOFTMAX),
    ])
    report = grade(notebook, rubric=rubric, steps=ONLY)
    assert statuses(report) == {"attn_scores_for_query": "passed", "softmax_naive": "passed"}
    (note,) = report.notes
    assert "cell 3" in note and "NameError" in note and "atention_scores" in note


def test_an_error_inside_a_step_names_the_cell_and_the_line(tmp_path, rubric):
    buggy = ("def softmax_naive(x):\n"
             "    exps = torch.exp(x)\n"
             "    return exps / exps.sum(dim=1)  # there is no dim 1 in a 1-D tensor\n")
    notebook = write_notebook(tmp_path / "buggy.ipynb", [("code", IMPORTS), ("code", SCORES),
                                                         ("code", buggy)])
    step = grade(notebook, rubric=rubric, steps=["softmax_naive"]).steps[0]
    assert step.status == "error"
    assert step.location.startswith("cell 3 (`def softmax_naive(x):`), line 3")
    assert "IndexError" in step.feedback and "exps.sum(dim=1)" in step.feedback
    assert step.score == 0


def test_a_cell_with_a_syntax_error_costs_only_what_it_defines(tmp_path, rubric):
    notebook = write_notebook(tmp_path / "syntax.ipynb", [
        ("code", IMPORTS),
        ("code", "def softmax_naive(x)\n    return x\n"),
        ("code", SCORES),
    ])
    report = grade(notebook, rubric=rubric, steps=ONLY)
    assert statuses(report) == {"attn_scores_for_query": "passed", "softmax_naive": "error"}
    softmax = report.steps[1]
    assert "SyntaxError" in softmax.feedback and "cell 2" in softmax.feedback


def test_stored_outputs_are_never_trusted(tmp_path, rubric):
    path = write_notebook(tmp_path / "stale_outputs.ipynb", [
        ("code", IMPORTS),
        ("code", "def softmax_naive(x):\n    raise NotImplementedError\n"),
    ])
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout",
                                                  text="softmax_naive: passed, 5/5\n")]
    nb.cells[1].execution_count = 2
    nbformat.write(nb, path)
    step = grade(path, rubric=rubric, steps=["softmax_naive"]).steps[0]
    assert step.status == "not_implemented"


def test_a_py_files_main_block_does_not_run(tmp_path, rubric):
    path = tmp_path / "with_main.py"
    path.write_text(f"{IMPORTS}\n{SOFTMAX}\nif __name__ == '__main__':\n    raise SystemExit(3)\n")
    report = grade(path, rubric=rubric, steps=["softmax_naive"])
    assert statuses(report) == {"softmax_naive": "passed"}
    assert report.notes == ()


def test_a_missing_name_says_which_name_and_signature(tmp_path, rubric):
    path = tmp_path / "partial.py"
    path.write_text(f"{IMPORTS}\ndef Softmax_naive(x):\n    return x\n")
    step = grade(path, rubric=rubric, steps=["softmax_naive"]).steps[0]
    assert step.status == "missing"
    assert "`softmax_naive(x)`" in step.feedback
    assert "Did you mean to call `Softmax_naive`" in step.feedback


def test_a_notebook_nested_too_deeply_is_unreadable_not_a_crash(tmp_path, rubric):
    path = tmp_path / "deep.ipynb"
    path.write_text('{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}")
    report = grade(path, rubric=rubric, steps=["softmax_naive"])
    assert report.steps[0].status == "missing"
    assert any("nested too deeply" in note for note in report.notes)


def test_a_cell_too_deep_or_long_to_parse_is_left_to_the_worker(tmp_path, rubric):
    deep = "x = " + "(" * 100_000 + "1" + ")" * 100_000
    long = "y = 1\n" * 20_000 + "%time y\n"  # 120 KB, IPython syntax at its end
    path = write_notebook(tmp_path / "odd_cells.ipynb", [
        ("code", deep), ("code", long),
        ("code", "import torch\n\ndef softmax_naive(x):\n    return torch.exp(x) / torch.exp(x).sum(dim=0)"),
    ])
    report = grade(path, rubric=rubric, steps=["softmax_naive"])
    assert statuses(report) == {"softmax_naive": "passed"}
    assert any(note.startswith("cell 1") for note in report.notes), report.notes
    assert any(note.startswith("cell 2") and "SyntaxError" in note for note in report.notes)
