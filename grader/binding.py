"""Bind the reference's weights to a student's parameters by what they are, not what they are called.

The rubric names a module's parameters (`W_query.weight` ...), and the grader loads its own weights
into the student's module under those names. Correct code often names them otherwise (`w_query`,
`last_Layer`), stores a matrix the other way round (`nn.Parameter(d_in, d_out)` where the reference
has `nn.Linear.weight`, shape (d_out, d_in)), or fuses three projections into one (`qkv`, shape
(3 * d_out, d_in)). `candidates()` lists the few bindings that fit the shapes: each says, for every
student parameter, which reference parameters it holds and how (`Part`). Shapes alone cannot tell a
square matrix from its transpose, nor which of two equal shapes is which, so the grader keeps a
binding only if the student's module, given the bound weights, reproduces the reference's output
on a probe input (`grader.engine`); that comparison runs in the grader's process.

Runs in the grader's process only; the student's parameter names and shapes are plain data from
the worker's reply.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import torch

MAX_CANDIDATES = 24  # bindings probed per case; a few fit in practice
MAX_STEPS = 20_000  # partial bindings tried per group of parameters, at most
MAX_PARAMETERS = 64  # more parameters on either side than this: no binding is searched for
FUSED = (3, 2)  # how many projections one fused parameter may hold, most likely first


@dataclass(frozen=True)
class Part:
    """One student parameter: the reference parameters it holds, joined along `axis` (in the
    reference's layout) and then transposed if `transpose`; `heads` > 1 interleaves them head by
    head ([q0, k0, v0, q1, k1, v1, ...]) instead of one after the other ([q, k, v])."""

    target: str
    sources: tuple[str, ...]
    axis: int = 0
    transpose: bool = False
    heads: int = 1

    def value(self, tensors: dict[str, torch.Tensor | None]) -> torch.Tensor | None:
        parts = [tensors.get(name) for name in self.sources]
        if any(p is None for p in parts):
            return None
        if len(parts) == 1:
            joined = parts[0]
        elif self.heads > 1:
            per_head = [p.chunk(self.heads, dim=self.axis) for p in parts]
            joined = torch.cat([chunk for head in zip(*per_head) for chunk in head], dim=self.axis)
        else:
            joined = torch.cat(parts, dim=self.axis)
        return joined.t() if self.transpose else joined

    def text(self) -> str:
        held = " + ".join(f"`{s}`" for s in self.sources)
        how = []
        if len(self.sources) > 1:
            how.append(f"fused{' head by head' if self.heads > 1 else ''}")
        if self.transpose:
            how.append("transposed")
        return f"`{self.target}` ← {held}" + (f" ({', '.join(how)})" if how else "")


@dataclass(frozen=True)
class Binding:
    parts: tuple[Part, ...]

    def apply(self, tensors: dict[str, torch.Tensor | None]) -> dict[str, torch.Tensor | None]:
        """Reference-named tensors (weights, initial values, gradients) under the student's names."""
        return {part.target: part.value(tensors) for part in self.parts}

    def renames(self) -> bool:
        return any(p.sources != (p.target,) or p.transpose for p in self.parts)

    def text(self) -> str:
        return ", ".join(part.text() for part in self.parts
                         if part.sources != (part.target,) or part.transpose)


def fits_by_name(student: list[tuple[str, tuple[int, ...]]], reference: dict[str, torch.Tensor]) -> bool:
    """Whether the reference's weights load under the contract's names, as they are."""
    shapes = dict(student)
    return all(shapes.get(name) == tuple(t.shape) for name, t in reference.items())


def candidates(student: list[tuple[str, tuple[int, ...]]], reference: dict[str, torch.Tensor],
               heads: int = 1) -> list[Binding]:
    """The bindings of `reference` (name -> tensor, in registration order) onto the student's
    parameters (name, shape; in registration order) that fit every shape, most likely first: the
    names' likeness first, then registration order. Every parameter of both sides is bound."""
    ref = [(name, tuple(t.shape)) for name, t in reference.items()]
    if len(student) > MAX_PARAMETERS or len(ref) > MAX_PARAMETERS:
        return []  # nothing a chapter's module has; the search would only cost time
    found: list[Binding] = []
    for group in ((2,), (1,), (0, 3, 4, 5)):  # matrices, vectors, anything else: bound apart
        mine = [(n, s) for n, s in student if len(s) in group]
        theirs = [(n, s) for n, s in ref if len(s) in group]
        options = _group_options(mine, theirs, heads)
        if not options:
            return []
        found = [Binding(b.parts + o) for b in found for o in options] if found else \
            [Binding(o) for o in options]
        found = found[:MAX_CANDIDATES]
    return _unique(found)


def _group_options(mine, theirs, heads) -> list[tuple[Part, ...]]:
    if not mine and not theirs:
        return [()]
    options = []
    named = _by_name(mine, theirs)
    if named is not None:
        options.append(named)
    options.extend(_in_order(mine, 0, theirs, 0, heads, [MAX_STEPS]))
    return options


def _by_name(mine, theirs) -> tuple[Part, ...] | None:
    """Each student parameter to the reference parameter its name is most like (one to one)."""
    if len(mine) != len(theirs):
        return None
    keys = {_key(name): name for name, _ in theirs}
    shapes = dict(theirs)
    parts, used = [], set()
    for name, shape in mine:
        close = difflib.get_close_matches(_key(name), list(keys), n=1, cutoff=0.6)
        if not close or keys[close[0]] in used:
            return None
        source = keys[close[0]]
        used.add(source)
        if shapes[source] == shape:
            parts.append(Part(name, (source,)))
        elif len(shape) == 2 and shapes[source] == shape[::-1]:
            parts.append(Part(name, (source,), transpose=True))
        else:
            return None
    return tuple(parts)


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9.]", "", name.lower())


