"""The consistency test: p-values against textbook tests, singular covariances, calibration and power.

False-alarm rates, stated per test:
- calibration: 8 binomial checks at confidence 0.999, so a correct test fails one with probability <= 0.8%;
- power: every counted case has power >= 1 - 1e-6 (asserted), so with at most 200 cases a correct test misses
  one with probability <= 2e-4;
- synthetic p-value tests: fixed seeds, tolerances from the stated alpha.
Seeds are fixed, so every outcome is deterministic.
"""
import numpy as np
import pytest
from scipy import stats

from verify.model.builtin import builtin_examples
from verify.errors import UsageError
from verify.checks.estimators import ESTIMATORS
from verify.checks.mc import DEFAULT_ALPHA, DEFAULT_EPISODES, EFFECT_SIZE, run_check, run_estimators
from verify.checks.moments import exact_moments_all
from verify.model.problem import Problem
from verify.checks.stats import (SampleMoments, calibration, consistency_test, detectable_bias, detectable_effect,
                          effect_size, episodes_needed, power, support)

from helpers import random_problem as shared_random_problem

UNBIASED = [e for e in ESTIMATORS if e.unbiased]
PITFALLS = [e for e in ESTIMATORS if not e.unbiased]


def random_problem(seed: int) -> Problem:
    """A small dense random MDP (2-3 states, 2-3 actions, horizon 2-4, gamma in {1, 0.9, 0.5}) and policy."""
    rng = np.random.default_rng(seed)
    S, A, H = int(rng.integers(2, 4)), int(rng.integers(2, 4)), int(rng.integers(2, 5))
    gamma, terminal, linear = float(rng.choice([1.0, 0.9, 0.5])), int(rng.random() < 0.5), bool(rng.random() < 0.3)
    return Problem(*shared_random_problem(rng, S, A, H, gamma, linear=linear, terminal=terminal,
                                          name=f"random{seed}"))


# --- the test itself ----------------------------------------------------------------------------------------------

def test_merged_moments_equal_moments_of_the_union():
    x = np.random.default_rng(0).normal(size=(1000, 3)) * [1.0, 1e3, 1e-3] + 1e6
    parts = [SampleMoments.of(x[i:i + 137]) for i in range(0, 1000, 137)]
    merged = parts[0]
    for p in parts[1:]:
        merged = merged.merge(p)
    assert merged.n == 1000
    np.testing.assert_allclose(merged.mean, x.mean(axis=0), rtol=1e-14)
    # Errors relative to sqrt(var_i var_j): the data's own rounding (1e-16 * 1e6 against a std of 1e-3) is 1e-7.
    ref = np.cov(x.T)
    sd = np.sqrt(np.diag(ref))
    assert (np.abs(merged.cov - ref) / np.outer(sd, sd)).max() < 1e-6


def test_one_dimensional_p_values_are_the_textbook_ones():
    x = np.random.default_rng(1).normal(0.05, 1.0, size=(500, 1))
    # In one dimension Hotelling's F(1, N-1) is the squared t statistic, and max-|z| is the two-sided t-test.
    for sample_test in ("hotelling", "maxz"):
        res = consistency_test(SampleMoments.of(x), [0.0], alpha=0.05, sample_test=sample_test)
        assert res.test == sample_test and res.dof == 1
        assert res.p_value == pytest.approx(stats.ttest_1samp(x[:, 0], 0.0).pvalue, rel=1e-10)
    chi = consistency_test(SampleMoments.of(x), [0.0], cov=np.eye(1), alpha=0.05)
    z = x.mean() / np.sqrt(1 / 500)
    assert chi.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-10)


