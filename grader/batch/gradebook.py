"""The gradebook of a class: readers of finished reports, like every other reporter.

    grades.csv           one row per student: id, name, total, max, a column per step, status, file
                         (the detailed gradebook; an LMS imports the files of `--lms`)
    results.jsonl        one line per student: {"student", "name", "file", "status", "report": ...}
    feedback/ID.md|html  each student's report
    summary.md|html      class statistics: score distribution, pass rate per step, the most
                         frequent mistakes per step; plots (plots/*.svg, inlined in the HTML)
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import statistics
from collections import Counter
from pathlib import Path

from ..models import Report
from ..report.html import render_html
from ..report.markdown import render_markdown
from ..rubric import Rubric
from ..safe_text import csv_cell, html_text, markdown_inline


class Row:
    """One student's line of the gradebook. A row of a class run reads its report from the result
    file each time it is asked for, so a class of thousands is never held in memory at once."""

    __slots__ = ("student", "file", "status", "name", "_report", "_result")

    def __init__(self, student: str, file: str, report: Report | None, status: str, name: str = "",
                 result: Path | None = None):
        self.student = student  # the id (the platform's own, where it has one)
        self.file = file
        self.status = status  # "graded", "unreadable: why" (scored 0) or "not graded: why" (retried)
        self.name = name  # the display name
        self._report = report  # None: not graded (the grader failed; the next run retries)
        self._result = result  # results/KEY.json, read for the report when it is asked for

    @property
    def report(self) -> Report | None:
        return read_result(self._result) if self._result is not None else self._report

    def __repr__(self) -> str:
        return f"Row({self.student!r}, {self.file!r}, status={self.status!r})"

    def to_json(self, report: Report | None = None) -> str:
        """The row as one line of results.jsonl (`report`: the row's own, when read already)."""
        report = report if report is not None else self.report
        return json.dumps({"student": self.student, "name": self.name, "file": self.file,
                           "status": self.status, "report": report.to_dict() if report else None})

    @classmethod
    def from_json(cls, line: str) -> Row:
        data = json.loads(line)
        report = Report.from_dict(data["report"]) if data["report"] else None
        return cls(data["student"], data["file"], report, data["status"], data.get("name", ""))


def read_result(path: Path) -> Report:
    """The report in a result file of results/ ({"student", "file", "report"})."""
    return Report.from_dict(json.loads(path.read_text(encoding="utf-8"))["report"])


def write_gradebook(out: Path, rubric: Rubric, rows: list[Row], problems: list[str]) -> None:
    """One pass over the class in id order: each report is read once, written out (its gradebook
    line, its results.jsonl line, its feedback) and counted for the summary, then let go."""
    from .run import atomic_file, write_atomically

    feedback = out / "feedback"
    feedback.mkdir(exist_ok=True)
    stats = ClassStatistics(rubric, problems)
    stats.files = feedback_names([row.student for row in rows], problems)
    maximum = sum(step.points for step in rubric.steps)
    with atomic_file(out / "grades.csv") as grades, atomic_file(out / "results.jsonl") as results:
        writer = csv.writer(grades, lineterminator="\n")
        writer.writerow(["id", "name", "total", "max", *[step.id for step in rubric.steps], "status",
                         "file"])
        for row in sorted(rows, key=lambda row: row.student):
            report = row.report
            scores = {s.id: s.score for s in report.steps} if report else {}
            writer.writerow([csv_cell(row.student), csv_cell(row.name),
                             _number(report.score if report else ""), _number(maximum),
                             *[_number(scores.get(step.id, "")) for step in rubric.steps],
                             csv_cell(row.status), csv_cell(row.file)])
            results.write(row.to_json(report) + "\n")
            if report is not None:
                name = stats.files[row.student]
                write_atomically(feedback / f"{name}.md", render_markdown(report))
                write_atomically(feedback / f"{name}.html", render_html(report))
            stats.add(row, report)
    plots = stats.plots(out / "plots")
    write_atomically(out / "summary.md", stats.markdown(plots))
    write_atomically(out / "summary.html", stats.html(plots))


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _cell(text: str) -> str:
    """Student text as one Markdown table cell (`markdown_inline` escapes its pipes too)."""
    return markdown_inline(text)


def safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:100] or "student"


