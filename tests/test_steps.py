"""The valid-step list (``verify.numerics.episodes.Steps``) against the padded formulas, bit for bit.

The estimators compute on the valid steps only (M = sum of lengths) instead of the padded [N, T] grid. What they
must reproduce is the padded computation pgverify ran before: per-step weights w_t [N, T], ``np.where(mask, w_t,
0)``, one ``bincount`` over every (n, t) cell and ``policy.score_contract``. That computation is written out here
as the reference (numpy on the padded arrays, no pgverify return or weight function), and every comparison is of
the bytes, so exact moments (enumerations weighted by p(tau)) and seeded Monte Carlo runs are unchanged by the
step list. The value tables V_t, Q_t are an input of both sides (``verify.numerics.exact.value_tables``; their values are
checked independently in tests/test_estimators.py).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verify.model.builtin import builtin_examples
from verify.numerics.episodes import (Episodes, StepEpisodes, at_steps, reward_to_go, score_sums, step_index,
                             step_reward_to_go, time_blocks, valid_steps)
from verify.checks.estimators import ESTIMATORS, GAE_LAMBDA, NORMALIZE_EPS, VALUE_NOISE
from verify.numerics.exact import enumerate_trajectories, value_tables
from verify.model.mdp import TabularMDP
from verify.model.policy import LinearSoftmax, TabularSoftmax, _action_sums
from verify.numerics.sampler import iter_episode_chunks, sample_episodes
from verify.testing.strategies import problems

from helpers import assert_same_bits, random_problem


# --- the padded reference ------------------------------------------------------------------------------------------

def padded_score_sums(eps, w_t):
    N, T = eps.a_t.shape
    S, A = eps.policy.probs.shape
    w = np.where(eps.mask, w_t, 0.0)
    flat = (np.arange(N)[:, None] * S + eps.s_t[:, :T]) * A + eps.a_t
    W = np.bincount(flat.ravel(), weights=w.ravel(), minlength=N * S * A).reshape(N, S, A)
    return eps.policy.score_contract(W)


def padded_reward_to_go(r_t, disc, gamma, restart=False):
    if not restart:
        return np.cumsum((r_t * disc)[:, ::-1], axis=1)[:, ::-1]
    return padded_backward_sum(r_t, gamma)


def padded_backward_sum(x_t, c):
    """y_t = x_t + c y_{t+1}, one column at a time from the end."""
    y, acc = np.zeros_like(x_t), np.zeros(x_t.shape[0])
    for t in range(x_t.shape[1] - 1, -1, -1):
        acc = x_t[:, t] + c * acc
        y[:, t] = acc
    return y


def padded_gae(eps, V, lam):
    """GAE(lambda) on the padded arrays: delta_t = r_t + gamma V_{t+1}(s_{t+1}) [t + 1 < L] - V_t(s_t)."""
    T, g = eps.T, eps.mdp.gamma
    t = np.arange(T) if V.shape[0] > 1 else np.zeros(T, dtype=np.intp)
    v = V[t[None, :], eps.s_t[:, :T]]
    v_next = np.zeros_like(v)
    v_next[:, :-1] = np.where(eps.mask[:, 1:], v[:, 1:], 0.0)
    delta = np.where(eps.mask, eps.r_t + g * v_next - v, 0.0)
    return padded_backward_sum(delta, g * lam)


def padded_weights(name, eps):
    """Each catalog estimator's w_t [N, T] as the padded formula."""
    V, Q = value_tables(eps.mdp, eps.policy)
    t = np.arange(eps.T) if V.shape[0] > 1 else np.zeros(eps.T, dtype=np.intp)
    s, disc, g = eps.s_t[:, :eps.T], eps.mdp.gamma ** np.arange(eps.T, dtype=float), eps.mdp.gamma
    R = eps.r_t @ disc
    G = padded_reward_to_go(eps.r_t, disc, g)
    q, v = disc * Q[t[None, :], s, eps.a_t], disc * V[t[None, :], s]
    if name == "total_return":
        return np.broadcast_to(R[:, None], G.shape)
    if name == "baseline_constant":
        return np.broadcast_to((R - float(eps.mdp.initial @ V[0]))[:, None], G.shape)
    if name == "reward_to_go":
        return G
    if name == "baseline_value":
        return G - v
    if name == "action_baseline":
        return G - q
    if name == "q_value":
        return q
    if name in ("advantage", "ppo_surrogate"):     # PPO's clip at theta_old: rho = exp(0) = 1, weights unchanged
        return q - v
    if name == "rtg_restart_discount":
        return padded_reward_to_go(eps.r_t, disc, g, restart=True)
    if name == "rtg_skip_current":
        return G - eps.r_t * disc
    if name == "score_wrong_time":
        w = np.zeros_like(G)
        w[:, 1:] = G[:, :-1]
        return w
    if name == "gae":
        return disc * padded_gae(eps, V, GAE_LAMBDA)
    if name == "gae_no_discount":
        return padded_gae(eps, V, GAE_LAMBDA)
    if name == "gae_stationary_value":
        return disc * padded_gae(eps, V[:1], GAE_LAMBDA)
    if name == "gae_noisy_value":
        size = VALUE_NOISE * max(float(np.abs(V).max()), float(np.abs(eps.mdp.successors.reward).max()))
        noisy = V + size * np.random.default_rng(V.shape).standard_normal(V.shape)
        return disc * padded_gae(eps, noisy, GAE_LAMBDA)
    assert name == "batch_normalized", f"no padded reference for {name}"
    w = eps.mask * (1.0 if eps.weights is None else eps.weights[:, None])
    total = w.sum()
    if total == 0:
        return np.zeros_like(G)
    mean = (w * G).sum() / total
    std = np.sqrt((w * (G - mean) ** 2).sum() / total)
    return (G - mean) / (std + NORMALIZE_EPS)


