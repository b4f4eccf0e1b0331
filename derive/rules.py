"""Named rewrite rules: every "=" of the derivation as a pure function.

A ``Rule`` carries a name, a one-line justification, the side conditions under
which the rewrite is valid, a LaTeX label, and ``apply(expr) -> expr``.  Each
rule rewrites every subexpression of the form it matches and raises
``RuleError`` when it matches none, so a rule cited for the wrong step fails
loudly instead of returning its input.

Checkable conditions are ``Condition`` predicates on the matched node and the
enclosing sums' index ranges (``Context``):

  guard  the rewrite is only valid there (e.g. t' <= t - 1): a node failing it is
         left alone, and a rule whose every match is refused raises RuleError
         naming the guard;
  side   a hypothesis of the rule (theta-independent support, positivity, finite
         index ranges): a match violating it raises ``SideConditionError`` with the
         condition's text, so replay fails saying which hypothesis does not hold.

The prose ``side_conditions`` list every hypothesis (checkable or not) for the
document; ``needs_normalisation`` marks the hypotheses sum_a pi = 1 and
sum_{s'} P = 1, which grounding imposes.  No rule is an axiom: the EGLP lemma
is a rule whose ``proved_by`` names the derivation that proves it
(``derive.eglp``).

>>> from derive.notation import Grad, Expectation, Integrate, TestFn, Density, x, theta
>>> f, p = TestFn(x), Density(x, theta)
>>> EXPECTATION_AS_INTEGRAL.apply(Grad(Expectation(f, p))) == Grad(Integrate(f * p, x))
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Mapping

from sympy import Add, Basic, Eq, Integer, Mul, Pow, Product, S, Sum, UnevaluatedExpr, log, oo, zoo
from sympy.core.relational import Equality

from derive.notation import (
    ActionExpectation, ActionSum, Advantage, Baseline, CondExpectation, Density, Expectation, Grad,
    InitialDist, Integrate, Policy, QValue, Return, Reward, StateProb, StateSum, TestFn, Transition,
    VValue, TIME_NODES, gamma, tau, theta, time_product, time_sum, t, tp, x, H,
)

#: index variable -> (lo, hi): the ranges of the sums enclosing a node
Context = Mapping[Basic, tuple]


class RuleError(ValueError):
    """A rule was applied to an expression it does not match."""


class SideConditionError(RuleError):
    """A rule matched, but one of its checkable side conditions is violated there (message: the condition)."""


@dataclass(frozen=True)
class Condition:
    """A checkable condition of a rule: ``holds(node, ctx)`` on each matched node.

    Attributes:
      text: the condition in words (shown when it fails).
      holds: predicate on the matched node and the enclosing sums' index ranges.
      kind: "guard" (the rewrite is refused there) or "side" (replay fails).
    """

    text: str
    holds: Callable[[Basic, Context], bool]
    kind: str = "guard"

    def __post_init__(self):
        if self.kind not in ("guard", "side"):
            raise ValueError(f"condition kind must be 'guard' or 'side', got {self.kind!r}")


@dataclass(frozen=True)
class Rule:
    """A named rewrite ``before -> after`` with its justification.

    Attributes:
      name: short identifier, unique within ``RULES``.
      justification: one line saying why the rewrite holds.
      side_conditions: the hypotheses the rewrite needs, one per entry (prose).
      latex_label: LaTeX text naming the rule in the exported document.
      fn: the rewrite of a whole expression (rules without ``match``).
      needs_normalisation: grounding must impose sum_a pi = 1 and sum_s' P = 1.
      match: node matcher ``(node, ctx) -> new node | None``; the rule rewrites every match.
      pattern: what ``match`` looks for, for error messages.
      conditions: the checkable guards and side conditions.
      proved_by: for a lemma, the name of the derivation proving it.
    """

    name: str
    justification: str
    side_conditions: tuple[str, ...]
    latex_label: str
    fn: Callable[[Basic], Basic] | None = None
    needs_normalisation: bool = False
    match: Callable[[Basic, Context], Basic | None] | None = None
    pattern: str = ""
    conditions: tuple[Condition, ...] = ()
    proved_by: str | None = None

    def __post_init__(self):
        if not self.name or not self.justification:
            raise ValueError("a rule needs a name and a justification")
        if "\n" in self.justification:
            raise ValueError(f"rule {self.name}: justification must be one line")
        if not isinstance(self.side_conditions, tuple) or not all(
                isinstance(c, str) and c for c in self.side_conditions):
            raise ValueError(f"rule {self.name}: side_conditions must be a tuple of str")
        if (self.fn is None) == (self.match is None):
            raise ValueError(f"rule {self.name}: give exactly one of fn and match")

    def apply(self, expr: Basic) -> Basic:
        """Rewrite ``expr``.

        Raises:
          RuleError: if the rule matches nowhere (or every match is refused by a guard).
          SideConditionError: if a match violates a checkable side condition.
        """
        if self.match is not None:
            return rewrite(expr, self)
        for c in self.conditions:
            if not c.holds(expr, {}):
                if c.kind == "side":
                    raise SideConditionError(c.text)
                raise RuleError(f"rule '{self.name}': guard refused: {c.text}")
        return self.fn(expr)

    def then(self, other: "Rule", name: str, justification: str, latex_label: str) -> "Rule":
        """The composite rule: ``other.apply(self.apply(expr))``."""
        return Rule(name, justification, self.side_conditions + other.side_conditions,
                    latex_label, lambda e: other.apply(self.apply(e)),
                    self.needs_normalisation or other.needs_normalisation)

    @property
    def guards(self) -> tuple[Condition, ...]:
        return tuple(c for c in self.conditions if c.kind == "guard")

    @property
    def checks(self) -> tuple[Condition, ...]:
        return tuple(c for c in self.conditions if c.kind == "side")

    def without(self, text: str) -> "Rule":
        """A copy with the condition ``text`` removed (for corruption tests: is the guard needed?)."""
        kept = tuple(c for c in self.conditions if c.text != text)
        if len(kept) == len(self.conditions):
            raise KeyError(f"rule {self.name} has no condition {text!r}")
        return dataclasses.replace(self, conditions=kept)


def _rebuild(node: Basic, args) -> Basic:
    if isinstance(node, Equality):
        return Eq(*args, evaluate=False)
    new = node.func(*args)
    # a sum (or mean, or conditional mean) of zeros is zero
    if isinstance(new, Sum) and new.function == 0:
        return S.Zero
    if isinstance(new, (Expectation, CondExpectation, ActionExpectation, ActionSum, StateSum)) and \
            new.args[0] == 0:
        return S.Zero
    return new


def _inner_context(node: Basic, ctx: dict) -> dict:
    """The context inside a Sum or Product: its limits added (inner bounds may use outer indices)."""
    if isinstance(node, (Sum, Product)):
        ctx = dict(ctx)
        for v, lo, hi in node.limits:
            ctx[v] = (lo, hi)
    return ctx


def rewrite(expr: Basic, rule: Rule) -> Basic:
    """Replace, bottom-up, every node that ``rule.match`` rewrites and every condition allows.

    Raises:
      RuleError: if no node was rewritten (naming the guards that refused matches).
      SideConditionError: if a match violates one of the rule's side conditions.
    """
    hits, refused = 0, []

    def walk(node, ctx):
        nonlocal hits
        if node.args and not node.is_Atom:
            inner = _inner_context(node, ctx)
            # an expectation's measure p(.|theta) is not a subexpression of its value: never rewritten
            args = [a if isinstance(node, Expectation) and i == 1 else walk(a, inner if i == 0 else ctx)
                    for i, a in enumerate(node.args)]
            if any(a is not b for a, b in zip(args, node.args)):
                node = _rebuild(node, args)
        new = rule.match(node, ctx)
        if new is None:
            return node
        for c in rule.conditions:
            if not c.holds(node, ctx):
                if c.kind == "side":
                    raise SideConditionError(f"{c.text} (at {node})")
                refused.append(c.text)
                return node
        hits += 1
        return new

    out = walk(expr, {})
    if not hits:
        why = f" (guard refused: {'; '.join(sorted(set(refused)))})" if refused else ""
        raise RuleError(f"rule '{rule.name}' expects {rule.pattern}; no such subexpression in {expr}{why}")
    return out


def _rule(name, justification, side_conditions, latex_label, pattern,
          needs_normalisation=False, conditions=()):
    """Decorator turning a node matcher ``match(node, ctx)`` into a Rule that rewrites every match."""
    def wrap(match):
        return Rule(name, justification, tuple(side_conditions), latex_label, None, needs_normalisation,
                    match, pattern, tuple(conditions))
    return wrap


# --- predicates for conditions ---------------------------------------------------------------------------------------

def is_positive(e: Basic) -> bool:
    """Whether ``e`` is known positive: probabilities (densities, pi, P, rho_0), positive numbers,
    gamma, and products and powers of these."""
    if isinstance(e, (Density, Policy, Transition, InitialDist, StateProb)):
        return True
    if e.is_Number:
        return bool(e > 0)
    if e == gamma:
        return True
    if isinstance(e, UnevaluatedExpr):
        return is_positive(e.args[0])
    if e.is_Mul:
        return all(is_positive(a) for a in e.args)
    if e.is_Pow:
        return is_positive(e.base) and e.exp.is_real is True
    if isinstance(e, Product):
        return is_positive(e.function)
    return False


def _finite_limits(limits) -> bool:
    return all(not b.has(oo, -oo, zoo) for _, lo, hi in limits for b in (lo, hi))


def index_max(k: Basic, ctx: Context) -> Basic:
    """An upper bound of the index expression ``k`` given the enclosing ranges (k = v + c, v bound)."""
    for _ in range(8):  # follow chains such as t' <= t - 1, t <= H - 1
        v, c = _split_index(k)
        if v is None or v not in ctx:
            return k
        k = ctx[v][1] + c
    return k


def index_min(k: Basic, ctx: Context) -> Basic:
    """A lower bound of ``k`` given the enclosing ranges."""
    for _ in range(8):
        v, c = _split_index(k)
        if v is None or v not in ctx:
            return k
        k = ctx[v][0] + c
    return k


def _split_index(k: Basic):
    """k = v + c with v a symbol and c an integer, or (None, k)."""
    if not isinstance(k, Basic):
        return None, k
    if k.is_Symbol:
        return k, 0
    if k.is_Add:
        syms = [a for a in k.args if a.is_Symbol]
        rest = k - Add(*syms)
        if len(syms) == 1 and rest.is_Integer:
            return syms[0], int(rest)
    return None, k


def _leq(a: Basic, b: Basic) -> bool:
    """Whether a <= b is known (b - a is a nonnegative integer, or SymPy's assumptions say so)."""
    d = (b - a).expand()
    if d.is_Integer:
        return int(d) >= 0
    return d.is_nonnegative is True


def _time_nodes(e: Basic):
    """Every time-indexed node of ``e`` (with its context), and whether e refers to a whole trajectory."""
    out = []

    def walk(node, ctx):
        if isinstance(node, TIME_NODES):
            out.append((node, ctx))
            return
        if isinstance(node, (Return, Density, TestFn)):
            out.append((node, ctx))
            return
        inner = _inner_context(node, ctx)
        for i, a in enumerate(node.args):
            walk(a, inner if i == 0 else ctx)
    return out, walk


def time_nodes(e: Basic, ctx: Context = None) -> list:
    """(node, ctx) for every time-indexed node (and trajectory-level node) of ``e``."""
    out, walk = _time_nodes(e)
    walk(e, dict(ctx or {}))
    return out


# the latest time each node looks at: s_k (0), a_k (1), s_{k+1} (2) -> half-steps 2k, 2k+1, 2k+2
_LOOKS_AT = {Baseline: 0, VValue: 0, StateProb: 0, InitialDist: 0, Policy: 1, QValue: 1, Advantage: 1,
             Reward: 2, Transition: 2}


def known_given_history(e: Basic, time: Basic, with_action: bool, ctx: Context) -> bool:
    """Whether ``e`` is a function of h_time = (s_0, a_0, ..., s_time) (and a_time if ``with_action``).

    Uses the enclosing ranges: r_{t'} with t' <= t - 1 is known given h_t; r_{t'} with t' >= t is not.
    """
    # bounds are followed down to the conditioning time itself, never through it
    ctx = {v: r for v, r in ctx.items() if v not in time.free_symbols}
    for node, c in time_nodes(e, ctx):
        if not isinstance(node, TIME_NODES):
            return False  # R(tau), p(tau|theta): the whole trajectory
        if isinstance(node, InitialDist):
            continue
        last = index_max(node.time, c) if not isinstance(node.time, Integer) else node.time
        # node looks at half-step 2k + offset; the history reaches 2 time (+1 with the action)
        offset = _LOOKS_AT[type(node)]
        if not _leq(2 * last + offset, 2 * time + (1 if with_action else 0)):
            return False
    return True


def depends_on_state_action_only(e: Basic, time: Basic) -> bool:
    """Whether every time-indexed node of ``e`` is a function of (s_time, a_time) only."""
    nodes = time_nodes(e)
    return bool(nodes) and all(
        isinstance(n, (Policy, QValue, VValue, Advantage, Baseline)) and n.time == time for n, _ in nodes)


def free_of_theta(e: Basic, wrt: Basic = theta) -> bool:
    """Whether ``e`` does not depend on theta: no theta among its free symbols, and no node that
    depends on the policy implicitly (Q_t, V_t, A_t, Pr(s_t = s), means under pi_theta)."""
    implicit = (QValue, VValue, Advantage, StateProb, CondExpectation, ActionExpectation)
    return wrt not in e.free_symbols and not any(e.atoms(*implicit)) and not isinstance(e, implicit)


# --- the score-function identity (1)-(7) --------------------------------------------------------------------------

def _support_free_of_theta(n, ctx) -> bool:
    return all(d.support is None or theta not in d.support.free_symbols
               for d in n.expr.body.atoms(Density) if d.var == n.expr.var)


@_rule("expectation_as_integral", "Definition of expectation as an integral (a sum for discrete x).",
       ["p(.|theta) is a density (or mass function) of x"],
       r"definition of $\mathbb{E}$", "E_{x~p}[f]")
def EXPECTATION_AS_INTEGRAL(n, ctx):
    if isinstance(n, Expectation):
        return Integrate(n.body * n.density, n.density.var)


@_rule("exchange_grad_integral", "Differentiate under the integral sign (Leibniz rule).",
       ["the support of p(x|theta) does not depend on theta",
        "|grad_theta(f p)| is dominated by an integrable function of x (dominated convergence)"],
       r"exchange $\nabla_\theta$ and $\int$", "grad(Int(body))",
       conditions=[Condition("the support of p(x|theta) does not depend on theta", _support_free_of_theta,
                             "side")])
def EXCHANGE_GRAD_INTEGRAL(n, ctx):
    if isinstance(n, Grad) and isinstance(n.expr, Integrate):
        return Integrate(Grad(n.expr.body, n.wrt), n.expr.var)


@_rule("product_rule", "grad(uv) = v grad(u) + u grad(v).",
       ["every factor is differentiable in theta"], "product rule", "grad(u*v)")
def PRODUCT_RULE(n, ctx):
    if isinstance(n, Grad) and n.expr.is_Mul:
        coeff, factors = n.expr.as_coeff_mul()
        if len(factors) < 2:
            return None
        return coeff * Add(*[Mul(*(factors[:i] + factors[i + 1:])) * Grad(f, n.wrt)
                             for i, f in enumerate(factors)])


@_rule("grad_of_independent", "The gradient of a theta-independent quantity is zero.",
       ["the differentiated term does not depend on theta"],
       r"$\nabla_\theta c = 0$", "grad(c)",
       conditions=[Condition("the differentiated term does not depend on theta",
                             lambda n, ctx: free_of_theta(n.expr, n.wrt))])
def GRAD_OF_INDEPENDENT(n, ctx):
    if isinstance(n, Grad):
        return S.Zero


@_rule("multiply_divide_density", "Multiply and divide by p(x|theta).",
       ["p(x|theta) > 0 wherever grad p(x|theta) is integrated"],
       r"multiply and divide by $p$", "grad(p(x|theta))")
def MULTIPLY_DIVIDE_DENSITY(n, ctx):
    if isinstance(n, Grad) and isinstance(n.expr, Density):
        return n.expr * UnevaluatedExpr(n / n.expr)


def _log_derivative_ratio(n):
    """Match grad(q) * q**-1 (a Mul) and return (q, grad(log q))."""
    if not n.is_Mul or len(n.args) != 2:
        return None
    grads = [a for a in n.args if isinstance(a, Grad)]
    invs = [a for a in n.args if isinstance(a, Pow) and a.exp == -1]
    if len(grads) == 1 and len(invs) == 1 and grads[0].expr == invs[0].base:
        return invs[0].base, Grad(log(invs[0].base), grads[0].wrt)
    return None


def _ratio_base(n) -> Basic | None:
    inner = n.args[0] if isinstance(n, UnevaluatedExpr) else n
    if isinstance(inner, Grad) and isinstance(inner.expr, log):
        return inner.expr.args[0]
    found = _log_derivative_ratio(inner)
    return found[0] if found else None


@_rule("log_derivative", "grad(p)/p = grad(log p) (chain rule for log).",
       ["p(x|theta) > 0"], "log-derivative identity", "grad(p)/p",
       conditions=[Condition("the divided quantity is positive (p(x|theta) > 0)",
                             lambda n, ctx: is_positive(_ratio_base(n)), "side")])
def LOG_DERIVATIVE(n, ctx):
    if isinstance(n, UnevaluatedExpr):
        inner = n.args[0]
        # the bottom-up walk may already have rewritten the wrapped ratio
        if isinstance(inner, Grad) and isinstance(inner.expr, log):
            return inner
        found = _log_derivative_ratio(inner)
        return found[1] if found else None
    found = _log_derivative_ratio(n)
    return found[1] if found else None


@_rule("expectation_recognised", "An integral of p(x|theta) times g(x) is E_{x~p}[g].",
       ["p(.|theta) is a probability density of the integration variable"],
       r"recognise $\mathbb{E}$", "Int(dx, g(x) p(x|theta))")
def EXPECTATION_RECOGNISED(n, ctx):
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


# --- the trajectory's log-probability (9)-(15) ---------------------------------------------------------------------

def trajectory_probability(param=theta) -> Basic:
    """rho_0(s_0) prod_{t=0}^{H-1} pi_theta(a_t|s_t) p(s_{t+1}|s_t,a_t) (the corrected eq. (9))."""
    return InitialDist() * time_product(Policy(t, param) * Transition(t))


@_rule("trajectory_factorisation", "Chain rule of probability plus the Markov property.",
       ["tau = (s_0, a_0, ..., s_{H-1}, a_{H-1}, s_H), finite horizon H",
        "a_t ~ pi_theta(.|s_t) and s_{t+1} ~ p(.|s_t, a_t) given the past"],
       "trajectory factorisation", "p(tau|theta)")
def TRAJECTORY_FACTORISATION(n, ctx):
    if isinstance(n, Density) and n.var == tau:
        return trajectory_probability(n.param)


def _both_sides(op, name):
    def fn(expr):
        if not isinstance(expr, Equality):
            raise RuleError(f"rule '{name}' expects an equation, got {expr}")
        return Eq(op(expr.lhs), op(expr.rhs), evaluate=False)
    return fn


def _sides_positive(e, ctx) -> bool:
    return not isinstance(e, Equality) or (is_positive(e.lhs) and is_positive(e.rhs))


TAKE_LOGS = Rule("take_logs", "Apply log to both sides of an equation.",
                 ("both sides are positive",), "take logarithms",
                 _both_sides(log, "take_logs"),
                 conditions=(Condition("both sides are positive", _sides_positive, "side"),))

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
       ["every factor is positive"], "log of a product", "log(a*b) or log(prod)",
       conditions=[Condition("every factor is positive", lambda n, ctx: is_positive(n.args[0]), "side")])
