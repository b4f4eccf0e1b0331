"""Corruption suite: single-step corruptions of a copy of the derivation, each detected and named.

Every corruption is applied to a copy of one step (``dataclasses.replace``); the
derivations themselves are never modified.  A corruption is detected when replay
or grounding at (2, 2, 2) or (3, 2, 3) fails, and the failing message must name
the step's number and the reason (what the test asserts as ``reason``).  Each
expected outcome follows from the maths of the corruption, not from running it:
e.g. a discount wrong only from t' = 2 cannot show at H = 2, where t' <= 1.
"""

import dataclasses

import pytest
from sympy import Eq, Interval, S, UnevaluatedExpr, log

from derive import rules as R
from derive.eglp import EGLP, score
from derive.grounding import ground_step
from derive.notation import (
    ActionSum, CondExpectation, Density, Expectation, Grad, Integrate, Policy, QValue, Return, Reward,
    StateSum, TestFn, Transition, gamma, t, tau, theta, time_sum, tp, x, H,
)
from derive.pg_theorem import PG_Q, PG_STATE, reward_to_go
from derive.seed import BASELINE, REWARD_TO_GO, SOURCE
from derive.steps import Step, check_step

p, f = Density(x, theta), TestFn(x)
p_tau = Density(tau, theta)
E = lambda body: Expectation(body, p_tau)  # noqa: E731


def _replace(d, number, **changes) -> Step:
    return dataclasses.replace(d.step(number), **changes)


def _gamma_wrong_from_2():
    """R(tau) with gamma^(t'^2): equal to gamma^t' for t' = 0, 1 only, so invisible at H = 2."""
    rule = dataclasses.replace(R.RETURN_DEFINITION, match=lambda n, ctx: time_sum(gamma**(tp**2) * Reward(tp), tp)
                               if isinstance(n, Return) else None)
    after = E(time_sum(time_sum(gamma**(tp**2) * Reward(tp), tp) * score()))
    return _replace(REWARD_TO_GO, "RTG1", rule=rule, after=after)


def _guard_removed_pull_out():
    """Take the future rewards r_t' (t' >= t) out of E[. | h_t]: the t' <= t - 1 guard removed."""
    g = gamma**tp * Reward(tp)
    before = E(time_sum(time_sum(CondExpectation(g * score(), t), tp, t, H - 1)))
    after = E(time_sum(time_sum(g * CondExpectation(score(), t), tp, t, H - 1)))
    return Step("RTG6", before, R.PULL_OUT_KNOWN.without(R.KNOWN_GIVEN_HISTORY), after)


def _guard_removed_factor_into_sum():
    """r_t sum_t r_t -> sum_t r_t r_t: the index-independence guard removed (t free outside the sum)."""
    rule = R.FACTOR_INTO_SUM.without("the factor does not depend on the summation index")
    before = E(time_sum(Reward(t) * time_sum(Reward(t), t), tp))
    after = E(time_sum(time_sum(Reward(t) * Reward(t), t), tp))
    return Step("RTG2", before, rule, after)


def _normalisation_dropped():
    step = BASELINE.step("B3")
    return dataclasses.replace(step, rule=dataclasses.replace(step.rule, needs_normalisation=False))


