"""Index expressions of the grounding interpreters compiled once: time indices (t - 1, H - 1) and Sum/Product limits.

Shared by the scalar interpreter (``derive.grounding``) and the batched one (``derive.grounding_batch``): both
evaluate the same body for every binding, and SymPy's dispatch per node per binding costs more than the
arithmetic.  A closure takes ``(model, env)``: ``model.H`` is the horizon, ``env`` maps index symbols to ints.

>>> from derive.notation import t, H
>>> compile_index(H - t - 1)(None, {t: 0, H: 3})
2
"""

from __future__ import annotations

from derive.notation import H

__all__ = ["compile_index", "compile_loop"]


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


