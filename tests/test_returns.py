"""verify.returns against loops written from the definitions, one episode and one step at a time.

Each expected value is a plain Python sum over the episode's valid steps (no numpy recursion, no pgverify code);
padding is filled with junk to show it is never read. The step layout is compared with the padded functions bit
for bit, as the catalog relies on.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from verify import returns
from verify.episodes import step_index, time_blocks

from helpers import assert_same_bits


@st.composite
def batches(draw):
    """(r_t [N, T] with junk padding, lengths [N], s_t [N, T + 1], V [T' , S], gamma, lambda)."""
    N, T, S = draw(st.integers(1, 5)), draw(st.integers(1, 6)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, T + 1, size=N)
    r_t = rng.normal(size=(N, T))
    valid = np.arange(T)[None, :] < lengths[:, None]
    r_t[~valid] = 1e6                                   # junk: must never be read
    s_t = rng.integers(0, S, size=(N, T + 1))
    stationary = draw(st.booleans())
    V = rng.normal(size=(1 if stationary else T, S))
    gamma = draw(st.sampled_from([0.0, 0.5, 0.9, 1.0]))
    lam = draw(st.sampled_from([0.0, 0.3, 0.95, 1.0]))
    return r_t, lengths, s_t, V, gamma, lam


def loop_values(r_t, lengths, s_t, V, gamma, lam):
    """Per episode: R, G_t, restarted G_t, delta_t and GAE A_t, by sums over the valid steps."""
    v = lambda t, s: V[0 if V.shape[0] == 1 else t, s]      # noqa: E731
    out = []
    for n, L in enumerate(lengths):
        r = [float(r_t[n, t]) for t in range(L)]
        s = [int(x) for x in s_t[n, :L + 1]]
        G = [sum(gamma ** u * r[u] for u in range(t, L)) for t in range(L)]
        G_restart = [sum(gamma ** (u - t) * r[u] for u in range(t, L)) for t in range(L)]
        delta = [r[t] + (gamma * v(t + 1, s[t + 1]) if t + 1 < L else 0.0) - v(t, s[t]) for t in range(L)]
        A = [sum((gamma * lam) ** (u - t) * delta[u] for u in range(t, L)) for t in range(L)]
        out.append((sum(gamma ** t * r[t] for t in range(L)), G, G_restart, delta, A))
    return out


def valid_rows(x_t, lengths):
    return [x_t[n, :L].tolist() for n, L in enumerate(lengths)]


@given(batches())
def test_padded_functions_match_the_loops(batch):
    r_t, lengths, s_t, V, gamma, lam = batch
    expected = loop_values(*batch)
    np.testing.assert_allclose(returns.discounted_returns(r_t, gamma, lengths), [e[0] for e in expected],
                               rtol=1e-12, atol=1e-12)
    for got, k in ((returns.reward_to_go(r_t, gamma, lengths), 1),
                   (returns.reward_to_go(r_t, gamma, lengths, restart_discount=True), 2),
                   (returns.td_errors(r_t, V, s_t, gamma, lengths), 3),
                   (returns.gae_advantages(r_t, V, s_t, gamma, lam, lengths), 4)):
        for row, e in zip(valid_rows(got, lengths), expected):
            np.testing.assert_allclose(row, e[k], rtol=1e-12, atol=1e-12)
        assert not got[np.arange(got.shape[1])[None, :] >= lengths[:, None]].any()     # padding gives 0


@given(batches())
def test_step_layout_is_the_padded_computation_bit_for_bit(batch):
    r_t, lengths, s_t, V, gamma, lam = batch
    n, t = step_index(lengths)
    blocks = time_blocks(lengths)
    r, s = r_t[n, t], s_t[n, t]
    assert_same_bits(returns.step_discounted_cumsum(r, gamma, blocks),
                     returns.discounted_cumsum(r_t, gamma, lengths)[n, t])
    delta = returns.step_td_errors(r, t, s, V, gamma)
    assert_same_bits(delta, returns.td_errors(r_t, V, s_t, gamma, lengths)[n, t])
    assert_same_bits(returns.step_discounted_cumsum(delta, gamma * lam, blocks),
                     returns.gae_advantages(r_t, V, s_t, gamma, lam, lengths)[n, t])


def test_gae_lambda_one_is_the_restarted_reward_to_go_minus_v():
    rng = np.random.default_rng(0)
    r_t, s_t, V = rng.normal(size=(4, 5)), rng.integers(0, 3, size=(4, 6)), rng.normal(size=(5, 3))
    lengths = np.array([5, 3, 0, 1])
    A = returns.gae_advantages(r_t, V, s_t, 0.9, 1.0, lengths)
    G = returns.reward_to_go(r_t, 0.9, lengths, restart_discount=True)
    v = returns.values_at(V, np.broadcast_to(np.arange(5), (4, 5)), s_t[:, :5])
    mask = returns.valid_mask(lengths, 5)
    np.testing.assert_allclose(A[mask], (G - v)[mask], atol=1e-12)


def test_state_baseline_is_discounted_value():
    V = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert returns.state_baseline(V, np.array([[1, 0]]), 0.5).tolist() == [[2.0, 1.5]]
    assert returns.state_baseline(V[:1], np.array([[1, 0]]), 0.5).tolist() == [[2.0, 0.5]]    # stationary


@pytest.mark.parametrize("call, message", [
    (lambda: returns.discounted_returns(np.zeros(3), 0.5), r"r_t must have shape \[N, T\]"),
    (lambda: returns.reward_to_go(np.zeros((2, 3)), 0.5, np.array([1, 4])), "lengths must lie in 0..T = 0..3"),
    (lambda: returns.reward_to_go(np.zeros((2, 3)), 0.5, np.array([1])), r"lengths must have shape \[N\]"),
    (lambda: returns.td_errors(np.zeros((2, 3)), np.zeros((3, 2)), np.zeros((2, 3), int), 0.5),
     r"s_t must have shape \[N, T \+ 1\]"),
    (lambda: returns.values_at(np.zeros((2, 3)), np.zeros(2, int), np.zeros(2, int), np.zeros(2, int)),
     "must have 3 axes"),
    (lambda: returns.step_discounted_cumsum(np.zeros(3), 0.5, time_blocks(np.array([2]))),
     r"x must have shape \[M\] = \(2,\)"),
])
def test_shapes_are_checked(call, message):
    with pytest.raises(ValueError, match=message):
        call()
