"""Exact mean and covariance of any estimator, by enumerating every trajectory with its probability.

An exact enumeration is an ``Episodes`` batch weighted by p(tau|theta), so for g = estimator.per_episode

    E[g] = sum_tau p(tau) g(tau),   Cov[g] = sum_tau p(tau) (g(tau) - E[g]) (g(tau) - E[g])^T,

evaluated with the same code the Monte Carlo path runs, and the exact bias is E[g] - grad J with grad J from
dynamic programming (a computation that shares nothing with the estimators but the score contraction).
Batch-dependent estimators (``batch_normalized``) have no per-episode mean; on the enumeration their batch
statistics become population statistics, so what is computed is the N -> infinity limit (``limit=True``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verify.numerics.episodes import Episodes
from verify.errors import UsageError
from verify.checks.estimators import Estimator
from verify.model.io import require_memory
from verify.numerics.exact import MAX_TRAJECTORIES, enumerate_trajectories, expected_length, gradient
from verify.model.mdp import TabularMDP
from verify.model.policy import Policy

__all__ = ["ENUMERATION_CHUNK", "ENUMERATION_LIMIT", "ExactMoments", "exact_moments", "exact_moments_all", "magnitude",
           "moments_bytes",
           "try_enumerate"]

ENUMERATION_CHUNK = 50_000   # trajectories per evaluation batch (bounds the [M, S, A] arrays)
ENUMERATION_LIMIT = 200_000  # the checks enumerate up to this many trajectories (mc, crosscheck)
ZERO_BIAS_RTOL = 1e-9        # |bias| below this times the problem's scale counts as exactly zero


def magnitude(mdp: TabularMDP, policy: Policy) -> float:
    """The natural size of returns, max|r| times the effective number of steps (at least 1e-300).

    Float round-off in J, grad J and the estimators is relative to this, not to grad J itself: a gradient that
    is zero in exact arithmetic comes out as ~1e-17 times it. The effective number of steps is
    min(H, 1/(1 - gamma)), or for gamma = 1 and horizon null the longest expected episode length from a live state
    (``verify.numerics.exact.expected_length``).

    >>> magnitude(TabularMDP(initial=[1], transitions=[[[1.0]]], rewards=[[2.0]], gamma=0.5), None)
    4.0
    """
    g = mdp.gamma
    if mdp.horizon is not None:
        steps = float(mdp.horizon) if g == 1.0 else min(float(mdp.horizon), 1.0 / (1.0 - g))
    elif g < 1.0:
        steps = 1.0 / (1.0 - g)
    else:
        steps = expected_length(mdp, policy)
    return max(float(np.abs(mdp.successors.reward).max()) * steps, 1e-300)   # rewards that can occur


@dataclass(frozen=True, eq=False)
class ExactMoments:
    """Exact first and second moments of one estimator's per-episode value g(tau).

    Attributes:
      estimator: its name.
      mean: E[g], shape theta.shape.
      cov: Cov[g] of the flattened g, shape [d, d] with d = theta.size.
      grad: exact grad J (dynamic programming), shape theta.shape.
      limit: True when the estimator is batch-dependent and these are the N -> infinity limits.
      n_trajectories: how many trajectories the enumeration had.
      magnitude: ``magnitude(mdp, policy)``, the floor of ``scale``.
    """

    estimator: str
    mean: np.ndarray
    cov: np.ndarray
    grad: np.ndarray
    limit: bool
    n_trajectories: int
    magnitude: float = 1e-300
    rtol: float = ZERO_BIAS_RTOL   # the zero-bias tolerance: float64's, or the precision's the estimator used

    @property
    def bias(self) -> np.ndarray:
        """E[g] - grad J, shape theta.shape."""
        return self.mean - self.grad

    @property
    def std(self) -> np.ndarray:
        """Per-component standard deviation of g, shape theta.shape."""
        return np.sqrt(np.clip(np.diag(self.cov), 0.0, None)).reshape(self.grad.shape)

    @property
    def scale(self) -> float:
        """The size round-off is relative to: max of ``magnitude``, |grad J|, |E g| and the largest std of g."""
        return float(max(self.magnitude, np.abs(self.grad).max(), np.abs(self.mean).max(), self.std.max()))

    @property
    def biased(self) -> bool:
        """Whether the exact bias is non-zero beyond float round-off (``rtol`` of ``scale``: ZERO_BIAS_RTOL in
        float64, wider for an estimator computed in float32, ``verify.checks.precision``)."""
        return bool(np.abs(self.bias).max() > self.rtol * self.scale)

    def to_json(self) -> dict:
        return {"estimator": self.estimator, "mean": self.mean.tolist(), "grad": self.grad.tolist(),
                "bias": self.bias.tolist(), "std": self.std.tolist(), "limit": self.limit,
                "n_trajectories": self.n_trajectories}


def try_enumerate(mdp: TabularMDP, policy: Policy, *, max_trajectories: int = MAX_TRAJECTORIES) -> Episodes | None:
    """The exact enumeration, or None when the horizon is null or it would exceed ``max_trajectories``."""
    if mdp.horizon is None:
        return None
    try:
        return enumerate_trajectories(mdp, policy, max_trajectories=max_trajectories)
    except UsageError:
        return None


def moments_bytes(n_trajectories: int, d: int, estimators: int = 1) -> float:
    """Peak bytes of ``exact_moments`` for ``estimators`` estimators kept together: per evaluation chunk the values
    [M, d], their centred copy and the weighted one (M = min(n, ``ENUMERATION_CHUNK``)), plus the covariances
    [d, d] (one being summed and the ones kept)."""
    rows = min(n_trajectories, ENUMERATION_CHUNK)
    return 8.0 * (3.0 * rows * d + (1.0 + estimators) * d * d)


def _weighted_moments(estimator: Estimator, enum: Episodes) -> tuple[np.ndarray, np.ndarray]:
    w = enum.weights
    if estimator.batch_dependent or enum.n <= ENUMERATION_CHUNK:
        X = estimator.per_episode(enum).reshape(enum.n, -1)
        mean = w @ X
        Xc = X - mean
        return mean, Xc.T @ (w[:, None] * Xc)
    # Two passes keep the covariance centred (one-pass sums of squares lose digits when |mean| >> std).
    slices = [slice(i, min(i + ENUMERATION_CHUNK, enum.n)) for i in range(0, enum.n, ENUMERATION_CHUNK)]
    mean = sum(w[sl] @ estimator.per_episode(enum.select(sl)).reshape(sl.stop - sl.start, -1) for sl in slices)
    cov = 0.0
    for sl in slices:
        Xc = estimator.per_episode(enum.select(sl)).reshape(sl.stop - sl.start, -1) - mean
        cov = cov + Xc.T @ (w[sl, None] * Xc)
    return mean, cov


def exact_moments(estimator: Estimator, mdp: TabularMDP, policy: Policy, *, enumeration: Episodes | None = None,
                  grad: np.ndarray | None = None, rtol: float = ZERO_BIAS_RTOL) -> ExactMoments:
    """Exact E[g] and Cov[g] of ``estimator`` under (mdp, policy), and its exact bias.

    Args:
      estimator: from the catalog.
      mdp, policy: the problem (finite horizon).
      enumeration: a precomputed ``enumerate_trajectories(mdp, policy)`` to share between estimators.
      grad: a precomputed exact grad J.
      rtol: the zero-bias tolerance relative to the scale (``verify.checks.precision``: wider for float32 code).

    Returns:
      ExactMoments (``limit=True`` for batch-dependent estimators).

    Raises:
      UsageError: horizon null or too many trajectories to enumerate.

    >>> from verify.checks.estimators import get_estimator
    >>> from verify.model.policy import TabularSoftmax
    >>> bandit = TabularMDP(initial=[1], transitions=[[[1.0], [1.0]]], rewards=[[1.0, 0.0]], horizon=1)
    >>> m = exact_moments(get_estimator("total_return"), bandit, TabularSoftmax(np.zeros((1, 2))))
    >>> m.mean.tolist(), m.grad.tolist(), m.biased      # g = r_a (e_a - pi): ((1/2)(1, -1) + 0) / 2
    ([[0.25, -0.25]], [[0.25, -0.25]], False)
    """
    if enumeration is None:
        if mdp.horizon is None:
            raise UsageError("exact moments need trajectory enumeration, which needs a finite horizon "
                             "(this MDP has horizon null)")
        enumeration = enumerate_trajectories(mdp, policy)
    if grad is None:
        grad = gradient(mdp, policy, "dp").grad
    d = policy.theta.size
    require_memory(moments_bytes(enumeration.n, d), f"the exact moments of {estimator.name} "
                   f"({enumeration.n} trajectories x {d} parameters, covariance {d} x {d})")
    mean, cov = _weighted_moments(estimator, enumeration)
    return ExactMoments(estimator.name, mean.reshape(policy.theta.shape), cov, np.asarray(grad),
                        estimator.batch_dependent, enumeration.n, magnitude(mdp, policy), rtol)


def exact_moments_all(estimators, mdp: TabularMDP, policy: Policy, *,
                      enumeration: Episodes | None = None) -> dict[str, ExactMoments]:
    """``exact_moments`` for several estimators, sharing one enumeration (``enumeration`` when the caller has it)
    and one exact gradient."""
    if mdp.horizon is None:
        raise UsageError("exact moments need trajectory enumeration, which needs a finite horizon "
                         "(this MDP has horizon null)")
    if enumeration is None:
        enumeration = enumerate_trajectories(mdp, policy)
    grad = gradient(mdp, policy, "dp").grad
    return {e.name: exact_moments(e, mdp, policy, enumeration=enumeration, grad=grad) for e in estimators}
