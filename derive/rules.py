"""Named rewrite rules: every "=" of the derivation as a pure function.

A ``Rule`` carries a name, a one-line justification, the side conditions under
which the rewrite is valid, a LaTeX label, and ``apply(expr) -> expr``.  Each
rule rewrites every subexpression of the form it matches and raises
``RuleError`` when it matches none, so a rule cited for the wrong step fails
loudly instead of returning its input.

>>> from derive.notation import Grad, Expectation, Integrate, TestFn, Density, x, theta
>>> f, p = TestFn(x), Density(x, theta)
>>> EXPECTATION_AS_INTEGRAL.apply(Grad(Expectation(f, p))) == Grad(Integrate(f * p, x))
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sympy import Add, Basic, Eq, Mul, Pow, Product, S, Sum, UnevaluatedExpr, log
from sympy.core.relational import Equality

from derive.notation import (
    Baseline, Density, Expectation, Grad, InitialDist, Integrate, Policy, Return,
    Reward, TestFn, Transition, gamma, tau, theta, time_product, time_sum, t, tp, x, H,
)


class RuleError(ValueError):
    """A rule was applied to an expression it does not match."""


@dataclass(frozen=True)
class Rule:
    """A named rewrite ``before -> after`` with its justification.

    Attributes:
      name: short identifier, unique within ``RULES``.
      justification: one line saying why the rewrite holds.
      side_conditions: the hypotheses the rewrite needs, one per entry.
      latex_label: LaTeX text naming the rule in the exported document.
      fn: the pure rewrite function.
      needs_normalisation: grounding must impose sum_a pi = 1 and sum_s' P = 1.
    """

    name: str
    justification: str
    side_conditions: tuple[str, ...]
    latex_label: str
    fn: Callable[[Basic], Basic]
    needs_normalisation: bool = False

    def __post_init__(self):
        if not self.name or not self.justification:
            raise ValueError("a rule needs a name and a justification")
        if "\n" in self.justification:
            raise ValueError(f"rule {self.name}: justification must be one line")
        if not isinstance(self.side_conditions, tuple) or not all(
                isinstance(c, str) and c for c in self.side_conditions):
            raise ValueError(f"rule {self.name}: side_conditions must be a tuple of str")

    def apply(self, expr: Basic) -> Basic:
        """Rewrite ``expr``; raises RuleError if the rule does not match it."""
        return self.fn(expr)

    def then(self, other: "Rule", name: str, justification: str, latex_label: str) -> "Rule":
        """The composite rule: ``other.apply(self.apply(expr))``."""
        return Rule(name, justification, self.side_conditions + other.side_conditions,
                    latex_label, lambda e: other.fn(self.fn(e)),
                    self.needs_normalisation or other.needs_normalisation)


def _rebuild(node: Basic, args) -> Basic:
    if isinstance(node, Equality):
        return Eq(*args, evaluate=False)
    new = node.func(*args)
    if isinstance(new, Sum) and new.function == 0:  # a sum of zeros is zero
        return S.Zero
    return new


def rewrite(expr: Basic, match: Callable[[Basic], Basic | None], name: str,
            pattern: str) -> Basic:
    """Replace, bottom-up, every node for which ``match`` returns a new node.

    Raises:
      RuleError: if ``match`` returned None for every node of ``expr``.
    """
    hits = 0

    def walk(node):
        nonlocal hits
        if node.args and not node.is_Atom:
            args = [walk(a) for a in node.args]
            if any(a is not b for a, b in zip(args, node.args)):
                node = _rebuild(node, args)
        new = match(node)
        if new is None:
            return node
        hits += 1
        return new

    out = walk(expr)
    if not hits:
        raise RuleError(f"rule '{name}' expects {pattern}; no such subexpression in {expr}")
    return out


def _rule(name, justification, side_conditions, latex_label, pattern,
          needs_normalisation=False):
    """Decorator turning a node matcher into a Rule that rewrites every match."""
    def wrap(match):
        return Rule(name, justification, tuple(side_conditions), latex_label,
                    lambda e: rewrite(e, match, name, pattern), needs_normalisation)
    return wrap


@_rule("expectation_as_integral", "Definition of expectation as an integral (a sum for discrete x).",
       ["p(.|theta) is a density (or mass function) of x"],
       r"definition of $\mathbb{E}$", "E_{x~p}[f]")
def EXPECTATION_AS_INTEGRAL(n):
    if isinstance(n, Expectation):
        return Integrate(n.body * n.density, n.density.var)


@_rule("exchange_grad_integral", "Differentiate under the integral sign (Leibniz rule).",
       ["the support of p(x|theta) does not depend on theta",
        "|grad_theta(f p)| is dominated by an integrable function of x (dominated convergence)"],
       r"exchange $\nabla_\theta$ and $\int$", "grad(Int(body))")
def EXCHANGE_GRAD_INTEGRAL(n):
    if isinstance(n, Grad) and isinstance(n.expr, Integrate):
        return Integrate(Grad(n.expr.body, n.wrt), n.expr.var)


@_rule("product_rule", "grad(uv) = v grad(u) + u grad(v).",
       ["every factor is differentiable in theta"], "product rule", "grad(u*v)")
def PRODUCT_RULE(n):
    if isinstance(n, Grad) and n.expr.is_Mul:
        coeff, factors = n.expr.as_coeff_mul()
        if len(factors) < 2:
            return None
        return coeff * Add(*[Mul(*(factors[:i] + factors[i + 1:])) * Grad(f, n.wrt)
                             for i, f in enumerate(factors)])


@_rule("grad_of_independent", "The gradient of a theta-independent quantity is zero.",
       ["the differentiated term does not depend on theta"],
       r"$\nabla_\theta c = 0$", "grad(c) with c free of theta")
def GRAD_OF_INDEPENDENT(n):
    if isinstance(n, Grad) and n.wrt not in n.expr.free_symbols:
        return S.Zero


@_rule("multiply_divide_density", "Multiply and divide by p(x|theta).",
       ["p(x|theta) > 0 wherever grad p(x|theta) is integrated"],
       r"multiply and divide by $p$", "grad(p(x|theta))")
def MULTIPLY_DIVIDE_DENSITY(n):
    if isinstance(n, Grad) and isinstance(n.expr, Density):
        return n.expr * UnevaluatedExpr(n / n.expr)


def _log_derivative_ratio(n):
    """Match grad(q) * q**-1 (a Mul) and return grad(log q)."""
    if not n.is_Mul or len(n.args) != 2:
        return None
    grads = [a for a in n.args if isinstance(a, Grad)]
    invs = [a for a in n.args if isinstance(a, Pow) and a.exp == -1]
    if len(grads) == 1 and len(invs) == 1 and grads[0].expr == invs[0].base:
        return Grad(log(invs[0].base), grads[0].wrt)
    return None


@_rule("log_derivative", "grad(p)/p = grad(log p) (chain rule for log).",
       ["p(x|theta) > 0"], "log-derivative identity", "grad(p)/p")
def LOG_DERIVATIVE(n):
    if isinstance(n, UnevaluatedExpr):
        inner = n.args[0]
        # the bottom-up walk may already have rewritten the wrapped ratio
        if isinstance(inner, Grad) and isinstance(inner.expr, log):
            return inner
        return _log_derivative_ratio(inner)
    return _log_derivative_ratio(n)


@_rule("expectation_recognised", "An integral of p(x|theta) times g(x) is E_{x~p}[g].",
       ["p(.|theta) is a probability density of the integration variable"],
       r"recognise $\mathbb{E}$", "Int(dx, g(x) p(x|theta))")
def EXPECTATION_RECOGNISED(n):
    if isinstance(n, Integrate) and n.body.is_Mul:
        dens = [a for a in n.body.args if isinstance(a, Density) and a.var == n.var]
        if len(dens) == 1:
            rest = list(n.body.args)
            rest.remove(dens[0])
            return Expectation(Mul(*rest), dens[0])


def _substitute_trajectory(expr):
    if x not in expr.free_symbols:
        raise RuleError(f"rule 'substitute_trajectory' expects the generic variable x in {expr}")
    return expr.xreplace({TestFn(x): Return(tau)}).xreplace({x: tau})


SUBSTITUTE_TRAJECTORY = Rule(
    "substitute_trajectory", "Instantiate the identity (1)-(7) at x = tau, f = R, p(x|theta) = p(tau|theta).",
    ("R(tau) does not depend on theta", "J(pi_theta) = E_{tau ~ p(.|theta)}[R(tau)]"),
    r"substitute $x=\tau$, $f=R$", _substitute_trajectory)


def trajectory_probability(param=theta) -> Basic:
    """rho_0(s_0) prod_{t=0}^{H-1} pi_theta(a_t|s_t) p(s_{t+1}|s_t,a_t) (the corrected eq. (9))."""
    return InitialDist() * time_product(Policy(t, param) * Transition(t))


@_rule("trajectory_factorisation", "Chain rule of probability plus the Markov property.",
       ["tau = (s_0, a_0, ..., s_{H-1}, a_{H-1}, s_H), finite horizon H",
        "a_t ~ pi_theta(.|s_t) and s_{t+1} ~ p(.|s_t, a_t) given the past"],
       "trajectory factorisation", "p(tau|theta)")
def TRAJECTORY_FACTORISATION(n):
    if isinstance(n, Density) and n.var == tau:
        return trajectory_probability(n.param)


def _both_sides(op, name):
    def fn(expr):
        if not isinstance(expr, Equality):
            raise RuleError(f"rule '{name}' expects an equation, got {expr}")
        return Eq(op(expr.lhs), op(expr.rhs), evaluate=False)
    return fn


TAKE_LOGS = Rule("take_logs", "Apply log to both sides of an equation.",
                 ("both sides are positive",), "take logarithms",
                 _both_sides(log, "take_logs"))

GRAD_BOTH_SIDES = Rule("grad_both_sides", "Differentiate both sides of an identity in theta.",
                       ("the equation holds for all theta in an open set",), r"apply $\nabla_\theta$",
                       _both_sides(Grad, "grad_both_sides"))


def _split_log(arg):
    if arg.is_Mul:
        return Add(*[_split_log(f) for f in arg.args])
    if isinstance(arg, Product):
        return Sum(_split_log(arg.function), *arg.limits)
    return log(arg)


@_rule("log_of_product", "log(ab) = log a + log b and log prod_i x_i = sum_i log x_i.",
       ["every factor is positive"], "log of a product", "log(a*b) or log(prod)")
def LOG_OF_PRODUCT(n):
    if isinstance(n, log) and (n.args[0].is_Mul or isinstance(n.args[0], Product)):
        return _split_log(n.args[0])


def _split_grad(expr, wrt):
    if expr.is_Add:
        return Add(*[_split_grad(a, wrt) for a in expr.args])
    if isinstance(expr, Sum):
        return Sum(_split_grad(expr.function, wrt), *expr.limits)
    return Grad(expr, wrt)


@_rule("grad_of_sum", "The gradient is linear: grad(sum_i u_i) = sum_i grad(u_i).",
       ["the sum is finite (t ranges over 0..H-1)"], r"$\nabla_\theta$ of a sum", "grad(u + v)")
def GRAD_OF_SUM(n):
    if isinstance(n, Grad) and (n.expr.is_Add or isinstance(n.expr, Sum)):
        return _split_grad(n.expr, n.wrt)


DROP_INDEPENDENT_TERMS = GRAD_OF_SUM.then(
    GRAD_OF_INDEPENDENT, "drop_independent_terms",
    "Distribute grad over the sum; rho_0 and the transitions do not depend on theta.",
    r"$\nabla_\theta$ of a sum; $\rho_0$, $p(s'\mid s,a)$ drop out")


def substitute_identity(identity: Equality, label: str) -> Rule:
    """The rule replacing ``identity.lhs`` by ``identity.rhs`` (e.g. substitute (13) into (8))."""
    def fn(expr):
        if not expr.has(identity.lhs):
            raise RuleError(f"rule 'substitute {label}' expects {identity.lhs} in {expr}")
        return expr.xreplace({identity.lhs: identity.rhs})
    return Rule(f"substitute_{label}", f"Substitute the identity {label}.",
                (f"identity {label} holds for every trajectory",), f"substitute {label}", fn)


@_rule("factor_into_sum", "c sum_t g_t = sum_t c g_t when c does not depend on t.",
       ["the factor does not depend on the summation index"], "linearity of the sum",
       "c * Sum(g, t)")
def FACTOR_INTO_SUM(n):
    if n.is_Mul:
        sums = [a for a in n.args if isinstance(a, Sum)]
        if len(sums) == 1:
            rest = [a for a in n.args if a is not sums[0]]
            var = sums[0].limits[0][0]
            if not any(var in a.free_symbols for a in rest):
                return Sum(Mul(*rest) * sums[0].function, *sums[0].limits)


@_rule("factor_out_of_sum", "sum_t c g_t = c sum_t g_t when c does not depend on t.",
       ["the factor does not depend on the summation index"], "linearity of the sum",
       "Sum(c * g, t) with c free of t")
def FACTOR_OUT_OF_SUM(n):
    if isinstance(n, Sum) and n.function.is_Mul:
        inner, outer = n.limits[0], n.limits[1:]
        out = [a for a in n.function.args if inner[0] not in a.free_symbols and not a.is_Number]
        if out:
            keep = [a for a in n.function.args if a not in out]
            pulled = Mul(*out) * Sum(Mul(*keep), inner)
            return Sum(pulled, *outer) if outer else pulled


@_rule("return_definition", "R(tau) = sum_{t'=0}^{H-1} gamma^{t'} r_{t'} (discounted return).",
       ["rewards r_{t'} = r(s_{t'}, a_{t'}, s_{t'+1}) do not depend on theta"],
       "definition of the return", "R(tau)")
def RETURN_DEFINITION(n):
    if isinstance(n, Return):
        return time_sum(gamma**tp * Reward(tp), tp)


@_rule("split_at_t", "Split sum_{t'=0}^{H-1} into t' < t and t' >= t.",
       ["0 <= t <= H-1"], r"split the sum at $t$", "Sum over t' from 0 to H-1")
def SPLIT_AT_T(n):
    # SymPy flattens nested sums: Sum(Sum(g, (t', ..)), (t, ..)) is Sum(g, (t', ..), (t, ..))
    if isinstance(n, Sum) and tuple(n.limits[0]) == (tp, 0, H - 1) and len(n.limits) > 1:
        rest = n.limits[1:]
        return Sum(n.function, (tp, 0, t - 1), *rest) + Sum(n.function, (tp, t, H - 1), *rest)


@_rule("distribute", "g (u + v) = g u + g v.", ["none (field axioms)"], "distribute",
       "g * (u + v)")
def DISTRIBUTE(n):
    if n.is_Mul:
        adds = [a for a in n.args if a.is_Add]
        if adds:
            rest = [a for a in n.args if a is not adds[0]]
            return Add(*[Mul(*rest, term) for term in adds[0].args])


def _linear_pieces(body):
    """Split a body (optionally a Sum over t of an Add) into coefficient, piece pairs."""
    if isinstance(body, Sum) and body.function.is_Add:
        terms = [(c, Sum(r, *body.limits)) for c, r in
                 (a.as_coeff_Mul() for a in body.function.args)]
        return terms
    if body.is_Add:
        return [a.as_coeff_Mul() for a in body.args]
    return None


@_rule("linearity_of_expectation", "E[sum_t (u_t + v_t)] = E[sum_t u_t] + E[sum_t v_t].",
       ["each term has a finite expectation"], r"linearity of $\mathbb{E}$",
       "E[Sum(u + v)] or E[u + v]")
def LINEARITY_OF_EXPECTATION(n):
    if isinstance(n, Expectation):
        pieces = _linear_pieces(n.body)
        if pieces:
            return Add(*[c * Expectation(p, n.density) for c, p in pieces])


def _is_score(a, time) -> bool:
    return (isinstance(a, Grad) and isinstance(a.expr, log) and isinstance(a.expr.args[0], Policy)
            and a.expr.args[0].time == time)


@_rule("past_rewards_vanish",
       "E[grad log pi(a_t|s_t) r_{t'}] = 0 for t' < t: r_{t'} is fixed given s_t and E[score | s_t] = 0.",
       ["sum_a pi_theta(a|s) = 1 for every s (so E[grad log pi(a_t|s_t) | s_0..s_t] = 0)",
        "sum_{s'} p(s'|s,a) = 1 (later steps integrate out)", "t' < t (causality)"],
       "past rewards vanish", "E[sum_t sum_{t'<t} gamma^t' r_t' grad log pi_t]",
       needs_normalisation=True)
def PAST_REWARDS_VANISH(n):
    if isinstance(n, Expectation) and isinstance(n.body, Sum) and len(n.body.limits) == 2:
        (v, lo, hi), (w, _, _) = n.body.limits
        f = n.body.function
        if v == tp and lo == 0 and hi == w - 1 and f.is_Mul and \
                any(_is_score(a, w) for a in f.args) and \
                all(_is_score(a, w) or a.is_Number or a == Reward(tp) or a == gamma**tp for a in f.args):
            return S.Zero


@_rule("baseline_vanishes",
       "E[grad log pi(a_t|s_t) b(s_t)] = E[b(s_t) sum_a grad pi(a|s_t)] = E[b(s_t) grad 1] = 0.",
       ["sum_a pi_theta(a|s) = 1 for every s", "b depends on the state s_t only, not on a_t"],
       "baseline has zero mean", "E[sum_t grad log pi_t b(s_t)]", needs_normalisation=True)
def BASELINE_VANISHES(n):
    if isinstance(n, Expectation) and isinstance(n.body, Sum) and n.body.function.is_Mul:
        w, f = n.body.limits[0][0], n.body.function
        if any(_is_score(a, w) for a in f.args) and Baseline(w) in f.args and \
                all(_is_score(a, w) or a.is_Number or a == Baseline(w) for a in f.args):
            return S.Zero


RULES: dict[str, Rule] = {r.name: r for r in [
    EXPECTATION_AS_INTEGRAL, EXCHANGE_GRAD_INTEGRAL, PRODUCT_RULE, GRAD_OF_INDEPENDENT,
    MULTIPLY_DIVIDE_DENSITY, LOG_DERIVATIVE, EXPECTATION_RECOGNISED, SUBSTITUTE_TRAJECTORY,
    TRAJECTORY_FACTORISATION, TAKE_LOGS, LOG_OF_PRODUCT, GRAD_BOTH_SIDES, GRAD_OF_SUM,
    DROP_INDEPENDENT_TERMS, FACTOR_INTO_SUM, FACTOR_OUT_OF_SUM, RETURN_DEFINITION, SPLIT_AT_T,
    DISTRIBUTE, LINEARITY_OF_EXPECTATION, PAST_REWARDS_VANISH, BASELINE_VANISHES]}