def test_singular_covariance_uses_the_support_and_demands_exact_agreement_off_it():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(2000, 2))
    # Components: (u, v, u + v, 3): rank 2, and the last component never varies.
    x = np.column_stack([base, base.sum(axis=1), np.full(2000, 3.0)])
    exact = np.array([0.0, 0.0, 0.0, 3.0])
    true_cov = np.zeros((4, 4))
    true_cov[:3, :3] = [[1, 0, 1], [0, 1, 1], [1, 1, 2]]
    # dof: the covariance's rank (chi^2), or the number of components with a positive variance (max-|z|)
    for cov, dof in ((None, 3), (true_cov, 2)):
        ok = consistency_test(SampleMoments.of(x), exact, cov=cov, alpha=1e-6)
        assert ok.consistent and ok.dof == dof and not ok.exact_mismatch
        # Round-off in a zero-variance component is not a discrepancy.
        assert consistency_test(SampleMoments.of(x), exact + [0, 0, 0, 1e-13], cov=cov, alpha=1e-6).consistent
    # With the exact covariance a real discrepancy off the support is decisive, and names the component ...
    bad = consistency_test(SampleMoments.of(x), exact + [0, 0, 0, 1e-6], cov=true_cov)
    assert (bad.verdict, bad.p_value, bad.exact_mismatch, bad.worst) == ("inconsistent", 0.0, True, (3,))
    assert consistency_test(SampleMoments.of(x), [0.0, 0.0, 0.01, 3.0], cov=true_cov).exact_mismatch
    # ... with the sample covariance it must exceed what 2000 draws can rule out: a value of probability
    # -ln(alpha)/N may never have been drawn; its size is taken as twice the largest |x| seen.
    allowance = -np.log(1e-6) / 2000 * 2 * np.abs(x).max()
    assert consistency_test(SampleMoments.of(x), exact + [0, 0, 0, 0.9 * allowance], alpha=1e-6).consistent
    bad = consistency_test(SampleMoments.of(x), exact + [0, 0, 0, 1.1 * allowance], alpha=1e-6)
    assert (bad.verdict, bad.p_value, bad.exact_mismatch, bad.worst) == ("inconsistent", 0.0, True, (3,))


def test_rare_values_missing_from_the_sample_are_not_an_exact_mismatch():
    # A sparse reward: the second component is 5 with probability 1e-4, else 0. In 2000 draws it is almost
    # surely constant, yet its exact mean 5e-4 is right; the sample covariance cannot tell, so no p = 0.
    rng = np.random.default_rng(7)
    x = np.column_stack([rng.normal(size=2000), np.zeros(2000)])
    x[0, 0] = 5.0                           # the largest value seen anywhere
    res = consistency_test(SampleMoments.of(x), [x[:, 0].mean(), 5e-4], alpha=1e-6)
    assert res.consistent and not res.exact_mismatch


def test_worst_component_has_the_largest_z():
    x = np.random.default_rng(3).normal(size=(400, 3)) * [1.0, 10.0, 0.1]
    res = consistency_test(SampleMoments.of(x), [0.0, 0.0, 0.05])
    assert res.worst == (2,) and not res.consistent
    assert res.z[2] == pytest.approx((x[:, 2].mean() - 0.05) / (x[:, 2].std(ddof=1) / 20))


@pytest.mark.parametrize("test_cov", [None, "exact"])
def test_synthetic_calibration_with_a_singular_covariance(test_cov):
    # 400 Gaussian samples of size 50 in R^4 with rank 3: the rejection rate at 0.05 must be 0.05.
    rng = np.random.default_rng(4)
    L = np.array([[1.0, 0, 0], [0.5, 1, 0], [0, 0, 2], [1.5, 1, 0]])
    rejections = 0
    for _ in range(400):
        x = rng.normal(size=(50, 3)) @ L.T
        cov = None if test_cov is None else L @ L.T
        rejections += not consistency_test(SampleMoments.of(x), np.zeros(4), alpha=0.05, cov=cov).consistent
    assert calibration(rejections, 400, 0.05, confidence=1 - 1e-5).ok, rejections   # false failure <= 1e-5


@pytest.mark.parametrize("kwargs, message", [
    (dict(alpha=0.0), "alpha must lie strictly between 0 and 1, got 0.0"),
    (dict(alpha=1.0), "alpha must lie strictly between 0 and 1, got 1.0"),
    (dict(exact=[0.0]), "the exact value has 1 components but the sample has 2"),
    (dict(x=np.zeros((1, 2))), "at least 2 episodes, got 1"),
])
def test_bad_test_inputs(kwargs, message):
    x = kwargs.pop("x", np.random.default_rng(0).normal(size=(10, 2)))
    exact = kwargs.pop("exact", [0.0, 0.0])
    with pytest.raises(UsageError, match=message):
        consistency_test(SampleMoments.of(x), exact, **kwargs)


