"""Limits that hold: loops bounded by arithmetic, the work limit counting what runs, chunks that fit --max-memory."""
from __future__ import annotations

import math

import numpy as np
import pytest

from verify.errors import UsageError
from verify.io import Limits, limits_scope
from verify.mdp import TabularMDP
from verify.policy import TabularSoftmax
from verify.sampler import PROCESS_BYTES, chunk_size, effective_horizon, episode_bytes, sample_episodes


def _log_bound(m: int, g: float) -> float:
    return m * math.log(g) + math.log1p(m * (1 - g))


@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.99, 0.999, 1 - 1e-7, 1 - 1e-12, 1 - 1e-15])
def test_effective_horizon_is_the_smallest_cap_and_is_found_at_once(gamma):
    # the defining inequality, checked directly: m satisfies it and m - 1 does not
    m = effective_horizon(gamma)
    assert _log_bound(m, gamma) <= math.log(1e-12) < _log_bound(m - 1, gamma)


def test_effective_horizon_matches_a_step_by_step_search_where_that_is_cheap():
    for gamma in (0.3, 0.8, 0.95):
        m = 1
        while gamma ** m * (1 + m * (1 - gamma)) > 1e-12:
            m += 1
        assert effective_horizon(gamma) == m


def _loop(gamma=1.0, horizon=None, stay=0.999):
    return TabularMDP(initial=[1, 0], transitions=[[[stay, 1 - stay]], [[0, 1]]], rewards=[[1], [0]], terminal=[1],
                      gamma=gamma, horizon=horizon)


def test_the_work_limit_counts_the_steps_that_run():
    mdp = _loop()       # expected length 1000 steps per episode: 50 episodes are about 5 10^4 steps
    policy = TabularSoftmax(np.zeros((2, 1)))
    with limits_scope(Limits(max_work=10_000)):
        with pytest.raises(UsageError, match=r"stopped after .* steps, more than the work limit 1e\+04"):
            sample_episodes(mdp, policy, 50, np.random.default_rng(0))
    with limits_scope(Limits(max_work=10**7)):
        batch = sample_episodes(mdp, policy, 50, np.random.default_rng(0))
    assert batch.lengths.sum() > 10_000     # the same draws run through when the limit allows them


def test_chunks_fit_the_memory_limit_without_a_floor():
    mdp = _loop(horizon=10**5, stay=1.0)
    per_episode = 195 * (10**5 + 1)     # the run's budget charges 195 bytes per padded step (``run_bytes``)
    assert per_episode > episode_bytes(mdp)
    for limit in (300 * 2**20, 2**30):
        with limits_scope(Limits(max_memory=limit)):
            n = chunk_size(mdp)
        assert PROCESS_BYTES + n * per_episode <= limit < PROCESS_BYTES + (n + 1) * per_episode


@pytest.mark.parametrize("limit", ["300M", "1G", "2G"])
def test_a_run_that_fits_in_smaller_chunks_is_not_refused_under_a_larger_limit(limit):
    # 1 000 episodes of 10^5 steps ran under 300M in small chunks but were refused under 1G and 2G (1.6 and
    # 3.5 GiB): the chunks were sized at a cheaper rate per step than the run's budget charged.
    from verify.checks.budget import run_bytes
    from verify.io import parse_size
    from verify.problem import Problem

    problem = Problem(_loop(horizon=10**5, stay=1.0), TabularSoftmax(np.zeros((2, 1))))
    with limits_scope(Limits(max_memory=parse_size(limit))):
        needed = run_bytes(problem, 1000, ["reward_to_go"])
    assert PROCESS_BYTES + needed <= parse_size(limit), (needed / 2**20, limit)


def test_a_gamma_next_to_one_is_refused_in_a_second_not_run():
    from verify.mc import run_estimators
    from verify.problem import Problem

    mdp = _loop(gamma=1 - 1e-15, stay=1.0)
    with pytest.raises(UsageError, match=r"step cap of 31124750519052339 .*--horizon H"):
        run_estimators(Problem(mdp, TabularSoftmax(np.zeros((2, 1)))), ["reward_to_go"], episodes=100)


