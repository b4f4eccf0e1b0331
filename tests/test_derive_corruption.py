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


# --- corruptions across derivations, each caught by the checks ``pgverify report --quick`` runs ---------------------
#
# ``verify.app.report.derivation_section(derivations, quick=True)`` is the function the quick report calls (steps,
# chain, numeric half); each corruption below replaces whole derivations of a copy of DERIVATIONS, and the test
# asserts that a failed row names the step or seam and gives the reason with a counterexample.

from sympy import Sum  # noqa: E402

from derive.chain import check_chain  # noqa: E402
from derive.eglp import EGLP_RULE  # noqa: E402
from derive.notation import ActionExpectation  # noqa: E402
from derive.pg_theorem import PG_ADVANTAGE  # noqa: E402
from derive.rules import Condition  # noqa: E402
from derive.seed import DERIVATIONS, SOURCE  # noqa: E402
from derive.steps import Derivation, chain_steps  # noqa: E402


def _swap(*new):
    names = {d.name: d for d in new}
    return tuple(names.get(d.name, d) for d in DERIVATIONS)


def _restarted_q_form():
    """The Q form from the restarted-discount reward-to-go sum_{t'>=t} gamma^{t'-t} r_t', gamma^t dropped in every
    later line: each step is a true identity (E[sum gamma^{t'-t} r | h_t, a_t] = Q_t is right), only the seam
    to reward-to-go's last line is false."""
    G = reward_to_go(t, gamma**(tp - t))

    def restarted(n):
        s = n.body
        return (isinstance(s, Sum) and len(s.limits) == 1 and s.limits[0][1] == n.time
                and s.function == gamma**(s.limits[0][0] - n.time) * Reward(s.limits[0][0]))

    rule = dataclasses.replace(
        R.Q_VALUE_DEFINITION, match=lambda n, ctx: QValue(n.time) if isinstance(n, CondExpectation) and
        n.with_action and isinstance(n.body, Sum) else None,
        conditions=(Condition("the restarted reward-to-go from t", lambda n, ctx: restarted(n)),))
    steps = chain_steps(E(time_sum(score() * G)), [
        ("PGQ1", R.TOWER_PROPERTY_ACTION, E(time_sum(CondExpectation(score() * G, t, 1)))),
        ("PGQ2", R.PULL_OUT_KNOWN, E(time_sum(score() * CondExpectation(G, t, 1)))),
        ("PGQ3", rule, E(time_sum(score() * QValue(t)))),
    ])
    return _swap(dataclasses.replace(PG_Q, steps=tuple(steps)))


def _undiscounted_reward_to_go():
    """Reward-to-go with gamma^{t'} dropped from every line, the return's definition changed to match."""
    rule = dataclasses.replace(R.RETURN_DEFINITION, match=lambda n, ctx: time_sum(Reward(tp), tp)
                               if isinstance(n, Return) else None)
    steps = [dataclasses.replace(s, before=s.before.xreplace({gamma: 1}), after=s.after.xreplace({gamma: 1}),
                                 at=None if s.at is None else s.at.xreplace({gamma: 1}),
                                 rule=rule if s.number == "RTG1" else s.rule) for s in REWARD_TO_GO.steps]
    steps[0] = dataclasses.replace(steps[0], before=REWARD_TO_GO.steps[0].before)
    return _swap(dataclasses.replace(REWARD_TO_GO, steps=tuple(steps)))


def _truncated_eglp():
    return _swap(dataclasses.replace(EGLP, steps=EGLP.steps[:2]))


def _advantage_without_discount():
    """The advantage form with gamma^t dropped consistently: every step true, the seam to the Q form false."""
    steps = [dataclasses.replace(s, before=s.before.xreplace({gamma**t: 1}), after=s.after.xreplace({gamma**t: 1}),
                                 at=None if s.at is None else s.at.xreplace({gamma**t: 1}))
             for s in PG_ADVANTAGE.steps]
    return _swap(dataclasses.replace(PG_ADVANTAGE, steps=tuple(steps)))


def _condition_on_state_outside():
    """condition_on_state used where the body depends on s_{t+1} (the reward r_t): outside its condition."""
    before = E(time_sum(CondExpectation(score() * Reward(t), t)))
    after = E(time_sum(ActionExpectation(score() * Reward(t), t)))
    bad = Derivation("misuse", "condition_on_state outside its condition",
                     (Step("M1", before, R.CONDITION_ON_STATE, after),))
    return DERIVATIONS + (bad,)


def _log_of_product_with_reward():
    """log_of_product on a product with a reward (not known positive): outside its side condition."""
    from sympy import Eq as _Eq
    before = _Eq(Grad(log(p_tau)), Grad(log(Reward(0) * Policy(0))), evaluate=False)
    after = _Eq(Grad(log(p_tau)), Grad(log(Reward(0)) + log(Policy(0))), evaluate=False)
    bad = Derivation("misuse", "log of a product with a reward", (Step("M1", before, R.LOG_OF_PRODUCT, after),))
    return DERIVATIONS + (bad,)


def _q_form_to_h():
    steps = list(PG_Q.steps)
    steps[-1] = dataclasses.replace(steps[-1], after=E(time_sum(gamma**t * score() * QValue(t), t, 0, H)))
    return _swap(dataclasses.replace(PG_Q, steps=tuple(steps)))


