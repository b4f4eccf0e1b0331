"""Backward induction on the transition matrix: one sparse product per time step, and values only where they act.

The value tables (``verify.numerics.exact.value_tables``, ``state_values``, ``action_values_at``) need, per step,

    Q_t(s, a) = rbar(s, a) + gamma sum_{s' non-terminal} P(s'|s, a) V_{t+1}(s'),   V_t(s) = sum_a pi(a|s) Q_t(s, a).

``ValueKernel`` holds P restricted to the states a table covers as a scipy.sparse CSR array [n A, n] whose entries
keep the successor lists' (s, a, s') order, so ``P @ v`` sums each pair's terms in the order of the successor-list
``bincount`` it replaces (terms for terminal s' are exact zeros there and are left out here): the same bits, at the
cost of the sparse product the exact gradient uses (gridworld, S = 10^5: 3 ms instead of 12-40 ms per step,
``benchmarks/bench_scale.py``).

``verify.model.mdp.within_horizon`` is the other saving: with horizon H, only states reachable in at most H - 1 actions ever act,
and a state first reachable after k actions only with at most H - k left. ``HorizonValues`` keeps V_t on those
states alone ([H, n] instead of [H, S]: the 10^6-state gridworld of ``benchmarks/scale_models.py`` reaches 2 10^5
cells in 200 steps), and answers V_t(s) exactly wherever an episode can be (s first reachable by time t);
``covers`` says whether a query is inside.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from verify.model.io import require_memory
from verify.model.mdp import TabularMDP, _gather_ranges, within_horizon

__all__ = ["HorizonValues", "ValueKernel", "backward_pass", "horizon_values", "horizon_values_bytes", "kernel_bytes",
           "value_kernel"]

_KERNELS: "weakref.WeakKeyDictionary[TabularMDP, dict]" = weakref.WeakKeyDictionary()


def kernel_bytes(n_entries: int, n_states: int, n_actions: int, n_all: int = 0) -> float:
    """Peak memory of building a ``ValueKernel`` with ``n_entries`` transitions from ``n_states`` states (of
    ``n_all`` in the MDP): the CSR array (8-byte values, 4-byte indices), rbar and the position map it keeps, and
    the build's index arrays over the entries (about 33 bytes each, freed)."""
    return 45.0 * n_entries + 24.0 * n_states * n_actions + 8.0 * n_all


@dataclass(frozen=True, eq=False)
class ValueKernel:
    """P(s'|s, a) among ``states`` (non-terminal) as CSR [n A, n] in successor-list order, with rbar and gamma.

    Attributes:
      states: the states covered, sorted, int [n]; position: column of each MDP state, -1 outside, int [S].
      P: scipy.sparse CSR array [n A, n]; rbar: expected reward [n, A]; gamma: the discount.
    """

    states: np.ndarray
    position: np.ndarray
    P: object
    rbar: np.ndarray
    gamma: float

    def q_values(self, v_next: np.ndarray) -> np.ndarray:
        """Q(s, a) = rbar(s, a) + gamma sum_{s'} P(s'|s, a) v_next(s') on the covered states; v_next [n] -> [n, A]."""
        return self.rbar + self.gamma * (self.P @ v_next).reshape(self.rbar.shape)


