r"""Continuous actions in PyTorch and JAX: check a Gaussian-policy loss on an LQ problem, where grad J is exact.

The policy maps observations x [..., n] to a Gaussian over actions u [..., m]: in PyTorch an ``nn.Module`` whose
forward returns ``torch.distributions.Normal``, ``Independent(Normal)`` or ``MultivariateNormal`` (diagonal
covariance); in JAX a function ``apply(params, obs) -> (mean, log_std)`` (plain log-densities: write
``-0.5 ((u - mean) / std)^2 - log_std - 0.5 log 2 pi`` yourself, or use distrax). pgverify reads the policy at
n + 1 points (x = 0 and the unit vectors), so its mean must be affine, K x + k, and its standard deviation
state-independent (checked at random points): that is the linear Gaussian policy whose grad J the LQ recursions
give exactly (``verify.model.lq``). grad J in *your* parameters is the chain rule through theta(params) = [K, k,
log_std] (the Jacobian by autodiff), so a ``Linear`` layer plus a ``log_std`` parameter, or any other
parameterisation of the same policy, works.

The loss is ``loss_fn(policy, batch)`` (PyTorch) or ``loss_fn(params, batch)`` (JAX), a scalar to *minimise*, with
``batch`` a ``GaussianBatch`` of float64 tensors/arrays: ``obs`` [B, T, n] (x_t), ``actions`` [B, T, m] (the
Gaussian sample u_t the plant received: a tanh-squashed policy's action is tanh(u_t)), ``rewards`` [B, T]
(undiscounted), ``mask`` [B, T] (all ones: LQ episodes all last T steps), ``next_obs`` [B, T, n], ``gamma``.

How it decides (as ``verify.checks.batchcheck``'s Monte Carlo path): K batches of B episodes are sampled from the policy;
each batch's -grad loss Y_k is paired with pgverify's unbiased exact-value-baseline estimate R_k on the same
episodes, mapped to your parameters (known mean grad J), and E[Y - R] = 0 is tested with max-|z| (Bonferroni,
level alpha). "unbiased" needs the test to detect relative biases of ``tolerance`` x max|grad J| (probability
0.999), else "undecided"; a rejection is "biased", with the pitfall it matches (batch for batch within round-off,
or by a paired test) and its fix.

>>> import torch
>>> policy = linear_gaussian_policy("lq1d")
>>> def reinforce(policy, batch):
...     logp = policy(batch.obs).log_prob(batch.actions).sum(-1)                     # [B, T]
...     disc = batch.gamma ** torch.arange(batch.rewards.shape[1], dtype=torch.float64)
...     G = (disc * batch.rewards).flip(1).cumsum(1).flip(1)                         # sum_{t'>=t} gamma^t' r_t'
...     return -(logp * G).sum(1).mean()
>>> check_gaussian_loss(policy, reinforce, "lq1d", batches=500).verdict
'unbiased'
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from verify.errors import UsageError
from verify.frameworks._common import LossError
from verify.model.lq import LQProblem
from verify.checks.lq_check import as_lq_problem
from verify.checks.lq_mc import (LQ_ESTIMATORS, ZERO_RTOL, identical_to, lq_episodes_for,
                          match_pitfalls, sample_lq)
from verify.checks.stats import SampleMoments, consistency_test, detectable_bias

__all__ = ["GaussianBatch", "GaussianLossCheck", "assert_gaussian_loss_unbiased", "check_gaussian_loss",
           "check_gaussian_loss_jax", "linear_gaussian_policy"]

DEFAULT_BATCH_SIZE = 16
DEFAULT_BATCHES = 1000
DEFAULT_ALPHA = 1e-3
DEFAULT_TOLERANCE = 0.1
AFFINE_RTOL = 1e-9


class GaussianBatch(NamedTuple):
    """A batch of LQ episodes for a loss (see the module docstring)."""

    obs: object
    actions: object
    rewards: object
    mask: object
    next_obs: object
    gamma: float


@dataclass(frozen=True, eq=False)
class GaussianLossCheck:
    """The outcome of ``check_gaussian_loss``.

    verdict: "unbiased", "biased" or "undecided"; grad: exact grad J in the loss's parameters [P]; names: one per
    parameter entry; mean, stderr: E[-grad loss] estimated over the batches [P]; p_value: the paired test's;
    resolution: the smallest relative bias (of max|grad J|) the run detects with probability 0.999; c: <mean, grad
    J> / |grad J|^2 (1 for an unbiased loss; a batch sum instead of a mean gives B); matches: (pitfall, fix);
    identical_to: the catalog estimator whose batch means -grad loss equals on every batch (within round-off): its
    exact mean then decides (grad J for an unbiased one, the closed form of a pitfall), not the sampled test.
    """

    loss: str
    problem: str
    batch_size: int
    batches: int
    seed: int
    alpha: float
    tolerance: float
    verdict: str
    grad: np.ndarray
    names: tuple[str, ...]
    mean: np.ndarray
    stderr: np.ndarray
    p_value: float
    resolution: float
    c: float
    matches: tuple[tuple[str, str], ...]
    reason: str = ""
    identical_to: str | None = None

    @property
    def passed(self) -> bool:
        return self.verdict == "unbiased"

    @property
    def worst(self) -> int:
        z = np.abs(self.mean - self.grad) / np.where(self.stderr > 0, self.stderr, np.inf)
        return int(np.argmax(z))

    def format(self) -> str:
        w = self.worst
        lines = [f"loss {self.loss} on {self.problem}: {self.verdict.upper()} ({self.batches} batches of "
                 f"{self.batch_size} episodes, seed {self.seed})"]
        if self.identical_to:
            lines.append(f"decided exactly: -grad loss equals the catalog estimator {self.identical_to} on every "
                         f"batch (within round-off), whose exact mean is "
                         + ("grad J" if not self.matches else "known in closed form"))
        lines += [
                 f"E[-grad loss] against the exact grad J, paired with the exact-value-baseline estimate on the same "
                 f"episodes{' (shown; the identity decides)' if self.identical_to else ''}: p = {self.p_value:.3g} "
                 f"({'<=' if self.p_value <= self.alpha else '>'} alpha = {self.alpha:g}); detects relative biases "
                 f"of {self.resolution:.3g} (tolerance {self.tolerance:g})",
                 f"largest |z|: {self.names[w]}: mean {self.mean[w]:.6g} (standard error {self.stderr[w]:.2g}), "
                 f"exact grad J {self.grad[w]:.6g}; c = <E[-grad loss], grad J> / |grad J|^2 = {self.c:.4g}"]
        if self.reason:
            lines.append(f"undecided: {self.reason}")
        for name, fix in self.matches:
            lines.append(f"matches the pitfall {name}; fix: {fix}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"loss": self.loss, "problem": self.problem, "verdict": self.verdict, "passed": self.passed,
                "batch_size": self.batch_size, "batches": self.batches, "seed": self.seed, "alpha": self.alpha,
                "tolerance": self.tolerance, "grad": self.grad.tolist(), "names": list(self.names),
                "mean": self.mean.tolist(), "stderr": self.stderr.tolist(), "p_value": self.p_value,
                "resolution": None if not math.isfinite(self.resolution) else self.resolution, "c": self.c,
                "matches": [{"pitfall": n, "fix": f} for n, f in self.matches], "reason": self.reason,
                "identical_to": self.identical_to}


def _lq(problem) -> LQProblem:
    lq = as_lq_problem(problem)
    if lq is None:
        raise UsageError(f"a Gaussian-policy loss is checked on an LQ problem (an LQProblem or a built-in LQ "
                         f"example name), got {type(problem).__name__}")
    return lq


def _settings(batch_size, batches, seed, alpha, tolerance) -> None:
    from verify.errors import positive_int

    positive_int(batch_size, "batch_size")
    if positive_int(batches, "batches") < 2:
        raise UsageError("batches must be at least 2")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0 < alpha < 1:
        raise UsageError(f"alpha must be in (0, 1), got {alpha!r}")
    if not tolerance > 0:
        raise UsageError(f"tolerance must be positive, got {tolerance!r}")


def _check_affine(mean_at, std_at, lq: LQProblem, K: np.ndarray, k: np.ndarray, std: np.ndarray, rng) -> None:
    """The read K, k, std must reproduce the policy at random states: else it is not a linear Gaussian policy."""
    X = rng.standard_normal((4, lq.n))
    mean, s = mean_at(X), std_at(X)
    scale = max(float(np.abs(mean).max(initial=0.0)), 1.0)
    if np.abs(mean - (X @ K.T + k)).max() > AFFINE_RTOL * scale * 10:
        raise LossError("the policy's mean is not affine in the observation (K x + k): pgverify's exact LQ gradient "
                        "needs a linear Gaussian policy")
    if np.abs(s - std).max() > AFFINE_RTOL * max(float(std.max()), 1e-300) * 10:
        raise LossError("the policy's standard deviation depends on the observation: pgverify's exact LQ gradient "
                        "needs a state-independent standard deviation")


def _judge(Y, R, pitfalls: dict, grad: np.ndarray, *, alpha: float, tolerance: float, catalog: dict, exact: dict):
    """(verdict, reason, test, resolution, c, matches, identical): identity with a catalog estimator first (its
    exact mean decides: ``exact[name]`` in parameter space, grad J for the unbiased ones), else the paired test."""
    gmax = max(float(np.abs(grad).max(initial=0.0)), 1e-300)
    D = Y - R
    test = consistency_test(SampleMoments.of(D), np.zeros(D.shape[1]), alpha=alpha, scale=gmax)
    res = math.inf if test.undecided or not np.any(test.stderr > 0) else \
        float(detectable_bias(test, 0.999)[test.stderr > 0].max()) / gmax
    mean = Y.mean(axis=0)
    gg = float(grad @ grad)
    c = float(mean @ grad) / gg if gg > 0 else math.nan
    reason = ""
    same = identical_to(Y, catalog, gmax)
    if same is not None and exact.get(same) is not None:
        biased = np.abs(exact[same] - grad).max() > ZERO_RTOL * max(gmax, float(np.abs(exact[same]).max()))
        matches = ((same, next(e.fix for e in LQ_ESTIMATORS if e.name == same)),) if biased else ()
        return ("biased" if biased else "unbiased"), "", test, res, c, matches, same
    if test.undecided:
        verdict, reason = "undecided", test.reason
    elif not test.consistent:
        verdict = "biased"
    elif res <= tolerance:
        verdict = "unbiased"
    else:
        verdict, reason = "undecided", (f"the test detects only relative biases of {res:.3g} or more (tolerance "
                                        f"{tolerance:g}); use more batches")
    matches = () if verdict != "biased" else match_pitfalls(Y, pitfalls, gmax, alpha)
    return verdict, reason, test, res, c, matches, same


def _run(lq: LQProblem, J_theta: np.ndarray, loss_grad: Callable, to_batch: Callable, *, name: str, batch_size: int,
         batches: int, seed: int, alpha: float, tolerance: float, names: tuple[str, ...]) -> GaussianLossCheck:
    """The engine shared by PyTorch and JAX: sample, evaluate -grad loss per batch, pair, judge."""
    from verify.model.lq import lq_gradient

    T = lq_episodes_for(lq)
    grad = J_theta.T @ lq_gradient(lq, horizon=T).flat
    episodes = sample_lq(lq, batch_size * batches, np.random.default_rng(seed), horizon=T)
    catalog = {e.name: e.fn(episodes).reshape(batches, batch_size, lq.d).mean(axis=1) @ J_theta
               for e in LQ_ESTIMATORS}
    exact = {e.name: grad if e.unbiased else None if e.exact_mean is None else J_theta.T @ e.exact_mean(lq, T)
             for e in LQ_ESTIMATORS}
    ref = catalog["baseline_value"]
    pitfalls = {e.name: (catalog[e.name], None, e.fix) for e in LQ_ESTIMATORS if not e.unbiased}
    Y = np.empty((batches, grad.size))
    for b in range(batches):
        Y[b] = -loss_grad(to_batch(episodes.take(slice(b * batch_size, (b + 1) * batch_size))))
        if not np.all(np.isfinite(Y[b])):
            raise LossError(f"the gradient of loss {name} is not finite on batch {b}")
    verdict, reason, test, res, c, matches, same = _judge(Y, ref, pitfalls, grad, alpha=alpha, tolerance=tolerance,
                                                          catalog=catalog, exact=exact)
    return GaussianLossCheck(name, lq.name, batch_size, batches, int(seed), alpha, tolerance, verdict, grad, names,
                             Y.mean(axis=0), Y.std(axis=0, ddof=1) / math.sqrt(batches), float(test.p_value), res,
                             c, matches, reason, same)


# --- PyTorch ------------------------------------------------------------------------------------------------------

def _torch():
    try:
        import torch
    except ImportError:
        raise UsageError("verify.frameworks.gaussian's PyTorch check needs PyTorch: pip install 'pgverify[torch]'") \
            from None
    return torch


def linear_gaussian_policy(problem):
    """A ``torch.nn.Module`` with the LQ problem's policy: ``Linear(n, m)`` (weight K, bias k) and a ``log_std``
    parameter; forward(obs) returns ``Normal(K obs + k, exp(log_std))``."""
    torch = _torch()
    lq = _lq(problem)

    class LinearGaussian(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mean = torch.nn.Linear(lq.n, lq.m, dtype=torch.float64)
            self.log_std = torch.nn.Parameter(torch.tensor(lq.log_std, dtype=torch.float64))
            with torch.no_grad():
                self.mean.weight.copy_(torch.tensor(lq.K))
                self.mean.bias.copy_(torch.tensor(lq.k))

        def forward(self, obs):
            return torch.distributions.Normal(self.mean(obs), self.log_std.exp())

    return LinearGaussian()


def _torch_moments(torch, dist):
    """(mean [..., m], std [..., m]) of a Normal, Independent(Normal) or diagonal MultivariateNormal."""
    D = torch.distributions
    if isinstance(dist, D.Independent):
        dist = dist.base_dist
    if isinstance(dist, D.Normal):
        return dist.mean, dist.stddev
    if isinstance(dist, D.MultivariateNormal):
        cov = dist.covariance_matrix
        diag = torch.diagonal(cov, dim1=-2, dim2=-1)
        if (cov - torch.diag_embed(diag)).abs().max() > 0:
            raise LossError("the MultivariateNormal's covariance is not diagonal: the LQ policy's is diag(sigma^2)")
        return dist.mean, diag.sqrt()
    raise LossError(f"the policy must return torch.distributions.Normal, Independent(Normal) or MultivariateNormal, "
                    f"got {type(dist).__name__}")


def check_gaussian_loss(policy, loss_fn: Callable, problem, *, batch_size: int = DEFAULT_BATCH_SIZE,
                        batches: int = DEFAULT_BATCHES, seed: int = 0, alpha: float = DEFAULT_ALPHA,
                        tolerance: float = DEFAULT_TOLERANCE) -> GaussianLossCheck:
    """Is E[-grad loss] the exact grad J of the LQ problem for this PyTorch Gaussian policy? (module docstring)

    Args:
      policy: ``torch.nn.Module``, obs [..., n] -> Normal / Independent(Normal) / MultivariateNormal; its mean
        and std define K, k, log_std (the problem's own policy is replaced by it).
      loss_fn: ``loss_fn(policy, batch) -> scalar tensor``.
      problem: an ``LQProblem`` or a built-in LQ example name.

    Raises:
      LossError: the policy is not a linear Gaussian one, or the loss fails / has no gradient.
    """
    torch = _torch()
    _settings(batch_size, batches, seed, alpha, tolerance)
    lq = _lq(problem)
    if not isinstance(policy, torch.nn.Module):
        raise LossError(f"policy must be a torch.nn.Module, got {type(policy).__name__}")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _check_torch(torch, policy, loss_fn, lq, batch_size=batch_size, batches=batches, seed=seed,
                            alpha=alpha, tolerance=tolerance)
    finally:
        torch.set_num_threads(before)


def _check_torch(torch, policy, loss_fn, lq, **settings) -> GaussianLossCheck:
    model = copy.deepcopy(policy).double()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise LossError(f"the policy {type(policy).__name__} has no parameters that require grad")
    params = [p for _, p in named]
    X = torch.cat([torch.zeros(1, lq.n, dtype=torch.float64), torch.eye(lq.n, dtype=torch.float64)])
    mean, std = _torch_moments(torch, model(X))
    if mean.shape != (lq.n + 1, lq.m):
        raise LossError(f"the policy's mean has shape {list(mean.shape[1:])} for one observation, the LQ problem "
                        f"has {lq.m} action dimensions")
    k = mean[0]
    theta = torch.cat([(mean[1:] - k).T.reshape(-1), k, torch.log(std[0])])
    K_np, k_np, s_np = (a.detach().numpy() for a in ((mean[1:] - k).T, k, std[0]))

    def at(x):
        with torch.no_grad():
            m_, s_ = _torch_moments(torch, model(torch.tensor(x)))
        return m_.numpy(), s_.numpy()

    _check_affine(lambda x: at(x)[0], lambda x: at(x)[1], lq, K_np, k_np, s_np,
                  np.random.default_rng(settings["seed"]))
    J_theta = np.stack([np.concatenate([(g if g is not None else torch.zeros_like(p)).reshape(-1).numpy()
                                        for g, p in zip(torch.autograd.grad(theta[i], params, retain_graph=True,
                                                                            allow_unused=True), params)])
                        for i in range(lq.d)])
    names = tuple(f"{n}[{', '.join(map(str, idx))}]" if p.dim() else n
                  for n, p in named for idx in np.ndindex(*p.shape))
    fitted = lq.with_theta(theta.detach().numpy())
    t = lambda a: torch.from_numpy(np.array(a))  # noqa: E731

    def to_batch(ep):
        return GaussianBatch(t(ep.x_t[:, :-1]), t(ep.u_t), t(ep.r_t), torch.ones(ep.r_t.shape, dtype=torch.float64),
                             t(ep.x_t[:, 1:]), ep.gamma)

    def loss_grad(batch):
        try:
            loss = loss_fn(model, batch)
        except Exception as exc:  # noqa: BLE001 - the user's code, one line
            raise LossError(f"loss {_name(loss_fn)} raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.requires_grad:
            raise LossError(f"loss {_name(loss_fn)} must return a scalar tensor that depends on the policy's "
                            "parameters")
        grads = torch.autograd.grad(loss.reshape(()), params, allow_unused=True)
        return np.concatenate([(g if g is not None else torch.zeros_like(p)).reshape(-1).numpy()
                               for g, p in zip(grads, params)])

    return _run(fitted, J_theta, loss_grad, to_batch, name=_name(loss_fn), names=names, **settings)


def _name(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def assert_gaussian_loss_unbiased(policy, loss_fn: Callable, problem, **settings) -> GaussianLossCheck:
    """``check_gaussian_loss`` that raises ``AssertionError`` (with the report) unless the verdict is unbiased."""
    check = check_gaussian_loss(policy, loss_fn, problem, **settings)
    if not check.passed:
        raise AssertionError(check.format())
    return check


# --- JAX ----------------------------------------------------------------------------------------------------------

def check_gaussian_loss_jax(apply: Callable, params, loss_fn: Callable, problem, *,
                            batch_size: int = DEFAULT_BATCH_SIZE, batches: int = DEFAULT_BATCHES, seed: int = 0,
                            alpha: float = DEFAULT_ALPHA, tolerance: float = DEFAULT_TOLERANCE) -> GaussianLossCheck:
    """The JAX twin of ``check_gaussian_loss``: ``apply(params, obs) -> (mean [..., m], log_std [..., m] or [m])``,
    ``loss_fn(params, batch) -> scalar``, any parameter pytree (float64: ``jax_enable_x64`` is turned on)."""
    try:
        import jax
    except ImportError:
        raise UsageError("check_gaussian_loss_jax needs JAX: pip install 'pgverify[jax]'") from None
    jax.config.update("jax_enable_x64", True)
    import jax.flatten_util
    import jax.numpy as jnp

    _settings(batch_size, batches, seed, alpha, tolerance)
    lq = _lq(problem)
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype=jnp.float64), params)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    X = jnp.concatenate([jnp.zeros((1, lq.n)), jnp.eye(lq.n)])

    def theta_of(v):
        mean, log_std = apply(unravel(v), X)
        log_std = jnp.broadcast_to(log_std, mean.shape)
        k = mean[0]
        return jnp.concatenate([(mean[1:] - k).T.reshape(-1), k, log_std[0]])

    theta = np.asarray(theta_of(flat))
    J_theta = np.asarray(jax.jacfwd(theta_of)(flat))
    fitted = lq.with_theta(theta)

    def at(x):
        mean, log_std = apply(params, jnp.asarray(x))
        return np.asarray(mean), np.asarray(jnp.broadcast_to(jnp.exp(log_std), mean.shape))

    _check_affine(lambda x: at(x)[0], lambda x: at(x)[1], lq, fitted.K, fitted.k, fitted.sigma,
                  np.random.default_rng(seed))
    grad_fn = jax.jit(jax.grad(lambda v, batch: loss_fn(unravel(v), batch)))

    def to_batch(ep):
        return GaussianBatch(jnp.asarray(ep.x_t[:, :-1]), jnp.asarray(ep.u_t), jnp.asarray(ep.r_t),
                             jnp.ones(ep.r_t.shape), jnp.asarray(ep.x_t[:, 1:]), ep.gamma)

    def loss_grad(batch):
        try:
            return np.asarray(grad_fn(flat, batch))
        except Exception as exc:  # noqa: BLE001 - the user's code, one line
            raise LossError(f"loss {_name(loss_fn)} raised {type(exc).__name__}: {exc}") from exc

    names = tuple(f"params[{i}]" for i in range(flat.size))
    return _run(fitted, J_theta, loss_grad, to_batch, name=_name(loss_fn), batch_size=batch_size, batches=batches,
                seed=seed, alpha=alpha, tolerance=tolerance, names=names)