def test_action_values_at_expands_each_distinct_step_once(monkeypatch):
    # one state-action with 2 000 successors visited by 5 000 steps: 10^7 entries if each step expanded them
    from verify.exact import action_values_at, value_tables
    from verify.numerics import exact
    monkeypatch.setattr(exact, "GATHER_KEPT_Q", False)     # the expansion itself (a small Q table would be read)

    n = 2000
    S = n + 1
    trans = {"sparse": [[0, 0, s, 1.0 / n] for s in range(1, S)] + [[s, 0, s, 1.0] for s in range(1, S)]}
    rewards = {"sparse": [[s, 0, float(s % 7)] for s in range(S)]}
    mdp = TabularMDP(initial=np.eye(S)[0], transitions=trans, rewards=rewards, horizon=3, states=S, actions=1)
    policy = TabularSoftmax(np.zeros((S, 1)))
    t = np.repeat([0, 1], 2500)
    s = np.where(t == 0, 0, 8)
    q = action_values_at(mdp, policy, t, s, np.zeros_like(t))
    # by hand: from s at t = 1 two actions remain, each paying s % 7; from 0 one of the n successors is uniform
    q0 = sum(2 * (k % 7) for k in range(1, S)) / n
    assert q.shape == (5000,)
    np.testing.assert_allclose(q[:2500], q0, rtol=1e-12)
    np.testing.assert_allclose(q[2500:], 2 * (8 % 7), rtol=1e-12)     # r + V_2 at state 8: 1 + 1
    _, Q = value_tables(mdp, policy)      # the table's bits (the same summation order)
    assert np.all(q[:2500] == Q[0, 0, 0]) and np.all(q[2500:] == Q[1, 8, 0])


@pytest.mark.parametrize("gamma, refused", [(0.999, False), (1 - 1e-9, False), (1 - 1e-12, True), (1 - 1e-15, True)])
def test_an_ill_conditioned_solve_is_refused_not_returned(gamma, refused):
    from verify.errors import NumericalError
    from verify.exact import gradient

    mdp = _loop(gamma=gamma, stay=1.0)     # never terminates: kappa ~ 2 / (1 - gamma)
    policy = TabularSoftmax(np.zeros((2, 1)))
    if refused:
        with pytest.raises(NumericalError, match="ill-conditioned"):
            gradient(mdp, policy)
    else:     # J = sum_t gamma^t = 1 / (1 - gamma), to the precision the refusal threshold promises
        assert gradient(mdp, policy).J == pytest.approx(1 / (1 - gamma), rel=1e-6)


def test_overflowing_rewards_are_an_error_not_inf():
    from verify.errors import NumericalError
    from verify.exact import gradient

    mdp = TabularMDP(initial=[1], transitions=[[[1.0], [1.0]]], rewards=[[1e308, -1e308]], horizon=3)
    with pytest.raises(NumericalError, match="overflowed"):
        gradient(mdp, TabularSoftmax(np.zeros((1, 2))))


def test_a_full_device_on_stdout_is_named_not_a_bug(tmp_path):
    import os
    import subprocess
    import sys

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with open("/dev/full", "w") as full:
        run = subprocess.run([sys.executable, "-m", "verify", "gradient", "--example", "chain"], stdout=full,
                             stderr=subprocess.PIPE, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr == "pgverify gradient: error: the operating system refused an input or output: " \
                         "No space left on device\n"


def test_a_missing_renderer_is_named_not_a_bug(capsys):
    pytest.importorskip("gymnasium")
    try:
        import pygame  # noqa: F401
        pytest.skip("pygame is installed here")
    except ImportError:
        pass
    from verify.cli import main

    code = main(["mc", "--gym", "FrozenLake-v1", "--gym-kwargs", "render_mode=human", "--sampler", "gymnasium",
                 "--estimator", "reward_to_go", "--episodes", "10"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "is not installed" in err and "a bug" not in err, err


def test_a_huge_horizon_through_the_api_is_a_usage_error_not_a_memory_error():
    from verify.exact import gradient, value_tables

    mdp = TabularMDP(initial=[1, 0], transitions=[[[0.5, 0.5]], [[0.5, 0.5]]], rewards=[[1], [0]], horizon=10**9)
    policy = TabularSoftmax(np.zeros((2, 1)))
    with pytest.raises(UsageError, match="horizon 1000000000"):
        gradient(mdp, policy)
    with pytest.raises(UsageError, match="horizon 1000000000"):
        value_tables(mdp, policy)
