"""The command line: a thin layer over `grader.grade`.

    attention-grader check SUBMISSION [--rubric config.yaml] [--format text|json|markdown|html]
                                      [--step ID ...] [--junit FILE] [--min-score X]
    attention-grader gradescope --out autograder.zip [--rubric config.yaml]
    attention-grader gradescope-run [--submission-dir DIR] [--results FILE]   (inside Gradescope)
    attention-grader grade SUBMISSIONS... --out DIR [--jobs N] [--shard K/N] [--regrade ID]
    attention-grader merge SHARD_DIRS... --out DIR
    attention-grader export OUT --lms canvas|moodle|blackboard --roster FILE [--assignment NAME]
    attention-grader bundle --out DIR
    attention-grader sandbox [--rubric config.yaml] [--format text|json]

Exit codes: 0 every step passed (or, with --min-score, the score reached the pass mark), 1 it did
not, 2 the grader could not run. Under GitHub Actions (GITHUB_ACTIONS=true), `check` also writes the
step summary and annotations (see grader/ci.py).
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading
import traceback

from . import __version__, ci
from .engine import grade
from .errors import GraderError
from .report import FORMATS
from .safe_text import terminal

RUBRIC_HELP = ("the rubric file (default: $ATTENTION_GRADER_RUBRIC, else config.yaml in this folder or "
               "above, else the course this grader came with; see the README)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attention-grader",
        description="Grade a course's exercises (a .py file or a notebook) against its reference "
                    "solutions, step by step, as its rubric says.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser("check", help="grade one submission and print the report",
                                description="Grade one .py or .ipynb submission.",
                                **_examples(
                                    "attention-grader check attention.ipynb",
                                    "attention-grader check attention.py --step softmax_naive",
                                    "attention-grader check attention.ipynb --format json -o report.json",
                                    "attention-grader check attention.ipynb --junit results.xml "
                                    "--min-score 80%"))
    check.add_argument("submission", help="the student's .py file or .ipynb notebook")
    check.add_argument("--rubric", default=None, metavar="FILE", help=RUBRIC_HELP)
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
    check.add_argument("--junit", metavar="FILE",
                       help="also write a JUnit XML report to FILE (one test case per step)")
    check.add_argument("--min-score", type=_min_score, metavar="X",
                       help="the pass mark for the exit code: points (e.g. 80) or a percentage of "
                       "the maximum (e.g. 80%%); default: every step must pass")

    gradescope = commands.add_parser(
        "gradescope", help="build the autograder archive to upload to Gradescope",
        description="Build autograder.zip for a Gradescope programming assignment: setup.sh, "
        "run_autograder and the grader with its rubric and reference solutions.",
        **_examples("attention-grader gradescope --out autograder.zip",
                    "attention-grader gradescope --rubric examples/chapter4/config.yaml --out ch4.zip"))
    gradescope.add_argument("--out", default="autograder.zip", metavar="FILE",
                            help="the archive to write (default: autograder.zip)")
    gradescope.add_argument("--rubric", default=None, metavar="FILE", help=RUBRIC_HELP)

    run = commands.add_parser(
        "gradescope-run", help="grade a Gradescope submission (run_autograder calls this)",
        description="Find the student's notebook or .py file in the submission folder, grade it "
        "and write Gradescope's results.json.",
        **_examples("attention-grader gradescope-run   # inside Gradescope: /autograder/submission",
                    "attention-grader gradescope-run --submission-dir sub/ --results results.json"))
    run.add_argument("--submission-dir", default=None, metavar="DIR",
                     help="default: $AUTOGRADER_ROOT/submission ($AUTOGRADER_ROOT: /autograder)")
    run.add_argument("--results", default=None, metavar="FILE",
                     help="default: $AUTOGRADER_ROOT/results/results.json")
    run.add_argument("--rubric", default=None, metavar="FILE", help=RUBRIC_HELP)

    from .batch.cli import add_export_parser, add_parsers

    add_parsers(commands)  # grade, merge
    add_export_parser(commands)
    bundle = commands.add_parser(
        "bundle", help="write what a course hands to students: exercises, grader, visible cases",
        description="Write the student bundle: the exercise stubs, the grader, a student rubric with "
        "only the visible cases and their answers precomputed, and no solutions.",
        **_examples("attention-grader bundle --out attention-exercises/",
                    "attention-grader bundle --rubric examples/chapter4/config.yaml --out gpt-exercises/"))
    bundle.add_argument("--out", required=True, metavar="DIR", help="a new folder for the bundle")
    bundle.add_argument("--rubric", default=None, metavar="FILE", help=RUBRIC_HELP)
    course_check = commands.add_parser(
        "course-check", help="report what students checking themselves cannot see",
        description="Grade each known mistake of the rubric (its steps' `mistakes:`) as a student, "
        "in this process, on the visible cases alone and on all cases, and list, one a line: "
        "mistakes only hidden cases catch, mistakes no case catches, and cases no check looks "
        "at. Exit 1 when it finds any, else 0.",
        **_examples("attention-grader course-check",
                    "attention-grader course-check --rubric examples/chapter4/config.yaml"))
    course_check.add_argument("--rubric", default=None, metavar="FILE", help=RUBRIC_HELP)
    sandbox = commands.add_parser(
        "sandbox", help="say which sandbox layers this machine gives the worker, and which it refuses",
        description="Start a worker as grading would, confine it, and list every sandbox layer: "
        "applied, or refused and why. Exit 2 if the rubric's `sandbox: require:` names a layer "
        "that is missing here, else 0.",
        **_examples("attention-grader sandbox", "attention-grader sandbox --format json"))
    sandbox.add_argument("--rubric", default=None, metavar="FILE", help=RUBRIC_HELP)
    sandbox.add_argument("--format", choices=("text", "json"), default="text")
    return parser


def _examples(*lines: str) -> dict:
    """A subcommand's `--help` ends with examples, shown as written."""
    return {"epilog": "examples:\n" + "\n".join(f"  {line}" for line in lines),
            "formatter_class": argparse.RawDescriptionHelpFormatter}


