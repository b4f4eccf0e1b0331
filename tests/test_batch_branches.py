"""Every branch of the batch check's Monte Carlo verdict (``verify.checks.batchcheck._mc_verdict``) reached by a run:
the sign of c, "unbiased" only with the power to see the tolerance, the >= 30 non-zero rule, and the number of
batches each "undecided" asks for. Level alpha = 1e-6 where a rejection matters."""
import math

import numpy as np
import pytest

from verify.checks.batchcheck import _batches_for, check_batch_estimator
from verify.model.builtin import builtin_examples
from verify.numerics.episodes import reward_to_go, score_sums


def batch_mean(episodes):
    return score_sums(episodes, reward_to_go(episodes)).mean(axis=0)


def wrong_sign(episodes):
    """Gradient descent on J's surrogate instead of ascent: E = -grad J."""
    return -batch_mean(episodes)


def five_percent(episodes):
    return 1.05 * batch_mean(episodes)


@pytest.fixture(scope="module")
def discounted():
    return builtin_examples()["discounted"]            # horizon null: the Monte Carlo path


def test_a_wrong_sign_is_biased_on_the_monte_carlo_path_never_proportional(discounted):
    check = check_batch_estimator(wrong_sign, discounted, batch_size=8, batches=300, alpha=1e-6)
    assert check.method == "monte carlo"
    assert check.verdict == "biased" and check.c is None, check.format()
    assert check.sizes[0].scale_c < 0 and "sign error" in check.format()


def test_a_five_percent_bias_with_too_few_batches_is_undecided_with_the_number_needed(discounted):
    check = check_batch_estimator(five_percent, discounted, batch_size=8, batches=60, alpha=1e-6, tolerance=0.1)
    # the branch meant: enough non-zero batch differences for the z-test, not enough power for the tolerance
    assert check.p_unbiased > 1e-6 and check.resolution > 0.1, check.format()
    assert check.verdict == "undecided" and not check.passed
    need = check.batches_needed
    if math.isfinite(check.resolution):
        assert need == math.ceil(60 * (check.resolution / 0.1) ** 2) and f"about {need} batches" in check.reason
    else:   # no component allows a z-test at 60 batches (batch means too skewed): no number is promised
        assert need is None and "no number of batches can be promised" in check.reason


def test_the_30_nonzero_rule_says_how_many_batches(discounted):
    check = check_batch_estimator(batch_mean, discounted, batch_size=2, batches=5, tolerance=1e-3)
    assert check.verdict == "undecided" and not check.passed
    assert check.batches_needed is not None and check.batches_needed >= 30
    assert f"use at least {check.batches_needed} batches" in check.reason


def test_unbiased_needs_the_power():
    check = check_batch_estimator(batch_mean, builtin_examples()["discounted"], batch_size=8, batches=800,
                                  alpha=1e-6, tolerance=0.3)
    assert check.verdict == "unbiased" and check.resolution <= 0.3 and check.batches_needed is None


def test_batches_for():
    assert _batches_for(100, 2.0) == 400 and _batches_for(100, 0.5) == 101 and _batches_for(10, math.inf) is None
    assert _batches_for(100, 1.5, 3.0) == 900


def batch_sum(episodes):
    """The sum over the batch: E = B grad J, proportional with c = B = 8."""
    return score_sums(episodes, reward_to_go(episodes)).sum(axis=0)


def test_proportional_needs_the_power_too(discounted):
    few = check_batch_estimator(batch_sum, discounted, batch_size=8, batches=40, alpha=1e-6)
    assert few.verdict == "undecided", few.format()     # never "proportional" without the power for it
    if few.batches_needed is not None:
        assert few.batches_needed > 40 and f"about {few.batches_needed} batches would" in few.reason
    else:
        assert "no number of batches can be promised" in few.reason
    enough = check_batch_estimator(batch_sum, discounted, batch_size=8, batches=400, alpha=1e-6, tolerance=0.3)
    assert enough.verdict == "proportional" and 6 < enough.c < 10, enough.format()
