"""Stand-ins hold nothing the reference computed in a form that reproduces it (issue 32).

A composite step (chapter 3's MultiHeadAttentionWrapper, chapter 4's TransformerBlock and
GPTModel) is graded with the grader's stand-ins for its submodules (grader.shells.Replay), and
everything in the worker is readable by the student's code. Each hostile submission here does no
work of its own: it gathers every tensor its stand-ins hold (attributes, containers, closures) and
every tensor gc.get_objects() reaches in the worker, and looks for the reference's recorded input
of a stand-in by the one test that needs no reference: calling the stand-in on it gives back a
tensor the worker holds. Where it finds one it feeds it on (skipping the work before the
stand-in); where it finds none it falls back to a guess that skips that work. Doing no work, it
must earn nothing on `values`. The reference, graded in the same batch, earns every point."""

from pathlib import Path

import pytest
from conftest import RUBRIC, SOLUTIONS

from grader import load_rubric

COURSE4 = Path(__file__).resolve().parent.parent / "examples" / "chapter4"
GPT = (COURSE4 / "solutions" / "gpt.py").read_text()
ATTENTION = SOLUTIONS.read_text()

# What the hostile submissions share: every tensor the worker lets them reach, and the test that
# picks out a stand-in's recorded input among them.
HOARD = '''
import gc as _gc
import types as _types


def _hoard(*roots):
    """Every tensor reachable from `roots` (attributes, containers, closures, bound methods and
    their classes' forward) and every tensor in gc.get_objects() or in a container it lists."""
    found, seen, stack = [], set(), list(roots)
    for obj in _gc.get_objects():
        stack.append(obj)
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            found.append(obj)
        elif isinstance(obj, dict):
            stack += [v for v in obj.values() if isinstance(v, (torch.Tensor, list, tuple, dict))]
        elif isinstance(obj, (list, tuple)):
            stack += [v for v in obj if isinstance(v, (torch.Tensor, list, tuple, dict))]
        elif isinstance(obj, _types.MethodType):
            stack += [obj.__func__, obj.__self__]
        elif isinstance(obj, _types.FunctionType):
            for cell in obj.__closure__ or ():
                try:
                    stack.append(cell.cell_contents)
                except ValueError:
                    pass
            stack += [obj.__defaults__ or (), obj.__kwdefaults__ or {}]
        elif isinstance(obj, nn.Module):
            stack += [vars(obj), getattr(type(obj), "forward", None), obj.forward]
    return [t for t in found if not isinstance(t, nn.Parameter)]


def _recorded_input(stand_in, hoard):
    """A tensor the stand-in answers with a tensor the worker already holds: what the reference
    gave it. None where there is none."""
    held = {}
    for t in hoard:
        held.setdefault(tuple(t.shape), []).append(t)
    for candidate in hoard:
        if not candidate.is_floating_point():
            continue
        if isinstance(getattr(stand_in, "calls", None), int):
            stand_in.calls = 0
        try:
            with torch.no_grad():
                answer = stand_in(candidate)
        except Exception:
            continue
        if isinstance(getattr(stand_in, "calls", None), int):
            stand_in.calls = 0
        if any(t is not candidate and t.dtype == answer.dtype and torch.equal(t, answer)
               for t in held.get(tuple(answer.shape), [])):
            return candidate
    return None
'''

# TransformerBlock: the reference's input of norm2 is x after the attention and its shortcut; fed
# on, it skips the attention. With none found it skips the attention anyway.
BLOCK_FORWARD = '''    def forward(self, x):
        h = _recorded_input(self.norm2, _hoard(self.norm1, self.norm2, self.ff, x))
        if h is None:
            h = x
        return h + self.ff(self.norm2(h))
'''
# GPTModel: the reference's input of the blocks is the embedded tokens; with none found it leaves
# out the positional embedding.
GPT_FORWARD = '''    def forward(self, in_idx):
        x = _recorded_input(self.trf_blocks, _hoard(self.trf_blocks, self.final_norm, in_idx))
        if x is None:
            x = self.tok_emb(in_idx)
        return self.out_head(self.final_norm(self.trf_blocks(x)))
'''
# MultiHeadAttentionWrapper: it never gives its heads the input; it concatenates, in head order,
# the first tensor of the output's shape each head holds (or what the head gives on zeros).
WRAPPER_FORWARD = '''    def forward(self, x):
        pieces = []
        for head in self.heads:
            held = [t for t in _walk(head) if t.dim() == 3 and t.shape[:2] == x.shape[:2]]
            pieces.append(held[0] if held else head(torch.zeros_like(x)))
        return torch.cat(pieces, dim=-1)
'''
WRAPPER_ON_ZEROS = '''    def forward(self, x):
        return torch.cat([head(torch.zeros_like(x)) for head in self.heads], dim=-1)
'''
WALK = '''

def _walk(module):
    """The tensors a module holds in its own attributes and their lists and dicts."""
    out, stack = [], list(vars(module).values())
    while stack:
        obj = stack.pop()
        if isinstance(obj, torch.Tensor):
            out.append(obj)
        elif isinstance(obj, dict):
            stack += list(obj.values())
        elif isinstance(obj, (list, tuple)):
            stack += list(obj)
    return out
'''


