"""Monte Carlo runs: sample once, evaluate estimators, judge each against the exact gradient; ``check`` verdicts.

This module computes; ``verify.app.render`` presents and the CLI builds command lines.

``run_estimators`` streams the episodes chunk by chunk (memory stays bounded for any N), merges each estimator's
per-episode moments and runs ``stats.consistency_test`` against exact grad J. All estimators of one run see the
same episodes, so a row of ``pgverify check`` is reproduced exactly by ``pgverify mc FILE --estimator NAME`` with
the same episodes, seed and alpha.

Verdicts, strongest evidence first:

- **Exact.** When the trajectories can be enumerated (finite horizon, at most ``ENUMERATION_LIMIT``) every
  estimator's exact mean and covariance are known: the verdict is "biased" when the exact bias exceeds round-off,
  else "consistent". The Monte Carlo test (chi^2 with the exact covariance) is still run and shown.
- **Paired** (sampling only). On the same episodes, g - g_ref for a catalog control g_ref whose mean is grad J
  (``REFERENCES``: reward-to-go, the exact state-value baseline, the exact Q and advantage forms; the one with the
  smallest paired variance on the first chunk, skipping any equal to g there to round-off) has mean
  E[g] - grad J, and for an estimator close to correct a far smaller variance than g: H0: E[g - g_ref] = 0 by
  max-|z|, with the round-off floor of the exact test relative to the per-episode values.
- **Unpaired** (sampling only): H0: E[g] = grad J by max-|z| on g's sample variances.
  Both run, each at alpha / 2 (Bonferroni): "inconsistent" when either rejects (the result names which). With no
  rejection, "consistent" only when the run could see a bias of ``resolution`` x max |grad J| in every component
  by the better test there, and no paired difference sits where no test can look (``verify.checks.power``); else
  "undecided", with the episodes that would decide. Never a pass without power.

Power: every result carries the smallest bias it detects with probability DETECT_POWER, per component, in the
gradient's units (``detectable_bias``) and in per-episode standard deviations of g (``detectable_bias_sd``), and
the episodes needed to detect a given bias (``episodes_to_detect``). At DEFAULT_EPISODES = 20000 and alpha = 1e-3 an
effect of EFFECT_SIZE = 0.1 standard deviations is rejected with probability >= 0.999 for up to 64 parameters.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from verify.numerics.episodes import step_score_rows
from verify.errors import UsageError, positive_int
from verify.checks.estimators import ESTIMATORS, Estimator, get_estimator
from verify.numerics.exact import gradient
from verify.checks.moments import (ENUMERATION_LIMIT, ZERO_BIAS_RTOL, ExactMoments, exact_moments, magnitude,
                                   moments_bytes, try_enumerate)
from verify.checks.contract import step_weights
from verify.checks.crosscheck import GRADIENT_TOL, GradientCheck, exact_cross_check  # noqa: F401 (verify.mc's names)
from verify.model.io import current_limits, require_memory
from verify.model.labels import component_name
from verify.model.problem import Problem
from verify.numerics.shared import shared, sharing
from verify.numerics.sampler import PROCESS_BYTES, check_sampling_budget, chunk_size, iter_episode_chunks
from verify.checks.power import (
    DEFAULT_RESOLUTION,
    combined_detectable,
    episodes_for,
    rare_components,
    resolved,
    scaling_errors,
    structural,
)
from verify.checks.stats import (
    EXACT_RTOL,
    MIN_NONZERO,
    ConsistencyResult,
    SampleMoments,
    component_effect_size,
    consistency_test,
    detectable_bias,
    detectable_effect,
    effect_size,
    episodes_needed,
)
from verify.checks.trace import ConvergenceTrace, TraceRecorder
from verify.checks.budget import run_bytes

__all__ = [
    "COVARIANCES",
    "DEFAULT_RESOLUTION",
    "DEFAULT_ALPHA",
    "DEFAULT_EPISODES",
    "DETECT_FRACTION",
    "DETECT_POWER",
    "EFFECT_SIZE",
    "ENUMERATION_LIMIT",
    "GRADIENT_TOL",
    "REFERENCES",
    "CheckResult",
    "CheckRow",
    "GradientCheck",
    "McResult",
    "component_name",
    "exact_cross_check",
    "judge",
    "run_check",
    "run_estimators",
    "run_mc",
]

DEFAULT_EPISODES = 20_000
DEFAULT_ALPHA = 1e-3
EFFECT_SIZE = 0.1
DETECT_POWER = 0.999
DETECT_FRACTION = 0.01   # episodes_to_detect's default size: 1% of the largest |grad J| component
FULL_MOMENTS_MAX_D = 256   # beyond, sample moments keep the variances only (all max-|z| reads; see run_estimators)
COVARIANCES = ("auto", "exact", "sample")
# The paired test's controls, unbiased on every MDP: the pilot chunk picks the one closest to the estimator.
REFERENCES = ("reward_to_go", "baseline_value", "q_value", "advantage")
TRACE_COMPONENTS = 4   # components (largest |grad J|) whose own running variance a trace keeps


def _fin(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _arr(a) -> list | None:
    """An array as JSON: nested lists, non-finite entries as null."""
    if a is None:
        return None
    return np.vectorize(_fin, otypes=[object])(np.asarray(a, dtype=float)).tolist()


@dataclass(frozen=True, eq=False)
class McResult:
    """One estimator's Monte Carlo run on one problem, with its verdict and its power.

    Attributes:
      problem: the MDP's name; estimator: the catalog entry; episodes, seed, alpha, covariance: the run's settings.
      test: the unpaired consistency test of E[g] = grad J.
      moments: exact moments of the estimator, or None when the problem cannot be enumerated.
      detectable: the effect size (per-episode standard deviations) ``test`` rejects with probability DETECT_POWER.
      component: readable name of the decisive test's worst component.
      paired: the paired test of E[g - g_ref] = 0 (sampling only; None otherwise); reference: g_ref's name.
      chosen: which sampled test the verdict reports: the one that rejected (paired first), else the one with
        more power. With both, each runs at alpha / 2 (Bonferroni), and a bias is seen when either sees it.
      resolution: "consistent" needs the power to see a bias of resolution x max |grad J| in every component
        (``verify.checks.power``); otherwise the sampled verdict is "undecided".
    """

    problem: str
    estimator: Estimator
    episodes: int
    seed: int
    alpha: float
    test: ConsistencyResult
    moments: ExactMoments | None
    detectable: float
    component: str
    paired: ConsistencyResult | None = None
    reference: str | None = None
    chosen: str = "unpaired"
    covariance: str = "auto"
    resolution: float = DEFAULT_RESOLUTION
    namer: Callable[[tuple[int, ...]], str] | None = field(default=None, repr=False)
    trace: ConvergenceTrace | None = field(default=None, repr=False)   # run_estimators(trace=C): for the figures

    def name_of(self, index) -> str:
        """Readable name of a component (theta[s, a] with state and action names where known)."""
        index = tuple(int(i) for i in index)
        return self.namer(index) if self.namer else f"theta[{', '.join(map(str, index))}]"

    @property
    def detect_size(self) -> float:
        """The bias ``episodes_to_detect`` uses by default: DETECT_FRACTION of the largest |grad J| component."""
        return DETECT_FRACTION * float(np.abs(self.test.exact).max(initial=0.0))

    @property
    def sampled(self) -> ConsistencyResult:
        """The Monte Carlo test that decides when nothing can be enumerated (and is shown when something can)."""
        return self.paired if self.chosen == "paired" else self.test

    @property
    def decided_by(self) -> str:
        """"exact" (enumeration), "paired" or "unpaired"."""
        return "exact" if self.moments is not None else self.chosen

    @property
    def tests(self) -> tuple[ConsistencyResult, ...]:
        """The sampled tests of the run: the unpaired one, and the paired one when there is one."""
        return (self.test,) if self.paired is None else (self.test, self.paired)

    @property
    def verdict(self) -> str:
        """"biased" / "consistent" by the exact bias when enumerated; else "inconsistent" when a sampled test
        rejected, "consistent" when none did and the run had the power to see a bias of ``resolution`` x max
        |grad J| in every component with no rare difference left untested, else "undecided"."""
        if self.moments is not None:
            return "biased" if self.moments.biased else "consistent"
        if any(t.verdict == "inconsistent" for t in self.tests):
            return "inconsistent"
        return "undecided" if self.undecided_reason else "consistent"

    @property
    def rare(self):
        """``power.rare_components`` of the paired test: where g differs from the reference too rarely to test,
        and no other test sees a bias either."""
        blind = ~np.isfinite(self.detectable_bias)
        return [c for c in rare_components(self.paired, limit=None) if blind[c.index]][:3]

    @property
    def resolution_size(self) -> float:
        """The bias a decided sampled verdict must be able to see: resolution x max |grad J|."""
        return self.resolution * float(np.abs(self.test.exact).max(initial=0.0))

    @property
    def resolved(self) -> bool:
        """Every component's detectable bias is at most ``resolution_size`` (always True when enumerated)."""
        return self.moments is not None or resolved(self.detectable_bias_or_none, self.test.exact, self.resolution,
                                                    structural(self.tests, self.test.exact))

    @property
    def undecided_reason(self) -> str:
        """Why a sampled run that rejected nothing is not "consistent" ("" when it is, or when it rejected)."""
        if self.moments is not None or any(t.verdict == "inconsistent" for t in self.tests):
            return ""
        if all(t.undecided for t in self.tests):
            return self.sampled.reason
        rare = self.rare
        if rare:
            names = "; ".join(f"{self.name_of(c.index)} (differs in {c.episodes} of {c.n} episodes, mean "
                              f"difference {c.mean:.2g}; about {c.visits_needed} such episodes needed)" for c in rare)
            return (f"g differs from {self.reference} where the differences are too few or too one-sided to test "
                    f"(and no test sees a bias there): {names}: undecided there")
        if not self.resolved:
            b = np.where(structural(self.tests, self.test.exact), 0.0, self.detectable_bias_or_none)
            blind = int(np.count_nonzero(~np.isfinite(b)))
            worst = float(np.max(b[np.isfinite(b)], initial=0.0))
            what = (f"{blind} components have too few or too one-sided values to test" if blind else
                    f"the smallest bias it could see reaches {worst:.3g} in some component")
            return (f"no power to see a bias of {self.resolution:g} x max |grad J| = {self.resolution_size:.3g} in "
                    f"every component: {what}")
        return ""

    def episodes_to_resolve(self) -> int | None:
        """Episodes at which a run of this problem and estimator could decide: every component testable and a
        bias of ``resolution_size`` in any of them detected with probability DETECT_POWER (None: no estimate)."""
        if self.moments is not None:
            return None
        return episodes_for(self.tests, self.resolution_size, DETECT_POWER, structural(self.tests, self.test.exact))

    @property
    def scaling_error(self) -> tuple[float, float]:
        """``power.scaling_errors``: the smallest x with g -> (1 + x) g detected (whole gradient; its largest
        component alone)."""
        return scaling_errors(self.detectable_bias_or_none, self.test.exact)

    @property
    def mc_rejected(self) -> bool:
        return self.sampled.verdict == "inconsistent"

    @property
    def effect(self) -> float | None:
        """Exact effect size |bias| / std (Mahalanobis, or per component for max-|z|), or None without moments."""
        if self.moments is None:
            return None
        size = component_effect_size if self.test.test == "maxz" else effect_size
        return size(self.moments.bias, self.moments.cov, scale=self.moments.scale)

    @property
    def std(self) -> np.ndarray:
        """Per-episode standard deviation of g per component (exact when enumerated, else the sample's)."""
        if self.moments is not None:
            return self.moments.std
        return self.test.stderr * np.sqrt(self.test.n)

    @property
    def detectable_bias_or_none(self) -> np.ndarray | None:
        """``detectable_bias``, None when every sampled test is undecided."""
        return combined_detectable(self.tests, DETECT_POWER)

    @property
    def detectable_bias(self) -> np.ndarray:
        """Per component, the smallest |bias| the run's sampled tests detect with probability DETECT_POWER (the
        better of the paired and unpaired test there; theta's shape, gradient units; inf where no test sees it)."""
        b = self.detectable_bias_or_none
        return np.full(self.test.exact.shape, np.inf) if b is None else b

    @property
    def detectable_bias_sd(self) -> np.ndarray:
        """``detectable_bias`` in per-episode standard deviations of g (nan where g has none)."""
        sd = self.std
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(sd > 0, self.detectable_bias / np.where(sd > 0, sd, 1.0), np.nan)

    def episodes_to_detect(self, size: float | None = None) -> int | None:
        """Episodes at which a bias of ``size`` (gradient units; default DETECT_FRACTION of max |grad J|) in any
        component the sampled test can see is detected with probability DETECT_POWER; None without power."""
        size = self.detect_size if size is None else size
        best = None
        for t in self.tests:
            sd = np.where(t.informative, t.stderr, 0.0) * np.sqrt(t.n)    # excluded components claim no power
            if t.undecided or not size > 0 or not np.any(sd > 0):
                continue
            n = episodes_needed(size / float(sd.max()), max(t.dof, 1), t.alpha, DETECT_POWER, test=t.test)
            best = n if best is None else min(best, n)
        return best

    def to_json(self) -> dict:
        t, m, eff, s = self.test, self.moments, self.effect, self.sampled
        w = s.worst
        size = self.detect_size
        return {"problem": self.problem, "estimator": self.estimator.name, "unbiased": self.estimator.unbiased,
                "episodes": self.episodes, "seed": self.seed, "alpha": self.alpha, "covariance": self.covariance,
                "test": t.test, "statistic": _fin(t.statistic), "dof": t.dof, "p_value": t.p_value,
                "verdict": self.verdict, "decided_by": self.decided_by, "mc_verdict": s.verdict,
                "reason": s.reason, "excluded_components": [self.name_of(i) for i in np.argwhere(s.few)],
                "min_nonzero": MIN_NONZERO, "mean": t.mean.tolist(), "stderr": t.stderr.tolist(),
                "exact": t.exact.tolist(), "exact_mismatch": t.exact_mismatch,
                "worst": {"index": list(w), "name": self.component, "mean": float(t.mean[w]),
                          "exact": float(t.exact[w]), "stderr": float(t.stderr[w])},
                "paired": None if self.paired is None else {
                    "reference": self.reference, "chosen": self.chosen == "paired", **self.paired.to_json()},
                "exact_bias": None if m is None else m.bias.tolist(),
                "exact_tolerance": None if m is None else m.rtol * m.scale,
                "exact_std": None if m is None else m.std.tolist(),
                "effect_size": None if eff is None or np.isinf(eff) else eff,
                "effect_size_infinite": bool(eff is not None and np.isinf(eff)),
                "detectable_effect": self.detectable,
                "power": DETECT_POWER,
                "detectable_bias": _arr(self.detectable_bias),
                "detectable_bias_sd": _arr(self.detectable_bias_sd),
                "episodes_to_detect": {"bias": size, "episodes": self.episodes_to_detect(size)},
                "resolution": {"fraction": self.resolution, "bias": self.resolution_size, "resolved": self.resolved,
                               "episodes_needed": self.episodes_to_resolve(),
                               "undecided_reason": self.undecided_reason},
                "scaling_error": dict(zip(("whole_gradient", "largest_component"),
                                          (_fin(x) for x in self.scaling_error))),
                "rare_differences": [{"component": self.name_of(c.index), "episodes": c.episodes, "mean": c.mean,
                                      "visits_needed": c.visits_needed} for c in self.rare]}