def _min_score(text: str) -> tuple[float, bool]:
    """`80` (points) or `80%` (of the maximum) -> (value, is_percentage)."""
    percent = text.strip().endswith("%")
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of points or a percentage") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"{text!r}: the pass mark cannot be negative")
    return value, percent


def passes(report, min_score: tuple[float, bool] | None) -> bool:
    """Whether the report reaches the pass mark: every step passed, or the score >= --min-score."""
    if min_score is None:
        return report.all_passed
    value, percent = min_score
    mark = value / 100 * report.max_score if percent else value
    return report.score >= mark - 1e-9


def say(message: str, *, one_line: bool = False) -> None:
    """A message for whoever runs the grader, on stderr. It may quote a submission (a file name, an
    id, what the code raised), so it passes through `terminal` first: no escape sequence in it
    reaches the terminal. `one_line`: a newline in it cannot start a line that looks like ours."""
    print(f"attention-grader: {terminal(message, None, newlines=not one_line)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "gradescope":
        from .gradescope import build_archive_command

        return build_archive_command(args.out, args.rubric)
    if args.command == "gradescope-run":
        from .gradescope import run_command

        return run_command(args.submission_dir, args.results, args.rubric)
    if args.command in ("grade", "merge"):
        from .batch.cli import run

        return run(args)
    if args.command == "export":
        from .batch.cli import export_command

        return export_command(args)
    if args.command == "bundle":
        return _bundle(args)
    if args.command == "sandbox":
        return _sandbox(args)
    if args.command == "course-check":
        return _course_check(args)
    return _check(args)


def _sandbox(args: argparse.Namespace) -> int:
    import json

    from .confine import STOPS, expected_layers
    from .engine import hidden_paths
    from .paths import find_rubric
    from .rubric import load_rubric
    from .sandbox import Limits, missing_layers, probe

    try:
        rubric = load_rubric(find_rubric(args.rubric))
        applied = probe(Limits.of(rubric.defaults), hidden_paths(rubric))
    except GraderError as exc:
        say(f"error: {exc}")
        return exc.exit_code
    missing = missing_layers(applied, rubric.require)
    layers, refused = applied.get("layers", []), applied.get("refused", {})
    if args.format == "json":
        print(json.dumps({"layers": layers, "refused": refused, "required": list(rubric.require),
                          "missing_required": missing}, indent=2))
    else:
        print(f"Sandbox layers on this machine (as uid {os.geteuid()}):")
        for name in expected_layers(os.geteuid() == 0):
            mark = "✔" if name in layers else "✘"
            why = "" if name in layers else f"  [{refused.get(name, 'not applied')}]"
            need = " (required)" if name in rubric.require else ""
            print(f"  {mark} {name:<16} {STOPS[name]}{need}{why}")
        if missing:
            print(f"\nMissing required layers: {', '.join(missing)}: nothing would be graded here.")
    return 2 if missing else 0


def _course_check(args: argparse.Namespace) -> int:
    from .lint import main as course_check
    from .paths import find_rubric
    from .rubric import load_rubric

    try:
        return course_check(load_rubric(find_rubric(args.rubric)), sys.stdout)
    except GraderError as exc:
        say(f"error: {exc}")
        return exc.exit_code


def _bundle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .bundle import build_bundle
    from .paths import find_rubric
    from .rubric import load_rubric

    try:
        files = build_bundle(load_rubric(find_rubric(args.rubric)), Path(args.out))
    except GraderError as exc:
        say(f"error: {exc}")
        return exc.exit_code
    except OSError as exc:
        say(f"cannot write the bundle to {args.out}: {exc.strerror or exc}"
            + (f" ({exc.filename})" if exc.filename else "") + "; give --out a folder you can create")
        return 2
    print(f"{args.out}: {len(files)} files; hand this folder to students (it holds no solutions)")
    return 0


def _check(args: argparse.Namespace) -> int:
    if args.seed is not None and len(args.step or []) != 1:
        print("attention-grader: --seed replays one case of one step: give exactly one --step ID",
              file=sys.stderr)
        return 2
    problem = _not_a_file(args.submission)
    if problem:  # a typo in the command, not a submission to score (the pytest plugin exits 4)
        say(problem)
        return 2
    try:
        report = grade(args.submission, rubric=args.rubric, steps=args.step, seed=args.seed)
    except KeyError as exc:  # an unknown --step or --seed
        say(str(exc.args[0]))
        return 2
    except GraderError as exc:
        say(f"error: {exc}")
        return exc.exit_code
    except Exception:  # a bug in the grader: say so, never score it as the student's zero
        sys.stderr.write(terminal(traceback.format_exc(), None))  # it may quote the submission
        print("attention-grader: internal error: the grader failed (not the submission). "
              "Please report this with the traceback above.", file=sys.stderr)
        return 2
    colour = args.colour == "always" or (
        args.colour == "auto" and not args.output and sys.stdout.isatty()
        and "NO_COLOR" not in os.environ)
    pictures = args.format == "text" and not args.output and sys.stdout.isatty()
    text = FORMATS[args.format](report, colour=colour, pictures=pictures)
    text = text if text.endswith("\n") else text + "\n"
    delivered = True
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            say(f"cannot write {args.output}: {exc.strerror}")
            return 2
        print(f"{args.output}: score {report.score:g} / {report.max_score:g}")
    else:
        delivered = _to_stdout(text)
    if args.junit:
        from .report.junit import render_junit

        try:
            with open(args.junit, "w", encoding="utf-8") as f:
                f.write(render_junit(report, submission=args.submission))
        except OSError as exc:
            say(f"cannot write {args.junit}: {exc.strerror}")
            return 2
    if ci.in_github_actions():
        try:
            ci.append_step_summary(report)
        except OSError as exc:
            say(f"cannot write the step summary: {exc.strerror}")
        # On stderr, which the runner reads for workflow commands too: stdout stays the report
        # alone, so `check --format json > report.json` is valid JSON under GitHub Actions.
        for line in ci.annotations(report, args.submission, workspace=os.environ.get("GITHUB_WORKSPACE")):
            print(line, file=sys.stderr)
    if not delivered:
        return 2
    return 0 if passes(report, args.min_score) else 1


def _not_a_file(path: str) -> str | None:
    """Why `check PATH` has nothing to grade: no such path, or a folder. (A link, an empty or a
    broken file is a submission, graded as unreadable with the reason.)"""
    from pathlib import Path

    given = Path(path)
    if given.is_symlink():
        return None
    if not given.exists():
        return f"{path}: no such file; give the path of the .py or .ipynb file to grade"
    if given.is_dir():
        return f"{path} is a folder; give the .py or .ipynb file inside it to grade"
    return None


def _to_stdout(text: str) -> bool:
    """Write the report; a reader that went away (`| head`) is said in one line, not a traceback,
    and the exit code is 2: whoever reads the code must not take an unread report for a verdict."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
        return True
    except OSError as exc:
        print(f"attention-grader: cannot write the report to standard output: "
              f"{exc.strerror or exc}", file=sys.stderr)
        devnull = os.open(os.devnull, os.O_WRONLY)  # what is left in the buffer goes nowhere
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return False


def entry() -> None:
    """The `attention-grader` command: `main`, then the end of the process.

    Once torch is loaded, Python's own teardown of its modules costs about 0.6 s here (longer than
    grading a submission), and nothing a user gave is in it: the report is printed, every file
    written and closed, every worker ended. So after `main` the output is flushed and the exit
    handlers run (temporary folders are removed by them), and the process ends there. A thread still
    working, or a process without torch, ends the ordinary way."""
    code = main()
    if "torch" not in sys.modules or any(t.is_alive() and not t.daemon and t is not threading.main_thread()
                                         for t in threading.enumerate()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: Python would say so and end with 120
            code = code or 120
    os._exit(code)


if __name__ == "__main__":
    entry()
