"""Softmax policies on tabular MDPs: probabilities, log-probabilities and the score function.

Every gradient pgverify computes is contracted with the score through one primitive,

    score_contract(W) = sum_{s,a} W[..., s, a] * grad_theta log pi_theta(a|s),

so trajectory enumeration, dynamic programming and the Monte Carlo estimators share one
implementation of grad log pi per policy type (tabular: W - pi * sum_a W; linear: features). grad log pi is the
score function of the likelihood-ratio (REINFORCE) estimator (Williams, "Simple statistical gradient-following
algorithms for connectionist reinforcement learning", 1992, https://doi.org/10.1007/BF00992696); contracting it
with Q weights is the policy-gradient theorem (Sutton, McAllester, Singh and Mansour, "Policy gradient methods for
reinforcement learning with function approximation", NeurIPS 2000,
https://proceedings.neurips.cc/paper/1999/hash/464d828b85b0bed98e80ade0a5c43b0f-Abstract.html).
``score_contract_rows`` is the same contraction for a W that is zero outside the rows (episode, state) the
episodes visited, as the estimators build it; the tabular policy contracts only those rows.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from verify.errors import InvalidMDPError
from verify.model.mdp import finite_array

__all__ = ["LinearSoftmax", "Policy", "TabularSoftmax", "policy_from_dict"]


def _finite_array(value, what: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    arr = finite_array(value, what, shape)
    arr.setflags(write=False)
    return arr


class Policy(ABC):
    """A stochastic policy pi_theta(a|s) on S states and A actions: the interface every policy type implements.

    Subclasses hold ``theta`` (the parameters, any shape), ``kind`` (the file format's name for the type) and
    ``log_probs`` / ``_probs`` ([S, A]), validated on construction, and implement the three abstract methods;
    ``score``, ``score_contract_rows`` and ``check_compatible`` are derived from ``score_contract``.
    """

    theta: np.ndarray
    kind: str

    @property
    def n_states(self) -> int:
        return self.log_probs.shape[0]

    @property
    def n_actions(self) -> int:
        return self.log_probs.shape[1]

    @property
    def probs(self) -> np.ndarray:
        """pi[s, a], shape [S, A]; rows sum to one."""
        return self._probs

    @abstractmethod
    def with_theta(self, theta) -> "Policy":
        """The same policy type and features with parameters ``theta`` (validated; same shape)."""

    @abstractmethod
    def score_contract(self, W: np.ndarray) -> np.ndarray:
        r"""The one gradient primitive: sum_{s,a} W[..., s, a] grad_theta log pi_theta(a|s).

        Every gradient pgverify computes goes through it: enumeration and DP contract it with p(tau)-weighted
        visit counts or Q tables, the estimators with per-step weights (Williams 1992; Sutton et al. 2000).

        Args:
          W: weights, float [..., S, A] (any leading batch shape).

        Returns:
          float [..., *theta.shape].
        """

    def score_contract_rows(self, W_rows: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
        """``score_contract(W)`` for the W [n, S, A] whose flat rows (episode * S + s) ``rows`` are ``W_rows`` [U, A]
        and whose other rows are zero, shape [n, *theta.shape].

        The estimators' W: an episode visits few states. The default builds W; tabular policies override it.
        """
        S, A = self.probs.shape
        W = np.zeros((n * S, A))
        W[rows] = W_rows
        return self.score_contract(W.reshape(n, S, A))

    @abstractmethod
    def to_dict(self) -> dict:
        """The policy as the MDP file's ``policy`` object (``policy_from_dict`` reads it back)."""

    def score(self, s, a) -> np.ndarray:
        """grad_theta log pi(a|s) for index arrays ``s``, ``a`` of one shape B; returns [*B, *theta.shape].

        >>> pol = TabularSoftmax(np.zeros((1, 2)))
        >>> pol.score(0, 1).tolist()
        [[-0.5, 0.5]]
        """
        s, a = np.broadcast_arrays(np.asarray(s), np.asarray(a))
        W = np.zeros(s.shape + self.probs.shape)
        W.reshape(-1, *self.probs.shape)[np.arange(s.size), s.ravel(), a.ravel()] = 1.0
        return self.score_contract(W)

    def check_compatible(self, n_states: int, n_actions: int) -> None:
        """Raise InvalidMDPError unless the policy acts on ``n_states`` states and ``n_actions`` actions."""
        if self.probs.shape != (n_states, n_actions):
            raise InvalidMDPError(
                f"policy is for {self.probs.shape[0]} states x {self.probs.shape[1]} actions, "
                f"but the MDP has {n_states} x {n_actions}")


@dataclass(frozen=True, eq=False)
class TabularSoftmax(Policy):
    """pi(a|s) = exp(theta[s, a]) / sum_b exp(theta[s, b]); theta has shape [S, A].

    grad_theta log pi(a|s) = e_s (e_a - pi(.|s))^T, so sum_{s,a} W[s,a] grad log pi(a|s) = W - pi * sum_a W.

    >>> pol = TabularSoftmax([[0.0, np.log(3.0)]])
    >>> pol.probs.round(3).tolist()
    [[0.25, 0.75]]
    """

    theta: np.ndarray
    kind = "tabular_softmax"

    def __post_init__(self) -> None:
        theta = _finite_array(self.theta, "policy.theta")
        if theta.ndim != 2 or 0 in theta.shape:
            raise InvalidMDPError(f"policy.theta for tabular_softmax must have shape [S][A], got {theta.shape}")
        object.__setattr__(self, "theta", theta)
        # log-sum-exp keeps |theta| up to 1e3 free of overflow and NaN.
        logp = theta - logsumexp(theta, axis=1, keepdims=True)
        logp.setflags(write=False)
        object.__setattr__(self, "log_probs", logp)
        probs = np.exp(logp)
        probs.setflags(write=False)
        object.__setattr__(self, "_probs", probs)

    def with_theta(self, theta) -> "TabularSoftmax":
        return TabularSoftmax(np.reshape(theta, self.theta.shape))

    def score_contract(self, W: np.ndarray) -> np.ndarray:
        W = np.asarray(W, dtype=float)
        return W - self._probs * W.sum(axis=-1, keepdims=True)

    def score_contract_rows(self, W_rows: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
        """As ``Policy.score_contract_rows``, contracting only the given rows: a zero row contracts to zero.

        Costs the number of rows instead of n S A. Each row gets the operations of ``score_contract`` (with
        ``_action_sums`` for its sum), so the result is bit-for-bit the same.

        >>> pol = TabularSoftmax(np.zeros((2, 2)))
        >>> W = np.array([[[0.0, 0.0], [2.0, 0.0]]])
        >>> bool((pol.score_contract_rows(W[0, 1:], np.array([1]), 1) == pol.score_contract(W)).all())
        True
        """
        S, A = self._probs.shape
        G_rows = self.score_rows(W_rows, rows)
        out = np.zeros((n * S, A))
        np.put(_as_records(out), rows, _as_records(G_rows))
        return out.reshape(n, S, A)

    def score_rows(self, W_rows: np.ndarray, rows: np.ndarray, pi_rows: np.ndarray | None = None) -> np.ndarray:
        """The non-zero rows of ``score_contract_rows``: W_rows - pi(.|s) sum_a W_rows for the flat rows
        (episode * S + s) ``rows`` [U], shape [U, A]; a per-episode estimate of a big MDP as its visited rows only.
        ``pi_rows``: pi(.|s) at those rows, [U, A], when the caller has it (``self.row_probs(rows)``, which every
        estimator of a batch shares: ``verify.numerics.episodes.step_score_rows``); the same numbers either way.

        >>> pol = TabularSoftmax(np.zeros((2, 2)))
        >>> pol.score_rows(np.array([[2.0, 0.0]]), np.array([3])).tolist()     # episode 1, state 1
        [[1.0, -1.0]]
        """
        W_rows = np.asarray(W_rows, dtype=float)
        if pi_rows is None:
            G_rows = self.row_probs(rows)
            G_rows *= _action_sums(W_rows)
        else:
            G_rows = pi_rows * _action_sums(W_rows)
        np.subtract(W_rows, G_rows, out=G_rows)
        return G_rows

    def row_probs(self, rows: np.ndarray) -> np.ndarray:
        """pi(.|s) for the flat rows (episode * S + s) ``rows`` [U], shape [U, A] (a new array)."""
        # take, not fancy indexing: numpy's fancy row gather/scatter works a row at a time (~10x slower).
        return self._probs.take(rows % self._probs.shape[0], axis=0)

    def to_dict(self) -> dict:
        return {"type": self.kind, "theta": self.theta.tolist()}


@dataclass(frozen=True, eq=False)
class LinearSoftmax(Policy):
    """pi(a|s) proportional to exp(phi[s, a] . theta); features phi [S, A, K], theta [K].

    grad_theta log pi(a|s) = phi[s, a] - sum_b pi(b|s) phi[s, b].

    >>> pol = LinearSoftmax(features=[[[1.0], [0.0]]], theta=[0.0])
    >>> pol.score(0, 0).tolist()
    [0.5]
    """

    features: np.ndarray
    theta: np.ndarray
    kind = "linear_softmax"

    def __post_init__(self) -> None:
        phi = _finite_array(self.features, "policy.features")
        if phi.ndim != 3 or 0 in phi.shape:
            raise InvalidMDPError(f"policy.features must have shape [S][A][K], got {phi.shape}")
        theta = _finite_array(self.theta, "policy.theta", (phi.shape[2],))
        object.__setattr__(self, "features", phi)
        object.__setattr__(self, "theta", theta)
        logits = phi @ theta
        logp = logits - logsumexp(logits, axis=1, keepdims=True)
        logp.setflags(write=False)
        object.__setattr__(self, "log_probs", logp)
        probs = np.exp(logp)
        probs.setflags(write=False)
        object.__setattr__(self, "_probs", probs)
        object.__setattr__(self, "_mean_features", np.einsum("sa,sak->sk", probs, phi))

    def with_theta(self, theta) -> "LinearSoftmax":
        return LinearSoftmax(self.features, np.reshape(theta, self.theta.shape))

    def score_contract(self, W: np.ndarray) -> np.ndarray:
        W = np.asarray(W, dtype=float)
        return (np.einsum("...sa,sak->...k", W, self.features)
                - np.einsum("...s,sk->...k", W.sum(axis=-1), self._mean_features))

    def to_dict(self) -> dict:
        return {"type": self.kind, "features": self.features.tolist(), "theta": self.theta.tolist()}


def logsumexp(x: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """log sum_i exp(x_i) along ``axis``, bit for bit ``scipy.special.logsumexp`` (scipy 1.15+) without importing
    scipy (half a second of start-up): the maxima are taken out of the sum and counted, out = log1p(s) + log(m) +
    max, with s the sum of the other terms' exp(x_i - max) divided by their count m (``tests/test_exact.py``).
    """
    x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    x_max = x.max(axis=-1, keepdims=True)
    is_max = x == x_max
    m = is_max.sum(axis=-1, keepdims=True).astype(float)
    s = np.exp(np.where(is_max, -np.inf, x) - x_max).sum(axis=-1, keepdims=True)
    s = s / m
    out = np.moveaxis(np.log1p(s) + np.log(m) + x_max, -1, axis)
    return out if keepdims else np.squeeze(out, axis=axis)


def _action_sums(W: np.ndarray) -> np.ndarray:
    """sum_a W[..., a] (keepdims), bit for bit ``W.sum(axis=-1, keepdims=True)``.

    Below 8 terms numpy adds left to right starting from +0.0 (pairwise summation starts at 8), so doing that
    column by column gives the same bits without numpy's slow row-by-row reduction of a short axis
    (``tests/test_steps.py`` pins the equality).
    """
    A = W.shape[-1]
    if A >= 8:
        return W.sum(axis=-1, keepdims=True)
    total = W[..., :1] + 0.0
    for k in range(1, A):
        total += W[..., k:k + 1]
    return total


def _as_records(x: np.ndarray) -> np.ndarray:
    """A C-contiguous [R, A] array as R opaque records of A floats (a view), for whole-row ``np.put``/``take``."""
    return x.view(np.dtype((np.void, x.shape[-1] * x.itemsize))).reshape(-1)


_POLICY_TYPES = {"tabular_softmax": TabularSoftmax, "linear_softmax": LinearSoftmax}


def policy_from_dict(spec, n_states: int, n_actions: int) -> Policy:
    """Build a policy from the MDP file's ``policy`` entry; ``None`` means uniform tabular softmax (theta = 0).

    Raises:
      InvalidMDPError: unknown type, missing keys, wrong shapes, non-finite numbers.
    """
    if spec is None:
        return TabularSoftmax(np.zeros((n_states, n_actions)))
    if not isinstance(spec, dict):
        raise InvalidMDPError(f"policy must be an object with a 'type', got {spec!r}")
    kind = spec.get("type")
    if kind not in _POLICY_TYPES:
        raise InvalidMDPError(f"policy.type {kind!r} is unknown; known types: {sorted(_POLICY_TYPES)}")
    unknown = set(spec) - {"type", "theta", "features"}
    if unknown:
        raise InvalidMDPError(f"policy has unknown keys {sorted(unknown)}")
    if kind == "tabular_softmax":
        theta = spec.get("theta")
        pol = TabularSoftmax(np.zeros((n_states, n_actions)) if theta is None else theta)
    else:
        if "features" not in spec or "theta" not in spec:
            raise InvalidMDPError("policy of type linear_softmax needs 'features' [S][A][K] and 'theta' [K]")
        pol = LinearSoftmax(spec["features"], spec["theta"])
    pol.check_compatible(n_states, n_actions)
    return pol
