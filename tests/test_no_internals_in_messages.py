"""No message a student reads names the grader's internals: its stand-ins (Replay), its shells, its
worker module or a traceback of the grader's own. Every corpus the suite has that finishes quickly
(the hostile submissions that stop at once, tests/styles/, chapter 3's and chapter 4's known
mistakes and variants, and composites that look into the modules the grader puts in place of theirs)
is graded in one batch per rubric, and every report's JSON is searched."""

from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, RUBRIC, SOLUTIONS, grade_many

from grader import load_rubric

TESTS = Path(__file__).resolve().parent
INTERNALS = ("Replay", "build_shell", "shells.", "_grader_", "grader/worker.py", "grader.worker",
             "Traceback")

# the hostile submissions that are stopped at once (not the loops, floods, bombs and hoards)
QUICK_HOSTILE = ("sys_exit_at_import", "os_exit_in_one_step", "segfault_in_one_step",
                 "recursion_blowup_in_one_step", "monkeypatched_comparisons", "lying_tensor_subclass",
                 "forged_report_at_import", "imports_reference_solutions", "mutates_inputs_in_place",
                 "interrupts_in_steps", "procedure_does_nothing", "constructor_always_raises",
                 "forward_always_raises", "wraps_torch_multihead_attention",
                 "forges_factory_parameters")
HOSTILE_PLACES = {"{REPO_ROOT}": str(REPO_ROOT), "{MARKER}": "no-internals", "{SHM_KEY}": "4242",
                  "{OUTSIDE}": "/tmp/no-internals-escaped.txt", "{SOCKET}": "/tmp/no-internals.sock"}


def hostile(name: str) -> str:
    """The reference with hostile snippet `name` appended (or put where test_hostile puts it)."""
    snippet = (TESTS / "hostile" / f"{name}.py").read_text()
    for place, value in HOSTILE_PLACES.items():
        snippet = snippet.replace(place, value)
    source = SOLUTIONS.read_text()
    if name == "sys_exit_at_import":
        at = source.index("class CausalAttention(")
        return source[:at] + snippet + "\n\n" + source[at:]
    return source + "\n\n" + snippet


def looks_into(source: str, line: str, what: str) -> str:
    """`source` with `what` (a line of code, indented as `line`) put before the line `line`."""
    assert source.count(line) == 1, line
    indent = line[:len(line) - len(line.lstrip())]
    return source.replace(line, f"{indent}{what}\n{line}")


def chapter3_mistakes() -> dict[str, str]:
    """Each of tests/test_mistakes.py's chapter-3 mistakes, written into the reference."""
    import re

    from test_mistakes import MISTAKES

    source = SOLUTIONS.read_text()
    return {f"mistake_{m.name}": re.sub(m.pattern, m.replacement, source, count=m.count)
            for m in MISTAKES}


def chapter3_corpus() -> dict[str, str]:
    styles = {f"style_{p.stem}": p.read_text() for p in sorted((TESTS / "styles").glob("*.py"))}
    heads = "        head_outputs = [head(x) for head in self.heads]"
    return styles | chapter3_mistakes() | {
        f"hostile_{name}": hostile(name) for name in QUICK_HOSTILE} | {
        # a wrapper that reads its heads' weights, and one that names their type in an error
        "wrapper_reads_a_heads_weights": looks_into(SOLUTIONS.read_text(), heads,
                                                    "assert self.heads[0].W_query.weight.ndim == 2"),
        "wrapper_asserts_its_heads_type": looks_into(
            SOLUTIONS.read_text(), heads, "assert False, (type(self.heads[0]), self.heads[0])")}


def chapter4_corpus() -> dict[str, str]:
    from test_chapter4 import SOURCE, SUBMISSIONS

    out = "        return self.out_head(x)"
    block = "        x = self.drop_shortcut(self.ff(self.norm2(x)))"
    return {**SUBMISSIONS,
            # composites that look into the submodules the grader grades them without
            "gpt_reads_its_final_norms_eps": looks_into(SOURCE, out, "assert self.final_norm.eps > 0"),
            "gpt_asserts_its_final_norms_type": looks_into(
                SOURCE, out, "assert isinstance(self.final_norm, LayerNorm), type(self.final_norm)"),
            "gpt_indexes_its_final_norm": looks_into(SOURCE, out, "self.final_norm[0]"),
            "gpt_counts_a_blocks_parameters": looks_into(
                SOURCE, out, "assert sum(p.numel() for p in self.trf_blocks[0].parameters()) > 0"),
            "block_calls_its_ff_layer_by_layer": looks_into(SOURCE, block, "self.ff.layers[0](x)"),
            "block_iterates_its_ff": looks_into(SOURCE, block, "[layer for layer in self.ff]"),
            "block_gives_its_ff_a_list": looks_into(SOURCE, block, "self.ff([x])")}


@pytest.fixture(scope="module")
def fast_rubric(tmp_path_factory):
    """The course rubric with tight limits (as test_hostile's), so that hostile code stops quickly."""
    data = yaml.safe_load(RUBRIC.read_text())
    data["reference"] = str(SOLUTIONS)
    data["mistakes"] = str(SOLUTIONS.parent / "mistakes.py")
    data["defaults"].update(step_timeout=5, load_timeout=8, submission_timeout=120, output_kb=64,
                            memory_mb=1536, cpu_seconds=60)
    path = tmp_path_factory.mktemp("rubric") / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_rubric(path)


@pytest.fixture(scope="module")
def reports(fast_rubric, tmp_path_factory):
    chapter4 = load_rubric(REPO_ROOT / "examples" / "chapter4" / "config.yaml")
    return {**grade_many(fast_rubric, chapter3_corpus(), tmp_path_factory.mktemp("chapter3")),
            **grade_many(chapter4, chapter4_corpus(), tmp_path_factory.mktemp("chapter4"))}


def internals_named(report) -> list[str]:
    """Each internal name the report's text names, with the step (or note) that names it."""
    import json

    found = []
    data = json.loads(report.to_json())
    places = [("notes", note) for note in data.get("notes", [])]
    for step in data.get("steps", []):
        places.append((step["id"], json.dumps(step)))
    for where, text in places:
        found += [f"{where}: {name}" for name in INTERNALS if name in text]
    if not found:  # anything else the JSON holds
        found += [f"report: {name}" for name in INTERNALS if name in report.to_json()]
    return found


def test_no_report_of_any_corpus_names_the_graders_internals(reports):
    assert len(reports) == len(chapter3_corpus()) + len(chapter4_corpus())
    named = {name: internals_named(report) for name, report in reports.items()}
    assert not {name: found for name, found in named.items() if found}, named
