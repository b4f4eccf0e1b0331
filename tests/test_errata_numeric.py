"""The numeric errata's evidence, recomputed independently (plain-Python enumeration, DP per time step)."""
import itertools
import math

import numpy as np
import pytest

from verify.app.errata import (
    all_errata, discount_restart_bias, reward_to_go_discount_origin, reward_to_go_variance, rtg_variance_counterexample,
)
from verify.numerics.exact import gradient
from verify.model.mdp import TabularMDP
from verify.model.policy import TabularSoftmax


def test_reward_to_go_can_have_higher_variance():
    # Two pulls of a one-state bandit: enumerate the 4 action pairs by hand in plain Python.
    r = [-2.0, 2.0]
    z = [math.exp(2.0), math.exp(-2.0)]
    pi = [v / sum(z) for v in z]

    def score(a):
        return [(1.0 if b == a else 0.0) - pi[b] for b in range(2)]

    def moments(g):
        runs = [(pi[a0] * pi[a1], g(a0, a1)) for a0, a1 in itertools.product(range(2), repeat=2)]
        mean = [sum(p * v[i] for p, v in runs) for i in range(2)]
        return sum(p * sum((v[i] - mean[i]) ** 2 for i in range(2)) for p, v in runs)

    def total(a0, a1):
        return [(r[a0] + r[a1]) * (x + y) for x, y in zip(score(a0), score(a1))]

    def rtg(a0, a1):
        return [(r[a0] + r[a1]) * x + r[a1] * y for x, y in zip(score(a0), score(a1))]

    got = rtg_variance_counterexample()
    assert got["total_return"] == pytest.approx(moments(total), rel=1e-12)
    assert got["reward_to_go"] == pytest.approx(moments(rtg), rel=1e-12)
    assert moments(rtg) > 3 * moments(total)


def test_restarted_discount_bias_equals_the_dropped_gamma_t_factors():
    # restart weights step t by gamma^{-t} times the correct weight, so its bias is
    # sum_t (gamma^{-t} - 1) * (step t's term of the policy-gradient theorem); compute those terms by hand-rolled DP.
    P = np.zeros((3, 2, 3))
    P[0, 0, 0] = P[0, 1, 1] = 1.0
    P[1, :, 2] = 1.0
    P[2, :, 2] = 1.0
    r = np.zeros((3, 2))
    r[1] = [1.0, 0.0]
    g, H = 0.5, 3
    pi = np.full((3, 2), 0.5)
    alive = np.array([1.0, 1.0, 0.0])
    V = np.zeros(3)
    Q = {}
    for k in range(1, H + 1):
        Q[H - k] = r + g * np.einsum("sat,t->sa", P, alive * V)
        V = (pi * Q[H - k]).sum(1)
    d = np.array([1.0, 0.0, 0.0])
    bias = np.zeros((3, 2))
    for t in range(H):
        term = d[:, None] * pi * (Q[t] - (pi * Q[t]).sum(1, keepdims=True))   # tabular score: e_a - pi
        bias += (g ** -t - 1.0) * g ** t * term
        d = np.einsum("s,sa,sat->t", d, pi, P) * alive
    got = discount_restart_bias()
    assert got["reward_to_go"] < 1e-15
    assert got["rtg_restart_discount"] == pytest.approx(np.abs(bias).max(), rel=1e-12)
    assert got["rtg_restart_discount"] > 0.05
    # sanity of the hand model: reward 1 is reached at t = 1 (go, then action 0: prob 1/4, weight gamma) or at
    # t = 2 (stay, go, action 0: prob 1/8, weight gamma^2)
    mdp = TabularMDP([1, 0, 0], P, r, terminal=[2], gamma=g, horizon=H)
    assert gradient(mdp, TabularSoftmax(np.zeros((3, 2)))).J == pytest.approx(0.25 * g + 0.125 * g**2, abs=1e-15)


def test_every_erratum_is_complete_and_unique():
    errata = all_errata()
    assert len({e.id for e in errata}) == len(errata) >= 8
    for e in errata:
        assert e.source_text and e.correction and e.evidence


def test_variance_erratum_sentence_and_verdict_follow_the_parameters():
    e = reward_to_go_variance()
    assert e.holds and " < " in str(e.evidence) and "× larger" in str(e.evidence)
    assert "rewards −2 and 2" in str(e.evidence) and "θ = (2, −2)" in str(e.evidence)
    # rewards 0 and 1 at the same theta: reward-to-go has the smaller variance, so the counterexample is gone
    moved = reward_to_go_variance(rewards=(0.0, 1.0))
    assert moved.value["reward_to_go"] < moved.value["total_return"]
    assert not moved.holds and " > " in str(moved.evidence) and "× smaller" in str(moved.evidence)
    assert "rewards 0 and 1" in str(moved.evidence)


def test_discount_erratum_at_gamma_one_no_longer_holds():
    assert reward_to_go_discount_origin().holds
    e = reward_to_go_discount_origin(1.0)     # gamma = 1: restarting the discount changes nothing
    assert e.value["rtg_restart_discount"] < 1e-12 and not e.holds
    assert "no bias at this γ" in str(e.evidence) and "γ = 1" in str(e.evidence)
