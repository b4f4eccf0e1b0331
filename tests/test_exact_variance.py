"""Exact per-component variances (verify.checks.variance) and the max-|z| test that uses them.

Expected values come from a second method: the exact enumeration of every trajectory with its probability
(``enumerate_trajectories``, the estimators' own code on the weighted batch), never from the DP itself. The
statistical assertions run at alpha = 1e-6 on fixed seeds, with the precondition they rely on asserted (the
sample drew no jackpot), so none is a seed lottery.
"""
from __future__ import annotations

import numpy as np
import pytest

from verify.checks.estimators import get_estimator
from verify.checks.gradcheck import as_estimator
from verify.checks.mc import run_mc
from verify.checks.stats import SampleMoments, consistency_test, detectable_bias
from verify.checks.variance import SUPPORTED, exact_variance
from verify.model.mdp import TabularMDP
from verify.model.policy import TabularSoftmax
from verify.model.problem import Problem
from verify.numerics.exact import enumerate_trajectories, gradient
from verify.numerics.sampler import sample_episodes


def random_problem(seed: int, horizon: int | None = 4) -> Problem:
    """4 states (the last terminal), 2 actions, stochastic transitions, rewards on (s, a, s'), gamma = 0.9."""
    rng = np.random.default_rng(seed)
    S, A = 4, 2
    P = rng.dirichlet(np.ones(S), size=(S, A))
    R = rng.normal(size=(S, A, S))
    mdp = TabularMDP(initial=[0.6, 0.4, 0, 0], transitions=P, rewards=R, terminal=[3], gamma=0.9, horizon=horizon)
    return Problem(mdp, TabularSoftmax(rng.normal(size=(S, A))))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", SUPPORTED)
def test_exact_variance_matches_enumeration(seed, name):
    prob = random_problem(seed)
    enum = enumerate_trajectories(prob.mdp, prob.policy)
    est = get_estimator(name)
    g = np.asarray(est.per_episode(enum)).reshape(enum.n, -1)
    mean = enum.weights @ g
    var = enum.weights @ (g - mean) ** 2
    res = exact_variance(est, prob.mdp, prob.policy)
    assert res.ok
    np.testing.assert_allclose(res.mean.ravel(), mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.variance.ravel(), var, rtol=1e-9, atol=1e-12)
    assert var.max() > 1e-3            # a check that could fail: the variances are not all zero


def test_exact_variance_absent_where_it_does_not_apply():
    prob = random_problem(0)
    rtg = get_estimator("reward_to_go")
    user = as_estimator(rtg.per_episode.__wrapped__ if hasattr(rtg.per_episode, "__wrapped__")
                        else (lambda eps: rtg.per_episode(eps)), name="reward_to_go")
    assert exact_variance(user, prob.mdp, prob.policy) is None           # a user's function, even under the name
    assert exact_variance(get_estimator("rtg_restart_discount"), prob.mdp, prob.policy) is None   # a pitfall
    assert exact_variance(rtg, random_problem(0, horizon=None).mdp, prob.policy) is None     # horizon null


def jackpot_problem(p: float = 1e-6, jackpot: float = 1e6) -> Problem:
    """One decision at s0: a0 pays +-1 (prob (1 - p) / 2 each) or, with probability p, a jackpot; a1 pays +-1.

    E[g_(s0, a0)] = pi0 (1 - pi0) p jackpot = 0.25 at theta = 0: the mean of that component is carried by a value
    far rarer than 1 in N, while its sampled values (+-0.5 in every episode) look perfectly normal.
    """
    S, A = 4, 2          # s0, then terminal states paying +1, -1 and the jackpot
    P = np.zeros((S, A, S))
    P[0, 0, 1:] = [(1 - p) / 2, (1 - p) / 2, p]
    P[0, 1, 1:3] = 0.5
    P[1:, :, 1:] = np.eye(3)[:, None, :]
    R = np.zeros((S, A, S))
    R[0, :, 1], R[0, :, 2], R[0, 0, 3] = 1.0, -1.0, jackpot
    mdp = TabularMDP(initial=[1, 0, 0, 0], transitions=P, rewards=R, terminal=[1, 2, 3], horizon=1)
    return Problem(mdp, TabularSoftmax(np.zeros((S, A))))


def test_rare_large_value_no_false_alarm_and_a_real_bias_is_caught():
    prob = jackpot_problem()
    rtg = get_estimator("reward_to_go")
    grad = gradient(prob.mdp, prob.policy).grad
    assert grad[0, 0] == pytest.approx(0.25, rel=1e-6)
    eps = sample_episodes(prob.mdp, prob.policy, 2000, np.random.default_rng(0))
    assert not np.any(eps.s_t[:, 1] == 3)                     # precondition: no jackpot in this sample
    sample = SampleMoments.of(np.asarray(rtg.per_episode(eps)), diagonal=True)
    alpha = 1e-6
    # The sample's own yardstick: z ~ 0.25 / (0.5 / sqrt(2000)) ~ 22, a false alarm at any alpha.
    assert consistency_test(sample, grad, alpha=alpha).verdict == "inconsistent"
    var = exact_variance(rtg, prob.mdp, prob.policy)
    # psi^2 = 1/4 in every episode; E[r^2] = (p J^2 + 1 - p) / 2 + 1 / 2 over the two actions; minus the mean^2.
    p, J = 1e-6, 1e6
    assert var.ok and var.variance[0, 0] == pytest.approx(0.25 * ((p * J * J + 1 - p) / 2 + 0.5) - 0.25**2, rel=1e-9)
    exact = consistency_test(sample, grad, alpha=alpha, variance=var.variance)
    assert exact.verdict == "consistent" and exact.exact_variance
    assert abs(exact.z[0, 0]) < 0.1
    # Power is what the result states: a bias twice its detectable size in that component is rejected.
    size = detectable_bias(exact)[0, 0]
    assert np.isfinite(size)
    for sign in (1, -1):
        shifted = grad.copy()
        shifted[0, 0] += sign * 2 * size
        assert consistency_test(sample, shifted, alpha=alpha, variance=var.variance).verdict == "inconsistent"


def test_mc_uses_the_exact_variance_when_sampling():
    prob = jackpot_problem()
    r = run_mc(prob, "reward_to_go", episodes=2000, seed=0, alpha=1e-6, covariance="sample")
    assert r.test.exact_variance and r.verdict != "inconsistent"
    user = as_estimator(lambda eps: get_estimator("reward_to_go").per_episode(eps), name="my_rtg")
    u = run_mc(prob, user, episodes=2000, seed=0, alpha=1e-6, covariance="sample", paired=False)
    assert not u.test.exact_variance and u.verdict == "inconsistent"    # what the sample alone concludes


def test_some_states_only_give_the_same_rows():
    full = exact_variance(get_estimator("gae"), random_problem(2).mdp, random_problem(2).policy)
    prob = random_problem(2)
    part = exact_variance(get_estimator("gae"), prob.mdp, prob.policy, states=[2, 0])
    np.testing.assert_allclose(part.variance[[0, 2]], full.variance[[0, 2]], rtol=1e-12, atol=1e-15)
    assert np.isnan(part.variance[[1, 3]]).all() and part.ok
    # asked again for more states: the cached rows stay, the new ones are computed
    more = exact_variance(get_estimator("gae"), prob.mdp, prob.policy)
    np.testing.assert_allclose(more.variance, full.variance, rtol=1e-12, atol=1e-15)
