"""Notebook cells are read as IPython reads them (`x?`, `%timeit`, `%%time`, `!pip`, `%%bash`), keeping
their line numbers, and the notes name the cause of what went wrong: the cell that was running when the
time ran out (once), the failed import that left a later cell's name undefined, `input()`."""

import dataclasses

from conftest import grade, statuses, write_notebook

from grader.submission import transform_ipython

IMPORTS = "import torch\nimport torch.nn as nn\n"
SOFTMAX = "def softmax_naive(x):\n    return torch.exp(x) / torch.exp(x).sum(dim=0)\n"
SCORES = "def attention_scores(inputs):\n    return inputs @ inputs.T\n"


def test_cells_keep_their_line_count_and_what_ipython_cannot_read_is_left_as_it_is():
    cells = ["%time x = \\\n    1\ny = 2\n", "\n\n%%time\nx = 1\nf?\n", "    a = 1\n    %time b = 2\n",
             "!ls \\\n  -la\nz = 3\n", "for i in range(2):\n    %timeit -n1 -r1 f(i)\n    !ls\n",
             "x = %time f()\nfiles = !ls\n", "%%bash\necho hi\n"]
    for source in cells:
        code, _ = transform_ipython(source)
        assert len(code.splitlines()) == len(source.splitlines()), (source, code)
        assert "get_ipython" not in code and compile(code, "<cell>", "exec")
    assert transform_ipython("%time x = \\\n    1\ny = 2\n")[0].splitlines()[2] == "y = 2"
    assert transform_ipython("x = %time f()\n")[0] == "x = f()\n"  # %time gives what it ran
    unclosed = "%time x = 1\ny = (1,\n"  # still not Python once read: sent as read, the worker says where
    assert transform_ipython(unclosed)[0].splitlines() == ["x = 1", "y = (1,"]
    unreadable = "%time x\n\tif 1:\n        pass\n  x?\n"  # IPython's tokenizer raises IndentationError
    assert transform_ipython(unreadable) == (unreadable, "")
    flood = "x?\n" * 400  # IPython's work grows as lines x magics: past a bound, left as it is
    code, note = transform_ipython(flood)
    assert code == flood and note.startswith("IPython syntax not read: this cell has too much of it")


def test_help_lines_and_magics_that_run_code_are_read_as_jupyter_reads_them(tmp_path, rubric):
    marker = tmp_path / "shell_ran"
    notebook = write_notebook(tmp_path / "magics.ipynb", [
        ("code", IMPORTS + "calls = []"),
        # `softmax_naive?` beside its definition made the whole cell a SyntaxError: "never defined"
        ("code", SOFTMAX + "softmax_naive?\n??softmax_naive\n"),
        # %timeit runs its statement (once, here); options come before it
        ("code", "%timeit -n 10 -r 3 calls.append(1)\n"),
        # a %%timeit cell: its first line is setup code, run before the body
        ("code", "%%timeit -n 1 -r 1 product = torch.matmul\nif calls == [1]:\n"
                 "    def attention_scores(inputs):\n        return product(inputs, inputs.T)\n"),
        ("code", f"!pip install {marker.name}\n!touch {marker}\n"),
        ("code", f"%%bash\ntouch {marker}\n"),
    ])
    report = grade(notebook, rubric=rubric, steps=["softmax_naive", "attention_scores"])
    assert statuses(report) == {"softmax_naive": "passed", "attention_scores": "passed"}
    assert not marker.exists()
    notes = {note.split(" ")[1]: note.split("`): ", 1)[1] for note in report.notes}  # by cell number
    assert len(notes) == len(report.notes) == 5, report.notes  # one per cell changed, and nothing raised
    assert notes["2"] == "IPython syntax not run: `softmax_naive?`, `softmax_naive??`"
    assert notes["3"] == "run once, as plain Python: `%timeit`"
    assert notes["4"] == "run once, as plain Python: `%%timeit`"
    assert notes["5"] == ("shell commands are not run by the grader: `!pip install shell_ran`, "
                          f"`!touch {str(marker)[:30]}...`")
    assert notes["6"] == "skipped: the %%bash cell magic does not run here"


