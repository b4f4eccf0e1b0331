"""Sparse (scipy.sparse) and dense transition operators in exact DP / solve give the same J and grad J.

The dense path is itself checked against trajectory enumeration and finite differences elsewhere; here the two
operator kinds are compared with each other (to 1e-12 relative) and with an independent route (long-horizon DP
against the infinite-horizon solve).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verify.exact import _live_operator, gradient
from verify.mdp import TabularMDP
from verify.policy import TabularSoftmax
from verify.strategies import problems

TOL = 1e-12


def assert_same(a, b, tol=TOL):
    scale = 1.0 + abs(a.J) + np.abs(a.grad).max()
    assert abs(a.J - b.J) <= tol * scale
    np.testing.assert_allclose(a.grad, b.grad, rtol=0, atol=tol * scale)


def random_sparse_mdp(rng, S=300, A=3, successors=3, horizon=40, gamma=0.95, n_terminal=5):
    """An MDP whose rows have at most ``successors`` nonzeros (density ~1%), with a few terminal states."""
    P = np.zeros((S, A, S))
    for s in range(S):
        for a in range(A):
            nxt = rng.choice(S, size=successors, replace=False)
            P[s, a, nxt] = rng.dirichlet(np.ones(successors))
    R = rng.normal(size=(S, A, S)) * (P > 0)
    terminal = rng.choice(np.arange(1, S), size=n_terminal, replace=False)
    initial = np.zeros(S)
    initial[:10] = 0.1
    return TabularMDP(initial, P, R, terminal.tolist(), gamma, horizon)


@settings(max_examples=60)
@given(problems(states=st.integers(1, 5), horizon=st.one_of(st.none(), st.integers(1, 6))))
def test_sparse_and_dense_agree_on_random_small_mdps(problem):
    mdp, policy = problem.mdp, problem.policy
    assert_same(gradient(mdp, policy, sparse=True), gradient(mdp, policy, sparse=False))


@pytest.mark.parametrize("horizon", [40, None])
def test_sparse_and_dense_agree_on_a_large_sparse_mdp(horizon):
    rng = np.random.default_rng(7)
    mdp = random_sparse_mdp(rng, horizon=horizon)
    policy = TabularSoftmax(rng.normal(size=(mdp.n_states, mdp.n_actions)))
    assert _live_operator(mdp).is_sparse           # auto picks sparse at this size and density
    assert not _live_operator(mdp, sparse=False).is_sparse
    assert_same(gradient(mdp, policy, sparse=True), gradient(mdp, policy, sparse=False))


def test_long_horizon_dp_converges_to_the_solve():
    # gamma^H = 0.6^120 ~ 1e-27 and rewards are O(1): the truncated tail is far below the tolerance.
    rng = np.random.default_rng(3)
    mdp = random_sparse_mdp(rng, horizon=120, gamma=0.6)
    policy = TabularSoftmax(rng.normal(size=(mdp.n_states, mdp.n_actions)))
    dp = gradient(mdp, policy, "dp")
    solve = gradient(mdp.replace(horizon=None), policy, "solve")
    assert_same(dp, solve, tol=1e-10)


@pytest.mark.parametrize("sparse", [True, False])
def test_solve_ignores_an_unreachable_loop_that_never_terminates(sparse):
    # State 2 loops forever but is never reached: I - P_pi is singular on all states, not on the live ones.
    mdp = TabularMDP(initial=[1, 0, 0], transitions=[[[0, 1, 0], [0, 1, 0]], [[0, 1, 0]] * 2, [[0, 0, 1]] * 2],
                     rewards=[[1, 0], [0, 0], [5, 5]], terminal=[1], gamma=1.0, horizon=None)
    res = gradient(mdp, TabularSoftmax(np.zeros((3, 2))), "solve", sparse=sparse)
    assert res.J == pytest.approx(0.5)             # one action, reward 1 or 0 with probability 1/2 each
    np.testing.assert_allclose(res.grad, [[0.25, -0.25], [0, 0], [0, 0]], atol=1e-15)
