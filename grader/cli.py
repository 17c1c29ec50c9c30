"""The command line: a thin layer over `grader.grade`.

    attention-grader check SUBMISSION [--rubric config.yaml] [--format text|json|markdown]
                                      [--step ID ...]

Exit codes: 0 every step passed, 1 some step did not, 2 the grader could not run.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from . import __version__
from .engine import DEFAULT_RUBRIC, grade
from .errors import GraderError
from .report import FORMATS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attention-grader",
        description="Grade chapter 3 attention exercises (a .py file or a notebook), step by step.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser("check", help="grade one submission and print the report",
                                description="Grade one .py or .ipynb submission.")
    check.add_argument("submission", help="the student's .py file or .ipynb notebook")
    check.add_argument("--rubric", default=str(DEFAULT_RUBRIC),
                       help="the rubric file (default: the bundled config.yaml)")
    check.add_argument("--format", choices=sorted(FORMATS), default="text",
                       help="report format (default: text)")
    check.add_argument("--step", action="append", metavar="ID",
                       help="grade only this step (repeatable)")
    check.add_argument("--seed", type=int, metavar="S",
                       help="with one --step: replay only that step's case with this seed "
                       "(the report prints each case's seed)")
    check.add_argument("-o", "--output", metavar="FILE",
                       help="write the report to FILE instead of the terminal")
    check.add_argument("--colour", "--color", choices=("auto", "always", "never"),
                       default="auto", help="colour in the text report (default: auto)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.seed is not None and len(args.step or []) != 1:
        print("attention-grader: --seed replays one case of one step: give exactly one --step ID",
              file=sys.stderr)
        return 2
    try:
        report = grade(args.submission, rubric=args.rubric, steps=args.step, seed=args.seed)
    except KeyError as exc:  # an unknown --step or --seed
        print(f"attention-grader: {exc.args[0]}", file=sys.stderr)
        return 2
    except GraderError as exc:
        print(f"attention-grader: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception:  # a bug in the grader: say so, never score it as the student's zero
        traceback.print_exc()
        print("attention-grader: internal error: the grader failed (not the submission). "
              "Please report this with the traceback above.", file=sys.stderr)
        return 2
    colour = args.colour == "always" or (
        args.colour == "auto" and not args.output and sys.stdout.isatty()
        and "NO_COLOR" not in os.environ)
    text = FORMATS[args.format](report, colour=colour)
    text = text if text.endswith("\n") else text + "\n"
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            print(f"attention-grader: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
            return 2
        print(f"{args.output}: score {report.score:g} / {report.max_score:g}")
    else:
        sys.stdout.write(text)
    return 0 if report.all_passed else 1


if __name__ == "__main__":
    sys.exit(main())
