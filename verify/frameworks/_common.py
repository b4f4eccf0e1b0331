r"""Framework-free parts of the PyTorch and JAX adapters: observations, the batch layout, the DP tables, the target.

Sign convention (once, for both adapters): **a loss is minimised**, so the gradient estimate a training step
follows is g = -grad loss, and the check tests E[-grad loss] against grad J (J is maximised).

The batch a user's loss receives (``Batch``; gymnasium rollout conventions, padded to the batch's longest
episode T, time along axis 1):

| field | shape | meaning |
|---|---|---|
| ``obs`` | [B, T, *obs_shape] | observation of s_t (padding: the final state's) |
| ``actions`` | int [B, T] | a_t (padding 0) |
| ``rewards`` | float [B, T] | r_{t+1} = r(s_t, a_t, s_{t+1}), undiscounted (padding 0) |
| ``terminated`` | bool [B, T] | the episode entered a terminal state at step t (gymnasium ``terminated``) |
| ``truncated`` | bool [B, T] | the episode was cut by the time limit (the horizon) at step t |
| ``mask`` | float [B, T] | 1.0 at the episode's steps t < lengths[n], 0.0 on padding |
| ``lengths`` | int [B] | actions taken in episode n |
| ``next_obs`` | [B, T, *obs_shape] | observation of s_{t+1} |
| ``gamma`` | float | the discount of J = E[sum_t gamma^t r_t] |

With ``pad_to`` every batch is padded to that many steps instead (static shapes: one ``jax.jit`` compilation
instead of one per padded length; a loss that averages over padded time then sees the fixed length).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from verify.checks.batchcheck import Target
from verify.errors import UsageError
from verify.checks.contract import EstimatorError
from verify.model.io import require_memory
from verify.model.mdp import TabularMDP
from verify.checks.moments import magnitude
from verify.model.policy import TabularSoftmax
from verify.model.problem import Problem, load_problem

__all__ = ["Batch", "ExactGradient", "JAC_BLOCK_BYTES", "LOG_PROB_FLOOR", "LossError", "OUTPUTS", "PROB_SUM_TOL", "batch_arrays",
           "framework_target", "loss_name", "observation_table", "policy_log_probs", "require_jacobian_memory",
           "resolve_mdp", "surrogate_policy"]

OUTPUTS = ("logits", "log_probs", "probs")
PROB_SUM_TOL = 1e-6          # a policy that outputs probabilities: rows must sum to 1 within this
LOG_PROB_FLOOR = -700.0      # log pi below this is clipped for the numpy surrogate (exp(-700) ~ 1e-304)


class LossError(EstimatorError):
    """A user's policy or loss broke the contract: the loss raised, returned a non-scalar, NaN/inf or a tensor
    that does not depend on the policy's parameters; the policy returned the wrong shape or probabilities that
    do not sum to 1; the observations do not fit. The message names what was wrong; an exception raised by the
    user's code is chained (``__cause__``)."""


class Batch(NamedTuple):
    """A batch of episodes as framework tensors (see the module docstring for every field)."""

    obs: object
    actions: object
    rewards: object
    terminated: object
    truncated: object
    mask: object
    lengths: object
    next_obs: object
    gamma: float


@dataclass(frozen=True)
class ExactGradient:
    """Exact J(theta) and grad J for every parameter of a framework policy.

    Attributes:
      J: the objective. grad: parameter name -> gradient (numpy, the parameter's shape).
    """

    J: float
    grad: dict

    @property
    def flat(self) -> np.ndarray:
        return np.concatenate([np.ravel(g) for g in self.grad.values()]) if self.grad else np.zeros(0)


def resolve_mdp(problem) -> TabularMDP:
    """A ``TabularMDP`` from an MDP, a ``Problem`` (its policy is not used: the network is the policy) or a path."""
    if isinstance(problem, (str, Path)):
        problem = load_problem(problem)
    if isinstance(problem, Problem):
        return problem.mdp
    if isinstance(problem, TabularMDP):
        return problem
    raise UsageError(f"expected a TabularMDP, a Problem or an MDP file path, got {type(problem).__name__}")


