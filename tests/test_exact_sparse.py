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


# --- the sparse file form: the same model, bit for bit --------------------------------------------------------------

def _both_forms(problem):
    """The problem rebuilt from its dense and from its sparse file form (through problem_from_dict)."""
    from verify.mdp import file_entries
    from verify.problem import problem_from_dict, problem_to_dict
    data = problem_to_dict(problem)
    forms = []
    for sparse in (False, True):
        forms.append(problem_from_dict({**data, **file_entries(problem.mdp, sparse=sparse)}))
    return forms


def _bits(x):
    return np.asarray(x).tobytes()


@settings(max_examples=40, deadline=None)
@given(problems(states=st.integers(1, 4), horizon=st.one_of(st.none(), st.integers(1, 5))))
def test_sparse_and_dense_files_give_the_same_numbers_bit_for_bit(problem):
    from verify.estimators import ESTIMATORS
    from verify.exact import count_trajectories
    from verify.sampler import sample_episodes
    dense, sparse = _both_forms(problem)
    a, b = dense.mdp.successors, sparse.mdp.successors
    for field in ("indptr", "next_state", "prob", "reward"):
        assert _bits(getattr(a, field)) == _bits(getattr(b, field)), field
    # The same successor lists feed the same algorithms: identical bits, not merely close numbers.
    for method in ("dp", "enumerate") if problem.mdp.horizon is not None else ("solve",):
        x, y = gradient(dense.mdp, dense.policy, method), gradient(sparse.mdp, sparse.policy, method)
        assert x.J == y.J and _bits(x.grad) == _bits(y.grad), method
    if problem.mdp.horizon is not None:
        assert count_trajectories(dense.mdp) == count_trajectories(sparse.mdp)
        eps = [sample_episodes(p.mdp, p.policy, 50, np.random.default_rng(1)) for p in (dense, sparse)]
        for name in ("s_t", "a_t", "r_t", "lengths"):
            assert _bits(getattr(eps[0], name)) == _bits(getattr(eps[1], name)), name
        for e in ESTIMATORS:
            assert _bits(e.per_episode(eps[0])) == _bits(e.per_episode(eps[1])), e.name


def test_sparse_rows_with_names_and_per_pair_rewards():
    # The dense MDP of tests/test_mdp_validation.py, written by hand in the sparse form with names.
    dense = TabularMDP([1, 0, 0], [[[0.5, 0.5, 0], [0, 0, 1]], [[0, 0.5, 0.5], [1, 0, 0]], [[0, 0, 1], [0, 0, 1]]],
                       [[0, 1], [2, 0], [0, 0]], terminal=["end"], gamma=0.9, horizon=3, states=["a", "b", "end"],
                       actions=["L", "R"])
    sparse = TabularMDP([1, 0, 0], {"sparse": [["a", "L", "a", 0.5], ["a", "L", "b", 0.5], ["a", "R", "end", 1],
                                               ["b", "L", "b", 0.5], ["b", "L", "end", 0.5], [1, 1, 0, 1.0]]},
                        {"sparse": [["a", "R", 1], ["b", 0, 2]]}, terminal=["end"], gamma=0.9,
                        horizon=3, states=["a", "b", "end"], actions=["L", "R"])
    for field in ("indptr", "next_state", "prob", "reward"):
        assert _bits(getattr(dense.successors, field)) == _bits(getattr(sparse.successors, field)), field
    np.testing.assert_array_equal(dense.transitions, sparse.transitions)


def test_terminal_states_carry_no_reward_in_either_form():
    mdp = TabularMDP([1, 0], [[[0, 1]], [[0, 1]]], [[1], [7]], terminal=[1], horizon=2)
    assert mdp.successors.reward.tolist() == [1.0, 0.0] and mdp.expected_reward.tolist() == [[1.0], [0.0]]
    assert mdp.rewards[1].tolist() == [[0.0, 0.0]]


