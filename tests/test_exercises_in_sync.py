"""The committed exercises are exactly what `python -m grader.authoring` builds."""

import importlib.util
import inspect
from pathlib import Path

import nbformat
import pytest
import torch

import solutions.attention as sol
from grader import authoring

REPO_ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS_PATH = REPO_ROOT / "solutions" / "attention.py"
EXERCISES_DIR = REPO_ROOT / "exercises"

STEP_NAMES = [
    "attn_scores_for_query",
    "softmax_naive",
    "context_vector",
    "attention_scores",
    "attention_weights",
    "context_vectors",
    "project_qkv",
    "scaled_attention_weights",
    "SelfAttention_v1",
    "SelfAttention_v2",
    "transfer_weights_v2_to_v1",
    "renormalized_causal_weights",
    "causal_attention_weights",
    "attention_dropout",
    "CausalAttention",
    "MultiHeadAttentionWrapper",
    "wrapper_with_2d_output",
    "MultiHeadAttention",
    "gpt2_small_attention",
]
CLASS_NAMES = [name for name in STEP_NAMES if name[0].isupper()]


@pytest.fixture(scope="module")
def stub():
    path = EXERCISES_DIR / "attention.py"
    spec = importlib.util.spec_from_file_location("_exercises_attention_stub", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(EXERCISES_DIR / "attention.ipynb", as_version=4)


def test_exercise_files_match_generator():
    expected = authoring.render_exercises(SOLUTIONS_PATH.read_text(encoding="utf-8"))
    assert sorted(expected) == ["attention.ipynb", "attention.py"]
    for name, content in expected.items():
        committed = (EXERCISES_DIR / name).read_text(encoding="utf-8")
        assert committed == content, (
            f"exercises/{name} is out of date with solutions/attention.py: "
            "run `python -m grader.authoring`"
        )


def test_check_command_reports_in_sync(capsys):
    assert authoring.main(["--check"]) == 0


def test_solutions_define_the_steps_in_order():
    text = SOLUTIONS_PATH.read_text(encoding="utf-8")
    positions = [
        text.index(f"\ndef {n}(") if n[0].islower() else text.index(f"\nclass {n}(")
        for n in STEP_NAMES
    ]
    assert positions == sorted(positions)


def test_stub_module_defines_every_step_with_same_signature(stub):
    for name in STEP_NAMES:
        sol_obj, stub_obj = getattr(sol, name), getattr(stub, name)
        assert inspect.signature(stub_obj) == inspect.signature(sol_obj), name
        assert inspect.getdoc(stub_obj) == inspect.getdoc(sol_obj), name
        assert inspect.getdoc(stub_obj), f"{name} has no docstring"
    for name in CLASS_NAMES:
        for method in ("__init__", "forward"):
            assert inspect.signature(getattr(getattr(stub, name), method)) == inspect.signature(
                getattr(getattr(sol, name), method)
            )
    torch.testing.assert_close(stub.BOOK_INPUTS, sol.BOOK_INPUTS, atol=0, rtol=0)


def _valid_calls():
    x = sol.BOOK_INPUTS  # (6, 3)
    w = torch.softmax(x @ x.T, dim=-1)  # (6, 6)
    q = torch.rand(6, 2)
    return {
        "attn_scores_for_query": (x, x[1]),
        "softmax_naive": (x[0],),
        "context_vector": (w[0], x),
        "attention_scores": (x,),
        "attention_weights": (w,),
        "context_vectors": (w, x),
        "project_qkv": (x, torch.rand(3, 2), torch.rand(3, 2), torch.rand(3, 2)),
        "scaled_attention_weights": (q, q),
        "SelfAttention_v1": (3, 2),
        "SelfAttention_v2": (3, 2),
        "transfer_weights_v2_to_v1": (sol.SelfAttention_v2(3, 2), sol.SelfAttention_v1(3, 2)),
        "renormalized_causal_weights": (w,),
        "causal_attention_weights": (q, q),
        "attention_dropout": (w, 0.5),
        "CausalAttention": (3, 2, 6, 0.0),
        "MultiHeadAttentionWrapper": (3, 2, 6, 0.0, 2),
        "wrapper_with_2d_output": (3, 6),
        "MultiHeadAttention": (3, 2, 6, 0.0, 2),
        "gpt2_small_attention": (),
    }


def test_valid_calls_work_on_solutions():
    for name, args in _valid_calls().items():
        getattr(sol, name)(*args)


@pytest.mark.parametrize("name", STEP_NAMES)
def test_stub_step_raises_not_implemented(stub, name):
    args = _valid_calls()[name]
    with pytest.raises(NotImplementedError, match=name):
        getattr(stub, name)(*args)


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_stub_forward_raises_not_implemented(stub, name):
    instance = getattr(sol, name)(*_valid_calls()[name])
    x = sol.BOOK_INPUTS if name.startswith("SelfAttention") else sol.BOOK_INPUTS.unsqueeze(0)
    with pytest.raises(NotImplementedError, match=f"{name}.forward"):
        getattr(stub, name).forward(instance, x)


def test_notebook_structure(notebook):
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    assert notebook.metadata.kernelspec.name == "python3"
    kinds = [cell.cell_type for cell in notebook.cells]
    assert "markdown" in kinds
    assert [cell.id for cell in notebook.cells] == [
        f"cell-{i}" for i in range(1, len(notebook.cells) + 1)
    ]
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] for cell in notebook.cells if cell.cell_type == "code")
    assert code[0] == "import torch\nimport torch.nn as nn"
    assert sum("BOOK_INPUTS = torch.tensor(" in src for src in code) == 1
    stub_cells = [src for src in code if "NotImplementedError" in src]
    assert len(stub_cells) == len(STEP_NAMES)
    for name, src in zip(STEP_NAMES, stub_cells, strict=True):
        assert f"def {name}(" in src or f"class {name}(" in src
    assert not any("SOLUTION" in src for src in code)
    markdown = [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]
    assert not any(line.startswith("# ") for src in markdown for line in src.splitlines()[1:])


def test_notebook_code_defines_every_step(notebook):
    namespace = {}
    for cell in notebook.cells:
        if cell.cell_type == "code":
            exec(compile(cell.source, cell.id, "exec"), namespace)  # noqa: S102
    assert set(STEP_NAMES) <= set(namespace)


def test_solutions_notebook_builds_and_runs():
    nb = authoring.to_notebook(authoring.parse_percent(SOLUTIONS_PATH.read_text("utf-8")))
    nbformat.validate(nb)
    namespace = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            exec(compile(cell.source, cell.id, "exec"), namespace)  # noqa: S102
    torch.manual_seed(123)
    mha = namespace["MultiHeadAttention"](3, 2, 6, 0.0, num_heads=2)
    out = mha(torch.stack((namespace["BOOK_INPUTS"],) * 2))
    torch.testing.assert_close(out[0, 0].round(decimals=4), torch.tensor([0.3190, 0.4858]))
