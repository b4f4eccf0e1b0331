"""What the grounding interpreters compile alike: indices (t - 1, H - 1), limits, arithmetic, the policy's nodes.

Shared by the scalar interpreter (``derive.grounding``) and the batched one (``derive.grounding_batch``): both
evaluate the same body for every binding, and SymPy's dispatch per node per binding costs more than the
arithmetic.  A closure takes ``(model, env)``: ``model.H`` is the horizon, ``env`` maps index symbols to ints;
``compile_arithmetic``'s closures use the model's own arithmetic (``sum``, ``product``, ``const``, ``gamma``,
``atoms.log``), so one compiler serves Laurent polynomials, jets and batches of jets.

>>> from derive.notation import t, H
>>> compile_index(H - t - 1)(None, {t: 0, H: 3})
2
"""

from __future__ import annotations

from sympy import Basic, Product, Sum, Symbol, UnevaluatedExpr, log
from sympy.external.gmpy import MPQ

from derive.notation import H, ActionExpectation, At, Grad, ScoreDot, gamma, theta

__all__ = ["compile_index", "compile_loop", "compile_arithmetic", "compile_policy_node"]


def compile_index(e):
    """An index expression (t - 1, H - 1, ...) as a closure returning an int."""
    if e.is_Integer:
        k = int(e)
        return lambda model, env: k
    if e.is_Symbol:
        if e == H:
            return lambda model, env: env[e] if e in env else model.H

        def sym(model, env):
            if e not in env:
                raise ValueError(f"unbound index {e}")
            return env[e]
        return sym
    if e.is_Add:
        parts = [compile_index(a) for a in e.args]
        return lambda model, env: sum(f(model, env) for f in parts)
    if e.is_Pow and e.exp.is_Integer and int(e.exp) >= 0:
        base, n = compile_index(e.base), int(e.exp)
        return lambda model, env: base(model, env) ** n
    if e.is_Mul:
        parts = [compile_index(a) for a in e.args]

        def mul(model, env):
            out = 1
            for f in parts:
                out *= f(model, env)
            return out
        return mul
    raise ValueError(f"index {e} is not an integer expression")


def compile_loop(fn, limits):
    """Sum/Product limits, outermost first (inner bounds may use outer indices): a closure listing the values."""
    bounds = [(v, compile_index(lo), compile_index(hi)) for v, lo, hi in limits]

    def run(model, env):
        out = []

        def rec(level, env):
            if level < 0:
                out.append(fn(model, env))
                return
            v, lo, hi = bounds[level]
            for k in range(lo(model, env), hi(model, env) + 1):
                rec(level - 1, {**env, v: k})
        rec(len(bounds) - 1, env)
        return out
    return run




def compile_arithmetic(e: Basic, recurse):
    """A closure for the arithmetic nodes of ``e`` (Sum, Product, symbols, numbers, +, *, integer powers, log), its
    operands compiled by ``recurse``; None for any other node (the interpreter's own)."""
    if isinstance(e, (Sum, Product)):
        loop = compile_loop(recurse(e.function), e.limits)
        if isinstance(e, Sum):
            return lambda model, env: model.sum(loop(model, env))
        return lambda model, env: model.product(loop(model, env))
    if isinstance(e, UnevaluatedExpr):
        return recurse(e.args[0])
    if isinstance(e, Symbol):
        if e == gamma:
            return lambda model, env: model.gamma

        def symbol(model, env):
            if e in env:
                return model.const(env[e])
            if e == H:
                return model.const(model.H)
            raise ValueError(f"unbound symbol {e}")
        return symbol
    if e.is_Integer or e.is_Rational:
        c = int(e) if e.is_Integer else MPQ(int(e.p), int(e.q))
        return lambda model, env: model.const(c)
    if e.is_Add:
        parts = [recurse(a) for a in e.args]
        return lambda model, env: model.sum([f(model, env) for f in parts])
    if e.is_Mul:
        parts = [recurse(a) for a in e.args]
        return lambda model, env: model.product(f(model, env) for f in parts)
    if e.is_Pow:
        base, exp = recurse(e.base), compile_index(e.exp)
        return lambda model, env: base(model, env) ** exp(model, env)
    if isinstance(e, log):
        arg = recurse(e.args[0])
        return lambda model, env: model.atoms.log(arg(model, env))
    return None


def compile_policy_node(e: Basic, recurse, grad_key):
    """A closure for the nodes whose meaning is the policy's, the same in both interpreters: ``At`` (under the model's
    second policy), ``ScoreDot`` (the tabular softmax's score against a table) and ``Grad`` (the derivative in the
    model's atoms, memoised under ``grad_key(e, env)``: a score recurs in every inner sum); None for any other node.

    ``recurse`` compiles the operands; ``grad_key`` names what a derivative's value depends on in the interpreter's
    bindings (the trajectory and the ints for the scalar one, whether a trajectory is bound for the batch).
    """
    if isinstance(e, At):
        inner = recurse(e.expr)
        return lambda model, env: inner(model.old_model(), env)
    if isinstance(e, ScoreDot):
        # the tabular softmax: d log pi(a|s) / d theta_{s',b} = [s' = s] ([b = a] - pi(b|s)), so
        # <grad log pi(a_t|s_t), w> = w(s_t, a_t) - E_{b ~ pi(.|s_t)}[w(s_t, b)]
        table, mean = recurse(e.table), recurse(ActionExpectation(e.table, e.time))

        def score_dot(model, env):
            if not getattr(model, "tabular_softmax", True):
                raise ValueError("<score, w> with a table w is the tabular softmax's (this policy is not)")
            return table(model, env) - mean(model, env)
        return score_dot
    if isinstance(e, Grad):
        if e.wrt != theta:
            raise ValueError(f"can only differentiate with respect to theta, not {e.wrt}")
        inner = recurse(e.expr)

        def grad(model, env):
            key = grad_key(e, env)
            if key not in model.memo:
                model.memo[key] = inner(model, env).derivative(model.atoms)
            return model.memo[key]
        return grad
    return None