def test_effect_size_power_and_detectable_effect():
    cov = np.array([[4.0, 0.0], [0.0, 1.0]])
    assert effect_size([0.2, 0.1], cov) == pytest.approx(np.sqrt(0.01 + 0.01))
    lam, U, U0, _ = support(np.diag([1.0, 0.0]))
    assert effect_size([0.0, 1e-3], np.diag([1.0, 0.0])) == np.inf and U0.shape == (2, 1)
    assert power(0.0, 100, 3, 0.05) == pytest.approx(0.05)
    powers = [power(d, 1000, 3, 1e-3) for d in (0.05, 0.1, 0.2, 0.3)]
    assert powers == sorted(powers) and powers[0] < 0.1 and powers[-1] > 0.999
    d = detectable_effect(5000, 10, 1e-3, 0.99, test="hotelling")
    assert power(d, 5000, 10, 1e-3, test="hotelling") == pytest.approx(0.99, abs=1e-8)


@pytest.mark.parametrize("dof", [1, 3, 12, 64])
def test_default_episodes_detect_the_stated_effect_size(dof):
    for test in ("chi2", "hotelling"):
        assert power(EFFECT_SIZE, DEFAULT_EPISODES, dof, DEFAULT_ALPHA, test=test) >= 0.999
        assert detectable_effect(DEFAULT_EPISODES, dof, DEFAULT_ALPHA, test=test) <= EFFECT_SIZE


def test_calibration_helper_matches_the_binomial_distribution():
    c = calibration(10, 200, 0.05)
    assert c.rate == 0.05 and c.ok and c.p_value == pytest.approx(1.0)
    assert c.interval[0] == pytest.approx(stats.beta.ppf(0.0005, 10, 191))
    lo_ok = [k for k in range(0, 40) if calibration(k, 200, 0.05).ok]
    assert lo_ok == list(range(lo_ok[0], lo_ok[-1] + 1)) and 1 <= lo_ok[0] <= 3 and 19 <= lo_ok[-1] <= 22


# --- the whole pipeline on MDPs: calibration and power ------------------------------------------------------------

CALIBRATION_MDPS = 200


@pytest.mark.parametrize("covariance", ["exact", "sample"])
def test_unbiased_estimators_reject_at_rate_alpha_over_random_mdps(covariance):
    rejections = dict.fromkeys((e.name for e in UNBIASED), 0)
    # In sample mode the verdict's test (the paired or the unpaired one, whichever detects smaller biases) is
    # calibrated too. Confidence 1 - 1e-5 per count: the suite's false-failure share of this test stays <= 3e-4.
    verdicts = dict.fromkeys(rejections, 0)
    for i in range(CALIBRATION_MDPS):
        for r in run_estimators(random_problem(i), UNBIASED, episodes=2000, seed=1000 + i, alpha=0.05,
                                covariance=covariance):
            rejections[r.estimator.name] += r.test.verdict == "inconsistent"
            verdicts[r.estimator.name] += r.sampled.verdict == "inconsistent"
    for counts, what in ((rejections, "unpaired"), (verdicts, "verdict's")):
        for name, k in counts.items():
            c = calibration(k, CALIBRATION_MDPS, 0.05, confidence=1 - 1e-5)
            assert c.ok, f"{name}, {what} test: {k}/{CALIBRATION_MDPS} rejections, interval {c.interval} excludes 0.05"


def test_pitfalls_with_the_stated_effect_are_caught_and_zero_bias_is_not_a_miss():
    problems = [p for p in builtin_examples().values() if p.mdp.horizon is not None]
    problems += [random_problem(5000 + i) for i in range(30)]
    counted = {e.name: 0 for e in PITFALLS}
    no_bias = 0
    for j, problem in enumerate(problems):
        moments = exact_moments_all(PITFALLS, problem.mdp, problem.policy)
        results = run_estimators(problem, PITFALLS, seed=j)      # default episodes and alpha
        for r in results:
            m = moments[r.estimator.name]
            if not m.biased:
                no_bias += 1
                continue
            effect = r.effect
            if np.isinf(effect):      # the bias leaves the covariance's support: found exactly, power 1
                assert r.test.exact_mismatch, f"{problem.mdp.name}: missed {r.estimator.name} (infinite effect)"
                counted[r.estimator.name] += 1
            elif effect >= EFFECT_SIZE:
                # The stated power holds (exact maths) ...
                assert power(EFFECT_SIZE, r.episodes, r.test.dof, r.alpha, test=r.test.test) >= 1 - 1e-6
                # ... and the sample agrees wherever a miss is practically impossible (probability <= 1e-8 per row,
                # so this suite's lottery stays small: a miss at power 0.999 would be a 1-in-1000 event per row).
                if 1 - power(effect, r.episodes, r.test.dof, r.alpha, test=r.test.test) <= 1e-8:
                    assert not r.test.consistent, f"{problem.mdp.name}: missed {r.estimator.name} ({effect:.3g})"
                    counted[r.estimator.name] += 1
    # The assertion above was not vacuous. GAE(0.95) with a stationary or perturbed V is biased by about
    # (1 - lambda) times the value error, below EFFECT_SIZE standard deviations on these problems: its rows are
    # checked wherever the effect reaches it, and the count is required of the other pitfalls.
    assert all(k >= 3 for name, k in counted.items() if name not in ("gae_stationary_value", "gae_noisy_value")), \
        counted
    assert no_bias >= 1
    # Zero exact bias is not a miss: on the bandit (gamma = 1, one step) restarting the discount changes nothing,
    # so check expects consistency there and passes.
    check = run_check(builtin_examples()["bandit"], episodes=5000)
    row = next(r for r in check.rows if r.mc.estimator.name == "rtg_restart_discount")
    assert (row.expected, row.passed) == ("no bias here", True) and check.passed


