"""The built-in example MDPs that ``pgverify report`` checks (the JSON files in ``examples/``)."""
from __future__ import annotations

from pathlib import Path

from verify.problem import Problem, load_problem

__all__ = ["EXAMPLES_DIR", "builtin_examples"]

# Editable installs (the README's route) see the repository's examples/ folder.
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
_NAMES = ("bandit", "chain", "gridworld", "discounted")


def builtin_examples() -> dict[str, Problem]:
    """name -> Problem for every built-in example, in a fixed order.

    >>> list(builtin_examples())
    ['bandit', 'chain', 'gridworld', 'discounted']
    """
    return {name: load_problem(EXAMPLES_DIR / f"{name}.json") for name in _NAMES}
