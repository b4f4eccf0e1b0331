"""The derivations as one proof: seams, claimed results, lemmas by statement, side conditions, counterexamples.

Expected values come from the maths of each case (which lines are equal, which are not), not from running it.
"""
from __future__ import annotations

import dataclasses
import json

from sympy import S

from derive.chain import DEFINITION, check_chain, conclusion, first_line, last_line
from derive.grounding import LinLog, counterexample
from derive.eglp import EGLP
from derive.notation import Reward, t
from derive.pg_theorem import PG_ADVANTAGE, PG_Q
from derive.seed import DERIVATIONS, REWARD_TO_GO, SOURCE
from derive.side_conditions import assumed_conditions, classify, side_condition_counts
from derive.steps import GRAD_J, Derivation
from fractions import Fraction


def test_links_as_documented():
    links = {d.name: (d.starts_from, d.ends_at, d.proves if d.proves == GRAD_J else "lemma") for d in DERIVATIONS}
    assert links == {"source": (None, None, GRAD_J), "eglp": (None, None, "lemma"),
                     "reward_to_go": ("source", None, GRAD_J), "baseline": (None, "reward_to_go", GRAD_J),
                     "pg_q": ("reward_to_go", None, GRAD_J), "pg_advantage": (None, "pg_q", GRAD_J),
                     "pg_state": ("pg_q", None, GRAD_J), "pg_bellman": (GRAD_J, "pg_state", GRAD_J),
                     "performance_difference": (None, None, "lemma"),
                     "surrogate_gradient": (None, "pg_advantage", GRAD_J),
                     "natural_gradient": (None, "pg_advantage", GRAD_J)}
    assert conclusion(PG_ADVANTAGE)[1] == first_line(PG_ADVANTAGE)     # ends_at: what it proves is its head
    assert conclusion(PG_Q)[1] == last_line(PG_Q) == first_line(next(d for d in DERIVATIONS if d.name == "pg_state"))
    assert SOURCE.steps[-1].after.lhs == DEFINITION


def test_every_row_passes_and_each_kind_is_present():
    rows = check_chain(DERIVATIONS, sizes=((2, 2, 2),))
    assert all(r.ok for r in rows), [r.message for r in rows if not r.ok]
    kinds = [r.kind for r in rows]
    assert kinds.count("seam") == 9 and kinds.count("proves") == 11 and kinds.count("lemma") == 3, kinds
    # a seam between identical expressions needs no grounding; every other seam is grounded, and holds there
    seams = [r for r in rows if r.kind == "seam"]
    assert all(g.ok for r in rows for g in r.grounding)
    assert all(len(r.grounding) == 1 or (not r.grounding and "structurally equal" in r.message) for r in seams)
    json.dumps([r.to_json() for r in rows])


def test_a_seam_is_grounded_not_only_compared():
    # equal lines written differently: the exact identity holds after expand; grounding agrees
    from sympy import Add
    head = PG_Q.steps[0].before
    d = Derivation("pg_q2", "x", (dataclasses.replace(PG_Q.steps[0], before=Add(head, head, -head, evaluate=False)),)
                   + PG_Q.steps[1:], starts_from="reward_to_go", proves=GRAD_J)
    row = next(r for r in check_chain(DERIVATIONS[:4] + (d,), sizes=((2, 2, 2),)) if r.derivation == "pg_q2")
    assert row.ok and "expand" in row.message and row.grounding[0].ok


def test_a_lemma_without_a_statement_or_cut_short_fails_its_uses():
    no_statement = dataclasses.replace(EGLP, proves=None)
    rows = check_chain(tuple(no_statement if d.name == "eglp" else d for d in DERIVATIONS), sizes=())
    uses = [r for r in rows if r.kind == "lemma"]
    assert len(uses) == 3 and not any(r.ok for r in uses) and "states no result" in uses[0].message
    wrong = dataclasses.replace(EGLP, proves=EGLP.proves.func(EGLP.proves.lhs, S.One, evaluate=False))
    rows = check_chain(tuple(wrong if d.name == "eglp" else d for d in DERIVATIONS), sizes=())
    claim = next(r for r in rows if r.kind == "proves" and r.derivation == "eglp")
    assert not claim.ok and "not at the statement's right side 1" in claim.message


