"""Finite tabular MDPs, validated once on construction and trusted afterwards.

Semantics (the same everywhere in pgverify): at t = 0, 1, ... the agent in a non-terminal state s_t
draws a_t ~ pi(.|s_t), the environment draws s_{t+1} ~ P[s_t, a_t, .] and the reward
r(s_t, a_t, s_{t+1}) is received with weight gamma^t. An episode ends on entering a terminal
(absorbing) state or after ``horizon`` actions; ``horizon=None`` means "until termination".

    J(theta) = E[ sum_t gamma^t r(s_t, a_t, s_{t+1}) ]

Storage. The model is held as successor lists (``Successors``: CSR over the S A state-action pairs, one entry per
s' with P[s, a, s'] > 0, in (s, a, s') order), so memory and work follow the number of transitions, not S^2 A:
a gridworld with S = 10^5 states and 4 actions has ~1.6 10^6 entries where the dense [S, A, S] array would have
4 10^10. Transitions and rewards come either dense (nested lists/arrays [S][A][S]) or sparse,

    transitions = {"sparse": [[s, a, s_next, p], ...]}
    rewards     = {"sparse": [[s, a, r] or [s, a, s_next, r], ...]}

(unlisted entries are 0; states and actions by index or name). Both forms of the same MDP give the same successor
lists bit for bit, and every numerical path (``verify.exact``, ``verify.sampler``) reads only those. The dense
``transitions``/``rewards`` arrays stay available: kept as given when the input was dense, built on first use
otherwise (refused above ``DENSE_MAX_ENTRIES`` entries).
"""
from __future__ import annotations

import json
import math
import numbers
import weakref
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from verify.errors import InvalidMDPError, UsageError, positive_int

__all__ = ["DENSE_FILE_MAX_ENTRIES", "DENSE_MAX_ENTRIES", "ROW_SUM_TOL", "Successors", "TabularMDP", "dumps_rows",
           "file_entries", "finite_array", "reachable", "reachable_csr", "within_horizon"]

ROW_SUM_TOL = 1e-9
DENSE_MAX_ENTRIES = 2**25     # 256 MB per dense [S, A, S] float array; beyond it only the successor lists exist


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

    The dense graph search (live states of small MDPs, trimming counterexamples); ``reachable_csr`` is the same
    search on successor lists.

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