def LOG_OF_PRODUCT(n, ctx):
    if isinstance(n, log) and (n.args[0].is_Mul or isinstance(n.args[0], Product)):
        return _split_log(n.args[0])


def _split_grad(expr, wrt):
    if expr.is_Add:
        return Add(*[_split_grad(a, wrt) for a in expr.args])
    if isinstance(expr, Sum):
        return Sum(_split_grad(expr.function, wrt), *expr.limits)
    return Grad(expr, wrt)


def _sums_finite(e) -> bool:
    return all(_finite_limits(s.limits) for s in ([e] if isinstance(e, Sum) else []) + list(e.atoms(Sum)))


@_rule("grad_of_sum", "The gradient is linear: grad(sum_i u_i) = sum_i grad(u_i).",
       ["the sum is finite (t ranges over 0..H-1)"], r"$\nabla_\theta$ of a sum", "grad(u + v)",
       conditions=[Condition("the sum is finite", lambda n, ctx: _sums_finite(n.expr), "side")])
def GRAD_OF_SUM(n, ctx):
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


def _mul_with_one_sum(n):
    if n.is_Mul:
        sums = [a for a in n.args if isinstance(a, Sum)]
        if len(sums) == 1:
            return sums[0], [a for a in n.args if a is not sums[0]]
    return None