def test_max_z_is_calibrated_with_sparse_rewards():
    # A slippery 6-cell chain paying 1 only at its end, under a uniform policy: ~3% of 20-step episodes get there,
    # so every per-episode estimate is a rare spike. The sample-covariance test must still hold its level:
    # over 100 seeds at alpha = 0.01 the number of false alarms is Binomial(100, <= 0.01), P(>= 8) < 1e-5.
    # 4000 episodes (~120 reach the goal): with 1000 most components have fewer than MIN_NONZERO non-zero values,
    # and the test would mostly be undecided, which says nothing about its level.
    from verify.checks.estimators import get_estimator
    from verify.numerics.exact import gradient
    from verify.model.mdp import TabularMDP
    from verify.model.policy import TabularSoftmax
    from verify.numerics.sampler import sample_episodes

    S = 6
    P = np.zeros((S, 2, S))
    for s in range(S - 1):
        P[s, 0, max(s - 1, 0)] += 0.9
        P[s, 0, s] += 0.1
        P[s, 1, s + 1] += 0.5
        P[s, 1, max(s - 1, 0)] += 0.5
    r = np.zeros((S, 2, S))
    r[:, :, S - 1] = 1.0
    mdp = TabularMDP(np.eye(S)[0], P, r, terminal=[S - 1], gamma=1.0, horizon=20)
    policy = TabularSoftmax(np.zeros((S, 2)))
    exact = gradient(mdp, policy).grad
    est = get_estimator("reward_to_go")
    false_alarms, decided = 0, 0
    for seed in range(100):
        g = est.per_episode(sample_episodes(mdp, policy, 4000, np.random.default_rng(seed)))
        res = consistency_test(SampleMoments.of(g), exact, alpha=0.01)
        false_alarms += res.verdict == "inconsistent"
        decided += not res.undecided
    assert false_alarms <= 7     # P(Binomial(100, 0.01) >= 8) < 1e-5: a false failure is that rare
    assert decided >= 90, decided     # 4000 episodes: ~120 reach the goal, enough non-zero values to test


@pytest.mark.parametrize("cov_kind", ["sample", "exact"])
def test_round_off_is_neither_variance_nor_bias(cov_kind):
    # An estimator whose exact value is 0 but whose float evaluation scatters at 1e-17 (problem scale 1): the
    # "covariance" is round-off, so nothing may be inverted, and only a difference beyond 1e-9 of the scale counts.
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, 3)) * 1e-17
    cov = None if cov_kind == "sample" else np.eye(3) * 1e-34
    res = consistency_test(SampleMoments.of(x), np.full(3, 1e-16), cov=cov, scale=1.0)
    # The exact covariance says every estimate is the same, so the null-space check is the whole (exact) test; a
    # sample with no variance has no power at all: undecided, with the reason, never a pass.
    assert res.verdict == ("consistent" if cov_kind == "exact" else "undecided")
    assert (res.reason != "") == (cov_kind == "sample") and not res.exact_mismatch
    # with the sample covariance the allowance also covers unseen rare values: -ln(alpha)/N * 2 * scale = 4.6e-3
    off = 1e-6 if cov_kind == "exact" else 1e-2
    bad = consistency_test(SampleMoments.of(x), [0.0, off, 0.0], cov=cov, scale=1.0)
    assert bad.verdict == "inconsistent" and bad.exact_mismatch and bad.worst == (1,)


# --- power stated with every verdict ------------------------------------------------------------------------------