def _gather_ranges(indptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Concatenation of range(indptr[r], indptr[r + 1]) over ``rows``: the CSR entries of those rows, [sum len]."""
    lo = indptr[rows]
    lens = indptr[rows + 1] - lo
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.intp)
    offsets = np.cumsum(lens) - lens
    return np.repeat(lo - offsets, lens) + np.arange(total)


def reachable_csr(indptr: np.ndarray, indices: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Boolean mask of the nodes reachable from ``start`` (bool [S]) along a CSR graph (indptr [S + 1], indices).

    Breadth-first, one vectorised step per distance: O(edges + S) work.

    >>> reachable_csr(np.array([0, 1, 2, 2]), np.array([1, 2]), np.array([True, False, False])).tolist()
    [True, True, True]
    """
    seen = np.array(start, dtype=bool)
    frontier = np.flatnonzero(seen)
    while frontier.size:
        nb = indices[_gather_ranges(indptr, frontier)]
        new = np.sort(nb[~seen[nb]])      # sorted and deduplicated (np.unique would import numpy.ma: start-up)
        seen[new] = True
        frontier = new[np.concatenate(([True], new[1:] != new[:-1]))] if new.size else new
    return seen


_WITHIN: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def within_horizon(mdp: "TabularMDP") -> tuple[np.ndarray, np.ndarray]:
    """The non-terminal states some episode can act in, and the fewest actions before it can: (states, first).

    Breadth-first from rho0's support through non-terminal states, at most H - 1 steps (horizon null: no limit).
    A state first reachable after k actions acts only at t >= k, with at most H - k actions left.

    Cached per MDP (weakly). O(edges searched) work.

    Returns:
      states: sorted indices, int [n]; first: k for each, int [n].

    >>> chain = TabularMDP(initial=[1, 0, 0, 0], transitions=[[[0, 1, 0, 0]], [[0, 0, 1, 0]], [[0, 0, 0, 1]],
    ...                    [[0, 0, 0, 1]]], rewards=[[1], [1], [1], [1]], horizon=2)
    >>> [x.tolist() for x in within_horizon(chain)]
    [[0, 1], [0, 1]]
    """
    hit = _WITHIN.get(mdp)
    if hit is not None:
        return hit
    succ = mdp.successors
    alive = ~mdp.terminal
    first = np.full(mdp.n_states, -1, dtype=np.int64)
    frontier = np.flatnonzero((mdp.initial > 0) & alive)
    first[frontier] = 0
    limit = np.inf if mdp.horizon is None else mdp.horizon - 1
    k = 0
    indptr, nxt = succ.state_indptr, succ.next_state
    while frontier.size and k < limit:
        nb = nxt[_gather_ranges(indptr, frontier)]
        new = np.sort(nb[(first[nb] < 0) & alive[nb]])
        frontier = new[np.concatenate(([True], new[1:] != new[:-1]))] if new.size else new
        k += 1
        first[frontier] = k
    states = np.flatnonzero(first >= 0)
    _WITHIN[mdp] = hit = (_read_only(states), _read_only(first[states]))
    return hit


@dataclass(frozen=True, eq=False)
class Successors:
    """The transitions as successor lists: CSR over the S A pairs p = s A + a, entries in (s, a, s') order.

    Attributes:
      n_states, n_actions: S and A.
      indptr: pair p's entries are indptr[p]:indptr[p + 1], int [S A + 1].
      next_state: s' of each entry, int [nnz].
      prob: P[s, a, s'] > 0 of each entry, float [nnz].
      reward: r(s, a, s') of each entry, float [nnz].

    Terminal states have one entry per action: a self-loop with probability 1 and reward 0.
    """

    n_states: int
    n_actions: int
    indptr: np.ndarray
    next_state: np.ndarray
    prob: np.ndarray
    reward: np.ndarray

    @property
    def nnz(self) -> int:
        return int(self.next_state.size)

    @cached_property
    def pair(self) -> np.ndarray:
        """The pair s A + a of each entry, int [nnz]."""
        return _read_only(np.repeat(np.arange(self.n_states * self.n_actions), np.diff(self.indptr)))

    @property
    def state(self) -> np.ndarray:
        """s of each entry, int [nnz]."""
        return self.pair // self.n_actions

    @property
    def action(self) -> np.ndarray:
        """a of each entry, int [nnz]."""
        return self.pair % self.n_actions

    @property
    def state_indptr(self) -> np.ndarray:
        """State s's entries (all actions) are state_indptr[s]:state_indptr[s + 1], int [S + 1]."""
        return self.indptr[::self.n_actions]

    @cached_property
    def expected_reward(self) -> np.ndarray:
        """rbar[s, a] = sum_{s'} P[s, a, s'] r[s, a, s'], shape [S, A] (summed in entry order)."""
        S, A = self.n_states, self.n_actions
        return _read_only(np.bincount(self.pair, weights=self.prob * self.reward, minlength=S * A).reshape(S, A))

    def to_dense(self, values: np.ndarray | None = None) -> np.ndarray:
        """``values`` (default ``prob``) scattered into a dense [S, A, S] array (zero elsewhere)."""
        S, A = self.n_states, self.n_actions
        dense = np.zeros((S * A, S))
        dense[self.pair, self.next_state] = self.prob if values is None else values
        return dense.reshape(S, A, S)

def _read_only(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


def _sparse_rows(spec, widths: tuple[int, ...], what: str, states: tuple[str, ...],
                 actions: tuple[str, ...]) -> dict[int, tuple[np.ndarray, list[np.ndarray]]]:
    """Rows of a sparse table by width: {width: (row numbers [n], [int index columns ..., float value column])}.

    States and actions are given by index or by name (names only through the slower per-row path).
    """
    if isinstance(spec, dict):
        if set(spec) != {"sparse"}:
            raise InvalidMDPError(f"{what} must be a dense array or {{\"sparse\": [...]}}, got keys {sorted(spec)}")
        rows = spec["sparse"]
    else:
        rows = spec
    what = f"{what}.sparse"
    kinds = ("state", "action", "next state")
    if isinstance(rows, np.ndarray) and rows.dtype.kind in "fiu" and rows.ndim == 2 and rows.shape[1] in widths:
        return _checked_columns({rows.shape[1]: (np.arange(len(rows)), rows.astype(float, copy=False))},
                                what, kinds, states, actions)
    if not isinstance(rows, (list, tuple)):
        raise InvalidMDPError(f"{what} must be a list of rows [s, a, ...], got {type(rows).__name__}")
    lengths = [len(r) if isinstance(r, (list, tuple)) else -1 for r in rows]
    bad = next((i for i, n in enumerate(lengths) if n not in widths), None)
    if bad is not None:
        raise InvalidMDPError(f"{what}[{bad}] = {rows[bad]!r} is not a row of {' or '.join(map(str, widths))} entries")
    groups = {}
    for w in widths:
        nums = [i for i, n in enumerate(lengths) if n == w] if len(widths) > 1 else list(range(len(rows)))
        if not nums:
            continue
        sub = rows if len(nums) == len(rows) else [rows[i] for i in nums]
        try:
            arr = np.array(sub)             # numbers only: one C pass (strings would make a string array)
        except (TypeError, ValueError):
            arr = None
        if arr is None or arr.dtype.kind not in "fiub" or arr.shape != (len(nums), w):
            arr = _named_rows(sub, nums, what, kinds, states, actions)
        groups[w] = (np.array(nums), arr.astype(float))
    return _checked_columns(groups, what, kinds, states, actions)


def _named_rows(rows, nums, what: str, kinds, states, actions) -> np.ndarray:
    """Rows holding state/action names (or anything but plain numbers), converted one by one."""
    state_at = {n: i for i, n in enumerate(states)}
    action_at = {n: i for i, n in enumerate(actions)}
    lookups = (state_at, action_at, state_at)
    data = []
    for i, row in zip(nums, rows):
        conv = []
        for j, x in enumerate(row):
            if isinstance(x, str) and j < len(row) - 1:
                if x not in lookups[j]:
                    raise InvalidMDPError(f"{what}[{i}] names unknown {kinds[j]} {x!r}")
                x = lookups[j][x]
            if isinstance(x, bool) or not isinstance(x, numbers.Real):
                raise InvalidMDPError(f"{what}[{i}][{j}] = {x!r} is not a number")
            conv.append(float(x))
        data.append(conv)
    return np.array(data, dtype=float).reshape(len(data), -1)


def _checked_columns(groups, what: str, kinds, states, actions) -> dict[int, tuple[np.ndarray, list[np.ndarray]]]:
    """Finite numbers and indices in range, per width group: {width: (row numbers, [index columns..., values])}."""
    sizes = (len(states), len(actions), len(states))
    out = {}
    for width, (nums, arr) in groups.items():
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        if bad.size:
            raise InvalidMDPError(f"{what}[{nums[bad[0]]}] = {arr[bad[0]].tolist()} has a non-finite number")
        cols = []
        for j in range(width - 1):
            col = arr[:, j]
            wrong = np.flatnonzero((col != np.floor(col)) | (col < 0) | (col >= sizes[j]))
            if wrong.size:
                k = wrong[0]
                raise InvalidMDPError(f"{what}[{nums[k]}] has {kinds[j]} {col[k]:g}, not an index in "
                                      f"0..{sizes[j] - 1} or a name")
            cols.append(col.astype(np.intp))
        out[width] = (nums, cols + [arr[:, -1].copy()])
    return out


def _first_duplicate(keys: np.ndarray, nums: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Sort ``keys`` (stable); InvalidMDPError if one repeats, naming both rows. Returns (order, sorted keys)."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    dup = np.flatnonzero(k[1:] == k[:-1])
    if dup.size:
        i, j = sorted((int(nums[order[dup[0]]]), int(nums[order[dup[0] + 1]])))
        raise InvalidMDPError(f"{what}.sparse[{j}] repeats the entry of {what}.sparse[{i}]")
    return order, k


def _terminal_mask(terminal, states: tuple[str, ...]) -> np.ndarray:
    S = len(states)
    if terminal is None:
        return np.zeros(S, dtype=bool)
    raw = np.asarray(terminal)
    if raw.dtype == bool:
        if raw.shape != (S,):
            raise InvalidMDPError(f"terminal mask has shape {raw.shape}, expected ({S},)")
        return raw.copy()
    mask = np.zeros(S, dtype=bool)
    names = {n: i for i, n in enumerate(states)} if S > 64 else None
    for i, entry in enumerate(list(terminal)):
        if names is not None and isinstance(entry, str) and entry in names:
            mask[names[entry]] = True
        else:
            mask[TabularMDP.state_index(entry, states, f"terminal[{i}]")] = True
    return mask


def _dense_transitions_and_names(transitions, states, actions):
    """(P dense [S, A, S] or None for sparse input, state names, action names), their sizes cross-checked."""
    if isinstance(transitions, (dict, Successors)):
        if states is None or actions is None:
            raise InvalidMDPError("sparse transitions need 'states' and 'actions' (counts or names)")
        return None, _names(states, "states"), _names(actions, "actions")
    P = finite_array(transitions, "transitions")
    if P.ndim != 3 or P.shape[0] != P.shape[2] or 0 in P.shape:
        raise InvalidMDPError(f"transitions must have shape [S][A][S], got {P.shape}")
    S, A, _ = P.shape
    states_t = _names(S if states is None else states, "states")
    actions_t = _names(A if actions is None else actions, "actions")
    if len(states_t) != S:
        raise InvalidMDPError(f"states lists {len(states_t)} names but transitions has {S} states")
    if len(actions_t) != A:
        raise InvalidMDPError(f"actions lists {len(actions_t)} names but transitions has {A} actions")
    return P, states_t, actions_t


def _check_initial(rho0: np.ndarray) -> None:
    neg = np.flatnonzero(rho0 < 0)
    if neg.size:
        raise InvalidMDPError(f"initial[{neg[0]}] = {rho0[neg[0]]} is a negative probability")
    if abs(rho0.sum() - 1.0) > ROW_SUM_TOL:
        raise InvalidMDPError(f"initial sums to {rho0.sum():.12g}, not 1 (tolerance {ROW_SUM_TOL})")


def _dense_rewards(rewards, S: int, A: int) -> np.ndarray | None:
    """Dense rewards as [S, A, S] (an [S, A] table broadcast over s'), or None when given sparse."""
    r = finite_array(rewards, "rewards") if not isinstance(rewards, dict) else None
    if r is not None:
        if r.shape == (S, A):
            r = np.repeat(r[:, :, None], S, axis=2)
        elif r.shape != (S, A, S):
            raise InvalidMDPError(f"rewards has shape {r.shape}, expected [S][A] = {(S, A)} or "
                                  f"[S][A][S] = {(S, A, S)}")
    return r


def _dense_successors(P: np.ndarray, rewards) -> tuple[Successors, list]:
    """(successors of dense P, rewards still zero; [P, r dense or None]) after the sign check of P."""
    S, A, _ = P.shape
    r = _dense_rewards(rewards, S, A)
    neg = np.argwhere(P < 0)
    if neg.size:
        idx = "".join(f"[{i}]" for i in neg[0])
        raise InvalidMDPError(f"transitions{idx} = {P[tuple(neg[0])]} is a negative probability")
    pair, nxt = np.nonzero(P.reshape(S * A, S))
    prob = P.reshape(S * A, S)[pair, nxt]
    return _successors_from_entries(S, A, pair, nxt, prob, np.zeros(prob.size)), [P, r]


def _model(P: np.ndarray | None, transitions, rewards, term: np.ndarray, states_t: tuple[str, ...],
           actions_t: tuple[str, ...]) -> tuple[Successors, list[np.ndarray] | None]:
    """(successors with rewards, [P, r] dense read-only or None), terminal rows made absorbing with reward 0."""
    S, A = len(states_t), len(actions_t)
    if P is None:
        succ = (transitions if isinstance(transitions, Successors)
                else _sparse_transitions(transitions, states_t, actions_t))
        if (succ.n_states, succ.n_actions) != (S, A):
            raise InvalidMDPError(f"successor lists are for {succ.n_states} x {succ.n_actions}, not {S} x {A}")
        dense = None
    else:
        succ, dense = _dense_successors(P, rewards)
    _check_row_sums(succ, term, states_t, actions_t, "transitions")
    succ = _with_terminal_loops(succ, term)
    if dense is None or dense[1] is None:
        reward = _entry_rewards(rewards, succ, term, states_t, actions_t)
    else:
        reward = dense[1].reshape(S * A, S)[succ.pair, succ.next_state]
        reward[term[succ.state]] = 0.0
    succ = Successors(S, A, succ.indptr, succ.next_state, succ.prob, _read_only(reward))
    if dense is not None:
        # Terminal rows are ignored: make them absorbing with zero reward so no code path needs a special case.
        P = P.copy()
        P[term] = 0.0
        P[term, :, np.flatnonzero(term)] = 1.0
        r = dense[1] if dense[1] is not None else succ.to_dense(reward)
        r[term] = 0.0
        dense = [_read_only(P), _read_only(r)]
    return succ, dense


def _check_discount(gamma, horizon) -> int | None:
    """Validates gamma; returns the horizon as a positive int, or None."""
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not math.isfinite(gamma) \
            or not 0 <= gamma <= 1:
        raise InvalidMDPError(f"gamma must be a number in [0, 1], got {gamma!r}")
    if horizon is not None:
        horizon = positive_int(horizon, "horizon", InvalidMDPError, alternative="or null")
    return horizon


class TabularMDP:
    """A finite MDP with absorbing terminal states and an optional horizon.

    Construction validates everything; afterwards every array is read-only and trusted (the object is frozen and
    compares by identity).

    Args:
      initial: rho0, shape [S].
      transitions: P[s, a, s'], dense [S, A, S], or sparse ``{"sparse": [[s, a, s', p], ...]}`` (or a
        ``Successors``); the sparse forms need ``states`` and ``actions``.
      rewards: r[s, a] (broadcast over s') or r[s, a, s'] dense, or ``{"sparse": [[s, a, r] | [s, a, s', r], ...]}``.
      terminal: indices/names of terminal states, or a boolean mask [S].
      gamma: discount in [0, 1].
      horizon: maximum number of actions (positive int) or None for "until termination".
      states, actions: counts or names.
      name: for messages and reports.

    Attributes:
      successors: the model as ``Successors`` (what every numerical path reads).
      transitions, rewards: dense [S, A, S] views (see the module docstring). Rows of terminal states are
        self-loops with reward 0 (they are never used: no action is taken in a terminal state).
      initial, terminal, gamma, horizon, states, actions, name: validated.

    Raises:
      InvalidMDPError: naming the offending entry.

    >>> mdp = TabularMDP(initial=[1, 0], transitions=[[[0, 1]], [[0, 1]]], rewards=[[1], [0]],
    ...                  terminal=[1], gamma=0.9, horizon=3)
    >>> mdp.n_states, mdp.n_actions, mdp.terminal.tolist()
    (2, 1, [False, True])
    >>> sparse = TabularMDP(initial=[1, 0], transitions={"sparse": [[0, 0, 1, 1.0]]}, rewards={"sparse": [[0, 0, 1]]},
    ...                     terminal=[1], gamma=0.9, horizon=3, states=2, actions=1)
    >>> bool((sparse.transitions == mdp.transitions).all()), sparse.successors.nnz
    (True, 2)
    """

    def __init__(self, initial, transitions, rewards, terminal=None, gamma: float = 1.0, horizon: int | None = None,
                 states=None, actions=None, name: str = "mdp"):
        set_ = object.__setattr__
        P, states_t, actions_t = _dense_transitions_and_names(transitions, states, actions)
        rho0 = finite_array(initial, "initial", (len(states_t),))
        term = _terminal_mask(terminal, states_t)
        _check_initial(rho0)
        succ, dense = _model(P, transitions, rewards, term, states_t, actions_t)
        horizon = _check_discount(gamma, horizon)

        set_(self, "initial", _read_only(rho0))
        set_(self, "terminal", _read_only(term))
        set_(self, "successors", succ)
        set_(self, "_dense", dense)
        set_(self, "_dense_input", dense is not None)
        set_(self, "gamma", float(gamma))
        set_(self, "horizon", horizon)
        set_(self, "states", states_t)
        set_(self, "actions", actions_t)
        set_(self, "name", str(name))
        if horizon is None and gamma == 1.0 and not self.terminates_surely():
            raise InvalidMDPError(
                "gamma = 1 with horizon null needs certain termination, but a reachable state cannot reach a "
                "terminal state; set a horizon or gamma < 1")

    def __setattr__(self, name, value):
        raise AttributeError(f"TabularMDP is frozen: cannot set {name!r}")

    def __repr__(self) -> str:
        return (f"TabularMDP(name={self.name!r}, S={self.n_states}, A={self.n_actions}, nnz={self.successors.nnz}, "
                f"gamma={self.gamma}, horizon={self.horizon})")

    @staticmethod
    def state_index(entry, states: tuple[str, ...], what: str) -> int:
        """Index of a state given by index or by name; raises InvalidMDPError naming ``what``."""
        if isinstance(entry, str):
            if entry in states:
                return states.index(entry)
            shown = list(states) if len(states) <= 20 else f"{len(states)} names"
            raise InvalidMDPError(f"{what} names unknown state {entry!r} (states: {shown})")
        if isinstance(entry, numbers.Integral) and not isinstance(entry, bool) and 0 <= entry < len(states):
            return int(entry)
        raise InvalidMDPError(f"{what} = {entry!r} is not a state index in 0..{len(states) - 1} or a state name")

    @property
    def n_states(self) -> int:
        return self.successors.n_states

    @property
    def n_actions(self) -> int:
        return self.successors.n_actions

    @property
    def is_dense(self) -> bool:
        """Whether the dense [S, A, S] arrays exist (given dense, or built since)."""
        return self._dense is not None

    def _dense_arrays(self) -> list[np.ndarray]:
        if self._dense is None:
            S, A = self.n_states, self.n_actions
            if S * A * S > DENSE_MAX_ENTRIES:
                raise UsageError(f"{self.name}: the dense [S][A][S] arrays of this MDP (S = {S}, A = {A}) would have "
                                 f"{S * A * S:.3g} entries; it is stored as {self.successors.nnz} successor entries "
                                 "(mdp.successors) and only those can be used")
            succ = self.successors
            object.__setattr__(self, "_dense", [_read_only(succ.to_dense()), _read_only(succ.to_dense(succ.reward))])
        return self._dense

    @property
    def transitions(self) -> np.ndarray:
        """P[s, a, s'], dense, shape [S, A, S] (read-only)."""
        return self._dense_arrays()[0]

    @property
    def rewards(self) -> np.ndarray:
        """r[s, a, s'], dense, shape [S, A, S] (read-only)."""
        return self._dense_arrays()[1]

    @property
    def expected_reward(self) -> np.ndarray:
        """rbar[s, a] = sum_{s'} P[s, a, s'] r[s, a, s'], shape [S, A]."""
        return self.successors.expected_reward

    def terminates_surely(self) -> bool:
        """Whether every policy with full support reaches a terminal state with probability one.

        Softmax policies give every action positive probability, so this is a graph property: every state
        reachable from rho0 must be able to reach a terminal state.
        """
        succ = self.successors
        reach = reachable_csr(succ.state_indptr, succ.next_state, self.initial > 0)
        # The reversed graph: entries sorted by next state (terminal self-loops add no edge that matters).
        order = np.argsort(succ.next_state, kind="stable")
        rev_indptr = np.concatenate([[0], np.cumsum(np.bincount(succ.next_state, minlength=self.n_states))])
        can_end = reachable_csr(rev_indptr, succ.state[order], self.terminal)
        return bool(np.all(can_end[reach]))

    def replace(self, **changes) -> "TabularMDP":
        """A copy with some fields changed (validated again)."""
        fields = dict(initial=self.initial, terminal=self.terminal, gamma=self.gamma, horizon=self.horizon,
                      states=self.states, actions=self.actions, name=self.name)
        if self._dense_input:
            fields.update(transitions=self.transitions, rewards=self.rewards)
        else:
            fields.update(transitions=self.successors, rewards=None)
        fields.update(changes)
        return TabularMDP(**fields)


def _successors_from_entries(S: int, A: int, pair: np.ndarray, nxt: np.ndarray, prob: np.ndarray,
                             reward: np.ndarray) -> Successors:
    """Successors from entries already in (pair, s') order."""
    indptr = np.zeros(S * A + 1, dtype=np.intp)
    np.cumsum(np.bincount(pair, minlength=S * A), out=indptr[1:])
    return Successors(S, A, _read_only(indptr), _read_only(np.asarray(nxt, dtype=np.intp)),
                      _read_only(np.asarray(prob, dtype=float)), _read_only(np.asarray(reward, dtype=float)))


def _sparse_transitions(spec, states: tuple[str, ...], actions: tuple[str, ...]) -> Successors:
    S, A = len(states), len(actions)
    rows = _sparse_rows(spec, (4,), "transitions", states, actions)
    if 4 not in rows:
        return _successors_from_entries(S, A, np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0), np.zeros(0))
    nums, (s, a, nxt, p) = rows[4]
    neg = np.flatnonzero(p < 0)
    if neg.size:
        raise InvalidMDPError(f"transitions.sparse[{nums[neg[0]]}] has p = {p[neg[0]]}, a negative probability")
    pair = s * A + a
    order, _ = _first_duplicate(pair * S + nxt, nums, "transitions")
    keep = order[p[order] > 0]
    return _successors_from_entries(S, A, pair[keep], nxt[keep], p[keep], np.zeros(keep.size))


def _check_row_sums(succ: Successors, terminal: np.ndarray, states, actions, what: str) -> None:
    S, A = succ.n_states, succ.n_actions
    sums = np.bincount(succ.pair, weights=succ.prob, minlength=S * A).reshape(S, A)
    off = np.argwhere((np.abs(sums - 1.0) > ROW_SUM_TOL) & ~terminal[:, None])
    if off.size:
        s, a = off[0]
        raise InvalidMDPError(
            f"{what}[{s}][{a}] (state {states[s]!r}, action {actions[a]!r}) sums to "
            f"{sums[s, a]:.12g}, not 1 (tolerance {ROW_SUM_TOL})")


def _with_terminal_loops(succ: Successors, terminal: np.ndarray) -> Successors:
    """Terminal states' pairs replaced by self-loops of probability 1 (rewards zero)."""
    if not terminal.any():
        return succ
    S, A = succ.n_states, succ.n_actions
    pair_state = np.arange(S * A) // A
    keep = ~terminal[succ.state]
    loops = np.flatnonzero(terminal[pair_state])
    pair = np.concatenate([succ.pair[keep], loops])
    nxt = np.concatenate([succ.next_state[keep], pair_state[loops]])
    prob = np.concatenate([succ.prob[keep], np.ones(loops.size)])
    reward = np.concatenate([succ.reward[keep], np.zeros(loops.size)])
    order = np.argsort(pair, kind="stable")      # loops join their pairs; other entries keep their order
    return _successors_from_entries(S, A, pair[order], nxt[order], prob[order], reward[order])


def _entry_rewards(rewards, succ: Successors, terminal: np.ndarray, states, actions) -> np.ndarray:
    """r(s, a, s') at every successor entry from dense [S, A] / [S, A, S] or sparse rewards; 0 for terminal s."""
    S, A = succ.n_states, succ.n_actions
    s_e, nxt = succ.state, succ.next_state
    if rewards is None:
        out = succ.reward
    elif not isinstance(rewards, dict):
        r = finite_array(rewards, "rewards")
        if r.shape == (S, A):
            out = r.reshape(-1)[succ.pair]
        elif r.shape == (S, A, S):
            out = r.reshape(S * A, S)[succ.pair, nxt]
        else:
            raise InvalidMDPError(f"rewards has shape {r.shape}, expected [S][A] = {(S, A)} or [S][A][S] = {(S, A, S)}")
    else:
        rows = _sparse_rows(rewards, (3, 4), "rewards", states, actions)
        out = np.zeros(succ.nnz)
        per_pair = np.zeros(S * A)
        given = np.zeros(S * A, dtype=bool)
        if 3 in rows:
            nums, (s, a, r) = rows[3]
            order, keys = _first_duplicate(s * A + a, nums, "rewards")
            per_pair[keys] = r[order]
            given[keys] = True
            out = per_pair[succ.pair]
        if 4 in rows:
            nums, (s, a, n4, r) = rows[4]
            pair = s * A + a
            both = np.flatnonzero(given[pair])
            if both.size:
                raise InvalidMDPError(f"rewards.sparse[{nums[both[0]]}] gives r(s, a, s') for a pair (s, a) that "
                                      "also has an [s, a, r] row")
            order, keys = _first_duplicate(pair * S + n4, nums, "rewards")
            entry_keys = succ.pair * S + nxt
            at = np.searchsorted(keys, entry_keys)
            hit = at < keys.size
            hit[hit] = keys[at[hit]] == entry_keys[hit]
            out[hit] = r[order][at[hit]]
    out = np.array(out, dtype=float)
    out[terminal[s_e]] = 0.0
    return out


# --- the MDP file's transitions and rewards, and its layout ---------------------------------------------------------

DENSE_FILE_MAX_ENTRIES = 4096    # S A S up to this is written dense (readable by eye); larger MDPs sparse


def file_entries(mdp: TabularMDP, *, sparse: bool | None = None) -> dict:
    """``transitions`` and ``rewards`` of the MDP file: dense nested lists, or the sparse rows.

    Sparse: ``[s, a, s', p]`` per successor entry (terminal states: their self-loops), and the non-zero rewards,
    as ``[s, a, r]`` when every successor of (s, a) has the same reward r, else
    ``[s, a, s', r]``. ``sparse=None`` writes dense only MDPs given dense with S A S <= DENSE_FILE_MAX_ENTRIES.

    >>> mdp = TabularMDP(initial=[1, 0], transitions=[[[0.5, 0.5]], [[0, 1]]], rewards=[[2], [0]], terminal=[1])
    >>> file_entries(mdp, sparse=True)
    {'transitions': {'sparse': [[0, 0, 0, 0.5], [0, 0, 1, 0.5], [1, 0, 1, 1.0]]}, 'rewards': {'sparse': [[0, 0, 2.0]]}}
    """
    S, A = mdp.n_states, mdp.n_actions
    if sparse is None:
        sparse = not (mdp.is_dense and S * A * S <= DENSE_FILE_MAX_ENTRIES)
    if not sparse:
        return {"transitions": mdp.transitions.tolist(), "rewards": mdp.rewards.tolist()}
    succ = mdp.successors
    pair, nxt, prob, reward = succ.pair, succ.next_state, succ.prob, succ.reward
    s, a = np.divmod(pair, A)
    transitions = [list(row) for row in zip(s.tolist(), a.tolist(), nxt.tolist(), prob.tolist())]
    # Pairs whose successors all share one reward are written once.
    uniform = np.zeros(S * A, dtype=bool)
    if pair.size:
        firsts = np.flatnonzero(np.diff(pair, prepend=-1))
        uniform[pair[firsts]] = np.minimum.reduceat(reward, firsts) == np.maximum.reduceat(reward, firsts)
    rewards = []
    for i in np.flatnonzero(reward != 0):
        if not uniform[pair[i]]:
            rewards.append([int(s[i]), int(a[i]), int(nxt[i]), float(reward[i])])
        elif i == 0 or pair[i - 1] != pair[i]:
            rewards.append([int(s[i]), int(a[i]), float(reward[i])])
    return {"transitions": {"sparse": transitions}, "rewards": {"sparse": rewards}}


def dumps_rows(data, indent: int = 1) -> str:
    """JSON text of ``data`` with every innermost list (a row of numbers or names) on one line.

    ``json.dumps(indent=...)`` puts every number on its own line: a dense Taxi file had 3 million lines.

    >>> print(dumps_rows({"a": [[1, 2], [3, 4]], "b": {"sparse": []}}), end="")
    {
     "a": [
      [1, 2],
      [3, 4]
     ],
     "b": {
      "sparse": []
     }
    }
    """
    def encode(x, level: int) -> str:
        pad, end = " " * (indent * (level + 1)), " " * (indent * level)
        if isinstance(x, dict):
            if not x:
                return "{}"
            return "{\n" + ",\n".join(f"{pad}{json.dumps(str(k))}: {encode(v, level + 1)}" for k, v in x.items()) \
                + "\n" + end + "}"
        if isinstance(x, (list, tuple)) and any(isinstance(v, (list, tuple, dict)) for v in x):
            if all(type(v) is list and all(type(e) in (int, float) for e in v) for v in x):
                # Rows of plain numbers (sparse entries, the last level of dense arrays): one C-level dump, split
                # between rows (no "], [" can occur inside a number).
                return "[\n" + pad + json.dumps(x, allow_nan=False)[1:-1].replace("], [", "],\n" + pad + "[") \
                    + "\n" + end + "]"
            return "[\n" + ",\n".join(pad + encode(v, level + 1) for v in x) + "\n" + end + "]"
        return json.dumps(x, allow_nan=False)
    return encode(data, 0) + "\n"