def _factor_free_of_index(n, ctx) -> bool:
    s, rest = _mul_with_one_sum(n)
    return not any(v in a.free_symbols for a in rest for v, _, _ in s.limits)


@_rule("factor_into_sum", "c sum_t g_t = sum_t c g_t when c does not depend on t.",
       ["the factor does not depend on the summation index"], "linearity of the sum",
       "c * Sum(g, t)",
       conditions=[Condition("the factor does not depend on the summation index", _factor_free_of_index)])
def FACTOR_INTO_SUM(n, ctx):
    found = _mul_with_one_sum(n)
    if found:
        s, rest = found
        return Sum(Mul(*rest) * s.function, *s.limits)


@_rule("factor_out_of_sum", "sum_t c g_t = c sum_t g_t when c does not depend on t.",
       ["the factor does not depend on the summation index"], "linearity of the sum",
       "Sum(c * g, t) with c free of t")
def FACTOR_OUT_OF_SUM(n, ctx):
    # the factors free of the index are the ones moved: no guard can fail
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
def RETURN_DEFINITION(n, ctx):
    if isinstance(n, Return):
        return time_sum(gamma**tp * Reward(tp), tp)


SPLIT_POINT_IN_RANGE = "0 <= t <= H (the split point lies in the summed range)"


def _split_point_in_range(n) -> bool:
    v, lo, hi = n.limits[1]
    return v == t and _leq(Integer(0), lo) and _leq(hi, H)


