"""`attention-grader grade` and `attention-grader merge`: thin layers over grader.batch."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..cli import _examples, say
from ..errors import GraderError, UsageError
from ..paths import find_rubric
from ..rubric import load_rubric


def add_parsers(commands) -> None:
    grade = commands.add_parser(
        "grade", help="grade a whole class and write a gradebook",
        description="Grade every student's newest submission and write grades.csv, results.jsonl, "
        "feedback/ and summary.md/.html to --out. Rerunning the same command after an interruption "
        "grades only what is missing.",
        **_examples("attention-grader grade submissions.zip --out gradebook/",
                    "attention-grader grade class/ late/*.ipynb --out gradebook/ --jobs 4",
                    "attention-grader grade submissions.zip --out gradebook/ --groups groups.csv",
                    "attention-grader grade submissions.zip --out shard1/ --shard 1/2"))
    grade.add_argument("submissions", nargs="+", metavar="SUBMISSION",
                       help="files, folders (one file or folder per student) or a zip export")
    grade.add_argument("--out", required=True, help="the folder for the gradebook and the results")
    grade.add_argument("--rubric", default=None, metavar="FILE",
                       help="the rubric file (default: found as for check)")
    grade.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                       help="submissions graded at once (default: the number of cores)")
    grade.add_argument("--id-pattern", metavar="REGEX",
                       help="a regular expression whose group `id` (or first group) is the student id "
                       "in a file or folder name (Canvas and Moodle names are understood without it)")
    grade.add_argument("--groups", metavar="FILE",
                       help="a CSV file with the columns group and id (one line per member): a "
                       "group's submission is graded for every member")
    grade.add_argument("--regrade", action="append", default=[], metavar="ID",
                       help="grade this student again even if a result exists (repeatable)")
    grade.add_argument("--shard", metavar="K/N", help="grade only shard K of N (for CI matrices)")
    grade.add_argument("--executor", choices=("local", "dask"), default="local",
                       help="where to run: this machine (default) or a Dask cluster")
    grade.add_argument("--scheduler", metavar="ADDRESS", help="the Dask scheduler's address")
    merge = commands.add_parser("merge", help="combine the gradebooks of several shards",
                                description="Combine `grade --shard K/N` outputs (every one of the N) "
                                "into one gradebook.",
                                **_examples("attention-grader merge shard1/ shard2/ --out gradebook/"))
    merge.add_argument("shards", nargs="+", metavar="SHARD_DIR",
                       help="the --out folders of the shards, all N of them")
    merge.add_argument("--out", required=True, help="the folder for the merged gradebook")
    merge.add_argument("--rubric", default=None, metavar="FILE",
                       help="the rubric the shards were graded with (default: found as for check)")


def add_export_parser(commands) -> None:
    export = commands.add_parser(
        "export", help="write a learning platform's import file from a graded class",
        description="Write the import file of Canvas, Moodle or Blackboard from a `grade --out` "
        "folder and the roster that platform exports (see the README: what to upload where).",
        **_examples("attention-grader export gradebook/ --lms canvas --roster canvas-gradebook.csv",
                    "attention-grader export gradebook/ --lms moodle --roster worksheet.csv"))
    export.add_argument("out", metavar="OUT", help="the `grade --out` (or `merge --out`) folder")
    export.add_argument("--lms", required=True, choices=("canvas", "moodle", "blackboard"))
    export.add_argument("--roster", required=True, metavar="FILE",
                        help="Canvas: the gradebook export; Moodle: the grading worksheet; "
                        "Blackboard: the Grade Center download")
    export.add_argument("--assignment", default="attention-grader", metavar="NAME",
                        help="the assignment's name in the platform (its existing column is updated; "
                        "default: a new column named attention-grader)")
    export.add_argument("-o", "--output", metavar="FILE",
                        help="where to write it (default: OUT/<platform>-import file)")


def export_command(args: argparse.Namespace) -> int:
    from .gradebook import Row
    from .lms import export

    try:
        results = Path(args.out) / "results.jsonl"
        if not results.is_file():
            raise UsageError(f"{args.out}: no results.jsonl; grade the class first "
                             "(attention-grader grade ... --out OUT)")
        rows = [Row.from_json(line) for line in results.read_text(encoding="utf-8").splitlines()
                if line.strip()]
        maximum = next((row.report.max_score for row in rows if row.report), 0.0)
        made = export(args.lms, rows, Path(args.roster), args.assignment, maximum)
    except GraderError as exc:
        say(f"error: {exc}")
        return 2
    target = Path(args.output) if args.output else Path(args.out) / made.filename
    from .run import write_atomically

    write_atomically(target, made.text)
    for note in made.notes:
        say(note, one_line=True)
    for label, names in (("in the roster, no grade written", made.no_submission),
                         ("graded, not in the roster", made.no_roster)):
        if names:  # names and ids from the roster and the submissions' file names
            say(f"{len(names)} {label}: {'; '.join(names)}", one_line=True)
    print(f"{target}: {args.lms} import file; upload it as the README says")
    return 0


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard {text!r}: expected K/N, e.g. 1/4") from None
    if not 1 <= k <= n:
        raise UsageError(f"--shard {text!r}: K must be between 1 and N")
    return k, n


def run(args: argparse.Namespace) -> int:
    from . import grade_class, merge

    try:
        if args.command == "merge":
            rubric = load_rubric(find_rubric(args.rubric))
            rows = merge([Path(s) for s in args.shards], Path(args.out), rubric)
            print(f"{args.out}: gradebook of {len(rows)} students from {len(args.shards)} shards")
            return 0
        if args.executor == "dask" and not args.scheduler:
            raise UsageError("--executor dask needs --scheduler ADDRESS")
        if args.scheduler and args.executor != "dask":
            raise UsageError("--scheduler is for the Dask executor: add --executor dask")
        if args.jobs < 1:
            raise UsageError("--jobs must be at least 1")
        outcome = grade_class(args.submissions, out=args.out, rubric=args.rubric, jobs=args.jobs,
                              id_pattern=args.id_pattern, regrade=tuple(args.regrade),
                              groups=args.groups,
                              shard=parse_shard(args.shard), executor=args.executor,
                              scheduler=args.scheduler)
    except KeyboardInterrupt:
        done = len(list(Path(args.out, "results").glob("*.json")))
        print(f"\nattention-grader: interrupted; {done} results are kept in {args.out}/results. Run "
              "the same command again to grade the rest.", file=sys.stderr)
        return 130
    except GraderError as exc:
        say(f"error: {exc}")
        return 2
    except OSError as exc:  # --out, or a shard or a file given, that cannot be made or read
        say(f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
            + f"; check the paths given (--out {args.out})")
        return 2
    for problem in outcome.problems:  # they name archive entries, files and ids as handed in
        say(problem, one_line=True)
    graded = sum(1 for row in outcome.rows if row.report is not None)
    print(f"{args.out}: {len(outcome.rows)} students, {graded} graded ({outcome.graded} in this run), "
          f"{outcome.seconds:.1f} s; see grades.csv and summary.html")
    return 2 if outcome.grader_failures else 0
