"""Errors that mean "the user's input is wrong" (the CLI maps them to exit code 2).

Everything else that escapes is a bug in pgverify and is allowed to show a traceback.
"""
from __future__ import annotations

__all__ = ["InvalidMDPError", "PGVerifyError", "UsageError", "positive_int"]


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


def positive_int(value, what: str, error: type[Exception] = UsageError, *, alternative: str = "",
                 least: int = 1) -> int:
    """``value`` as an int when it is an integer of at least ``least`` (bool excluded), else ``error`` naming
    ``what`` (a message with no subject when ``what`` is empty: argparse adds the option's name).

    ``alternative`` completes the message where something else is accepted too (``"or null"``); ``least`` = 0
    accepts seeds, 2 the episodes a sample variance needs.

    The one check behind every count pgverify accepts (episodes, chunk sizes, horizons, seeds, search budgets).

    >>> positive_int(3, "episodes")
    3
    >>> positive_int(0, "episodes")
    Traceback (most recent call last):
    ...
    verify.errors.UsageError: episodes must be a positive integer, got 0
    >>> positive_int(-1, "seed", least=0)
    Traceback (most recent call last):
    ...
    verify.errors.UsageError: seed must be a non-negative integer, got -1
    """
    import numbers
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        kind = {1: "a positive integer", 0: "a non-negative integer"}.get(least, f"an integer of at least {least}")
        raise error(f"{what}{' ' * bool(what)}must be {kind}{' ' * bool(alternative)}{alternative}, got {value!r}")
    return int(value)


class NumericalError(PGVerifyError):
    """A NaN or infinity arose inside a computation; the message names the stage (never passed on to LAPACK).

    Inputs are bounded at the boundary (|x| <= verify.io.MAX_ABS_VALUE), so this means a scale the stage cannot
    represent in float64 (or a user estimator's values); it is reported like bad input (exit 2), never as a result.
    """
