r"""Exact per-component variances of the catalog estimators under the policy, by dynamic programming.

Why: the sampled max-|z| test divides by the sample's standard deviation. On a component whose per-episode values
have heavy tails (Taxi-v4: 93 % zeros, the rest spread over +-2000, excess kurtosis ~75), the samples that miss
the tail are exactly the ones whose mean sits far from grad J *and* whose standard deviation is too small, so the
studentised z of those samples is inflated (Bahadur and Savage 1956: no test built on the sample alone can see
what the sample did not draw). With the exact variance sigma_i^2 the statistic (xbar_i - grad J_i) / (sigma_i /
sqrt N) is a standardised mean: a value of probability p that the sample missed shifts the mean by p v while
sigma_i >= v sqrt(p), so it moves z by at most sqrt(p N) < 1 when p < 1 / N.

What: every catalog estimator of the "local weight or discounted future sum" form on a tabular softmax policy and
a finite horizon H,

    g = sum_t psi_t (x_t(s_t, a_t) + y_t F_t),   F_t = u_t + kappa F_{t+1},   psi_t = grad log pi(a_t | s_t),

(``reward_to_go``: x = 0, y = gamma^t, kappa = gamma, u_t = r_t; ``baseline_value``: x = -gamma^t V_t(s_t);
``q_value``: x = gamma^t Q_t, y = 0; ``advantage`` and ``ppo_surrogate`` at theta = theta_old: x = gamma^t (Q_t -
V_t); ``gae``: y = gamma^t, kappa = gamma lambda, u_t = delta_t with the exact V_t). With W_t = sum_{k >= t}
psi_k (x_k + y_k F_k) the backward recursion over (t, s) carries E[F], E[F^2] (per state) and E[W], E[F W],
E[W^2] (per state and component):

    E[W_t | s] = sum_a pi(a|s) [psi (x + y E[F_t | s, a]) + sum_s' P(s'|s, a) E[W_{t+1} | s']],
    E[F_t W_t | s] = sum_a pi [psi (x E[F_t] + y E[F_t^2]) + sum_s' P (u E[W_{t+1}] + kappa E[F_{t+1} W_{t+1}])],
    E[W_t^2 | s] = sum_a pi [psi^2 E[(x + y F_t)^2] + 2 psi E[(x + y F_t) W_{t+1}] + sum_s' P E[W_{t+1}^2]],

(every future term 0 after a terminal state or at t = H), and Var g_i = rho0 . E[W_0^2] - (rho0 . E[W_0])^2. The
tabular score is non-zero only at the visited state's own A components, so the local terms are [S, A, A]; the
future terms are sparse [S, S] products with [S, S A] tables: O(H nnz(P_pi) S A) work, O(S^2 A) memory, refused
before allocation beyond ``MAX_TABLE_ENTRIES`` (Taxi-v4: S = 500, A = 6, H = 200 fits; the 10^4-state gridworld
does not, and keeps the sample's variance). The first moment rho0 . E[W_0] is grad J, computed a second way: the
result is used only when it agrees with ``verify.numerics.exact.gradient`` to round-off (``VarianceResult.ok``).

``total_return`` and ``baseline_constant`` are (R(tau) - b) times the whole score sum Phi: a second recursion
carries E[R^i Phi^j], i, j <= 2 (``return_times_score_moments``). Users' functions (even under a catalog name) and
the pitfalls have no form here: ``exact_variance`` returns None for them, and the sampled test keeps the sample's
variance.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from verify.checks.estimators import Estimator, GAE_LAMBDA, get_estimator
from verify.model.io import require_memory
from verify.model.mdp import TabularMDP
from verify.model.policy import Policy, TabularSoftmax
from verify.numerics.exact import gradient, value_tables

__all__ = ["MAX_TABLE_ENTRIES", "MAX_WORK", "SUPPORTED", "VarianceResult", "exact_variance", "return_times_score_moments",
           "score_sum_moments"]

MAX_TABLE_ENTRIES = 4_000_000   # S x S A entries per moment table (five live at once: 160 MB at the limit)
MAX_WORK = 2e10                 # H x S x S A table updates: beyond, the DP would cost more than a large sample
MEAN_RTOL = 1e-8                # the DP's mean must match grad J to this, relative to the scale of g
# Catalog names whose weights have the form above (``_form``); ppo_surrogate is the advantage form at theta_old.
SUPPORTED = ("total_return", "baseline_constant", "reward_to_go", "baseline_value", "q_value", "advantage", "gae", "ppo_surrogate")

_CACHE: "weakref.WeakKeyDictionary[TabularMDP, weakref.WeakKeyDictionary]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class VarianceResult:
    """E[g] and Var[g] per component (theta's shape; nan for states not asked for) of one estimator, and whether
    E[g] matched grad J at the states asked for."""

    mean: np.ndarray
    variance: np.ndarray
    ok: bool


class _Blocks:
    """The components of the states ``B`` (each state's A of them, column k A + b for B[k]) and what the DPs need
    of them: the successor entries leaving B, and the psi-weighted sums over the visited state's actions."""

    def __init__(self, mdp: TabularMDP, policy: TabularSoftmax, states: np.ndarray):
        S, A = mdp.n_states, mdp.n_actions
        succ = mdp.successors
        self.B = states
        self.k, self.A = states.size, A
        pos = np.full(S, -1)
        pos[states] = np.arange(states.size)
        s_e, a_e = succ.pair // A, succ.pair % A
        self.sel = np.flatnonzero(pos[s_e] >= 0)                    # entries leaving a state of B
        self.nxt = succ.next_state[self.sel]
        self.block = pos[s_e[self.sel]][:, None] * A + np.arange(A)  # each entry's own state's columns, [n, A]
        self.pair = pos[s_e[self.sel]] * A + a_e[self.sel]
        self.own = (states[:, None], np.arange(states.size)[:, None] * A + np.arange(A))
        self.pi = policy.probs[states]
        self.psi = np.eye(A)[None, :, :] - self.pi[:, None, :]      # psi[k, a, b]: component (B[k], b) of (B[k], a)

    def gathered(self, weight: np.ndarray, table: np.ndarray) -> np.ndarray:
        """sum over s' of weight * table[s', own columns] per (state of B, action), [k, A, A]."""
        out = np.zeros((self.k * self.A, self.A))
        np.add.at(out, self.pair, weight[self.sel][:, None] * table[self.nxt[:, None], self.block])
        return out.reshape(self.k, self.A, self.A)

    def local(self, power: int, m: np.ndarray) -> np.ndarray:
        """sum_a pi(a|s) psi^power m(s, a) for the states of B, [k, A] (m: [S, A])."""
        return np.einsum("sa,sab,sa->sb", self.pi, self.psi ** power, m[self.B])

    def cross(self, m: np.ndarray) -> np.ndarray:
        """sum_a pi(a|s) psi m(s, a, b), [k, A] (m: [k, A, A], from ``gathered``)."""
        return np.einsum("sa,sab,sab->sb", self.pi, self.psi, m)


def _states(mdp: TabularMDP, states) -> np.ndarray:
    return np.arange(mdp.n_states) if states is None else np.unique(np.asarray(states, dtype=np.intp))


def score_sum_moments(mdp: TabularMDP, policy: TabularSoftmax, x, y, kappa: float, u,
                      states=None) -> tuple[np.ndarray, np.ndarray]:
    """(E[g], E[g^2]) per component of g = sum_t psi_t (x_t + y_t F_t) (module docstring), [len(states), A] each.

    Args:
      mdp: finite horizon H.
      policy: tabular softmax (psi = e_s (e_a - pi(.|s))).
      x: t -> [S, A] local weight, or None (0).
      y: t -> float, the future sum's weight.
      kappa: the future sum's decay.
      u: t -> [nnz] per successor entry (``mdp.successors`` order), the future sum's increment, or None (F = 0).
      states: the states whose A components are wanted (sorted, unique); None: all. The work is proportional
        to their number.

    Raises:
      UsageError (via ``require_memory``): the tables would exceed the memory limit.
    """
    import scipy.sparse as sps

    H, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    blk = _Blocks(mdp, policy, _states(mdp, states))
    d = blk.k * A
    require_memory(8.0 * 7 * S * d, f"the exact variance tables (5 x {S} states x {d} components)")
    succ, pi = mdp.successors, policy.probs
    pair, nxt, prob = succ.pair, succ.next_state, succ.prob
    s_e, a_e = pair // A, pair % A
    live = ~mdp.terminal
    f1, f2 = np.zeros(S), np.zeros(S)
    w1, c, w2 = np.zeros((S, d)), np.zeros((S, d)), np.zeros((S, d))
    pi_e = pi[s_e, a_e]
    for t in range(H - 1, -1, -1):
        alive = (live[nxt] & (t + 1 < H)).astype(float)
        u_t = np.zeros(succ.nnz) if u is None else np.asarray(u(t), dtype=float)
        x_t = np.zeros((S, A)) if x is None else np.asarray(x(t), dtype=float)
        y_t = float(y(t))
        pa = prob * alive
        ef = np.bincount(pair, weights=prob * u_t + kappa * pa * f1[nxt], minlength=S * A).reshape(S, A)
        ef2 = np.bincount(pair, weights=prob * u_t * u_t + 2 * kappa * pa * u_t * f1[nxt]
                          + kappa * kappa * pa * f2[nxt], minlength=S * A).reshape(S, A)
        m = x_t + y_t * ef                                # E[omega | s, a], omega = x + y F_t
        q = x_t * x_t + 2 * x_t * y_t * ef + y_t * y_t * ef2   # E[omega^2 | s, a]
        r = x_t * ef + y_t * ef2                          # E[omega F_t | s, a]
        # The successors' tables at each entry's own components: sum over s' of P times table[s', block].
        n1, nu, nc = blk.gathered(pa, w1), blk.gathered(pa * u_t, w1), blk.gathered(pa, c)
        P = sps.csr_matrix((pi_e * pa, (s_e, nxt)), shape=(S, S))
        U = sps.csr_matrix((pi_e * pa * u_t, (s_e, nxt)), shape=(S, S))
        w1_new = P @ w1
        c_new = kappa * (P @ c) + U @ w1
        w2_new = P @ w2
        w1_new[blk.own] += blk.local(1, m)
        c_new[blk.own] += blk.local(1, r)
        cross = x_t[blk.B][:, :, None] * n1 + y_t * (nu + kappa * nc)     # E[omega W_{t+1} | s, a], [k, a, b]
        w2_new[blk.own] += blk.local(2, q) + 2 * blk.cross(cross)
        f1_new = (pi * ef).sum(axis=1)
        f2_new = (pi * ef2).sum(axis=1)
        for arr in (w1_new, c_new, w2_new):
            arr[~live] = 0.0                                  # an episode in a terminal state has ended
        f1_new[~live] = f2_new[~live] = 0.0
        f1, f2, w1, c, w2 = f1_new, f2_new, w1_new, c_new, w2_new
    rho0 = np.where(live, mdp.initial, 0.0)
    return (rho0 @ w1).reshape(blk.k, A), (rho0 @ w2).reshape(blk.k, A)


def return_times_score_moments(mdp: TabularMDP, policy: TabularSoftmax, states=None
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(E[Phi], E[Phi^2], E[R Phi], E[R Phi^2], E[R^2 Phi^2]) per component, [len(states), A] each, for R = sum_t
    gamma^t r_t and Phi = sum_t psi_t (the return times the whole score sum: ``total_return``, and
    ``baseline_constant`` = (R - b) Phi by expanding the square); ``states`` as in ``score_sum_moments``.

    Backward over (t, s) with R_t = r_t + gamma R_{t+1}, Phi_t = psi_t + Phi_{t+1}, carrying E[R^i Phi^j] for i, j
    <= 2 (every future moment 0 after the episode ends, but E[1] = 1); the binomial expansion of (r + gamma R')^i
    (psi + Phi')^j splits each into the successors' moments (sparse [S, S] products) and the visited state's own
    components (psi non-zero).
    """
    import scipy.sparse as sps

    H, S, A, g = mdp.horizon, mdp.n_states, mdp.n_actions, mdp.gamma
    blk = _Blocks(mdp, policy, _states(mdp, states))
    d = blk.k * A
    require_memory(8.0 * 14 * S * d, f"the exact variance tables (12 x {S} states x {d} components)")
    succ, pi = mdp.successors, policy.probs
    pair, nxt, prob, rew = succ.pair, succ.next_state, succ.prob, succ.reward
    s_e, a_e = pair // A, pair % A
    live = ~mdp.terminal
    e1, e2 = np.zeros(S), np.zeros(S)
    p1, p2, q11, q12, q21, q22 = (np.zeros((S, d)) for _ in range(6))
    pi_e = pi[s_e, a_e]
    ones = np.ones((S, A))
    for t in range(H - 1, -1, -1):
        al = (live[nxt] & (t + 1 < H)).astype(float)
        pa = prob * al
        ER = np.bincount(pair, weights=prob * rew + g * pa * e1[nxt], minlength=S * A).reshape(S, A)
        ER2 = np.bincount(pair, weights=prob * rew * rew + 2 * g * pa * rew * e1[nxt] + g * g * pa * e2[nxt],
                          minlength=S * A).reshape(S, A)
        G_p1, G_q11, G_q21 = blk.gathered(pa, p1), blk.gathered(pa, q11), blk.gathered(pa, q21)
        G_rp1, G_rq11 = blk.gathered(pa * rew, p1), blk.gathered(pa * rew, q11)
        G_r2p1 = blk.gathered(pa * rew * rew, p1)
        P = sps.csr_matrix((pi_e * pa, (s_e, nxt)), shape=(S, S))
        U1 = sps.csr_matrix((pi_e * pa * rew, (s_e, nxt)), shape=(S, S))
        U2 = sps.csr_matrix((pi_e * pa * rew * rew, (s_e, nxt)), shape=(S, S))
        n_p1, n_p2 = P @ p1, P @ p2
        n_q11 = U1 @ p1 + g * (P @ q11)
        n_q12 = U1 @ p2 + g * (P @ q12)
        n_q21 = U2 @ p1 + 2 * g * (U1 @ q11) + g * g * (P @ q21)
        n_q22 = U2 @ p2 + 2 * g * (U1 @ q12) + g * g * (P @ q22)
        n_p1[blk.own] += blk.local(1, ones)
        n_p2[blk.own] += blk.local(2, ones) + 2 * blk.cross(G_p1)
        n_q11[blk.own] += blk.local(1, ER)
        n_q12[blk.own] += blk.local(2, ER) + 2 * blk.cross(G_rp1 + g * G_q11)
        n_q21[blk.own] += blk.local(1, ER2)
        n_q22[blk.own] += blk.local(2, ER2) + 2 * blk.cross(G_r2p1 + 2 * g * G_rq11 + g * g * G_q21)
        e1, e2 = (pi * ER).sum(axis=1), (pi * ER2).sum(axis=1)
        e1[~live] = e2[~live] = 0.0
        for arr in (n_p1, n_p2, n_q11, n_q12, n_q21, n_q22):
            arr[~live] = 0.0
        p1, p2, q11, q12, q21, q22 = n_p1, n_p2, n_q11, n_q12, n_q21, n_q22
    rho0 = np.where(live, mdp.initial, 0.0)
    return tuple((rho0 @ m).reshape(blk.k, A) for m in (p1, p2, q11, q12, q22))


def _form(name: str, mdp: TabularMDP, policy: Policy):
    """(x, y, kappa, u) of a supported catalog estimator (module docstring)."""
    H, S, A, g = mdp.horizon, mdp.n_states, mdp.n_actions, mdp.gamma
    disc = lambda t: g ** t  # noqa: E731
    succ = mdp.successors
    if name in ("q_value", "advantage", "ppo_surrogate"):
        V, Q = value_tables(mdp, policy)
        base = (lambda t: Q[t]) if name == "q_value" else (lambda t: Q[t] - V[t][:, None])
        return (lambda t: disc(t) * base(t)), (lambda t: 0.0), 0.0, None
    V = value_tables(mdp, policy)[0]
    reward = lambda t: succ.reward  # noqa: E731
    if name == "reward_to_go":
        return None, disc, g, reward
    if name == "baseline_value":
        return (lambda t: -disc(t) * np.broadcast_to(V[t][:, None], (S, A))), disc, g, reward
    # gae: delta_t = r_t + gamma V_{t+1}(s') - V_t(s), the bootstrap 0 after the last step (terminal s' or t = H).
    nxt, s_e = succ.next_state, succ.pair // A
    alive = ~mdp.terminal[nxt]

    def delta(t):
        v_next = V[t + 1][nxt] * alive if t + 1 < H else 0.0
        return succ.reward + g * v_next - V[t][s_e]
    return None, disc, g * GAE_LAMBDA, delta


def constant_baseline_value(mdp: TabularMDP, policy: Policy) -> float:
    """b = J(theta) = rho0 . V_0, as ``estimators.constant_baseline`` computes it."""
    return float(mdp.initial @ value_tables(mdp, policy)[0][0])


def _supported(estimator: Estimator) -> bool:
    """A catalog estimator of the form above (a user's function of the same name is not)."""
    if estimator.name not in SUPPORTED:
        return False
    return estimator.per_episode is get_estimator(estimator.name).per_episode


def exact_variance(estimator: Estimator, mdp: TabularMDP, policy: Policy, states=None) -> VarianceResult | None:
    """The exact per-component mean and variance of ``estimator`` under ``policy``, or None where not available.

    Available for the catalog estimators in ``SUPPORTED`` on a finite horizon with a tabular softmax policy,
    at most ``MAX_TABLE_ENTRIES`` table entries (S x S A) and ``MAX_WORK`` updates (H x S x S A; Taxi-v4: 3 10^8,
    4-12 CPU-s per estimator for all 500 states); None otherwise (the sampled test then keeps the sample's
    variance). ``states``: only the components of these states (the work is proportional to their number; nan
    elsewhere in the result); None: all. Cached per (mdp, policy, estimator, state) by weak reference, as the value
    tables are.

    >>> from verify.model.builtin import builtin_examples
    >>> chain = builtin_examples()["chain"]
    >>> res = exact_variance(get_estimator("reward_to_go"), chain.mdp, chain.policy)
    >>> res.ok, res.variance.shape == chain.policy.theta.shape
    (True, True)
    """
    if (not _supported(estimator) or mdp.horizon is None or type(policy) is not TabularSoftmax
            or mdp.n_states * mdp.n_states * mdp.n_actions > MAX_TABLE_ENTRIES
            or mdp.horizon * mdp.n_states * mdp.n_states * mdp.n_actions > MAX_WORK):
        return None
    want = _states(mdp, states)
    per_policy = _CACHE.setdefault(mdp, weakref.WeakKeyDictionary())
    hit = per_policy.setdefault(policy, {})
    S, A = mdp.n_states, mdp.n_actions
    known = hit.setdefault(estimator.name, _Known(S, A))
    todo = want[~known.done[want]]
    if todo.size:
        if estimator.name in ("total_return", "baseline_constant"):
            rphi = hit.setdefault("(R - b) Phi", _Known(S, A, parts=5))     # shared by the two
            more = todo[~rphi.done[todo]]
            if more.size:
                rphi.fill(more, return_times_score_moments(mdp, policy, more))
            phi, phi2, r_phi, r_phi2, r2_phi2 = (m[todo] for m in rphi.parts)
            b = 0.0 if estimator.name == "total_return" else float(constant_baseline_value(mdp, policy))
            mean = r_phi - b * phi                                  # E[(R - b) Phi]
            second = r2_phi2 - 2 * b * r_phi2 + b * b * phi2        # E[(R - b)^2 Phi^2]
        else:
            x, y, kappa, u = _form(estimator.name, mdp, policy)
            mean, second = score_sum_moments(mdp, policy, x, y, kappa, u, todo)
        grad = gradient(mdp, policy).grad
        scale = max(float(np.sqrt(second.max(initial=0.0))), float(np.abs(grad).max(initial=0.0)), 1e-300)
        ok = np.all(np.abs(mean - grad[todo]) <= MEAN_RTOL * scale, axis=1)
        known.fill(todo, (mean, np.clip(second - mean * mean, 0.0, None)), ok)
    rows = np.zeros(S, dtype=bool)
    rows[want] = True
    mean, var = (np.where(rows[:, None], m, np.nan) for m in known.parts)
    return VarianceResult(mean, var, bool(known.ok[want].all()))


class _Known:
    """Per-state results computed so far: ``parts`` [S, A] arrays (nan until done), ``ok`` per state."""

    def __init__(self, S: int, A: int, parts: int = 2):
        self.parts = [np.full((S, A), np.nan) for _ in range(parts)]
        self.done = np.zeros(S, dtype=bool)
        self.ok = np.ones(S, dtype=bool)

    def fill(self, states: np.ndarray, values, ok=None) -> None:
        for part, v in zip(self.parts, values):
            part[states] = v
        self.done[states] = True
        if ok is not None:
            self.ok[states] = ok