def feedback_names(students: list[str], problems: list[str]) -> dict[str, str]:
    """Each id's own feedback file name (feedback/NAME.md and .html): the id made safe for a file
    name, unless ids would share one (`alice!` and `alice`; `Alice` and `alice` on a disk blind to
    case): then every id of them but one that is its own safe name gets a suffix from a hash of
    the id, and is named in `problems`. The same ids give the same names, run after run."""
    wanted = {student: safe_filename(student) for student in students}
    sharing = Counter(name.casefold() for name in wanted.values())
    used = set(sharing)  # no suffixed name may be another id's own
    names, kept = {}, set()
    for student in sorted(wanted, key=lambda s: (wanted[s] != s, s)):  # a name's own id first
        name = wanted[student]
        if sharing[name.casefold()] > 1 and (name != student or name.casefold() in kept):
            name = _suffixed(name, student, used)
            problems.append(f"{student}: its feedback would have shared feedback/{wanted[student]}.md "
                            f"with another student's, so it is feedback/{name}.md and .html")
        else:
            kept.add(name.casefold())
        used.add(name.casefold())
        names[student] = name
    return names


def _suffixed(name: str, student: str, used: set[str]) -> str:
    """`name` with the shortest suffix from the hash of `student` that no other file has."""
    digest = hashlib.sha256(student.encode("utf-8", "surrogatepass")).hexdigest()
    size = 10
    while f"{name}-{digest[:size]}".casefold() in used and size < len(digest):
        size += 6
    return f"{name}-{digest[:size]}"


