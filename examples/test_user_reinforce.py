"""pgverify as the test suite of a user's REINFORCE code: the bug in ``reinforce_buggy`` is caught, the fix passes.

Run with ``pytest examples/test_user_reinforce.py``. Every check is deterministic for its seed.
"""
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from examples.user_reinforce import reinforce_buggy, reinforce_fixed
from verify.gradcheck import assert_estimator_unbiased, check_estimator
from verify.problem import load_problem
from verify.strategies import problems

CHAIN = load_problem(Path(__file__).with_name("chain.json"))     # gamma = 0.9, horizon 5: 227 trajectories


def test_the_fixed_estimator_passes_on_the_chain():
    assert_estimator_unbiased(reinforce_fixed, CHAIN, episodes=4000)


def test_the_restarted_discount_is_caught_and_named():
    with pytest.raises(AssertionError) as failure:
        assert_estimator_unbiased(reinforce_buggy, CHAIN, episodes=4000)
    message = str(failure.value)
    assert "BIASED, proved by enumerating" in message                   # the exact mean, not only a p-value
    assert "catalog pitfall rtg_restart_discount" in message           # which bug it is
    assert "seed 0" in message


def test_the_bug_is_harmless_without_discounting():
    # With gamma = 1, gamma^(t'-t) = gamma^t' = 1: the "bug" computes the same estimates, so it must pass.
    undiscounted = CHAIN.mdp.replace(gamma=1.0)
    check = check_estimator(reinforce_buggy, undiscounted, policy=CHAIN.policy, episodes=2000)
    assert check.passed and abs(check.exact_bias).max() < 1e-12


# Horizons 1..3 can be enumerated, so each verdict is exact: no false alarms. (Where nothing can be enumerated
# the Monte Carlo test decides at level alpha: over 15 examples a false alarm has probability <= 15 * alpha.)
# A failing example is replayed by Hypothesis with the same seed, so any failure is reproducible.
@settings(max_examples=15, deadline=None, derandomize=True)
@given(problems(horizon=st.integers(1, 3)))
def test_the_fixed_estimator_is_unbiased_on_generated_problems(problem):
    assert_estimator_unbiased(reinforce_fixed, problem, episodes=500, alpha=1e-4)