def value_kernel(mdp: TabularMDP, states: np.ndarray | None = None) -> ValueKernel:
    """The ``ValueKernel`` of ``mdp`` on ``states`` (default: every non-terminal state), cached per MDP and set.

    Entries whose s' is outside ``states`` are left out: terminal s' (their value is zero) and, for
    ``within_horizon``'s states, s' first reachable at H (only ever needed with no action left, value zero).
    """
    import scipy.sparse

    key = "all" if states is None else "horizon"
    cache = _KERNELS.setdefault(mdp, {})
    if key in cache:
        return cache[key]
    succ, S, A = mdp.successors, mdp.n_states, mdp.n_actions
    if states is None:
        states = np.flatnonzero(~mdp.terminal)
    n = states.size
    require_memory(kernel_bytes(succ.nnz, n, A, S), f"the transition matrix of the value tables ({n} states)")
    position = np.full(S, -1, dtype=np.int64)
    position[states] = np.arange(n)
    # Rows of the covered states' pairs, in order; within a pair the successor lists' order is kept.
    entry = _gather_ranges(succ.indptr, (states[:, None] * A + np.arange(A)).ravel())
    cols = position[succ.next_state[entry]]
    keep = cols >= 0
    widths = (succ.indptr[1:] - succ.indptr[:-1]).reshape(S, A)[states].ravel()
    row = np.repeat(np.arange(n * A), widths)
    indptr = np.zeros(n * A + 1, dtype=np.int64)
    np.cumsum(np.bincount(row[keep], minlength=n * A), out=indptr[1:])
    index_type = np.int32 if max(n, indptr[-1]) < 2**31 else np.int64
    P = scipy.sparse.csr_array((succ.prob[entry[keep]], cols[keep].astype(index_type), indptr.astype(index_type)),
                               shape=(n * A, n))
    kernel = ValueKernel(states, position, P, np.ascontiguousarray(mdp.expected_reward[states]), mdp.gamma)
    cache[key] = kernel
    return kernel


def backward_pass(kernel: ValueKernel, pi: np.ndarray, horizon: int, V_out: np.ndarray,
                  Q_out: np.ndarray | None = None, columns: np.ndarray | None = None) -> None:
    """V_t (and Q_t) for t = H-1 ... 0 on the kernel's states, written into V_out[t] (and Q_out[t]).

    V_H = 0; Q_t = kernel.q_values(V_{t+1}); V_t = sum_a pi Q_t (Bellman 1957). One sparse product and two
    [n, A] array passes per step; nothing of size H x n x A unless ``Q_out`` is given.

    Args:
      pi: pi(a|s) on the kernel's states, [n, A].
      V_out: [H, n], or [H, S] with ``columns`` (the kernel's states in it; the other columns are not written).
      Q_out: None, or [H, n, A] ([H, S, A] with ``columns``).
    """
    n = pi.shape[0]
    assert pi.shape == kernel.rbar.shape and V_out.shape[0] == horizon, (pi.shape, V_out.shape)
    at = slice(None) if columns is None else columns
    v_next = np.zeros(n)
    for t in range(horizon - 1, -1, -1):
        Q_t = kernel.q_values(v_next)
        if Q_out is not None:
            Q_out[t, at] = Q_t
        Q_t *= pi
        v_next = Q_t.sum(axis=1)
        V_out[t, at] = v_next


def _prefix_product(P, rows: int, x: np.ndarray) -> np.ndarray:
    """(P @ x) over P's first ``rows`` rows, whose columns lie below x.size: no copy of P's arrays."""
    y = np.zeros(rows)
    if rows:
        try:
            from scipy.sparse._sparsetools import csr_matvec      # the kernel behind P @ x, on the prefix
        except ImportError:                                        # pragma: no cover (a scipy without it)
            return (P[:rows, :x.size] @ x)
        csr_matvec(rows, x.size, P.indptr, P.indices, P.data, x, y)
    return y


@dataclass(frozen=True, eq=False)
class HorizonValues:
    """V_t(s) where an episode can act: s reachable within the horizon and first reachable by t.

    The states are ordered by ``first`` (the fewest actions before each), so the states that can act at t are a
    prefix of ``count[t]`` of them; V_t is kept on that prefix only, V_t = ``V[offset[t]:offset[t] + count[t]]``
    (sum_t count[t] entries instead of H x S; the 10^6-state gridworld: 2 10^7 instead of 2 10^8).

    Attributes:
      kernel: the ``ValueKernel`` on the states in that order; first: fewest actions before each, [n];
      count, offset: [H]; V: the prefixes, flat.
    """

    kernel: ValueKernel
    first: np.ndarray
    count: np.ndarray
    offset: np.ndarray
    V: np.ndarray

    def covers(self, t: np.ndarray, s: np.ndarray) -> bool:
        """Every (t, s) is one an episode can act in: s covered, first reachable by t, and t < H."""
        pos = self.kernel.position.take(s)
        return bool(np.all((pos >= 0) & (self.first.take(np.maximum(pos, 0)) <= t) & (t < self.count.size)))

    def at(self, t: np.ndarray, s: np.ndarray) -> np.ndarray:
        """V_t(s) where (t, s) is covered, or s' first reachable by t (successors of covered pairs); 0 for terminal s
        and for t = H. t and s of one shape."""
        pos = self.kernel.position.take(s)
        H = self.count.size
        inside = (pos >= 0) & (t < H)
        out = np.zeros(np.shape(t))
        t_in, pos_in = t[inside], pos[inside]
        assert np.all(pos_in < self.count.take(t_in)), "V_t(s) asked where s cannot be at t"
        out[inside] = self.V.take(self.offset.take(t_in) + pos_in)
        return out


