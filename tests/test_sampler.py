"""The vectorised sampler and the naive reference sampler against exact trajectory probabilities.

Statistical tests use fixed seeds and a stated false-alarm rate ALPHA per test: with a correct sampler each
would fail for a fraction ALPHA of seeds; with the seeds fixed they are deterministic.
"""
import numpy as np
import pytest
from scipy import stats

from verify.builtin import builtin_examples
from verify.episodes import discounted_returns
from verify.errors import UsageError
from verify.exact import enumerate_trajectories, gradient
from verify.mdp import TabularMDP
from verify.policy import TabularSoftmax
from verify import sampler as sampler_module
from verify.sampler import (_vose, chunk_size, default_max_steps, iter_episode_chunks, joint_table, sample_episodes,
                            sample_episodes_naive)

from helpers import random_problem

ALPHA = 1e-3


def trajectory_ids(batch, reference):
    """Index of each episode of ``batch`` among the trajectories of ``reference`` (same padding, -1 if absent)."""
    def rows(eps, T):
        s = np.concatenate([eps.s_t, np.repeat(eps.s_t[:, -1:], T - eps.T, axis=1)], axis=1)
        a = np.concatenate([eps.a_t, np.zeros((eps.n, T - eps.T), dtype=eps.a_t.dtype)], axis=1)
        return np.concatenate([s, a, eps.lengths[:, None]], axis=1)
    T = max(batch.T, reference.T)
    ref = {tuple(r): i for i, r in enumerate(rows(reference, T).tolist())}
    return np.array([ref.get(tuple(r), -1) for r in rows(batch, T).tolist()])


