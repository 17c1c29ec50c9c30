"""The HTML report renders in a real headless browser (Debian's chromium), offline, and shows the
score, a row per step with its status, and the feedback of the steps that did not pass."""

import os
import re
import shutil
import subprocess

import pytest
from conftest import REPO_ROOT, grade

from grader.report import render_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PDFTOTEXT = shutil.which("pdftotext")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-pdf-header-footer"]

needs_browser = pytest.mark.skipif(
    (CHROMIUM is None or PDFTOTEXT is None) and os.environ.get("CI") != "true",
    reason="needs chromium and pdftotext (apt-get install chromium poppler-utils); CI installs them")


def rendered_text(tmp_path, html: str) -> str:
    """What the browser shows: the page printed to PDF by chromium, as text."""
    page, pdf = tmp_path / "report.html", tmp_path / "report.pdf"
    page.write_text(html, encoding="utf-8")
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                    f"--print-to-pdf={pdf}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    return subprocess.run([PDFTOTEXT, "-layout", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout


def test_the_html_report_is_self_contained():
    report = grade(REPO_ROOT / "examples" / "student_notebook.ipynb")
    html = render_html(report)
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "no external assets"
    assert "<script" not in html


@needs_browser
def test_the_browser_shows_score_rows_and_feedback(tmp_path):
    report = grade(REPO_ROOT / "examples" / "student_notebook.ipynb")
    text = rendered_text(tmp_path, render_html(report))

    assert f"Score: {report.score:g} / {report.max_score:g}" in text
    for step in report.steps:
        status = {"not_implemented": "not implemented"}.get(step.status, step.status)
        row = rf"{re.escape(step.section)}\s+{step.id}\s+{status}\s+{step.score:g}\s*/\s*{step.max_score:g}"
        assert re.search(row, text), f"no table row for {step.id} in:\n{text[:3000]}"
    # the failed steps' feedback is shown, with its numbers
    assert "differs in 30 of 36 elements" in text
    assert "NameError" in text


def _luminance(hex_colour: str) -> float:
    """WCAG 2's relative luminance of #rrggbb."""
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@pytest.fixture(scope="module")
def example_report():
    return grade(REPO_ROOT / "examples" / "student_notebook.ipynb")


def test_the_notebook_report_is_readable_on_a_dark_theme(example_report):
    """check()'s fragment sits on whatever the notebook's theme paints (JupyterLab dark: #111111,
    VS Code dark: #1e1e1e): it paints its own background, and every text colour it sets reads on the
    background it sits on (WCAG contrast >= 4.5 for body text, >= 3 for badges and muted text)."""
    import re

    from grader.report.html import SCOPE, render_html_fragment

    css = re.search(r"<style>(.*?)</style>", render_html_fragment(example_report), re.S).group(1)
    variables = dict(re.findall(r"(--[\w-]+):\s*(#[0-9a-fA-F]{6})", css))
    rules = {}
    for selectors, block in re.findall(r"([^{}]+)\{([^}]*)\}", css):
        declared = {k.strip(): variables.get(v.strip()[4:-1], v.strip()) if v.strip().startswith("var(")
                    else v.strip() for k, v in re.findall(r"([\w-]+)\s*:\s*([^;]+)", block)}
        for selector in selectors.split(","):
            rules.setdefault(selector.strip(), {}).update(declared)
    scope = rules[f".{SCOPE}"]
    assert re.fullmatch(r"#[0-9a-fA-F]{6}", scope.get("background", "")), scope
    assert _contrast(scope["color"], scope["background"]) >= 4.5
    assert _contrast(scope["color"], "#1e1e1e") < 4.5  # on the theme's background it would not read
    for selector, declared in rules.items():
        colour = declared.get("color", "")
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", colour):
            continue
        behind = declared.get("background", scope["background"])
        behind = behind if re.fullmatch(r"#[0-9a-fA-F]{6}", behind) else scope["background"]
        assert _contrast(colour, behind) >= 3, (selector, colour, behind)
