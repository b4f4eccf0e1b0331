"""Mutation check: the catalog's pitfalls are mutants of the correct estimator; the exact-mean check must kill
every one of them, and must catch each wherever its exact bias is non-zero.

Ground truth for "biased" is independent of the check: the exact mean E[g] (enumeration) against grad J from
central finite differences of J, which involves no score code. The check under test is the fuzzer's
``unbiased:<estimator>`` claim (E[g] against the dynamic-programming gradient at 1e-9 of the problem's scale).
The unbiased estimators are the control group: never biased, never caught.
"""
import pytest
from hypothesis import given

from verify.estimators import ESTIMATORS
from verify.fuzz import MUTATION_SPACE, generated_problems, mutation_score
from verify.strategies import problems

PITFALLS = [e.name for e in ESTIMATORS if not e.unbiased]


def test_catalog_has_pitfalls_and_controls():
    assert len(PITFALLS) >= 5 and len(PITFALLS) < len(ESTIMATORS)


def test_kill_rate_is_100_percent():
    sample = generated_problems(60, seed=0, space=MUTATION_SPACE)
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


@pytest.mark.parametrize("name", PITFALLS)
def test_each_pitfall_is_caught_on_its_minimal_counterexample(name):
    # The one-state bandit the search shrinks every pitfall to (see test_properties): two actions, uniform
    # policy, rewards (0, 1/2); two steps with gamma = 0 for the restarted discount, one step otherwise.
    from verify.mdp import TabularMDP
    from verify.policy import TabularSoftmax
    from verify.problem import Problem

    H, gamma = (2, 0.0) if name == "rtg_restart_discount" else (1, 1.0)
    mdp = TabularMDP(initial=[1], transitions=[[[1.0], [1.0]]], rewards=[[0.0, 0.5]], gamma=gamma, horizon=H)
    row = {r.estimator: r for r in mutation_score([Problem(mdp, TabularSoftmax([[0.0, 0.0]]))])}[name]
    assert (row.biased, row.caught, row.missed) == (1, 1, 0)
