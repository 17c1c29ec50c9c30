"""The gradebook of a class: readers of finished reports, like every other reporter.

    grades.csv           one row per student: id, total, max, a column per step, status, file
    results.jsonl        one line per student: {"student", "file", "status", "report": <JSON report>}
    feedback/ID.md|html  each student's report
    summary.md|html      class statistics: score distribution, pass rate per step, the most
                         frequent mistakes per step; plots (plots/*.png, embedded in the HTML)
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from html import escape
from pathlib import Path

from ..models import Report
from ..report.html import render_html
from ..report.markdown import render_markdown
from ..rubric import Rubric
from ..safe_text import csv_cell


@dataclass(frozen=True)
class Row:
    student: str
    file: str
    report: Report | None  # None: not graded (the grader failed; the next run retries)
    status: str  # "graded", or "not graded: why"

    def to_json(self) -> str:
        return json.dumps({"student": self.student, "file": self.file, "status": self.status,
                           "report": self.report.to_dict() if self.report else None})

    @classmethod
    def from_json(cls, line: str) -> Row:
        data = json.loads(line)
        report = Report.from_json(json.dumps(data["report"])) if data["report"] else None
        return cls(data["student"], data["file"], report, data["status"])


def write_gradebook(out: Path, rubric: Rubric, rows: list[Row], problems: list[str]) -> None:
    from .run import write_atomically

    rows = sorted(rows, key=lambda row: row.student)
    write_atomically(out / "grades.csv", grades_csv(rubric, rows))
    write_atomically(out / "results.jsonl", "".join(row.to_json() + "\n" for row in rows))
    feedback = out / "feedback"
    feedback.mkdir(exist_ok=True)
    for row in rows:
        if row.report is not None:
            name = safe_filename(row.student)
            write_atomically(feedback / f"{name}.md", render_markdown(row.report))
            write_atomically(feedback / f"{name}.html", render_html(row.report))
    stats = ClassStatistics(rubric, rows, problems)
    plots = stats.plots(out / "plots")
    write_atomically(out / "summary.md", stats.markdown(plots))
    write_atomically(out / "summary.html", stats.html(plots))


def grades_csv(rubric: Rubric, rows: list[Row]) -> str:
    """A gradebook a learning platform imports: plain CSV, a header row, one row per student."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "total", "max", *[step.id for step in rubric.steps], "status", "file"])
    maximum = sum(step.points for step in rubric.steps)
    for row in rows:
        scores = {s.id: s.score for s in row.report.steps} if row.report else {}
        total = row.report.score if row.report else ""
        writer.writerow([csv_cell(row.student), _number(total), _number(maximum),
                         *[_number(scores.get(step.id, "")) for step in rubric.steps],
                         csv_cell(row.status), csv_cell(row.file)])
    return buffer.getvalue()


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "student"