@pytest.mark.parametrize("transitions, rewards, words", [
    ([[0, 0, 1, 0.5], [0, 0, 1, 0.5], [1, 0, 1, 1]], [], ["transitions.sparse[1]", "repeats", "sparse[0]"]),
    ([[0, 0, 1, 1], [1, 0, 1, 1], [0, 0, "x", 0]], [], ["transitions.sparse[2]", "unknown next state 'x'"]),
    ([[0, 0, 1, 1], [1, 3, 1, 1]], [], ["transitions.sparse[1]", "action 3", "0..0"]),
    ([[0, 0, 1, 1.5], [0, 0, 0, -0.5], [1, 0, 1, 1]], [], ["transitions.sparse[1]", "negative"]),
    ([[0, 0, 1, 0.5], [1, 0, 1, 1]], [], ["transitions[0][0]", "sums to 0.5"]),
    ([[0, 0, 1, 1], [1, 0, 1, 1]], [[0, 0, 1], [0, 0, 1, 2]], ["rewards.sparse[1]", "also has an [s, a, r] row"]),
    ([[0, 0, 1, 1], [1, 0, 1, 1]], [[0, 0, 1], [0, 0, 2]], ["rewards.sparse[1]", "repeats"]),
    ([[0, 0, 1]], [], ["transitions.sparse[0]", "not a row of 4"]),
])
def test_sparse_rows_are_validated_naming_the_row(transitions, rewards, words):
    from verify.errors import InvalidMDPError
    with pytest.raises(InvalidMDPError) as info:
        TabularMDP([1, 0], {"sparse": transitions}, {"sparse": rewards}, states=2, actions=1, horizon=2)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_dense_arrays_of_a_huge_sparse_mdp_are_refused_not_allocated():
    from verify.errors import UsageError
    S = 5_000                                  # S A S = 2.5e7 * 4 > DENSE_MAX_ENTRIES
    rows = np.stack([np.arange(S), np.zeros(S), (np.arange(S) + 1) % S, np.ones(S)], axis=1)
    rows = np.concatenate([rows + [0, a, 0, 0] for a in range(4)])
    mdp = TabularMDP(np.eye(S)[0], {"sparse": rows}, {"sparse": []}, states=S, actions=4, horizon=3)
    assert mdp.successors.nnz == 4 * S and not mdp.is_dense
    with pytest.raises(UsageError, match="successor entries"):
        mdp.transitions
    assert gradient(mdp, TabularSoftmax(np.zeros((S, 4)))).J == 0.0


# --- mc on big models: visited rows and variances only, the same verdicts ------------------------------------------

@pytest.mark.parametrize("name", ["reward_to_go", "baseline_value", "batch_normalized"])
def test_rows_form_gives_the_dense_values_and_moments(name):
    from verify.estimators import get_estimator
    from verify.mc import _rows
    from verify.sampler import sample_episodes
    from verify.stats import SampleMoments
    rng = np.random.default_rng(5)
    mdp = random_sparse_mdp(rng, S=60, horizon=15)
    policy = TabularSoftmax(rng.normal(size=(mdp.n_states, mdp.n_actions)))
    batch = sample_episodes(mdp, policy, 300, np.random.default_rng(2))
    est = get_estimator(name)
    dense = est.per_episode(batch).reshape(batch.n, -1)
    rows = _rows(est, batch, policy)
    assert _bits(rows.dense(batch.n)) == _bits(dense)         # the same numbers, placed
    a, b = rows.moments(batch.n), SampleMoments.of(dense, diagonal=True)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(a.scatter, b.scatter, rtol=1e-11, atol=1e-12 * b.scatter.max())
    full = SampleMoments.of(dense)
    np.testing.assert_allclose(np.diag(full.scatter), b.scatter, rtol=1e-11, atol=1e-12 * b.scatter.max())