@_rule("split_at_t", "Split sum_{t'=0}^{H-1} into t' < t and t' >= t.",
       [SPLIT_POINT_IN_RANGE], r"split the sum at $t$", "Sum over t' from 0 to H-1 inside a sum over t",
       conditions=[Condition(SPLIT_POINT_IN_RANGE, lambda n, ctx: _split_point_in_range(n), "side")])
def SPLIT_AT_T(n, ctx):
    # SymPy flattens nested sums: Sum(Sum(g, (t', ..)), (t, ..)) is Sum(g, (t', ..), (t, ..))
    if isinstance(n, Sum) and tuple(n.limits[0]) == (tp, 0, H - 1) and len(n.limits) > 1:
        rest = n.limits[1:]
        return Sum(n.function, (tp, 0, t - 1), *rest) + Sum(n.function, (tp, t, H - 1), *rest)


@_rule("distribute", "g (u + v) = g u + g v.", ["none (field axioms)"], "distribute",
       "g * (u + v)")
def DISTRIBUTE(n, ctx):
    if n.is_Mul:
        adds = [a for a in n.args if a.is_Add]
        if adds:
            rest = [a for a in n.args if a is not adds[0]]
            return Add(*[Mul(*rest, term) for term in adds[0].args])


def _linear_pieces(body):
    """Split a body (optionally a Sum over t of an Add) into coefficient, piece pairs."""
    if isinstance(body, Sum) and body.function.is_Add:
        return [(c, Sum(r, *body.limits)) for c, r in (a.as_coeff_Mul() for a in body.function.args)]
    if body.is_Add:
        return [a.as_coeff_Mul() for a in body.args]
    return None