def _in_order(mine, i, theirs, j, heads, budget: list[int]) -> list[tuple[Part, ...]]:
    """Bindings that keep registration order: each student parameter holds the next one, two or
    three reference parameters (fused), possibly transposed. `budget` bounds the search."""
    budget[0] -= 1
    if budget[0] < 0:
        return []
    if i == len(mine) or j == len(theirs):
        return [()] if j == len(theirs) and len(mine) - i <= 2 else []
    name, shape = mine[i]
    results = []
    for part, used in _parts_at(name, shape, theirs, j, heads):
        for rest in _in_order(mine, i + 1, theirs, j + used, heads, budget):
            results.append((part, *rest))
            if len(results) >= MAX_CANDIDATES:
                return results
    if len(mine) - i > len(theirs) - j:
        # A parameter the reference has no counterpart for (a bias kept when qkv_bias=False)
        # keeps its own value; the probe shows whether the output still is the reference's.
        results.extend(_in_order(mine, i + 1, theirs, j, heads, budget)[: MAX_CANDIDATES - len(results)])
    return results


def _parts_at(name, shape, theirs, j, heads):
    """The ways the student parameter `name` can hold reference parameters from index j on."""
    first = theirs[j][1]
    if shape == first:
        yield Part(name, (theirs[j][0],)), 1
    if len(shape) == 2 and shape == first[::-1]:  # a square matrix: both ways, the probe decides
        yield Part(name, (theirs[j][0],), transpose=True), 1
    for count in FUSED:
        group = theirs[j: j + count]
        if len(group) < count or any(s != first for _, s in group):
            continue
        sources = tuple(n for n, _ in group)
        for axis in range(len(first)):
            joined = list(first)
            joined[axis] *= count
            for transpose in (False, True) if len(first) == 2 else (False,):
                if tuple(joined[::-1] if transpose else joined) != shape:
                    continue
                yield Part(name, sources, axis, transpose), count
                if heads > 1 and first[axis] % heads == 0:
                    yield Part(name, sources, axis, transpose, heads), count


def _unique(bindings: list[Binding]) -> list[Binding]:
    seen, kept = set(), []
    for binding in bindings:
        if binding.parts not in seen:
            seen.add(binding.parts)
            kept.append(binding)
    return kept


__all__ = ["Binding", "Part", "candidates", "fits_by_name"]
