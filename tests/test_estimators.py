"""The estimator catalog: exact means against exact gradients, pitfalls' biases, and a loop-by-loop reference.

Expected values come from elsewhere: grad J by dynamic programming (verify.exact), values V_t by the exact
objective of shortened problems, closed forms for the bandit, and per-trajectory Python loops written from the
formulas for the per-episode values.
"""
import numpy as np
import pytest
from hypothesis import given

from verify.builtin import builtin_examples
from verify.errors import UsageError
from verify.estimators import ESTIMATORS, NORMALIZE_EPS, estimator_names, get_estimator, value_tables
from verify.exact import enumerate_trajectories, gradient, objective
from verify.moments import exact_moments, exact_moments_all
from verify.sampler import sample_episodes
from verify.strategies import problems

from helpers import random_problem

UNBIASED = [e for e in ESTIMATORS if e.unbiased]
PITFALLS = [e for e in ESTIMATORS if not e.unbiased]


def finite_examples():
    return {name: (p.mdp, p.policy) for name, p in builtin_examples().items() if p.mdp.horizon is not None}


MDPS = {**finite_examples(),
        **{f"random{i}": random_problem(i, S=2 + i % 3, A=2 + i % 2, H=1 + i % 4, gamma=[1.0, 0.9, 0.5][i % 3],
                                        linear=i % 2 == 1) for i in range(12)}}


# --- reference implementations: one trajectory, one step at a time ------------------------------------------------

def reference_per_episode(name, eps):
    mdp, policy, g = eps.mdp, eps.policy, eps.mdp.gamma
    V, Q = value_tables(mdp, policy)
    at = (lambda table, t: table[t if table.shape[0] > 1 else 0])
    runs = []
    for n in range(eps.n):
        L = int(eps.lengths[n])
        s, a, r = eps.s_t[n, :L + 1].tolist(), eps.a_t[n, :L].tolist(), eps.r_t[n, :L].tolist()
        G = [sum(g ** u * r[u] for u in range(t, L)) for t in range(L)]
        runs.append((s, a, r, G, L))
    if name == "batch_normalized":
        w = np.ones(eps.n) if eps.weights is None else eps.weights
        steps = [(w[n], Gt) for n, (_, _, _, G, _) in enumerate(runs) for Gt in G]
        total = sum(wn for wn, _ in steps)
        mu = sum(wn * Gt for wn, Gt in steps) / total
        sd = np.sqrt(sum(wn * (Gt - mu) ** 2 for wn, Gt in steps) / total)
    J = objective(mdp, policy)
    out = np.zeros((eps.n, *policy.theta.shape))
    for n, (s, a, r, G, L) in enumerate(runs):
        R = G[0] if L else 0.0
        for t in range(L):
            weight = {
                "total_return": lambda: R,
                "reward_to_go": lambda: G[t],
                "baseline_constant": lambda: R - J,
                "baseline_value": lambda: G[t] - g ** t * at(V, t)[s[t]],
                "rtg_restart_discount": lambda: sum(g ** (u - t) * r[u] for u in range(t, L)),
                "rtg_skip_current": lambda: G[t] - g ** t * r[t],
                "action_baseline": lambda: G[t] - g ** t * at(Q, t)[s[t], a[t]],
                "score_wrong_time": lambda: G[t - 1] if t >= 1 else 0.0,
                "batch_normalized": lambda: (G[t] - mu) / (sd + NORMALIZE_EPS),
            }[name]()
            out[n] += weight * policy.score(s[t], a[t])
    return out


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: e.name)
@pytest.mark.parametrize("problem", ["chain", "gridworld", "random1", "random6"])
def test_vectorised_values_match_the_step_by_step_reference(estimator, problem):
    mdp, policy = MDPS[problem]
    # Enumerations carry weights (population statistics for batch_normalized); small ones keep the loops quick.
    batch = (enumerate_trajectories(mdp, policy) if problem in ("chain", "random1")
             else sample_episodes(mdp, policy, 100, np.random.default_rng(3)))
    np.testing.assert_allclose(estimator.per_episode(batch), reference_per_episode(estimator.name, batch),
                               rtol=1e-10, atol=1e-12)


# --- exact means --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", MDPS)
def test_unbiased_estimators_have_exact_mean_grad_j(name):
    mdp, policy = MDPS[name]
    grad = gradient(mdp, policy, "dp").grad
    for m in exact_moments_all(UNBIASED, mdp, policy).values():
        np.testing.assert_allclose(m.mean, grad, rtol=0, atol=1e-10 * max(1.0, np.abs(grad).max()),
                                   err_msg=m.estimator)
        assert not m.biased


@given(problems())
def test_unbiased_estimators_exact_on_generated_problems(problem):
    moments = exact_moments_all(ESTIMATORS, problem.mdp, problem.policy)
    for e in UNBIASED:
        m = moments[e.name]
        np.testing.assert_allclose(m.mean, m.grad, rtol=0, atol=1e-9 * m.scale, err_msg=e.name)
    # Structural facts of two pitfalls, derived by hand (module docstring of verify.estimators):
    assert np.allclose(moments["action_baseline"].mean, 0.0, atol=1e-9 * moments["action_baseline"].scale)
    if problem.mdp.gamma == 1.0:
        assert not moments["rtg_restart_discount"].biased


