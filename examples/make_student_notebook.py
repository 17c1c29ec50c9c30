"""Regenerate examples/student_notebook.ipynb, a realistic (imperfect) student submission.

    python examples/make_student_notebook.py

The notebook starts from the exercise notebook (exercises/attention.ipynb): its markdown cells are
kept as they are, and each `raise NotImplementedError("NAME: fill in this step")` line is replaced
by the student's code for NAME, so the docstrings the student was given stay where they were.

What the grader should find in it:

- attention_weights: softmax over dim=0 instead of dim=-1            -> failed
- scaled_attention_weights: divides by d_k instead of sqrt(d_k)      -> failed
- gpt2_small_attention: still the stub (the student ran out of time) -> not implemented
- every other step is correct                                        -> passed

plus the noise a real notebook carries: a first cell with `%matplotlib inline` and
`!pip install torch`, a cell that prints some exploration, a scratch cell with a typo that raises
NameError, and a check cell whose stored output ("All tests passed!") is stale. Stored outputs are
never used by the grader: it always runs the code.

The output is deterministic: cell ids are `cell-1`, `cell-2`, ... in order, and no cell has
outputs or an execution count except the stale check cell.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_output

ROOT = Path(__file__).resolve().parent.parent
EXERCISE = ROOT / "exercises" / "attention.ipynb"
TARGET = ROOT / "examples" / "student_notebook.ipynb"

# The student's code for each stub, keyed by the name in the stub's NotImplementedError message.
# Stubs not listed here (gpt2_small_attention) are left as they are.
BODIES = {
    "attn_scores_for_query": """
        # dot product of each input row with the query (for-loop version in the book, this is faster)
        return inputs @ query
    """,
    "softmax_naive": """
        return torch.exp(x) / torch.exp(x).sum(dim=0)
    """,
    "context_vector": """
        ctx = torch.zeros(inputs.shape[1])
        for i, x_i in enumerate(inputs):
            ctx += attn_weights[i] * x_i
        return ctx
    """,
    "attention_scores": """
        return inputs @ inputs.T  # (T, T)
    """,
    # MISTAKE: dim=0 normalises the columns, not the rows
    "attention_weights": """
        attn_weights = torch.softmax(attn_scores, dim=0)
        return attn_weights
    """,
    "context_vectors": """
        return attn_weights @ inputs
    """,
    "project_qkv": """
        q = x @ W_query
        k = x @ W_key
        v = x @ W_value
        return q, k, v
    """,
    # MISTAKE: divides by d_k, not by its square root
    "scaled_attention_weights": """
        d_k = keys.shape[-1]
        scores = queries @ keys.T
        # scale the scores by d_k so the softmax is not too peaky
        return torch.softmax(scores / d_k, dim=-1)
    """,
    "SelfAttention_v1.__init__": """
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key   = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))
    """,
    "SelfAttention_v1.forward": """
        keys = x @ self.W_key
        queries = x @ self.W_query
        values = x @ self.W_value
        attn_scores = queries @ keys.T  # omega
        attn_weights = torch.softmax(attn_scores / keys.shape[-1]**0.5, dim=-1)
        context_vec = attn_weights @ values
        return context_vec
    """,
    "SelfAttention_v2.__init__": """
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key   = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
    """,
    "SelfAttention_v2.forward": """
        keys = self.W_key(x)
        queries = self.W_query(x)
        values = self.W_value(x)
        attn_scores = queries @ keys.T
        attn_weights = torch.softmax(attn_scores / keys.shape[-1]**0.5, dim=-1)
        return attn_weights @ values
    """,
    "transfer_weights_v2_to_v1": """
        # nn.Linear keeps the weight transposed!!
        with torch.no_grad():
            sa_v1.W_query.copy_(sa_v2.W_query.weight.T)
            sa_v1.W_key.copy_(sa_v2.W_key.weight.T)
            sa_v1.W_value.copy_(sa_v2.W_value.weight.T)
    """,
    "renormalized_causal_weights": """
        context_length = attn_weights.shape[0]
        mask_simple = torch.tril(torch.ones(context_length, context_length))
        masked_simple = attn_weights * mask_simple
        row_sums = masked_simple.sum(dim=-1, keepdim=True)
        return masked_simple / row_sums
    """,
    "causal_attention_weights": """
        T = queries.shape[0]
        scores = queries @ keys.T
        mask = torch.triu(torch.ones(T, T), diagonal=1)
        masked = scores.masked_fill(mask.bool(), -torch.inf)
        return torch.softmax(masked / keys.shape[-1]**0.5, dim=-1)
    """,
    "attention_dropout": """
        dropout = torch.nn.Dropout(p)  # book uses 0.5
        return dropout(attn_weights)
    """,
    "CausalAttention.__init__": """
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer('mask', torch.triu(torch.ones(context_length, context_length), diagonal=1))
    """,
    "CausalAttention.forward": """
        b, num_tokens, d_in = x.shape
        keys = self.W_key(x)
        queries = self.W_query(x)
        values = self.W_value(x)

        attn_scores = queries @ keys.transpose(1, 2)  # transpose dims 1 and 2, keep batch dim
        attn_scores.masked_fill_(self.mask.bool()[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1]**0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)

        context_vec = attn_weights @ values
        return context_vec
    """,
    "MultiHeadAttentionWrapper.__init__": """
        super().__init__()
        self.heads = nn.ModuleList(
            [CausalAttention(d_in, d_out, context_length, dropout, qkv_bias) for _ in range(num_heads)]
        )
    """,
    "MultiHeadAttentionWrapper.forward": """
        return torch.cat([head(x) for head in self.heads], dim=-1)
    """,
    "wrapper_with_2d_output": """
        # 2 heads x d_out=1 each -> 2 dims
        return MultiHeadAttentionWrapper(d_in, 1, context_length, 0.0, num_heads=2)
    """,
    "MultiHeadAttention.__init__": """
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"

        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))
    """,
    "MultiHeadAttention.forward": """
        b, num_tokens, d_in = x.shape
        k = self.W_key(x)     # (b, T, d_out)
        q = self.W_query(x)
        v = self.W_value(x)

        # split into heads: (b, T, d_out) -> (b, T, heads, head_dim) -> (b, heads, T, head_dim)
        k = k.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        q = q.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        v = v.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)

        attn_scores = q @ k.transpose(2, 3)
        mask_bool = self.mask.bool()[:num_tokens, :num_tokens]
        attn_scores.masked_fill_(mask_bool, -torch.inf)
        attn_weights = torch.softmax(attn_scores / k.shape[-1]**0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)

        context_vec = (attn_weights @ v).transpose(1, 2)   # (b, T, heads, head_dim)
        context_vec = context_vec.contiguous().view(b, num_tokens, self.d_out)
        context_vec = self.out_proj(context_vec)
        return context_vec
    """,
}

# Extra code cells the student added, inserted after the cell that defines the given name
# ("" = the very first code cell, before `import torch`).
SETUP_CELL = "%matplotlib inline\n!pip install torch"
EXPLORATION_CELL = """\
# try it on "journey"
print(attn_scores_for_query(BOOK_INPUTS, BOOK_INPUTS[1]))
print(attn_scores_for_query(BOOK_INPUTS, BOOK_INPUTS[1]).shape)"""
STALE_CHECK_CELL = """\
# compare with the numbers in the book
scores_2 = attn_scores_for_query(BOOK_INPUTS, BOOK_INPUTS[1])
assert torch.allclose(scores_2, torch.tensor([0.9544, 1.4950, 1.4754, 0.8434, 0.7070, 1.0865]), atol=1e-4)
w_2 = softmax_naive(scores_2)
assert torch.allclose(w_2, torch.tensor([0.1385, 0.2379, 0.2333, 0.1240, 0.1082, 0.1581]), atol=1e-4)
assert torch.allclose(context_vector(w_2, BOOK_INPUTS), torch.tensor([0.4419, 0.6515, 0.5683]), atol=1e-4)
print("All tests passed!")"""
SCRATCH_CELL = """\
# scratch
print(atention_scores(BOOK_INPUTS))"""

STUB = re.compile(r'^(?P<indent>[ \t]*)raise NotImplementedError\("(?P<name>[\w.]+): fill in this step"\)$')


def fill_in(source: str, used: set[str]) -> str:
    """Replace each stub line of an exercise cell with the student's body for it."""
    lines = []
    for line in source.splitlines():
        match = STUB.match(line)
        if match and match["name"] in BODIES:
            body = textwrap.dedent(BODIES[match["name"]]).strip("\n")
            lines.append(textwrap.indent(body, match["indent"]))  # blank lines stay blank
            used.add(match["name"])
        else:
            lines.append(line)
    return "\n".join(lines)


