"""Rollouts (verify.frameworks.rollout, numpy only): the sampler's conventions, the exact target against two
independent derivations (enumerating every rollout; the renewal-reward identity g_roll = grad J / E[L] against
pgverify's DP gradient), the engine on numpy estimators of a tabular policy, and the pitfall catalog."""
import numpy as np
import pytest

from examples.frameworks.problem import corridor, two_step
from verify.checks.batchcheck import exact_verdict
from verify.errors import UsageError
from verify.numerics.exact import gradient
from verify.frameworks.rollout import (RolloutModel, RolloutSpec, check_rollout_estimates, rollout_arrays)
from verify.model.io import Limits, limits_scope
from verify.model.policy import TabularSoftmax


def _logp(theta):
    z = theta - theta.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _theta(mdp, seed=3):
    return np.random.default_rng(seed).normal(size=(mdp.n_states, mdp.n_actions))


def _jac(logp):
    """d log pi(a|s) / d theta[s', b] = [s = s'] ([a = b] - pi(b|s)) for the tabular softmax, [S A, S A]."""
    S, A = logp.shape
    pi = np.exp(logp)
    jac = np.zeros((S, A, S, A))
    for s in range(S):
        jac[s, :, s, :] = np.eye(A) - pi[s][None, :]
    return jac.reshape(S * A, S * A)


def _model(mdp, seed=3, **spec):
    return RolloutModel(mdp, _logp(_theta(mdp, seed)), RolloutSpec(**spec))


def test_expected_length_by_hand():
    # uniform policy on corridor: the episode goes on with probability 1/2 per step, at most 4 steps
    mdp = corridor()
    model = RolloutModel(mdp, np.log(np.full((5, 2), 0.5)), RolloutSpec(n_envs=1, n_steps=3))
    assert model.expected_length() == pytest.approx(1 + 1 / 2 + 1 / 4 + 1 / 8, abs=1e-15)


@pytest.mark.parametrize("make", [corridor, two_step])
def test_stationary_discounted_target_is_grad_J_over_expected_length(make):
    # renewal-reward: a loop in steady state visits (k, s) with probability p_k(s) / E[L] at every step, so the
    # rollout's policy gradient is grad J / E[L]; grad J from pgverify's DP on the tabular softmax
    mdp = make()
    theta = _theta(mdp)
    model = RolloutModel(mdp, _logp(theta), RolloutSpec(n_envs=1, n_steps=3, start="stationary"))
    want = gradient(mdp, TabularSoftmax(theta)).grad / model.expected_length()
    np.testing.assert_allclose(model.target_theta(), want, rtol=0, atol=1e-13)


def test_reset_start_is_not_a_multiple_of_grad_J():
    # early episode steps are over-represented from a reset: the target's direction differs from grad J's
    mdp = corridor()
    theta = _theta(mdp)
    model = RolloutModel(mdp, _logp(theta), RolloutSpec(n_envs=1, n_steps=3))
    g, grad = model.target_theta().ravel(), gradient(mdp, TabularSoftmax(theta)).grad.ravel()
    c = g @ grad / (grad @ grad)
    assert np.linalg.norm(g - c * grad) > 0.05 * np.linalg.norm(g)
    # three steps from a reset never reach s3 (episode step 3): its component is 0, grad J's is not
    assert g[6] == 0 and abs(grad[6]) > 1e-6


SPECS = [dict(n_steps=4), dict(n_steps=3, start="stationary"), dict(n_steps=4, weighting="visited"),
         dict(n_steps=3, start="stationary", weighting="visited")]


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("limit", [None, 3])
def test_occupancy_target_equals_the_mean_over_every_rollout(spec, limit):
    # two methods: the forward recursion over (k, s) and the probability-weighted sum over enumerated rollouts of
    # the TD(0) and GAE(lambda) estimators with the exact V (unbiased for every lambda)
    mdp = corridor() if limit is None else corridor().replace(horizon=None)
    model = _model(mdp, n_envs=1, time_limit=limit, **spec)
    enum = model.enumerate()
    assert enum is not None and enum.weights.sum() == pytest.approx(1.0, abs=1e-14)
    want = model.target_theta()
    w = model.weight(enum.k)
    for lam in (0.0, 0.5, 1.0):
        got = np.einsum("n,nsa->sa", enum.weights, model._accumulate(enum, model.gae(enum, lam), w))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-14)


