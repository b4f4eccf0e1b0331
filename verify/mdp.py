"""Finite tabular MDPs, validated once on construction and trusted afterwards.

Semantics (the same everywhere in pgverify): at t = 0, 1, ... the agent in a non-terminal state s_t
draws a_t ~ pi(.|s_t), the environment draws s_{t+1} ~ P[s_t, a_t, .] and the reward
r(s_t, a_t, s_{t+1}) is received with weight gamma^t. An episode ends on entering a terminal
(absorbing) state or after ``horizon`` actions; ``horizon=None`` means "until termination".

    J(theta) = E[ sum_t gamma^t r(s_t, a_t, s_{t+1}) ]
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from verify.errors import InvalidMDPError

__all__ = ["ROW_SUM_TOL", "TabularMDP", "finite_array", "reachable"]

ROW_SUM_TOL = 1e-9


def _names(count_or_names, what: str) -> tuple[str, ...]:
    if isinstance(count_or_names, bool):
        raise InvalidMDPError(f"{what} must be a positive integer or a list of names, got {count_or_names!r}")
    if isinstance(count_or_names, numbers.Integral):
        if count_or_names < 1:
            raise InvalidMDPError(f"{what} must be at least 1, got {count_or_names}")
        return tuple(str(i) for i in range(int(count_or_names)))
    if isinstance(count_or_names, (list, tuple)) and count_or_names:
        names = tuple(str(n) for n in count_or_names)
        if len(set(names)) != len(names):
            raise InvalidMDPError(f"{what} has duplicate names: {list(names)}")
        return names
    raise InvalidMDPError(f"{what} must be a positive integer or a non-empty list of names, got {count_or_names!r}")


def finite_array(value, what: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``value`` as a float array, or InvalidMDPError naming ``what`` and the first non-finite entry or bad shape.

    >>> finite_array([[0.5, float("nan")]], "transitions[0]")
    Traceback (most recent call last):
    ...
    verify.errors.InvalidMDPError: transitions[0][0][1] is nan (must be a finite number)
    """
    try:
        arr = np.array(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidMDPError(f"{what} is not a (nested) list of numbers: {exc}") from None
    if shape is not None and arr.shape != shape:
        raise InvalidMDPError(f"{what} has shape {arr.shape}, expected {shape}")
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        idx = "".join(f"[{i}]" for i in bad[0])
        raise InvalidMDPError(f"{what}{idx} is {arr[tuple(bad[0])]} (must be a finite number)")
    return arr


def reachable(adjacency: np.ndarray, start: np.ndarray) -> np.ndarray:
    """States reachable from ``start`` along ``adjacency`` (boolean [S, S]), ``start`` included: bool [S].

    The one graph search of pgverify (live states of the DP, certain termination, trimming counterexamples).

    >>> reachable(np.array([[0, 1, 0], [0, 0, 0], [1, 0, 0]], dtype=bool), np.array([True, False, False])).tolist()
    [True, True, False]
    """
    seen = start.copy()
    frontier = start.copy()
    while frontier.any():
        nxt = adjacency[frontier].any(axis=0) & ~seen
        seen |= nxt
        frontier = nxt
    return seen


@dataclass(frozen=True, eq=False)
class TabularMDP:
    """A finite MDP with absorbing terminal states and an optional horizon.

    Construction validates everything; afterwards every array is read-only and trusted.

    Attributes:
      initial: rho0, shape [S].
      transitions: P[s, a, s'], shape [S, A, S]. Rows of terminal states are replaced by
        self-loops (they are never used: no action is taken in a terminal state).
      rewards: r[s, a, s'], shape [S, A, S] (an [S, A] input is broadcast over s').
      terminal: boolean mask, shape [S].
      gamma: discount in [0, 1].
      horizon: maximum number of actions (positive int) or None for "until termination".

    Raises:
      InvalidMDPError: naming the offending entry.

    >>> mdp = TabularMDP(initial=[1, 0], transitions=[[[0, 1]], [[0, 1]]], rewards=[[1], [0]],
    ...                  terminal=[1], gamma=0.9, horizon=3)
    >>> mdp.n_states, mdp.n_actions, mdp.terminal.tolist()
    (2, 1, [False, True])
    """

    initial: np.ndarray
    transitions: np.ndarray
    rewards: np.ndarray
    terminal: np.ndarray = None  # type: ignore[assignment]
    gamma: float = 1.0
    horizon: int | None = None
    states: tuple[str, ...] | int | None = None
    actions: tuple[str, ...] | int | None = None
    name: str = "mdp"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        P = finite_array(self.transitions, "transitions")
        if P.ndim != 3 or P.shape[0] != P.shape[2] or 0 in P.shape:
            raise InvalidMDPError(f"transitions must have shape [S][A][S], got {P.shape}")
        S, A, _ = P.shape
        states = _names(S if self.states is None else self.states, "states")
        actions = _names(A if self.actions is None else self.actions, "actions")
        if len(states) != S:
            raise InvalidMDPError(f"states lists {len(states)} names but transitions has {S} states")
        if len(actions) != A:
            raise InvalidMDPError(f"actions lists {len(actions)} names but transitions has {A} actions")
        rho0 = finite_array(self.initial, "initial", (S,))
        r = finite_array(self.rewards, "rewards")
        if r.shape == (S, A):
            r = np.repeat(r[:, :, None], S, axis=2)
        elif r.shape != (S, A, S):
            raise InvalidMDPError(f"rewards has shape {r.shape}, expected [S][A] = {(S, A)} or [S][A][S] = {(S, A, S)}")
        terminal = self._terminal_mask(states)

        for arr, what in ((rho0, "initial"), (P, "transitions")):
            neg = np.argwhere(arr < 0)
            if neg.size:
                idx = "".join(f"[{i}]" for i in neg[0])
                raise InvalidMDPError(f"{what}{idx} = {arr[tuple(neg[0])]} is a negative probability")
        if abs(rho0.sum() - 1.0) > ROW_SUM_TOL:
            raise InvalidMDPError(f"initial sums to {rho0.sum():.12g}, not 1 (tolerance {ROW_SUM_TOL})")
        sums = P.sum(axis=2)
        off = np.argwhere((np.abs(sums - 1.0) > ROW_SUM_TOL) & ~terminal[:, None])
        if off.size:
            s, a = off[0]
            raise InvalidMDPError(
                f"transitions[{s}][{a}] (state {states[s]!r}, action {actions[a]!r}) sums to "
                f"{sums[s, a]:.12g}, not 1 (tolerance {ROW_SUM_TOL})")
        # Terminal rows are ignored: make them absorbing with zero reward so no code path needs a special case.
        P = P.copy()
        P[terminal] = 0.0
        for s in terminal.nonzero()[0]:
            P[s, :, s] = 1.0
            r[s] = 0.0

        gamma = self.gamma
        if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not math.isfinite(gamma) or not 0 <= gamma <= 1:
            raise InvalidMDPError(f"gamma must be a number in [0, 1], got {gamma!r}")
        horizon = self.horizon
        if horizon is not None:
            if isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral) or horizon < 1:
                raise InvalidMDPError(f"horizon must be a positive integer or null, got {horizon!r}")
            horizon = int(horizon)

        for name, arr in (("initial", rho0), ("transitions", P), ("rewards", r), ("terminal", terminal)):
            arr.setflags(write=False)
            set_(self, name, arr)
        set_(self, "gamma", float(gamma))
        set_(self, "horizon", horizon)
        set_(self, "states", states)
        set_(self, "actions", actions)
        set_(self, "name", str(self.name))
        if horizon is None and gamma == 1.0 and not self.terminates_surely():
            raise InvalidMDPError(
                "gamma = 1 with horizon null needs certain termination, but a reachable state cannot reach a "
                "terminal state; set a horizon or gamma < 1")

    def _terminal_mask(self, states: tuple[str, ...]) -> np.ndarray:
        S = len(states)
        if self.terminal is None:
            return np.zeros(S, dtype=bool)
        raw = np.asarray(self.terminal)
        if raw.dtype == bool:
            if raw.shape != (S,):
                raise InvalidMDPError(f"terminal mask has shape {raw.shape}, expected ({S},)")
            return raw.copy()
        mask = np.zeros(S, dtype=bool)
        for i, entry in enumerate(list(self.terminal)):
            mask[self.state_index(entry, states, f"terminal[{i}]")] = True
        return mask

    @staticmethod
    def state_index(entry, states: tuple[str, ...], what: str) -> int:
        """Index of a state given by index or by name; raises InvalidMDPError naming ``what``."""
        if isinstance(entry, str):
            if entry in states:
                return states.index(entry)
            raise InvalidMDPError(f"{what} names unknown state {entry!r} (states: {list(states)})")
        if isinstance(entry, numbers.Integral) and not isinstance(entry, bool) and 0 <= entry < len(states):
            return int(entry)
        raise InvalidMDPError(f"{what} = {entry!r} is not a state index in 0..{len(states) - 1} or a state name")

    @property
    def n_states(self) -> int:
        return self.transitions.shape[0]

    @property
    def n_actions(self) -> int:
        return self.transitions.shape[1]

    @property
    def expected_reward(self) -> np.ndarray:
        """rbar[s, a] = sum_{s'} P[s, a, s'] r[s, a, s'], shape [S, A]."""
        return np.einsum("ijk,ijk->ij", self.transitions, self.rewards)

    def terminates_surely(self) -> bool:
        """Whether every policy with full support reaches a terminal state with probability one.

        Softmax policies give every action positive probability, so this is a graph property: every state
        reachable from rho0 must be able to reach a terminal state.
        """
        adj = (self.transitions > 0).any(axis=1) & ~self.terminal[:, None]
        reach = reachable(adj, self.initial > 0)
        can_end = reachable(adj.T, self.terminal)
        return bool(np.all(can_end[reach]))

    def replace(self, **changes) -> "TabularMDP":
        """A copy with some fields changed (validated again)."""
        fields = dict(initial=self.initial, transitions=self.transitions, rewards=self.rewards,
                      terminal=self.terminal, gamma=self.gamma, horizon=self.horizon,
                      states=self.states, actions=self.actions, name=self.name)
        fields.update(changes)
        return TabularMDP(**fields)