_HORIZON: "weakref.WeakKeyDictionary[TabularMDP, weakref.WeakKeyDictionary]" = weakref.WeakKeyDictionary()


def _horizon_layout(mdp: TabularMDP):
    """(states ordered by first, their first, count [H], offset [H])."""
    states, first = within_horizon(mdp)
    order = np.argsort(first, kind="stable")
    states, first = states[order], first[order]
    count = np.searchsorted(first, np.arange(mdp.horizon), side="right")
    offset = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    return states, first, count, offset


def horizon_values_bytes(mdp: TabularMDP) -> float:
    """The memory ``horizon_values`` checks: the prefixes of V (8 bytes x sum_t count[t]), its kernel (kept) and
    one step's [n, A] temporaries, or the kernel's build when that is larger."""
    states, _, count, _ = _horizon_layout(mdp)
    ip, A, n = mdp.successors.indptr, mdp.n_actions, states.size
    nnz = int((ip[(states + 1) * A] - ip[states * A]).sum())
    kept = 12.0 * nnz + 8.0 * n * A + 8.0 * mdp.n_states
    return max(kernel_bytes(nnz, n, A, mdp.n_states), kept + 8.0 * float(count.sum()) + 24.0 * n * A)


def horizon_values(mdp: TabularMDP, policy) -> HorizonValues:
    """``HorizonValues`` of (mdp, policy) for a finite horizon, cached by weak reference to both.

    Backward induction on the prefixes: the states that can act at t (first <= t) only reach states with first
    <= t + 1, so Q_t on the first count[t] states needs V_{t+1} on the first count[t + 1]; each row is summed as
    in ``backward_pass`` (the same bits).
    """
    assert mdp.horizon is not None
    per_policy = _HORIZON.setdefault(mdp, weakref.WeakKeyDictionary())
    hit = per_policy.get(policy)
    if hit is not None:
        return hit
    require_memory(horizon_values_bytes(mdp), f"the value tables on the states reachable within the horizon "
                   f"(horizon {mdp.horizon})")
    states, first, count, offset = _horizon_layout(mdp)
    kernel = value_kernel(mdp, states)
    H, A = mdp.horizon, mdp.n_actions
    # The prefix products read V_{t+1} below count[t + 1] only: every kept entry's s' is first reachable at most
    # one action after its s (a breadth-first search's distances), checked here once, since the product
    # indexes x without bounds checks.
    P = kernel.P
    row_first = np.repeat(first, np.diff(P.indptr).reshape(-1, A).sum(axis=1))
    if not np.all(first.take(P.indices) <= row_first + 1):      # pragma: no cover (within_horizon's invariant)
        raise AssertionError("within_horizon's distances are not breadth-first")
    del row_first
    pi = np.ascontiguousarray(policy.probs[states])
    V = np.empty(int(count.sum()))
    v_next = np.zeros(states.size)
    for t in range(H - 1, -1, -1):
        c = int(count[t])
        Q_t = kernel.rbar[:c] + kernel.gamma * _prefix_product(kernel.P, c * A, v_next).reshape(c, A)
        Q_t *= pi[:c]
        v_next = V[offset[t]:offset[t] + c]
        Q_t.sum(axis=1, out=v_next)
    V.setflags(write=False)
    per_policy[policy] = hit = HorizonValues(kernel, first, count, offset, V)
    return hit
