"""No evidence, no points: every solution block replaced by code that does nothing.

For every `BEGIN/END SOLUTION` block of the reference, four submissions replace it: by `return
None`, by `raise ValueError(...)`, by returning the first argument, and (for a function or a
`forward`) by zeros of the right shape. Each gets a complete report; a step whose function or
constructor raises scores 0; and a trivial body passes no check beyond those listed here, with the
reason each may pass.
"""

import re

import pytest
from conftest import SOLUTIONS, grade_many

SOURCE = SOLUTIONS.read_text()
LINES = SOURCE.splitlines()

# Checks a trivial body may still pass, and why:
# - a right constructor with a trivial forward still has the right parameters, buffers and
#   initialisation, and still refuses invalid arguments;
# - zeros "of the right shape" have the right shape (and dtype);
# - a function handed its input back has the input's shape and dtype; for attention_dropout the
#   input is the right answer with p = 0; a procedure that does nothing leaves the shells' shapes.
CONSTRUCTOR_RIGHT = {"parameters", "buffers", "init", "raises"}
ALLOWED = {
    ("function", "none"): set(),
    ("function", "raise"): set(),
    ("function", "first_arg"): {"shape", "dtype"},
    ("function", "zeros"): {"shape", "dtype"},
    ("init", "none"): set(),
    ("init", "raise"): set(),
    ("init", "first_arg"): set(),
    ("forward", "none"): CONSTRUCTOR_RIGHT,
    ("forward", "raise"): CONSTRUCTOR_RIGHT,
    ("forward", "first_arg"): CONSTRUCTOR_RIGHT,
    ("forward", "zeros"): CONSTRUCTOR_RIGHT | {"shape"},
    ("factory", "none"): set(),
    ("factory", "raise"): set(),
    ("factory", "first_arg"): set(),
}
SPECIAL = {  # (step, variant) -> checks it may pass beyond ALLOWED, and why
    ("attention_dropout", "first_arg"): {"values"},  # dropout with p = 0 is the identity
    ("transfer_weights_v2_to_v1", "none"): {"shape"},  # the shells keep their shapes
    ("transfer_weights_v2_to_v1", "first_arg"): {"shape"},
}
FACTORIES = {"wrapper_with_2d_output", "gpt2_small_attention"}
PROCEDURES = {"transfer_weights_v2_to_v1"}


def blocks():
    """(step, role, def line index, begin index, end index, first argument) per solution block."""
    found = []
    for begin, line in enumerate(LINES):
        if line.strip() != "# BEGIN SOLUTION":
            continue
        end = next(i for i in range(begin, len(LINES)) if LINES[i].strip() == "# END SOLUTION")
        at = next(i for i in range(begin, -1, -1) if re.match(r"\s*def ", LINES[i]))
        owner = next(i for i in range(at, -1, -1) if re.match(r"(def|class) ", LINES[i]))
        step = re.match(r"(?:def|class) (\w+)", LINES[owner]).group(1)
        method = re.match(r"\s*def (\w+)\((.*)\)", LINES[at])
        args = [a.split("=")[0].strip() for a in method.group(2).split(",") if a.strip()]
        args = [a for a in args if a != "self"]
        if LINES[at].startswith("def "):
            role = "factory" if step in FACTORIES else "function"
        else:
            role = "init" if method.group(1) == "__init__" else "forward"
        found.append((step, role, begin, end, args[0] if args else None))
    return found


def replaced(begin: int, end: int, body: str) -> str:
    indent = re.match(r"\s*", LINES[begin]).group(0)
    return "\n".join(LINES[:begin] + [indent + body] + LINES[end + 1 :]) + "\n"


ZEROS = {
    "function": """
_original_{step} = {step}


def {step}(*args):
    result = _original_{step}(*args)
    if isinstance(result, tuple):
        return tuple(torch.zeros_like(r) for r in result)
    return torch.zeros_like(result)
""",
    "forward": """
_original_forward = {step}.forward
{step}.forward = lambda self, x: torch.zeros_like(_original_forward(self, x))
""",
}


def submissions():
    made = {}
    for step, role, begin, end, first in blocks():
        key = f"{step}__{role}"
        made[(key, "none")] = (step, role, replaced(begin, end, "return None"))
        made[(key, "raise")] = (step, role, replaced(begin, end, 'raise ValueError("broken on purpose")'))
        if first is not None:
            made[(key, "first_arg")] = (step, role, replaced(begin, end, f"return {first}"))
        if role in ZEROS and step not in PROCEDURES:
            made[(key, "zeros")] = (step, role, SOURCE + ZEROS[role].format(step=step))
    return made


SUBMISSIONS = submissions()


@pytest.fixture(scope="module")
def reports(rubric, tmp_path_factory):
    sources = {f"{key}__{variant}": source for (key, variant), (_, _, source) in SUBMISSIONS.items()}
    return grade_many(rubric, sources, tmp_path_factory.mktemp("sweep"))


def test_the_sweep_covers_every_solution_block(rubric):
    steps = {step for step, *_ in blocks()}
    assert steps == {step.id for step in rubric.steps}
    assert len(SUBMISSIONS) >= 80


@pytest.mark.parametrize("key", sorted(SUBMISSIONS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_a_trivial_body_earns_nothing_it_did_not_show(key, reports, rubric):
    step_id, role, _ = SUBMISSIONS[key]
    variant = key[1]
    report = reports[f"{key[0]}__{variant}"]
    assert [s.id for s in report.steps] == [s.id for s in rubric.steps]  # a complete report
    result = next(s for s in report.steps if s.id == step_id)
    assert result.status != "passed", result.feedback
    allowed = ALLOWED[(role if step_id not in PROCEDURES else "function", variant)]
    allowed = allowed | SPECIAL.get((step_id, variant), set())
    passed = {c.name for c in result.checks if c.passed}
    assert passed <= allowed, (passed - allowed, result.feedback)
    assert result.score == sum(c.score for c in result.checks)
    if variant == "raise" and role in ("function", "init", "factory"):
        assert result.score == 0, result.feedback
    # every check that earned nothing says why, and one with no evidence says "not judged"
    for check in result.checks:
        assert check.message
        if not check.judged:
            assert check.score == 0 and check.message.startswith("not judged")
