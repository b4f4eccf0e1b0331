"""Verdicts a user can trust (issue 11): no silent passes, labels that say what happened, power stated.

Sampling-only problems here are FrozenLake-v1 (horizon 100: too many trajectories to enumerate) and horizon-null
MDPs. Monte Carlo assertions that are not about calibration either are power assertions whose miss probability is
negligible (z-scores of 7 and more against a critical value of 4.3) or run at alpha <= 1e-6; exact verdicts are
asserted as such.
"""
import json
import subprocess
import sys

import numpy as np
import pytest

from verify.model.builtin import load_example
from verify.cli import main
from verify.numerics.episodes import step_reward_to_go, step_score_sums
from verify.checks.estimators import get_estimator
from verify.checks.gradcheck import as_estimator, check_estimator
from verify.checks.mc import run_check, run_mc
from verify.model.mdp import TabularMDP
from verify.model.policy import TabularSoftmax
from verify.model.problem import Problem

gym = pytest.importorskip("gymnasium")

ZERO = """
import numpy as np
def zero(episodes): return np.zeros((episodes.n, *np.shape(episodes.policy.theta)))
"""


def zero(episodes):
    return np.zeros((episodes.n, *np.shape(episodes.policy.theta)))


def rtg_times_1_03(episodes):
    """Reward-to-go with a 3% bias: E[1.03 g] - grad J = 0.03 grad J."""
    return 1.03 * get_estimator("reward_to_go").per_episode(episodes)


def rtg_restarted_form(episodes):
    """gamma^t times the restarted reward-to-go: reward-to-go written differently (equal up to ~1e-15)."""
    w = step_reward_to_go(episodes, restart_discount=True) * episodes.mdp.gamma ** episodes.steps.t
    return step_score_sums(episodes, w)


@pytest.fixture(scope="module")
def frozen_lake():
    from verify.frameworks.gym import gym_problem

    return gym_problem("FrozenLake-v1")


@pytest.fixture(scope="module")
def frozen_lake_099():
    from verify.frameworks.gym import gym_problem

    return gym_problem("FrozenLake-v1", gamma=0.99)


