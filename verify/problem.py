"""The MDP file format: one JSON object holding an MDP and the policy to differentiate.

    {"name": "...", "states": 3 | [names], "actions": 2 | [names], "initial": rho0[s],
     "transitions": P[s][a][s'], "rewards": r[s][a] | r[s][a][s'], "terminal": [index | name, ...],
     "gamma": 0.9, "horizon": 10 | null,
     "policy": {"type": "tabular_softmax", "theta": [[...]]}
             | {"type": "linear_softmax", "features": phi[s][a][k], "theta": [k values]}}

See README.md for the full description; every problem raises InvalidMDPError naming the entry.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from verify.errors import InvalidMDPError, UsageError
from verify.mdp import TabularMDP
from verify.policy import Policy, policy_from_dict

__all__ = ["Problem", "load_problem", "problem_from_dict", "problem_to_dict", "save_problem", "write_mdp_file"]

_KEYS = {"name", "states", "actions", "initial", "transitions", "rewards", "terminal", "gamma", "horizon", "policy",
         "description"}
_REQUIRED = ("initial", "transitions", "rewards")


@dataclass(frozen=True)
class Problem:
    """An MDP together with the policy whose gradient is checked."""

    mdp: TabularMDP
    policy: Policy

    def __post_init__(self) -> None:
        self.policy.check_compatible(self.mdp.n_states, self.mdp.n_actions)


def problem_from_dict(data: dict, *, default_name: str = "mdp") -> Problem:
    """Validate a parsed MDP file and build the Problem.

    >>> p = problem_from_dict({"initial": [1], "transitions": [[[1.0], [1.0]]], "rewards": [[1, 0]],
    ...                        "horizon": 2})
    >>> p.mdp.n_actions, p.policy.probs.tolist()
    (2, [[0.5, 0.5]])

    Raises:
      InvalidMDPError: naming the offending entry.
    """
    if not isinstance(data, dict):
        raise InvalidMDPError(f"an MDP file must hold a JSON object, got {type(data).__name__}")
    unknown = set(data) - _KEYS
    if unknown:
        raise InvalidMDPError(f"unknown keys {sorted(unknown)}; known keys: {sorted(_KEYS)}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise InvalidMDPError(f"missing required keys {missing}")
    mdp = TabularMDP(
        initial=data["initial"], transitions=data["transitions"], rewards=data["rewards"],
        terminal=data.get("terminal") or None, gamma=data.get("gamma", 1.0), horizon=data.get("horizon"),
        states=data.get("states"), actions=data.get("actions"), name=data.get("name", default_name))
    policy = policy_from_dict(data.get("policy"), mdp.n_states, mdp.n_actions)
    return Problem(mdp, policy)


def load_problem(path: str | Path) -> Problem:
    """Read and validate an MDP file.

    Raises:
      UsageError: the file cannot be read.
      InvalidMDPError: the JSON is malformed or describes an invalid MDP.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read MDP file {str(path)!r}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidMDPError(f"{path}: not valid JSON: {exc}") from None
    try:
        return problem_from_dict(data, default_name=path.stem)
    except InvalidMDPError as exc:
        raise InvalidMDPError(f"{path}: {exc}") from None


def problem_to_dict(problem: Problem) -> dict:
    """The MDP file (as a dict) that ``problem_from_dict`` turns back into an equal problem."""
    mdp = problem.mdp
    terminal = [int(i) for i in mdp.terminal.nonzero()[0]]
    return {
        "name": mdp.name,
        "states": list(mdp.states),
        "actions": list(mdp.actions),
        "initial": mdp.initial.tolist(),
        "transitions": mdp.transitions.tolist(),
        "rewards": mdp.rewards.tolist(),
        "terminal": terminal,
        "gamma": mdp.gamma,
        "horizon": mdp.horizon,
        "policy": problem.policy.to_dict(),
    }


def save_problem(problem: Problem, path: str | Path, *, force: bool = False) -> Path:
    """Write the MDP file; refuses to overwrite an existing file unless ``force``.

    Raises:
      UsageError: the file exists (and not ``force``) or cannot be written.
    """
    return write_mdp_file(problem_to_dict(problem), path, force=force)


def write_mdp_file(data: dict, path: str | Path, *, force: bool = False) -> Path:
    """Write an MDP file given as a dict (e.g. ``problem_to_dict`` plus a description); never overwrites silently.

    Raises:
      UsageError: the file exists (and not ``force``) or cannot be written.
    """
    path = Path(path)
    if path.exists() and not force:
        raise UsageError(f"{path} exists; pass --force to overwrite it")
    try:
        path.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
    except OSError as exc:
        raise UsageError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    return path