def assert_catalog_matches_padded(eps):
    for e in ESTIMATORS:
        assert_same_bits(e.per_episode(eps), padded_score_sums(eps, padded_weights(e.name, eps)))


PROBLEMS = {**{name: (p.mdp, p.policy.with_theta(np.random.default_rng(1).normal(size=p.policy.theta.shape)))
               for name, p in builtin_examples().items()},
            "random_tabular": random_problem(0, S=4, A=3, H=4, gamma=1.0),
            "random_linear": random_problem(1, S=4, A=3, H=4, linear=True),
            "random_9_actions": random_problem(2, S=3, A=9, H=4, gamma=0.5)}


# --- the catalog on the step list equals the padded formulas --------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_catalog_on_samples_matches_padded_formulas(name):
    mdp, policy = PROBLEMS[name]
    for batch in iter_episode_chunks(mdp, policy, 1500, np.random.default_rng(3), chunk=600):
        assert_catalog_matches_padded(batch)


# random_9_actions enumerates 321 103 trajectories (~1 s per estimator for the padded reference); its 9-action
# contraction (numpy's pairwise sums from 8 terms on) is compared on samples above.
@pytest.mark.parametrize("name", [n for n in sorted(PROBLEMS)
                                  if PROBLEMS[n][0].horizon is not None and n != "random_9_actions"])
def test_catalog_on_enumerations_matches_padded_formulas(name):
    # Exact moments are weighted sums of these values: equal bits here means unchanged exact moments.
    mdp, policy = PROBLEMS[name]
    assert_catalog_matches_padded(enumerate_trajectories(mdp, policy))


def test_sub_batches_and_non_contiguous_arrays():
    mdp, policy = PROBLEMS["random_tabular"]
    eps = sample_episodes(mdp, policy, 400, np.random.default_rng(4))
    assert_catalog_matches_padded(eps.select(np.random.default_rng(5).permutation(eps.n)[:150]))
    # The shorter episodes with less padding: strided views of the wider arrays.
    short = eps.select(np.flatnonzero(eps.lengths < eps.T))
    T = int(short.lengths.max())
    cut = Episodes(short.s_t[:, :T + 1], short.a_t[:, :T], short.r_t[:, :T], short.lengths, mdp, policy)
    assert not cut.a_t.flags.c_contiguous
    assert_catalog_matches_padded(cut)


def test_score_sums_ignores_padding_and_accepts_broadcasts():
    mdp, policy = PROBLEMS["chain"]
    eps = sample_episodes(mdp, policy, 300, np.random.default_rng(6))
    w_t = np.random.default_rng(7).normal(size=eps.a_t.shape)
    assert_same_bits(score_sums(eps, w_t), padded_score_sums(eps, w_t))
    junk = np.where(eps.mask, w_t, np.nan)          # padding is never read
    assert_same_bits(score_sums(eps, junk), padded_score_sums(eps, w_t))
    per_episode = np.broadcast_to(np.arange(eps.n, dtype=float)[:, None], eps.a_t.shape)
    assert_same_bits(score_sums(eps, per_episode), padded_score_sums(eps, per_episode))
    assert_same_bits(score_sums(eps, 2.0), padded_score_sums(eps, np.full(eps.a_t.shape, 2.0)))


@pytest.mark.parametrize("kw", [{}, {"restart_discount": True}, {"include_current": False},
                                {"restart_discount": True, "include_current": False}])
def test_step_reward_to_go_is_the_padded_one_at_the_steps(kw):
    mdp, policy = PROBLEMS["discounted"]
    eps = sample_episodes(mdp, policy, 500, np.random.default_rng(8))
    assert_same_bits(step_reward_to_go(eps, **kw), at_steps(eps, reward_to_go(eps, **kw)))


@settings(max_examples=40)
@given(problems(horizon=st.integers(1, 6), terminal=st.booleans()), st.integers(1, 40), st.integers(0, 2**16))
def test_catalog_matches_padded_formulas_on_generated_problems(problem, n, seed):
    eps = sample_episodes(problem.mdp, problem.policy, n, np.random.default_rng(seed))
    assert_catalog_matches_padded(eps)


