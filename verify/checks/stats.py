"""Is a Monte Carlo mean consistent with the exact gradient? A multivariate test that survives singular covariances.

For N i.i.d. per-episode estimates g_n with mean xbar and covariance Sigma, H0: E[g] = grad J.

- Support. Sigma = U diag(lambda) U^T; directions with lambda <= rtol * d * lambda_max form the null space, r is the
  rank. With the exact covariance every g_n has the same projection onto the null space, so there xbar must equal
  grad J *exactly*, up to float round-off (1e-9 of the problem's scale) plus six standard errors of the largest
  variance that was declared zero. A mismatch there is decisive: p = 0. (Tabular softmax scores sum to zero over
  actions, so every tabular problem has a null space.)
  With the sample covariance, a direction can look constant only because its rare values were not drawn (sparse
  rewards: on FrozenLake 8x8 ~30 of 20000 episodes reach the goal, so the sample covariance has rank ~30). If a
  value other than the constant had probability p, all N draws would miss it with probability (1 - p)^N, so
  p <= -ln(alpha) / N with confidence 1 - alpha, and the mean can differ from the constant by p times the size of
  such values. That size is unknown; the largest |g| seen in any component, doubled, stands in for it (a
  heuristic), so the allowance adds (-ln(alpha) / N) * 2 max|g|.
- Range, exact covariance (known by enumeration): with y = U_r^T (xbar - grad J), T^2 = N sum_i y_i^2 / lambda_i
  ~ chi^2_r ("chi2").
- Range, sample covariance: the default is the max-|z| test ("maxz"): z_i = (xbar_i - grad J_i) / (s_i / sqrt N)
  over the k components with s_i > 0, p = min(1, k * 2 P(t_{N-1} > max |z_i|)) (Bonferroni, a union-intersection
  test; its level is at most alpha whatever the correlations). Hotelling's (N - r) / (r (N - 1)) T^2 ~ F(r, N - r)
  ("hotelling", ``sample_test="hotelling"``) is more powerful for biases spread over many components, but it
  inverts the sample covariance, and with sparse rewards the smallest eigenvalues are estimated from a handful of
  rare episodes and come out far too small: on FrozenLake 4x4 (theta = 0, 4000 episodes) it rejected the unbiased
  reward-to-go estimator in 6 of 8 seeds at alpha = 1e-3, where max-|z| rejected 0 of 60 (5 of 60 at 0.05).
- Skewed values (max-|z| on a sample: the tail rule). The Edgeworth expansion of a studentised mean puts the
  two-sided tail at z at the t tail times 1 + R, R = gamma^2 (z^4 + 2 z^2 - 3) / (18 N) z phi(z) / Phi_bar(z)
  (``tail_ratio``). A component is z-tested only when R <= TAIL_SLACK = 2 at the critical value (one-sided rare
  values: k equal ones give R ~ z^6 / (18 k)), and its p-value is multiplied by its own 1 + R at the observed z;
  the others join the excluded components below. On the 10^4-state gridworld a component with 32 one-sided values
  (R ~ 50) had rejected correct estimators at z = 6-9 under the count rule alone.
- Few non-zero values (max-|z| on a sample). A component whose per-episode values are non-zero (beyond the
  round-off level the caller gives ``SampleMoments``) in only k of the N episodes has a mean made of k values; with
  k = 1 its z is sign(v) - grad J_i N / |v| whatever the estimator, so the t reference does not hold (on a
  10^4-state gridworld unbiased estimators reached z = 330). Berry-Esseen cannot justify the far tail at any
  practical k: its bound on |F - Phi| is absolute, 0.48 rho / (sigma^3 sqrt k) ~ 0.09 at k = 30, while max-|z|
  reads tail probabilities of alpha / m. So the rule is a conservative count, MIN_NONZERO = 30 (where a t-test on
  skewed data is conventionally trusted), and its level is checked by calibration (tests/test_stats.py, the sparse
  chain; docs/verdicts.md). Components under it are left out of the z-test (``excluded``) and claim no power
  (``detectable_bias`` = inf). They keep the zero-variance check's bound: a non-zero value of probability p is
  drawn k ~ Binomial(N, p) times, so p <= p_up(k) (Clopper-Pearson at level alpha / m_excluded), and
  |E g_i| <= p_up 2 max|g| (the same heuristic size); an exact value beyond it is decisive (p = 0).
- Exact per-component variances (``variance=``, max-|z| only; ``verify.checks.variance`` computes them by dynamic
  programming for the catalog estimators on tabular problems of moderate size). The z of a component that varies
  in the sample is then (xbar_i - exact_i) / (sigma_i / sqrt N) with the exact sigma_i: a value v of probability p
  that the sample missed moves the mean by p v while sigma_i >= v sqrt(p), so it moves z by at most sqrt(p N) (< 1
  for p < 1 / N). With the sample's s_i a sample that missed the tail shrinks its own yardstick: on Taxi-v4 that
  made the upper tail of z twice the lower (docs/verdicts.md). Which components are tested (the count and tail
  rules) is still the sample's.
- Verdict "inconsistent" when p <= alpha; "undecided" when the sample covariance has no component above round-off
  (every estimate the same), or every component that varies was left out for too few non-zero values: a test that
  could not have rejected is never a pass.

Power: under a bias b the chi^2 / Hotelling statistic is non-central with lambda = N delta^2, delta =
sqrt(b^T Sigma^+ b) the effect size (Mahalanobis distance in per-episode standard deviations; infinite if b leaves
the support). For max-|z| the effect size is the largest per-component one, max_i |b_i| / sigma_i, and the power
is at least that of its single z-test at level alpha / k. ``detectable_effect`` inverts either;
``detectable_bias`` turns it into gradient units per component (delta* sigma_i: for chi^2 an upper bound, since
a bias along e_i has Mahalanobis size |b_i| sqrt(Sigma^+_ii) >= |b_i| / sigma_i), and ``episodes_needed`` gives
the sample size at which a given effect is detected (the non-centrality N delta^2 needed does not depend on N).
``calibration`` checks a rejection count against alpha with
``scipy.stats.binomtest``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from verify._lazy import LazyModule
from verify.errors import NumericalError, UsageError

# scipy.stats costs a second of CPU to import, scipy.optimize half of one: the max-|z| path (what mc runs without an
# enumeration) uses only scipy.special's distribution functions, the very ones scipy.stats calls (same bits).
special, stats = LazyModule("scipy.special"), LazyModule("scipy.stats")

__all__ = ["Calibration", "ConsistencyResult", "SAMPLE_TESTS", "SampleMoments", "calibration", "component_effect_size",
           "consistency_test", "detectable_bias", "detectable_effect", "effect_size", "episodes_needed", "power",
           "support", "tail_ratio"]

RANK_RTOL = 1e-12     # relative eigenvalue cut-off (times d) for the covariance's null space
EXACT_RTOL = 1e-9     # round-off allowance, relative to the problem's scale, in zero-variance directions
NULL_SIGMAS = 6.0     # slack for a genuine variance that fell under the cut-off (two-sided 2e-9 false alarm)
MIN_NONZERO = 30      # max-|z| tests a component only with at least this many non-zero values (module docstring)
TAIL_SLACK = 2.0      # the tail rule: z-test a component only where skewness at most triples the tail (tail_ratio)


@dataclass(frozen=True, eq=False)
class SampleMoments:
    """Count, mean and centred scatter of flattened per-episode values; mergeable, so batches can stream.

    >>> x = np.arange(10.0).reshape(5, 2)
    >>> m = SampleMoments.of(x[:2]).merge(SampleMoments.of(x[2:]))
    >>> m.n, m.mean.tolist(), np.allclose(m.cov, np.cov(x.T))
    (5, [4.0, 5.0], True)
    """

    n: int
    mean: np.ndarray     # [d]
    scatter: np.ndarray  # [d, d] = sum_n (x_n - mean)(x_n - mean)^T, or only its diagonal [d] (``diagonal``)
    max_abs: float = 0.0  # largest |x_n,i| seen
    nonzero: np.ndarray | None = None   # [d] per component, how many x_n,i exceed the round-off level ``atol``
    power_sums: np.ndarray | None = None  # [2, d]: sum_n x_n,i^3 and sum_n x_n,i^4 (the tail rule's skewness)

    @classmethod
    def of(cls, x: np.ndarray, *, diagonal: bool = False, atol=0.0) -> "SampleMoments":
        """From samples x [N, *shape] (flattened to [N, d]); ``diagonal`` keeps only the variances: O(N d), not
        O(N d^2) (all that max-|z| needs; Taxi, d = 3000: the full scatter cost seconds per chunk). ``atol``
        (a number, or an array broadcast against x) is the round-off level under which a value counts as zero
        in ``nonzero``."""
        x = np.asarray(x, dtype=float).reshape(len(x), -1)
        mean = x.mean(axis=0)
        xc = x - mean
        scatter = np.einsum("ni,ni->i", xc, xc) if diagonal else xc.T @ xc
        atol = np.asarray(atol, dtype=float)
        nonzero = np.count_nonzero(np.abs(x) > (atol.reshape(len(x), -1) if atol.ndim else atol), axis=0)
        x2 = x * x
        sums = np.stack([np.einsum("ni,ni->i", x2, x), np.einsum("ni,ni->i", x2, x2)])
        return cls(len(x), mean, scatter, float(np.abs(x).max(initial=0.0)), nonzero, sums)

    @classmethod
    def of_entries(cls, n: int, d: int, component: np.ndarray, value: np.ndarray, *, atol=0.0,
                   counts: np.ndarray | None = None) -> "SampleMoments":
        """Diagonal moments of n values in R^d given by their non-zero entries (at most one per episode and
        component): ``component`` [K] in 0..d-1, ``value`` [K]; every other entry is 0. O(K + d) work.
        ``atol`` (a number or [K]) as in ``of``; ``counts``: ``bincount(component, minlength=d)`` when the caller
        has it (every estimator of a batch has the same components: ``verify.checks.mc`` counts them once).

        The scatter is centred exactly: sum over the given entries of (x - mean)^2 plus mean^2 for each zero.

        >>> x = np.array([[1.0, 0.0], [0.0, 0.0], [3.0, 2.0]])
        >>> m = SampleMoments.of_entries(3, 2, np.array([0, 0, 1]), np.array([1.0, 3.0, 2.0]))
        >>> bool(np.allclose(m.scatter, SampleMoments.of(x, diagonal=True).scatter)), m.mean.tolist()
        (True, [1.3333333333333333, 0.6666666666666666])
        """
        component = np.asarray(component, dtype=np.intp)
        value = np.asarray(value, dtype=float)
        mean = np.bincount(component, weights=value, minlength=d) / n
        dev = value - mean[component]
        given = np.bincount(component, minlength=d) if counts is None else counts
        zeros = n - given
        scatter = np.bincount(component, weights=dev * dev, minlength=d) + zeros * mean * mean
        # the given entries less those within round-off: the latter are few (a score row is rarely exactly 0), so
        # counting them is cheaper than gathering all the others
        nonzero = given - np.bincount(component[~(np.abs(value) > np.asarray(atol, dtype=float).ravel())], minlength=d)
        v2 = value * value
        sums = np.stack([np.bincount(component, weights=v2 * value, minlength=d),
                         np.bincount(component, weights=v2 * v2, minlength=d)])
        return cls(int(n), mean, scatter, float(np.abs(value).max(initial=0.0)), nonzero, sums)

    @property
    def diagonal(self) -> bool:
        """Whether only the variances (the scatter's diagonal) are kept."""
        return self.scatter.ndim == 1

    def merge(self, other: "SampleMoments") -> "SampleMoments":
        """Moments of the union (Chan, Golub and LeVeque's pairwise update)."""
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        if self.diagonal != other.diagonal:
            raise UsageError("cannot merge diagonal-only sample moments with full ones")
        outer = delta * delta if self.diagonal else np.outer(delta, delta)
        scatter = self.scatter + other.scatter + outer * (self.n * other.n / n)
        nonzero = None if self.nonzero is None or other.nonzero is None else self.nonzero + other.nonzero
        sums = None if self.power_sums is None or other.power_sums is None else self.power_sums + other.power_sums
        return SampleMoments(n, mean, scatter, max(self.max_abs, other.max_abs), nonzero, sums)

    def skewness(self) -> np.ndarray | None:
        """Per component, the sample skewness m3 / m2^(3/2) (0 where the variance is 0); None without power sums.

        >>> x = np.array([[0.0], [0.0], [0.0], [4.0]])
        >>> round(float(SampleMoments.of(x).skewness()[0]), 4)      # (27 - 3 - 3 - 3) / 4 / 3^1.5 = 4.5 / 5.196
        1.1547
        """
        if self.power_sums is None:
            return None
        n, mu = self.n, self.mean
        m2 = (self.scatter if self.diagonal else np.diag(self.scatter)) / n
        # m3 from raw sums: E[x^3] - 3 mu E[x^2] + 2 mu^3, with E[x^2] = m2 + mu^2.
        m3 = self.power_sums[0] / n - 3 * mu * (m2 + mu * mu) + 2 * mu ** 3
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(m2 > 0, m3 / np.where(m2 > 0, m2, 1.0) ** 1.5, 0.0)

    @property
    def cov(self) -> np.ndarray:
        """Unbiased sample covariance [d, d] (needs n >= 2); its diagonal [d] when ``diagonal``."""
        return self.scatter / (self.n - 1)


def support(cov: np.ndarray, *, rtol: float = RANK_RTOL,
            floor: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Eigen-split of a covariance: (lambda_r [r], U_r [d, r], U_null [d, d - r], cut-off).

    Eigenvalues up to max(rtol * d * lambda_max, floor) count as zero; ``floor`` is an absolute round-off level
    (a covariance made only of round-off has no support at all).

    >>> lam, U, U0, cut = support(np.diag([2.0, 0.0]))
    >>> lam.tolist(), U0.ravel().tolist()
    ([2.0], [0.0, 1.0])
    """
    cov = np.asarray(cov, dtype=float)
    if not np.isfinite(cov).all():      # LAPACK would fail to converge or return garbage
        raise NumericalError("the covariance of the estimates is not finite (overflow: values too large for float64)")
    lam, U = np.linalg.eigh((cov + cov.T) / 2)
    cut = max(rtol * max(cov.shape[0], 1) * max(float(lam.max(initial=0.0)), 0.0), floor)
    keep = lam > cut
    return lam[keep], U[:, keep], U[:, ~keep], cut


@dataclass(frozen=True, eq=False)
class ConsistencyResult:
    """Outcome of ``consistency_test``.

    Attributes:
      test: "chi2" (exact covariance), "maxz" or "hotelling" (sample covariance).
      statistic: T^2, or max |z| for "maxz" (inf after a zero-variance mismatch); dof: the covariance's rank r,
        or for "maxz" the number k of components tested.
      p_value, alpha, verdict: "consistent" or "inconsistent" (p <= alpha).
      mean, stderr, exact: sample mean, standard error sqrt(Sigma_ii / N) and exact value, shaped like theta.
      worst: index (into theta) of the component with the largest |z| (or the zero-variance mismatch).
      n: sample size; exact_mismatch: a zero-variance direction disagrees beyond round-off.
      null_tolerance: how far the mean may sit from ``exact`` in a zero-variance direction (round-off, plus the
        allowance for unseen rare values with the sample covariance).
      reason: why the verdict is "undecided" (empty otherwise).
      excluded: bool, theta's shape: the components max-|z| left out because they vary with fewer than
        MIN_NONZERO non-zero values or whose skewness makes the normal tail unreliable (``tail`` > TAIL_SLACK);
        None when there were none; they claim no power (``detectable_bias``: inf).
      tail, nonzero: per component, ``tail_ratio`` and the count of non-zero values (None when not computed).

    The verdict is "undecided" when the sample covariance has no component above round-off (every estimate
    constant): then no component could be tested, and the only check left, the allowance for constant-looking
    directions, scales with the problem, not with what was seen. It is never a pass.
    """

    test: str
    statistic: float
    dof: int
    p_value: float
    alpha: float
    verdict: str
    mean: np.ndarray
    stderr: np.ndarray
    exact: np.ndarray
    worst: tuple[int, ...]
    n: int
    exact_mismatch: bool = False
    null_tolerance: float = 0.0
    reason: str = ""
    excluded: np.ndarray | None = None
    tail: np.ndarray | None = None      # ``tail_ratio`` per component (max-|z| on a sample with power sums)
    nonzero: np.ndarray | None = None   # per component, the number of non-zero values (sample tests)
    exact_variance: int = 0             # components max-|z| divided by their exact standard deviation

    @property
    def consistent(self) -> bool:
        return self.verdict == "consistent"

    @property
    def undecided(self) -> bool:
        return self.verdict == "undecided"

    @property
    def informative(self) -> np.ndarray:
        """Which components were z-tested: a standard error above round-off and, for max-|z| on a sample, at
        least MIN_NONZERO non-zero values (bool, theta's shape)."""
        return (self.stderr > 0) & ~self.few

    @property
    def few(self) -> np.ndarray:
        """Components left out of the z-test: they vary, but with fewer than MIN_NONZERO non-zero values (bool,
        theta's shape; all False when none was)."""
        return np.zeros(self.stderr.shape, dtype=bool) if self.excluded is None else self.excluded

    @property
    def z(self) -> np.ndarray:
        """(mean - exact) / stderr per component (inf or nan where stderr = 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return (self.mean - self.exact) / self.stderr

    def to_json(self) -> dict:
        return {"test": self.test, "statistic": None if np.isinf(self.statistic) else float(self.statistic),
                "dof": self.dof, "p_value": float(self.p_value), "alpha": self.alpha, "verdict": self.verdict,
                "mean": self.mean.tolist(), "stderr": self.stderr.tolist(), "exact": self.exact.tolist(),
                "worst": list(self.worst), "n": self.n, "exact_mismatch": self.exact_mismatch,
                "null_tolerance": self.null_tolerance, "reason": self.reason,
                "excluded": np.argwhere(self.few).tolist(), "min_nonzero": MIN_NONZERO, "tail_slack": TAIL_SLACK,
                "exact_variance": self.exact_variance}

    def episodes_to_test(self) -> np.ndarray:
        """Per component, about how many episodes would make it testable (tail rule and MIN_NONZERO: R and the
        non-zero count scale as 1/N and N at a fixed distribution); n where it already is, inf where it never
        varied."""
        need = np.full(self.stderr.shape, float(self.n))
        if self.tail is not None:
            need = np.maximum(need, self.n * self.tail / TAIL_SLACK)
        if self.nonzero is not None:
            with np.errstate(divide="ignore"):
                need = np.maximum(need, np.where(self.nonzero > 0, self.n * MIN_NONZERO / np.maximum(self.nonzero, 1),
                                                 np.inf))
        return np.where(self.stderr > 0, np.ceil(need), np.inf)


SAMPLE_TESTS = ("maxz", "hotelling")


def consistency_test(sample: SampleMoments, exact, *, alpha: float = 1e-3, cov: np.ndarray | None = None,
                     scale: float = 0.0, sample_test: str = "maxz", diagonal: bool = False,
                     variance: np.ndarray | None = None) -> ConsistencyResult:
    """Test H0: E[g] = exact from the sample moments of g.

    Args:
      sample: moments of N per-episode values (flattened).
      exact: the exact gradient, any shape with ``sample.mean.size`` entries (the results take its shape).
      alpha: level of the test.
      cov: the exact covariance of g [d, d]; None uses the sample covariance with ``sample_test``.
      scale: size of the problem's numbers (e.g. ``moments.magnitude``) for the round-off allowance; the
        data's own scale (|exact|, |mean|, largest std) is used when larger.
      sample_test: "maxz" (default, robust to heavy tails) or "hotelling"; used only when ``cov`` is None.
      diagonal: max-|z| with the sample covariance only: use its diagonal alone (no eigendecomposition, O(d)
        instead of O(d^3)); the zero-variance directions checked are then the components with zero variance,
        not every direction of the null space (a weaker check, the same level).
      variance: max-|z| with the sample covariance only: the exact per-component variances of g under the
        policy (``verify.checks.variance``), any shape with ``sample.mean.size`` entries, nan where unknown. Each
        component that varies in the sample and has one is then z-tested against its exact standard error
        instead of the sample's (a
        standardised mean: a sample that missed a rare value no longer shrinks its own yardstick); which components
        are tested (the count and tail rules) and the zero-variance checks stay the sample's.

    Returns:
      ConsistencyResult.

    Raises:
      UsageError: alpha outside (0, 1), shapes disagree, or fewer than 2 episodes. (A sample covariance has
        rank r <= N - 1, so Hotelling's F(r, N - r) always has its degrees of freedom.)

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(1000, 2)) @ np.array([[1.0, 1.0], [0.0, 0.0]])   # rank 1: x_0 = x_1
    >>> consistency_test(SampleMoments.of(x), [0.0, 0.0], alpha=1e-9).verdict     # alpha 1e-9: no seed lottery
    'consistent'
    >>> res = consistency_test(SampleMoments.of(x), [0.0, 0.5])             # leaves the support
    >>> res.verdict, res.p_value, res.exact_mismatch
    ('inconsistent', 0.0, True)
    """
    exact_arr, mu = _check_inputs(sample, exact, alpha, cov, sample_test)
    shape = exact_arr.shape
    sigma = sample.cov if cov is None else np.asarray(cov, dtype=float)
    n = sample.n
    diff = sample.mean - mu
    if cov is None and sample.diagonal and sample_test != "maxz":
        raise UsageError(f"the {sample_test} test needs the full sample covariance, not only its diagonal")
    by_component = (diagonal or sample.diagonal) and cov is None and sample_test == "maxz"
    sd, big, lam, U, U0, flat, cut = _support_above_roundoff(sample, mu, sigma, scale, by_component)
    if variance is not None:
        if cov is not None or sample_test != "maxz":
            raise UsageError("exact per-component variances serve the max-|z| test with the sample covariance only")
        sd, n_exact = _exact_sd(sd, variance, big)
    else:
        n_exact = 0
    r = lam.size
    stderr = np.where(sd > EXACT_RTOL * big, sd, 0.0) / np.sqrt(n)
    tol_null = _null_tolerance(sample, big, cut, alpha, sampled=cov is None)
    test = sample_test if cov is None else "chi2"
    shaped = lambda v: v.reshape(shape)  # noqa: E731
    common = dict(mean=shaped(sample.mean), stderr=shaped(stderr), exact=exact_arr.copy(), n=n, alpha=alpha,
                  null_tolerance=float(tol_null), exact_variance=n_exact)
    worst = _null_space_mismatch(diff, U0, flat, tol_null)
    if worst is not None:
        return ConsistencyResult(test, float("inf"), r, 0.0, verdict="inconsistent", worst=_index(worst, shape),
                                 exact_mismatch=True, **common)
    tail = _tail_ratios(sample, stderr, alpha) if test == "maxz" else None
    few = _few_nonzero(sample, stderr, test, tail)
    if tail is not None:
        common["tail"] = shaped(tail)
    if sample.nonzero is not None:
        common["nonzero"] = shaped(np.asarray(sample.nonzero))
    if few.any():
        common["excluded"] = shaped(few)
        worst = _rare_value_mismatch(sample, mu, few, alpha, big)
        if worst is not None:
            return ConsistencyResult(test, float("inf"), 0, 0.0, verdict="inconsistent", worst=_index(worst, shape),
                                     exact_mismatch=True, **common)
    tested = (stderr > 0) & ~few
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(tested, np.abs(diff) / np.where(tested, stderr, 1.0), 0.0)
    worst = _index(int(np.argmax(z)) if z.any() else int(np.argmax(np.abs(diff))), shape)
    reason = "" if cov is not None else _undecided_reason(stderr, tested, few, n)
    if reason:
        return ConsistencyResult(test, 0.0, 0, 1.0, verdict="undecided", worst=worst, **common, reason=reason)
    T2, r, p = _statistic(test, z, tested, diff, U, lam, n)
    if tail is not None and r:
        worst, p = _skew_corrected(sample, z, tested, n, shape)
    return ConsistencyResult(test, T2, r, p, verdict="inconsistent" if p <= alpha else "consistent", worst=worst,
                             **common)


def _support_above_roundoff(sample: SampleMoments, mu: np.ndarray, sigma: np.ndarray, scale: float,
                            by_component: bool):
    """(sd, big, lam, U, U0, flat, cut): per-component std, the data's scale and sigma's support above round-off.

    by_component: the diagonal alone (max-|z| needs no eigendecomposition); U and U0 are then None and ``flat``
    marks the zero-variance components (None otherwise).
    """
    sd = np.sqrt(np.clip(sigma if sigma.ndim == 1 else np.diag(sigma), 0.0, None))
    big = max(scale, float(np.abs(mu).max(initial=0.0)), float(np.abs(sample.mean).max(initial=0.0)),
              float(sd.max(initial=0.0)))
    # Per-episode spreads below EXACT_RTOL of the problem's scale are round-off, not variance: without this floor
    # a covariance of pure round-off (exact grad J ~ 1e-16) would be inverted and "reject".
    if by_component:
        flat = sd <= EXACT_RTOL * big
        return sd, big, sd[~flat] ** 2, None, None, flat, (EXACT_RTOL * big) ** 2
    lam, U, U0, cut = support(sigma, floor=(EXACT_RTOL * big) ** 2)
    return sd, big, lam, U, U0, None, cut


def _exact_sd(sd: np.ndarray, variance, big: float) -> np.ndarray:
    """The exact standard deviation where the sample varies and the exact one is above round-off; else the
    sample's (a component the sample saw constant keeps the zero-variance check, with its unseen-value allowance;
    an exact variance at round-off level beside a varying sample would be cancellation, not information; nan: not
    computed), and how many components take the exact one."""
    exact_sd = np.sqrt(np.clip(np.asarray(variance, dtype=float).ravel(), 0.0, None))
    if exact_sd.shape != sd.shape:
        raise UsageError(f"the exact variances have {exact_sd.size} entries, expected {sd.size}")
    with np.errstate(invalid="ignore"):
        use = (sd > EXACT_RTOL * big) & np.isfinite(exact_sd) & (exact_sd > EXACT_RTOL * big)
    return np.where(use, exact_sd, sd), int(np.count_nonzero(use))


def _null_tolerance(sample: SampleMoments, big: float, cut: float, alpha: float, *, sampled: bool) -> float:
    """How far the mean may sit from the exact value in a zero-variance direction."""
    tol_null = EXACT_RTOL * big + NULL_SIGMAS * np.sqrt(cut / sample.n)
    if sampled:     # unseen rare values (module docstring)
        tol_null += -np.log(alpha) / sample.n * 2 * max(sample.max_abs, big)
    return tol_null


def _null_space_mismatch(diff: np.ndarray, U0: np.ndarray | None, flat: np.ndarray | None,
                         tol_null: float) -> int | None:
    """Flat index of the worst component of a zero-variance direction beyond ``tol_null``, or None."""
    off = diff[flat] if U0 is None else U0.T @ diff
    if not (off.size and np.abs(off).max() > tol_null):
        return None
    return int(np.flatnonzero(flat)[np.argmax(np.abs(off))]) if U0 is None else int(np.argmax(np.abs(U0 @ off)))


def tail_ratio(skew, n: int, z) -> np.ndarray:
    """How much skewness inflates the two-sided tail of a studentised mean at z, relative to the normal tail.

    The Edgeworth expansion of the studentised mean of n values with skewness gamma (Hall, *The Bootstrap and
    Edgeworth Expansion*, 1992, eq. 2.55): P(T <= x) = Phi(x) + n^(-1/2) q1(x) phi(x) + n^(-1) q2(x) phi(x) + ...,
    q1 = gamma (2x^2 + 1) / 6 (even: it cancels in a two-sided tail), q2 = x [kappa (x^2 - 3) / 12 - gamma^2 (x^4 +
    2 x^2 - 3) / 18 - (x^2 + 3) / 4]. So P(|T| > z) = 2 Phi_bar(z) (1 + R) with the skewness part

        R = gamma^2 (z^4 + 2 z^2 - 3) / (18 n) * z phi(z) / Phi_bar(z)

    (the kurtosis term lowers the tail and is not credited, nor is the skewness term where it is negative, below
    z ~ 0.9; the last term is the t distribution's, already in the reference). R ~ z^6 gamma^2 / (18 n): with k equal non-zero values among n, gamma^2 ~ n / k, so R ~ z^6 / (18 k):
    the rule "R <= TAIL_SLACK" asks for more values the rarer and the more one-sided they are.

    >>> round(float(tail_ratio(0.0, 1000, 5.0)), 12), bool(tail_ratio(30.0, 20000, 5.3) > 1)
    (0.0, True)
    """
    g2 = np.square(np.asarray(skew, dtype=float))
    mills = z * np.exp(-0.5 * z * z - special.log_ndtr(-z)) / np.sqrt(2 * np.pi)       # z phi(z) / Phi_bar(z)
    # Below z ~ 0.9 the polynomial turns negative (a thinner tail): never credited.
    return g2 * np.maximum(z**4 + 2 * z**2 - 3, 0.0) / (18.0 * n) * mills


def _tail_critical(alpha: float, varying: int) -> float:
    """The max-|z| critical value the tail rule is evaluated at: each of ``varying`` components at level
    alpha / varying, two-sided."""
    return float(-special.ndtri(alpha / (2 * max(varying, 1))))


def _tail_ratios(sample: SampleMoments, stderr: np.ndarray, alpha: float) -> np.ndarray | None:
    """R per component (``tail_ratio`` at the test's critical value), or None without the power sums."""
    skew = sample.skewness()
    if skew is None:
        return None
    return tail_ratio(np.where(stderr > 0, skew, 0.0), sample.n, _tail_critical(alpha, int(np.count_nonzero(stderr))))


def _skew_corrected(sample: SampleMoments, z: np.ndarray, tested: np.ndarray, n: int,
                   shape) -> tuple[tuple[int, ...], float]:
    """(worst component, p-value) of max-|z| with each tested component's tail corrected for its skewness:
    p_i = 2 P(t_{N-1} > |z_i|) (1 + tail_ratio at |z_i|), p = min(1, k min_i p_i) (Bonferroni)."""
    skew = sample.skewness()
    idx = np.flatnonzero(tested)
    zi = z[idx]
    p_i = 2 * special.stdtr(n - 1, -zi) * (1 + tail_ratio(skew[idx], n, zi))
    k = int(np.argmin(p_i))
    return _index(int(idx[k]), shape), float(min(1.0, idx.size * p_i[k]))


def _few_nonzero(sample: SampleMoments, stderr: np.ndarray, test: str, tail: np.ndarray | None) -> np.ndarray:
    """Components max-|z| leaves out: they vary, but with fewer than MIN_NONZERO non-zero values or a tail the
    normal reference does not describe (``tail_ratio`` > TAIL_SLACK) (bool [d])."""
    few = np.zeros(stderr.shape, dtype=bool)
    if test == "maxz" and sample.nonzero is not None:
        few = (stderr > 0) & (sample.nonzero < MIN_NONZERO)
    if test == "maxz" and tail is not None:
        few |= (stderr > 0) & (tail > TAIL_SLACK)
    return few


def _rare_value_mismatch(sample: SampleMoments, mu: np.ndarray, few: np.ndarray, alpha: float,
                         big: float) -> int | None:
    """Flat index of the ``few`` component whose exact value is beyond the bound its rare values allow, or None.

    Few non-zero values: no z-test there (module docstring), only the bound a rare value's size allows.
    """
    n = sample.n
    k = sample.nonzero[few]
    # per distinct count (a few small integers across thousands of components): betaincinv is the costly part
    ks, inverse = np.unique(k, return_inverse=True)
    p_up = special.betaincinv(ks + 1.0, np.maximum(n - ks, 1e-300), 1 - alpha / int(few.sum()))[inverse.reshape(-1)]
    miss = np.abs(mu[few]) > p_up * 2 * max(sample.max_abs, big) + EXACT_RTOL * big
    if not miss.any():
        return None
    return int(np.flatnonzero(few)[np.argmax(np.where(miss, np.abs(mu[few]), -1.0))])


def _undecided_reason(stderr: np.ndarray, tested: np.ndarray, few: np.ndarray, n: int) -> str:
    """Why a sample leaves nothing to z-test ("" when something can be tested)."""
    if not np.any(stderr > 0):
        return (f"every one of the {n} estimates was the same in each component (to "
                "round-off): the sample has no variance to test a mean against")
    if not tested.any():
        return (f"each of the {int(few.sum())} components that vary has fewer than "
                f"{MIN_NONZERO} non-zero values among the {n} estimates, or values so one-sided (skewed) "
                "that the normal tail of a z-test does not hold there")
    return ""


def _statistic(test: str, z: np.ndarray, tested: np.ndarray, diff: np.ndarray, U: np.ndarray | None,
               lam: np.ndarray, n: int) -> tuple[float, int, float]:
    """(statistic, dof, p-value) of max-|z| on ``z``, or of chi^2 / Hotelling T^2 on sigma's support."""
    if test == "maxz":
        r = int(np.count_nonzero(tested))
        T2 = float(z.max(initial=0.0))
        return T2, r, min(1.0, r * 2 * float(special.stdtr(n - 1, -T2)))       # t.sf(T2, n - 1)
    r = lam.size
    y = U.T @ diff
    T2 = float(n * np.sum(y**2 / lam)) if r else 0.0
    if r == 0:      # exact covariance zero: the null-space check above was the whole (exact) test
        p = 1.0
    elif test == "hotelling":   # f.sf and chi2.sf are these scipy.special functions (the same bits, no stats import)
        p = float(special.fdtrc(r, n - r, max((n - r) / (r * (n - 1)) * T2, 0.0)))
    else:
        p = float(special.chdtrc(r, max(T2, 0.0)))
    return T2, r, p


def _check_inputs(sample: SampleMoments, exact, alpha: float, cov, sample_test: str):
    """Validate ``consistency_test``'s arguments; returns (exact as an array, exact flattened [d])."""
    if not 0 < alpha < 1:
        raise UsageError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    exact_arr = np.asarray(exact, dtype=float)
    mu = exact_arr.ravel()
    d = sample.mean.size
    if sample.mean.shape != (d,) or np.shape(sample.scatter) not in ((d, d), (d,)):
        raise UsageError(f"sample moments must be flat: mean [d], scatter [d, d]; got {sample.mean.shape} and "
                         f"{np.shape(sample.scatter)}")
    if mu.size != d:
        raise UsageError(f"the exact value has {mu.size} components but the sample has {d}")
    if cov is not None and np.shape(cov) != (d, d):
        raise UsageError(f"the covariance must be [{d}, {d}] for {d} components, got {np.shape(cov)}")
    if sample.n < 2:
        raise UsageError(f"a consistency test needs at least 2 episodes, got {sample.n}")
    if sample_test not in SAMPLE_TESTS:
        raise UsageError(f"unknown sample test {sample_test!r}; choose one of {', '.join(SAMPLE_TESTS)}")
    return exact_arr, mu


def _index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


def effect_size(bias, cov: np.ndarray, *, scale: float = 0.0) -> float:
    """delta = sqrt(b^T Sigma^+ b) on the covariance's support; inf if b has a component off it (beyond round-off).

    >>> effect_size([0.1, 0.0], np.diag([4.0, 0.0])), effect_size([0.0, 0.1], np.diag([4.0, 0.0]))
    (0.05, inf)
    """
    b = np.asarray(bias, dtype=float).ravel()
    lam, U, U0, _ = support(cov)
    big = max(scale, float(np.abs(b).max(initial=0.0)), float(np.sqrt(lam.max(initial=0.0))))
    if U0.size and np.abs(U0.T @ b).max() > EXACT_RTOL * big:
        return float("inf")
    return float(np.sqrt(np.sum((U.T @ b) ** 2 / lam))) if lam.size else 0.0


def component_effect_size(bias, cov: np.ndarray, *, scale: float = 0.0) -> float:
    """max_i |b_i| / sigma_i, the effect size of the max-|z| test; inf where sigma_i = 0 but b_i is not round-off.

    >>> component_effect_size([0.1, 0.0], np.diag([4.0, 0.0])), component_effect_size([0.0, 0.1], np.diag([4.0, 0.0]))
    (0.05, inf)
    """
    b = np.asarray(bias, dtype=float).ravel()
    sd = np.sqrt(np.clip(np.diag(np.asarray(cov, dtype=float)), 0.0, None))
    big = max(scale, float(np.abs(b).max(initial=0.0)), float(sd.max(initial=0.0)))
    zero = sd <= RANK_RTOL * max(big, 1e-300)
    if np.any(zero & (np.abs(b) > EXACT_RTOL * big)):
        return float("inf")
    return float(np.max(np.abs(b[~zero]) / sd[~zero], initial=0.0))


def _critical(n: int, dof: int, alpha: float, test: str) -> float:
    if test == "maxz":   # the single component's two-sided z-test at level alpha / k
        return float(-special.ndtri(alpha / (2 * dof)))               # norm.isf
    # chi2.isf and f.isf (= f.ppf(1 - alpha)) evaluate exactly these scipy.special functions
    return float(special.chdtri(dof, alpha) if test == "chi2" else special.fdtri(dof, n - dof, 1.0 - alpha))


def _boost_ufunc(name: str):
    """scipy.special's private ufunc behind ``scipy.stats.ncx2.sf``, ``ncf.sf`` or ``binom.sf`` (Boost), or None
    where this SciPy has none: then the distribution object is used (importing scipy.stats costs ~0.5 CPU-s)."""
    return getattr(getattr(special, "_ufuncs", None), name, None)


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X > k), X ~ Binomial(n, p): ``scipy.stats.binom.sf(k, n, p)``, through the same Boost ufunc when this SciPy
    exposes it (no scipy.stats import).

    >>> binom_sf(0, 2, 0.5)
    0.75
    """
    sf = _boost_ufunc("_binom_sf")
    if sf is None or k < 0:
        return float(stats.binom.sf(k, n, p))
    return float(sf(float(k), float(n), float(p)))


def _power_nc(nc: float, n: int, dof: int, crit: float, test: str) -> float:
    if test == "maxz":
        shift = np.sqrt(nc)
        return float(special.ndtr(shift - crit) + special.ndtr(-crit - shift))    # norm.sf + norm.cdf
    x = max(crit, 0.0)
    if test == "chi2":
        sf = _boost_ufunc("_ncx2_sf")
        if nc == 0:
            return float(special.chdtrc(dof, x))                  # ncx2.sf at nc = 0 is chi2.sf
        return float(sf(x, dof, nc) if sf is not None else stats.ncx2.sf(x, dof, nc))
    sf = _boost_ufunc("_ncf_sf")
    return float(sf(x, dof, n - dof, nc) if sf is not None else stats.ncf.sf(x, dof, n - dof, nc))


def power(effect: float, n: int, dof: int, alpha: float, *, test: str = "chi2") -> float:
    """Probability of rejecting at level alpha when the effect size is ``effect`` (non-central chi^2 or F).

    >>> round(power(0.0, 1000, 3, 0.05), 3)
    0.05
    """
    if np.isinf(effect):
        return 1.0
    nc = n * effect**2
    return _power_nc(nc, n, dof, _critical(n, dof, alpha, test), test) if nc > 0 else alpha


@functools.lru_cache(maxsize=256)
def detectable_effect(n: int, dof: int, alpha: float, target_power: float = 0.999, *, test: str = "chi2") -> float:
    """The smallest effect size rejected with probability ``target_power`` by N episodes.

    >>> delta = detectable_effect(20_000, 64, 1e-3)
    >>> bool(delta < 0.1), round(power(delta, 20_000, 64, 1e-3), 6)
    (True, 0.999)
    """
    crit = _critical(n, dof, alpha, test)
    f = lambda nc: _power_nc(nc, n, dof, crit, test) - target_power  # noqa: E731
    if f(0.0) >= 0:         # alpha >= target_power: the test rejects that often even with no effect at all
        return 0.0
    hi = 1.0
    while f(hi) < 0:
        hi *= 2
    nc = _bisect(f, 0.0, hi, xtol=1e-10, rtol=1e-12)
    return float(np.sqrt(nc / n))


def detectable_bias(result: ConsistencyResult, target_power: float = 0.999) -> np.ndarray:
    """Per component, the smallest |bias| ``result``'s test rejects with probability ``target_power``.

    delta* sigma_i on the components with a standard error (delta* = ``detectable_effect`` of the test, sigma_i the
    per-episode standard deviation); on a zero-variance component the mean must match within the test's
    ``null_tolerance``, which is then the figure; a component left out for too few non-zero values gets inf.

    Args:
      result: a ``consistency_test`` result (not undecided: an undecided test has no power and gets inf).
      target_power: the detection probability.

    Returns:
      Array shaped like ``result.exact``, in the gradient's units.

    >>> x = np.r_[np.ones(50), -np.ones(50)][:, None] * [1.0, 0.0]     # component 0: sd 1; component 1: constant
    >>> res = consistency_test(SampleMoments.of(x), [0.0, 0.0], alpha=1e-3)
    >>> b = detectable_bias(res)
    >>> delta = detectable_effect(100, 1, 1e-3, test="maxz")
    >>> bool(np.isclose(b[0], delta * np.sqrt(100 / 99))), bool(b[1] == res.null_tolerance)
    (True, True)
    """
    if result.undecided:
        return np.full(result.exact.shape, np.inf)
    sd = result.stderr * np.sqrt(result.n)
    delta = detectable_effect(result.n, max(result.dof, 1), result.alpha, target_power, test=result.test)
    return np.where(result.few, np.inf, np.where(sd > 0, delta * sd, result.null_tolerance))


def episodes_needed(effect: float, dof: int, alpha: float, target_power: float = 0.999, *,
                    test: str = "maxz") -> int:
    """The number of episodes at which an effect size ``effect`` (bias / per-episode std) is rejected with
    probability ``target_power``: N = nc* / effect^2, nc* the non-centrality that gives that power.

    Exact for max-|z| and chi^2 (their critical values do not depend on N); for Hotelling the chi^2 figure.

    >>> n = episodes_needed(0.01, 64, 1e-3)
    >>> bool(detectable_effect(n, 64, 1e-3, test="maxz") <= 0.01 < detectable_effect(n - 1, 64, 1e-3, test="maxz"))
    True
    """
    if not effect > 0:
        raise UsageError(f"the effect size to detect must be positive, got {effect}")
    test = "chi2" if test == "hotelling" else test
    nc = detectable_effect(1, dof, alpha, target_power, test=test) ** 2    # sqrt(nc / 1)
    return max(2, int(np.ceil(nc / effect**2 * (1 - 1e-12))))


def _bisect(f, lo: float, hi: float, *, xtol: float, rtol: float) -> float:
    """The root of an increasing f with f(lo) < 0 <= f(hi), to xtol + rtol |x| (scipy.optimize costs start-up)."""
    while hi - lo > xtol + rtol * abs(hi):
        mid = 0.5 * (lo + hi)
        if f(mid) < 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Calibration:
    """Rejections of a test whose level is alpha, over independent trials.

    Attributes:
      rejections, trials, alpha, confidence: the data and the confidence of the check.
      rate: rejections / trials.
      interval: exact (Clopper-Pearson) ``confidence`` interval for the true rejection rate.
      p_value: two-sided binomial test of rate = alpha.
      ok: the interval contains alpha (equivalently p_value >= 1 - confidence).
    """

    rejections: int
    trials: int
    alpha: float
    confidence: float
    rate: float
    interval: tuple[float, float]
    p_value: float
    ok: bool


def calibration(rejections: int, trials: int, alpha: float, *, confidence: float = 0.999) -> Calibration:
    """Is a rejection count compatible with a test of level alpha? (``scipy.stats.binomtest``).

    >>> calibration(12, 200, 0.05).ok, calibration(30, 200, 0.05).ok
    (True, False)
    """
    res = stats.binomtest(int(rejections), int(trials), alpha)
    ci = res.proportion_ci(confidence_level=confidence, method="exact")
    lo, hi = float(ci.low), float(ci.high)
    return Calibration(int(rejections), int(trials), alpha, confidence, rejections / trials, (lo, hi),
                       float(res.pvalue), bool(lo <= alpha <= hi))