def test_errors_after_ipython_lines_are_reported_at_the_students_line(tmp_path, rubric):
    notebook = write_notebook(tmp_path / "lines.ipynb", [
        ("code", IMPORTS),
        # a `\`-continued magic is one line to IPython; the lines after it keep their numbers
        ("code", "%time ones = \\\n    torch.ones(3)\nsoftmax_naive?\ndef softmax_naive(x):\n"
                 "    exps = torch.exp(x)\n    return exps / exps.sum(dim=1)\n"),
        # leading blank lines, which IPython drops, and a cell magic
        ("code", "\n\n%%time\nfirst = 1\nprint(undefined_name)\n"),
    ])
    report = grade(notebook, rubric=rubric, steps=["softmax_naive"])
    step = report.steps[0]
    assert step.status == "error"
    assert step.location.startswith("cell 2 (`%time ones = \\`), line 6"), step.location
    assert "IndexError" in step.feedback and "exps.sum(dim=1)" in step.feedback
    raised = [note for note in report.notes if "raised" in note]
    assert raised == ["cell 3 (`%%time`), line 5 raised NameError: name 'undefined_name' is not "
                      "defined; the code after it in that cell or file did not run."]


def test_a_failed_import_is_named_as_the_cause_of_the_names_it_left_undefined(tmp_path, rubric):
    notebook = write_notebook(tmp_path / "tiktoken.ipynb", [
        ("code", "import torch\nimport tiktoken\nimport torch.nn as nn\n"),
        ("code", SOFTMAX),
        ("code", "layer = nn.Linear(2, 2)\n"),
        ("code", "count = int(input('How many tokens? '))\n"),
    ])
    report = grade(notebook, rubric=rubric, steps=["softmax_naive"])
    assert statuses(report) == {"softmax_naive": "passed"}
    failed, undefined, asked = report.notes
    assert failed.startswith("cell 1 (`import torch`), line 2 raised ModuleNotFoundError: No module "
                             "named 'tiktoken'")
    assert "which have no `tiktoken`, and installs nothing" in failed
    assert "give it a cell of its own" in failed
    assert undefined == (
        "cell 3 (`layer = nn.Linear(2, 2)`), line 1 raised NameError: name 'nn' is not defined; the code "
        "after it in that cell or file did not run. `nn` was to be defined by cell 1, line 3 "
        "(`import torch.nn as nn`), which never ran: that cell stopped before it, at line 2 "
        "(`import tiktoken`), with ModuleNotFoundError: No module named 'tiktoken': remove that import, "
        "or give it a cell of its own, and `nn` will be defined.")
    assert asked.startswith("cell 4 (`count = int(input('How many tokens? '))`), line 1 raised EOFError")
    assert "`input()` cannot work under the grader" in asked and "as a default" in asked


def test_the_time_running_out_is_one_note_naming_the_cell_that_was_running(tmp_path, rubric):
    fast = dataclasses.replace(rubric, defaults=dataclasses.replace(rubric.defaults, load_timeout=2))
    notebook = write_notebook(tmp_path / "slow.ipynb", [
        ("code", IMPORTS + "import time\n\ndef train():\n    time.sleep(60)\n"),
        ("code", SOFTMAX),
        ("markdown", "Timing the training"),
        ("code", "%timeit train()\n"),
        ("code", SCORES),
        ("code", "x = 1\n"),
        ("code", "y = 2\n"),
    ])
    report = grade(notebook, rubric=fast, steps=["softmax_naive", "attention_scores"])
    assert statuses(report) == {"softmax_naive": "passed", "attention_scores": "error"}  # never ran
    stopped = [note for note in report.notes if "stop" in note or "not run" in note]
    assert stopped == [
        "cell 4 (`%timeit train()`), line 1 was stopped: your code may take 2 s to run, in all, and it "
        "was still running when that time ran out (in cell 1 (`import torch`), line 6 "
        "(`time.sleep(60)`)); the rest of that cell and the 3 code cells after it (cell 5 to cell 7) "
        "did not run."], report.notes