def _check_settings(episodes, alpha, covariance) -> None:
    positive_int(episodes, "the number of episodes", least=2)
    if not 0 < alpha < 1:
        raise UsageError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    if covariance not in COVARIANCES:
        raise UsageError(f"unknown covariance {covariance!r}; choose one of {', '.join(COVARIANCES)}")


class _Paired:
    """Streams the moments of g - g_ref for one estimator; g_ref is chosen on the first chunk by the smallest
    summed variance of the difference (variances only, so the choice does not look at the bias)."""

    def __init__(self, name: str, scale: float = 0.0, factor: float = 1.0):
        self.name, self.ref, self.moments, self.ref_max_abs, self.scale = name, None, None, 0.0, scale
        self.factor = factor     # round-off relative to float64's (``verify.checks.precision``)

    def add(self, values, refs: dict, n: int) -> None:
        """Values dense [n, d] or as visited rows (``_Rows``); a dense one turns the others dense.

        A difference counts as non-zero (``SampleMoments.nonzero``) beyond the round-off of its own two values:
        EXACT_RTOL max(scale, |g|, |g_ref|) per entry."""
        atol = lambda a, b: self.factor * EXACT_RTOL * np.maximum(np.maximum(np.abs(a), np.abs(b)), self.scale)  # noqa
        # The pilot chunk reads each reference's difference up to three times (non-zero count, spread, moments):
        # computed once per reference (``verify.numerics.shared.recomputing`` turns this off for comparisons).
        memo: dict = {}
        once = lambda what, r, f: memo[what, id(r)] if (what, id(r)) in memo and sharing() else memo.setdefault(  # noqa
            (what, id(r)), f(r))     # (refs' values outlive the call: ids are not reused within it)
        if isinstance(values, _Rows) and all(isinstance(v, _Rows) for v in refs.values()):
            # One batch, one set of visited rows: the difference is the difference of the row values.
            diff = lambda r: once("moments", r, lambda r: values.moments(  # noqa: E731
                n, values.value - r.value, atol=atol(values.value, r.value)))
            spread = lambda r: float(diff(r).scatter.sum())  # noqa: E731
            ref_abs = lambda r: float(np.abs(r.value).max(initial=0.0))  # noqa: E731
        else:
            dense = lambda v: v.dense(n) if isinstance(v, _Rows) else v.reshape(n, -1)  # noqa: E731
            x = dense(values)
            # (only the [d] moments are kept: a difference [n, d] may be as big as the chunk's budget allows)
            diff = lambda r: once("moments", r, lambda r: SampleMoments.of(  # noqa: E731
                x - dense(r), diagonal=True, atol=atol(x, dense(r))))
            spread = lambda r: float((x - dense(r)).var(axis=0).sum())  # noqa: E731
            ref_abs = lambda r: float(np.abs(dense(r)).max(initial=0.0))  # noqa: E731
        if self.ref is None:
            # A reference identical to g (to round-off) on the pilot chunk leaves nothing to test: a user's copy
            # of reward-to-go is paired with the next closest control, as the catalog row is.
            options = {r: v for r, v in refs.items() if r != self.name}
            distinct = {r: v for r, v in options.items() if int(np.sum(diff(v).nonzero)) > 0} or options
            self.ref = min(distinct, key=lambda r: spread(distinct[r]))
        ref = refs[self.ref]
        self.ref_max_abs = max(self.ref_max_abs, ref_abs(ref))
        # The paired test is max-|z| on the difference's variances: the diagonal is all it reads.
        m = diff(ref)
        self.moments = m if self.moments is None else self.moments.merge(m)


