"""Ctrl-C while the ``pgverify`` process starts: one line and exit 130, not a traceback from an import.

Imported first by ``verify/__init__.py``; acts only in the ``pgverify`` process itself (the console script or
``python -m verify``), never in a program that imports the library. ``verify.cli.main`` puts Python's own handler
back once the command's modules are loaded (from there a KeyboardInterrupt is caught and reported).
"""
import os
import signal
import sys


def interrupted_at_start_up(signum, frame) -> None:
    os.write(2, b"pgverify: interrupted (Ctrl-C)\n")
    os._exit(130)


def _is_the_command() -> bool:
    path = os.path.normpath(sys.argv[0]) if getattr(sys, "argv", None) and sys.argv[0] else ""
    return os.path.basename(path) == "pgverify" or path.endswith(os.path.join("verify", "__main__.py"))


if _is_the_command() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, interrupted_at_start_up)