@_rule("linearity_of_expectation", "E[sum_t (u_t + v_t)] = E[sum_t u_t] + E[sum_t v_t].",
       ["each term has a finite expectation"], r"linearity of $\mathbb{E}$",
       "E[Sum(u + v)] or E[u + v]")
def LINEARITY_OF_EXPECTATION(n, ctx):
    if isinstance(n, Expectation):
        pieces = _linear_pieces(n.body)
        if pieces:
            return Add(*[c * Expectation(p, n.density) for c, p in pieces])


# --- conditioning: the tower property and the Markov property ------------------------------------------------------

def _tower(with_action: int):
    suffix = "_action" if with_action else ""
    given = "(s_0, a_0, ..., s_t, a_t)" if with_action else "(s_0, a_0, ..., s_t)"

    @_rule(f"tower_property{suffix}",
           f"E[Y_t] = E[E[Y_t | h_t{', a_t' if with_action else ''}]] for each term of the sum over t "
           f"(law of total expectation, h_t = {given[1:-1]}).",
           ["sum_a pi_theta(a|s) = 1 and sum_{s'} p(s'|s,a) = 1 (the future's conditional probabilities sum to one)",
            "the sums over t are finite"],
           rf"tower property, conditioning on $h_t{', a_t' if with_action else ''}$",
           "E_tau[Sum(Y, t)]", needs_normalisation=True,
           conditions=[Condition("the sums over t are finite", lambda n, ctx: _finite_limits(n.body.limits),
                                 "side")])
    def rule(n, ctx):
        if isinstance(n, Expectation) and n.density.var == tau and isinstance(n.body, Sum) and \
                not isinstance(n.body.function, CondExpectation):
            v = n.body.limits[-1][0]  # the outermost index: the time conditioned on
            return Expectation(Sum(CondExpectation(n.body.function, v, with_action), *n.body.limits), n.density)
    return rule


