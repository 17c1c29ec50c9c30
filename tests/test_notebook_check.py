"""`from grader import check` inside a running notebook grades the cells run so far and shows the
feedback under the cell, in a real Jupyter kernel."""

import re

import nbformat
import pytest
from nbclient import NotebookClient

from grader import UsageError, check

SOFTMAX = "def softmax_naive(x):\n    return torch.exp(x) / torch.exp(x).sum(dim=0)\n"
WRONG_SOFTMAX = "def softmax_naive(x):\n    return x / x.sum(dim=0)  # forgot the exp\n"


def run_notebook(tmp_path, sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source, id=f"cell-{i}") for i, source in enumerate(sources)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb


def html_of(cell) -> str:
    for output in cell.outputs:
        if "data" in output and "text/html" in output["data"]:
            return output["data"]["text/html"]
    raise AssertionError(f"no HTML output in {cell.outputs}")


def test_check_grades_the_cells_run_so_far_and_shows_the_report(tmp_path):
    nb = run_notebook(tmp_path, [
        "%time x = 1\nimport torch",
        SOFTMAX,
        'from grader import check\ncheck("softmax_naive")',
        WRONG_SOFTMAX,
        'check("softmax_naive")',
        "check()",
    ])
    first, second, everything = (html_of(nb.cells[i]) for i in (2, 4, 5))
    assert "Score: 5 / 5" in first and 'class="badge passed"' in first
    # the redefinition in a later cell is the notebook's current state
    assert 'class="badge failed"' in second and "Score: 5 / 5" not in second
    assert "differs in" in second
    # check() grades every step; those not written yet are missing
    assert "Score: " in everything and everything.count('<td><span class="badge missing">') == 18
    # a part of the notebook, not a document: its styles apply inside it only, so the notebook's
    # other tables, code and text keep their look
    for html in (first, second, everything):
        assert "<html" not in html and "<body" not in html
        assert html.startswith('<div class="attention-grader-report">')
        css = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
        selectors = [group.strip() for rule in re.findall(r"([^{}]+)\{", css)
                     for group in rule.split(",")]
        assert selectors and all(s.startswith(".attention-grader-report") for s in selectors), selectors


def test_check_outside_a_notebook_says_what_to_do():
    with pytest.raises(UsageError, match="attention-grader check FILE"):
        check("softmax_naive")


class FakeShell:
    """What check() reads of IPython's shell: the raw input history and the user namespace."""

    def __init__(self, cells, namespace):
        self.history_manager = type("History", (), {"input_hist_raw": ["", *cells]})()
        self.user_ns = namespace


def test_check_grades_what_the_kernel_has_not_a_replay_of_every_statement():
    """A slow cell (here 60 s, twice the load timeout) is not run again: the steps defined after
    it are graded; an older wrong version and a deleted definition are not sent."""
    cells = [
        "import torch",
        WRONG_SOFTMAX,
        "import time\ntime.sleep(60)  # a long training run\nprint('done')",
        "%timeit torch.ones(3)",
        "def helper(x):\n    return torch.exp(x)\n",
        "def softmax_naive(x):\n    e = helper(x)\n    return e / e.sum(dim=0)\n",
        "def context_vector(w, x):\n    raise RuntimeError('deleted since')\n",
        "del context_vector",
    ]
    shell = FakeShell(cells, {"torch": object(), "helper": object(), "softmax_naive": object()})
    report = check("softmax_naive", "context_vector", shell=shell).report
    by_id = {step.id: step for step in report.steps}
    assert by_id["softmax_naive"].passed, by_id["softmax_naive"].feedback
    assert by_id["context_vector"].status == "missing"
    assert report.seconds < 30
    assert any("not their other statements" in note and "In [3]" in note for note in report.notes)


def test_a_check_call_assigned_or_printed_is_not_replayed_and_blames_nothing():
    """`r = check(...)` and `print(check())` are the grader's own calls: the worker cannot run
    them, and a NameError for `check` must not reach the report; a step not written yet is missing
    without blaming an error in a cell that defines other things."""
    cells = [
        "import torch",
        "from grader import check",
        SOFTMAX,
        'r = check("softmax_naive")',
        "print(check())",
        "import a_module_that_is_not_installed",
    ]
    from grader.notebook import check as graders_check

    shell = FakeShell(cells, {"torch": object(), "softmax_naive": object(), "check": graders_check,
                              "r": object()})
    report = check("softmax_naive", "context_vector", shell=shell).report
    by_id = {step.id: step for step in report.steps}
    assert by_id["softmax_naive"].passed, by_id["softmax_naive"].feedback
    assert not any("NameError" in note for note in report.notes), report.notes
    assert not any("not their other statements" in note for note in report.notes), report.notes
    missing = by_id["context_vector"]
    assert missing.status == "missing"
    assert "While your code was loading" not in missing.feedback, missing.feedback


def test_a_students_own_function_named_check_still_runs():
    cells = ["import torch", "def check(x):\n    return x\n", SOFTMAX, "y = check(3)"]
    namespace = {"torch": object(), "softmax_naive": object(), "y": 3}
    namespace["check"] = lambda x: x  # theirs, not the grader's
    from grader.notebook import kernel_submission

    submission = kernel_submission(["", *cells], namespace)
    assert any("y = check(3)" in chunk.code for chunk in submission.chunks)