@dataclass(frozen=True, eq=False)
class _Rows:
    """A tabular estimator's per-episode values [n, S, A] as their visited rows only (``episodes.step_score_rows``):
    row u is episode ``episode[u]``'s estimate for one state, at flat components ``component[u]`` = s A + a.

    Enough for the diagonal moments (``SampleMoments.of_entries``), which is all max-|z| reads; [n, S, A] itself
    (3 MB per episode at S = 10^5) is never built unless a dense consumer asks (``dense``).
    """

    component: np.ndarray   # [U, A]
    value: np.ndarray       # [U, A]
    episode: np.ndarray     # [U]
    d: int
    counts: np.ndarray | None = None   # [d] entries per component (the batch's, shared: ``_row_layout``)

    def moments(self, n: int, value: np.ndarray | None = None, atol=0.0) -> SampleMoments:
        v = self.value if value is None else value
        return SampleMoments.of_entries(n, self.d, self.component.ravel(), v.ravel(),
                                        atol=atol if np.ndim(atol) == 0 else np.broadcast_to(atol, v.shape).ravel(),
                                        counts=self.counts)

    def dense(self, n: int) -> np.ndarray:
        out = np.zeros((n, self.d))
        out[self.episode[:, None], self.component] = self.value
        return out


def _rows(estimator: Estimator, batch, policy) -> _Rows | None:
    """The estimator's values on ``batch`` as visited rows, or None when it has no per-step weights (a user's
    function) or the policy is not tabular."""
    weights = step_weights(estimator.per_episode)
    if weights is None:
        return None
    out = step_score_rows(batch, np.broadcast_to(weights(batch), batch.steps.t.shape))
    if out is None:
        return None
    _, G = out                   # the rows are the batch's visited cells: ``_row_layout``
    component, episode, counts = shared(batch, "row layout", _row_layout)
    return _Rows(component, G, episode, policy.probs.size, counts)


