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