def test_detectable_bias_is_delta_star_times_sigma_and_episodes_needed_inverts_it():
    # An independent form of the max-|z| power: reject when |z| > c = z_{alpha / (2k)}; a bias b in one component
    # moves z by b sqrt(N) / sigma, so power 0.999 needs b sqrt(N) / sigma ~ c + z_{0.999} (the far tail is nil).
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3)) * [1.0, 2.0, 0.0]        # third component constant
    res = consistency_test(SampleMoments.of(x), [0.0, 0.0, 0.0], alpha=1e-3)
    c = stats.norm.isf(1e-3 / (2 * 2)) + stats.norm.isf(1e-3)
    sd = x.std(axis=0, ddof=1)
    b = detectable_bias(res)
    np.testing.assert_allclose(b[:2], c * sd[:2] / np.sqrt(4000), rtol=1e-6)
    assert b[2] == res.null_tolerance                        # constant: only a difference above the tolerance shows
    n = episodes_needed(0.01, 2, 1e-3)
    assert n == pytest.approx((c / 0.01) ** 2, rel=1e-6)


def test_no_variance_is_undecided_with_the_reason_never_a_pass():
    x = np.zeros((1000, 3))
    res = consistency_test(SampleMoments.of(x), [0.0, 0.0, 0.0])
    assert res.verdict == "undecided" and "no variance" in res.reason and not res.consistent
    assert np.isinf(detectable_bias(res)).all()
    # a constant sample far from the exact value still fails (the zero-variance check is decisive when it can be)
    assert consistency_test(SampleMoments.of(x), [0.0, 50.0, 0.0], scale=1.0).verdict == "inconsistent"


def test_shapes_are_checked_at_the_boundary():
    m = SampleMoments.of(np.zeros((10, 3)))
    with pytest.raises(UsageError, match="covariance must be \\[3, 3\\]"):
        consistency_test(m, np.zeros(3), cov=np.eye(2))
    with pytest.raises(UsageError, match="4 components but the sample has 3"):
        consistency_test(m, np.zeros(4))


# --- few non-zero values: no z-test there -------------------------------------------------------------------------

def _rare_state_problem() -> Problem:
    """s0 leads to the rare state s1 with probability 1.5e-3 (else to s2); in s1 action 1 pays 1, or 1000 with
    probability 0.01. With 2000 episodes s1 is reached 0-6 times, and its jackpot is almost never drawn."""
    from verify.model.mdp import TabularMDP
    from verify.model.policy import TabularSoftmax

    P = np.zeros((4, 2, 4))
    P[0, :, 1], P[0, :, 2] = 1.5e-3, 1 - 1.5e-3
    P[1:, :, 3] = 1.0
    P[1, 1, 3], P[1, 1, 2] = 0.99, 0.01
    r = np.zeros((4, 2, 4))
    r[0, 1, :], r[1, 1, 3], r[1, 1, 2], r[2, 1, :] = 0.5, 1.0, 1000.0, 1.0
    mdp = TabularMDP(np.eye(4)[0], P, r, terminal=[3], gamma=1.0, horizon=3, name="rare")
    return Problem(mdp, TabularSoftmax(np.zeros((4, 2))))


def test_components_with_few_non_zero_values_are_not_z_tested_and_are_named():
    # reward-to-go is unbiased; before the rule seeds 0 and 1 (1-2 visits to s1, no jackpot) were rejected at
    # alpha = 1e-6 with z = 15.5 and 10.3 (max-|z| on 6 components).
    from verify.checks.mc import run_mc
    from verify.checks.stats import MIN_NONZERO

    named = 0
    for seed in range(5):
        r = run_mc(_rare_state_problem(), "reward_to_go", episodes=2000, seed=seed, covariance="sample",
                   alpha=1e-6, paired=False)
        t = r.test
        assert t.verdict == "consistent", (seed, t.statistic, t.worst)
        if t.excluded is not None:
            named += 1
            assert np.argwhere(t.few).tolist() == [[1, 0], [1, 1]]          # the rare state's two components
            assert np.isinf(r.detectable_bias[1]).all() and np.isfinite(r.detectable_bias[0]).all()
            data = r.to_json()
            assert data["excluded_components"] == [r.name_of((1, 0)), r.name_of((1, 1))]
            assert data["min_nonzero"] == MIN_NONZERO and "state '1'" in data["excluded_components"][0]
    assert named >= 2         # the rule was exercised, not only the zero-variance check


