"""Pictures in the feedback (issue 31): a failed visible case's matrix, expected beside obtained.

The expected numbers are computed here from the book's inputs, never read off the grader's output:
the example notebook's attention_weights takes the softmax over dim 0 (queries) where the book takes
it over the keys, so its figure's colour scale runs from the least to the largest weight of the two
softmaxes of inputs @ inputs.T.
"""

import dataclasses
import json
import os
import pty
import re
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib

import pytest
import torch
from conftest import REPO_ROOT, RUBRIC, SOLUTIONS, grade, grade_many
from hypothesis import given
from hypothesis import strategies as st
from test_html_report import CHROMIUM, FLAGS, needs_browser, rendered_text

from grader import load_rubric
from grader.figures import matrix_figure
from grader.models import Figure, Report
from grader.report import render_html, render_markdown, render_text
from grader.report.figures import SCALE, SPECIAL, svg, terminal
from grader.report.html import render_html_fragment
from grader.rubric import Labels

NOTEBOOK = REPO_ROOT / "examples" / "student_notebook.ipynb"
BOOK_INPUTS = torch.tensor([[0.43, 0.15, 0.89], [0.55, 0.87, 0.66], [0.57, 0.85, 0.64],
                            [0.22, 0.58, 0.33], [0.77, 0.25, 0.10], [0.05, 0.80, 0.55]])
TOKENS = ["Your", "journey", "starts", "with", "one", "step"]
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def notebook_report():
    return grade(NOTEBOOK)


def weights_over_queries_and_keys() -> tuple[torch.Tensor, torch.Tensor]:
    scores = BOOK_INPUTS @ BOOK_INPUTS.T
    return torch.softmax(scores, dim=-1), torch.softmax(scores, dim=0)


def cells(svg_text: str) -> list[ET.Element]:
    return [e for e in ET.fromstring(svg_text).iter(f"{SVG}rect") if e.find(f"{SVG}title") is not None]