class ClassStatistics:
    """The class summary's numbers, counted as the reports go by (`add`): what it keeps of each
    student is their roster line and their score, never their report."""

    def __init__(self, rubric: Rubric, problems: list[str]):
        self.rubric = rubric
        self.problems = problems
        self.files: dict[str, str] = {}  # id -> feedback file name (feedback_names)
        self.maximum = sum(step.points for step in rubric.steps)
        self.students: list[tuple[str, str, str, str, bool]] = []  # id, name, score, status, graded
        self.graded = 0
        self._scores: list[float] = []
        self._statuses: Counter[tuple[str, str]] = Counter()  # (step id, status)
        self._passed: Counter[str] = Counter()
        self._mistakes: Counter[tuple[str, str]] = Counter()  # (step id, mistake id)

    def add(self, row: Row, report: Report | None) -> None:
        self.students.append((row.student, row.name or row.student,
                              f"{report.score:g} / {report.max_score:g}" if report else "", row.status,
                              report is not None))
        if report is None:
            return
        self.graded += 1
        self._scores.append(report.score)
        for step in report.steps:
            self._statuses[step.id, step.status] += 1
            self._passed[step.id] += step.passed
            if step.mistake:
                self._mistakes[step.id, step.mistake] += 1

    def scores(self) -> list[float]:
        return self._scores

    def outcomes(self) -> list[tuple[str, int, int, int]]:
        """(step id, passed, failed (failed, error, timeout), not done (missing, not implemented))."""
        found = []
        for step in self.rubric.steps:
            counts = {status: n for (sid, status), n in self._statuses.items() if sid == step.id}
            passed = counts.get("passed", 0)
            undone = counts.get("missing", 0) + counts.get("not_implemented", 0)
            found.append((step.id, passed, sum(counts.values()) - passed - undone, undone))
        return found

    def roster(self) -> list[tuple[str, str, str, str, str]]:
        """(id, name, score, status, feedback file) for every student, in id order."""
        files = {s: self.files.get(s) or safe_filename(s) for s, *_ in self.students}
        return [(student, name, score, status, f"feedback/{files[student]}.html" if graded else "")
                for student, name, score, status, graded in sorted(self.students)]

    def pass_rates(self) -> list[tuple[str, float, int]]:
        """(step id, share of graded students who passed it, how many passed)."""
        return [(step.id, self._passed[step.id] / self.graded if self.graded else 0.0,
                 self._passed[step.id]) for step in self.rubric.steps]

    def mistakes(self) -> list[tuple[str, str, int]]:
        """(step id, mistake id, how many students) for every mistake named, most frequent first."""
        order = {step.id: index for index, step in enumerate(self.rubric.steps)}
        return sorted(((step, mistake, n) for (step, mistake), n in self._mistakes.items()),
                      key=lambda item: (order.get(item[0], 0), -item[2], item[1]))

    def headline(self) -> list[tuple[str, str]]:
        scores = self.scores()
        lines = [("students", str(len(self.students))), ("graded", str(self.graded))]
        if scores:
            lines += [("mean score", f"{statistics.mean(scores):.1f} / {self.maximum:g}"),
                      ("median score", f"{statistics.median(scores):g} / {self.maximum:g}"),
                      ("lowest, highest", f"{min(scores):g}, {max(scores):g}"),
                      ("full marks", str(sum(1 for s in scores if s == self.maximum)))]
        unreadable = sum(1 for student in self.students if student[3].startswith("unreadable"))
        if unreadable:
            lines.append(("unreadable (scored 0, see below)", str(unreadable)))
        not_graded = len(self.students) - self.graded
        if not_graded:
            lines.append(("not graded (grader failures, retried on the next run)", str(not_graded)))
        return lines

    def attention(self) -> list[tuple[str, str, str]]:
        """(id, name, status) of the students whose submission was unreadable or not graded."""
        return [(student, name, status) for student, name, _, status, _ in sorted(self.students)
                if status != "graded"]

    def plots(self, folder: Path) -> dict[str, Path]:
        """The score distribution and the outcome per step, as SVG files (`grader.batch.charts`)."""
        if not self.graded:
            return {}
        from .charts import histogram, outcomes
        from .run import write_atomically

        folder.mkdir(exist_ok=True)
        made = {"scores": folder / "scores.svg", "pass_rates": folder / "pass_rates.svg"}
        write_atomically(made["scores"], histogram(self.scores(), self.maximum))
        write_atomically(made["pass_rates"], outcomes(self.outcomes(), self.graded))
        return made

    def markdown(self, plots: dict[str, Path]) -> str:
        lines = [f"# Class summary: {self.rubric.title or 'attention-grader'}", ""]
        lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in self.headline()] + [""]
        for name, path in plots.items():
            lines += [f"![{name}](plots/{path.name})", ""]
        lines += ["## Pass rate per step", "", "| Step | Passed | Rate | Failed | Not done |",
                  "|---|---|---|---|---|"]
        lines += [f"| `{step}` | {n} / {self.graded} | {rate:.0%} | {failed} | {undone} |"
                  for (step, rate, n), (_, _, failed, undone) in zip(self.pass_rates(), self.outcomes())]
        lines += ["", "## Most frequent mistakes", ""]
        mistakes = self.mistakes()
        if mistakes:
            lines += ["| Step | Mistake | Students |", "|---|---|---|"]
            lines += [f"| `{step}` | `{mistake}` | {n} |" for step, mistake, n in mistakes]
        else:
            lines.append("No known mistake was named.")
        attention = self.attention()
        if attention:
            lines += ["", "## Unreadable and not graded", "", "| ID | Name | Status |", "|---|---|---|"]
            lines += [f"| {_cell(i)} | {_cell(n)} | {_cell(st)} |" for i, n, st in attention]
        lines += ["", "## Roster", "", "| ID | Name | Score | Status | Feedback |", "|---|---|---|---|---|"]
        lines += [f"| {_cell(i)} | {_cell(n)} | {sc} | {_cell(st)} | " + (f"[report]({f})" if f else "")
                  + " |" for i, n, sc, st, f in self.roster()]
        if self.problems:
            lines += ["", "## Problems with the submissions", ""]
            lines += [f"- {markdown_inline(p)}" for p in self.problems]
        return "\n".join(lines) + "\n"

    def html(self, plots: dict[str, Path]) -> str:
        from ..report.html import STYLE

        parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                 f"<title>Class summary</title><style>{STYLE}</style></head><body>",
                 f"<h1>Class summary: {html_text(self.rubric.title or 'attention-grader')}</h1>",
                 "<table><tbody>"]
        parts += [f"<tr><th>{html_text(k)}</th><td>{html_text(v)}</td></tr>" for k, v in self.headline()]
        parts.append("</tbody></table>")
        for path in plots.values():  # the grader's own SVG, inlined as it is
            parts.append(f"<figure>{path.read_text(encoding='utf-8')}</figure>")
        parts.append("<h2>Pass rate per step</h2><table><thead><tr><th>Step</th><th>Passed</th>"
                     '<th class="num">Rate</th><th class="num">Failed</th><th class="num">Not done'
                     "</th></tr></thead><tbody>")
        parts += [f"<tr><td><code>{html_text(step)}</code></td><td>{n} / {self.graded}</td>"
                  f'<td class="num">{rate:.0%}</td><td class="num">{failed}</td>'
                  f'<td class="num">{undone}</td></tr>'
                  for (step, rate, n), (_, _, failed, undone) in zip(self.pass_rates(), self.outcomes())]
        parts.append("</tbody></table><h2>Most frequent mistakes</h2>")
        mistakes = self.mistakes()
        if mistakes:
            parts.append("<table><thead><tr><th>Step</th><th>Mistake</th><th class=\"num\">Students"
                         "</th></tr></thead><tbody>")
            parts += [f"<tr><td><code>{html_text(step)}</code></td><td><code>{html_text(mistake)}</code>"
                      f'</td><td class="num">{n}</td></tr>' for step, mistake, n in mistakes]
            parts.append("</tbody></table>")
        else:
            parts.append("<p>No known mistake was named.</p>")
        attention = self.attention()
        if attention:
            parts.append("<h2>Unreadable and not graded</h2><table><thead><tr><th>ID</th><th>Name</th>"
                         "<th>Status</th></tr></thead><tbody>")
            parts += [f"<tr><td>{html_text(i)}</td><td>{html_text(n)}</td><td>{html_text(st)}</td></tr>"
                      for i, n, st in attention]
            parts.append("</tbody></table>")
        parts.append("<h2>Roster</h2><table><thead><tr><th>ID</th><th>Name</th><th>Score</th>"
                     "<th>Status</th><th>Feedback</th></tr></thead><tbody>")
        parts += [f"<tr><td>{html_text(i)}</td><td>{html_text(n)}</td><td>{html_text(sc)}</td>"
                  f"<td>{html_text(st)}</td><td>"
                  + (f'<a href="{html_text(f)}">report</a>' if f else "") + "</td></tr>"
                  for i, n, sc, st, f in self.roster()]
        parts.append("</tbody></table>")
        if self.problems:
            parts.append("<h2>Problems with the submissions</h2><ul>")
            parts += [f"<li>{html_text(p)}</li>" for p in self.problems]
            parts.append("</ul>")
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"


