"""Replay of every step, rules refusing the wrong expression, corrupted steps rejected."""

import dataclasses

import pytest
from sympy import Eq, UnevaluatedExpr, log

from derive import rules as R
from derive.grounding import ground_step
from derive.notation import (
    Baseline, CondExpectation, Density, Expectation, Grad, Integrate, Reward, TestFn, Transition, gamma, t,
    tau, theta, time_sum, tp, x, H,
)
from derive.seed import BASELINE, DERIVATIONS, REWARD_TO_GO, SOURCE, reward_to_go, score
from derive.steps import Derivation, Step, check_step, replay

ALL_STEPS = [(d.name, s) for d in DERIVATIONS for s in d.steps]


def test_seed_numbers_follow_the_seed():
    assert [s.number for s in SOURCE.steps] == list(range(1, 16))


@pytest.mark.parametrize("name,step", ALL_STEPS, ids=[f"{n}-{s.number}" for n, s in ALL_STEPS])
def test_every_step_replays(name, step):
    check = check_step(step)
    assert check.ok, check.message


def test_replay_returns_one_check_per_step():
    checks = replay(REWARD_TO_GO)
    assert [c.number for c in checks] == [s.number for s in REWARD_TO_GO.steps]
    assert all(c.ok for c in checks)


p, f = Density(x, theta), TestFn(x)
p_tau = Density(tau, theta)

# (description, derivation, step number, corrupted "after")
CORRUPTED = [
    ("wrong sign in (7)", SOURCE, 7, -Expectation(f * Grad(log(p)), p)),
    ("dropped factor p in (5)", SOURCE, 5, Integrate(f * UnevaluatedExpr(Grad(p) / p), x)),
    ("transition term kept in (13)", SOURCE, 13,
     Eq(Grad(log(p_tau)), time_sum(score() + log(Transition(t))), evaluate=False)),
    ("rho_0 omitted in (9), as the seed writes it", SOURCE, 9,
     R.trajectory_probability() / R.InitialDist()),
    ("reward-to-go discounted gamma^(t'-t)", REWARD_TO_GO, "RTG6",
     Expectation(time_sum(score() * reward_to_go(t, gamma**(tp - t))), p_tau)),
    ("baseline step drops the reward-to-go", BASELINE, "B6", Expectation(time_sum(score()), p_tau)),
]


@pytest.mark.parametrize("desc,d,number,after", CORRUPTED, ids=[c[0] for c in CORRUPTED])
def test_corrupted_step_rejected_by_replay_and_grounding(desc, d, number, after):
    bad = dataclasses.replace(d.step(number), after=after)
    assert not check_step(bad).ok
    assert not ground_step(bad, (2, 2, 2)).ok
    assert not ground_step(bad, (2, 2, 2), method="random", points=1).ok


WRONG = [
    (R.TAKE_LOGS, Density(tau, theta)),
    (R.GRAD_BOTH_SIDES, Grad(p)),
    (R.EXCHANGE_GRAD_INTEGRAL, Grad(Expectation(f, p))),
    (R.EXPECTATION_AS_INTEGRAL, Integrate(f * p, x)),
    (R.PRODUCT_RULE, Grad(p)),
    (R.GRAD_OF_INDEPENDENT, Grad(p)),
    (R.LOG_DERIVATIVE, Grad(log(p)) * p),
    (R.EXPECTATION_RECOGNISED, Integrate(f, x)),
    (R.SUBSTITUTE_TRAJECTORY, Expectation(Reward(t), p_tau)),
    (R.LOG_OF_PRODUCT, log(p)),
    (R.FACTOR_INTO_SUM, Reward(t) * Reward(tp)),
    # the future rewards t' >= t are not known given h_t
    (R.PULL_OUT_KNOWN,
     time_sum(time_sum(CondExpectation(gamma**tp * Reward(tp) * score(), t), tp, t, H - 1))),
    # r_t depends on s_{t+1}: not a function of (s_t, a_t)
    (R.CONDITION_ON_STATE, CondExpectation(score() * Reward(t), t)),
    (R.SPLIT_AT_T, time_sum(Reward(tp), tp)),
    (R.RETURN_DEFINITION, Baseline(t)),
]


@pytest.mark.parametrize("rule,expr", WRONG, ids=[w[0].name for w in WRONG])
def test_rule_on_wrong_expression_raises(rule, expr):
    with pytest.raises(R.RuleError):
        rule.apply(expr)


def test_miscited_rule_fails_replay_with_message():
    step = dataclasses.replace(SOURCE.step(6), rule=R.PRODUCT_RULE)
    check = check_step(step)
    assert not check.ok and "does not apply" in check.message


def test_dataclasses_validate():
    with pytest.raises(ValueError):
        Step(0, p, R.PRODUCT_RULE, p)
    with pytest.raises(ValueError):
        Step(1, Eq(p, f, evaluate=False), R.TAKE_LOGS, p)
    with pytest.raises(ValueError):
        R.Rule("x", "two\nlines", (), "x", lambda e: e)
    with pytest.raises(ValueError):
        Derivation("d", "t", (SOURCE.step(1), SOURCE.step(1)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        SOURCE.step(1).number = 3