def defined_name(source: str) -> str:
    match = re.search(r"^(?:def|class) (\w+)", source, re.MULTILINE)
    return match[1] if match else ""


def build() -> nbformat.NotebookNode:
    exercise = nbformat.read(EXERCISE, as_version=4)
    cells, used, stale = [], set(), None
    for cell in exercise.cells:
        if cell.cell_type != "code":
            cells.append(nbformat.from_dict(dict(cell)))
            continue
        if "import torch" in cell.source and not any(c.cell_type == "code" for c in cells):
            cells.append(new_code_cell(SETUP_CELL))
        cells.append(new_code_cell(fill_in(cell.source, used)))
        name = defined_name(cell.source)
        if name == "attn_scores_for_query":
            cells.append(new_code_cell(EXPLORATION_CELL))
        elif name == "context_vector":
            stale = new_code_cell(STALE_CHECK_CELL, execution_count=9)
            stale.outputs = [new_output("stream", name="stdout", text="All tests passed!\n")]
            cells.append(stale)
        elif name == "attention_scores":
            cells.append(new_code_cell(SCRATCH_CELL))
    missing = set(BODIES) - used
    if missing:
        sys.exit(f"the exercise notebook has no stub for: {', '.join(sorted(missing))}")

    notebook = nbformat.v4.new_notebook(metadata=exercise.metadata)
    for number, cell in enumerate(cells, start=1):
        cell["id"] = f"cell-{number}"
        cell["metadata"] = {}
        if cell.cell_type == "code" and cell is not stale:
            cell["outputs"] = []
            cell["execution_count"] = None
    notebook.cells = cells
    nbformat.validate(notebook)
    return notebook


def main() -> int:
    notebook = build()
    TARGET.write_text(nbformat.writes(notebook) + "\n", encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)} ({len(notebook.cells)} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