def _row_layout(batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the visited rows' values lie, the same for every estimator of the batch (``verify.numerics.shared``):
    (flat components [U, A], episode of each row [U], entries per component [S A])."""
    S, A = batch.policy.probs.shape
    rows = batch.steps.visited_cells[0]          # ``step_score_rows``' rows: every estimator's
    component = ((rows % S) * A)[:, None] + np.arange(A)
    out = component, rows // S, np.bincount(component.ravel(), minlength=S * A)
    for arr in out:
        arr.setflags(write=False)
    return out


def _power_score(result: ConsistencyResult) -> tuple[int, float]:
    """(components without power, summed detectable bias over the others), smaller = stronger: a test that sees
    more components wins; zero-variance components count their tolerance. Variances and counts only, no means."""
    b = detectable_bias(result, DETECT_POWER)
    blind = ~np.isfinite(b)
    return int(blind.sum()), float(np.sum(b[~blind]))


def run_estimators(problem: Problem, estimators, *, episodes: int = DEFAULT_EPISODES, seed: int = 0,
                   alpha: float = DEFAULT_ALPHA, covariance: str = "auto", chunk: int | None = None,
                   max_steps: int | None = None, sampler=None, paired: bool = True,
                   trace: int = 0, rtol: float = ZERO_BIAS_RTOL,
                   resolution: float = DEFAULT_RESOLUTION) -> list[McResult]:
    """Sample ``episodes`` episodes once and judge each estimator against exact grad J.

    Args:
      problem: MDP and policy.
      estimators: catalog entries (or names).
      episodes, seed: sample size and the seed of ``numpy.random.default_rng``.
      alpha: level of each test.
      covariance: "exact" (chi^2 with the enumerated covariance), "sample" (max-|z|) or "auto" (exact when
        the trajectories can be enumerated).
      chunk, max_steps: passed to ``sampler.iter_episode_chunks``.
      sampler: another episode source, ``sampler(mdp, policy, n, rng) -> iterable of Episodes batches`` (e.g.
        ``verify.frameworks.gym_sampler.gymnasium_sampler``: gymnasium's own env.step loop); default ``iter_episode_chunks``.
      trace: record a ``verify.trace.ConvergenceTrace`` at about this many episode counts in each result
        (0: none); the figures draw it.
      paired: also run the paired test when nothing is enumerated (the references are evaluated on the same
        episodes); the two tests then run at alpha / 2 each.
      rtol: the round-off tolerance relative to the problem's scale (``verify.checks.precision``: float64's by default,
        wider for estimators computed in float32): the exact zero-bias tolerance, and the tests' round-off floor.
      resolution: a sampled "consistent" needs the power to see a bias of resolution x max |grad J| in every
        component (``McResult.resolution``).

    Returns:
      One McResult per estimator, in the given order.

    Raises:
      UsageError: bad settings, unknown estimator, or covariance "exact" on a problem that cannot be enumerated.
    """
    _check_settings(episodes, alpha, covariance)
    if not 0 < resolution < float("inf"):
        raise UsageError(f"the resolution must be a positive fraction of max |grad J|, got {resolution!r}")
    estimators = [get_estimator(e) if isinstance(e, str) else e for e in estimators]
    mdp, policy = problem.mdp, problem.policy
    # Estimators without visited rows hold [N, S, A] arrays: the chunk shrinks when the memory limit needs it.
    dense = any(getattr(e.per_episode, "weights", None) is None for e in estimators)
    check_sampling_budget(problem, episodes, max_steps=max_steps, dense=dense)   # the API's budget, not only the CLI's
    require_memory(run_bytes(problem, episodes, estimators, paired=paired, max_steps=max_steps, dense=dense),
                   f"the Monte Carlo run ({episodes} episodes, {mdp.n_states} states, {policy.theta.size} parameters)")
    if chunk is None and sampler is None:
        chunk = chunk_size(mdp, max_steps=max_steps, dense=dense)
    grad = gradient(mdp, policy).grad
    enum = _enumeration(mdp, policy, covariance, len(estimators))
    moments = {} if enum is None else {
        e.name: exact_moments(e, mdp, policy, enumeration=enum, grad=grad, rtol=rtol) for e in estimators}
    # Exact beats sampled: with an enumeration the paired test could only repeat a decided verdict.
    # A coarser precision widens the tests' round-off floor (EXACT_RTOL of the scale) by the same factor.
    factor = max(1.0, rtol / ZERO_BIAS_RTOL)
    scale = magnitude(mdp, policy) * factor
    pairs = ({e.name: _Paired(e.name, scale, factor) for e in estimators if not e.batch_dependent}
             if enum is None and paired else {})
    refs = [get_estimator(r) for r in REFERENCES] if pairs else []
    # Running means at ``trace`` log-spaced episode counts, kept for the components of largest |grad J|.
    top = np.argsort(-np.abs(grad).ravel(), kind="stable")[:TRACE_COMPONENTS]
    traces = {e.name: TraceRecorder(episodes, shape=policy.theta.shape, components=top, points=trace)
              for e in estimators} if trace else {}
    # Only what the test reads: without an enumeration the test is max-|z| on the variances, so beyond
    # FULL_MOMENTS_MAX_D parameters the moments keep the diagonal (O(N d), not O(N d^2)) and tabular estimators
    # stream their visited rows instead of [N, S, A] (Taxi: 3000 parameters; S = 10^5: 4 10^5).
    diagonal = enum is None and policy.theta.size > FULL_MOMENTS_MAX_D
    by_rows = diagonal and not trace
    rng = np.random.default_rng(seed)
    batches = (iter_episode_chunks(mdp, policy, episodes, rng, chunk=chunk, max_steps=max_steps) if sampler is None
               else sampler(mdp, policy, episodes, rng))
    evaluate = functools.partial(_evaluate, policy=policy, by_rows=by_rows)
    acc = _accumulate(batches, estimators, evaluate, pairs, refs, traces, diagonal=diagonal, scale=scale)
    results = []
    for e in estimators:
        mom = moments.get(e.name)
        # Two tests on one sample: each at alpha / 2, so that "either rejects" keeps the level alpha.
        level = alpha / 2 if e.name in pairs else alpha
        test = consistency_test(acc[e.name], grad, alpha=level, cov=None if mom is None else mom.cov, scale=scale)
        exact_var = _exact_variance(e, problem, test, level) if mom is None else None
        if exact_var is not None:
            test = consistency_test(acc[e.name], grad, alpha=level, scale=scale, variance=exact_var)
        detect = detectable_effect(episodes, max(test.dof, 1), level, DETECT_POWER, test=test.test)
        ptest, ref, chosen = _paired_test(test, pairs.get(e.name), acc[e.name], grad, level, scale, factor)
        worst = (ptest if chosen == "paired" else test).worst
        results.append(McResult(mdp.name, e, episodes, seed, alpha, test, mom, detect, component_name(problem, worst),
                                ptest, ref, chosen, covariance, resolution, functools.partial(component_name, problem),
                                traces[e.name].result() if trace else None))
    return results


def _exact_variance(e: Estimator, problem: Problem, test: ConsistencyResult, level: float) -> np.ndarray | None:
    """Exact variances for the components a sampled max-|z| test could reject by (``verify.checks.variance``), nan
    elsewhere; None when there are none, or no DP applies, or the DP's mean disagrees with grad J.

    The candidates are the tested components whose sample |z| reaches half the critical value: the DP's work is
    proportional to their states (a few under H0), not to all of theta. The others keep the sample's sigma and
    cannot reject (their |z| is below half the critical value), so the test rejects only where the exact sigma
    does: its level is at most that of the test with every sigma exact.
    """
    if test.test != "maxz" or test.undecided or test.exact_mismatch or test.stderr.ndim != 2:
        return None
    from verify.checks.stats import special

    crit = float(-special.ndtri(level / (2 * max(test.dof, 1))))
    with np.errstate(divide="ignore", invalid="ignore"):
        candidate = test.informative & (np.abs(test.z) >= crit / 2)
    if not candidate.any():
        return None
    from verify.checks.variance import exact_variance

    res = exact_variance(e, problem.mdp, problem.policy, states=np.flatnonzero(candidate.any(axis=1)))
    if res is None or not res.ok or res.variance.shape != candidate.shape:
        return None
    return np.where(candidate, res.variance, np.nan)


def _enumeration(mdp, policy, covariance: str, n_estimators: int = 1):
    """The trajectory enumeration the exact covariance needs, or None (sample covariance).

    With "auto", an enumeration whose exact moments would not fit the memory limit (a [d, d] covariance per
    estimator: 20 001 parameters are 3.2 GB each) is not used: the sampled test needs O(N d) instead.
    """
    enum = None if covariance == "sample" else try_enumerate(mdp, policy, max_trajectories=ENUMERATION_LIMIT)
    if covariance == "exact" and enum is None:
        raise UsageError("--covariance exact needs trajectory enumeration (a finite horizon and at most "
                         f"{ENUMERATION_LIMIT} trajectories); use --covariance sample")
    if enum is not None and covariance == "auto":
        need = moments_bytes(enum.n, policy.theta.size, n_estimators)
        if need > current_limits().max_memory - PROCESS_BYTES:
            return None
    return enum


def _evaluate(e: Estimator, batch, *, policy, by_rows: bool):
    """The estimator's per-episode values on ``batch``: visited rows where possible, else [N, *theta.shape]."""
    rows = _rows(e, batch, policy) if by_rows else None
    if rows is not None:
        return rows
    x = np.asarray(e.per_episode(batch), dtype=float)
    if x.shape != (batch.n, *policy.theta.shape):
        raise UsageError(f"estimator {e.name} returned shape {x.shape}, expected "
                         f"{(batch.n, *policy.theta.shape)} = [N, *theta.shape]")
    return x


def _accumulate(batches, estimators, evaluate, pairs: dict, refs: list, traces: dict, *, diagonal: bool,
                scale: float) -> dict[str, SampleMoments]:
    """Streams the batches once: each estimator's moments, its trace and its paired differences.

    Values live one batch at a time, so memory does not grow with the number of episodes.
    """
    acc: dict[str, SampleMoments] = {}
    for batch in batches:
        values = {}
        for e in estimators:
            x = values[e.name] = evaluate(e, batch)
            # Values within round-off of the problem's scale are zeros for the count of non-zero values.
            m = (x.moments(batch.n, atol=EXACT_RTOL * scale) if isinstance(x, _Rows) else
                 SampleMoments.of(x, diagonal=diagonal, atol=EXACT_RTOL * scale))
            acc[e.name] = m if e.name not in acc else acc[e.name].merge(m)
            if traces:
                traces[e.name].add(x)
        needed = {p.ref for p in pairs.values()}
        ref_values = {r.name: values[r.name] if r.name in values else evaluate(r, batch)
                      for r in refs if None in needed or r.name in needed}
        for name, p in pairs.items():
            p.add(values[name], ref_values, batch.n)
        del values, ref_values
    return acc


def _paired_test(test: ConsistencyResult, p: _Paired | None, sample: SampleMoments, grad: np.ndarray, alpha: float,
                 scale: float, factor: float = 1.0) -> tuple[ConsistencyResult | None, str | None, str]:
    """(paired test or None, its reference, "paired" or "unpaired": which test decides the verdict)."""
    if p is None:
        return None, None, "unpaired"
    # Round-off of a per-episode difference is relative to the per-episode values, not to grad J.
    floor = max(scale, factor * sample.max_abs, factor * p.ref_max_abs)
    ptest = consistency_test(p.moments, np.zeros_like(grad), alpha=alpha, scale=floor, diagonal=True)
    # The test that rejected is the one the verdict reports (paired first: it names the reference); with no
    # rejection, the more powerful one. Either way both were run at alpha / 2, so the choice costs no level.
    if ptest.verdict == "inconsistent" or test.verdict == "inconsistent":
        return ptest, p.ref, "paired" if ptest.verdict == "inconsistent" else "unpaired"
    chosen = "paired" if not ptest.undecided and (test.undecided or _power_score(ptest) < _power_score(test)) \
        else "unpaired"
    return ptest, p.ref, chosen


def run_mc(problem: Problem, estimator: str | Estimator, **settings) -> McResult:
    """``run_estimators`` for one estimator (same settings)."""
    return run_estimators(problem, [estimator], **settings)[0]


# --- check: every estimator on one problem ------------------------------------------------------------------------

STATUSES = ("passed", "failed", "undecided")


class StatusRow:
    """The two questions every report row answers from its ``status`` (one of ``STATUSES``); "undecided" is never
    counted as passed."""

    status: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def undecided(self) -> bool:
        return self.status == "undecided"


@dataclass(frozen=True, eq=False)
class CheckRow(StatusRow):
    """One estimator in ``check``: its run, what was expected, what happened, and the row's status.

    status: "passed", "failed" or "undecided" (the run could not decide; never counted as passed).
    """

    mc: McResult
    expected: str
    outcome: str
    status: str
    note: str = ""     # why the expectation differs from the catalog's claim on this problem (``verify.checks.equivalence``)

    def to_json(self) -> dict:
        return {**self.mc.to_json(), "expected": self.expected, "outcome": self.outcome, "status": self.status,
                "passed": self.passed, "note": self.note}


def judge(r: McResult, mdp=None) -> CheckRow:
    """What a run says about a catalog estimator whose claim (unbiased or a pitfall) is ``r.estimator.unbiased``.

    With exact moments the exact bias decides ("biased (exact bias ...)", "caught" when the Monte Carlo test also
    rejected, "consistent", "consistent (false alarm)" when it rejected an estimator whose exact bias is zero).
    Without, the sampled test decides; a pitfall it does not catch, or any row it cannot decide, is "undecided".
    A pitfall that equals an unbiased estimator on ``mdp`` (``verify.checks.equivalence``: gamma = 1, horizon null, ...) is
    expected "no bias here" and judged as that estimator.
    """
    rejected = r.mc_rejected
    equivalence = None
    if mdp is not None and not r.estimator.unbiased:
        from verify.checks.equivalence import structural_equivalence

        equivalence = structural_equivalence(r.estimator.name, mdp)
    unbiased = r.estimator.unbiased or equivalence is not None
    note = "" if equivalence is None else equivalence.describe()
    expected = "consistent" if r.estimator.unbiased else "no bias here" if unbiased else "biased"
    if r.moments is not None:
        if r.moments.biased:
            size = f"exact bias {np.abs(r.moments.bias).max():.2g}"
            if unbiased:
                return CheckRow(r, expected, f"BIASED ({size})", "failed", note)
            return CheckRow(r, expected, "caught" if rejected else f"biased ({size})", "passed", note)
        if not r.estimator.unbiased:
            expected = "no bias here"
        return CheckRow(r, expected, "consistent (false alarm)" if rejected else "consistent", "passed", note)
    v = r.verdict
    if v == "undecided":
        return CheckRow(r, expected, "undecided", "undecided", note)
    if unbiased:
        return CheckRow(r, expected, "consistent" if v == "consistent" else "INCONSISTENT",
                        "passed" if v == "consistent" else "failed", note)
    return CheckRow(r, expected, "caught" if rejected else "not caught (bias unknown)",
                    "passed" if rejected else "undecided", note)


@dataclass(frozen=True, eq=False)
class CheckResult:
    """``pgverify check``: the exact-gradient cross-check and every estimator on one problem."""

    problem: str
    gradients: GradientCheck
    rows: list[CheckRow]

    @functools.cached_property
    def self_check(self):
        """The false-alarm count of the rows with exact bias zero against its binomial law
        (``verify.checks.selfcheck``): a check that fails when the Monte Carlo path itself is broken."""
        from verify.checks.selfcheck import false_alarm_check

        return false_alarm_check(self.rows)

    @property
    def passed(self) -> bool:
        """Nothing failed (undecided rows are not failures, and are not counted as passed either)."""
        return bool(self.gradients.passed and self.self_check.passed
                    and not any(r.status == "failed" for r in self.rows))

    @property
    def summary(self) -> dict:
        # the self-check is a check only when it has tests to count (rows with exact bias zero)
        statuses = ["passed" if self.gradients.passed else "failed", *(r.status for r in self.rows),
                    *(["passed" if self.self_check.passed else "failed"] if self.self_check.tests else [])]
        return {"checks": len(statuses), **{s: statuses.count(s) for s in STATUSES}}

    def to_json(self) -> dict:
        return {"problem": self.problem, "passed": self.passed, "summary": self.summary,
                "gradients": self.gradients.to_json(), "estimators": [r.to_json() for r in self.rows],
                "self_check": self.self_check.to_json()}


def run_check(problem: Problem, estimators=ESTIMATORS, **settings) -> CheckResult:
    """Exact gradients by every method vs finite differences, then ``estimators`` (the catalog) on one sample."""
    return CheckResult(problem.mdp.name, exact_cross_check(problem),
                       [judge(r, problem.mdp) for r in run_estimators(problem, estimators, **settings)])