TOWER_PROPERTY = _tower(0)
TOWER_PROPERTY_ACTION = _tower(1)


def _known_split(n):
    """The factors of a conditional expectation's body: (kept, pulled) by the matcher's proposal.

    Proposal: keep the factors that carry the conditioning time's unknown (the score at t
    when conditioning on h_t; a sum when conditioning on h_t, a_t); pull the others out.
    Whether the pulled ones are known is the rule's guard.
    """
    if not isinstance(n, CondExpectation) or not n.body.is_Mul:
        return None
    if n.with_action:
        keep = [a for a in n.body.args if isinstance(a, Sum)]
    else:
        keep = [a for a in n.body.args if a.has(Policy(n.time))]
    pulled = [a for a in n.body.args if a not in keep]
    if not keep or not pulled:
        return None
    return keep, pulled


def _pulled_known(n, ctx) -> bool:
    _, pulled = _known_split(n)
    return all(known_given_history(a, n.time, n.with_action, ctx) for a in pulled)


KNOWN_GIVEN_HISTORY = "every factor taken out is a function of the history conditioned on (r_t' needs t' <= t - 1)"


@_rule("pull_out_known", "E[X Y | h_t] = X E[Y | h_t] when X is a function of h_t (taking out what is known).",
       [KNOWN_GIVEN_HISTORY], "take out what is known", "E[X Y | h_t]",
       conditions=[Condition(KNOWN_GIVEN_HISTORY, _pulled_known)])
def PULL_OUT_KNOWN(n, ctx):
    found = _known_split(n)
    if found:
        keep, pulled = found
        return Mul(*pulled) * CondExpectation(Mul(*keep), n.time, n.with_action)


STATE_ACTION_ONLY = "the body depends on (s_t, a_t) only"


@_rule("condition_on_state",
       "Given h_t, a_t ~ pi_theta(.|s_t) (Markov property): E[g(s_t, a_t) | h_t] = E_{a_t ~ pi(.|s_t)}[g(s_t, a_t)].",
       ["a_t ~ pi_theta(.|s_t) given the history", STATE_ACTION_ONLY,
        "sum_{s'} p(s'|s,a) = 1 (the steps after t sum out)"], "Markov property",
       "E[g | h_t]", needs_normalisation=True,
       conditions=[Condition(STATE_ACTION_ONLY, lambda n, ctx: depends_on_state_action_only(n.body, n.time))])
def CONDITION_ON_STATE(n, ctx):
    if isinstance(n, CondExpectation) and not n.with_action:
        return ActionExpectation(n.body, n.time)


