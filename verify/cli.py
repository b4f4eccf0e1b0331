"""The ``pgverify`` command line: parses arguments and dispatches; all work happens in the library.

Exit codes: 0 every check passed, 1 a check failed (or, for ``fuzz``, no counterexample), 2 bad usage or
bad input (one line on stderr, never a traceback).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from verify.errors import PGVerifyError, UsageError
from verify.exact import METHODS, gradient
from verify.problem import load_problem

__all__ = ["main"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line, exit 2
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer seed") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed must be non-negative, got {value}")
    return value


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=1, allow_nan=False))


def _writable_output(path: str, force: bool) -> Path:
    """The output path, refusing to overwrite the user's file unless ``force``."""
    out = Path(path)
    if out.exists() and not force:
        raise UsageError(f"{out} exists; pass --force to overwrite it")
    if not out.parent.exists():
        raise UsageError(f"directory {out.parent} does not exist")
    return out


# --- gradient -----------------------------------------------------------------------------------------------------

def cmd_gradient(args) -> int:
    problem = load_problem(args.file)
    res = gradient(problem.mdp, problem.policy, args.method)
    if args.json:
        _print_json(res.to_json())
        return EXIT_OK
    np.set_printoptions(precision=10, suppress=False, linewidth=110)
    print(f"{problem.mdp.name}: J(theta) = {res.J:.12g}   (method: {res.method})")
    print("grad J(theta) =")
    print(res.grad)
    return EXIT_OK


# --- report -------------------------------------------------------------------------------------------------------

def cmd_report(args) -> int:
    from verify.report import build_report, render_report

    report = build_report(seed=args.seed, quick=args.quick)
    if args.json:
        text = json.dumps(report.to_json(), indent=1, allow_nan=False)
        if args.json == "-":
            print(text)
        else:
            _writable_output(args.json, args.force).write_text(text + "\n")
    if args.json != "-":
        render_report(report, color=not args.no_color)
    return EXIT_OK if report.passed else EXIT_FAIL


# --- latex --------------------------------------------------------------------------------------------------------

def cmd_latex(args) -> int:
    out = _writable_output(args.output, args.force)
    from derive.latex import render_document

    from verify.report import errata_for_latex

    out.write_text(render_document(errata=errata_for_latex()))
    print(f"wrote {out}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pgverify",
        description="Check the policy-gradient (REINFORCE) derivation symbolically and numerically: exact "
                    "gradients of tabular MDPs, Monte Carlo estimators against them, and the derivation's steps.",
        epilog="Exit codes: 0 all checks passed, 1 a check failed, 2 bad usage or invalid input. "
               "See README.md for the MDP file format.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("report", help="run the whole verification on the built-in examples",
                       description="Run every check (derivation, exact gradients, Monte Carlo estimators) on the "
                                   "built-in example MDPs and print a report. Exit 0 when every check passes.")
    p.add_argument("--seed", type=_seed, default=0, help="seed for all sampling (default 0)")
    p.add_argument("--quick", action="store_true", help="fewer episodes and smaller grounding sizes")
    p.add_argument("--json", metavar="FILE|-", help="also write the report as JSON to FILE, or only JSON to stdout with -")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    p.add_argument("--no-color", action="store_true", help="plain text output")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("gradient", help="exact J and grad J of an MDP file",
                       description="Compute J(theta) and grad J(theta) exactly for the MDP file's policy.")
    p.add_argument("file", help="MDP file (JSON, see README)")
    p.add_argument("--method", choices=METHODS, default="auto",
                   help="enumerate trajectories, dynamic programming (finite horizon), linear solve (horizon "
                        "null); auto = dp or solve (default)")
    p.add_argument("--json", action="store_true", help='print {"J", "grad", "method"} as one JSON object')
    p.set_defaults(func=cmd_gradient)

    p = sub.add_parser("latex", help="export the derivation as a standalone LaTeX document",
                       description="Write every derivation step (numbered as in the seed), its rule and side "
                                   "conditions, the added derivations and the errata as a LaTeX document.")
    p.add_argument("-o", "--output", required=True, help="the .tex file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=cmd_latex)

    # further subcommands register here
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except PGVerifyError as exc:
        print(f"pgverify {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `pgverify report | head`
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