def _fake_lemma_instance():
    """A rule citing the EGLP lemma that zeros E_a[grad log pi(a_t|s_t) r_t]: not an instance of its statement."""
    rule = dataclasses.replace(EGLP_RULE, match=lambda n, ctx: S.Zero if isinstance(n, ActionExpectation) else None,
                               conditions=())
    before = E(time_sum(ActionExpectation(score() * QValue(t), t)))
    bad = Derivation("misuse", "a fake use of the lemma", (Step("M1", before, rule, S.Zero),))
    return DERIVATIONS + (bad,)


def _missing_lemma():
    rule = dataclasses.replace(EGLP_RULE, proved_by="eglp_missing")
    steps = tuple(dataclasses.replace(s, rule=rule) if s.rule is EGLP_RULE else s for s in BASELINE.steps)
    return _swap(dataclasses.replace(BASELINE, steps=steps))


def _reference_to_later():
    return _swap(dataclasses.replace(PG_Q, starts_from="pg_state"))


def _source_cut_at_7():
    return _swap(dataclasses.replace(SOURCE, steps=SOURCE.steps[:7]))


def _state_form_from_shifted_discount():
    steps = [dataclasses.replace(s, before=s.before.xreplace({gamma**t: gamma**(t + 1)}),
                                 after=s.after.xreplace({gamma**t: gamma**(t + 1)})) for s in PG_STATE.steps]
    return _swap(dataclasses.replace(PG_STATE, steps=tuple(steps)))


def _gamma_wrong_from_2_quick():
    """The discount wrong only from t' = 2 (rule and step agree): invisible to grounding at H = 2, so the quick
    report must see it in its numeric half, on the 2-state model with H = 3."""
    steps = tuple(_gamma_wrong_from_2() if s.number == "RTG1" else s for s in REWARD_TO_GO.steps)
    return _swap(dataclasses.replace(REWARD_TO_GO, steps=steps))


# (description, corrupted derivations, substrings one failure line must contain (all of them))
CHAIN_CORRUPTIONS = [
    ("Q form from the restarted reward-to-go, gamma^t dropped in every later line", _restarted_q_form,
     [("pg_q ← reward_to_go (RTG9)", "does not hold", "counterexample at (S, A, H) = (2, 2, 2)", "lhs = "),
      ("pg_q (PGQ3) numeric", "two_state")]),
    ("EGLP cut to its first two steps", _truncated_eglp,
     [("eglp proves", "ends at (EGLP2)", "not at the statement's right side 0", "counterexample"),
      ("reward_to_go (RTG8) uses eglp", "the lemma is not proved")]),
    ("reward-to-go without gamma^t' in every line", _undiscounted_reward_to_go,
     [("(RTG1) return_definition: not an identity", "counterexample"), ("reward_to_go (RTG9) numeric", "two_state"),
      ("pg_q ← reward_to_go (RTG9)", "does not hold")]),
    ("advantage form without gamma^t in every line", _advantage_without_discount,
     [("pg_advantage → pg_q (PGQ3)", "does not hold", "counterexample")]),
    ("condition_on_state where the body depends on s_{t+1}", _condition_on_state_outside,
     [("misuse (M1) replay", "guard refused", "the body depends on (s_t, a_t) only")]),
    ("log_of_product of a reward", _log_of_product_with_reward,
     [("misuse (M1) replay", "side condition violated: every factor is positive", "r_0")]),
    ("Q form summed to t = H", _q_form_to_h,
     [("pg_q (PGQ3) replay", "time index out of range", "beyond H - 1"),
      ("pg_q (PGQ3) grounding", "outside 0..1")]),
    ("a lemma rule rewriting what is not an instance of the statement", _fake_lemma_instance,
     [("misuse (M1) uses eglp", "not an instance of the lemma's statement")]),
    ("a lemma cited by a derivation that is not in the chain", _missing_lemma,
     [("baseline (B6) uses eglp_missing", "no derivation of that name")]),
    ("a seam to a later derivation", _reference_to_later,
     [("pg_q ← pg_state", "not an earlier derivation")]),
    ("the source cut at (7)", _source_cut_at_7,
     [("source proves ∇J", "last line is not ∇J"), ("reward_to_go ← source (7)", "does not hold")]),
    ("the state form from gamma^(t+1) in every line", _state_form_from_shifted_discount,
     [("pg_state ← pg_q (PGQ3)", "does not hold", "counterexample")]),
    ("discount wrong only from t' = 2 (H = 3 in the quick numeric half)", _gamma_wrong_from_2_quick,
     [("reward_to_go (RTG1) numeric", "two_state: |line - ∇J|∞")]),
]


@pytest.mark.parametrize("desc,build,expected", CHAIN_CORRUPTIONS, ids=[c[0] for c in CHAIN_CORRUPTIONS])
def test_report_quick_catches_and_names(desc, build, expected):
    from verify.app.report import derivation_section

    failures = derivation_section(build(), quick=True).failures
    for needles in expected:
        assert any(all(n in line for n in needles) for line in failures), (needles, [f[:300] for f in failures])


def test_the_real_chain_holds_and_the_suite_is_large():
    assert all(r.ok for r in check_chain(DERIVATIONS, sizes=()))
    assert len(CORRUPTIONS) + len(CHAIN_CORRUPTIONS) >= 30
