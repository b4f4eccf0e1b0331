"""``check``'s shared per-chunk work (``verify.numerics.shared``): computed once per batch, the same numbers.

The catalog's weight functions keep what several estimators need (G_t, gamma^t V_t(s_t), gamma^t Q_t(s_t, a_t),
the GAE advantages, gamma^t) on the batch, and ``verify.checks.mc`` keeps the visited rows' layout there. The
reference is the recomputation the cache replaced (``recomputing()``: every estimator computes everything
itself, as before), compared byte for byte: sharing may change when a number is computed, never the number.
"""
import numpy as np
import pytest

from verify.checks import estimators as est_mod
from verify.checks.estimators import ESTIMATORS
from verify.checks.mc import run_estimators
from verify.checks.stats import SampleMoments
from verify.model.problem import Problem
from verify.numerics.sampler import sample_episodes
from verify.numerics.shared import recomputing, shared, shared_keys

from helpers import assert_same_bits, random_problem


def _problem(seed=0, S=70, A=4, H=6):
    mdp, policy = random_problem(seed, S=S, A=A, H=H, terminal=3)
    return Problem(mdp, policy)


def test_catalog_values_on_one_batch_equal_their_recomputation():
    p = _problem()
    batch = sample_episodes(p.mdp, p.policy, 300, np.random.default_rng(1))
    with recomputing():
        alone = [np.array(e.per_episode(batch)) for e in ESTIMATORS]
    assert shared_keys(batch) == []                        # nothing stored while recomputing
    together = [e.per_episode(batch) for e in ESTIMATORS]
    for e, x, y in zip(ESTIMATORS, alone, together):
        assert_same_bits(x, y), e.name
    keys = shared_keys(batch)
    assert len(keys) == len(set(keys)) and {"gamma^t", "action_value", "state_value"} <= set(keys)


def test_the_q_values_at_the_steps_are_computed_once_per_chunk(monkeypatch):
    calls = []
    real = est_mod.action_values_at
    monkeypatch.setattr(est_mod, "action_values_at", lambda *a: calls.append(1) or real(*a))
    p = _problem(2)
    users = [e for e in ESTIMATORS if "action_value" in e.per_episode.__name__]
    assert len(users) == 4             # q_value, advantage, ppo_surrogate, action_baseline
    run_estimators(p, users, episodes=900, chunk=300, covariance="sample", paired=False)
    assert len(calls) == 3             # 3 chunks, once each
    calls.clear()
    with recomputing():
        run_estimators(p, users, episodes=900, chunk=300, covariance="sample", paired=False)
    assert len(calls) == 4 * 3         # what every estimator computing its own weights costs


@pytest.mark.parametrize("covariance, S", [("sample", 70), ("sample", 3), ("auto", 3)])
def test_run_estimators_results_equal_the_recomputation(covariance, S):
    # S = 70, A = 4: 280 parameters, the visited-rows path with the paired test; S = 3: dense, and enumerated
    p = _problem(3, S=S)
    settings = dict(episodes=1200, chunk=400, seed=5, covariance=covariance)
    shared_run = run_estimators(p, ESTIMATORS, **settings)
    with recomputing():
        alone = run_estimators(p, ESTIMATORS, **settings)
    for a, b in zip(shared_run, alone):
        ja, jb = a.to_json(), b.to_json()
        assert ja == jb, next(k for k in ja if ja[k] != jb[k])
        assert_same_bits(a.test.mean, b.test.mean)
        assert_same_bits(a.test.stderr, b.test.stderr)


def test_moments_from_entries_with_given_counts_are_the_same_bits():
    rng = np.random.default_rng(0)
    component = rng.integers(0, 7, size=50)
    value = rng.standard_normal(50)
    counts = np.bincount(component, minlength=7)
    a = SampleMoments.of_entries(60, 7, component, value, atol=0.1)
    b = SampleMoments.of_entries(60, 7, component, value, atol=0.1, counts=counts)
    for x, y in ((a.mean, b.mean), (a.scatter, b.scatter), (a.nonzero, b.nonzero), (a.power_sums, b.power_sums)):
        assert_same_bits(x, y)
    # the non-zero count, by its definition: the given entries beyond the round-off level (exact zeros and values
    # within atol are not counted)
    value[:10] = 0.0
    value[10:20] = 0.05
    c = SampleMoments.of_entries(60, 7, component, value, atol=0.1, counts=counts)
    assert c.nonzero.tolist() == np.bincount(component[np.abs(value) > 0.1], minlength=7).tolist()


def test_shared_arrays_are_read_only_so_no_estimator_can_corrupt_another():
    p = _problem(4, S=5, A=2)
    batch = sample_episodes(p.mdp, p.policy, 20, np.random.default_rng(0))
    G = est_mod.reward_to_go(batch)
    assert G is est_mod.reward_to_go(batch)
    with pytest.raises(ValueError, match="read-only"):
        G += 1.0
    # a new batch (or a sub-batch) has its own cache
    assert est_mod.reward_to_go(batch.select(slice(0, 10))) is not G
    calls = []
    shared(batch, "k", lambda b: calls.append(1) or 1.0)
    shared(batch, "k", lambda b: calls.append(1) or 2.0)
    assert calls == [1] and shared(batch, "k", lambda b: 3.0) == 1.0


def test_score_rows_with_the_shared_pi_rows_are_the_same_bits():
    p = _problem(6, S=9, A=3)
    rng = np.random.default_rng(2)
    rows = np.sort(rng.choice(40 * 9, size=25, replace=False))
    W_rows = rng.standard_normal((25, 3))
    pi_rows = p.policy.row_probs(rows)
    # pi(.|s) by hand: the softmax row of each row's state
    expected = np.exp(p.policy.theta[rows % 9]) / np.exp(p.policy.theta[rows % 9]).sum(axis=1, keepdims=True)
    assert np.allclose(pi_rows, expected, rtol=1e-14, atol=0)
    assert_same_bits(p.policy.score_rows(W_rows, rows, pi_rows), p.policy.score_rows(W_rows, rows))