def test_a_bias_in_a_well_sampled_component_is_still_caught_and_all_sparse_is_undecided():
    rng = np.random.default_rng(11)
    x = np.zeros((2000, 3))
    x[:, 0] = rng.normal(0.2, 1.0, size=2000)        # bias 0.2 sd: z ~ 9, a miss at alpha 1e-6 has probability < 1e-8
    x[:3, 1] = [1.0, -2.0, 0.5]                       # three non-zero values
    x[:, 2] = rng.normal(size=2000)
    res = consistency_test(SampleMoments.of(x), [0.0, 0.0, 0.0], alpha=1e-6)
    assert (res.verdict, res.worst, res.dof) == ("inconsistent", (0,), 2)
    assert res.few.tolist() == [False, True, False] and res.informative.tolist() == [True, False, True]
    # Every varying component excluded: undecided with the reason, never consistent ...
    sparse = consistency_test(SampleMoments.of(x[:, 1:2]), [0.0], alpha=1e-6, scale=1.0)
    assert sparse.verdict == "undecided" and "fewer than 30 non-zero values" in sparse.reason
    assert np.isinf(detectable_bias(sparse)).all()
    # ... but an exact value no rare value can explain (3 non-zero values of size <= 2 in 2000: |E x| is at most
    # ~1e-2 * 2 * 2) is still a mismatch.
    far = consistency_test(SampleMoments.of(x[:, 1:2]), [1.0], alpha=1e-6, scale=1.0)
    assert (far.verdict, far.exact_mismatch) == ("inconsistent", True)


# --- the tail rule (issue 30): skewed components are not z-tested where the normal tail does not hold -------------

def test_tail_ratio_is_the_edgeworth_skewness_term():
    # Hall (1992), eq. 2.55: the two-sided tail of a studentised mean is 2 Phi_bar(z) + 2 n^-1 x gamma^2 (x^4 + 2x^2 - 3)
    # / 18 phi(z) + (terms not credited); R is the second part over the first. Written out with scipy.stats.norm.
    from verify.checks.stats import tail_ratio

    for gamma, n, z in ((2.0, 100, 4.0), (25.0, 20_000, 5.3), (0.5, 50, 3.0)):
        extra = gamma**2 * z * (z**4 + 2 * z**2 - 3) / 18 / n * stats.norm.pdf(z)
        assert float(tail_ratio(gamma, n, z)) == pytest.approx(extra / stats.norm.sf(z), rel=1e-9)
    assert float(tail_ratio(3.0, 100, 0.5)) == 0.0          # a thinner tail is never credited
    # Exponential data (gamma = 2), n = 40, two-sided tail at z = 3 by simulation: the corrected tail is closer to
    # the truth than the t tail (a check of the direction and size, not of the far tail the tests read).
    rng = np.random.default_rng(0)
    x = rng.exponential(size=(200_000, 40)) - 1.0
    t = x.mean(axis=1) / (x.std(axis=1, ddof=1) / np.sqrt(40))
    observed = float(np.mean(np.abs(t) > 3.0))
    t_tail = 2 * stats.t.sf(3.0, 39)
    corrected = t_tail * (1 + float(tail_ratio(2.0, 40, 3.0)))
    assert abs(np.log(corrected / observed)) < abs(np.log(t_tail / observed))


def test_one_sided_rare_values_are_not_z_tested_however_many_non_zero():
    # The gridworld case of issue 30: 34 non-zero values of one sign among 20 000, whose exact mean is carried by
    # values rarer than 1 / 20 000 (never drawn): z ~ -9 against the exact mean. The count rule (>= 30) z-tested it
    # and rejected; the tail rule leaves it out (skewness ~ -24, tail_ratio >> 2).
    n = 20_000
    x = np.zeros((n, 2))
    x[:34, 0] = -np.linspace(0.5e-3, 1.5e-3, 34)
    x[:, 1] = np.random.default_rng(3).normal(size=n)
    res = consistency_test(SampleMoments.of(x), [8.5e-6, 0.0], alpha=1e-6)
    assert res.verdict == "consistent" and res.few.tolist() == [True, False]
    assert res.tail[0] > 2 and res.tail[1] < 1e-2
    # the same values, symmetric in sign, have no skewness: z-tested (and rejected: the mean is 0, z ~ 9)
    x[:34:2, 0] *= -1
    assert consistency_test(SampleMoments.of(x), [8.5e-4, 0.0], alpha=1e-6).verdict == "inconsistent"