def _is_future_return(n) -> bool:
    s = n.body
    if not isinstance(s, Sum) or len(s.limits) != 1:
        return False
    v, lo, hi = s.limits[0]
    return lo == n.time and hi == H - 1 and s.function == gamma**v * Reward(v)


FROM_T_TO_END = "the sum runs over t' = t .. H-1 (the rewards from the conditioning time on)"


@_rule("q_value_definition",
       "E[sum_{t'>=t} gamma^{t'} r_{t'} | h_t, a_t] = gamma^t Q_t(s_t, a_t): the future depends on the past "
       "through (s_t, a_t) only (Markov property), Q_t(s, a) = E[sum_{t'>=t} gamma^{t'-t} r_{t'} | s_t = s, a_t = a].",
       ["Markov property of the transitions and the policy", FROM_T_TO_END], r"definition of $Q^\pi_t$",
       "E[Sum(gamma^t' r_t', (t', t, H-1)) | h_t, a_t]", needs_normalisation=True,
       conditions=[Condition(FROM_T_TO_END, lambda n, ctx: _is_future_return(n))])
def Q_VALUE_DEFINITION(n, ctx):
    if isinstance(n, CondExpectation) and n.with_action and isinstance(n.body, Sum) and len(n.body.limits) == 1:
        return gamma**n.time * QValue(n.time)


@_rule("advantage_definition", "A_t(s_t, a_t) = Q_t(s_t, a_t) - V_t(s_t) (definition of the advantage).",
       ["V_t(s) = E_{a ~ pi(.|s)}[Q_t(s, a)]"], "definition of the advantage", "A_t")
def ADVANTAGE_DEFINITION(n, ctx):
    if isinstance(n, Advantage):
        return QValue(n.time) - VValue(n.time)


# --- the EGLP lemma's steps --------------------------------------------------------------------------------------

@_rule("action_expectation_as_sum",
       "E_{a_t ~ pi(.|s_t)}[g(a_t)] = sum_{a_t} pi_theta(a_t|s_t) g(a_t) (finite actions).",
       ["the action set is finite"], r"definition of $\mathbb{E}$ over actions", "E_{a_t~pi}[g]")
def ACTION_EXPECTATION_AS_SUM(n, ctx):
    if isinstance(n, ActionExpectation):
        return ActionSum(Policy(n.time) * n.body, n.time)


def _policy_and_score(n):
    """(pi(a_k|s_k), grad log pi(a_j|s_j)) if the product ``n`` has exactly one of each."""
    if n.is_Mul:
        pols = [a for a in n.args if isinstance(a, Policy)]
        scores = [a for a in n.args if isinstance(a, Grad) and isinstance(a.expr, log)
                  and isinstance(a.expr.args[0], Policy)]
        if len(pols) == 1 and len(scores) == 1:
            return pols[0], scores[0]
    return None


SAME_POLICY = "pi_theta(a_t|s_t) and the score are at the same time step"


@_rule("score_times_policy", "pi_theta grad log pi_theta = grad pi_theta (the log-derivative identity, reversed).",
       ["pi_theta(a|s) > 0", SAME_POLICY], "log-derivative identity", "pi(a_t|s_t) grad log pi(a_t|s_t)",
       conditions=[Condition(SAME_POLICY,
                             lambda n, ctx: _policy_and_score(n)[0] == _policy_and_score(n)[1].expr.args[0])])
def SCORE_TIMES_POLICY(n, ctx):
    found = _policy_and_score(n)
    if found:
        pol, sc = found
        rest = [a for a in n.args if a is not pol and a is not sc]
        return Mul(*rest) * Grad(pol, sc.wrt)


@_rule("grad_out_of_action_sum", "sum_{a_t} grad g(a_t) = grad sum_{a_t} g(a_t) (a finite sum).",
       ["the action set is finite"], r"exchange $\sum_a$ and $\nabla_\theta$", "Sum_a grad(g)")
def GRAD_OUT_OF_ACTION_SUM(n, ctx):
    if isinstance(n, ActionSum) and isinstance(n.body, Grad):
        return Grad(ActionSum(n.body.expr, n.time), n.body.wrt)


SAME_ACTION = "the policy is summed over its own action (sum_{a_t} pi(a_t|s_t))"


@_rule("policy_normalised", "sum_{a_t} pi_theta(a_t|s_t) = 1: the policy is a probability distribution.",
       ["sum_a pi_theta(a|s) = 1 for every s", SAME_ACTION], r"$\sum_a \pi_\theta(a\mid s) = 1$",
       "Sum_{a_t} pi(a_t|s_t)", needs_normalisation=True,
       conditions=[Condition(SAME_ACTION, lambda n, ctx: n.body.time == n.time)])
def POLICY_NORMALISED(n, ctx):
    if isinstance(n, ActionSum) and isinstance(n.body, Policy):
        return S.One


# --- the policy-gradient theorem's state-visitation form ----------------------------------------------------------

