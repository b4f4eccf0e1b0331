"""Labels per problem (``verify.checks.equivalence``): a pitfall that equals an unbiased estimator on the problem at hand
expects "no bias here" and is judged as that estimator, never a permanent "undecided"."""
import numpy as np
import pytest

from verify.model.builtin import builtin_examples
from verify.checks.estimators import ESTIMATORS, get_estimator
from verify.checks.equivalence import structural_equivalence
from verify.checks.mc import run_check
from verify.model.problem import Problem
from verify.numerics.sampler import sample_episodes


def _variants():
    ex = builtin_examples()
    chain, disc = ex["chain"], ex["discounted"]
    return {"gamma=1": Problem(chain.mdp.replace(gamma=1.0), chain.policy),
            "horizon=1": Problem(chain.mdp.replace(horizon=1), chain.policy),
            "horizon null": disc, "chain": chain}


@pytest.mark.parametrize("variant", ["gamma=1", "horizon=1", "horizon null", "chain"])
def test_every_claimed_equivalence_is_a_per_episode_identity_and_no_other_pitfall_is_one(variant):
    problem = _variants()[variant]
    eps = sample_episodes(problem.mdp, problem.policy, 400, np.random.default_rng(1))
    for e in ESTIMATORS:
        if e.unbiased or e.batch_dependent:
            continue
        eq = structural_equivalence(e.name, problem.mdp)
        g = e.per_episode(eps)
        if eq is not None:
            ref = get_estimator(eq.equals).per_episode(eps)
            np.testing.assert_allclose(g, ref, rtol=0, atol=1e-12 * max(1.0, np.abs(ref).max()),
                                       err_msg=f"{e.name} vs {eq.equals} on {variant}")
        else:       # not claimed: it really differs from every unbiased catalog estimator on this sample
            for u in ESTIMATORS:
                if u.unbiased:
                    assert np.abs(g - u.per_episode(eps)).max() > 1e-9, (e.name, u.name, variant)


def test_the_default_report_example_has_no_undecided_structural_equivalence():
    # discounted.json has horizon null: gae_stationary_value is gae there, bit for bit.
    check = run_check(builtin_examples()["discounted"], episodes=2000)
    row = next(r for r in check.rows if r.mc.estimator.name == "gae_stationary_value")
    assert row.expected == "no bias here" and row.status == "passed" and "equals gae" in row.note
    assert not [r for r in check.rows if r.undecided and r.note]


def test_an_equivalence_that_is_wrong_would_fail():
    # The exact path keeps the label falsifiable: a "no bias here" row with a non-zero exact bias fails.
    from verify.checks.mc import judge, run_mc

    chain = builtin_examples()["chain"]
    r = run_mc(chain, "rtg_restart_discount", episodes=200)         # gamma < 1 here: exact bias non-zero
    assert judge(r, chain.mdp.replace(gamma=1.0)).status == "failed"
    assert judge(r, chain.mdp).status == "passed"


def test_the_reports_estimator_section_has_no_undecided_row_for_a_structural_reason():
    # What build_report runs per example (run_check at the report's episodes and seed), without the derivation.
    # A row may be undecided for want of power (a sampled "consistent" needs the resolution), never because it is
    # a pitfall that has no bias on this problem: such a row is judged as the estimator it equals.
    from verify.app.report import QUICK_EPISODES

    notes = set()
    for name, problem in builtin_examples().items():
        check = run_check(problem, episodes=QUICK_EPISODES, seed=0)
        labelled = [r for r in check.rows if r.note]
        assert not [r.mc.estimator.name for r in labelled if r.undecided and r.mc.moments is not None]
        assert not [r.mc.estimator.name for r in check.rows if r.undecided and r.mc.moments is not None]
        notes |= {(name, r.mc.estimator.name) for r in labelled}
    assert ("discounted", "gae_stationary_value") in notes and ("bandit", "rtg_restart_discount") in notes
