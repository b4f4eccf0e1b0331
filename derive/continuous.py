"""Equations (1)-(7) in closed form for continuous densities, and where step (2) fails.

Each expression of the score-function derivation is interpreted on a concrete
density p(x|theta) and test function f(x), with integrals done exactly:

    Gaussian N(mu, sigma^2), f a polynomial with symbolic coefficients:
        int g(x) p(x) dx = E[g(mu + sigma z)],  E[z^{2m}] = (2m-1)!!, E[z^{2m+1}] = 0,
    so every step's two sides are polynomials in (mu, sigma, c_k) and each step is
    proved by expand(before - after) == 0, for theta = mu and for theta = sigma.

    Uniform(0, theta), f(x) = x: the support depends on theta, so differentiating
    under the integral (step (2)) drops the boundary term theta' f(theta) p(theta):
        grad_theta E[x]     = d/dtheta (theta/2)                 =  1/2,
        E[x grad log p]     = int_0^theta x (1/theta)(-1/theta) dx = -1/2.

>>> uniform_counterexample().values
(1/2, -1/2)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sympy import (
    Basic, Poly, Symbol, UnevaluatedExpr, cancel, diff, exp, expand, integrate, log, pi, sqrt, symbols,
)

from derive.notation import Density, Expectation, Grad, Integrate, TestFn, x
from derive.printing import to_unicode
from derive.seed import SOURCE

__all__ = ["ContinuousModel", "ContinuousCheck", "UniformCounterexample", "gaussian_model",
           "uniform_model", "evaluate", "check_steps", "check_gaussian", "integrate_polynomial",
           "uniform_counterexample", "SCORE_STEPS"]

mu = Symbol("mu", real=True)
sigma = Symbol("sigma", positive=True)
_z = Symbol("z", real=True)

#: the steps (1)-(7) of the source: the score-function identity for a generic density
SCORE_STEPS = tuple(s for s in SOURCE.steps if isinstance(s.number, int) and s.number <= 7)


@dataclass(frozen=True)
class ContinuousModel:
    """A density p(x|param) on the real line, a test function, and an exact integrator.

    Attributes:
      name: e.g. "N(mu, sigma^2), theta = mu".
      pdf: p(x|param) on its support.
      param: the symbol theta stands for.
      f: the test function f(x).
      integrate: exact integral over the support of an integrand in x.
    """

    name: str
    pdf: Basic
    param: Symbol
    f: Basic
    integrate: Callable[[Basic], Basic]


def _gaussian_pdf():
    return exp(-(x - mu) ** 2 / (2 * sigma**2)) / (sqrt(2 * pi) * sigma)


def gaussian_integrate(integrand: Basic) -> Basic:
    """int integrand dx for integrand = polynomial(x) * N(x; mu, sigma^2).

    Raises:
      ValueError: if integrand / pdf is not a polynomial in x.
    """
    q = expand(integrand / _gaussian_pdf())   # the pdf's exp cancels here; cancel() only when x is left below
    if not q.is_polynomial(x):
        q = cancel(q)
    if not q.is_polynomial(x):
        raise ValueError(f"integrand is not a polynomial times the Gaussian pdf: {q}")
    from derive.gaussian_lq import expect_normal     # E[z^(2j)] = (2j - 1)!!, in SymPy's polynomial ring

    return expect_normal(q.subs(x, mu + sigma * _z), (_z,))


def gaussian_model(param: str = "mu", degree: int = 3) -> ContinuousModel:
    """N(mu, sigma^2) with f(x) = sum_{k<=degree} c_k x^k (symbolic c_k).

    Args:
      param: "mu" or "sigma": which parameter theta is.
      degree: degree of the polynomial f.
    """
    if param not in ("mu", "sigma"):
        raise ValueError(f"param must be 'mu' or 'sigma', got {param!r}")
    c = symbols(f"c0:{degree + 1}", real=True)
    f = sum(ck * x**k for k, ck in enumerate(c))
    return ContinuousModel(f"N(μ, σ²), θ = {'μ' if param == 'mu' else 'σ'}, f of degree {degree}",
                           _gaussian_pdf(), mu if param == "mu" else sigma, f, gaussian_integrate)


def uniform_model(power: int = 1) -> ContinuousModel:
    """Uniform(0, theta) with f(x) = x**power; the support depends on theta."""
    th = Symbol("theta", positive=True)
    return ContinuousModel(f"Uniform(0, θ), f(x) = {to_unicode(x**power)}", 1 / th, th, x**power,
                           lambda g: integrate_polynomial(g, 0, th))


def integrate_polynomial(integrand: Basic, lower: Basic, upper: Basic) -> Basic:
    """int_lower^upper integrand dx: by the antiderivative of each power of x where the integrand is a polynomial
    in x (any coefficients free of x), else by ``sympy.integrate``.

    Every integrand of the uniform counterexample is such a polynomial; its antiderivative needs none of
    ``integrate``'s general machinery (which would load the Risch and heuristic integrators for it).

    >>> th = Symbol("theta", positive=True)
    >>> integrate_polynomial(x ** 2 / th, 0, th)
    theta**2/3
    """
    q = expand(integrand)
    if not q.is_polynomial(x):
        return integrate(integrand, (x, lower, upper))
    antiderivative = Poly(q, x).integrate().as_expr()
    return expand(antiderivative.subs(x, upper) - antiderivative.subs(x, lower))


def evaluate(e: Basic, model: ContinuousModel) -> Basic:
    """Interpret a notation expression in x on ``model`` (integrals exact).

    Raises:
      ValueError: for a node outside the score-function steps (1)-(7).
    """
    if isinstance(e, Expectation):
        return model.integrate(evaluate(e.body, model) * model.pdf)
    if isinstance(e, Integrate):
        return model.integrate(evaluate(e.body, model))
    if isinstance(e, Density):
        return model.pdf
    if isinstance(e, TestFn):
        return model.f
    if isinstance(e, Grad):
        return diff(evaluate(e.expr, model), model.param)
    if isinstance(e, UnevaluatedExpr):
        return evaluate(e.args[0], model)
    if e == x or e.is_Number:
        return e
    if e.is_Add or e.is_Mul or e.is_Pow or isinstance(e, log):
        return e.func(*[evaluate(a, model) for a in e.args])
    raise ValueError(f"cannot evaluate {e} on {model.name}")


@dataclass(frozen=True)
class ContinuousCheck:
    """One step evaluated on a continuous model: both sides in closed form."""

    number: int
    rule: str
    model: str
    before: Basic
    after: Basic
    ok: bool


def check_steps(model: ContinuousModel, steps=SCORE_STEPS) -> list[ContinuousCheck]:
    """Evaluate both sides of each step on ``model``; ok iff they expand to the same value."""
    out = []
    # A derivation is a chain (each step's after is the next one's before): every line is integrated once.
    memo: dict = {}
    value = lambda e: memo[e] if e in memo else memo.setdefault(e, evaluate(e, model))  # noqa: E731
    for s in steps:
        b, a = value(s.before), value(s.after)
        out.append(ContinuousCheck(s.number, s.rule.name, model.name, b, a,
                                   expand(b - a) == 0))
    return out


def check_gaussian(param: str = "mu", degree: int = 3) -> list[ContinuousCheck]:
    """Steps (1)-(7) on N(mu, sigma^2) with a symbolic polynomial f: all should hold.

    >>> all(c.ok for c in check_gaussian("mu", 2))
    True
    """
    return check_steps(gaussian_model(param, degree))


@dataclass(frozen=True)
class UniformCounterexample:
    """The regularity counterexample for step (2).

    Attributes:
      model: description of the density and f.
      grad_of_expectation: grad_theta E[f] (the left side of (1)).
      expectation_of_score: E[f grad_theta log p] (the right side of (7)).
      failing_steps: numbers of the steps whose two sides differ.
      checks: the per-step evaluations.
    """

    model: str
    grad_of_expectation: Basic
    expectation_of_score: Basic
    failing_steps: tuple[int, ...]
    checks: tuple[ContinuousCheck, ...]

    @property
    def values(self) -> tuple[Basic, Basic]:
        return (self.grad_of_expectation, self.expectation_of_score)


def uniform_counterexample(power: int = 1) -> UniformCounterexample:
    """x ~ Uniform(0, theta), f(x) = x**power: step (2) fails, the others hold.

    For power = 1: grad E[f] = 1/2 but E[f grad log p] = -1/2.
    """
    model = uniform_model(power)
    checks = tuple(check_steps(model))
    return UniformCounterexample(
        model.name, checks[0].before, checks[-1].after,
        tuple(c.number for c in checks if not c.ok), checks)


