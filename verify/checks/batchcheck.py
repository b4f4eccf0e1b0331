r"""Batch-level gradient checks: is E[g(batch)] the exact grad J, a positive multiple of it, or something else?

A training loop computes one gradient per *batch*, often with statistics of the whole batch (advantage or return
normalisation, a mean over all the batch's timesteps). Its estimates are not i.i.d. per episode, but the batches
are: a batch of B episodes sampled from the policy is the i.i.d. unit, and the question is whether

    E_{tau_1..tau_B ~ p(.|theta)} [ g(tau_1, ..., tau_B) ] = c grad J(theta)

with c = 1 ("unbiased") or some c > 0 ("proportional": a mean instead of a sum, a constant 1/T; SGD does not
care), or neither ("biased"). Everything here works on flat vectors in the estimator's own parameter space (d
numbers: theta for a numpy estimator, every weight of a network for the framework adapters), so the same code
serves ``check_batch_estimator`` (numpy, theta space) and ``verify.frameworks`` (PyTorch, JAX).

How E[g] is obtained, best first:

1. **Per-episode, exact.** A probe compares g(batch) with g of each episode alone: when g(batch) is their mean
   (or their sum) the estimator is per-episode, E[g_B] = E[g_1] (or B E[g_1]), and E[g_1] = sum_tau p(tau)
   g(tau) over the enumerated trajectories (at most ``EXACT_CALLS`` of them).
2. **Batch-level, exact.** With n trajectories and n^B <= ``EXACT_CALLS``, every ordered B-tuple is a batch of
   probability prod p(tau_i): E[g_B] is exact for tiny problems (normalisation's bias at B = 2 and 4).
3. **Monte Carlo over batches**, paired: each batch also gets pgverify's unbiased ``baseline_value`` estimate
   r_k (known mean grad J), and the test is on D_k = g_k - r_k (much smaller variance than g_k alone). H0
   E[D] = 0 is the "unbiased" test; "proportional" tests the component of g_k - c r_k orthogonal to grad J
   (``verify.checks.stats.consistency_test``, max-|z| with Bonferroni, level alpha). A run whose test cannot detect a
   bias of ``tolerance`` times max|grad J| (probability 0.999) says "undecided", never "unbiased".

Exact verdicts compare within float round-off (``ZERO_BIAS_RTOL`` of the numbers' scale); the catalog pitfalls
whose exact mean is a positive multiple of E[g] are named. For batch-level estimators a second batch size shows
how the bias shrinks (normalisation: O(1/B) towards a proportional limit).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import stats as scipy_stats

from verify.numerics.episodes import Episodes
from verify.errors import UsageError, positive_int
from verify.checks.estimators import ESTIMATORS, get_estimator
from verify.numerics.exact import gradient
from verify.model.labels import component_name
from verify.model.mdp import TabularMDP
from verify.checks.moments import ZERO_BIAS_RTOL, exact_moments_all, magnitude, try_enumerate
from verify.model.policy import Policy
from verify.checks.precision import FLOAT64, Precision
from verify.model.problem import Problem
from verify.numerics.sampler import sample_episodes
from verify.checks.stats import MIN_NONZERO, SampleMoments, consistency_test, detectable_bias

__all__ = ["BatchCheck", "BatchSize", "DEFAULT_BATCHES", "DEFAULT_BATCH_SIZE", "DEFAULT_TOLERANCE", "EXACT_CALLS",
           "Target", "VERDICTS", "assert_batch_estimator_unbiased", "check_batch_estimator", "check_batches",
           "exact_verdict", "theta_target"]

DEFAULT_BATCH_SIZE = 16
DEFAULT_BATCHES = 1000
DEFAULT_ALPHA = 1e-3
DEFAULT_TOLERANCE = 0.1     # the smallest relative bias (of max|grad J|) a passing Monte Carlo run must detect
DETECT_POWER = 0.999
EXACT_CALLS = 4096          # estimator evaluations allowed for an exact mean (one per trajectory or B-tuple)
EXACT_SECOND_CALLS = 1024   # the same for the second batch size (it only shows the trend)
PROBE_EPISODES = 6
VERDICTS = ("unbiased", "proportional", "biased", "undecided")
REFERENCE = "baseline_value"   # the unbiased catalog estimator the Monte Carlo test is paired with


@dataclass(frozen=True, eq=False)
class Target:
    """What a batch estimate is compared with, in the estimator's parameter space (d numbers).

    Attributes:
      problem: the MDP and a ``verify.model.policy`` policy with the estimator's action probabilities (sampling,
        enumeration and the catalog run on it).
      grad: exact grad J in parameter space, [d].
      names: a readable name per component, [d].
      to_params: maps values in ``problem.policy``'s theta space, [..., theta.size], to parameter space [..., d]
        (the identity for a numpy estimator; the chain rule through log pi for a network).
      scale: the size round-off is relative to (at least max|grad J|).
    """

    problem: Problem
    grad: np.ndarray
    names: tuple[str, ...]
    to_params: Callable[[np.ndarray], np.ndarray]
    scale: float

    @property
    def d(self) -> int:
        return self.grad.size


def theta_target(problem: Problem) -> Target:
    """The target of a numpy estimator: theta of ``problem.policy``, grad J by DP or a linear solve."""
    grad = gradient(problem.mdp, problem.policy).grad
    names = tuple(component_name(problem, tuple(int(i) for i in np.unravel_index(k, grad.shape)))
                  for k in range(grad.size))
    # Round-off is relative to the size of returns (``moments.magnitude``), as in gradcheck's exact verdict.
    scale = max(magnitude(problem.mdp, problem.policy), float(np.abs(grad).max(initial=0.0)))
    return Target(problem, grad.ravel(), names, lambda x: np.asarray(x, dtype=float), scale)


@dataclass(frozen=True, eq=False)
class BatchSize:
    """E[g] at one batch size: exact (``stderr`` None) or estimated from ``batches`` batches.

    Attributes:
      batch_size, batches: B and the number of batches (0 when exact).
      mean: E[g_B] or its estimate, [d]; stderr: its standard error [d], or None when exact.
      relative_bias: |E[g] - grad J| / |grad J| (2-norms); angle: between E[g] and grad J, degrees.
      scale_c: <E[g], grad J> / |grad J|^2, the best c in E[g] ~ c grad J.
      nonproportional: |E[g] - c grad J| / |E[g]|, the part no step size can fix.
    """

    batch_size: int
    batches: int
    mean: np.ndarray
    stderr: np.ndarray | None
    relative_bias: float
    angle: float
    scale_c: float
    nonproportional: float

    def to_json(self) -> dict:
        return {"batch_size": self.batch_size, "batches": self.batches, "exact": self.stderr is None,
                "relative_bias": _fin(self.relative_bias), "angle_deg": _fin(self.angle), "c": _fin(self.scale_c),
                "nonproportional": _fin(self.nonproportional)}


def _fin(x):
    return None if x is None or not np.isfinite(x) else float(x)


def _geometry(mean: np.ndarray, grad: np.ndarray) -> tuple[float, float, float, float]:
    """(relative bias, angle in degrees, c, non-proportional fraction) of ``mean`` against ``grad``."""
    gn, mn = float(np.linalg.norm(grad)), float(np.linalg.norm(mean))
    if gn == 0:
        return (math.inf if mn > 0 else 0.0), math.nan, math.nan, math.nan
    c = float(mean @ grad) / gn ** 2
    cos = float(mean @ grad) / (gn * mn) if mn > 0 else math.nan
    angle = math.degrees(math.acos(max(-1.0, min(1.0, cos)))) if mn > 0 else math.nan
    nonprop = float(np.linalg.norm(mean - c * grad)) / mn if mn > 0 else 0.0
    return float(np.linalg.norm(mean - grad)) / gn, angle, c, nonprop


def _at_size(batch_size: int, batches: int, mean, stderr, grad) -> BatchSize:
    return BatchSize(batch_size, batches, mean, stderr, *_geometry(mean, grad))


def exact_verdict(mean: np.ndarray, grad: np.ndarray, scale: float,
                  rtol: float = ZERO_BIAS_RTOL) -> tuple[str, float | None]:
    """"unbiased", "proportional" (with c) or "biased" for an exact E[g], within round-off of ``scale``.

    Unbiased: max|E[g] - grad J| <= rtol * scale (``rtol``: ZERO_BIAS_RTOL for float64, wider for a float32
    computation, ``verify.checks.precision``). Proportional: c = <E g, grad J> / |grad J|^2 > 0 and max|E[g] - c grad J|
    within the same allowance (times max(1, c)).

    >>> exact_verdict(np.array([0.5, -0.5]), np.array([1.0, -1.0]), 1.0)
    ('proportional', 0.5)
    """
    big = max(scale, float(np.abs(grad).max(initial=0.0)), float(np.abs(mean).max(initial=0.0)), 1e-300)
    tol = rtol * big
    if np.abs(mean - grad).max(initial=0.0) <= tol:
        return "unbiased", 1.0
    gg = float(grad @ grad)
    if np.abs(grad).max(initial=0.0) > tol and gg > 0:
        c = float(mean @ grad) / gg
        if c > 0 and np.abs(mean - c * grad).max(initial=0.0) <= tol * max(1.0, c):
            return "proportional", c
    return "biased", None


# --- the check ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class BatchCheck:
    """The outcome of a batch-level check (``check_batch_estimator``, ``verify.frameworks.*.check_loss``).

    Attributes:
      estimator, problem: names. batch_size, batches, seed, alpha, tolerance: the run's settings.
      verdict: "unbiased", "proportional", "biased" or "undecided" (a Monte Carlo run without the power to
        detect a relative bias of ``tolerance``; never a pass).
      method: "exact: per-episode", "exact: every batch" or "monte carlo".
      convention: "mean" or "sum" when the probe found a per-episode estimator (g(batch) = the mean / sum of the
        episodes' own values), else None (batch statistics, or not deterministic).
      grad: exact grad J in parameter space [d]; names: the components.
      sizes: E[g] at the checked batch size first, then (batch-level estimators) at a second one.
      c: the scale when the verdict is "proportional".
      matches: (catalog pitfall, c) whose exact mean is c times E[g]'s (exact per-episode runs only).
      p_unbiased, p_proportional: the Monte Carlo tests' p-values (None when exact).
      resolution: the relative bias (of max|grad J|) the Monte Carlo run detects with probability 0.999, or for
        "proportional"/"undecided" after a rejected "unbiased" test the detectable deviation from c grad J (relative
        to |c| max|grad J|); None when exact.
      reason: why the verdict is "undecided".
      reproduce: the call that repeats the check.
    """

    estimator: str
    problem: str
    verdict: str
    method: str
    convention: str | None
    batch_size: int
    batches: int
    seed: int
    alpha: float
    tolerance: float
    grad: np.ndarray
    names: tuple[str, ...]
    sizes: tuple[BatchSize, ...]
    c: float | None = None
    matches: tuple[tuple[str, float], ...] = ()
    p_unbiased: float | None = None
    p_proportional: float | None = None
    resolution: float | None = None
    reason: str = ""
    reproduce: str = ""
    n_trajectories: int | None = None
    extra: dict = field(default_factory=dict)
    precision: Precision = FLOAT64    # the floating type the estimate was computed in (``verify.checks.precision``)
    batches_needed: int | None = None   # Monte Carlo "undecided": about how many batches would decide

    @property
    def passed(self) -> bool:
        return self.verdict == "unbiased"

    @property
    def mean(self) -> np.ndarray:
        return self.sizes[0].mean

    @property
    def angle(self) -> float:
        return self.sizes[0].angle

    @property
    def relative_bias(self) -> float:
        return self.sizes[0].relative_bias

    @property
    def exact(self) -> bool:
        return self.method.startswith("exact")

    @property
    def worst(self) -> int:
        """The component where E[g] differs most from grad J (from c grad J when proportional)."""
        ref = self.grad * (self.c if self.verdict == "proportional" and self.c else 1.0)
        return int(np.argmax(np.abs(self.mean - ref)))

    def format(self) -> str:
        """The report: verdict and why, the worst component, the batch sizes, and how to reproduce it."""
        s0 = self.sizes[0]
        how = {"exact: per-episode": f"exact: per-episode ({self.convention} over the batch), enumerating "
                                     f"{self.n_trajectories} trajectories",
               "exact: every batch": f"exact: every batch of {self.batch_size} of {self.n_trajectories} "
                                     "trajectories enumerated",
               "monte carlo": f"Monte Carlo: {self.batches} batches of {self.batch_size} episodes, paired with "
                              f"{REFERENCE}"}[self.method]
        mean_word = "E[-grad loss]" if self.extra.get("loss") else "E[g]"
        head = {"unbiased": f"UNBIASED: {mean_word} = grad J",
                "proportional": f"PROPORTIONAL: {mean_word} = c grad J with c = {self.c:.6g} > 0 (same direction; "
                                "a learning-rate change)" if self.c else "PROPORTIONAL",
                "biased": f"BIASED: {mean_word} is not a positive multiple of grad J",
                "undecided": "UNDECIDED"}[self.verdict]
        lines = [f"{self.estimator} on {self.problem}, batch size {self.batch_size}: {head} ({how})"]
        if self.verdict == "undecided" and self.reason:
            lines.append(f"why undecided: {self.reason}")
        if self.precision.limited:
            lines.append(self.precision.describe(float(np.abs(self.grad).max(initial=0.0)) or None,
                                                 float(np.abs(self.mean - self.grad).max(initial=0.0))
                                                 if self.exact else None).replace(
                "of the problem's scale", "of the problem's scale (relative to max(|grad J|, returns x score))"))
        w = self.worst
        est = "" if s0.stderr is None else f" (standard error {s0.stderr[w]:.3g})"
        lines.append(f"{'worst component' if self.verdict != 'unbiased' else 'largest deviation'}: {self.names[w]}: "
                     f"exact grad J {self.grad[w]:.6g}, {mean_word} {s0.mean[w]:.6g}{est}")
        if self.verdict == "biased" and np.isfinite(s0.scale_c) and s0.scale_c < 0:
            lines.append(f"fix: {mean_word} points against grad J (c = {s0.scale_c:.3g} < 0), a sign error: "
                         + ("a loss is minimised, so return minus the surrogate, -(log pi(a|s) * G).sum()"
                            if self.extra.get("loss") else "an estimator returns +grad J (ascent direction)"))
        if self.verdict != "unbiased":
            lines.append(f"angle to grad J {s0.angle:.3g} deg, relative bias |E - grad J|/|grad J| = "
                         f"{s0.relative_bias:.3g}, best scale c = {s0.scale_c:.4g}, non-proportional part "
                         f"{s0.nonproportional:.3g} of |E|")
        if self.p_unbiased is not None:
            lines.append(f"tests (max |z|, Bonferroni, alpha = {self.alpha:g}): unbiased p = {self.p_unbiased:.3g}"
                         + ("" if self.p_proportional is None else f", proportional p = {self.p_proportional:.3g}")
                         + (f"; this run detects a relative bias of {self.resolution:.3g}"
                            if self.p_proportional is None or self.verdict == "biased" else
                            f"; this run detects a deviation from c grad J of {self.resolution:.3g} of |c grad J|")
                         + f" with probability {DETECT_POWER} (tolerance {self.tolerance:g})")
        from verify.checks.fixes import match_lines

        lines += match_lines([n for n, _ in self.matches], [c for _, c in self.matches])
        if len(self.sizes) > 1:
            parts = []
            for s in self.sizes:
                se = "" if s.stderr is None else " (estimated)"
                parts.append(f"B = {s.batch_size}: relative bias {s.relative_bias:.3g}, non-proportional "
                             f"{s.nonproportional:.3g}{se}")
            a, b = self.sizes[0], self.sizes[1]
            trend = ""
            if a.nonproportional > 0 and np.isfinite(b.nonproportional):
                ratio = b.nonproportional / a.nonproportional
                grow = b.batch_size / a.batch_size
                trend = (f"; the non-proportional part shrinks by {1 / ratio:.3g}x for a {grow:g}x larger batch"
                         if ratio < 1 else f"; it does not shrink ({ratio:.3g}x)")
            lines.append("batch size: " + "; ".join(parts) + trend)
        elif self.convention is not None:
            lines.append(f"per-episode ({self.convention}): {mean_word} does not depend on the batch size"
                         + (" beyond the factor B of a sum" if self.convention == "sum" else ""))
        lines.append(f"seed {self.seed}; reproduce: {self.reproduce}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"estimator": self.estimator, "problem": self.problem, "verdict": self.verdict,
                "passed": self.passed, "method": self.method, "convention": self.convention,
                "batch_size": self.batch_size, "batches": self.batches, "seed": self.seed, "alpha": self.alpha,
                "tolerance": self.tolerance, "grad": self.grad.tolist(), "mean": self.mean.tolist(),
                "names": list(self.names), "c": _fin(self.c), "angle_deg": _fin(self.angle),
                "relative_bias": _fin(self.relative_bias), "matches": [[n, c] for n, c in self.matches],
                "p_unbiased": self.p_unbiased, "p_proportional": self.p_proportional,
                "resolution": _fin(self.resolution), "reason": self.reason,
                "sizes": [s.to_json() for s in self.sizes], "reproduce": self.reproduce,
                "precision": self.precision.to_json(), "batches_needed": self.batches_needed}


def _plain(episodes: Episodes) -> Episodes:
    """The batch without enumeration weights, padded to its own longest episode."""
    T = int(episodes.lengths.max(initial=0))
    return Episodes(episodes.s_t[:, :T + 1], episodes.a_t[:, :T], episodes.r_t[:, :T], episodes.lengths,
                    episodes.mdp, episodes.policy, None)


def _close(a: np.ndarray, b: np.ndarray, size: float, rtol: float = ZERO_BIAS_RTOL) -> bool:
    return bool(np.abs(a - b).max(initial=0.0) <= rtol * max(size, 1e-300))


def _convention(estimate, batch: Episodes, full: np.ndarray, size: float,
                rtol: float = ZERO_BIAS_RTOL) -> str | None:
    """"mean" or "sum" when g(batch) is the mean or the sum of g of each of its episodes alone, else None."""
    singles = []
    for i in range(batch.n):
        with np.errstate(all="ignore"):
            try:
                g = estimate(_plain(batch.select([i])))
            except UsageError:
                return None             # e.g. a batch statistic that is undefined for one episode
        singles.append(g)
    singles = np.array(singles)
    if not np.isfinite(singles).all():
        return None
    size = max(size, float(np.abs(singles).max(initial=0.0)) * batch.n)
    if _close(full, singles.mean(axis=0), size, rtol):
        return "mean"
    if _close(full, singles.sum(axis=0), size, rtol):
        return "sum"
    return None


def _probe(estimate, target: Target, seed: int, enum: Episodes | None,
           rtol: float = ZERO_BIAS_RTOL) -> tuple[str | None, bool]:
    """(convention, deterministic): is g(batch) the mean or the sum of each episode's g alone?

    Probed on a sampled batch and, when the trajectories are enumerated, on one spread over their lengths (a
    sampled batch of equal lengths would hide a mean over the batch's timesteps).
    """
    rng = np.random.default_rng([seed, 7])
    # a compiled framework loss probes at its own batch size (one compiled shape fewer): ``estimate.probe_episodes``
    n = max(PROBE_EPISODES, int(getattr(estimate, "probe_episodes", PROBE_EPISODES)))
    batch = _plain(sample_episodes(target.problem.mdp, target.problem.policy, n, rng))
    full = estimate(batch)
    again = estimate(batch)
    size = max(float(np.abs(full).max(initial=0.0)), target.scale)
    if not _close(full, again, size):
        return None, False
    found = _convention(estimate, batch, full, size, rtol)
    if found is not None and enum is not None and enum.n > 1:
        order = np.argsort(enum.lengths, kind="stable")
        pick = np.unique(order[np.linspace(0, enum.n - 1, min(PROBE_EPISODES, enum.n)).round().astype(int)])
        spread = _plain(enum.select(pick))
        g = estimate(spread)
        if _convention(estimate, spread, g, max(float(np.abs(g).max(initial=0.0)), target.scale), rtol) != found:
            return None, True
    return found, True


def _exact_per_episode(estimate, enum: Episodes) -> np.ndarray:
    return sum(w * estimate(_plain(enum.select([i]))) for i, w in enumerate(enum.weights))


def _exact_batches(estimate, enum: Episodes, B: int) -> np.ndarray:
    w = enum.weights
    total = 0.0
    for idx in itertools.product(range(enum.n), repeat=B):
        total = total + float(np.prod(w[list(idx)])) * estimate(_plain(enum.select(list(idx))))
    return total


def _monte_carlo(estimate, target: Target, B: int, K: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K batches of B: the estimates Y [K, d] and the paired reference R [K, d]."""
    eps = sample_episodes(target.problem.mdp, target.problem.policy, B * K, rng)
    # The reference is per-episode: one call for all batches, then batch means.
    ref = get_estimator(REFERENCE).per_episode(eps).reshape(K, B, -1).mean(axis=1)
    R = target.to_params(ref)
    many = getattr(estimate, "many", None)
    if many is not None:
        # a compiled framework loss evaluates all K batches in a few calls (``verify.frameworks.jax``); it must
        # return what the loop below would, batch k being ``_plain(eps.select(slice(k B, (k + 1) B)))``
        return np.asarray(many(eps, B, K), dtype=float).reshape(K, target.d), R
    Y = np.empty((K, target.d))
    for k in range(K):
        Y[k] = estimate(_plain(eps.select(slice(k * B, (k + 1) * B))))
    return Y, R


def _resolution(test) -> float:
    """The largest bias the test detects with probability DETECT_POWER over the components it tests (those with a
    standard error; a constant component must match exactly, and its mismatch is a rejection, not a power
    question). inf when no component varies."""
    if test.undecided or not np.any(test.stderr > 0):
        return math.inf
    return float(detectable_bias(test, DETECT_POWER)[test.stderr > 0].max())


def _batches_for(K: int, *ratios: float) -> int | None:
    """Batches at which a detectable size now ``ratio`` times the one wanted shrinks to it (the standard error
    falls as 1/sqrt(K); the critical value does not depend on K): K max(ratio)^2, more than K. None when a ratio is
    infinite (no component allows a z-test yet, e.g. batch means too skewed): no number can be promised."""
    if not all(np.isfinite(r) for r in ratios):
        return None
    return max(K + 1, math.ceil(K * max(ratios) ** 2))


def _would(need: int | None, what: str) -> str:
    return (f"about {need} batches would {what}" if need is not None else
            "no component allows a z-test at this many batches (too few non-zero or too skewed batch means), so "
            "no number of batches can be promised; try several times more")


def _mc_verdict(Y, R, target: Target, alpha: float, tolerance: float) -> dict:
    g, K = target.grad, len(Y)
    d = g.size
    D = Y - R
    gmax = max(float(np.abs(g).max(initial=0.0)), 1e-300)
    # The tests' scale is grad J's (and the data's own), not the a-priori bound on returns (``target.scale``, for
    # round-off): the sample test's allowance for unseen rare values in constant components grows with it
    # (FrozenLake: max|r| H = 100 against |grad J| ~ 3e-3).
    moments_u = SampleMoments.of(D)
    test_u = consistency_test(moments_u, np.zeros(d), alpha=alpha, scale=gmax)
    res_u = _resolution(test_u) / gmax
    out = {"p_unbiased": float(test_u.p_value), "resolution": res_u, "mean": Y.mean(axis=0),
           "stderr": Y.std(axis=0, ddof=1) / np.sqrt(K)}
    gg = float(g @ g)
    if test_u.undecided:      # no component the test could use (no variance, or too few non-zero batch means)
        most = int(np.max(moments_u.nonzero, initial=0)) if moments_u.nonzero is not None else 0
        more = (f"use at least {math.ceil(K * MIN_NONZERO / most)} batches (the z-test needs {MIN_NONZERO} "
                f"non-zero differences in a component; the best has {most} in {K})" if 0 < most < MIN_NONZERO
                else "more batches will not help: no batch differs from the reference")
        return {**out, "verdict": "undecided", "batches_needed": None if most == 0 or most >= MIN_NONZERO else
                math.ceil(K * MIN_NONZERO / most),
                "reason": f"{test_u.reason}: no bias can be detected (tolerance {tolerance:g}); {more}"}
    if test_u.consistent:
        if res_u <= tolerance:
            return {**out, "verdict": "unbiased"}
        need = _batches_for(K, res_u / tolerance)
        return {**out, "verdict": "undecided", "batches_needed": need,
                "reason": f"the test detects only relative biases of {res_u:.3g} or more (tolerance {tolerance:g}); "
                          + _would(need, "detect the tolerance")}
    if gg == 0:
        return {**out, "verdict": "biased"}
    # Proportional? c from the data; the paired residual P(Y - c R) has mean zero when E[Y] = c grad J.
    proj = Y @ g / gg
    c = float(proj.mean())
    c_se = float(proj.std(ddof=1) / np.sqrt(K)) if K > 1 else math.inf
    out.update(c=c)
    zc = float(scipy_stats.norm.isf(alpha))
    if c + zc * c_se < 0:
        # The sign first, whatever the residual test can see: E[g] points against grad J (a wrong-sign loss),
        # which no positive step size turns into ascent.
        return {**out, "verdict": "biased", "negative": True}
    u = g / math.sqrt(gg)
    Z = Y - c * R
    Z = Z - np.outer(Z @ u, u)
    test_p = consistency_test(SampleMoments.of(Z), np.zeros(d), alpha=alpha, scale=gmax)
    res_p = _resolution(test_p) / (gmax * max(abs(c), 1e-300))
    out.update(p_proportional=float(test_p.p_value))
    if test_p.undecided:
        return {**out, "verdict": "undecided", "resolution": math.inf,
                "reason": f"E[g] differs from grad J (p = {test_u.p_value:.3g}), but the proportionality test has "
                          f"nothing to test ({test_p.reason}); more batches will not change that"}
    if not test_p.consistent:
        return {**out, "verdict": "biased"}
    # From here on the claim is about the direction of E[g]: the resolution is the residual test's, relative to
    # |c| max|grad J|.
    if c - zc * c_se > 0 and res_p <= tolerance:
        return {**out, "verdict": "proportional", "resolution": res_p}
    need = _batches_for(K, res_p / tolerance, zc * c_se / max(abs(c), 1e-300))
    return {**out, "verdict": "undecided", "resolution": res_p, "batches_needed": need,
            "reason": f"E[g] differs from grad J (p = {test_u.p_value:.3g}), but the run cannot tell proportional "
                      f"(c = {c:.3g} +- {c_se:.2g}) from biased (detects {res_p:.3g}, tolerance {tolerance:g}); "
                      + _would(need, "tell")}


def _catalog_matches(mean: np.ndarray, target: Target, enum: Episodes,
                     rtol: float = ZERO_BIAS_RTOL) -> tuple[tuple[str, float], ...]:
    """The catalog pitfalls (and known bugs) whose exact mean equals ``mean`` (or a multiple), on the run's own
    enumeration."""
    mdp, policy = target.problem.mdp, target.problem.policy
    from verify.checks.fixes import KNOWN_BUGS

    pitfalls = [e for e in (*ESTIMATORS, *KNOWN_BUGS) if not e.unbiased and not e.batch_dependent]
    found = []
    for name, m in exact_moments_all(pitfalls, mdp, policy, enumeration=enum).items():
        mp = target.to_params(m.mean.ravel())
        if exact_verdict(mp, target.grad, target.scale)[0] == "unbiased":
            continue                      # no bias on this MDP: it would "match" every unbiased estimator
        kind, c = exact_verdict(mean, mp, target.scale, rtol)
        if kind in ("unbiased", "proportional"):
            found.append((name, float(c)))
    return tuple(found)


def check_batches(estimate: Callable[[Episodes], np.ndarray], target: Target, *, name: str, batch_size: int,
                  batches: int, seed: int, alpha: float, tolerance: float, second_batch_size: int | None,
                  reproduce: str, extra: dict | None = None, precision: Precision = FLOAT64) -> BatchCheck:
    """The engine behind every batch-level check (module docstring): exact where it can, else Monte Carlo.

    Args:
      estimate: batch -> the gradient estimate in parameter space, float [d] (already validated by the caller,
        which raises its own error type for contract violations).
      target: the exact gradient and the problem.
      name: how reports name the estimator. batch_size, batches, seed, alpha, tolerance: the run's settings.
      second_batch_size: the other batch size for batch-level estimators (default 4 * batch_size; for exact
        runs the largest feasible size up to that).
      reproduce: the call that repeats the check. extra: presentation hints (``{"loss": True}``).
      precision: the floating type the estimate computes in (``verify.checks.precision``): its round-off is the exact
        verdicts' zero-bias tolerance.

    Returns:
      BatchCheck.
    """
    _check_settings(batch_size, batches, seed, alpha, tolerance, second_batch_size)
    mdp, policy = target.problem.mdp, target.problem.policy
    enum = try_enumerate(mdp, policy, max_trajectories=EXACT_CALLS)
    rtol = precision.rtol
    convention, deterministic = _probe(estimate, target, seed, enum, rtol)
    if not deterministic:
        enum = None
    common = dict(estimator=name, problem=mdp.name, batch_size=batch_size, seed=seed, alpha=alpha,
                  tolerance=tolerance, grad=target.grad, names=target.names, reproduce=reproduce,
                  convention=convention, extra=extra or {}, precision=precision)
    if enum is not None and convention is not None:
        mean1 = _exact_per_episode(estimate, enum)
        mean = mean1 * (batch_size if convention == "sum" else 1)
        verdict, c = exact_verdict(mean, target.grad, target.scale, rtol)
        matches = _catalog_matches(mean, target, enum, rtol) if verdict != "unbiased" else ()
        return BatchCheck(verdict=verdict, method="exact: per-episode", batches=0,
                          sizes=(_at_size(batch_size, 0, mean, None, target.grad),),
                          c=c if verdict == "proportional" else None, matches=matches,
                          n_trajectories=enum.n, **common)
    second = second_batch_size or 4 * batch_size
    if enum is not None and enum.n ** batch_size <= EXACT_CALLS:
        mean = _exact_batches(estimate, enum, batch_size)
        verdict, c = exact_verdict(mean, target.grad, target.scale, rtol)
        sizes = [_at_size(batch_size, 0, mean, None, target.grad)]
        B2 = second
        while B2 > batch_size and enum.n ** B2 > EXACT_SECOND_CALLS:
            B2 -= 1
        if B2 > batch_size:
            sizes.append(_at_size(B2, 0, _exact_batches(estimate, enum, B2), None, target.grad))
        return BatchCheck(verdict=verdict, method="exact: every batch", batches=0, sizes=tuple(sizes),
                          c=c if verdict == "proportional" else None, n_trajectories=enum.n, **common)
    rng = np.random.default_rng(seed)
    Y, R = _monte_carlo(estimate, target, batch_size, batches, rng)
    mc = _mc_verdict(Y, R, target, alpha, tolerance)
    sizes = [_at_size(batch_size, batches, mc["mean"], mc["stderr"], target.grad)]
    if convention is None:
        Y2, _ = _monte_carlo(estimate, target, second, batches, rng)
        sizes.append(_at_size(second, batches, Y2.mean(axis=0), Y2.std(axis=0, ddof=1) / np.sqrt(batches),
                              target.grad))
    return BatchCheck(verdict=mc["verdict"], method="monte carlo", batches=batches, sizes=tuple(sizes),
                      c=mc.get("c") if mc["verdict"] == "proportional" else None,
                      p_unbiased=mc["p_unbiased"], p_proportional=mc.get("p_proportional"),
                      resolution=mc["resolution"], reason=mc.get("reason", ""),
                      batches_needed=mc.get("batches_needed"), **common)


def _check_settings(batch_size, batches, seed, alpha, tolerance, second) -> None:
    positive_int(batch_size, "batch_size")
    positive_int(batches, "batches", least=2)
    positive_int(seed, "seed", least=0)
    if second is not None:
        positive_int(second, "second_batch_size", least=batch_size + 1)
    if not 0 < alpha < 1:
        raise UsageError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")
    if not 0 < tolerance:
        raise UsageError(f"tolerance must be positive, got {tolerance!r}")


# --- numpy batch estimators -------------------------------------------------------------------------------------

def check_batch_estimator(fn: Callable[[Episodes], np.ndarray], problem: Problem | TabularMDP | str | Path, *,
                          policy: Policy | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                          batches: int = DEFAULT_BATCHES, seed: int = 0, alpha: float = DEFAULT_ALPHA,
                          tolerance: float = DEFAULT_TOLERANCE, second_batch_size: int | None = None,
                          name: str | None = None) -> BatchCheck:
    r"""Check a numpy batch estimator ``fn(episodes) -> one estimate [*theta.shape] per batch``.

    Batch statistics are allowed: the batch of ``batch_size`` episodes is the i.i.d. unit. H0: E[fn(batch)] =
    grad J(theta) (module docstring for how E is obtained and the verdicts).

    Args:
      fn: ``verify.numerics.episodes.Episodes`` (the ``verify.checks.gradcheck`` contract's batch) -> array [*theta.shape].
      problem: a ``Problem``, a ``TabularMDP`` (uniform policy unless ``policy``) or an MDP file path.
      policy: the policy to differentiate, overriding the problem's.
      batch_size: episodes per batch, B. batches: Monte Carlo batches K.
      seed: seed of all sampling. alpha: level of the tests.
      tolerance: the relative bias (of max|grad J|) a Monte Carlo run must be able to detect to say "unbiased".
      second_batch_size: the second B for batch-level estimators (default 4 B).
      name: how the report names ``fn``.

    Returns:
      BatchCheck.

    Raises:
      EstimatorError: ``fn`` raised, or returned something that is not a finite array of theta's shape.
      UsageError: bad settings.

    >>> from verify.model.builtin import builtin_examples
    >>> from verify.numerics.episodes import reward_to_go, score_sums
    >>> def batch_mean(episodes):
    ...     return score_sums(episodes, reward_to_go(episodes)).mean(axis=0)
    >>> check_batch_estimator(batch_mean, builtin_examples()["chain"], batch_size=4).verdict
    'unbiased'
    """
    from verify.checks.contract import EstimatorError, as_problem, callable_argument, describe, name_of, problem_source

    given = problem
    problem = as_problem(problem, policy, who="check_batch_estimator")
    if not callable(fn):
        raise EstimatorError(f"a batch estimator must be a function episodes -> [*theta.shape], got {describe(fn)}")
    label = name or name_of(fn)
    shape = problem.policy.theta.shape
    dtypes: set = set()      # the floating types fn returned: float32 has its own round-off (verify.checks.precision)

    def estimate(episodes: Episodes) -> np.ndarray:
        try:
            out = fn(episodes)
        except Exception as exc:  # noqa: BLE001 - the user's code: reported, chained
            raise EstimatorError(f"batch estimator {label} raised {type(exc).__name__}: {exc} (on a batch of "
                                 f"{episodes.n} episodes)") from exc
        if np.isscalar(out) or not hasattr(out, "__array__"):
            raise EstimatorError(f"batch estimator {label} returned {describe(out)}, not an array of theta's shape "
                                 f"{shape}")
        raw = np.asarray(out)
        dtypes.add(raw.dtype if raw.dtype.kind == "f" else np.dtype(np.float64))
        arr = raw.astype(float, copy=False)
        if arr.shape != shape:
            hint = (": one estimate per episode; a batch estimator returns one per batch (or use "
                    "verify.checks.gradcheck.check_estimator)" if arr.shape == (episodes.n, *shape) else "")
            raise EstimatorError(f"batch estimator {label} returned shape {arr.shape}, expected theta's shape "
                                 f"{shape}{hint}")
        if not np.isfinite(arr).all():
            raise EstimatorError(f"batch estimator {label} returned non-finite values on a batch of {episodes.n} "
                                 "episodes")
        return arr.ravel()

    call = (f"check_batch_estimator({callable_argument(label)}, {problem_source(given, problem)}, "
            f"batch_size={batch_size}, batches={batches}, "
            f"seed={seed}, alpha={alpha!r})")
    from verify.checks.precision import precision_of

    _check_settings(batch_size, batches, seed, alpha, tolerance, second_batch_size)
    estimate(sample_episodes(problem.mdp, problem.policy, batch_size, np.random.default_rng([seed, 13])))
    precision = precision_of(dtypes, problem.mdp, problem.policy, source="the estimator returns {dtype}")
    return check_batches(estimate, theta_target(problem), name=label, batch_size=batch_size, batches=batches,
                         seed=seed, alpha=alpha, tolerance=tolerance, second_batch_size=second_batch_size,
                         reproduce=call, precision=precision)


def assert_batch_estimator_unbiased(fn, problem, **settings) -> BatchCheck:
    """``check_batch_estimator`` that raises ``AssertionError`` (with the report) unless the verdict is "unbiased"."""
    check = check_batch_estimator(fn, problem, **settings)
    if not check.passed:
        raise AssertionError(check.format())
    return check
