"""Errors that mean "the user's input is wrong" (the CLI maps them to exit code 2).

Everything else that escapes is a bug in pgverify and is allowed to show a traceback.
"""
from __future__ import annotations

__all__ = ["PGVerifyError", "InvalidMDPError", "UsageError"]


class PGVerifyError(ValueError):
    """Base class of every user-facing error pgverify raises."""


class InvalidMDPError(PGVerifyError):
    """An MDP or policy specification is malformed; the message names the entry.

    >>> raise InvalidMDPError("transitions[0][1] sums to 0.9, not 1")
    Traceback (most recent call last):
    ...
    verify.errors.InvalidMDPError: transitions[0][1] sums to 0.9, not 1
    """


class UsageError(PGVerifyError):
    """A request that cannot be carried out as asked (unknown name, too large, bad option)."""