def png_colours(data: bytes) -> set[str]:
    """The #rrggbb colours of an 8-bit RGB or RGBA PNG (what chromium's screenshot writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = {}, 8
    while at < len(data):
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        chunks.setdefault(kind, []).append(data[at + 8:at + 8 + size])
        at += 12 + size
    width, height, depth, colour_type = struct.unpack(">IIBB", chunks[b"IHDR"][0][:10])
    assert depth == 8 and colour_type in (2, 6)
    step = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(b"".join(chunks[b"IDAT"])), width * step
    previous, found = bytearray(stride), set()
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - step] if i >= step else 0
            up, corner = previous[i], previous[i - step] if i >= step else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                guess = left + up - corner
                near = min((abs(guess - left), 0, left), (abs(guess - up), 1, up),
                           (abs(guess - corner), 2, corner))[2]
                line[i] = (line[i] + near) & 255
        found.update(bytes(line[i:i + 3]).hex() for i in range(0, stride, step))
        previous = line
    return {f"#{colour}" for colour in found}


# ------------------------------------------------------------------------------ the notebook


def test_softmax_over_the_wrong_dimension_shows_both_matrices_on_one_scale(notebook_report):
    step = next(s for s in notebook_report.steps if s.id == "attention_weights")
    expected, obtained = weights_over_queries_and_keys()
    (figure,) = step.figures
    assert torch.allclose(torch.tensor(figure.expected, dtype=torch.float64), expected.double(), atol=1e-6)
    assert torch.allclose(torch.tensor(figure.obtained, dtype=torch.float64), obtained.double(), atol=1e-6)
    assert figure.rows == figure.cols == tuple(TOKENS)
    assert (figure.row_name, figure.col_name) == ("query", "key")
    outside = ~torch.isclose(obtained.double(), expected.double(), atol=1e-5, rtol=1e-4)
    assert torch.tensor(figure.outside).equal(outside)
    low, high = min(expected.min(), obtained.min()).item(), max(expected.max(), obtained.max()).item()
    picture = svg(figure)
    desc = ET.fromstring(picture).find(f"{SVG}desc").text
    assert f"from {low:.3g} to {high:.3g}" in desc
    assert f"{int(outside.sum())} cell(s) outside the tolerance" in desc
    # the README's picture is this one (regenerate with grader.report.figures.svg when it changes)
    shown = ET.parse(REPO_ROOT / "examples" / "feedback_picture.svg").getroot()
    assert shown.find(f"{SVG}desc").text == desc


def test_one_querys_wrongly_scaled_weights_are_a_picture_of_one_row(notebook_report):
    step = next(s for s in notebook_report.steps if s.id == "scaled_attention_weights")
    (figure,) = step.figures
    assert len(figure.expected) == 1 and len(figure.expected[0]) == 6
    assert figure.rows == ("journey",) and figure.cols == tuple(TOKENS)


def test_the_figures_survive_the_reports_json(notebook_report):
    text = notebook_report.to_json()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert Report.from_json(text) == notebook_report


@needs_browser
def test_the_browser_draws_the_notebooks_pictures_with_their_scale_and_labels(tmp_path, notebook_report):
    expected, obtained = weights_over_queries_and_keys()
    low, high = min(expected.min(), obtained.min()).item(), max(expected.max(), obtained.max()).item()
    html = render_html(notebook_report)
    text = rendered_text(tmp_path, html)
    for word in ("expected", "yours", "query", "key", *TOKENS, f"{low:.3g}", f"{high:.3g}",
                 "outside the tolerance"):
        assert word in text, word
    # the screenshot: the report's own figures under its own style, on one screen (a whole page
    # is 5,000 pixels high, slow to read back in Python)
    style = re.search(r"<style>.*?</style>", html, re.S).group(0)
    figures = "".join(re.findall(r'<figure class="picture">.*?</figure>', html, re.S))
    page, shot = tmp_path / "figures.html", tmp_path / "figures.png"
    page.write_text(f"<!DOCTYPE html><html><head>{style}</head><body>{figures}</body></html>",
                    encoding="utf-8")
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'shot-profile'}",
                    "--window-size=900,800", f"--screenshot={shot}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    colours = png_colours(shot.read_bytes())
    # the least weight is the scale's first colour, the largest its last, each a cell of its own
    assert SCALE[0] in colours and SCALE[-1] in colours


def test_check_in_a_notebook_shows_the_pictures(notebook_report):
    fragment = render_html_fragment(notebook_report)
    pictures = re.findall(r"<svg.*?</svg>", fragment, re.S)
    assert len(pictures) == 2
    for picture in pictures:
        root = ET.fromstring(picture)
        assert root.get("role") == "img" and root.get("aria-label")
        assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}desc") is not None


# ------------------------------------------------------------------------------ the terminal


def _check_command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "grader", "check", str(NOTEBOOK), "--step", "attention_weights",
            *extra]


def test_a_terminal_shows_the_matrix_in_shades_and_a_pipe_or_json_does_not():
    piped = subprocess.run(_check_command(), capture_output=True, text=True, timeout=300,
                           cwd=REPO_ROOT)
    assert "attention_weights" in piped.stdout and not set("░▒▓█") & set(piped.stdout)
    as_json = subprocess.run(_check_command("--format", "json"), capture_output=True, text=True,
                             timeout=300, cwd=REPO_ROOT)
    json.loads(as_json.stdout)
    main, child = pty.openpty()
    process = subprocess.Popen(_check_command("--colour", "never"), stdout=child, stderr=child,
                               cwd=REPO_ROOT)
    os.close(child)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    process.wait(timeout=300)
    os.close(main)
    text = shown.decode("utf-8", "replace")
    assert set("░▒▓█") & set(text) and "journey" in text and "!" in text


def test_the_feedback_files_markdown_shows_the_shades(notebook_report):
    assert set("░▒▓█") & set(render_markdown(notebook_report))
    assert not set("░▒▓█") & set(render_text(notebook_report))  # not asked for: none


# ------------------------------------------------------------------------------ what the rubric says


WRONG = {
    # the upper triangle masked instead of the lower one: the book's triangle, mirrored
    "causal_attention_weights": '''
def causal_attention_weights(queries, keys):
    scores = queries @ keys.T / keys.shape[-1] ** 0.5
    mask = torch.tril(torch.ones(scores.shape), diagonal=-1).bool()
    return torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
''',
    "attention_weights": '''
def attention_weights(attn_scores):
    return torch.softmax(attn_scores, dim=0)
''',
    "scaled_attention_weights": '''
def scaled_attention_weights(queries, keys):
    return torch.softmax(queries @ keys.T, dim=-1)
''',
}


@pytest.fixture(scope="module")
def rubric_reports(tmp_path_factory):
    """Three failed steps: causal weights with labels that hold markup; attention_weights with
    `pictures: false`; scaled_attention_weights whose every case is hidden."""
    rubric = load_rubric(RUBRIC)
    steps = {s.id: s for s in rubric.steps}
    markup = ("<b>Your</b>", "journey&", '"starts"', "]]>", "wi\x1bth", "one</svg>")
    causal = steps["causal_attention_weights"]
    causal = dataclasses.replace(causal, cases=tuple(
        dataclasses.replace(c, labels=Labels(markup, markup)) if c.visible else c
        for c in causal.cases))
    quiet = dataclasses.replace(steps["attention_weights"], pictures=False)
    scaled = steps["scaled_attention_weights"]
    hidden = dataclasses.replace(scaled, cases=tuple(
        dataclasses.replace(c, visible=False) for c in scaled.cases))
    small = dataclasses.replace(rubric, steps=(causal, quiet, hidden))
    source = SOLUTIONS.read_text()
    for name, wrong in WRONG.items():
        source = re.sub(rf"\ndef {name}\(.*?(?=\n(def|class) )", wrong, source, count=1, flags=re.S)
    return grade_many(small, {"wrong": source}, tmp_path_factory.mktemp("pictures"))["wrong"]


def test_a_mask_on_the_wrong_triangle_shows_the_triangles_in_the_zero_colour(rubric_reports):
    step = next(s for s in rubric_reports.steps if s.id == "causal_attention_weights")
    assert step.status == "failed"
    (figure,) = step.figures
    picture = svg(figure)
    zero = SPECIAL["zero"][0]
    drawn = cells(picture)
    n = len(figure.expected)
    expected_zeros = {(r, c) for r in range(n) for c in range(n) if c > r}  # the book's mask
    obtained_zeros = {(r, c) for r in range(n) for c in range(n) if c < r}  # this student's
    panel = [drawn[:n * n], drawn[n * n:2 * n * n]]
    assert {(i // n, i % n) for i, e in enumerate(panel[0]) if e.get("fill") == zero} == expected_zeros
    assert {(i // n, i % n) for i, e in enumerate(panel[1]) if e.get("fill") == zero} == obtained_zeros
    assert "0 (masked or dropped)" in picture
    outlined = {(r, c) for r, row in enumerate(figure.outside) for c, bad in enumerate(row) if bad}
    assert expected_zeros | obtained_zeros <= outlined  # a softmax weight is never 0


def test_labels_with_markup_are_text_in_the_picture_and_the_page(rubric_reports):
    step = next(s for s in rubric_reports.steps if s.id == "causal_attention_weights")
    html = render_html(rubric_reports)
    assert "<b>Your</b>" not in html and "one</svg>" not in html and "\x1b" not in html
    for picture in re.findall(r"<svg.*?</svg>", html, re.S):
        texts = [t.text for t in ET.fromstring(picture).iter(f"{SVG}text")]
        assert "<b>Your</b>" in texts and "]]>" in texts
    assert step.figures[0].rows[0] == "<b>Your</b>"


def test_pictures_false_and_a_hidden_case_draw_nothing(rubric_reports):
    steps = {s.id: s for s in rubric_reports.steps}
    assert steps["attention_weights"].status == "failed"
    assert steps["scaled_attention_weights"].status == "failed"
    assert steps["attention_weights"].figures == () and steps["scaled_attention_weights"].figures == ()
    html = render_html(rubric_reports)
    assert html.count("<svg") == 1


# ------------------------------------------------------------------------------ any values


def test_a_dropout_figure_shows_dropped_cells_and_names_the_scale():
    want = torch.tensor([[2.0, 0, 2, 0]] * 4)
    got = torch.tensor([[1.0, 1, 0, 0]] * 4)
    figure = matrix_figure("case `p_half`: output", want, got, 1e-5, 1e-4, None, dropout=True)
    assert figure.kind == "dropout"
    picture = svg(figure)
    assert "0 (dropped)" in picture
    ET.fromstring(picture)


def test_outputs_that_are_no_matrix_or_too_large_or_equal_draw_nothing():
    assert matrix_figure("t", torch.zeros(33, 3), torch.ones(33, 3), 1e-5, 1e-4) is None
    assert matrix_figure("t", torch.zeros(3, 3), torch.zeros(3, 3), 1e-5, 1e-4) is None
    assert matrix_figure("t", torch.zeros(3, 3), torch.zeros(3, 4), 1e-5, 1e-4) is None
    assert matrix_figure("t", torch.tensor(1.0), torch.tensor(2.0), 1e-5, 1e-4) is None


def test_a_head_slice_is_the_one_that_differs_most():
    want = torch.zeros(2, 3, 4, 4)
    got = want.clone()
    got[1, 2, 0, 0] = 1.0
    got[0, 0, 0, :2] = 1.0
    got[1, 2, 1, :] = 1.0
    figure = matrix_figure("t", want, got, 1e-5, 1e-4)
    assert sum(map(sum, figure.outside)) == 5
    assert "(1, 2)" in figure.note


values = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                   st.sampled_from([0.0, -0.0, 1e300, -1e300, 1e-320, float("nan"), float("inf")]))
labels = st.text(max_size=20)


@given(st.integers(1, 6), st.integers(1, 6), st.data(), labels)
def test_any_matrix_and_any_labels_give_a_well_formed_picture(rows, cols, data, label):
    matrix = st.lists(st.lists(values, min_size=cols, max_size=cols), min_size=rows, max_size=rows)
    want, got = data.draw(matrix), data.draw(matrix)
    outside = tuple(tuple(data.draw(st.booleans()) for _ in range(cols)) for _ in range(rows))
    figure = Figure(title=label, expected=tuple(map(tuple, want)), obtained=tuple(map(tuple, got)),
                    outside=outside, rows=tuple(label for _ in range(rows)),
                    cols=tuple(label[::-1] for _ in range(cols)), row_name=label, note=label)
    root = ET.fromstring(svg(figure))
    assert root.find(f"{SVG}desc").text
    for element in root.iter():
        for name in ("x", "y", "width", "height"):
            if element.get(name) is not None:
                assert re.fullmatch(r"-?\d+(\.\d+)?", element.get(name)), (name, element.get(name))
        if element.get("fill", "").startswith("#"):
            assert re.fullmatch(r"#[0-9a-f]{6}", element.get("fill"))
    text = Report("s", 0, 1, (dataclasses.replace(_failed_step(), figures=(figure,)),)).to_json()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))  # strict JSON
    round_trip = Report.from_json(text).steps[0].figures[0]
    assert [[repr(x) for x in row] for row in round_trip.obtained] == [
        [repr(float(x)) for x in row] for row in got]
    assert round_trip.title == figure.title and round_trip.outside == figure.outside
    for line in terminal(figure):
        assert "\x1b" not in line and "\n" not in line


def _failed_step():
    from grader.models import StepResult

    return StepResult("s", "S", "1", "failed", 0.0, 1.0, "differs")
