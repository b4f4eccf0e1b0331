"""Ctrl-C while the ``pgverify`` process starts: one line and exit 130, not a traceback from an import.

Imported first by ``verify/__init__.py``; acts only in the ``pgverify`` process itself (the console script or
``python -m verify``), never in a program that imports the library. ``verify.cli.main`` puts Python's own handler
back once the command's modules are loaded (from there a KeyboardInterrupt is caught and reported).
"""
import os
import sys

# The C module, not ``signal``: importing ``signal`` builds its enums (~1 ms, longer on a loaded machine), and a
# Ctrl-C in that window was a traceback from this very line (1 start-up in 100 measured, benchmarks/startup_sigint.py).
import _signal


def interrupted_at_start_up(signum, frame) -> None:
    os.write(2, b"pgverify: interrupted (Ctrl-C)\n")
    os._exit(130)


def _is_the_command() -> bool:
    path = os.path.normpath(sys.argv[0]) if getattr(sys, "argv", None) and sys.argv[0] else ""
    return os.path.basename(path) == "pgverify" or path.endswith(os.path.join("verify", "__main__.py"))


if _is_the_command() and _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
    _signal.signal(_signal.SIGINT, interrupted_at_start_up)
