"""A self-contained HTML page for one finished report: inline CSS, no scripts, no external assets,
so it works offline, in an e-mail attachment, or in a learning platform's preview."""

from __future__ import annotations

import re

from ..models import Report, StepResult
from ..safe_text import html_text
from .figures import svg

LABELS = {"passed": "passed", "failed": "failed", "error": "error", "timeout": "timed out",
          "missing": "missing", "not_implemented": "not implemented"}

STYLE = """
:root { color-scheme: light; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --muted: #57606a; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 60rem; padding: .5rem 1rem; color: #1f2328; background: #ffffff;
       border-radius: .5rem; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; }
.sub { color: var(--muted); margin-top: 0; }
.score { font-size: 1.2rem; font-weight: 600; }
.bar { height: .6rem; background: #eaeef2; border-radius: .3rem; overflow: hidden; margin: .4rem 0 1rem; }
.bar > span { display: block; height: 100%; background: var(--ok); }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #d0d7de; }
th { font-weight: 600; color: var(--muted); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 0 .5rem; border-radius: 1rem; font-size: .85rem; }
.passed { background: #dafbe1; color: var(--ok); }
.failed, .error { background: #ffebe9; color: var(--bad); }
.timeout, .missing { background: #fff8c5; color: var(--warn); }
.not_implemented { background: #eaeef2; color: var(--muted); }
section.step { border: 1px solid #d0d7de; border-radius: .5rem; padding: .2rem 1rem 1rem; margin: 1rem 0; }
pre { background: #f6f8fa; padding: .7rem; border-radius: .4rem; white-space: pre-wrap; }
ul.checks { padding-left: 1.2rem; }
li.ok { color: var(--ok); } li.no { color: var(--bad); }
.note { background: #fff8c5; padding: .5rem .8rem; border-radius: .4rem; white-space: pre-wrap; }
.mistake { border-left: 4px solid var(--warn); padding-left: .7rem; }
figure.picture { margin: .8rem 0; overflow-x: auto; }
figure.picture svg { max-width: 100%; height: auto; }
figure.picture figcaption { color: var(--muted); font-size: .85rem; }
"""


def render_html(report: Report, **_) -> str:
    """A whole HTML document, styled for a page of its own."""
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html_text(report.heading)} for {html_text(report.submission)}</title>",
        f"<style>{STYLE}</style></head><body>",
        *_body(report, ""),
        "</body></html>"]) + "\n"


SCOPE = "attention-grader-report"


def render_html_fragment(report: Report) -> str:
    """The report as one <div> whose styles apply inside it only: what `check()` shows in a
    notebook, where a whole document's CSS (body, table, pre) would restyle every other cell. It
    brings its own background with its text colour, so it reads the same in a dark theme
    (JupyterLab dark, VS Code dark) as in a light one."""
    return "\n".join([f'<div class="{SCOPE}">', f"<style>{scoped(STYLE, '.' + SCOPE)}</style>",
                      *_body(report, "attention-grader-"), "</div>"]) + "\n"


def scoped(css: str, scope: str) -> str:
    """Every rule of `css` confined to the elements inside `scope` (`body` and `:root` are it)."""
    rules = []
    for selectors, block in re.findall(r"([^{}]+)\{([^}]*)\}", css):
        inside = []
        for selector in selectors.split(","):
            selector = selector.strip()
            inside.append(scope if selector in ("body", ":root") else f"{scope} {selector}")
        rules.append(f"{', '.join(inside)} {{{block}}}")
    return "\n".join(rules)


def _body(report: Report, ids: str) -> list[str]:
    percent = 100 * report.score / report.max_score if report.max_score else 0
    parts = [
        f"<h1>{html_text(report.heading)}</h1>",
        f'<p class="sub">{html_text(report.submission)}</p>',
        f'<p class="score" id="{ids}score">Score: {report.score:g} / {report.max_score:g}</p>',
        f'<div class="bar" role="img" aria-label="{percent:.0f}%"><span style="width:{percent:.1f}%">'
        "</span></div>",
    ]
    parts += [f'<p class="note">{html_text(note)}</p>' for note in report.notes]
    parts += ["<table><thead><tr><th>Section</th><th>Step</th><th>Status</th>"
              '<th class="num">Score</th></tr></thead><tbody>']
    for step in report.steps:
        parts.append(
            f'<tr id="{ids}row-{html_text(step.id)}"><td>{html_text(step.section)}</td>'
            f'<td><a href="#{ids}{html_text(step.id)}"><code>{html_text(step.id)}</code></a></td>'
            f'<td><span class="badge {step.status}">{LABELS[step.status]}</span></td>'
            f'<td class="num">{step.score:g} / {step.max_score:g}</td></tr>')
    parts.append("</tbody></table>")
    parts += [_step_section(step, ids) for step in report.steps if not step.passed]
    parts.append(f'<p class="sub">attention-grader {html_text(report.grader_version)}, '
                 f"{report.seconds:.1f} s</p>")
    return parts


def _figure(figure) -> str:
    """A figure's picture with its caption: what it shows, and the slice or scale it notes."""
    caption = html_text(figure.title) + (f"; {html_text(figure.note)}" if figure.note else "")
    return (f'<figure class="picture">{svg(figure)}<figcaption>{caption}: expected and yours on '
            "one colour scale, then yours minus expected, the cells outside the tolerance "
            "outlined.</figcaption></figure>")


def _step_section(step: StepResult, ids: str = "") -> str:
    parts = [f'<section class="step" id="{ids}{html_text(step.id)}">',
             f"<h2><code>{html_text(step.id)}</code>: {html_text(step.title)} "
             f'<span class="badge {step.status}">{LABELS[step.status]}</span></h2>']
    if step.mistake:
        parts.append(f'<p class="mistake">Recognised mistake: <strong>{html_text(step.mistake)}'
                     "</strong></p>")
    parts.append(f"<pre>{html_text(step.feedback)}</pre>")
    parts += [_figure(figure) for figure in step.figures]
    if step.checks:
        parts.append('<ul class="checks">')
        for check in step.checks:
            mark, cls = ("✔", "ok") if check.passed else ("✘", "no")
            parts.append(f'<li class="{cls}">{mark} <strong>{html_text(check.name)}</strong> '
                         f"({check.score:g} / {check.max_score:g}): {html_text(check.message)}</li>")
        parts.append("</ul>")
    if step.hints and step.status in ("failed", "error") and not step.mistake:
        parts.append(f"<p><em>Hint:</em> {html_text(step.hints[0])}</p>")
    parts.append("</section>")
    return "\n".join(parts)