class ClassStatistics:
    def __init__(self, rubric: Rubric, rows: list[Row], problems: list[str]):
        self.rubric = rubric
        self.rows = rows
        self.problems = problems
        self.reports = [row.report for row in rows if row.report is not None]
        self.maximum = sum(step.points for step in rubric.steps)

    def scores(self) -> list[float]:
        return [report.score for report in self.reports]

    def pass_rates(self) -> list[tuple[str, float, int]]:
        """(step id, share of graded students who passed it, how many passed)."""
        rates = []
        for step in self.rubric.steps:
            passed = sum(1 for r in self.reports for s in r.steps if s.id == step.id and s.passed)
            rates.append((step.id, passed / len(self.reports) if self.reports else 0.0, passed))
        return rates

    def mistakes(self) -> list[tuple[str, str, int]]:
        """(step id, mistake id, how many students) for every mistake named, most frequent first."""
        counts = Counter((s.id, s.mistake) for r in self.reports for s in r.steps if s.mistake)
        order = {step.id: index for index, step in enumerate(self.rubric.steps)}
        return sorted(((step, mistake, n) for (step, mistake), n in counts.items()),
                      key=lambda item: (order.get(item[0], 0), -item[2], item[1]))

    def headline(self) -> list[tuple[str, str]]:
        scores = self.scores()
        lines = [("students", str(len(self.rows))), ("graded", str(len(self.reports)))]
        if scores:
            lines += [("mean score", f"{statistics.mean(scores):.1f} / {self.maximum:g}"),
                      ("median score", f"{statistics.median(scores):g} / {self.maximum:g}"),
                      ("lowest, highest", f"{min(scores):g}, {max(scores):g}"),
                      ("full marks", str(sum(1 for s in scores if s == self.maximum)))]
        not_graded = len(self.rows) - len(self.reports)
        if not_graded:
            lines.append(("not graded (grader failures, retried on the next run)", str(not_graded)))
        return lines

    def plots(self, folder: Path) -> dict[str, Path]:
        """The score distribution and the pass rate per step, as PNG files."""
        if not self.reports:
            return {}
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        folder.mkdir(exist_ok=True)
        made = {}
        fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
        ax.hist(self.scores(), bins=min(20, max(5, len(set(self.scores())))), range=(0, self.maximum),
                color="#2f6fb0", edgecolor="white")
        ax.set_xlabel(f"score (out of {self.maximum:g})")
        ax.set_ylabel("students")
        ax.set_title("Score distribution")
        fig.tight_layout()
        made["scores"] = folder / "scores.png"
        fig.savefig(made["scores"], metadata={"Software": None})
        plt.close(fig)
        rates = self.pass_rates()
        fig, ax = plt.subplots(figsize=(7, 0.28 * len(rates) + 1), dpi=100)
        ax.barh([r[0] for r in rates][::-1], [100 * r[1] for r in rates][::-1], color="#1a7f37")
        ax.set_xlim(0, 100)
        ax.set_xlabel("students who passed the step (%)")
        ax.set_title("Pass rate per step")
        ax.tick_params(axis="y", labelsize=8)
        fig.tight_layout()
        made["pass_rates"] = folder / "pass_rates.png"
        fig.savefig(made["pass_rates"], metadata={"Software": None})
        plt.close(fig)
        return made

    def markdown(self, plots: dict[str, Path]) -> str:
        lines = [f"# Class summary: {self.rubric.title or 'attention-grader'}", ""]
        lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in self.headline()] + [""]
        for name, path in plots.items():
            lines += [f"![{name}](plots/{path.name})", ""]
        lines += ["## Pass rate per step", "", "| Step | Passed | Rate |", "|---|---|---|"]
        lines += [f"| `{step}` | {n} / {len(self.reports)} | {rate:.0%} |"
                  for step, rate, n in self.pass_rates()]
        lines += ["", "## Most frequent mistakes", ""]
        mistakes = self.mistakes()
        if mistakes:
            lines += ["| Step | Mistake | Students |", "|---|---|---|"]
            lines += [f"| `{step}` | `{mistake}` | {n} |" for step, mistake, n in mistakes]
        else:
            lines.append("No known mistake was named.")
        if self.problems:
            lines += ["", "## Problems with the submissions", ""] + [f"- {p}" for p in self.problems]
        return "\n".join(lines) + "\n"

    def html(self, plots: dict[str, Path]) -> str:
        from ..report.html import STYLE

        parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                 f"<title>Class summary</title><style>{STYLE}</style></head><body>",
                 f"<h1>Class summary: {escape(self.rubric.title or 'attention-grader')}</h1>",
                 "<table><tbody>"]
        parts += [f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in self.headline()]
        parts.append("</tbody></table>")
        for name, path in plots.items():
            data = base64.b64encode(path.read_bytes()).decode()
            parts.append(f'<p><img alt="{escape(name)}" src="data:image/png;base64,{data}"></p>')
        parts.append("<h2>Pass rate per step</h2><table><thead><tr><th>Step</th><th>Passed</th>"
                     '<th class="num">Rate</th></tr></thead><tbody>')
        parts += [f"<tr><td><code>{escape(step)}</code></td><td>{n} / {len(self.reports)}</td>"
                  f'<td class="num">{rate:.0%}</td></tr>' for step, rate, n in self.pass_rates()]
        parts.append("</tbody></table><h2>Most frequent mistakes</h2>")
        mistakes = self.mistakes()
        if mistakes:
            parts.append("<table><thead><tr><th>Step</th><th>Mistake</th><th class=\"num\">Students"
                         "</th></tr></thead><tbody>")
            parts += [f"<tr><td><code>{escape(step)}</code></td><td><code>{escape(mistake)}</code>"
                      f'</td><td class="num">{n}</td></tr>' for step, mistake, n in mistakes]
            parts.append("</tbody></table>")
        else:
            parts.append("<p>No known mistake was named.</p>")
        if self.problems:
            parts.append("<h2>Problems with the submissions</h2><ul>")
            parts += [f"<li>{escape(p)}</li>" for p in self.problems]
            parts.append("</ul>")
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"


def merge(shards: list[Path], out: Path, rubric: Rubric) -> list[Row]:
    """Combine the gradebooks of several shards into one."""
    rows: dict[str, Row] = {}
    problems: list[str] = []
    for shard in shards:
        path = shard / "results.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"{shard}: no results.jsonl; is it a `grade --out` folder?")
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = Row.from_json(line)
                if row.student in rows:
                    problems.append(f"{row.student}: in more than one shard; kept the one in {shard}")
                rows[row.student] = row
    out.mkdir(parents=True, exist_ok=True)
    write_gradebook(out, rubric, list(rows.values()), problems)
    return sorted(rows.values(), key=lambda row: row.student)
