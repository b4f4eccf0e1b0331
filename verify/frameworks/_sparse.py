r"""Framework-free sparse tables for the adapters' exact J: the MDP's successor lists on its live states.

The PyTorch and JAX adapters compute J(theta) = rho0 . V_H in the framework and differentiate it by autodiff. On
the live states (non-terminal, reachable from rho0; entering a terminal state ends the episode) the transitions
are the successor entries e = (s_e, a_e, s'_e, p_e) of ``TabularMDP.successors``, never a dense [S, A, S] array:

    (P_pi V)[s] = sum_{e: s_e = s} w_e V[s'_e],   w_e = pi(a_e|s_e) p_e,

one gather and one segment sum per DP step (``jax.ops.segment_sum``, ``torch.index_add``), O(H nnz) work and
O(H n) memory for the reverse pass, as ``verify.numerics.exact``'s sparse DP. For horizon null the system
(I - gamma P_pi) V = r_pi is solved with scipy's sparse LU (``solve``), its derivative by the transposed system:
with lambda = (I - gamma P_pi)^{-T} g, d<g, V>/d w_e = gamma lambda[s_e] V[s'_e] and d<g, V>/d r_pi = lambda.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from verify.model.io import require_memory, require_work
from verify.model.mdp import TabularMDP, reachable_csr

__all__ = ["SparseTables", "require_dp_memory", "solve", "sparse_tables"]

_TABLES: "weakref.WeakKeyDictionary[TabularMDP, SparseTables]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True, eq=False)
class SparseTables:
    """The MDP on its live states as successor entries, sorted by (s, a, s').

    Attributes:
      live: the live states' indices in the MDP, int [n].
      state, action, next_state: s_e (a live position), a_e, s'_e (a live position) of every entry, int [nnz].
      prob: p_e = P[s_e, a_e, s'_e] > 0, float [nnz].
      rbar: expected reward on the live states (terminal successors included), float [n, A].
      initial: rho0 on the live states, float [n].
      gamma, horizon: the MDP's.
    """

    live: np.ndarray
    state: np.ndarray
    action: np.ndarray
    next_state: np.ndarray
    prob: np.ndarray
    rbar: np.ndarray
    initial: np.ndarray
    gamma: float
    horizon: int | None

    @property
    def n(self) -> int:
        return int(self.live.size)

    @property
    def nnz(self) -> int:
        return int(self.prob.size)


def sparse_tables(mdp: TabularMDP) -> SparseTables:
    """The live-state successor entries of ``mdp`` (built from ``mdp.successors`` in O(nnz); cached per MDP)."""
    tab = _TABLES.get(mdp)
    if tab is not None:
        return tab
    succ = mdp.successors
    alive = ~mdp.terminal
    # Terminal states only loop to themselves, so a search through every edge never passes one.
    live_mask = reachable_csr(succ.state_indptr, succ.next_state, (mdp.initial > 0) & alive) & alive
    live = np.flatnonzero(live_mask)
    position = np.full(mdp.n_states, -1, dtype=np.int64)
    position[live] = np.arange(live.size)
    state = succ.state
    keep = np.flatnonzero(live_mask[state] & live_mask[succ.next_state])
    tab = SparseTables(live, position[state[keep]], succ.action[keep].astype(np.int64),
                       position[succ.next_state[keep]], succ.prob[keep].astype(float),
                       np.asarray(mdp.expected_reward[live], dtype=float), np.asarray(mdp.initial[live], dtype=float),
                       float(mdp.gamma), mdp.horizon)
    _TABLES[mdp] = tab
    return tab


def require_dp_memory(tab: SparseTables, framework: str) -> None:
    """Refuse before the framework's DP allocates more than the memory limit (or runs past the work limit).

    The reverse pass keeps V_k for every step ([H + 1, n]); each step also holds a few [nnz] temporaries and the
    policy's [S, A] outputs (a factor 4 for gathers, products and their gradients). Horizon null: one sparse LU,
    whose fill-in is bounded here by 20 nnz (a 2-D grid's nested-dissection fill is a few times nnz).
    """
    H = tab.horizon
    if H is None:
        require_memory(8.0 * (20 * tab.nnz + 8 * tab.n), f"the {framework} exact gradient's sparse solve "
                       f"({tab.n} live states, {tab.nnz} transitions)")
        return
    require_memory(8.0 * ((H + 1) * tab.n + 4 * tab.nnz), f"the {framework} exact gradient's dynamic programme "
                   f"(horizon {H} x {tab.n} live states, {tab.nnz} transitions)")
    require_work(3.0 * H * max(tab.nnz, 1), f"the {framework} dynamic programme over horizon {H}")


def _system(tab: SparseTables, w: np.ndarray):
    """I - gamma P_pi as a scipy CSC matrix, P_pi[s, s'] = sum of w_e over the entries (s, ., s')."""
    import scipy.sparse as sps

    n = tab.n
    P_pi = sps.csr_array((np.asarray(w, dtype=float), (tab.state, tab.next_state)), shape=(n, n))
    return (sps.identity(n, format="csr") - tab.gamma * P_pi).tocsc()


def solve(tab: SparseTables, w: np.ndarray, b: np.ndarray, transpose: bool = False) -> np.ndarray:
    """x with (I - gamma P_pi) x = b (or its transpose), by scipy's sparse LU; w_e = pi(a_e|s_e) p_e."""
    from scipy.sparse.linalg import splu

    lu = splu(_system(tab, w))
    return lu.solve(np.asarray(b, dtype=float), trans="T" if transpose else "N")
