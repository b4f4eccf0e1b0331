"""The sparse value kernel (``verify.numerics.backward``), the horizon-limited live set and their memory estimates.

Expected values come from an independent dense computation (einsum over P [S, A, S], every state, every t) and
from the former successor-list kernel written out here (``np.bincount``), never from the code under test.
"""
from __future__ import annotations

import numpy as np
import pytest

from verify.model.io import Limits, limits_scope
from verify.model.mdp import TabularMDP, within_horizon
from verify.model.policy import TabularSoftmax
from verify.numerics.sampler import sample_episodes


def _bits(x):
    return np.asarray(x, dtype=float).tobytes()


def random_mdp(rng, S=40, A=3, successors=3, horizon=6, gamma=0.9, n_terminal=4, start=3):
    """Sparse rows, a few terminal states, rho0 on the first ``start`` states (many others unreachable early)."""
    P = np.zeros((S, A, S))
    for s in range(S):
        for a in range(A):
            # successors near s: states far from the start need many actions (the horizon cuts them off)
            nxt = np.unique(np.clip(s + rng.integers(-2, 4, size=successors), 0, S - 1))
            P[s, a, nxt] = rng.dirichlet(np.ones(nxt.size))
    R = rng.normal(size=(S, A, S)) * (P > 0)
    terminal = rng.choice(np.arange(start, S), size=n_terminal, replace=False)
    initial = np.zeros(S)
    initial[:start] = 1.0 / start
    return TabularMDP(initial, P, R, terminal.tolist(), gamma, horizon)


def dense_tables(mdp: TabularMDP, pi: np.ndarray):
    """V_t, Q_t by dense backward induction over every state: Q_t = rbar + gamma P_alive V_{t+1}, V_t = sum pi Q_t."""
    P = mdp.transitions * ~mdp.terminal[None, None, :]           # entering a terminal state ends the episode
    rbar = (mdp.transitions * mdp.rewards).sum(axis=2)
    H, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    V, Q = np.zeros((H + 1, S)), np.zeros((H, S, A))
    for t in range(H - 1, -1, -1):
        Q[t] = rbar + mdp.gamma * np.einsum("sak,k->sa", P, V[t + 1])
        Q[t, mdp.terminal] = 0.0
        V[t] = (pi * Q[t]).sum(axis=1)
    return V[:H], Q


def dense_gradient(mdp: TabularMDP, policy: TabularSoftmax):
    """J and grad J by the policy-gradient theorem with dense forward occupancies: sum_t gamma^t d_t Q_t score."""
    pi = policy.probs
    V, Q = dense_tables(mdp, pi)
    P = mdp.transitions * ~mdp.terminal[None, None, :]
    d = mdp.initial * ~mdp.terminal
    W = np.zeros_like(pi)
    for t in range(mdp.horizon):
        W += mdp.gamma ** t * d[:, None] * pi * Q[t]
        d = np.einsum("s,sa,sak->k", d, pi, P)
    # softmax score: d/dtheta[s, b] of sum_a W[s, a] log pi(a|s) = W[s, b] - pi[s, b] sum_a W[s, a]
    grad = W - pi * W.sum(axis=1, keepdims=True)
    return float(mdp.initial @ V[0]), grad


def old_backward(mdp: TabularMDP, pi: np.ndarray):
    """The former kernel (successor lists, np.bincount), as it was: the bits the new kernel must reproduce."""
    succ, S, A, g = mdp.successors, mdp.n_states, mdp.n_actions, mdp.gamma
    prob_alive = np.where(mdp.terminal[succ.next_state], 0.0, succ.prob)
    rbar = mdp.expected_reward
    V, Q = np.empty((mdp.horizon, S)), np.empty((mdp.horizon, S, A))
    v_next = np.zeros(S)
    for t in range(mdp.horizon - 1, -1, -1):
        Q[t] = rbar + g * np.bincount(succ.pair, weights=prob_alive * v_next[succ.next_state],
                                      minlength=S * A).reshape(S, A)
        V[t] = v_next = (pi * Q[t]).sum(axis=1)
    return V, Q


@pytest.mark.parametrize("seed", range(6))
def test_value_tables_agree_with_a_dense_computation_and_the_former_kernel_bit_for_bit(seed):
    from verify.numerics.exact import value_tables
    rng = np.random.default_rng(seed)
    mdp = random_mdp(rng, horizon=int(rng.integers(1, 9)), gamma=float(rng.choice([1.0, 0.9])))
    policy = TabularSoftmax(rng.normal(size=(mdp.n_states, mdp.n_actions)))
    V, Q = value_tables(mdp, policy)
    V_dense, Q_dense = dense_tables(mdp, policy.probs)
    np.testing.assert_allclose(V, V_dense, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Q, Q_dense, rtol=1e-12, atol=1e-12)
    V_old, Q_old = old_backward(mdp, policy.probs)
    assert _bits(V) == _bits(V_old) and _bits(Q) == _bits(Q_old)


