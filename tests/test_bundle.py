"""The student bundle: exercises, grader and visible cases with precomputed answers, no solutions;
grading from it gives the same feedback on the visible cases."""

import re
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, SOLUTIONS

from grader import load_rubric
from grader.bundle import build_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "attention-exercises"
    build_bundle(load_rubric(REPO_ROOT / "config.yaml"), out)
    return out


# The tensor code that solves the exercises (generic lines such as `with torch.no_grad():` are no secret)
DISTINCTIVE = ("@", "softmax", "masked_fill", "triu", "tril", ".view(", "transpose", "torch.cat(",
               "** 0.5", "**0.5", "exp(", ".sum(", "register_buffer", ".T")


def solution_lines() -> set[str]:
    """The distinctive lines of the reference solutions' bodies."""
    lines, inside = set(), False
    for line in SOLUTIONS.read_text().splitlines():
        stripped = line.strip()
        if stripped == "# BEGIN SOLUTION":
            inside = True
        elif stripped == "# END SOLUTION":
            inside = False
        elif inside and any(token in stripped for token in DISTINCTIVE):
            lines.add(stripped.split("  #")[0])  # the code, without its shape comment
    return lines


def run_from_bundle(bundle, *args):
    return subprocess.run([sys.executable, "-m", "grader", "check", *map(str, args)],
                          capture_output=True, text=True, cwd=bundle, timeout=180)


def test_the_bundle_holds_no_solution_code(bundle):
    files = [p for p in bundle.rglob("*") if p.is_file()]
    names = {p.relative_to(bundle).as_posix() for p in files}
    assert {"config.yaml", "expected.bin", "exercises/attention.ipynb", "exercises/attention.py",
            "grader/cli.py", "pyproject.toml", "README.md"} <= names
    assert not any(name.startswith("solutions") or "mistakes" in name for name in names)
    # what the hints (shown on every failure) and the exercises' own text spell out is no secret
    published = " ".join(h for step in load_rubric(REPO_ROOT / "config.yaml").steps for h in step.hints)
    published += (REPO_ROOT / "exercises" / "attention.py").read_text()
    secret = {line for line in solution_lines() if line not in published}
    assert len(secret) > 30
    for path in files:
        if path.suffix in (".py", ".ipynb", ".yaml", ".md", ".toml"):
            text = path.read_text(encoding="utf-8")
            leaked = [line for line in secret if line in text]
            assert not leaked, f"{path.name} contains solution code: {leaked[:3]}"
    import yaml

    rubric = yaml.safe_load((bundle / "config.yaml").read_text())
    assert "reference" not in rubric and "mistakes" not in rubric
    assert re.fullmatch(r"[0-9a-f]{64}", rubric["expected_sha256"])
    cases = [case for step in rubric["steps"] for case in step["cases"]]
    assert cases and all(case.get("visible") for case in cases)


def test_grading_from_the_bundle(bundle, tmp_path):
    full = run_from_bundle(bundle, SOLUTIONS)
    assert full.returncode == 0, full.stderr
    flat = " ".join(full.stdout.split())
    assert "hidden cases (other shapes, batch sizes and sequence lengths) are graded by the course" in flat
    maximum = re.search(r"Score: (\d+) / (\d+)", full.stdout)
    assert maximum and maximum[1] == maximum[2]

    faulty = run_from_bundle(bundle, REPO_ROOT / "examples" / "student_notebook.ipynb", "--format", "json")
    assert faulty.returncode == 1
    import json

    report = json.loads(faulty.stdout)
    failing = {s["id"]: s["mistake"] for s in report["steps"] if s["status"] == "failed"}
    assert failing == {"attention_weights": "softmax_wrong_dim", "scaled_attention_weights": "scaled_by_dk"}
    assert all("hidden case" not in s["feedback"] for s in report["steps"])


def test_a_tampered_answer_file_is_refused(bundle, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    data = bytearray((copy / "expected.bin").read_bytes())
    data[-10] ^= 0xFF
    (copy / "expected.bin").write_bytes(bytes(data))
    result = run_from_bundle(copy, SOLUTIONS)
    assert result.returncode == 2
    assert "does not match its checksum" in result.stderr


def _same(a, b) -> bool:
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_a_factorys_seeded_weights_travel_as_their_recipe_and_come_back_the_same(rubric):
    """GPT-2 small's confirmation weights (2.4 million numbers) are stored as the recipe that makes
    them, and read back as exactly the tensors the course computed, through the bundle's own wire."""
    from grader import wire
    from grader.bundle import _compacted, _expanded, _expected_record
    from grader.engine import prepare

    step = rubric.step("gpt2_small_attention")
    (item,), _ = prepare(rubric, [step])
    stored = {"request": item.request, "expected": [_expected_record(step, e) for e in item.expected],
              "mistakes": {}}
    full, compact = wire.encode(stored), wire.encode(_compacted(stored, rubric, step))
    assert len(compact) < len(full) / 4, (len(compact), len(full))
    assert _same(_expanded(wire.decode(compact), rubric), wire.decode(full))