# (description, corrupted step, where it must show: "replay" and/or "grounding", reason in the message)
CORRUPTIONS = [
    ("dropped grad in (7)", _replace(SOURCE, 7, after=Expectation(f * log(p), p)), {"replay", "grounding"}, "differs"),
    ("wrong sign in (7)", _replace(SOURCE, 7, after=-Expectation(f * Grad(log(p)), p)), {"replay", "grounding"},
     "differs"),
    ("index range 1..H-1 in (13)",
     _replace(SOURCE, 13, after=Eq(Grad(log(p_tau)), time_sum(score(), t, 1, H - 1), evaluate=False)),
     {"replay", "grounding"}, "differs"),
    ("pi and p swapped in (13)",
     _replace(SOURCE, 13, after=Eq(Grad(log(p_tau)), time_sum(Grad(log(Transition(t)))), evaluate=False)),
     {"replay", "grounding"}, "differs"),
    ("sum to t = H in (13)",
     _replace(SOURCE, 13, after=Eq(Grad(log(p_tau)), time_sum(score(), t, 0, H), evaluate=False)),
     {"replay", "grounding"}, "out of range"),
    ("rho_0 omitted in (9)", _replace(SOURCE, 9, after=R.trajectory_probability() / R.InitialDist()),
     {"replay", "grounding"}, "differs"),
    ("support depends on theta in (2)",
     _replace(SOURCE, 2, before=Grad(Integrate(f * Density(x, theta, Interval(0, theta)), x)),
              after=Integrate(Grad(Density(x, theta, Interval(0, theta)) * f), x)),
     {"replay"}, "side condition violated: the support of p(x|theta) does not depend on theta"),
    ("log-derivative of a reward in (6)",
     _replace(SOURCE, 6, before=Integrate(f * UnevaluatedExpr(Grad(Reward(0)) / Reward(0)), x),
              after=Integrate(f * Grad(log(Reward(0))), x)),
     {"replay"}, "side condition violated"),
    ("dropped gamma^t' in RTG9", _replace(REWARD_TO_GO, "RTG9", after=E(time_sum(score() * reward_to_go(t, 1)))),
     {"replay", "grounding"}, "differs"),
    ("reward-to-go discounted gamma^(t'-t) in RTG9",
     _replace(REWARD_TO_GO, "RTG9", after=E(time_sum(score() * reward_to_go(t, gamma**(tp - t))))),
     {"replay", "grounding"}, "differs"),
    ("gamma wrong only from t' = 2 (rule and step agree)", _gamma_wrong_from_2(), {"grounding-H3"},
     "not an identity at (S, A, H) = (3, 2, 3)"),
    ("guard t' <= t - 1 removed from pull_out_known", _guard_removed_pull_out(), {"grounding"}, "not an identity"),
    ("guard removed from factor_into_sum", _guard_removed_factor_into_sum(), {"grounding"}, "not an identity"),
    ("normalisation dropped from the tower property in B3", _normalisation_dropped(), {"grounding"},
     "not an identity"),
    ("dropped pi in EGLP1", dataclasses.replace(EGLP.step("EGLP1"), after=ActionSum(score(), t)),
     {"replay", "grounding"}, "differs"),
    ("dropped gamma^t in PGQ3",
     dataclasses.replace(PG_Q.step("PGQ3"), after=E(time_sum(score() * QValue(t)))), {"replay", "grounding"},
     "differs"),
    ("dropped Pr(s_t = s) in PGS3",
     dataclasses.replace(PG_STATE.step("PGS3"), after=time_sum(
         gamma**t * StateSum(ActionSum(Policy(t) * score() * QValue(t), t), t))), {"replay", "grounding"},
     "differs"),
    ("claims sum_a pi = 2 in EGLP4 (replay only: grad 2 = grad 1 = 0)",
     dataclasses.replace(EGLP.step("EGLP4"), after=Grad(S(2))), {"replay"}, "differs"),
]


@pytest.mark.parametrize("desc,step,where,reason", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_corruption_detected_and_named(desc, step, where, reason):
    check = check_step(step)
    g2 = ground_step(step, (2, 2, 2), "auto")
    g3 = ground_step(step, (3, 2, 3), "random")
    label = f"({step.number})"
    if "replay" in where:
        assert not check.ok and label in check.message and reason in check.message, check.message
    else:
        assert check.ok, check.message  # the corruption is consistent with its rule: only grounding can tell
    if "grounding" in where:
        assert not g2.ok and not g3.ok
        assert label in g3.message and (reason in g3.message or "replay" in where), g3.message
    if "grounding-H3" in where:
        assert g2.ok, "t' <= 1 at H = 2: the corruption cannot show there"
        assert not g3.ok and label in g3.message and reason in g3.message, g3.message


def test_at_least_twelve_corruptions():
    assert len(CORRUPTIONS) >= 12


def test_malformed_step_is_a_row_not_a_traceback():
    # an unknown node, an unbound variable and a non-integer index: every one a failed row with the step named
    from sympy import Symbol
    bad = Step("X1", Reward(Symbol("k")), R.RETURN_DEFINITION, Reward(Symbol("k")))
    check = check_step(bad)
    assert not check.ok and "(X1)" in check.message
    g = ground_step(bad, (2, 2, 2))
    assert not g.ok and "(X1)" in g.message and "cannot ground" in g.message
