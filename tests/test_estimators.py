"""The estimator catalog: exact means against exact gradients, pitfalls' biases, and a loop-by-loop reference.

Expected values come from elsewhere: grad J by dynamic programming (verify.numerics.exact), values V_t by the exact
objective of shortened problems (no value table involved), Q_t from them by one step of the definition, closed
forms for the bandit, and per-trajectory Python loops written from the formulas for the per-episode values.
"""
import numpy as np
import pytest
from hypothesis import given

from verify.model.builtin import builtin_examples
from verify.errors import UsageError
from verify.checks.estimators import (ESTIMATORS, GAE_LAMBDA, NORMALIZE_EPS, VALUE_NOISE, estimator_names, gae_estimator,
                               get_estimator)
from verify.numerics.exact import enumerate_trajectories, gradient, objective, value_tables
from verify.checks.moments import exact_moments, exact_moments_all
from verify.numerics.sampler import sample_episodes
from verify.testing.strategies import problems

from helpers import random_problem

UNBIASED = [e for e in ESTIMATORS if e.unbiased]
PITFALLS = [e for e in ESTIMATORS if not e.unbiased]


def finite_examples():
    return {name: (p.mdp, p.policy) for name, p in builtin_examples().items() if p.mdp.horizon is not None}


MDPS = {**finite_examples(),
        **{f"random{i}": random_problem(i, S=2 + i % 3, A=2 + i % 2, H=1 + i % 4, gamma=[1.0, 0.9, 0.5][i % 3],
                                        linear=i % 2 == 1) for i in range(12)}}


# --- an independent oracle for V_t and Q_t: the objective of shortened problems ----------------------------------

_ORACLE: dict = {}


def oracle_values(mdp, policy):
    """V [H, S] and Q [H, S, A] from the exact objective J of the problem started at s with H - t actions left."""
    key = (id(mdp), id(policy))
    if key in _ORACLE and _ORACLE[key][0] is mdp and _ORACLE[key][1] is policy:
        return _ORACLE[key][2]
    H, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    V = np.zeros((H + 1, S))          # V[H] = 0: no action left
    for t in range(H):
        for s in range(S):
            if not mdp.terminal[s]:
                V[t, s] = objective(mdp.replace(initial=np.eye(S)[s], horizon=H - t), policy)
    # Q_t(s, a) = E[r(s, a, s') + gamma V_{t+1}(s') (0 when s' is terminal)] over s' ~ P(.|s, a): the definition.
    alive = ~mdp.terminal
    Q = np.array([[[mdp.transitions[s, a] @ (mdp.rewards[s, a] + mdp.gamma * V[t + 1] * alive)
                    for a in range(A)] for s in range(S)] for t in range(H)])
    _ORACLE[key] = (mdp, policy, (V[:H], Q))
    return V[:H], Q


# --- reference implementations: one trajectory, one step at a time ------------------------------------------------

