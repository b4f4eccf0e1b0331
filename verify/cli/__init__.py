"""The ``pgverify`` command line: parses arguments and dispatches; all work happens in the library.

One module per command (``register(subparsers)`` adds its parser, ``run_*(args)`` runs it); ``_args`` holds the
converters and the problem arguments they share.

Exit codes: 0 every check passed, 1 a check failed (or, for ``fuzz``, no counterexample), 2 bad usage or
bad input (one line on stderr, never a traceback).
"""
from __future__ import annotations

import argparse
import sys

from verify.cli import export_gym, fuzz, gradient, latex, mc, plot, report
from verify.cli._args import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from verify import __version__
from verify.errors import PGVerifyError

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_FAIL", "EXIT_USAGE"]

# The order in which ``pgverify --help`` lists the commands.
COMMANDS = (report, gradient, latex, export_gym, fuzz, mc, plot)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line, exit 2
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pgverify",
        description="Check the policy-gradient (REINFORCE) derivation symbolically and numerically: exact "
                    "gradients of tabular MDPs, Monte Carlo estimators against them, and the derivation's steps.",
        epilog="Exit codes: 0 all checks passed, 1 a check failed, 2 bad usage or invalid input. "
               "See README.md for the MDP file format.")
    parser.add_argument("--version", action="version", version=f"pgverify {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for command in COMMANDS:
        command.register(sub)
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