def chi_square_pvalue(ids, probs):
    """Pearson chi-square of observed trajectory counts vs n p(tau); cells with expectation < 5 are pooled."""
    n = ids.size
    observed = np.bincount(ids, minlength=probs.size).astype(float)
    expected = n * probs
    small = expected < 5
    obs = np.append(observed[~small], observed[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    exp *= obs.sum() / exp.sum()      # p(tau) sums to 1 within round-off; chisquare insists on equal totals
    return stats.chisquare(obs, exp).pvalue


PROBLEMS = {
    "chain": lambda: (builtin_examples()["chain"].mdp, builtin_examples()["chain"].policy),
    "gridworld": lambda: (builtin_examples()["gridworld"].mdp, builtin_examples()["gridworld"].policy),
    "random": lambda: random_problem(7),
}


@pytest.fixture(params=["alias", "keys"])
def layout(request, monkeypatch):
    """Run a test with the joint table's alias layout (the default here) and with the keys layout."""
    if request.param == "keys":
        monkeypatch.setattr(sampler_module, "ALIAS_MAX_WIDTH", 0)
    return request.param


@pytest.mark.parametrize("name", PROBLEMS)
@pytest.mark.parametrize("sampler, n", [("fast", 40_000), ("naive", 3_000)])
def test_trajectory_frequencies_match_exact_probabilities(name, sampler, n, layout):
    if sampler == "naive" and layout == "keys":
        pytest.skip("the naive sampler has no joint table")
    mdp, policy = PROBLEMS[name]()
    exact = enumerate_trajectories(mdp, policy)
    rng = np.random.default_rng(20240601)
    eps = (sample_episodes(mdp, policy, n, rng, chunk=7_000) if sampler == "fast"
           else sample_episodes_naive(mdp, policy, n, rng))
    ids = trajectory_ids(eps, exact)
    assert (ids >= 0).all(), "sampled a trajectory of probability zero"
    assert chi_square_pvalue(ids, exact.weights) > ALPHA


@pytest.mark.parametrize("alias", [True, False])
def test_joint_table_reproduces_pi_times_p(alias):
    mdp, policy = random_problem(3, S=4, A=3)
    tab = joint_table(mdp, policy, alias=alias)
    assert (tab.width > 0) == alias
    rebuilt = np.zeros((mdp.n_states, mdp.n_actions, mdp.n_states))
    np.add.at(rebuilt, (tab.state, tab.action, tab.next_state), tab.probabilities())
    expected = policy.probs[:, :, None] * mdp.transitions
    expected[mdp.terminal] = 0.0
    np.testing.assert_allclose(rebuilt, expected, atol=1e-15)


def test_alias_tables_encode_skewed_and_sparse_rows():
    # Vose's construction by hand on rows that need several rounds, zero entries and an empty (terminal) row.
    p = np.array([[0.5, 0.25, 0.125, 0.125, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0], [0.96, 0.01, 0.01, 0.01, 0.01],
                  [0.0] * 5])
    accept, alias = _vose(p)
    K = p.shape[1]
    encoded = accept / K
    for r in range(p.shape[0]):
        np.add.at(encoded[r], alias[r], (1 - accept[r]) / K)
    np.testing.assert_allclose(encoded[:3], p[:3], rtol=0, atol=1e-15)
    assert (accept[:3][p[:3] == 0] == 0).all()       # zero entries are never kept


def test_same_seed_same_episodes_and_chunks_concatenate():
    mdp, policy = PROBLEMS["gridworld"]()
    a = sample_episodes(mdp, policy, 5_000, np.random.default_rng(5), chunk=1_500)
    b = sample_episodes(mdp, policy, 5_000, np.random.default_rng(5), chunk=1_500)
    for x, y in [(a.s_t, b.s_t), (a.a_t, b.a_t), (a.r_t, b.r_t), (a.lengths, b.lengths)]:
        np.testing.assert_array_equal(x, y)
    chunks = list(iter_episode_chunks(mdp, policy, 5_000, np.random.default_rng(5), chunk=1_500))
    assert [c.n for c in chunks] == [1_500, 1_500, 1_500, 500]
    np.testing.assert_array_equal(np.concatenate([c.lengths for c in chunks]), a.lengths)
    c = sample_episodes(mdp, policy, 5_000, np.random.default_rng(6), chunk=1_500)
    assert not np.array_equal(a.a_t[:, :1], c.a_t[:, :1])


def test_padding_follows_the_episodes_convention():
    mdp, policy = PROBLEMS["chain"]()
    eps = sample_episodes(mdp, policy, 3_000, np.random.default_rng(1))
    mask = eps.mask
    assert (eps.a_t[~mask] == 0).all() and (eps.r_t[~mask] == 0).all()
    final = eps.s_t[np.arange(eps.n), eps.lengths]
    after = np.arange(eps.T + 1)[None, :] >= eps.lengths[:, None]
    assert (eps.s_t[after] == np.broadcast_to(final[:, None], eps.s_t.shape)[after]).all()
    # Episodes end exactly on entering the terminal state or at the horizon, never earlier.
    ended = mdp.terminal[final]
    assert (ended | (eps.lengths == mdp.horizon)).all()
    assert not mdp.terminal[eps.s_t[:, :-1]][np.arange(eps.T)[None, :] < eps.lengths[:, None]].any()
    assert (mdp.rewards[eps.s_t[:, :-1], eps.a_t, eps.s_t[:, 1:]][mask] == eps.r_t[mask]).all()


def test_terminal_initial_state_gives_empty_episodes():
    mdp = TabularMDP(initial=[0.5, 0.5], transitions=[[[0, 1]], [[0, 1]]], rewards=[[1], [0]], terminal=[1],
                     horizon=4)
    eps = sample_episodes(mdp, TabularSoftmax(np.zeros((2, 1))), 2_000, np.random.default_rng(0))
    assert set(np.unique(eps.lengths)) == {0, 1}
    assert (eps.r_t.sum(axis=1) == eps.lengths).all()


def test_horizon_null_truncates_below_the_stated_bias():
    problem = builtin_examples()["discounted"]     # recurrent: episodes never terminate
    mdp, policy = problem.mdp, problem.policy
    m = default_max_steps(mdp)
    g = mdp.gamma
    assert g ** m * (1 + m * (1 - g)) <= 1e-12 < g ** (m - 1) * (1 + (m - 1) * (1 - g))
    eps = sample_episodes(mdp, policy, 20_000, np.random.default_rng(11))
    assert (eps.lengths == m).all()
    R = discounted_returns(eps)
    z = (R.mean() - gradient(mdp, policy).J) / (R.std(ddof=1) / np.sqrt(R.size))
    assert abs(z) < stats.norm.isf(ALPHA / 2)


def test_gamma_one_episodes_that_outlive_the_cap_are_an_error():
    # Terminates surely (1% per step), but not within 10 steps for most episodes.
    mdp = TabularMDP(initial=[1, 0], transitions=[[[0.99, 0.01]], [[0, 1]]], rewards=[[1], [0]], terminal=[1],
                     gamma=1.0, horizon=None)
    policy = TabularSoftmax(np.zeros((2, 1)))
    with pytest.raises(UsageError, match="did not terminate within max_steps = 10"):
        sample_episodes(mdp, policy, 100, np.random.default_rng(0), max_steps=10)
    with pytest.raises(UsageError, match="did not terminate"):
        sample_episodes_naive(mdp, policy, 100, np.random.default_rng(0), max_steps=10)
    eps = sample_episodes(mdp, policy, 100, np.random.default_rng(0))   # default cap 100000
    assert eps.lengths.max() < 100_000


@pytest.mark.parametrize("kwargs, message", [
    (dict(n=0), "positive integer, got 0"),
    (dict(n=-3), "positive integer, got -3"),
    (dict(n=2.5), "positive integer, got 2.5"),
    (dict(n=True), "positive integer, got True"),
    (dict(n=10, chunk=0), "chunk must be a positive integer, got 0"),
    (dict(n=10, max_steps=5), "max_steps applies to horizon null only"),
])
def test_bad_arguments_are_usage_errors(kwargs, message):
    mdp, policy = PROBLEMS["chain"]()
    with pytest.raises(UsageError, match=message):
        sample_episodes(mdp, policy, rng=np.random.default_rng(0), **kwargs)


def test_bad_max_steps_for_horizon_null():
    problem = builtin_examples()["discounted"]
    with pytest.raises(UsageError, match="max_steps must be a positive integer, got 0"):
        sample_episodes(problem.mdp, problem.policy, 10, np.random.default_rng(0), max_steps=0)


def test_chunk_size_keeps_the_working_set_under_budget():
    mdp = TabularMDP(initial=np.eye(16)[0], transitions=np.full((16, 4, 16), 1 / 16), rewards=np.zeros((16, 4)),
                     horizon=100)
    n = chunk_size(mdp)
    assert 8 * n * (8 * 101 + 5 * 64) <= 200 * 2**20 < 8 * (n + 1) * (8 * 101 + 5 * 64)
    assert chunk_size(mdp, budget=1) == 1       # no floor: a floor of 256 episodes overran the memory limit


def test_next_or_end_gives_the_next_row_or_minus_one_where_the_episode_ends():
    for problem in builtin_examples().values():
        for alias in (True, False):
            tab = sampler_module.joint_table(problem.mdp, problem.policy, alias=alias)
            K = max(tab.width, 1)
            expected = [-1 if problem.mdp.terminal[s] else s * K for s in tab.next_state.tolist()]
            assert tab.next_or_end.tolist() == expected
            assert not tab.next_or_end.flags.writeable


def test_ctrl_c_inside_compiled_code_is_raised_when_it_returns():
    """SIGINT during the kernel's calls (numba may be compiling, calling back into Python through ctypes, which
    drops an exception raised there) is held until the block ends, then raised as KeyboardInterrupt."""
    import os
    import signal

    from verify.numerics.sampler import _interrupt_after_compiled_code

    reached = []
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with _interrupt_after_compiled_code():
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):          # Python code after the signal: no KeyboardInterrupt in here
                    pass
                reached.append(True)
        assert reached == [True]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with _interrupt_after_compiled_code():   # no signal: nothing raised
            pass
    finally:
        signal.signal(signal.SIGINT, previous)