def reference_per_episode(name, eps):
    mdp, policy, g = eps.mdp, eps.policy, eps.mdp.gamma
    V, Q = oracle_values(mdp, policy)
    lam = GAE_LAMBDA
    noise = VALUE_NOISE * max(np.abs(V).max(), np.abs(mdp.successors.reward).max()) * \
        np.random.default_rng(V.shape).standard_normal(V.shape)
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

    def gae(table, s, r, t, L):
        value = lambda u: table(u, s[u]) if u < L else 0.0     # noqa: E731  (no action left: value 0)
        delta = [r[u] + g * value(u + 1) - value(u) for u in range(L)]
        return sum((g * lam) ** (u - t) * delta[u] for u in range(t, L))

    out = np.zeros((eps.n, *policy.theta.shape))
    for n, (s, a, r, G, L) in enumerate(runs):
        R = G[0] if L else 0.0
        for t in range(L):
            weight = {
                "total_return": lambda: R,
                "reward_to_go": lambda: G[t],
                "baseline_constant": lambda: R - J,
                "baseline_value": lambda: G[t] - g ** t * V[t, s[t]],
                "q_value": lambda: g ** t * Q[t, s[t], a[t]],
                "advantage": lambda: g ** t * (Q[t, s[t], a[t]] - V[t, s[t]]),
                "gae": lambda: g ** t * gae(lambda u, x: V[u, x], s, r, t, L),
                "rtg_restart_discount": lambda: sum(g ** (u - t) * r[u] for u in range(t, L)),
                "rtg_skip_current": lambda: G[t] - g ** t * r[t],
                "action_baseline": lambda: G[t] - g ** t * Q[t, s[t], a[t]],
                "score_wrong_time": lambda: G[t - 1] if t >= 1 else 0.0,
                "batch_normalized": lambda: (G[t] - mu) / (sd + NORMALIZE_EPS),
                "gae_stationary_value": lambda: g ** t * gae(lambda u, x: V[0, x], s, r, t, L),
                "gae_noisy_value": lambda: g ** t * gae(lambda u, x: V[u, x] + noise[u, x], s, r, t, L),
                "gae_no_discount": lambda: gae(lambda u, x: V[u, x], s, r, t, L),
                # d/dtheta min(rho A, clip(rho) A) at rho = pi/pi_old = 1: A grad log pi (the clip is inactive)
                "ppo_surrogate": lambda: g ** t * (Q[t, s[t], a[t]] - V[t, s[t]]),
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
    # Structural facts of two pitfalls, derived by hand (module docstring of verify.checks.estimators):
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
    for name in ("chain", "random3", "random6"):
        mdp, policy = MDPS[name]
        V, Q = value_tables(mdp, policy)
        assert V.shape == (mdp.horizon, mdp.n_states) and Q.shape == (mdp.horizon, mdp.n_states, mdp.n_actions)
        V_oracle, Q_oracle = oracle_values(mdp, policy)
        np.testing.assert_allclose(V, V_oracle, rtol=0, atol=1e-13)
        np.testing.assert_allclose(Q, Q_oracle, rtol=0, atol=1e-13)
    disc = builtin_examples()["discounted"]
    V, Q = value_tables(disc.mdp, disc.policy)
    assert V.shape == (1, 3)
    assert disc.mdp.initial @ V[0] == pytest.approx(gradient(disc.mdp, disc.policy).J, abs=1e-13)
    np.testing.assert_allclose(V[0], (disc.policy.probs * Q[0]).sum(axis=1), atol=1e-13)


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
                                          "score_wrong_time", "batch_normalized", "gae_stationary_value",
                                          "gae_noisy_value", "gae_no_discount"}
    assert {"q_value", "advantage", "gae", "ppo_surrogate"} <= {e.name for e in UNBIASED}
    assert len(set(estimator_names())) == len(ESTIMATORS)
    for e in ESTIMATORS:
        assert e.latex.count("{") == e.latex.count("}") and "nabla" in e.latex and e.description
        assert get_estimator(e.name) is e


# --- the Q, advantage and GAE forms (issue 13) -------------------------------------------------------------------

LAMBDAS = (0.0, 0.3, 0.95, 1.0)


@pytest.mark.parametrize("name", ["chain", "gridworld", "random1", "random2", "random3", "random6", "random10"])
def test_gae_with_exact_values_is_unbiased_for_every_lambda(name):
    mdp, policy = MDPS[name]
    grad = gradient(mdp, policy, "dp").grad
    for lam in LAMBDAS:
        m = exact_moments(gae_estimator(lam), mdp, policy)
        np.testing.assert_allclose(m.mean, grad, rtol=0, atol=1e-10 * m.scale, err_msg=f"lambda {lam}")


@pytest.mark.parametrize("values", ["stationary", "noisy"])
def test_gae_with_inexact_values_is_biased_unless_lambda_is_one(values):
    biased_on = {lam: [] for lam in LAMBDAS}
    for name, (mdp, policy) in MDPS.items():
        for lam in LAMBDAS:
            if exact_moments(gae_estimator(lam, values=values), mdp, policy).biased:
                biased_on[lam].append(name)
    assert biased_on[1.0] == []                     # telescopes to G_t - gamma^t V(s_t): a state baseline
    for lam in LAMBDAS[:-1]:
        assert len(biased_on[lam]) >= 3, (lam, biased_on[lam])


def test_gae_without_the_discount_weight_is_biased_exactly_when_gamma_below_one():
    for name, (mdp, policy) in MDPS.items():
        for lam in (0.5, 1.0):
            m = exact_moments(gae_estimator(lam, discount=False), mdp, policy)
            if mdp.gamma == 1.0:
                assert not m.biased, name
    biased = [name for name, (mdp, policy) in MDPS.items()
              if mdp.gamma < 1 and exact_moments(get_estimator("gae_no_discount"), mdp, policy).biased]
    assert len(biased) >= 3, biased


