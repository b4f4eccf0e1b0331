"""The built-in example MDPs that ``pgverify report`` checks, by name from anywhere (``--example NAME``).

The MDP files ship inside the package (``verify/examples/*.json``, package data) and are read with
``importlib.resources``, so a regular ``pip install`` finds them as well as an editable one; the repository's
top-level ``examples/`` folder links to the same files for people browsing the sources.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from verify.errors import UsageError
from verify.model.problem import Problem, problem_from_dict

__all__ = ["EXAMPLES_DIR", "EXAMPLE_NAMES", "builtin_examples", "example_path", "load_example"]

EXAMPLE_NAMES = ("bandit", "chain", "gridworld", "discounted")
_PACKAGE_DIR = resources.files("verify") / "examples"
# A real directory for regular and editable installs (the only kinds pyproject builds); tests read files from it.
EXAMPLES_DIR = Path(str(_PACKAGE_DIR))


def _check_name(name: str) -> str:
    from verify.model.lq import LQ_EXAMPLE_NAMES    # the linear-quadratic examples (verify.model.lq) ship beside the tabular ones

    if name not in EXAMPLE_NAMES and name not in LQ_EXAMPLE_NAMES:
        raise UsageError(f"unknown example {name!r}; the built-in examples are "
                         f"{', '.join(EXAMPLE_NAMES + LQ_EXAMPLE_NAMES)}")
    return name


def example_path(name: str) -> Path:
    """The installed MDP file of the built-in example ``name``.

    >>> example_path("chain").name
    'chain.json'

    Raises:
      UsageError: ``name`` is not a built-in example (the message lists them).
    """
    return EXAMPLES_DIR / f"{_check_name(name)}.json"


def load_example(name: str) -> Problem:
    """The built-in example ``name`` as a Problem (read from the package, valid by construction).

    >>> load_example("bandit").mdp.n_actions
    3

    Raises:
      UsageError: ``name`` is not a built-in example (the message lists them).
    """
    text = (_PACKAGE_DIR / f"{_check_name(name)}.json").read_text()
    return problem_from_dict(json.loads(text), default_name=name)   # an LQProblem for the lq* examples


def builtin_examples() -> dict[str, Problem]:
    """name -> Problem for every built-in example, in a fixed order.

    >>> list(builtin_examples())
    ['bandit', 'chain', 'gridworld', 'discounted']
    """
    return {name: load_example(name) for name in EXAMPLE_NAMES}
