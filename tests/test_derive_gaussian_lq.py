"""The Gaussian-policy score-function identity on a 1-D LQ problem with H = 2, exactly (derive.gaussian_lq), and
its numbers against verify.model.lq's Riccati recursion (the connection between the derivation and the numerics)."""
import math

import numpy as np
import pytest
from sympy import Rational, diff, expand

from derive.gaussian_lq import (
    LQ_SYMBOLS,
    _trajectory,
    check_gaussian_lq,
    expect_normal,
    gaussian_lq_objective,
    reparameterisation_1d,
)

VALUES = {"K": Rational(-1, 2), "k": Rational(1, 10), "sigma": Rational(3, 5), "A": Rational(6, 5),
          "B": Rational(4, 5), "m0": Rational(1), "Q": Rational(1), "R": Rational(1, 2), "v0": Rational(1, 4),
          "W": Rational(1, 10), "gamma": Rational(9, 10)}


@pytest.fixture(scope="module")
def checks():
    return check_gaussian_lq()


def test_every_claim_holds_for_every_parameter(checks):
    claims = {(c.claim, c.param) for c in checks}
    assert len(claims) == 15 and all(c.ok for c in checks), [(c.claim, c.param) for c in checks if not c.ok]


def test_a_wrong_score_is_refused():
    """The same expansion rejects the score without its 1/sigma^2 (a check that can fail)."""
    xs, us, r, scores = _trajectory()
    s = LQ_SYMBOLS["sigma"]
    J = gaussian_lq_objective()
    wrong = expect_normal((r[0] + LQ_SYMBOLS["gamma"] * r[1]) * (scores["k"][0] + scores["k"][1]) * s ** 2)
    assert expand(diff(J, LQ_SYMBOLS["k"]) - wrong) != 0


def _lq():
    from verify.model.lq import LQProblem

    f = {n: float(v) for n, v in VALUES.items()}
    return LQProblem(A=[[f["A"]]], B=[[f["B"]]], Q=[[f["Q"]]], R=[[f["R"]]], W=[[f["W"]]], mu0=[f["m0"]],
                     Sigma0=[[f["v0"]]], K=[[f["K"]]], k=[f["k"]], log_std=[math.log(f["sigma"])],
                     gamma=f["gamma"], horizon=2)


def test_symbolic_J_and_gradient_equal_the_riccati_recursion():
    from verify.model.lq import lq_gradient

    subs = {LQ_SYMBOLS[n]: v for n, v in VALUES.items()}
    J = gaussian_lq_objective()
    res = lq_gradient(_lq())
    assert float(J.subs(subs)) == pytest.approx(res.J, rel=1e-13)
    s = LQ_SYMBOLS["sigma"]
    # verify.model.lq differentiates log_std: dJ/dlog sigma = sigma dJ/dsigma
    sym = [diff(J, LQ_SYMBOLS["K"]), diff(J, LQ_SYMBOLS["k"]), s * diff(J, s)]
    np.testing.assert_allclose([float(g.subs(subs)) for g in sym], res.flat, rtol=1e-13)


def test_restart_bias_equals_the_closed_form_mean(checks):
    from verify.model.lq import lq_gradient

    subs = {LQ_SYMBOLS[n]: v for n, v in VALUES.items()}
    lq = _lq()
    bias = lq_gradient(lq, weights="restart").flat - lq_gradient(lq).flat
    sym = {c.param: float(c.lhs.subs(subs)) for c in checks if c.claim == "restart_differs"}
    np.testing.assert_allclose([sym["K"], sym["k"], sym["sigma"] * float(VALUES["sigma"])], bias, rtol=1e-12)


def test_reparameterisation_identity_on_a_polynomial():
    (dmu, path_mu), (dsig, path_sig) = reparameterisation_1d(4)
    assert expand(dmu - path_mu) == 0 and expand(dsig - path_sig) == 0


def test_laurent_claims_equal_the_expand_reference(checks):
    """The claims proved as Laurent polynomials (sqrt(v0), sqrt(W) as atoms) against the same claims decided by
    SymPy's expand: the same verdicts and, side by side, the same closed forms."""
    from derive.gaussian_lq import _check_gaussian_lq_by_expand

    reference = _check_gaussian_lq_by_expand()
    assert [(c.claim, c.param, c.ok) for c in checks] == [(c.claim, c.param, c.ok) for c in reference]
    for got, want in zip(checks, reference):
        assert expand(got.lhs - want.lhs) == 0 and expand(got.rhs - want.rhs) == 0, (got.claim, got.param)


def test_the_laurent_claims_refuse_a_wrong_score():
    """The Laurent path fails a claim whose score lost its 1/sigma^2, and refuses what is not a Laurent polynomial
    (the caller then decides by expand)."""
    from sympy import log

    from derive.gaussian_lq import _claims_in_laurent, _LaurentForm
    from derive.laurent import NotLaurent

    xs, us, r, scores = _trajectory()
    s = LQ_SYMBOLS["sigma"]
    wrong = dict(scores, k=tuple(x * s ** 2 for x in scores["k"]))
    failed = {(c.claim, c.param) for c in _claims_in_laurent(r, wrong) if not c.ok}
    assert {("trajectory_form", "k"), ("reward_to_go", "k")} <= failed and all(p == "k" for _, p in failed)
    with pytest.raises(NotLaurent):
        _LaurentForm().of(log(LQ_SYMBOLS["K"]))