def merge(shards: list[Path], out: Path, rubric: Rubric) -> list[Row]:
    """Combine the gradebooks of several shards into one."""
    from ..errors import UsageError

    rows: dict[str, Row] = {}
    problems: list[str] = []
    resolved = [shard.resolve() for shard in shards]
    twice = sorted({str(s) for s in shards if resolved.count(s.resolve()) > 1})
    if twice:
        raise UsageError(f"the same shard is given more than once: {', '.join(twice)}")
    specs = {}
    for shard in shards:
        if (shard / "shard.json").is_file():
            specs[shard] = tuple(json.loads((shard / "shard.json").read_text())["shard"])
    if specs:
        counts = {n for _, n in specs.values()}
        have = {k for k, _ in specs.values()}
        if len(counts) > 1 or len(specs) != len(shards):
            raise UsageError("the shards are not of one `grade --shard K/N` run: "
                             + ", ".join(f"{s}: {'/'.join(map(str, specs.get(s, ('?', '?'))))}"
                                         for s in shards))
        missing = sorted(set(range(1, next(iter(counts)) + 1)) - have)
        if missing:
            raise UsageError(f"shard(s) {', '.join(f'{k}/{next(iter(counts))}' for k in missing)} "
                             "missing: merge them all, or the gradebook would lack their students")
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
