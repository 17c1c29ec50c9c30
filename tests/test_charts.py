"""The class summary's charts: what they count, and SVG that any browser or Markdown viewer reads."""

import math
import xml.etree.ElementTree as ET

import pytest

from grader.batch.charts import bins_of, histogram, nice_step, outcomes

SVG = "{http://www.w3.org/2000/svg}"


def test_scores_fall_in_equal_bins_and_a_full_mark_in_the_last():
    # five distinct scores out of 10: five bins of width 2
    assert bins_of([0, 1.9, 2, 5, 10, 10], 10) == [2, 1, 1, 0, 2]
    assert sum(bins_of([float(s) for s in range(99)], 98)) == 99  # nothing lost, nothing twice
    assert len(bins_of([float(s) for s in range(99)], 98)) == 20  # at most 20 bins


@pytest.mark.parametrize("span, most", [(98, 10), (44, 6), (1, 6), (1000, 8), (3, 10)])
def test_tick_steps_are_round_and_few_enough(span, most):
    step = nice_step(span, most)
    assert span / step <= most
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1, 2, 2.5, 5)


def test_the_histogram_has_one_bar_per_non_empty_bin_with_its_count():
    root = ET.fromstring(histogram([98, 98, 98, 50, 0], 98))
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert sorted(r.find(f"{SVG}title").text for r in bars) == ["1 student", "1 student", "3 students"]
    heights = sorted(float(r.get("height")) for r in bars)
    assert heights[2] == pytest.approx(3 * heights[0], rel=0.01)  # bars in proportion to the counts


def test_the_outcome_chart_splits_each_step_by_share_and_escapes_names():
    rows = [("softmax_naive", 3, 1, 0), ("<b>&step</b>", 0, 0, 4)]
    text = outcomes(rows, 4)
    root = ET.fromstring(text)  # well-formed: the name's markup is text, not elements
    assert "<b>" not in text
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "softmax_naive" in labels and "<b>&step</b>" in labels
    widths = {r.find(f"{SVG}title").text: float(r.get("width"))
              for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None}
    assert widths["softmax_naive: 3 passed"] == pytest.approx(3 * widths["softmax_naive: 1 failed"], rel=0.01)
    assert widths["<b>&step</b>: 4 not done"] == pytest.approx(
        widths["softmax_naive: 3 passed"] + widths["softmax_naive: 1 failed"], rel=0.01)  # the full width