def test_gae_bias_on_a_two_step_chain_by_hand():
    # One state s, two actions, H = 2, reward 1 for action 0, uniform policy, gamma = 1/2. V_1 = 1/2, V_0 = 3/4.
    # The score of a at t: e_a - (1/2, 1/2), so E[score (a = 0 indicator)] = (1/4, -1/4).
    # GAE(0) with V_0 at both steps: A_t = r_t + gamma V_0 [t = 0] - V_0; at t = 1 the true V_1 = 1/2 is replaced
    # by 3/4, and at t = 0 the bootstrap V_0 = 3/4 replaces V_1 = 1/2. Only the r_t and bootstrap parts correlate
    # with the score of a_t: E[score_0 A_0] = (1/4, -1/4) (r_0; the bootstrap is the same for both actions), and
    # E[score_1 A_1] = (1/4, -1/4), weighted by gamma = 1/2: the mean is (3/8, -3/8), the same as grad J.
    from verify.model.mdp import TabularMDP
    from verify.model.policy import TabularSoftmax
    mdp = TabularMDP(initial=[1], transitions=[[[1.0], [1.0]]], rewards=[[1.0, 0.0]], gamma=0.5, horizon=2)
    policy = TabularSoftmax(np.zeros((1, 2)))
    grad = gradient(mdp, policy).grad
    np.testing.assert_allclose(grad, [[0.375, -0.375]], atol=1e-15)
    # With one state the baseline never depends on the action: a stationary V only shifts a state baseline,
    # so even GAE(0) stays unbiased here, while dropping gamma^t weights step 1 by 1 instead of 1/2.
    m = exact_moments_all(ESTIMATORS, mdp, policy)
    np.testing.assert_allclose(m["gae_stationary_value"].mean, grad, atol=1e-15)
    np.testing.assert_allclose(m["gae_no_discount"].mean, [[0.5, -0.5]], atol=1e-15)
    np.testing.assert_allclose(m["gae_no_discount"].bias, [[0.125, -0.125]], atol=1e-15)
    np.testing.assert_allclose(m["q_value"].mean, grad, atol=1e-15)
    np.testing.assert_allclose(m["advantage"].mean, grad, atol=1e-15)


def test_q_value_and_advantage_variances_are_ordered_on_the_bandit():
    # One step: q_value weights the score by q_a, advantage by q_a - J: the same mean, and the advantage's
    # variance is Var_pi[(e_a - pi)(q_a - J)] <= that of (e_a - pi) q_a here (J between the q's).
    problem = builtin_examples()["bandit"]
    m = exact_moments_all([get_estimator("q_value"), get_estimator("advantage")], problem.mdp, problem.policy)
    assert np.trace(m["advantage"].cov) < np.trace(m["q_value"].cov)
    assert not m["q_value"].biased and not m["advantage"].biased


def test_gae_lambda_is_checked():
    with pytest.raises(UsageError, match="lambda"):
        gae_estimator(1.5)
    with pytest.raises(UsageError, match="value table"):
        gae_estimator(0.5, values="learned")


@pytest.mark.parametrize("name", ["", "REINFORCE", "reward-to-go", "total_return "])
def test_unknown_estimator_names_list_the_catalog(name):
    with pytest.raises(UsageError, match=r"unknown estimator .*known estimators: total_return, reward_to_go"):
        get_estimator(name)


def test_exact_moments_need_a_finite_horizon():
    disc = builtin_examples()["discounted"]
    with pytest.raises(UsageError, match="finite horizon"):
        exact_moments(get_estimator("total_return"), disc.mdp, disc.policy)


def test_chunked_enumeration_moments_match(monkeypatch):
    import verify.checks.moments as moments
    mdp, policy = random_problem(5, S=3, A=3, H=4)
    est = get_estimator("baseline_value")
    whole = exact_moments(est, mdp, policy)
    monkeypatch.setattr(moments, "ENUMERATION_CHUNK", 37)
    chunked = exact_moments(est, mdp, policy)
    np.testing.assert_allclose(chunked.mean, whole.mean, atol=1e-14)
    np.testing.assert_allclose(chunked.cov, whole.cov, atol=1e-13)


@pytest.mark.parametrize("name", ["chain", "discounted"])
def test_ppo_clipped_at_theta_old_is_its_weights_bit_for_bit(name):
    """At theta = theta_old (the default) the clipped weights are the weights themselves: the ratio computed in full
    (old log-probabilities passed explicitly) gives the same bits as the default's shortcut."""
    from verify.checks.estimators import ppo_clipped, state_value

    problem = builtin_examples()[name]
    eps = sample_episodes(problem.mdp, problem.policy, 300, np.random.default_rng(5))
    shortcut = ppo_clipped(state_value)(eps)
    full = ppo_clipped(state_value, old_log_probs=lambda e: e.policy.log_probs)(eps)
    assert shortcut.tobytes() == full.tobytes() == state_value(eps).tobytes()
    assert not ppo_clipped(state_value, clip=0.0)(eps).any()        # no clip range: nothing active
