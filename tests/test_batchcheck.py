"""Batch-level numpy estimators (verify.batchcheck): exact verdicts derived by hand, Monte Carlo verdicts at
alpha = 1e-6, bad input."""
import numpy as np
import pytest

from verify.batchcheck import check_batch_estimator, exact_verdict
from verify.builtin import builtin_examples
from verify.episodes import reward_to_go, score_sums
from verify.estimators import NORMALIZE_EPS, get_estimator
from verify.gradcheck import EstimatorError
from verify.mdp import TabularMDP
from verify.policy import TabularSoftmax
from verify.problem import Problem


def batch_mean(episodes):
    return score_sums(episodes, reward_to_go(episodes)).mean(axis=0)


def batch_sum(episodes):
    return score_sums(episodes, reward_to_go(episodes)).sum(axis=0)


def restarted(episodes):
    return score_sums(episodes, reward_to_go(episodes, restart_discount=True)).mean(axis=0)


def normalized(episodes):
    return get_estimator("batch_normalized").per_episode(episodes).mean(axis=0)


@pytest.fixture(scope="module")
def chain():
    return builtin_examples()["chain"]


def test_per_episode_mean_is_unbiased_exactly(chain):
    check = check_batch_estimator(batch_mean, chain, batch_size=4)
    assert (check.verdict, check.method, check.convention) == ("unbiased", "exact: per-episode", "mean")
    assert check.passed


def test_sum_over_the_batch_is_proportional_with_c_equal_to_the_batch_size(chain):
    # sum_n g(tau_n) has mean B E[g] = B grad J: proportional, c = B exactly.
    check = check_batch_estimator(batch_sum, chain, batch_size=5)
    assert (check.verdict, check.convention) == ("proportional", "sum")
    assert check.c == pytest.approx(5.0, rel=1e-9)
    assert not check.passed


def test_restarted_discount_is_biased_and_named(chain):
    check = check_batch_estimator(restarted, chain, batch_size=4)
    assert check.verdict == "biased"
    assert ("rtg_restart_discount", pytest.approx(1.0)) in check.matches
    assert 0 < check.angle < 90 and check.relative_bias > 0
    assert "rtg_restart_discount" in check.format()


def test_batch_normalisation_on_a_bandit_by_hand():
    # One state, two arms with rewards 1 and 0, uniform policy, B = 2. Equal pairs have std 0: estimate 0. A mixed
    # pair has G = (1, 0), mean 1/2, std 1/2, advantages +-k with k = (1/2) / (1/2 + eps), and both episodes
    # contribute k (1/2, -1/2) to the sum, so the batch mean is k (1/2, -1/2); mixed pairs have probability 1/2:
    # E = k (1/4, -1/4) = k grad J (grad J = pi_a (r_a - J) = (1/4, -1/4)). Proportional with c = k.
    mdp = TabularMDP(initial=[1], transitions=[[[1.0], [1.0]]], rewards=[[1.0, 0.0]], horizon=1)
    check = check_batch_estimator(normalized, Problem(mdp, TabularSoftmax(np.zeros((1, 2)))), batch_size=2,
                                  second_batch_size=3)
    assert (check.verdict, check.method, check.convention) == ("proportional", "exact: every batch", None)
    assert check.c == pytest.approx(0.5 / (0.5 + NORMALIZE_EPS), rel=1e-12)
    assert [s.batch_size for s in check.sizes] == [2, 3]


def test_batch_normalisation_bias_shrinks_with_the_batch(chain):
    # A three-trajectory MDP (episodes of 1 or 2 steps): every batch of 2 and of 4 is enumerated.
    mdp = TabularMDP(initial=[1, 0, 0], transitions=[[[0, 0, 1], [0, 1, 0]], [[0, 0, 1], [0, 1, 0]], [[0, 0, 1]] * 2],
                     rewards=[[1.0, 0.0], [2.0, 0.5], [0.0, 0.0]], terminal=[2], gamma=0.9, horizon=2)
    pol = TabularSoftmax(np.array([[0.3, -0.2], [0.1, 0.4], [0.0, 0.0]]))
    check = check_batch_estimator(normalized, Problem(mdp, pol), batch_size=2, second_batch_size=4)
    assert check.verdict == "biased" and check.method == "exact: every batch"
    small, large = check.sizes
    assert large.nonproportional < small.nonproportional


def test_monte_carlo_unbiased_and_biased_on_a_problem_without_enumeration():
    discounted = builtin_examples()["discounted"]        # horizon null: nothing to enumerate
    ok = check_batch_estimator(batch_mean, discounted, batch_size=8, batches=800, alpha=1e-6, tolerance=0.3)
    assert (ok.method, ok.verdict) == ("monte carlo", "unbiased"), ok.format()
    assert ok.resolution <= 0.3
    bad = check_batch_estimator(restarted, discounted, batch_size=8, batches=800, alpha=1e-6, tolerance=0.3)
    assert bad.verdict == "biased", bad.format()
    assert bad.p_unbiased <= 1e-6


def test_a_run_without_power_is_undecided_never_unbiased():
    discounted = builtin_examples()["discounted"]
    check = check_batch_estimator(batch_mean, discounted, batch_size=2, batches=5, tolerance=1e-3)
    assert check.verdict == "undecided" and not check.passed
    assert "tolerance" in check.reason


def test_exact_verdict_cases():
    g = np.array([1.0, -2.0])
    assert exact_verdict(g.copy(), g, 1.0) == ("unbiased", 1.0)
    assert exact_verdict(3 * g, g, 1.0) == ("proportional", pytest.approx(3.0))
    assert exact_verdict(-g, g, 1.0)[0] == "biased"
    assert exact_verdict(g + np.array([0.0, 1e-6]), g, 1.0)[0] == "biased"


def test_bad_estimators_are_named(chain):
    with pytest.raises(EstimatorError, match="one per batch"):
        check_batch_estimator(lambda e: score_sums(e, reward_to_go(e)), chain, batch_size=4)
    with pytest.raises(EstimatorError, match="raised ZeroDivisionError") as info:
        check_batch_estimator(lambda e: 1 / 0, chain, batch_size=4)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    with pytest.raises(EstimatorError, match="non-finite"):
        check_batch_estimator(lambda e: np.full((4, 2), np.nan), chain, batch_size=4)


def test_a_mean_over_timesteps_is_found_even_when_sampled_lengths_agree():
    # The policy almost always stops at once (P(go) = e^-10): a sampled probe batch has episodes of length 1 only,
    # where a mean over the batch's timesteps equals the mean over episodes. The probe on enumerated trajectories
    # of both lengths tells them apart, so the check enumerates every batch instead of trusting per-episode.
    mdp = TabularMDP(initial=[1, 0, 0], transitions=[[[0, 0, 1], [0, 1, 0]], [[0, 0, 1], [0, 1, 0]], [[0, 0, 1]] * 2],
                     rewards=[[1.0, 0.0], [2.0, 0.5], [0.0, 0.0]], terminal=[2], gamma=0.9, horizon=2)
    pol = TabularSoftmax(np.array([[5.0, -5.0], [0.0, 0.0], [0.0, 0.0]]))

    def per_timestep(episodes):
        return score_sums(episodes, reward_to_go(episodes)).sum(axis=0) / episodes.lengths.sum()
    check = check_batch_estimator(per_timestep, Problem(mdp, pol), batch_size=2, second_batch_size=3)
    assert (check.convention, check.method) == (None, "exact: every batch")