def test_the_pitfalls_move_the_mean():
    mdp = corridor().replace(horizon=None)
    model = _model(mdp, n_envs=1, n_steps=4, time_limit=3)
    enum = model.enumerate()
    want = model.target_theta()
    names = set()
    for name, _, per in model.pitfall_variants(enum):
        names.add(name)
        got = np.einsum("n,nsa->sa", enum.weights, per)
        # not a positive multiple of the target (far beyond round-off: 1e-9 of the numbers' size)
        assert exact_verdict(got.ravel(), want.ravel(), np.abs(want).max())[0] == "biased", name
    assert names == {"visited_weighting", "no_bootstrap_at_cut", "no_bootstrap_at_truncation"}


def test_sampler_conventions():
    mdp = corridor().replace(horizon=None)
    model = _model(mdp, n_envs=1, n_steps=6, time_limit=3)
    ro = model.sample(500, np.random.default_rng(0))
    done = ro.terminated | ro.truncated
    assert ro.terminated.any() and ro.truncated.any()
    assert np.array_equal(ro.terminated, model.terminal[ro.next_s])
    assert np.all(ro.k[ro.truncated] + 1 == 3) and not (ro.terminated & ro.truncated).any()
    assert np.all(ro.k < 3)
    nxt_s = np.concatenate([ro.s[:, 1:], ro.last_s[:, None]], axis=1)
    nxt_k = np.concatenate([ro.k[:, 1:], ro.last_k[:, None]], axis=1)
    assert np.all(nxt_s[~done] == ro.next_s[~done]) and np.all(nxt_k[~done] == ro.k[~done] + 1)
    assert np.all(nxt_k[done] == 0) and np.all(mdp.initial[nxt_s[done]] > 0)
    assert np.all(ro.k[:, 0] == 0)          # reset start


def test_sampled_reference_mean_matches_the_target():
    # the Monte Carlo reference is unbiased for g_roll: each component within 5 standard errors (a false alarm
    # has probability below 1e-5 per component)
    model = _model(two_step(), n_envs=1, n_steps=5)
    ro = model.sample(40_000, np.random.default_rng(1))
    per = model.reference(ro).reshape(ro.n, -1)
    se = per.std(axis=0, ddof=1) / np.sqrt(ro.n)
    z = (per.mean(axis=0) - model.target_theta().ravel()) / np.where(se > 0, se, 1)
    assert np.abs(z).max() < 5


@pytest.mark.parametrize("time_major", [True, False])
def test_rollout_arrays_layout(time_major):
    model = _model(two_step(), n_envs=3, n_steps=4, time_major=time_major)
    ro = model.sample(3, np.random.default_rng(2))
    b = rollout_arrays(ro, model, np.eye(3))
    shape = (4, 3) if time_major else (3, 4)
    for f in ("actions", "rewards", "terminated", "truncated", "dones", "starts", "logprobs", "values",
              "next_values", "steps"):
        assert getattr(b, f).shape == shape, f
    assert b.obs.shape == (*shape, 3) and b.last_obs.shape == (3, 3) and b.last_value.shape == (3,)
    starts, dones = (b.starts, b.dones) if time_major else (b.starts.T, b.dones.T)
    assert starts[0].all() and np.array_equal(starts[1:], dones[:-1])
    assert np.all(b.next_values[b.terminated] == 0)
    lp = b.logprobs if not time_major else b.logprobs.T
    np.testing.assert_array_equal(lp, model.logp[ro.s, ro.a])


def test_spec_rejects_bad_settings():
    for bad in (dict(n_envs=0), dict(n_steps=True), dict(start="warm"), dict(weighting="x"), dict(time_limit=0)):
        with pytest.raises(UsageError):
            RolloutSpec(**bad)
    with pytest.raises(UsageError, match="time_limit applies to horizon-null"):
        _model(corridor(), time_limit=2)


# --- the engine on numpy estimators of a tabular policy ---------------------------------------------------------

def _check(mdp, estimator, spec, **kw):
    theta = _theta(mdp)
    logp = _logp(theta)
    model = RolloutModel(mdp, logp, RolloutSpec(**spec))
    jac = _jac(logp)
    grad = gradient(mdp, TabularSoftmax(theta)).grad.ravel()
    names = tuple(f"theta[{s}, {a}]" for s in range(mdp.n_states) for a in range(mdp.n_actions))
    return check_rollout_estimates(lambda ro: estimator(model, ro) @ jac, model, jac, grad, names, loss="numpy",
                                   scale=1.0, **kw)


