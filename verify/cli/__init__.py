"""The ``pgverify`` command line: parses arguments and dispatches; all work happens in the library.

One module per command (``register(subparsers)`` adds its parser, ``run_*(args)`` runs it); ``_args`` holds the
converters and the problem arguments they share.

Exit codes: 0 every check passed, 1 a check failed (or, for ``fuzz``, no counterexample), 2 bad usage or
bad input (one line on stderr, never a traceback), 130 interrupted by Ctrl-C (one line, no partial output file).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import warnings

from verify import __version__
from verify.cli import _process, cache, derivation, export_gym, fuzz, gradient, latex, loss, mc, plot, report
from verify.cli._args import (
    EXIT_FAIL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNDECIDED,
    EXIT_USAGE,
    add_limit_arguments,
    limits_from_args,
    one_line,
)
from verify._startup import interrupted_at_start_up
from verify.errors import PGVerifyError
from verify.model.io import limits_scope

__all__ = ["EXIT_FAIL", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_UNDECIDED", "EXIT_USAGE", "build_parser", "main"]

# The order in which ``pgverify --help`` lists the commands.
COMMANDS = (report, gradient, latex, derivation, export_gym, fuzz, mc, plot, loss, cache)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """argparse's own errors: one line naming the command and the problem, exit 2 (no usage block)."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pgverify",
        description="Check the policy-gradient (REINFORCE) derivation symbolically and numerically: exact "
                    "gradients of tabular MDPs, Monte Carlo estimators against them, and the derivation's steps.",
        epilog="Exit codes: 0 all checks passed, 1 a check failed, 2 bad usage or invalid input. "
               "The MDP file format: docs/reference.md, 'The MDP file format'.")
    parser.add_argument("--version", action="version", version=f"pgverify {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for command in COMMANDS:
        command.register(sub)
    for command_parser in sub.choices.values():
        add_limit_arguments(command_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``pgverify`` command; returns the exit code (never raises, never prints a traceback for bad input).

    0 all checks passed, 1 a check failed, 2 bad usage or input (one line on stderr), 130 interrupted (Ctrl-C).
    Whatever user code does (``sys.exit``, ``KeyboardInterrupt``, any exception, in the estimator or at its
    import) is reported as what it is and never as success.
    """
    with _process.command_process():     # the collector's thresholds, deferred imports (verify.cli._process)
        code = _main(argv)
    if argv is None and threading.current_thread() is threading.main_thread():
        # The process's own command: the work is over (and reported). A Ctrl-C from here to the exit would only
        # turn the exit status into "killed by SIGINT" (Python re-raises an interrupt it sees at shutdown).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if code == EXIT_INTERRUPTED:
            # CPython remembers an interrupt raised inside code an extension ran through PyRun_* (some imports do)
            # even once it was caught, and then ends the process by SIGINT instead of with this status: leave now
            # (outputs are complete or absent already; the temporary files went in the writers' finally blocks).
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)
    return code


def _main(argv: list[str] | None) -> int:
    try:
        parser = build_parser()         # imports the commands' modules: Ctrl-C here is an interrupt too
        args = parser.parse_args(argv)
    except SystemExit as exc:           # --help/--version (0) or an argparse error (2, its line already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        return _interrupted("pgverify")
    prog = f"pgverify {args.command}"
    if signal.getsignal(signal.SIGINT) is interrupted_at_start_up:
        signal.signal(signal.SIGINT, signal.default_int_handler)    # from here KeyboardInterrupt, handled below
    try:
        # Warnings (numpy's overflow notes, a user's code) print two lines each: collected, then shown one line
        # each after a result, and dropped after an error (whose one line says what matters).
        with limits_scope(limits_from_args(args)), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            code = args.func(args)
        sys.stdout.flush()
        for text in dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught):
            print(f"{prog}: warning: {one_line(text)}", file=sys.stderr)
        return code
    except PGVerifyError as exc:
        _error(prog, str(exc))
    except KeyboardInterrupt:
        return _interrupted(prog)
    except SystemExit as exc:           # only user code calls sys.exit inside a command ...
        if isinstance(exc.__context__, BrokenPipeError):   # ... and rich, on a closed pipe (`pgverify ... | head`)
            _silence_stdout()
            return EXIT_OK
        _error(prog, f"{_user_code(args)} called sys.exit({exc.code!r}); the check did not run to completion")
    except BrokenPipeError:             # e.g. `pgverify report | head`
        _silence_stdout()
        return EXIT_OK
    except OSError as exc:              # everyday OS faults (a full disk, stdout on /dev/full): named, not "a bug"
        if exc.errno is None:
            raise
        _silence_stdout()               # what stdout still buffers would fail again at exit, as a second message
        where = f" ({exc.filename})" if exc.filename else ""
        _error(prog, f"the operating system refused an input or output{where}: {exc.strerror or exc}")
    except ImportError as exc:
        _error(prog, f"a module that this command needs is not installed: {exc}")
    except MemoryError:
        _error(prog, "ran out of memory (lower --episodes, or set --max-memory below what this machine has so the "
                     "size checks refuse such requests up front)")
    except RecursionError:
        _error(prog, f"{_user_code(args)} recursed too deeply")
    except Exception as exc:
        if os.environ.get("PGVERIFY_DEBUG"):
            raise
        if _missing_dependency(exc):    # gymnasium's renderer without pygame raises its own error type
            _error(prog, f"a module that this command needs is not installed: {exc}")
            return EXIT_USAGE
        _error(prog, f"internal error {type(exc).__name__}: {exc} (a bug in pgverify or in {_user_code(args)}; "
                     "PGVERIFY_DEBUG=1 shows the traceback)")
    return EXIT_USAGE


def _missing_dependency(exc: Exception) -> bool:
    """gymnasium.error.DependencyNotInstalled (not an ImportError), recognised without importing gymnasium."""
    return any(c.__name__ == "DependencyNotInstalled" and c.__module__.startswith("gymnasium")
               for c in type(exc).__mro__)


def _user_code(args) -> str:
    spec = getattr(args, "estimator", None)
    return f"--estimator {spec}" if spec and ":" in spec else "code called by the command"


def _error(prog: str, message: str) -> None:
    print(f"{prog}: error: {one_line(message)}", file=sys.stderr)


def _interrupted(prog: str) -> int:
    print(f"{prog}: interrupted (Ctrl-C); no partial output file is left", file=sys.stderr)
    return EXIT_INTERRUPTED


def _silence_stdout() -> None:
    # Python flushes stdout at exit and would report the broken pipe again; point it at /dev/null.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
