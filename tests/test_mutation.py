"""Mutation check: the catalog's pitfalls are mutants of the correct estimator; the exact-mean check must kill
every one of them, and must catch each wherever its exact bias is non-zero.

Ground truth for "biased" is independent of the check: the exact mean E[g] (enumeration) against grad J from
central finite differences of J, which involves no score code. The check under test is the fuzzer's
``unbiased:<estimator>`` claim (E[g] against the dynamic-programming gradient at 1e-9 of the problem's scale).
The unbiased estimators are the control group: never biased, never caught. The harness is ``helpers``'s.
"""
import pytest
from hypothesis import given

from verify.estimators import ESTIMATORS
from verify.mdp import TabularMDP
from verify.policy import TabularSoftmax
from verify.problem import Problem
from verify.strategies import problems

from helpers import generated_problems, mutation_score, mutation_space

PITFALLS = [e.name for e in ESTIMATORS if not e.unbiased]


def test_catalog_has_pitfalls_and_controls():
    assert len(PITFALLS) >= 5 and len(PITFALLS) < len(ESTIMATORS)


def test_kill_rate_is_100_percent():
    sample = generated_problems(60, seed=0, space=mutation_space())
    assert len(sample) == 60
    rows = {row.estimator: row for row in mutation_score(sample)}
    for name in PITFALLS:
        row = rows[name]
        assert row.biased > 0, f"{name} was never biased on the sample: the strategies cannot expose it"
        assert row.missed == 0 and row.caught >= row.biased, row
    for row in rows.values():
        if row.unbiased:
            assert (row.biased, row.caught) == (0, 0), row          # no false kills
    killed = sum(rows[name].killed for name in PITFALLS)
    assert killed / len(PITFALLS) == 1.0


@given(problems())
def test_every_nonzero_exact_bias_is_caught(problem):
    # The full default space: near-deterministic policies, zero rewards, terminal starts, unreachable states.
    for row in mutation_score([problem]):
        assert row.missed == 0, row
        if row.unbiased:
            assert (row.biased, row.caught) == (0, 0), row


def _bandit(H, gamma):
    """One state, two actions with rewards (0, 1/2), the uniform policy."""
    mdp = TabularMDP(initial=[1], transitions=[[[1.0], [1.0]]], rewards=[[0.0, 0.5]], gamma=gamma, horizon=H)
    return Problem(mdp, TabularSoftmax([[0.0, 0.0]]))


def _fork():
    """State 0's action picks state 1 (two more rewards to come: 1 for action 0) or terminal state 2; H = 2.

    The bootstrap V(s_1) after step 0 depends on a_0, and a stationary V_0(1) = 1 (two steps left) differs from
    the true V_1(1) = 1/2, so GAE(lambda < 1) with it, or with a perturbed V, is biased.
    """
    P = [[[0, 1, 0], [0, 0, 1]], [[0, 1, 0], [0, 1, 0]], [[0, 0, 1], [0, 0, 1]]]
    mdp = TabularMDP(initial=[1, 0, 0], transitions=P, rewards=[[0, 0], [1, 0], [0, 0]], terminal=[2], horizon=2)
    return Problem(mdp, TabularSoftmax([[0.0, 0.0]] * 3))


SMALL = {"rtg_restart_discount": _bandit(2, 0.0), "gae_no_discount": _bandit(2, 0.5),
         "gae_stationary_value": _fork(), "gae_noisy_value": _fork()}


@pytest.mark.parametrize("name", PITFALLS)
def test_each_pitfall_is_caught_on_a_small_problem(name):
    # Bandits for the pitfalls one step shows (two steps and gamma = 0 for the restarted discount, gamma < 1 for
    # the missing gamma^t); the fork for GAE's value-table errors, which need the next state to depend on a_t.
    row = {r.estimator: r for r in mutation_score([SMALL.get(name, _bandit(1, 1.0))])}[name]
    assert (row.biased, row.caught, row.missed) == (1, 1, 0)