@pytest.mark.parametrize("seed", range(6))
def test_the_gradient_on_the_states_within_the_horizon_agrees_with_a_dense_computation(seed):
    from verify.numerics.exact import _live_operator, gradient
    rng = np.random.default_rng(100 + seed)
    mdp = random_mdp(rng, S=int(rng.integers(20, 200)), horizon=int(rng.integers(1, 12)),
                     gamma=float(rng.choice([1.0, 0.95])))
    policy = TabularSoftmax(rng.normal(size=(mdp.n_states, mdp.n_actions)))
    J, grad = dense_gradient(mdp, policy)
    for sparse in (True, False):
        res = gradient(mdp, policy, sparse=sparse)
        assert res.J == pytest.approx(J, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(res.grad, grad, rtol=1e-10, atol=1e-12)
    # the horizon cut states off (else this test would not test it)
    if seed == 0:
        assert _live_operator(mdp, in_horizon=True).live.size < _live_operator(mdp).live.size


def test_within_horizon_is_the_breadth_first_distance_through_non_terminal_states():
    # 0 -> 1 -> 2 -> 3 (terminal) -> ...; 4 only from 3 (never: 3 ends the episode); 5 from 0 in one step
    P = np.zeros((6, 1, 6))
    for s, nxt in [(0, [1, 5]), (1, [2]), (2, [3]), (3, [4]), (4, [4]), (5, [5])]:
        P[s, 0, nxt] = 1.0 / len(nxt)
    mdp = TabularMDP([1, 0, 0, 0, 0, 0], P, np.zeros((6, 1)), terminal=[3], horizon=3)
    states, first = within_horizon(mdp)
    assert states.tolist() == [0, 1, 2, 5] and first.tolist() == [0, 1, 2, 1]
    states, first = within_horizon(mdp.replace(horizon=2))
    assert states.tolist() == [0, 1, 5] and first.tolist() == [0, 1, 1]


@pytest.mark.parametrize("seed", range(4))
def test_values_at_sampled_steps_are_the_tables_bits_without_the_tables(seed, monkeypatch):
    from verify.numerics import backward, exact
    from verify.numerics.exact import _VALUES, action_values_at, state_values_at, value_tables
    monkeypatch.setattr(exact, "GATHER_KEPT_Q", False)     # the path of MDPs too big for a Q table, at a small size
    rng = np.random.default_rng(200 + seed)
    mdp = random_mdp(rng, S=120, horizon=int(rng.integers(2, 10)))
    policy = TabularSoftmax(rng.normal(size=(mdp.n_states, mdp.n_actions)))
    st = sample_episodes(mdp, policy, 300, rng).steps
    v = state_values_at(mdp, policy, st.t, st.s)
    q = action_values_at(mdp, policy, st.t, st.s, st.a)
    # served by the horizon's prefixes: no [H, S] table was built
    assert policy in backward._HORIZON[mdp] and policy not in _VALUES.get(mdp, {})
    hv = backward._HORIZON[mdp][policy]
    assert hv.V.size < mdp.horizon * mdp.n_states
    V, Q = value_tables(mdp, policy)
    assert _bits(v) == _bits(V[st.t, st.s]) and _bits(q) == _bits(Q[st.t, st.s, st.a])


def test_values_where_no_episode_can_be_come_from_the_full_table():
    from verify.numerics.exact import state_values_at, value_tables
    rng = np.random.default_rng(3)
    mdp = random_mdp(rng, S=60, horizon=4)
    policy = TabularSoftmax(rng.normal(size=(mdp.n_states, mdp.n_actions)))
    far = np.flatnonzero(~mdp.terminal)[-3:]          # beyond the horizon's reach from the start
    t = np.zeros(far.size, dtype=int)
    V, _ = value_tables(mdp, policy)
    assert _bits(state_values_at(mdp, policy, t, far)) == _bits(V[t, far])


def test_the_dp_estimate_counts_the_states_within_the_horizon_not_twice_every_state():
    from verify.model.problem import dp_bytes, live_size
    from verify.numerics.exact import gradient, gradient_bytes
    from verify.problem import Problem
    # a chain of 200 000 states, horizon 50: 50 states act; 16 (H + 1) S would be 163 MB
    S = 200_000
    succ = {"sparse": np.stack([np.arange(S), np.zeros(S), np.minimum(np.arange(S) + 1, S - 1), np.ones(S)], 1)}
    mdp = TabularMDP(np.eye(1, S, 0).ravel(), succ, {"sparse": [[0, 0, 1.0]]}, terminal=[S - 1], horizon=50,
                     states=S, actions=1)
    assert live_size(mdp) == (50, 50)
    assert gradient_bytes(mdp) == dp_bytes(50, 50, 50, 1, sparse=False) < 2**20
    with limits_scope(Limits(max_memory=40 * 2**20)):       # the model is ~20 MB; the DP now fits
        problem = Problem(mdp, TabularSoftmax(np.zeros((S, 1))))
        assert gradient(problem.mdp, problem.policy).J == 1.0


def test_run_bytes_covers_the_value_tables_of_the_references():
    from verify.checks.budget import run_bytes
    from verify.numerics.backward import horizon_values_bytes
    from verify.problem import Problem
    rng = np.random.default_rng(5)
    mdp = random_mdp(rng, S=300, horizon=8)
    problem = Problem(mdp, TabularSoftmax(np.zeros((mdp.n_states, mdp.n_actions))))
    paired = run_bytes(problem, 1000, ["reward_to_go"], paired=True)
    unpaired = run_bytes(problem, 1000, ["reward_to_go"], paired=False)
    assert paired - unpaired >= horizon_values_bytes(mdp) > 0
