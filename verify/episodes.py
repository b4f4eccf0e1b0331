"""A batch of episodes as padded numpy arrays: the one format enumeration, sampling and estimators share.

Episode n has ``lengths[n]`` actions. Time runs along axis 1 (t = 0 .. T-1 for actions and rewards,
t = 0 .. T for states). Padding after the end: action 0, reward 0, state = the final state, so every
index stays valid and a padded step contributes nothing once multiplied by ``mask``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verify.mdp import TabularMDP
from verify.policy import Policy

__all__ = ["Episodes", "discounted_returns", "reward_to_go", "score_sums", "score_total"]


@dataclass(frozen=True, eq=False)
class Episodes:
    """N episodes of one MDP under one policy.

    Attributes:
      s_t: states, int [N, T+1].
      a_t: actions, int [N, T].
      r_t: rewards r(s_t, a_t, s_{t+1}) (undiscounted), float [N, T].
      lengths: number of actions taken, int [N].
      mdp, policy: what generated them (estimators need gamma and grad log pi).
      weights: p(tau|theta) per episode when the batch is an exact enumeration, else None.
    """

    s_t: np.ndarray
    a_t: np.ndarray
    r_t: np.ndarray
    lengths: np.ndarray
    mdp: TabularMDP
    policy: Policy
    weights: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.a_t.shape[0]

    @property
    def T(self) -> int:
        return self.a_t.shape[1]

    @property
    def mask(self) -> np.ndarray:
        """mask[n, t] = t < lengths[n], bool [N, T]."""
        return np.arange(self.T)[None, :] < self.lengths[:, None]

    @property
    def discount_t(self) -> np.ndarray:
        """gamma^t, shape [T]."""
        return self.mdp.gamma ** np.arange(self.T, dtype=float)

    def select(self, index) -> "Episodes":
        """The sub-batch ``index`` (any numpy index along the episode axis)."""
        w = None if self.weights is None else self.weights[index]
        return Episodes(self.s_t[index], self.a_t[index], self.r_t[index], self.lengths[index],
                        self.mdp, self.policy, w)


def discounted_returns(episodes: Episodes) -> np.ndarray:
    """R(tau) = sum_t gamma^t r_t per episode, shape [N]."""
    return episodes.r_t @ episodes.discount_t


def reward_to_go(episodes: Episodes, *, restart_discount: bool = False, include_current: bool = True) -> np.ndarray:
    """G_t = sum_{t' >= t} gamma^{t'} r_{t'} per episode and time, shape [N, T].

    With ``restart_discount`` the weights are gamma^{t'-t} instead (a common, biased variant for the
    discounted objective); without ``include_current`` the sum starts at t' = t + 1.
    """
    if restart_discount:
        # Backward recursion G_t = r_t + gamma G_{t+1}: dividing by gamma^t would underflow for long episodes.
        G_t = np.zeros_like(episodes.r_t)
        acc = np.zeros(episodes.n)
        for t in range(episodes.T - 1, -1, -1):
            acc = episodes.r_t[:, t] + episodes.mdp.gamma * acc
            G_t[:, t] = acc
        return G_t if include_current else G_t - episodes.r_t
    disc_r = episodes.r_t * episodes.discount_t[None, :]
    G_t = np.cumsum(disc_r[:, ::-1], axis=1)[:, ::-1]
    if not include_current:
        G_t = G_t - disc_r
    return G_t


def score_sums(episodes: Episodes, w_t: np.ndarray) -> np.ndarray:
    """sum_t w_t[n, t] grad log pi(a_t|s_t) per episode, shape [N, *theta.shape].

    Padded steps are ignored (their weight is masked to zero). One weighted ``bincount`` over the logged
    (episode, s_t, a_t) triples builds W[n, s, a], which the policy contracts with its score.

    Args:
      episodes: the batch.
      w_t: per-step weights, float [N, T].
    """
    N, T = episodes.a_t.shape
    S, A = episodes.policy.probs.shape
    w = np.where(episodes.mask, w_t, 0.0)
    flat = (np.arange(N)[:, None] * S + episodes.s_t[:, :T]) * A + episodes.a_t
    W = np.bincount(flat.ravel(), weights=w.ravel(), minlength=N * S * A).reshape(N, S, A)
    return episodes.policy.score_contract(W)


def score_total(episodes: Episodes, w_t: np.ndarray) -> np.ndarray:
    """sum_n sum_t w_t[n, t] grad log pi(a_t|s_t), shape theta.shape: ``score_sums(...).sum(0)`` without the [N, ...] array.

    The score is linear in W, so the batch can be summed before contracting.
    """
    S, A = episodes.policy.probs.shape
    T = episodes.T
    w = np.where(episodes.mask, w_t, 0.0)
    flat = episodes.s_t[:, :T] * A + episodes.a_t
    W = np.bincount(flat.ravel(), weights=w.ravel(), minlength=S * A).reshape(S, A)
    return episodes.policy.score_contract(W)