def test_zero_estimator_fails_on_frozen_lake_naming_the_component_and_the_miss(tmp_path):
    (tmp_path / "zero.py").write_text(ZERO)
    res = subprocess.run([sys.executable, "-m", "verify", "mc", "--gym", "FrozenLake-v1", "--estimator",
                          "zero.py:zero"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr
    out = res.stdout
    assert "INCONSISTENT" in out and "paired test against" in out
    miss = next(line for line in out.splitlines() if line.strip().startswith("the miss:"))
    assert "theta[" in miss and "mean of g - " in miss and "z = " in miss
    assert "UNDECIDED" in out           # the unpaired test alone has no power here: every estimate is 0


@pytest.mark.slow
def test_zero_estimator_fails_on_taxi():
    # 4000 episodes instead of the default keep it to ~20 s on an idle core (the unpaired test's eigendecomposition
    # of a 3000 x 3000 covariance dominates); the default run rejects more strongly (|z| = 14.8 at seed 0).
    from verify.frameworks.gym import gym_problem

    r = run_mc(gym_problem("Taxi-v4"), as_estimator(zero), episodes=4000)
    assert (r.verdict, r.decided_by, r.test.verdict) == ("inconsistent", "paired", "undecided")
    w = r.paired.worst
    # the miss: mean(0 - g_ref) estimates -grad J there, far outside its standard error
    assert abs(r.paired.z[w]) > 6 and np.sign(r.paired.mean[w]) == -np.sign(r.test.exact[w])


def test_restarted_discount_at_099_is_caught_by_the_paired_test(frozen_lake_099, capsys):
    code = main(["mc", "--gym", "FrozenLake-v1", "--gamma", "0.99", "--estimator", "rtg_restart_discount", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1 and (data["verdict"], data["decided_by"]) == ("inconsistent", "paired")
    assert data["paired"]["reference"] == "reward_to_go" and data["mc_verdict"] == "inconsistent"
    assert data["p_value"] > 1e-3 or data["paired"]["p_value"] < data["p_value"]   # paired is the stronger one


def test_a_three_percent_bias_is_caught_sampled_and_proved_enumerated(frozen_lake_099):
    sampled = check_estimator(rtg_times_1_03, frozen_lake_099)
    assert sampled.exact_mean is None and sampled.verdict == "inconsistent" and sampled.mc.decided_by == "paired"
    chain = check_estimator(rtg_times_1_03, "chain", episodes=2000)
    assert chain.verdict == "biased"
    np.testing.assert_allclose(chain.exact_bias, 0.03 * chain.grad, atol=1e-12)


def test_a_correct_estimator_written_differently_is_not_rejected(frozen_lake_099):
    # Equal to reward-to-go up to round-off on every episode: the paired difference is all round-off, so the paired
    # test has nothing to test (undecided) and must not reject; the unpaired test decides (alpha 1e-6).
    check = check_estimator(rtg_restarted_form, frozen_lake_099, alpha=1e-6)
    assert check.mc.paired.verdict == "undecided" and check.mc.decided_by == "unpaired"
    assert check.verdict == "consistent"


def test_consistent_always_states_its_power(frozen_lake_099, capsys):
    code = main(["mc", "--gym", "FrozenLake-v1", "--gamma", "0.99", "--estimator", "baseline_value", "--json",
                 "--alpha", "1e-6"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["verdict"] == "consistent" and data["power"] == 0.999
    bias = np.array(data["detectable_bias"], dtype=float)
    assert bias.shape == (16, 4) and np.all(bias > 0)
    sd = np.array(data["detectable_bias_sd"], dtype=float)
    varying = np.isfinite(sd)
    assert varying.any() and np.all(sd[varying] > 0)
    assert data["episodes_to_detect"]["episodes"] > 20_000 and data["episodes_to_detect"]["bias"] > 0
    code = main(["mc", "--gym", "FrozenLake-v1", "--gamma", "0.99", "--estimator", "baseline_value", "--alpha",
                 "1e-6"])
    assert "power: the " in capsys.readouterr().out


def _silent_mdp() -> Problem:
    """Horizon null, no reward anywhere: every estimate is exactly 0 and so is grad J."""
    mdp = TabularMDP(initial=[1, 0], transitions=[[[0.5, 0.5], [0.0, 1.0]], [[0, 1.0], [0, 1.0]]],
                     rewards=[[0.0, 0.0], [0.0, 0.0]], terminal=[1], gamma=1.0, horizon=None, name="silent")
    return Problem(mdp, TabularSoftmax(np.zeros((2, 2))))


def test_no_power_is_undecided_never_a_pass_and_counted_apart():
    r = run_mc(_silent_mdp(), "reward_to_go", episodes=500)
    assert r.verdict == "undecided" and "no variance" in r.sampled.reason
    check = run_check(_silent_mdp(), episodes=500)
    assert all(row.status == "undecided" for row in check.rows if not row.mc.estimator.batch_dependent)
    s = check.summary
    assert s["passed"] == 1 and s["failed"] == 0 and s["undecided"] >= 8      # 1: the exact gradients agree
    assert check.passed            # nothing failed; but nothing was counted as passed either


def test_check_on_frozen_lake_labels_structural_equivalences_for_the_problem(frozen_lake, capsys):
    code = main(["check", "--gym", "FrozenLake-v1", "--json", "--alpha", "1e-6"])
    data = json.loads(capsys.readouterr().out)
    rows = {r["estimator"]: r for r in data["estimators"]}
    # gamma = 1: the restarted discount is reward-to-go itself, and GAE without gamma^t is GAE: no bias to catch,
    # so the rows expect none and are judged as the unbiased estimators they equal (not a permanent "undecided")
    for name, equals in (("rtg_restart_discount", "reward_to_go"), ("gae_no_discount", "gae")):
        assert rows[name]["expected"] == "no bias here" and f"equals {equals}" in rows[name]["note"]
        assert rows[name]["status"] == rows[equals]["status"] == "passed", (name, rows[name]["outcome"])
    assert not [n for n, r in rows.items() if r["status"] == "undecided" and r["note"]]
    assert data["summary"]["passed"] + data["summary"]["undecided"] + data["summary"]["failed"] == \
        data["summary"]["checks"]
    assert code == 0


def test_reproduce_names_the_example_and_keeps_overrides():
    check = check_estimator(rtg_times_1_03, "chain", episodes=500, gamma=0.5, horizon=3)
    assert check.reproduce == ("check_estimator(rtg_times_1_03, 'chain', gamma=0.5, horizon=3, episodes=500, "
                               "seed=0, alpha=0.001)")
    again = eval(check.reproduce, {"check_estimator": check_estimator, "rtg_times_1_03": rtg_times_1_03})  # noqa: S307
    np.testing.assert_array_equal(again.mean, check.mean)
    assert again.grad.tolist() == check.grad.tolist() and again.problem == check.problem
    assert load_example("chain").mdp.gamma != 0.5       # the override is really one
