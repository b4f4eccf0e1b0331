"""verify.checks.theory on generated MDPs: each identity checked against a second, independent computation.

Fisher by DP vs by enumerating trajectories; Kakade's advantage identity (F Abar = grad J, and F^+ grad J = Abar up
to F's null space); compatible features (least squares, then F w = grad J); grad L = grad J at theta_old (and
grad L against central differences of L); PPO's clipped gradient at theta_old; the performance-difference lemma
against J by DP; TRPO's bound on generated (theta, theta') pairs; the stationary theorem against the LU solve
and central differences; the gamma^t-less update against its estimator's exact mean by enumeration, and its
Jacobian's asymmetry (a check that says "undecided" when gamma = 1, where the update is the gradient).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verify import strategies as vst
from verify import theory as T
from verify.model.builtin import load_example
from verify.errors import UsageError
from verify.numerics.exact import finite_difference_gradient, gradient
from verify.model.policy import TabularSoftmax

TOL = 1e-9
FAST = settings(max_examples=20, deadline=None)


def close(a, b, tol=TOL, what=""):
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = max(1.0, float(np.abs(b).max()) if b.size else 1.0)
    err = float(np.abs(a - b).max()) if a.size else 0.0
    assert err <= tol * scale, f"{what}: max |difference| {err:.3g} > {tol:g} x {scale:.3g}"


@st.composite
def finite_problems(draw, kind=None, max_abs=4.0, gamma=None):
    mdp = draw(vst.mdps(horizon=st.integers(1, 3), gamma=gamma))
    return mdp, draw(vst.policies(mdp, kind=kind, max_abs_theta=max_abs))


@st.composite
def any_horizon_problems(draw, kind=None, max_abs=4.0):
    horizon = draw(st.one_of(st.none(), st.integers(1, 3)))
    mdp = draw(vst.mdps(horizon=horizon, gamma=st.floats(0.0, 0.95)))
    return mdp, draw(vst.policies(mdp, kind=kind, max_abs_theta=max_abs))


def perturbed(policy, draw, size=2.0):
    delta = draw(vst.thetas(policy.theta.shape, max_abs=size))
    return policy.with_theta(policy.theta + delta)


@FAST
@given(finite_problems())
def test_fisher_by_dp_equals_fisher_by_enumeration(problem):
    mdp, pol = problem
    close(T.fisher(mdp, pol).dense(), T.fisher_by_enumeration(mdp, pol), what="F")


@FAST
@given(any_horizon_problems(kind="tabular_softmax", max_abs=30.0))
def test_kakade_fisher_times_advantage_is_the_gradient(problem):
    mdp, pol = problem
    F = T.fisher(mdp, pol)
    close(F.matvec(T.averaged_advantage(mdp, pol)), gradient(mdp, pol).grad, what="F Abar vs grad J")


@FAST
@given(any_horizon_problems(kind="tabular_softmax", max_abs=3.0))
def test_kakade_natural_gradient_is_the_advantage_up_to_the_null_space(problem):
    mdp, pol = problem
    ng = T.natural_gradient(mdp, pol).direction
    A = T.averaged_advantage(mdp, pol)
    seen = T.occupancy(mdp, pol).omega > 1e-6 * max(1e-300, T.occupancy(mdp, pol).omega.max())
    # F's null space: a constant per state (all states), and every unvisited state's row
    close(ng[seen], (A - A.mean(axis=1, keepdims=True))[seen], 1e-7, what="F^+ grad J vs Abar")
    assert np.all(ng[~seen] == 0) or not np.any(~seen)


@FAST
@given(any_horizon_problems())
def test_compatible_features_least_squares_weights_give_the_gradient(problem):
    mdp, pol = problem
    fit = T.compatible_features(mdp, pol)
    close(fit.Fw, gradient(mdp, pol).grad, 1e-8, what="F w vs grad J")


@FAST
@given(any_horizon_problems(), st.data())
def test_surrogate_gradient_equals_the_policy_gradient_at_theta_old(problem, data):
    mdp, old = problem
    at_old = T.surrogate(mdp, old, old)
    close(at_old.grad_L, gradient(mdp, old).grad, what="grad L(old) vs grad J(old)")
    close(at_old.L, gradient(mdp, old, need_grad=False).J, what="L(old) vs J(old)")
    # away from theta_old: grad L is the derivative of L (central differences), and the gap is what it is
    new = perturbed(old, data.draw, 1.0)
    s = T.surrogate(mdp, old, new)
    theta, eps = new.theta.ravel(), 1e-6
    fd = np.array([(T.surrogate(mdp, old, new.with_theta(theta + eps * e)).L
                    - T.surrogate(mdp, old, new.with_theta(theta - eps * e)).L) / (2 * eps)
                   for e in np.eye(theta.size)])
    close(s.grad_L.ravel(), fd, 1e-6, what="grad L vs central differences")
    close(s.gap, s.grad_L - gradient(mdp, new).grad, what="gap")


@FAST
@given(any_horizon_problems(), st.data())
def test_ppo_clipped_surrogate_has_the_policy_gradient_at_theta_old(problem, data):
    mdp, old = problem
    value, grad = T.ppo_clip_surrogate(mdp, old, old)
    close(grad, gradient(mdp, old).grad, what="grad L^CLIP(old) vs grad J(old)")
    close(value, T.surrogate(mdp, old, old).L - gradient(mdp, old, need_grad=False).J, what="L^CLIP(old)")
    new = perturbed(old, data.draw, 0.05)       # inside the clip range everywhere: L^CLIP = L - J(old)
    rho = new.probs / old.probs
    if np.all(np.abs(rho - 1) < 0.19):
        s = T.surrogate(mdp, old, new)
        v, g = T.ppo_clip_surrogate(mdp, old, new)
        close(g, s.grad_L, what="grad L^CLIP inside the clip range vs grad L")


def test_ppo_clip_zeroes_the_gradient_of_clipped_pairs():
    # a bandit with one good arm pushed far past 1 + eps: the clipped pair contributes nothing
    p = load_example("bandit")
    old = p.policy
    new = old.with_theta(old.theta + np.array([[3.0, 0.0, 0.0]]))
    _, g = T.ppo_clip_surrogate(p.mdp, old, new)
    A = T.averaged_advantage(p.mdp, old)
    rho = new.probs / old.probs
    active = ((rho > 0.8) & (rho < 1.2)) | (rho * A < np.clip(rho, 0.8, 1.2) * A)
    expected = new.score_contract(np.where(active, A, 0.0) * old.probs * rho)
    close(g, expected, what="clipped gradient")
    assert not active.all()


@FAST
@given(any_horizon_problems(), st.data())
def test_performance_difference_lemma(problem, data):
    mdp, old = problem
    new = perturbed(old, data.draw)
    pd = T.performance_difference(mdp, old, new)
    J_new, J_old = gradient(mdp, new, need_grad=False).J, gradient(mdp, old, need_grad=False).J
    close(pd.expected_advantage, J_new - J_old, what="sum_t gamma^t E_new[A^old] vs J(new) - J(old)")


@FAST
@given(any_horizon_problems(), st.data())
def test_trpo_lower_bound_holds_on_generated_pairs(problem, data):
    mdp, old = problem
    new = perturbed(old, data.draw, data.draw(st.sampled_from([0.01, 0.3, 3.0])))
    b = T.trpo_bound(mdp, old, new)
    assert b.holds, b.to_json()
    assert b.J == gradient(mdp, new, need_grad=False).J


def test_trpo_bound_is_not_vacuous_near_theta_old_and_refuses_gamma_one():
    p = load_example("discounted")
    new = p.policy.with_theta(p.policy.theta + 1e-3)
    b = T.trpo_bound(p.mdp, p.policy, new)
    assert b.holds and b.bound > b.J - 1e-3     # tight: the gap is O(|dtheta|^2)
    with pytest.raises(UsageError, match="gamma < 1"):
        T.trpo_bound(load_example("bandit").mdp, load_example("bandit").policy, load_example("bandit").policy)


@FAST
@given(vst.mdps(horizon=None, gamma=st.floats(0.0, 0.95)), st.data())
def test_stationary_theorem_equals_the_solve_gradient_and_finite_differences(mdp, data):
    pol = data.draw(vst.policies(mdp, max_abs_theta=4.0))
    g = T.stationary_gradient(mdp, pol)
    close(g, gradient(mdp, pol, "solve").grad, what="1/(1-gamma) E_d[psi Q] vs solve")
    close(g, finite_difference_gradient(mdp, pol), 1e-6, what="vs central differences")
    if mdp.gamma < 1:
        d = T.occupancy(mdp, pol).distribution(mdp.gamma)
        assert abs(d.sum() - (1 - mdp.gamma) * T.occupancy(mdp, pol).omega.sum()) < 1e-12


@FAST
@given(finite_problems(max_abs=3.0))
def test_gamma_less_update_is_the_exact_mean_of_rtg_restart_discount(problem):
    from verify.checks.estimators import get_estimator
    from verify.checks.moments import exact_moments
    mdp, pol = problem
    m = exact_moments(get_estimator("rtg_restart_discount"), mdp, pol)
    close(T.gamma_less_update(mdp, pol), m.mean, what="DP vs enumeration")


def test_gamma_less_update_is_not_a_gradient_on_the_chain():
    p = load_example("chain")
    c = T.check_gradient_field(p.mdp, p.policy)
    assert c.is_gradient is False
    assert c.asymmetry > 1e-3 > 1e-8 > c.control      # the Hessian of J is symmetric to FD accuracy
    i, j = c.worst_pair()
    assert abs(c.jacobian[i, j] - c.jacobian[j, i]) == pytest.approx(c.asymmetry)
    assert np.abs(c.bias).max() > 1e-3


@settings(max_examples=10, deadline=None)
@given(finite_problems(kind="tabular_softmax", max_abs=2.0, gamma=st.just(1.0)))
def test_with_gamma_one_the_update_is_the_gradient_and_the_check_is_undecided(problem):
    mdp, pol = problem
    c = T.check_gradient_field(mdp, pol)
    close(c.update, c.grad, what="gamma = 1")
    assert c.is_gradient is None


def test_fisher_size_limits_and_block_structure():
    S, A = 2500, 4
    pol = TabularSoftmax(np.zeros((S, A)))
    F = T.FisherMatrix(pol.theta.shape, blocks=np.zeros((S, A, A)))
    with pytest.raises(UsageError, match="dense Fisher"):
        F.dense()
    big = TabularSoftmax(np.zeros((2501, 4)))
    with pytest.raises(UsageError, match="10000"):
        T.fisher(load_example("chain").mdp, big)


def test_sampled_natural_gradient_on_an_enumeration_is_the_exact_one():
    from verify.numerics.exact import enumerate_trajectories
    p = load_example("chain")
    eps = enumerate_trajectories(p.mdp, p.policy)
    close(T.sampled_natural_gradient(eps), T.natural_gradient(p.mdp, p.policy).direction, 1e-7,
          what="weighted-enumeration 'sample' vs exact")