def with_forward(source: str, class_name: str, forward: str, helpers: str = HOARD + WALK) -> str:
    """`source` with `class_name`'s forward replaced by `forward`, and the helpers appended."""
    start = source.index(f"class {class_name}(")
    begin = source.index("    def forward(self", start)
    rest = source.find("\nclass ", begin)
    cell = source.find("\n# %%", begin)
    end = min(i for i in (rest, cell, len(source)) if i != -1)
    return source[:begin] + forward + source[end:] + "\n" + helpers


def graded(rubric_path: Path, step_ids: list[str], sources: dict[str, str], folder: Path) -> dict:
    """Grade `sources` on the steps `step_ids` only, in one batch: name -> {step id: StepResult}."""
    from concurrent.futures import ThreadPoolExecutor

    from grader.engine import grade_prepared, prepare
    from grader.sandbox import Zygote
    from grader.submission import read_submission

    rubric = load_rubric(rubric_path)
    steps = [step for step in rubric.steps if step.id in step_ids]
    prepared, diagnoser = prepare(rubric, steps)
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in sources.items():
        (folder / f"{name}.py").write_text(source)
    with Zygote() as zygote, ThreadPoolExecutor(max_workers=2) as pool:
        zygote.prepare_for(prepared)
        futures = {name: pool.submit(grade_prepared, read_submission(folder / f"{name}.py"),
                                     rubric, prepared, diagnoser, zygote) for name in sources}
        return {name: {s.id: s for s in future.result().steps} for name, future in futures.items()}


def values_check(step):
    return next(c for c in step.checks if c.name == "values")


def points_of(rubric_path: Path, step_id: str, check: str) -> float:
    step = next(s for s in load_rubric(rubric_path).steps if s.id == step_id)
    return sum(c.points for c in step.checks if c.check == check)


@pytest.fixture(scope="module")
def chapter4(tmp_path_factory):
    sources = {"reference": GPT,
               "block_feeds_norm2_what_its_stand_ins_hold":
                   with_forward(GPT, "TransformerBlock", BLOCK_FORWARD),
               "gpt_feeds_the_blocks_what_their_stand_in_holds":
                   with_forward(GPT, "GPTModel", GPT_FORWARD)}
    return graded(COURSE4 / "config.yaml", ["TransformerBlock", "GPTModel"], sources,
                  tmp_path_factory.mktemp("stand_ins4"))


@pytest.fixture(scope="module")
def chapter3(tmp_path_factory):
    sources = {"reference": ATTENTION,
               "wrapper_concatenates_what_its_heads_hold":
                   with_forward(ATTENTION, "MultiHeadAttentionWrapper", WRAPPER_FORWARD),
               "wrapper_gives_its_heads_zeros":
                   with_forward(ATTENTION, "MultiHeadAttentionWrapper", WRAPPER_ON_ZEROS)}
    return graded(RUBRIC, ["MultiHeadAttentionWrapper"], sources, tmp_path_factory.mktemp("stand_ins3"))


def test_the_reference_earns_values_beside_the_hostile_ones(chapter3, chapter4):
    for step in [*chapter4["reference"].values(), *chapter3["reference"].values()]:
        assert step.status == "passed", (step.id, step.feedback)


@pytest.mark.parametrize("name, step_id", [
    ("block_feeds_norm2_what_its_stand_ins_hold", "TransformerBlock"),
    ("gpt_feeds_the_blocks_what_their_stand_in_holds", "GPTModel"),
])
def test_a_composite_that_feeds_on_what_its_stand_ins_hold_earns_no_values(chapter4, name, step_id):
    step = chapter4[name][step_id]
    check = values_check(step)
    assert points_of(COURSE4 / "config.yaml", step_id, "values") > 0
    assert not check.passed and check.score == 0, (step.status, check.message)
    assert step.status != "passed"


@pytest.mark.parametrize("name", ["wrapper_concatenates_what_its_heads_hold",
                                  "wrapper_gives_its_heads_zeros"])
def test_a_wrapper_that_never_gives_its_heads_the_input_earns_no_values(chapter3, name):
    step = chapter3[name]["MultiHeadAttentionWrapper"]
    check = values_check(step)
    assert points_of(RUBRIC, "MultiHeadAttentionWrapper", "values") > 0
    assert not check.passed and check.score == 0, (step.status, check.message)