@pytest.mark.parametrize("estimator", PITFALLS, ids=lambda e: e.name)
def test_every_pitfall_is_biased_somewhere(estimator):
    biased_on = [name for name, (mdp, policy) in MDPS.items() if exact_moments(estimator, mdp, policy).biased]
    assert len(biased_on) >= 3, biased_on


def test_bandit_closed_forms():
    # One state, one step, deterministic rewards q_a: grad J_a = pi_a (q_a - J).
    q = np.array([1.0, 0.0, 0.5])
    problem = builtin_examples()["bandit"]
    pi = problem.policy.probs[0]
    J = pi @ q
    grad = (pi * (q - J))[None]
    m = exact_moments_all(ESTIMATORS, problem.mdp, problem.policy)
    np.testing.assert_allclose(m["total_return"].mean, grad, atol=1e-15)
    # With one step, skipping r_0 or shifting the score by one leaves nothing: mean 0, variance 0, bias -grad J.
    for name in ("rtg_skip_current", "score_wrong_time", "action_baseline"):
        np.testing.assert_allclose(m[name].mean, 0.0, atol=1e-15)
        np.testing.assert_allclose(m[name].cov, 0.0, atol=1e-30)
        np.testing.assert_allclose(m[name].bias, -grad, atol=1e-15)
    # gamma = 1 and one step: restarting the discount changes nothing.
    assert not m["rtg_restart_discount"].biased
    # Normalising by the population std scales the gradient by 1/(std(q) + eps) (one step: G_0 = R).
    sd = np.sqrt(pi @ (q - J) ** 2)
    np.testing.assert_allclose(m["batch_normalized"].mean, grad / (sd + NORMALIZE_EPS), atol=1e-14)
    assert m["batch_normalized"].limit


def test_value_tables_are_values_of_shortened_problems():
    mdp, policy = MDPS["chain"]
    V, Q = value_tables(mdp, policy)
    assert V.shape == (mdp.horizon, mdp.n_states) and Q.shape == (mdp.horizon, mdp.n_states, mdp.n_actions)
    for t in range(mdp.horizon):
        for s in range(mdp.n_states):
            shorter = mdp.replace(initial=np.eye(mdp.n_states)[s], horizon=mdp.horizon - t)
            assert V[t, s] == pytest.approx(objective(shorter, policy), abs=1e-13)
    np.testing.assert_allclose(V, (policy.probs * Q).sum(axis=2), atol=1e-15)
    disc = builtin_examples()["discounted"]
    V, Q = value_tables(disc.mdp, disc.policy)
    assert V.shape == (1, 3)
    assert disc.mdp.initial @ V[0] == pytest.approx(gradient(disc.mdp, disc.policy).J, abs=1e-13)


def test_batch_normalized_depends_on_the_batch():
    mdp, policy = MDPS["chain"]
    eps = sample_episodes(mdp, policy, 400, np.random.default_rng(0))
    est = get_estimator("batch_normalized")
    assert est.batch_dependent
    assert not np.allclose(est.per_episode(eps)[:200], est.per_episode(eps.select(slice(0, 200))))
    # The per-episode ones do not.
    rtg = get_estimator("reward_to_go")
    np.testing.assert_array_equal(rtg.per_episode(eps)[:200], rtg.per_episode(eps.select(slice(0, 200))))


def test_catalog():
    assert estimator_names()[:4] == ("total_return", "reward_to_go", "baseline_constant", "baseline_value")
    assert {e.name for e in PITFALLS} == {"rtg_restart_discount", "rtg_skip_current", "action_baseline",
                                          "score_wrong_time", "batch_normalized"}
    assert len(set(estimator_names())) == len(ESTIMATORS)
    for e in ESTIMATORS:
        assert e.latex.count("{") == e.latex.count("}") and "nabla" in e.latex and e.description
        assert get_estimator(e.name) is e


@pytest.mark.parametrize("name", ["", "REINFORCE", "reward-to-go", "total_return "])
def test_unknown_estimator_names_list_the_catalog(name):
    with pytest.raises(UsageError, match=r"unknown estimator .*known estimators: total_return, reward_to_go"):
        get_estimator(name)


def test_exact_moments_need_a_finite_horizon():
    disc = builtin_examples()["discounted"]
    with pytest.raises(UsageError, match="finite horizon"):
        exact_moments(get_estimator("total_return"), disc.mdp, disc.policy)


def test_chunked_enumeration_moments_match(monkeypatch):
    import verify.moments as moments
    mdp, policy = random_problem(5, S=3, A=3, H=4)
    est = get_estimator("baseline_value")
    whole = exact_moments(est, mdp, policy)
    monkeypatch.setattr(moments, "ENUMERATION_CHUNK", 37)
    chunked = exact_moments(est, mdp, policy)
    np.testing.assert_allclose(chunked.mean, whole.mean, atol=1e-14)
    np.testing.assert_allclose(chunked.cov, whole.cov, atol=1e-13)
