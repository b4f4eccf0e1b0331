"""Exact J and grad J: closed forms, an exact symbolic second method, and agreement of the methods."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from verify.errors import UsageError
from verify.exact import enumerate_trajectories, finite_difference_gradient, gradient
from verify.mdp import TabularMDP
from verify.policy import LinearSoftmax, TabularSoftmax

from helpers import random_problem

CHAIN = Path(__file__).resolve().parent.parent / "examples" / "chain.json"


@pytest.mark.parametrize("q", [[1.0, 0.0, 0.5], [3.0, 3.0], [-2.0, 0.0, 1.0, 7.0]])
def test_bandit_closed_form(q):
    # One state, one step: J = sum_a pi_a q_a and dJ/dtheta_a = pi_a (q_a - J).
    theta = np.linspace(-1, 1, len(q))
    pi = np.exp(theta) / np.exp(theta).sum()
    bandit = TabularMDP(initial=[1], transitions=np.ones((1, len(q), 1)), rewards=[q], horizon=1)
    J = float(pi @ q)
    for method in ("enumerate", "dp"):
        res = gradient(bandit, TabularSoftmax(theta[None, :]), method)
        assert res.J == pytest.approx(J, abs=1e-14)
        np.testing.assert_allclose(res.grad[0], pi * (np.array(q) - J), atol=1e-14)


def _sympy_objective(P, r, rho0, terminal, gamma, H, theta_syms):
    """J(theta) as an exact SymPy expression, by recursion over remaining steps (a second implementation)."""
    S, A = theta_syms.shape

    def pi(s, a):
        return sp.exp(theta_syms[s, a]) / sum(sp.exp(theta_syms[s, b]) for b in range(A))

    def V(s, k):
        if k == 0 or terminal[s]:
            return sp.Integer(0)
        return sum(pi(s, a) * P[s][a][s2] * (r[s][a][s2] + gamma * V(s2, k - 1))
                   for a in range(A) for s2 in range(S) if P[s][a][s2] != 0)

    return sum(rho0[s] * V(s, H) for s in range(S) if rho0[s] != 0)


def test_exact_rational_gradient_matches_sympy():
    # Rational dynamics and theta = log(w) so that pi = w / sum(w) is rational: the SymPy derivative then
    # evaluates to an exact rational, against which the float methods must agree to round-off.
    R = sp.Rational
    P = [[[R(1, 3), R(2, 3), 0], [0, R(1, 4), R(3, 4)]],
         [[R(1, 2), 0, R(1, 2)], [R(1, 5), R(4, 5), 0]],
         [[0, 0, 1], [0, 0, 1]]]
    r = [[[1, -2, 3], [0, R(1, 2), 5]], [[2, 0, -1], [R(3, 2), 1, 0]], [[0, 0, 0], [0, 0, 0]]]
    rho0 = [R(2, 3), R(1, 3), 0]
    terminal = [False, False, True]
    gamma, H = R(9, 10), 3
    w = [[1, 2], [3, 1], [1, 1]]
    th = sp.Matrix(3, 2, lambda i, j: sp.Symbol(f"t{i}{j}"))
    J_sym = _sympy_objective(P, r, rho0, terminal, gamma, H, th)
    at = {th[i, j]: sp.log(w[i][j]) for i in range(3) for j in range(2)}
    J_exact = sp.nsimplify(sp.simplify(J_sym.subs(at)))
    grad_exact = np.array([[float(sp.simplify(sp.diff(J_sym, th[i, j]).subs(at))) for j in range(2)] for i in range(3)])
    assert J_exact.is_Rational

    mdp = TabularMDP(np.array(rho0, dtype=float), np.array(P, dtype=float), np.array(r, dtype=float),
                     terminal=terminal, gamma=float(gamma), horizon=H)
    pol = TabularSoftmax(np.log(np.array(w, dtype=float)))
    for method in ("enumerate", "dp"):
        res = gradient(mdp, pol, method)
        assert res.J == pytest.approx(float(J_exact), abs=1e-13)
        np.testing.assert_allclose(res.grad, grad_exact, atol=1e-13)


@pytest.mark.parametrize("seed", range(12))
def test_methods_agree(seed):
    rng = np.random.default_rng(seed)
    S, A, H = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 5))
    mdp, pol = random_problem(rng, S, A, H, gamma=[0.0, 0.5, 1.0][seed % 3], linear=seed % 2 == 1, features=3)
    e, d = gradient(mdp, pol, "enumerate"), gradient(mdp, pol, "dp")
    assert e.J == pytest.approx(d.J, abs=1e-10)
    np.testing.assert_allclose(e.grad, d.grad, atol=1e-10)
    np.testing.assert_allclose(finite_difference_gradient(mdp, pol), d.grad, atol=1e-7)
    assert enumerate_trajectories(mdp, pol).weights.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_infinite_horizon_solve_is_the_limit_of_dp(seed):
    # With gamma = 0.6 the tail after 200 steps is below 0.6**200 * max|r| / 0.4 ~ 1e-44.
    rng = np.random.default_rng(100 + seed)
    mdp, pol = random_problem(rng, 4, 2, 200, gamma=0.6, linear=seed % 2 == 1, terminal=seed % 2, features=3)
    long, inf = gradient(mdp, pol, "dp"), gradient(mdp.replace(horizon=None), pol, "solve")
    assert inf.J == pytest.approx(long.J, abs=1e-12)
    np.testing.assert_allclose(inf.grad, long.grad, atol=1e-12)


def test_certain_termination_with_gamma_one_solves():
    # A chain that moves right w.p. 1/2 (else stays) ends after a Negative-Binomial number of steps; each step
    # pays 1, so J = expected number of steps = 2 per remaining cell: from s0 with 2 cells to go J = 4.
    P = np.zeros((3, 1, 3))
    P[0, 0, :2] = 0.5
    P[1, 0, 1:] = 0.5
    mdp = TabularMDP([1, 0, 0], P, np.ones((3, 1)), terminal=[2], gamma=1.0, horizon=None)
    assert gradient(mdp, TabularSoftmax(np.zeros((3, 1)))).J == pytest.approx(4.0, abs=1e-12)


@pytest.mark.parametrize("kind", ["tabular", "linear"])
def test_score_matches_finite_differences_of_log_pi(kind):
    rng = np.random.default_rng(3)
    pol = (TabularSoftmax(rng.normal(size=(3, 4))) if kind == "tabular"
           else LinearSoftmax(rng.normal(size=(3, 4, 5)), rng.normal(size=5)))
    eps = 1e-6
    for s in range(3):
        for a in range(4):
            fd = np.zeros(pol.theta.size)
            for i in range(pol.theta.size):
                step = np.zeros(pol.theta.size)
                step[i] = eps
                up = pol.with_theta(pol.theta.ravel() + step).log_probs[s, a]
                down = pol.with_theta(pol.theta.ravel() - step).log_probs[s, a]
                fd[i] = (up - down) / (2 * eps)
            np.testing.assert_allclose(pol.score(s, a).ravel(), fd, atol=1e-8)


def test_large_theta_is_finite():
    pol = TabularSoftmax(np.array([[1e3, -1e3, 0.0]]))
    assert np.isfinite(pol.log_probs).all() and np.isfinite(pol.score(0, 1)).all()
    bandit = TabularMDP([1], np.ones((1, 3, 1)), [[1.0, 2.0, 3.0]], horizon=1)
    res = gradient(bandit, pol)
    assert res.J == pytest.approx(1.0) and np.isfinite(res.grad).all()


@pytest.mark.parametrize("method, horizon, words", [
    ("solve", 3, "horizon null"), ("enumerate", None, "finite horizon"), ("dp", None, "finite horizon"),
    ("magic", 3, "unknown method")])
def test_method_misuse(method, horizon, words):
    mdp = TabularMDP([1], np.ones((1, 2, 1)), [[1.0, 0.0]], gamma=0.5, horizon=horizon)
    with pytest.raises(UsageError, match=words):
        gradient(mdp, TabularSoftmax(np.zeros((1, 2))), method)


def test_enumeration_refuses_to_explode():
    rng = np.random.default_rng(0)
    mdp, pol = random_problem(rng, 3, 3, 12, gamma=1.0, terminal=0)
    with pytest.raises(UsageError, match="use --method dp"):
        enumerate_trajectories(mdp, pol, max_trajectories=10_000)


def test_cli_gradient_json(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "verify", "gradient", str(CHAIN), "--json"],
                          capture_output=True, text=True, check=True)
    out = json.loads(proc.stdout)
    assert set(out) == {"J", "grad", "method"} and out["method"] == "dp"
    assert np.array(out["grad"]).shape == (4, 2)
    proc = subprocess.run([sys.executable, "-m", "verify", "gradient", str(CHAIN), "--json",
                           "--method", "enumerate"], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout)["J"] == pytest.approx(out["J"], abs=1e-12)


def test_policy_logsumexp_is_scipys_bit_for_bit():
    # verify.policy normalises without importing scipy (start-up); it must give scipy's numbers exactly.
    from scipy.special import logsumexp as scipy_logsumexp

    from verify.policy import logsumexp
    rng = np.random.default_rng(0)
    for _ in range(300):
        x = rng.normal(size=(20, int(rng.integers(1, 9)))) * rng.choice([1e-3, 1.0, 30.0, 1e3])
        if rng.random() < 0.3:
            x[:, -1] = x.max(axis=1)         # ties for the maximum take another branch
        assert scipy_logsumexp(x, axis=1, keepdims=True).tobytes() == logsumexp(x, axis=1, keepdims=True).tobytes()
        assert scipy_logsumexp(x, axis=1).tobytes() == logsumexp(x, axis=1).tobytes()


def test_directional_derivatives_match_the_gradient_and_check_uses_them_for_big_theta():
    from verify.exact import directional_derivatives
    from verify.checks.crosscheck import FD_MAX_COMPONENTS, exact_cross_check
    from verify.problem import Problem
    rng = np.random.default_rng(4)
    S, A = 30, 3                                      # 90 components > FD_MAX_COMPONENTS
    mdp = TabularMDP(rng.dirichlet(np.ones(S)), rng.dirichlet(np.ones(S) * 0.3, size=(S, A)),
                     rng.normal(size=(S, A)), terminal=[S - 1], gamma=0.95, horizon=6)
    pol = TabularSoftmax(rng.normal(size=(S, A)))
    g = gradient(mdp, pol, "dp").grad.ravel()
    V = rng.normal(size=(3, g.size))
    np.testing.assert_allclose(directional_derivatives(mdp, pol, V), V @ g, rtol=0, atol=1e-8)
    check = exact_cross_check(Problem(mdp, pol))
    assert S * A > FD_MAX_COMPONENTS and "directions" in check.methods[-1] and check.passed