def test_unknown_reference_is_a_failed_row_not_an_error():
    d = Derivation("mine", "x", REWARD_TO_GO.steps, starts_from="nowhere", proves=GRAD_J)
    rows = check_chain(DERIVATIONS + (d,), sizes=())
    mine = [r for r in rows if r.derivation == "mine"]
    assert [(r.kind, r.ok) for r in mine] == [("seam", False), ("proves", False), ("lemma", True)]
    assert "not an earlier derivation" in mine[0].message


def test_counterexample_is_exact_and_checkable():
    # r_0 versus 2 r_0 at H = 1 (outside an expectation, per trajectory): the point's reward formula gives
    # r(s, a, s') = 1 + s + 2a + 3s', so at tau = (0, 0, 0) the sides are 1 and 2
    from derive.notation import Expectation, Density, tau, theta
    from derive.steps import Step
    from derive.chain import SEAM_RULE
    p = Density(tau, theta)
    step = Step("X", Expectation(Reward(0), p), SEAM_RULE, Expectation(2 * Reward(0), p))
    text = counterexample(step, (1, 1, 1))
    # rho_0(0) = 1/2, pi = 1/2, P = 1/2 (unnormalised point): E[r_0] = 1/2 * 1/2 * 1/2 * 1 = 1/8
    assert text.endswith("lhs = 1/8, rhs = 1/4 (difference -1/8)"), text
    assert LinLog.log(Fraction(12)) == LinLog(0, {2: 2, 3: 1}) and str(LinLog.log(Fraction(1, 4))) == "-2 log 2"
    assert counterexample(Step("Y", Reward(t), SEAM_RULE, Reward(t)), (2, 2, 2)) is None


def test_side_conditions_are_classed_and_counted():
    counts = side_condition_counts(DERIVATIONS)
    assert set(counts) == {"checked", "imposed", "assumed"} and counts["checked"] >= 16
    assert ("exchange_grad_integral",
            "|grad_theta(f p)| is dominated by an integrable function of x (dominated convergence)") in \
        assumed_conditions(DERIVATIONS)
    from derive.rules import LOG_DERIVATIVE, TOWER_PROPERTY
    assert dict(classify(LOG_DERIVATIVE)) == {"p(x|theta) > 0": "checked"}
    assert set(dict(classify(TOWER_PROPERTY)).values()) == {"imposed", "checked"}


def test_html_and_markdown_show_the_chain_and_the_assumed_conditions():
    from derive.latex import render_markdown
    from verify.app.html import render_html
    from verify.app.report import Report

    rows = check_chain(DERIVATIONS, sizes=())
    report = Report(seed=0, quick=True)
    report.chain = rows
    page = render_html(report, figures=False)
    assert "pg_q ← reward_to_go (RTG9)" in page and "are <em>assumed</em>" in page
    assert "Schindorfer" in page and "Spinning Up" in page
    md = render_markdown(DERIVATIONS, (), status={}, chain=rows)
    assert "*Chain:* this derivation starts from the result of `reward_to_go`" in md
    assert "(assumed)" in md and "are *assumed*" in md and "seed" not in md.lower()


def test_a_step_reference_equals_grad_j_only_if_that_line_does():
    from derive.userfile import parse_derivation

    text = """
name: mine
starts_from: source:{n}
proves: grad_J
start: E(time_sum(R * score(t)))
step M1 expectation_of_sum: time_sum(E(R * score(t)))
"""
    ok = parse_derivation(text.format(n=15))
    rows = [r for r in check_chain(DERIVATIONS + (ok,), sizes=()) if r.derivation == "mine"]
    assert [r.ok for r in rows] == [True, True]
    # (3) is about a generic f: a derivation starting from it (even if the lines matched) proves nothing about grad J
    bad = dataclasses.replace(ok, starts_from="source:3", steps=(dataclasses.replace(
        ok.steps[0], before=SOURCE.step(3).after),))
    rows = [r for r in check_chain(DERIVATIONS + (bad,), sizes=()) if r.derivation == "mine"]
    assert rows[0].ok and "proved equal to ∇J" not in rows[0].message and not rows[1].ok