def observation_table(mdp: TabularMDP, observations) -> np.ndarray:
    """The observation of every state, [S, *obs_shape]: "one_hot" (float [S, S]), "index" (int [S]) or an array.

    Raises:
      LossError: an array whose first dimension is not the number of states, or not finite.
    """
    S = mdp.n_states
    if isinstance(observations, str):
        if observations == "one_hot":
            require_memory(8.0 * S * S, f"one-hot observations of {S} states (an [S, S] float array; pass "
                           "observations='index' or features [S, K] for large MDPs)")
            return np.eye(S)
        if observations == "index":
            return np.arange(S, dtype=np.int64)
        raise UsageError(f"observations must be 'one_hot', 'index' or an array [S, ...], got {observations!r}")
    try:
        table = np.asarray(observations)
    except Exception as exc:  # noqa: BLE001
        raise LossError(f"observations could not be converted to an array: {exc}") from exc
    if table.ndim < 1 or table.shape[0] != S:
        raise LossError(f"observations has shape {table.shape}; expected [S, ...] with S = {S} states (one "
                        "observation per state)")
    if table.dtype.kind not in "biuf":
        raise LossError(f"observations has dtype {table.dtype}; expected numbers")
    if table.dtype.kind == "f":
        if not np.isfinite(table).all():
            raise LossError("observations contains NaN or infinity")
        table = table.astype(float)
    return table


def batch_arrays(episodes, table: np.ndarray, pad_to: int | None = None) -> Batch:
    """The ``Batch`` of an ``Episodes`` batch as numpy arrays, padded to its longest episode or to ``pad_to`` steps.

    Raises:
      UsageError: an episode is longer than ``pad_to``.
    """
    lengths = np.asarray(episodes.lengths, dtype=np.int64)
    longest = int(lengths.max(initial=0))
    T = longest if pad_to is None else int(pad_to)
    if longest > T:
        raise UsageError(f"pad_to={pad_to} is shorter than an episode of {longest} steps; use the horizon")
    s_t = np.asarray(episodes.s_t)[:, :T + 1]
    if s_t.shape[1] < T + 1:        # more padding than the episodes carry: repeat each final state
        final = s_t[np.arange(len(lengths)), lengths]
        s_t = np.concatenate([s_t, np.repeat(final[:, None], T + 1 - s_t.shape[1], axis=1)], axis=1)
    steps = np.arange(T)[None, :]
    mask = steps < lengths[:, None]
    last = steps == (lengths[:, None] - 1)
    ended = episodes.mdp.terminal[s_t[np.arange(len(lengths)), lengths]]
    terminated = last & ended[:, None]
    width = min(T, episodes.a_t.shape[1])
    actions = np.zeros((len(lengths), T), dtype=np.int64)
    actions[:, :width] = episodes.a_t[:, :width]
    rewards = np.zeros((len(lengths), T))
    rewards[:, :width] = episodes.r_t[:, :width]
    seen = table[s_t]           # one gather for obs and next_obs (a check builds a batch per estimate)
    return Batch(obs=seen[:, :T], actions=actions, rewards=rewards, terminated=terminated,
                 truncated=last & ~ended[:, None], mask=mask.astype(float), lengths=lengths,
                 next_obs=seen[:, 1:T + 1], gamma=float(episodes.mdp.gamma))