def test_batches_without_steps():
    mdp = TabularMDP(initial=[0, 1], transitions=[[[0.5, 0.5]], [[0, 1]]], rewards=[[1], [0]], terminal=[1],
                     horizon=3)
    eps = sample_episodes(mdp, TabularSoftmax(np.zeros((2, 1))), 5, np.random.default_rng(0))
    assert eps.T == 0 and eps.steps.n.size == 0
    for e in ESTIMATORS:
        assert_same_bits(e.per_episode(eps), np.zeros((5, 2, 1)))
        assert e.per_episode(eps.select(slice(0, 0))).shape == (0, 2, 1)


# --- the step list itself -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_sampler_steps_equal_the_gathered_ones(name):
    # The sampler hands its batches their step list from its log; it must be what valid_steps gathers.
    mdp, policy = PROBLEMS[name]
    for batch in iter_episode_chunks(mdp, policy, 700, np.random.default_rng(9), chunk=300):
        assert "steps" in batch.__dict__
        logged, gathered = batch.steps, valid_steps(batch)
        for field in ("n", "t", "s", "a", "r", "lengths"):
            assert_same_bits(getattr(logged, field), getattr(gathered, field))
        assert (logged.n_states, logged.n_actions) == (gathered.n_states, gathered.n_actions)


def test_sampled_batches_pad_only_when_read():
    mdp, policy = PROBLEMS["gridworld"]
    batch = next(iter_episode_chunks(mdp, policy, 300, np.random.default_rng(11)))
    assert isinstance(batch, StepEpisodes)
    for e in ESTIMATORS:
        if e.name not in ("total_return", "baseline_constant", "batch_normalized"):    # these read r_t
            e.per_episode(batch)
    assert not {"s_t", "a_t", "r_t"} & set(vars(batch))
    n, T = batch.n, batch.T
    assert batch.s_t.shape == (n, T + 1) and batch.a_t.shape == batch.r_t.shape == (n, T)
    assert batch.s_t.dtype == batch.a_t.dtype == np.intp and batch.r_t.dtype == float
    assert batch.s_t is batch.s_t          # built once


def test_steps_layout_and_read_only():
    mdp, policy = PROBLEMS["gridworld"]
    eps = sample_episodes(mdp, policy, 200, np.random.default_rng(10))
    steps = eps.steps
    # Episode by episode, longest first (stably), each in increasing t.
    order = sorted(range(eps.n), key=lambda k: -eps.lengths[k])
    assert steps.n.tolist() == [k for k in order for _ in range(eps.lengths[k])]
    assert steps.t.tolist() == [t for k in order for t in range(eps.lengths[k])]
    assert_same_bits(steps.s, eps.s_t[steps.n, steps.t])
    assert_same_bits(steps.a, eps.a_t[steps.n, steps.t])
    assert_same_bits(steps.r, eps.r_t[steps.n, steps.t])
    with pytest.raises(ValueError):
        steps.r[0] = 1.0
    assert eps.lengths.flags.writeable          # the batch's own arrays are untouched


@given(st.lists(st.integers(0, 7), max_size=30))
def test_time_blocks(lengths):
    lengths = np.array(lengths, dtype=np.intp)
    first, running = time_blocks(lengths)
    n, t = step_index(lengths)
    assert len(running) == lengths.max(initial=0) and sum(running) == n.size
    longest_first = sorted(range(lengths.size), key=lambda k: -lengths[k])     # stable
    for k, size in enumerate(running):
        block = first[:size] + k
        assert (t[block] == k).all()
        assert n[block].tolist() == [e for e in longest_first if lengths[e] > k]


# --- the contraction on visited rows ----------------------------------------------------------------------------------

@pytest.mark.parametrize("A", range(1, 13))
def test_action_sums_are_numpys_sum(A):
    rng = np.random.default_rng(A)
    W = rng.normal(size=(5000, A)) * 10.0 ** rng.integers(-12, 12, size=(5000, A))
    W[::7] = 0.0
    W[1::7] = -0.0
    W[2::7, 0] = -0.0
    assert_same_bits(_action_sums(W), W.sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("S, A", [(1, 1), (3, 2), (5, 4), (4, 9)])
@pytest.mark.parametrize("linear", [False, True])
def test_score_contract_rows_is_score_contract(S, A, linear):
    rng = np.random.default_rng(S * 10 + A)
    policy = (LinearSoftmax(rng.normal(size=(S, A, 3)), rng.normal(size=3)) if linear
              else TabularSoftmax(rng.normal(size=(S, A)) * 3))
    n = 50
    rows = np.sort(rng.choice(n * S, size=n * S // 3, replace=False))
    W_rows = rng.normal(size=(rows.size, A)) * 10.0 ** rng.integers(-6, 6, size=(rows.size, A))
    W = np.zeros((n * S, A))
    W[rows] = W_rows
    assert_same_bits(policy.score_contract_rows(W_rows, rows, n), policy.score_contract(W.reshape(n, S, A)))
