"""The derivations beyond the finite-horizon theorem: pg_bellman, performance_difference, surrogate_gradient,
natural_gradient. Each replays and grounds; each links to the result it starts from or proves; and corruptions
of their steps fail where the maths says they must (so the checks above could have failed)."""
import dataclasses

import pytest
from sympy import Eq

from derive import SEED
from derive.grounding import ground_step, ground_value
from derive.natural import NATURAL_GRADIENT
from derive.notation import (
    At, ActionExpectation, Advantage, Density, Expectation, Grad, VValue, gamma, t, tau, theta, theta_old,
)
from derive.pg_theorem import PG_ADVANTAGE, PG_STATE
from derive.rules import RuleError
from derive.stationary import PG_BELLMAN
from derive.steps import Step, check_step, replay
from derive.surrogate import PERFORMANCE_DIFFERENCE, SURROGATE_GRADIENT
from derive import theory_rules as TR

NEW = (PG_BELLMAN, PERFORMANCE_DIFFERENCE, SURROGATE_GRADIENT, NATURAL_GRADIENT)


@pytest.mark.parametrize("derivation", NEW, ids=lambda d: d.name)
def test_replays_and_grounds(derivation):
    for check in replay(derivation):
        assert check.ok, check.message
    for step in derivation.steps:
        g = ground_step(step, (2, 2, 2), "auto")
        assert g.ok, g.message


def test_each_derivation_starts_and_ends_where_it_says():
    # pg_bellman: from grad J (the left side of the seed's (8)) to pg_state's last line
    assert PG_BELLMAN.steps[0].before == SEED.step(8).after.lhs
    assert PG_BELLMAN.steps[-1].after == PG_STATE.steps[-1].after
    # the surrogate gradient and the natural gradient end at pg_advantage's first line (= grad J)
    for d in (SURROGATE_GRADIENT, NATURAL_GRADIENT):
        assert d.steps[-1].after == PG_ADVANTAGE.steps[0].before
    assert PERFORMANCE_DIFFERENCE.steps[-1].after == (Expectation(SEED.step(8).after.lhs.expr.body, Density(tau, theta))
                                                      - Expectation(SEED.step(8).after.lhs.expr.body,
                                                                    Density(tau, theta_old)))


def _fails(step, sizes=(2, 2, 2)):
    return not check_step(step).ok, not ground_step(step, sizes, "auto").ok


def test_a_dropped_gamma_in_the_grad_v_recursion_fails_both_checks():
    s = PG_BELLMAN.step("BE5")
    inner = next(iter(s.after.atoms(ActionExpectation)))
    assert _fails(dataclasses.replace(s, after=s.after.xreplace({gamma * inner: inner}))) == (True, True)


def test_a_dropped_gamma_in_the_bellman_equation_of_the_pdl_fails_both_checks():
    s = PERFORMANCE_DIFFERENCE.step("PD2")
    bad = dataclasses.replace(s, after=s.after.xreplace({gamma * At(VValue(t + 1)): At(VValue(t + 1))}))
    assert _fails(bad) == (True, True)


def test_the_gradient_does_not_go_inside_a_mean_under_theta():
    s = SURROGATE_GRADIENT.step("SG1")
    swap = {Density(tau, theta_old): Density(tau, theta)}
    bad = dataclasses.replace(s, before=s.before.xreplace(swap), after=s.after.xreplace(swap))
    check = check_step(bad)
    assert not check.ok and "drawn under theta_old" in check.message
    assert not ground_step(bad, (2, 2, 2), "auto").ok       # the measure's derivative is lost: not an identity


def test_evaluating_at_theta_old_before_differentiating_is_refused():
    s = SURROGATE_GRADIENT.step("SG1")
    bad = Step("SG1'", s.before, TR.EVALUATE_AT_THETA_OLD, s.before)
    check = check_step(bad)
    assert not check.ok and "no derivative of a theta_old quantity remains" in check.message


def test_theta_old_quantities_are_constants_for_grounding():
    # grad E_{tau ~ theta_old}[[V_0(s_0)]_old] = 0, while grad E_tau[V_0(s_0)] is not 0
    assert ground_value(Grad(Expectation(At(VValue(0)), Density(tau, theta_old))), (2, 2, 1)) == 0
    assert ground_value(Grad(Expectation(VValue(0), Density(tau, theta))), (2, 2, 1)) != 0


def test_the_telescoping_rule_refuses_a_quantity_without_a_zero_at_the_horizon():
    from sympy import Sum
    from derive.notation import H, Reward
    s = Sum(gamma**t * Reward(t) + gamma**(t + 1) * Advantage(t + 1) - gamma**t * Advantage(t), (t, 0, H - 1))
    with pytest.raises(RuleError, match="V_H = 0"):
        TR.TELESCOPE_SUM.apply(s)


def test_the_natural_gradient_mean_term_vanishes_only_for_the_advantage():
    s = NATURAL_GRADIENT.step("NG2")
    # claiming E_pi[Q_t] = 0 instead of E_pi[A_t] = 0 is refused by replay
    from derive.notation import QValue
    bad = dataclasses.replace(s, before=s.before.xreplace({Advantage(t): QValue(t)}),
                              after=s.after.xreplace({Advantage(t): QValue(t)}))
    assert not check_step(bad).ok


def test_an_identity_the_grounding_must_reject():
    # the PDL with the new policy's own advantage: E_theta[sum_t gamma^t A_t] = 0, not J(theta) - J(theta_old)
    s = PERFORMANCE_DIFFERENCE.steps[-1]
    head = PERFORMANCE_DIFFERENCE.steps[0].before.xreplace({At(Advantage(t)): Advantage(t)})
    bad = Step("PDx", head, s.rule, s.after)
    assert not ground_step(bad, (2, 2, 2), "random").ok
    assert Eq  # noqa: B018  (imported for readers who extend these)