def policy_log_probs(out: np.ndarray, kind: str, n_states: int, n_actions: int) -> np.ndarray:
    """log pi [S, A] from what the policy returned for every state's observation, validated.

    Raises:
      LossError: wrong shape, NaN/inf, or (``kind`` "probs"/"log_probs") rows that do not sum to 1.
    """
    if kind not in OUTPUTS:
        raise UsageError(f"output must be one of {', '.join(OUTPUTS)}, got {kind!r}")
    out = np.asarray(out, dtype=float)
    want = (n_states, n_actions)
    if out.shape != want:
        hint = ""
        if out.ndim == 2 and out.shape[0] == n_states:
            hint = f": {out.shape[1]} actions, but the MDP has {n_actions}"
        elif out.ndim >= 1 and out.shape[0] != n_states:
            hint = (f": the policy was given the observations of all {n_states} states as one batch "
                    "(check the observation shape the network expects)")
        raise LossError(f"the policy returned {kind} of shape {out.shape} for the {n_states} states' observations; "
                        f"expected [S, A] = {want}{hint}")
    if kind == "logits":
        if not np.isfinite(out).all():
            s = int(np.argwhere(~np.isfinite(out))[0][0])
            raise LossError(f"the policy returned non-finite logits for state {s}: {out[s].tolist()}")
        logp = out - out.max(axis=1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
    else:
        probs = np.exp(out) if kind == "log_probs" else out
        if np.isnan(probs).any() or (probs < 0).any() or np.isinf(probs).any():
            s = int(np.argwhere(~(probs >= 0) | np.isinf(probs))[0][0])
            raise LossError(f"the policy returned invalid probabilities for state {s}: {probs[s].tolist()}")
        sums = probs.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1.0) > PROB_SUM_TOL)
        if bad.size:
            s = int(bad[0])
            raise LossError(f"the policy's probabilities for state {s} sum to {sums[s]:.9g}, not 1 (tolerance "
                            f"{PROB_SUM_TOL}); return logits (output='logits') or normalise them")
        with np.errstate(divide="ignore"):
            logp = np.log(probs) if kind == "probs" else out
    return logp


JAC_BLOCK_BYTES = 64 << 20      # the identity rows one batched backward pass of a blocked Jacobian takes


def require_jacobian_memory(n_states: int, n_actions: int, n_params: int, framework: str) -> None:
    """Refuse before ``check_loss``/``check_rollout_loss`` builds d log pi / d params: [S A, d] float64 and the
    identity basis of the cheaper mode, k = min(S A, d) square (JAX: forward mode when d < S A, else reverse;
    PyTorch: reverse mode with the identity's rows in blocks of ``JAC_BLOCK_BYTES``).

    Raises:
      UsageError: more than the memory limit (``--max-memory``).
    """
    m = n_states * n_actions
    k = min(m, n_params)
    require_memory(8.0 * (m * n_params + k * k), f"{framework}'s Jacobian d log pi / d params [S A = {m}, "
                   f"d = {n_params}] for the loss check (dense: a tabular policy on many states needs (S A)^2 entries; "
                   "the exact gradient alone, exact_gradient, does not need it)")


def loss_name(loss_fn, name: str | None) -> str:
    """How a report names the loss: ``name`` if given, else the function's qualified name (a ``functools.partial``'s
    function's), else its type's."""
    if name:
        return name
    inner = getattr(loss_fn, "func", loss_fn)
    return getattr(inner, "__qualname__", None) or type(inner).__name__


def surrogate_policy(logp: np.ndarray) -> TabularSoftmax:
    """The tabular softmax with the network's action probabilities (theta = log pi): sampling, enumeration and
    the catalog run on it, and its theta-space gradients pull back to the network's parameters by the chain rule.
    """
    return TabularSoftmax(np.maximum(logp, LOG_PROB_FLOOR))


def framework_target(mdp: TabularMDP, logp: np.ndarray, grad_flat: np.ndarray, jac: np.ndarray,
                     names: tuple[str, ...]) -> Target:
    """The batch check's target for a network.

    ``jac`` [S A, d] is d log pi(a|s) / d params. A theta-space value M of the tabular surrogate (an exact mean
    of a catalog estimator, sum_{s,a} W[s,a] grad log pi with W - pi rowsum(W) in theta space) pulls back to
    sum_{s,a} M[s, a] grad_params log pi(a|s): the part of W proportional to pi drops out on both sides because
    sum_a pi(a|s) grad log pi(a|s) = 0.
    """
    policy = surrogate_policy(logp)
    # Round-off is relative to the size of returns times the largest d log pi / d param (the score's scale).
    scale = max(float(np.abs(grad_flat).max(initial=0.0)), magnitude(mdp, policy) * float(np.abs(jac).max(initial=0.0)))
    return Target(Problem(mdp, policy), np.asarray(grad_flat, dtype=float), names, lambda x: np.asarray(x) @ jac,
                  scale)
