"""Exact J(theta) and grad J(theta) for tabular MDPs, three independent ways plus finite differences.

- ``enumerate``: every trajectory with its probability p(tau|theta), return R(tau) and score; then
  J = sum_tau p R and grad J = sum_tau p R sum_t grad log pi(a_t|s_t)   (seed eq. 14).
- ``dp``: backward Q_t / V_t and forward state distributions d_t, then the policy-gradient theorem
  grad J = sum_t gamma^t sum_{s,a} d_t(s) pi(a|s) Q_t(s,a) grad log pi(a|s);  O(H S^2 A).
- ``solve`` (horizon null): V = (I - gamma P_pi)^{-1} r_pi and the discounted occupancy by linear solves.
- ``finite_difference_gradient``: central differences of J, a check that shares no gradient code.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verify.episodes import Episodes, discounted_returns, score_total
from verify.errors import UsageError
from verify.mdp import TabularMDP
from verify.policy import Policy

__all__ = ["GradientResult", "METHODS", "MAX_TRAJECTORIES", "enumerate_trajectories", "finite_difference_gradient",
           "gradient", "objective"]

METHODS = ("auto", "enumerate", "dp", "solve")
MAX_TRAJECTORIES = 2_000_000


@dataclass(frozen=True)
class GradientResult:
    """J(theta), grad J(theta) (shaped like theta) and the method that computed them."""

    J: float
    grad: np.ndarray
    method: str

    def to_json(self) -> dict:
        return {"J": float(self.J), "grad": self.grad.tolist(), "method": self.method}


def enumerate_trajectories(mdp: TabularMDP, policy: Policy, *, max_trajectories: int = MAX_TRAJECTORIES) -> Episodes:
    """All trajectories of positive environment probability, as an Episodes batch weighted by p(tau|theta).

    p(tau|theta) = rho0(s_0) prod_{t<len} pi(a_t|s_t) P(s_{t+1}|s_t, a_t); the weights sum to one.
    Branches are grown breadth-first and pruned where rho0 or P is zero, so deterministic MDPs stay cheap.

    Raises:
      UsageError: horizon is null, or more than ``max_trajectories`` would be needed.

    >>> from verify.policy import TabularSoftmax
    >>> mdp = TabularMDP(initial=[1], transitions=[[[1.0], [1.0]]], rewards=[[1.0, 0.0]], horizon=2)
    >>> eps = enumerate_trajectories(mdp, TabularSoftmax(np.zeros((1, 2))))
    >>> eps.n, float(eps.weights.sum())
    (4, 1.0)
    """
    if mdp.horizon is None:
        raise UsageError("trajectory enumeration needs a finite horizon (this MDP has horizon null); use --method solve")
    P, r, pi, term = mdp.transitions, mdp.rewards, policy.probs, mdp.terminal
    s0 = np.flatnonzero(mdp.initial > 0)
    s_cols: list[np.ndarray] = [s0]      # one column per time step, each [M]
    a_cols: list[np.ndarray] = []
    r_cols: list[np.ndarray] = []
    prob = mdp.initial[s0].astype(float)
    length = np.zeros(s0.size, dtype=np.int64)
    alive = ~term[s0]
    for _ in range(mdp.horizon):
        if not alive.any():
            break
        done, i_alive = np.flatnonzero(~alive), np.flatnonzero(alive)
        # Children of each alive trajectory: every (a, s') with P[s, a, s'] > 0.
        parent, a, s_next = np.nonzero(P[s_cols[-1][i_alive]] > 0)
        if done.size + parent.size > max_trajectories:
            raise UsageError(f"enumeration needs more than {max_trajectories} trajectories at horizon {mdp.horizon}; "
                             "use --method dp")
        order = np.concatenate([done, i_alive[parent]])
        s_cols = [col[order] for col in s_cols]
        a_cols = [col[order] for col in a_cols]
        r_cols = [col[order] for col in r_cols]
        s = s_cols[-1][done.size:]
        pad = np.zeros(done.size)
        a_cols.append(np.concatenate([pad.astype(np.int64), a]))
        r_cols.append(np.concatenate([pad, r[s, a, s_next]]))
        s_cols.append(np.concatenate([s_cols[-1][:done.size], s_next]))
        prob = prob[order] * np.concatenate([pad + 1.0, pi[s, a] * P[s, a, s_next]])
        length = length[order] + np.concatenate([pad, np.ones(parent.size)]).astype(np.int64)
        alive = np.concatenate([np.zeros(done.size, dtype=bool), ~term[s_next]])

    M = prob.size
    as_matrix = lambda cols, dtype: (np.stack(cols, axis=1) if cols else np.zeros((M, 0))).astype(dtype)  # noqa: E731
    return Episodes(as_matrix(s_cols, np.int64), as_matrix(a_cols, np.int64), as_matrix(r_cols, float),
                    length, mdp, policy, prob)


def _by_enumeration(mdp: TabularMDP, policy: Policy) -> GradientResult:
    eps = enumerate_trajectories(mdp, policy)
    R = discounted_returns(eps)
    grad = score_total(eps, np.broadcast_to((eps.weights * R)[:, None], eps.a_t.shape))
    return GradientResult(float(eps.weights @ R), grad, "enumerate")


def _policy_gradient_theorem(policy: Policy, d: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """sum_{s,a} d(s) pi(a|s) Q(s,a) grad log pi(a|s), for d [..., S] and Q [..., S, A] summed over ``...``."""
    W = (d[..., :, None] * policy.probs * Q).reshape(-1, *Q.shape[-2:]).sum(axis=0)
    return policy.score_contract(W)


def _by_dp(mdp: TabularMDP, policy: Policy, need_grad: bool = True) -> GradientResult:
    P, pi, H, g = mdp.transitions, policy.probs, mdp.horizon, mdp.gamma
    alive = (~mdp.terminal).astype(float)
    rbar = mdp.expected_reward
    P_alive = P * alive[None, None, :]          # entering a terminal state ends the episode
    # Backward: Q_k = expected return with k actions left, k = 1..H; Q_t uses k = H - t.
    Q = np.empty((H, *rbar.shape))
    V = np.zeros(mdp.n_states)
    for k in range(1, H + 1):
        Qk = rbar + g * (P_alive @ V)
        Q[H - k] = Qk
        V = (pi * Qk).sum(axis=1)
    d0 = mdp.initial * alive
    J = float(d0 @ V)
    if not need_grad:
        return GradientResult(J, np.zeros_like(policy.theta), "dp")
    # Forward: d_t(s) = P(s_t = s, episode still running), discounted by gamma^t.
    d = np.empty((H, mdp.n_states))
    d[0] = d0
    P_pi = np.einsum("sa,sat->st", pi, P_alive)
    for t in range(1, H):
        d[t] = g * (d[t - 1] @ P_pi)
    return GradientResult(J, _policy_gradient_theorem(policy, d, Q), "dp")


def _by_solve(mdp: TabularMDP, policy: Policy, need_grad: bool = True) -> GradientResult:
    P, pi, g = mdp.transitions, policy.probs, mdp.gamma
    alive = ~mdp.terminal
    idx = np.flatnonzero(alive)
    P_aa = P[np.ix_(idx, np.arange(mdp.n_actions), idx)]     # transitions among non-terminal states
    pi_a = pi[idx]
    rbar = mdp.expected_reward[idx]
    A_mat = np.eye(idx.size) - g * np.einsum("sa,sat->st", pi_a, P_aa)
    V = np.linalg.solve(A_mat, (pi_a * rbar).sum(axis=1))
    J = float(mdp.initial[idx] @ V)
    if not need_grad:
        return GradientResult(J, np.zeros_like(policy.theta), "solve")
    Q = rbar + g * (P_aa @ V)
    occupancy = np.linalg.solve(A_mat.T, mdp.initial[idx])   # sum_t gamma^t P(s_t = s)
    d = np.zeros(mdp.n_states)
    d[idx] = occupancy
    Q_full = np.zeros_like(pi)
    Q_full[idx] = Q
    return GradientResult(J, _policy_gradient_theorem(policy, d, Q_full), "solve")


def gradient(mdp: TabularMDP, policy: Policy, method: str = "auto", *, need_grad: bool = True) -> GradientResult:
    """Exact J(theta) and grad_theta J(theta).

    Args:
      mdp: the MDP.
      policy: a policy acting on the MDP's states and actions.
      method: "enumerate", "dp" (finite horizon), "solve" (horizon null) or "auto" (dp, or solve when the
        horizon is null).

    Returns:
      GradientResult with ``grad`` shaped like ``policy.theta``.

    Raises:
      UsageError: unknown method, or a method that does not fit the horizon.

    >>> from verify.policy import TabularSoftmax
    >>> bandit = TabularMDP(initial=[1], transitions=[[[1.0], [1.0]]], rewards=[[1.0, 0.0]], horizon=1)
    >>> res = gradient(bandit, TabularSoftmax(np.zeros((1, 2))))
    >>> res.J, res.grad.tolist()     # J = sum_a pi_a q_a, dJ/dtheta_a = pi_a (q_a - J)
    (0.5, [[0.25, -0.25]])
    """
    policy.check_compatible(mdp.n_states, mdp.n_actions)
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "auto":
        method = "solve" if mdp.horizon is None else "dp"
    if method == "enumerate":
        return _by_enumeration(mdp, policy)
    if method == "dp":
        if mdp.horizon is None:
            raise UsageError("method dp needs a finite horizon (this MDP has horizon null); use --method solve")
        return _by_dp(mdp, policy, need_grad)
    if mdp.horizon is not None:
        raise UsageError(f"method solve is for horizon null (this MDP has horizon {mdp.horizon}); use --method dp")
    return _by_solve(mdp, policy, need_grad)


def finite_difference_gradient(mdp: TabularMDP, policy: Policy, *, eps: float = 1e-5) -> np.ndarray:
    """Central differences (J(theta + eps e_i) - J(theta - eps e_i)) / 2 eps of the exact J; error O(eps^2)."""
    theta = policy.theta.ravel()
    grad = np.empty(theta.size)
    for i in range(theta.size):
        step = np.zeros(theta.size)
        step[i] = eps
        grad[i] = (objective(mdp, policy.with_theta(theta + step)) - objective(mdp, policy.with_theta(theta - step))) / (2 * eps)
    return grad.reshape(policy.theta.shape)


def objective(mdp: TabularMDP, policy: Policy) -> float:
    """J(theta) by dynamic programming (finite horizon) or a linear solve (horizon null)."""
    return gradient(mdp, policy, method="auto", need_grad=False).J
