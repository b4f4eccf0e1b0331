"""The false-alarm self-check (``verify.checks.selfcheck``): a broken sampler fails ``report`` and ``check``.

Expected values are exact binomial tails computed here from their definition (sum of pmf terms with math.comb),
not read from the code."""
import io
import math
from fractions import Fraction

import numpy as np
import pytest
from rich.console import Console

import verify.checks.mc
from verify.model.builtin import builtin_examples
from verify.numerics.episodes import Episodes
from verify.app.render import render_check, render_report
from verify.app.report import build_report
from verify.checks.selfcheck import FalseAlarmCheck, false_alarm_check


def _tail(k: int, n: int, p: float) -> float:
    """P(X >= k), X ~ Binomial(n, p), as 1 - P(X < k) in exact rationals."""
    q = Fraction(p).limit_denominator(10 ** 6)
    return float(1 - sum(math.comb(n, j) * q ** j * (1 - q) ** (n - j) for j in range(k)))


def _capped(real):
    """A broken sampler: every episode of a finite-horizon MDP stops after H - 1 actions (its last step lost)."""
    def sampler(mdp, policy, n, rng, **kw):
        for b in real(mdp, policy, n, rng, **kw):
            H = mdp.horizon
            if H is None or H < 2:
                yield b
                continue
            yield Episodes(b.s_t[:, :H], b.a_t[:, :H - 1], b.r_t[:, :H - 1], np.minimum(b.lengths, H - 1),
                           b.mdp, b.policy)
    return sampler


@pytest.fixture(scope="module")
def broken_sampler_report():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(verify.checks.mc, "iter_episode_chunks", _capped(verify.checks.mc.iter_episode_chunks))
        return build_report(seed=0, quick=True)


def test_a_sampler_capped_at_h_minus_1_fails_the_quick_report_by_its_false_alarm_count(broken_sampler_report):
    report = broken_sampler_report
    sc = report.self_check
    # Every row's verdict is still the exact one (the enumeration is not the sampler): nothing else fails ...
    assert all(c.passed for c in report.checks if not isinstance(c, FalseAlarmCheck) and not getattr(c, "undecided", False))
    # ... but the Monte Carlo tests of the rows with exact bias zero reject far more often than alpha allows.
    assert sc.rejections >= 5 and not sc.passed and not report.passed
    assert sc.p_value == pytest.approx(_tail(sc.rejections, sc.tests, sc.alpha), rel=1e-9)
    assert report.summary["failed"] == 1
    assert ("chain", "reward_to_go") in sc.rows or ("gridworld", "reward_to_go") in sc.rows
    console = Console(file=io.StringIO(), width=160, no_color=True)
    render_report(report, console=console)
    text = console.file.getvalue()
    assert "SELF-CHECK FAILED" in text and "the sampler or the statistics are broken" in text
    assert "FAILED (1 failing)" in text
    named = text[text.index("SELF-CHECK FAILED"):]
    assert all(f"{ex}/{est}" in named for ex, est in sc.rows)


def test_the_correct_sampler_passes_its_self_check():
    report = build_report(seed=0, quick=True)
    sc = report.self_check
    assert sc.tests >= 10 and sc.passed and report.passed
    assert report.to_json()["self_check"]["tests"] == sc.tests
    assert sc.family_wise == pytest.approx(1 - (1 - sc.alpha) ** sc.tests, rel=1e-12)


def test_check_fails_on_the_capped_sampler_and_names_the_rows(monkeypatch):
    monkeypatch.setattr(verify.checks.mc, "iter_episode_chunks", _capped(verify.checks.mc.iter_episode_chunks))
    check = verify.checks.mc.run_check(builtin_examples()["chain"], episodes=5000)
    assert all(r.status != "failed" for r in check.rows) and check.gradients.passed
    assert not check.self_check.passed and not check.passed
    assert check.summary["failed"] == 1 and check.to_json()["self_check"]["passed"] is False
    console = Console(file=io.StringIO(), width=160, no_color=True)
    render_check(check, console=console)
    assert "SELF-CHECK FAILED" in console.file.getvalue()


class _Row:
    """A stand-in CheckRow: only what the self-check reads."""

    def __init__(self, rejected: bool, stat: float, biased: bool = False, name: str = "e"):
        from types import SimpleNamespace as NS
        test = NS(test="chi2", statistic=stat, mean=np.array([stat]), exact=np.array([0.0]))
        self.mc = NS(moments=NS(biased=biased), estimator=NS(batch_dependent=False, name=name), alpha=1e-3,
                     sampled=test, mc_rejected=rejected)


@pytest.mark.parametrize("k, n, passes", [(0, 28, True), (1, 28, True), (2, 28, False), (1, 200, True),
                                          (3, 200, True), (4, 200, False)])
def test_the_binomial_law_decides(k, n, passes):
    rows = [_Row(i < k, float(i)) for i in range(n)]
    sc = false_alarm_check(rows)
    assert (sc.tests, sc.rejections) == (n, k)
    assert sc.p_value == pytest.approx(_tail(k, n, 1e-3) if k else 1.0, rel=1e-9)
    assert sc.passed is passes and (sc.p_value > 1e-3) is passes
    assert sc.markov_bound == pytest.approx(min(1.0, n * 1e-3 / k) if k else 1.0)


def test_identical_rows_of_one_sample_count_once_and_biased_rows_not_at_all():
    rows = [("a", _Row(True, 5.0, name="x")), ("a", _Row(True, 5.0, name="same_as_x")), ("b", _Row(True, 5.0)),
            ("a", _Row(True, 7.0, biased=True))]
    sc = false_alarm_check(rows)
    assert (sc.tests, sc.rejections) == (2, 2)
    assert sc.rows == (("a", "x"), ("a", "same_as_x"), ("b", "e"))
