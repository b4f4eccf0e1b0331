"""Equations (1)-(7) on a Gaussian, and the Uniform(0, theta) regularity counterexample."""

import pytest
from sympy import Rational, Symbol, expand, symbols

from derive.continuous import check_gaussian, gaussian_integrate, uniform_counterexample

mu, sigma = Symbol("mu", real=True), Symbol("sigma", positive=True)
x = Symbol("x", real=True)


@pytest.mark.parametrize("param", ["mu", "sigma"])
def test_gaussian_steps_hold_exactly(param):
    checks = check_gaussian(param, degree=3)
    assert [c.number for c in checks] == list(range(1, 8))
    assert all(c.ok for c in checks)


def test_gaussian_gradient_matches_moments_by_hand():
    # E[c0 + c1 x + c2 x^2 + c3 x^3] = c0 + c1 mu + c2 (mu^2 + s^2) + c3 (mu^3 + 3 mu s^2)
    c0, c1, c2, c3 = symbols("c0:4", real=True)
    d_mu = c1 + 2 * c2 * mu + 3 * c3 * (mu**2 + sigma**2)
    d_sigma = 2 * c2 * sigma + 6 * c3 * mu * sigma
    assert expand(check_gaussian("mu")[0].before - d_mu) == 0
    assert expand(check_gaussian("mu")[-1].after - d_mu) == 0
    assert expand(check_gaussian("sigma")[-1].after - d_sigma) == 0


def test_gaussian_integrate_rejects_non_gaussian_integrand():
    with pytest.raises(ValueError):
        gaussian_integrate(x**2)


def test_uniform_counterexample_values():
    # by hand: E[x] = theta/2, so d/dtheta = 1/2; E[x * d/dtheta log(1/theta)] = -(theta/2)/theta
    u = uniform_counterexample()
    assert u.values == (Rational(1, 2), Rational(-1, 2))
    assert u.failing_steps == (2,)


def test_uniform_counterexample_second_moment():
    # by hand: E[x^2] = theta^2/3 -> 2 theta/3; E[x^2 * (-1/theta)] = -theta/3
    th = Symbol("theta", positive=True)
    u = uniform_counterexample(power=2)
    assert expand(u.grad_of_expectation - 2 * th / 3) == 0
    assert expand(u.expectation_of_score + th / 3) == 0


def test_polynomial_integrals_match_sympy_integrate():
    """``integrate_polynomial`` (the uniform model's integrator) against ``sympy.integrate``, which it replaces on
    polynomials and falls back to elsewhere."""
    from sympy import Symbol, exp, integrate, simplify

    from derive.continuous import integrate_polynomial
    from derive.notation import x

    th = Symbol("theta", positive=True)
    for g in (x / th, -x / th ** 2, x ** 3 * (th - 2) / th ** 4 + 5, (x + th) ** 2, 7 * th, exp(x) / th):
        assert simplify(integrate_polynomial(g, 0, th) - integrate(g, (x, 0, th))) == 0, g