@_rule("expectation_of_sum", "E[sum_t Y_t] = sum_t E[Y_t] (linearity over a finite sum).",
       ["the sum over t is finite"], r"linearity of $\mathbb{E}$ over $t$", "E[Sum(Y, t)]",
       conditions=[Condition("the sum over t is finite", lambda n, ctx: _finite_limits(n.body.limits), "side")])
def EXPECTATION_OF_SUM(n, ctx):
    if isinstance(n, Expectation) and isinstance(n.body, Sum):
        return Sum(Expectation(n.body.function, n.density), *n.body.limits)


def _trajectory_free(a) -> bool:
    return not time_nodes(a) and not a.has(Grad)


@_rule("constant_out_of_expectation", "E[c Y] = c E[Y] for a constant c (here gamma^t).",
       ["c does not depend on the trajectory"], r"linearity of $\mathbb{E}$", "E[c Y]")
def CONSTANT_OUT_OF_EXPECTATION(n, ctx):
    # the trajectory-free factors are the ones moved: no guard can fail
    if isinstance(n, Expectation) and n.body.is_Mul:
        out = [a for a in n.body.args if _trajectory_free(a)]
        if out and len(out) < len(n.body.args):
            return Mul(*out) * Expectation(Mul(*[a for a in n.body.args if a not in out]), n.density)


def _marginal_time(n):
    """The time t of the state-action pair an expectation's body depends on, or None."""
    times = {node.time for node, _ in time_nodes(n.body) if isinstance(node, TIME_NODES)}
    return times.pop() if len(times) == 1 else None


@_rule("marginalise_state_action",
       "E_tau[g(s_t, a_t)] = sum_s Pr(s_t = s) sum_a pi_theta(a|s) g(s, a): the rest of tau sums out.",
       ["sum_a pi_theta(a|s) = 1 and sum_{s'} p(s'|s,a) = 1 (the steps after t sum out)", STATE_ACTION_ONLY],
       r"marginal of $(s_t, a_t)$", "E_tau[g(s_t, a_t)]", needs_normalisation=True,
       conditions=[Condition(STATE_ACTION_ONLY,
                             lambda n, ctx: _marginal_time(n) is not None and
                             depends_on_state_action_only(n.body, _marginal_time(n)))])
def MARGINALISE_STATE_ACTION(n, ctx):
    if isinstance(n, Expectation) and n.density.var == tau and not isinstance(n.body, Sum):
        k = _marginal_time(n)
        if k is not None:
            return StateSum(StateProb(k) * ActionSum(Policy(k) * n.body, k), k)


RULES: dict[str, Rule] = {r.name: r for r in [
    EXPECTATION_AS_INTEGRAL, EXCHANGE_GRAD_INTEGRAL, PRODUCT_RULE, GRAD_OF_INDEPENDENT,
    MULTIPLY_DIVIDE_DENSITY, LOG_DERIVATIVE, EXPECTATION_RECOGNISED, SUBSTITUTE_TRAJECTORY,
    TRAJECTORY_FACTORISATION, TAKE_LOGS, LOG_OF_PRODUCT, GRAD_BOTH_SIDES, GRAD_OF_SUM,
    DROP_INDEPENDENT_TERMS, FACTOR_INTO_SUM, FACTOR_OUT_OF_SUM, RETURN_DEFINITION, SPLIT_AT_T,
    DISTRIBUTE, LINEARITY_OF_EXPECTATION, TOWER_PROPERTY, TOWER_PROPERTY_ACTION, PULL_OUT_KNOWN,
    CONDITION_ON_STATE, Q_VALUE_DEFINITION, ADVANTAGE_DEFINITION, ACTION_EXPECTATION_AS_SUM,
    SCORE_TIMES_POLICY, GRAD_OUT_OF_ACTION_SUM, POLICY_NORMALISED, EXPECTATION_OF_SUM,
    CONSTANT_OUT_OF_EXPECTATION, MARGINALISE_STATE_ACTION]}


def index_range_problems(expr: Basic) -> list[str]:
    """Time indices that can leave 0..H-1 (or 0..H for a state-only node) given the enclosing sums.

    >>> index_range_problems(time_sum(Reward(t), t, 0, H))
    ['r_t with t up to H, beyond H - 1']
    """
    out = []
    # a free t or t' (an identity "for every t") ranges over the horizon
    for node, ctx in time_nodes(expr, {t: (0, H - 1), tp: (0, H - 1)}):
        if not isinstance(node, TIME_NODES) or isinstance(node, InitialDist):
            continue
        top = H if isinstance(node, (Baseline, VValue, StateProb)) else H - 1
        hi, lo = index_max(node.time, ctx), index_min(node.time, ctx)
        if hi.has(oo) or not _leq(hi, top):
            out.append(f"{node} with {node.time} up to {hi}, beyond {top}")
        elif not _leq(Integer(0), lo):
            out.append(f"{node} with {node.time} down to {lo}, below 0")
    return out