def test_mc_by_rows_and_dense_give_the_same_test(monkeypatch):
    import verify.mc as mc
    from verify.problem import Problem
    rng = np.random.default_rng(8)
    mdp = random_sparse_mdp(rng, S=80, horizon=12)
    problem = Problem(mdp, TabularSoftmax(rng.normal(size=(mdp.n_states, mdp.n_actions))))
    settings = dict(episodes=3_000, seed=4, covariance="sample", chunk=700)
    monkeypatch.setattr(mc, "FULL_MOMENTS_MAX_D", 0)          # every problem counts as big
    by_rows = mc.run_estimators(problem, ["reward_to_go", "rtg_skip_current"], **settings)
    monkeypatch.setattr(mc, "_rows", lambda *args: None)       # dense values, diagonal moments
    dense = mc.run_estimators(problem, ["reward_to_go", "rtg_skip_current"], **settings)
    for a, b in zip(by_rows, dense):
        assert a.verdict == b.verdict and a.test.test == b.test.test == "maxz"
        np.testing.assert_allclose(a.test.mean, b.test.mean, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(a.test.stderr, b.test.stderr, rtol=1e-9, atol=1e-15)
        assert a.test.p_value == pytest.approx(b.test.p_value, rel=1e-6, abs=1e-12)
        if a.paired is not None:
            assert a.reference == b.reference and a.paired.verdict == b.paired.verdict and a.chosen == b.chosen


def test_visited_cells_of_a_huge_state_space_need_no_mask_over_every_state():
    # N S = 3e7 rows: the sorted branch (a mask and its ranks would be 270 MB); expected values from np.unique.
    from verify.episodes import Steps, visited_cells
    rng = np.random.default_rng(0)
    S, A, lengths = 10**7, 3, np.array([4, 0, 6])
    n = np.repeat(np.arange(3), lengths)
    s = rng.integers(0, 5, size=n.size) * 2_000_003 % S       # repeats within an episode
    a = rng.integers(0, A, size=n.size)
    st = Steps(n=n, t=np.zeros(n.size, int), s=s, a=a, r=np.zeros(n.size), lengths=lengths, n_states=S, n_actions=A)
    visited, cell = visited_cells(st)
    rows, rank = np.unique(n * S + s, return_inverse=True)
    assert visited.tolist() == rows.tolist() and cell.tolist() == (rank * A + a).tolist()


def test_state_values_are_value_tables_v_without_q():
    from verify.exact import _VALUES, state_values, value_tables
    rng = np.random.default_rng(2)
    mdp = random_sparse_mdp(rng, S=2_000, A=3, horizon=7)          # S A > 4096: Q is not kept
    policy = TabularSoftmax(rng.normal(size=(mdp.n_states, mdp.n_actions)))
    V = state_values(mdp, policy)
    assert _VALUES[mdp][policy][1] is None
    V2, Q = value_tables(mdp, policy)
    assert _bits(V) == _bits(V2) and Q.shape == (7, 2_000, 3)
    np.testing.assert_allclose((policy.probs * Q).sum(axis=2), V, rtol=0, atol=1e-12)


@pytest.mark.parametrize("horizon", [7, None])
@pytest.mark.parametrize("gather", [False, True])
def test_action_values_at_the_steps_are_value_tables_q_bit_for_bit(horizon, gather, monkeypatch):
    # gather=False: the successor expansion big MDPs take, against the table; True: the small kept table read
    from verify.exact import action_values_at, value_tables
    from verify.numerics import exact
    monkeypatch.setattr(exact, "GATHER_KEPT_Q", gather)
    rng = np.random.default_rng(6)
    mdp = random_sparse_mdp(rng, S=50, horizon=horizon)
    policy = TabularSoftmax(rng.normal(size=(mdp.n_states, mdp.n_actions)))
    s = rng.integers(0, mdp.n_states, size=400)
    s = s[~mdp.terminal[s]]
    t, a = rng.integers(0, 1 if horizon is None else horizon, size=s.size), rng.integers(0, mdp.n_actions, size=s.size)
    q = action_values_at(mdp, policy, t, s, a)        # first: the gather must compute the table it reads
    _, Q = value_tables(mdp, policy)
    assert _bits(q) == _bits(Q[t, s, a])


@given(st.lists(st.integers(0, 5000), min_size=1, max_size=300), st.sampled_from([5001, 2**20]))
@settings(max_examples=60, deadline=None)
def test_distinct_keys_by_marking_equal_numpy_unique(keys, space):
    from verify.numerics.exact import _unique_inverse

    key = np.array(keys, dtype=np.intp)
    expected_keys, expected_inverse = np.unique(key, return_inverse=True)
    got_keys, got_inverse = _unique_inverse(key, space)
    assert np.array_equal(got_keys, expected_keys) and np.array_equal(got_inverse, expected_inverse)
