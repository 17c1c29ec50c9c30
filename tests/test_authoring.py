"""Unit tests for grader.authoring (percent parsing, stripping, notebooks, CLI)."""

import textwrap

import nbformat
import pytest

from grader import authoring
from grader.authoring import Cell, MarkerError, parse_percent, strip_solutions, to_notebook

SAMPLE = textwrap.dedent(
    '''\
    # %% [markdown]
    # # Title
    #
    # Some *text*.

    # %%
    import math


    # %%
    def double(x):
        """Twice x."""
        # BEGIN SOLUTION
        y = 2 * x
        return y
        # END SOLUTION


    class Thing:
        """A thing."""

        def forward(self, x):
            """Forward."""
            # BEGIN SOLUTION
            return math.sqrt(x)
            # END SOLUTION
    '''
)


def test_parse_percent_cells():
    cells = parse_percent(SAMPLE)
    assert [c.kind for c in cells] == ["markdown", "code", "code"]
    assert cells[0] == Cell("markdown", "# Title\n\nSome *text*.")
    assert cells[1].source == "import math"
    assert cells[2].source.startswith("def double(x):")
    assert cells[2].source.endswith("# END SOLUTION")


def test_parse_percent_leading_text_and_empty_cells():
    cells = parse_percent("# header\n\n# %%\n\n# %% [md]\n# hi\n")
    assert cells == [Cell("code", "# header"), Cell("markdown", "hi")]


def test_cell_is_frozen_and_checked():
    with pytest.raises(AttributeError):
        Cell("code", "x").source = "y"
    with pytest.raises(ValueError):
        Cell("raw", "x")


def test_strip_solutions():
    stub = strip_solutions(SAMPLE)
    assert "BEGIN SOLUTION" not in stub and "2 * x" not in stub
    assert '    raise NotImplementedError("double: fill in this step")\n' in stub
    assert '        raise NotImplementedError("Thing.forward: fill in this step")\n' in stub
    assert '"""Twice x."""' in stub
    namespace = {}
    exec(stub, namespace)  # noqa: S102
    with pytest.raises(NotImplementedError, match="double"):
        namespace["double"](1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("def f():\n    # END SOLUTION\n", "without a matching BEGIN"),
        ("def f():\n    # BEGIN SOLUTION\n    return 1\n", "never closed"),
        ("def f():\n    # BEGIN SOLUTION\n    # BEGIN SOLUTION\n", "inside the block"),
        ("def f():\n    # BEGIN SOLUTION\n  # END SOLUTION\n", "not indented like"),
        ("# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n", "not inside a function"),
    ],
)
def test_strip_solutions_rejects_bad_markers(text, message):
    with pytest.raises(MarkerError, match=message):
        strip_solutions(text)


def test_to_notebook_is_valid_and_deterministic():
    nb = to_notebook(parse_percent(SAMPLE))
    nbformat.validate(nb)
    assert [c.id for c in nb.cells] == ["cell-1", "cell-2", "cell-3"]
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# Title")
    assert nb.cells[1].outputs == [] and nb.cells[1].execution_count is None
    assert nb.metadata.kernelspec.name == "python3"
    again = to_notebook(parse_percent(SAMPLE))
    assert nbformat.writes(nb) == nbformat.writes(again)


def test_build_and_check_round_trip(tmp_path, capsys):
    solutions = tmp_path / "attention.py"  # the exercises are named after the solutions file
    solutions.write_text(SAMPLE, encoding="utf-8")
    out = tmp_path / "ex"
    args = ["--solutions", str(solutions), "--out", str(out)]

    assert authoring.main([*args, "--check"]) == 1  # nothing built yet
    assert authoring.main(args) == 0
    py, ipynb = out / "attention.py", out / "attention.ipynb"
    assert py.read_text(encoding="utf-8").startswith("# GENERATED FILE: do not edit by hand.")
    assert nbformat.read(ipynb, as_version=4).cells[2].source.endswith('fill in this step")')
    assert authoring.main([*args, "--check"]) == 0
    first = ipynb.read_bytes()
    assert authoring.build_exercises(solutions, out) == [py, ipynb]
    assert ipynb.read_bytes() == first  # deterministic

    solutions.write_text(SAMPLE.replace("Some *text*.", "Other text."), encoding="utf-8")
    capsys.readouterr()
    assert authoring.main([*args, "--check"]) == 1
    err = capsys.readouterr().err
    assert str(py) in err and str(ipynb) in err


def test_main_reports_marker_errors(tmp_path, capsys):
    solutions = tmp_path / "bad.py"
    solutions.write_text("def f():\n    # BEGIN SOLUTION\n", encoding="utf-8")
    assert authoring.main(["--solutions", str(solutions), "--out", str(tmp_path / "o")]) == 2
    assert "never closed" in capsys.readouterr().err
