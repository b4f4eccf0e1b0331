"""The numerical half follows the derivation: each line equals grad J on the examples, a wrong line shows in both."""

import dataclasses

import numpy as np
import pytest

from derive.notation import Density, Expectation, QValue, gamma, t, tau, theta, time_sum, tp, H
from derive.pg_theorem import PG_Q, reward_to_go
from derive.eglp import score
from derive.seed import DERIVATIONS, REWARD_TO_GO
from derive.steps import Derivation, check_step
from verify.model.builtin import builtin_examples
from verify.app.derivation_numeric import expectation_lines, numeric_lines

E = lambda body: Expectation(body, Density(tau, theta))  # noqa: E731


@pytest.fixture(scope="module")
def examples():
    ex = builtin_examples()
    return {k: ex[k] for k in ("bandit", "chain", "discounted")}


def _with(d: Derivation, number, after) -> Derivation:
    return dataclasses.replace(d, steps=tuple(dataclasses.replace(s, after=after) if s.number == number else s
                                              for s in d.steps))


def test_every_line_equals_grad_j_on_the_enumerable_examples(examples):
    rows = numeric_lines(examples)
    assert len(rows) == len(expectation_lines()) >= 30
    for row in rows:
        assert row.ok is True, row.message
        assert {n for n, _, _ in row.evaluated} == {"bandit", "chain"}
        assert all(err <= tol for _, err, tol in row.evaluated)
        # the discounted example has no horizon: said, never counted as evaluated
        assert [n for n, _ in row.skipped] == ["discounted"] and "horizon null" in row.skipped[0][1]


def test_lines_cover_every_derivation_from_grad_j_on():
    names = {d for d, _, _ in expectation_lines()}
    # the performance-difference lemma's lines are J(theta) - J(theta_old), not grad J
    assert names == {d.name for d in DERIVATIONS} - {"eglp", "performance_difference"}


@pytest.mark.parametrize("desc,d,number,after", [
    ("reward-to-go discounted gamma^(t'-t)", REWARD_TO_GO, "RTG9",
     E(time_sum(score() * reward_to_go(t, gamma**(tp - t))))),
    ("Q form without gamma^t", PG_Q, "PGQ3", E(time_sum(score() * QValue(t)))),
])
def test_a_wrong_line_shows_in_both_halves(examples, desc, d, number, after):
    bad = _with(d, number, after)
    assert not check_step(bad.step(number)).ok  # the symbolic half
    rows = {r.number: r for r in numeric_lines({"chain": examples["chain"]}, [bad])}
    row = rows[number]
    assert row.ok is False  # the numerical half: chain has gamma = 0.9 and H = 5, so the discount matters
    (_, err, tol), = row.evaluated
    assert err > 1e3 * tol and "> 1e-09" in row.message
    # the lines before the corruption still agree
    assert all(r.ok for n, r in rows.items() if n != number)


def test_a_malformed_line_is_a_failed_row(examples):
    bad = _with(REWARD_TO_GO, "RTG9", E(time_sum(score(), t, 0, H)))
    row = {r.number: r for r in numeric_lines({"bandit": examples["bandit"]}, [bad])}["RTG9"]
    assert row.ok is False and "cannot evaluate" in row.message and np.isnan(row.evaluated[0][1])


def test_no_example_evaluable_is_undecided(examples):
    rows = numeric_lines({"discounted": examples["discounted"]}, [REWARD_TO_GO])
    assert all(r.ok is None and r.undecided and not r.passed and "horizon null" in r.message for r in rows)