def _gae_mean(lam, **kw):
    def est(model, ro):
        return model._accumulate(ro, model.gae(ro, lam, **kw), model.weight(ro.k)).reshape(ro.n, -1).mean(axis=0)
    return est


def test_engine_exact_unbiased_and_sum_proportional():
    check = _check(corridor(), _gae_mean(0.95), dict(n_envs=2, n_steps=4))
    assert check.verdict == "unbiased" and check.method == "exact: per-environment" and check.convention == "mean"

    def summed(model, ro):
        return _gae_mean(0.5)(model, ro) * ro.n
    check = _check(corridor(), summed, dict(n_envs=2, n_steps=4))
    assert check.verdict == "proportional" and check.c == pytest.approx(2.0, abs=1e-9)


def test_engine_names_a_missing_truncation_bootstrap_and_its_lambda():
    mdp = corridor().replace(horizon=None)
    check = _check(mdp, _gae_mean(0.9, bootstrap_truncation=False), dict(n_envs=2, n_steps=4, time_limit=3))
    assert check.verdict == "biased"
    assert check.causes[0][0] == "no_bootstrap_at_truncation" and "lambda = 0.9" in check.causes[0][1]


def test_engine_names_the_dropped_discount():
    def visited(model, ro):
        return model._accumulate(ro, model.gae(ro, 0.0), np.ones(ro.k.shape)).reshape(ro.n, -1).mean(axis=0)
    check = _check(corridor(), visited, dict(n_envs=2, n_steps=4))
    assert check.verdict == "biased" and check.causes[0][0] == "visited_weighting"


def test_engine_judges_an_entropy_bonus_when_told_beta():
    def with_entropy(model, ro):
        return _gae_mean(0.0)(model, ro) + 0.3 * model.entropy_theta().ravel()
    check = _check(corridor(), with_entropy, dict(n_envs=2, n_steps=4))
    assert check.verdict == "biased" and check.causes[0][0] == "entropy"
    assert check.entropy[0] == pytest.approx(0.3, abs=1e-9)
    check = _check(corridor(), with_entropy, dict(n_envs=2, n_steps=4), entropy_coef=0.3)
    assert check.verdict == "unbiased" and check.objective == "J + 0.3 H"


def test_engine_counts_non_finite_evaluations():
    def nan_on_long(model, ro):
        g = _gae_mean(0.0)(model, ro)
        return g * np.nan if (ro.s == 3).any() else g
    check = _check(corridor(), nan_on_long, dict(n_envs=2, n_steps=4))
    assert check.verdict == "undecided" and check.nan_batches > 0 and "not finite" in check.reason
    assert "non-finite loss on" in check.format()


def test_engine_refuses_a_random_estimator():
    rng = np.random.default_rng(0)

    def noisy(model, ro):
        return _gae_mean(0.0)(model, ro) + rng.normal(size=model.mdp.n_states * model.mdp.n_actions)
    with pytest.raises(UsageError, match="random"):
        _check(corridor(), noisy, dict(n_envs=2, n_steps=4))


def test_engine_monte_carlo_states_its_cost_and_respects_max_work():
    said = []
    # 13 steps: 2^13 rollouts of one environment, more than the enumeration allows
    check = _check(corridor(), _gae_mean(0.9), dict(n_envs=2, n_steps=13), batches=400, alpha=1e-6,
                   on_monte_carlo=said.append)
    assert check.method == "monte carlo" and check.verdict != "biased"
    assert said and "400 rollouts x 2 environments x 13 steps" in said[0]
    with limits_scope(Limits(max_work=1000)), pytest.raises(UsageError, match="max-work"):
        _check(corridor(), _gae_mean(0.9), dict(n_envs=2, n_steps=13), batches=400)


def test_engine_monte_carlo_detects_a_large_bias():
    def visited(model, ro):       # gamma = 0.5: the dropped gamma^k moves the mean by ~35 %
        return model._accumulate(ro, model.gae(ro, 0.0), np.ones(ro.k.shape)).reshape(ro.n, -1).mean(axis=0)
    check = _check(two_step().replace(gamma=0.5), visited, dict(n_envs=2, n_steps=14), batches=3000)
    assert check.method == "monte carlo" and check.verdict == "biased"
    assert check.nonprop_ci is not None and check.nonprop_ci[0] <= check.nonproportional <= check.nonprop_ci[1]
