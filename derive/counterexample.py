"""Readable counterexamples: a failed step's two sides at an explicit rational point a person can check.

Grounding decides an identity in the Laurent normal form or at random points modulo 2^61 - 1; neither
residual says *why* a step fails.  Here the same step is evaluated with exact rationals at a small,
explicitly stated point of the same tabular MDP:

    gamma = 1/2,  rho_0(s) ~ s + 1,  pi(a|s) ~ a + s + 1,  p(s'|s, a) ~ s' + a + 1     (normalised)
    d pi(a|s)/d theta = (s + 1)(2a - A + 1) (summing to 0 over a),  r(s, a, s') = 1 + s + 2a + 3s',
    b(s) = 1 + s,  f(tau_i) = i + 1,

or, for a step whose rule does not need sum_a pi = 1 and sum_s' p = 1, the unnormalised point
pi(a|s) = 1/(a + s + 2), p(s'|s, a) = 1/(s' + s + a + 2), rho_0(s) = 1/(s + 2), d pi(a|s) = a + s + 1.
A second point (gamma = 2/3, shifted weights) is tried when the first happens to be a root.  Logarithms are
exact: log of a rational is a combination of logs of primes (linearly independent over Q), so equality of
the two sides is decided exactly, and a counterexample found here is a proof that the step is false.

>>> from derive.seed import SOURCE
>>> import dataclasses
>>> from derive.notation import Expectation, TestFn, Density, x, theta
>>> bad = dataclasses.replace(SOURCE.step(7), after=-SOURCE.step(7).after)
>>> counterexample(bad, (1, 2, 1)).startswith("counterexample at (S, A, H) = (1, 2, 1)")
True
"""

from __future__ import annotations

import itertools
from fractions import Fraction

from sympy import factorint

__all__ = ["LinLog", "ExactJet", "RatJet", "counterexample", "POINTS"]


class LinLog:
    """c + sum_p k_p log p: an exact value involving logarithms of rationals (p prime)."""

    __slots__ = ("c", "k")

    def __init__(self, c=Fraction(0), k=None):
        self.c, self.k = Fraction(c), {p: v for p, v in (k or {}).items() if v}

    @classmethod
    def log(cls, q: Fraction) -> "LinLog":
        if q <= 0:
            raise ValueError(f"log of a non-positive value {q}")
        k = {}
        for n, sign in ((q.numerator, 1), (q.denominator, -1)):
            for p, m in (factorint(n).items() if n > 1 else ()):
                k[p] = k.get(p, 0) + sign * m
        return cls(0, k)

    def __add__(self, o):
        if not isinstance(o, LinLog):
            return LinLog(self.c + o, self.k)
        k = dict(self.k)
        for p, v in o.k.items():
            k[p] = k.get(p, 0) + v
        return LinLog(self.c + o.c, k)

    __radd__ = __add__

    def __neg__(self):
        return LinLog(-self.c, {p: -v for p, v in self.k.items()})

    def __sub__(self, o):
        return self + (-o)

    def __rsub__(self, o):
        return (-self) + o

    def __mul__(self, o):
        if isinstance(o, LinLog):
            if o.k and self.k:
                raise ValueError("a product of logarithms")
            return self * o.c if not o.k else o * self.c
        return LinLog(self.c * o, {p: v * o for p, v in self.k.items()})

    __rmul__ = __mul__

    def __eq__(self, o):
        if isinstance(o, LinLog):
            return self.c == o.c and self.k == o.k
        return not self.k and self.c == o

    def __hash__(self):
        return hash((self.c, tuple(sorted(self.k.items()))))

    def __str__(self):
        terms = ([_q(self.c)] if self.c or not self.k else []) + [
            (f"{_q(v)} log {p}" if abs(v) != 1 else f"{'-' if v < 0 else ''}log {p}") for p, v in sorted(self.k.items())]
        return " + ".join(terms).replace("+ -", "- ")


def _q(v) -> str:
    if isinstance(v, LinLog):
        return str(v)
    v = Fraction(v)
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


class ExactJet:
    """(value, d/dtheta, log value, d log/dtheta), in whatever arithmetic the values have; d is None after a
    derivative, the logs None for sums (``derive.jet``'s twin without the modulus).  Subclasses say how a plain
    number becomes a jet (``lift``) and what one is (``one``): ``RatJet`` (exact rationals) here,
    ``verify.app.derivation_numeric.NumJet`` (floats, gradient vectors) for the numeric half."""

    __slots__ = ("v", "d", "lv", "ld")

    def __init__(self, v, d=0, lv=None, ld=None):
        self.v, self.d, self.lv, self.ld = v, d, lv, ld

    @classmethod
    def lift(cls, v) -> "ExactJet":
        raise NotImplementedError

    @classmethod
    def one(cls) -> "ExactJet":
        raise NotImplementedError

    def is_zero(self) -> bool:
        return self.v == 0

    def __add__(self, other):
        o = self.lift(other)
        return type(self)(self.v + o.v, None if self.d is None or o.d is None else self.d + o.d)

    __radd__ = __add__

    def __neg__(self):
        return type(self)(-self.v, None if self.d is None else -self.d)

    def __sub__(self, other):
        return self + (-self.lift(other))

    def __rsub__(self, other):
        return self.lift(other) - self

    def __mul__(self, other):
        o = self.lift(other)
        d = None if self.d is None or o.d is None else self.v * o.d + self.d * o.v
        if self.lv is None or o.lv is None:
            return type(self)(self.v * o.v, d)
        ld = None if self.ld is None or o.ld is None else self.ld + o.ld
        return type(self)(self.v * o.v, d, self.lv + o.lv, ld)

    __rmul__ = __mul__

    def __pow__(self, n: int):
        if n < 0:
            inv = 1 / self.v
            base = type(self)(inv, None if self.d is None else -self.d * inv * inv,
                              None if self.lv is None else -self.lv, None if self.ld is None else -self.ld)
            return base ** -n
        out = self.one()
        for _ in range(n):
            out = out * self
        return out

    def derivative(self, atoms=None) -> "ExactJet":
        if self.d is None:
            raise ValueError("second derivative: a jet carries the first derivative only")
        return type(self)(self.d, None)


class RatJet(ExactJet):
    """An ``ExactJet`` of exact rationals (values with logarithms: ``LinLog``)."""

    __slots__ = ()

    @classmethod
    def lift(cls, v) -> "RatJet":
        return v if isinstance(v, RatJet) else RatJet(Fraction(v), Fraction(0))

    @classmethod
    def one(cls) -> "RatJet":
        return RatJet(Fraction(1), Fraction(0), LinLog(), Fraction(0))


_lift = RatJet.lift


def _leaf(value: Fraction, d=Fraction(0)) -> RatJet:
    return RatJet(value, d, LinLog.log(value), d / value)


class _Atoms:
    def log(self, arg: RatJet) -> RatJet:
        if arg.lv is None:
            raise ValueError("log of a sum")
        return RatJet(arg.lv, arg.ld)


#: the points tried, in words (``counterexample`` names the one used)
POINTS = {
    (True, 0): "γ = 1/2, ρ₀(s) ∝ s + 1, π(a|s) ∝ a + s + 1, p(s′|s, a) ∝ s′ + a + 1 (normalised), "
               "∂π(a|s) = (s + 1)(2a − A + 1), r(s, a, s′) = 1 + s + 2a + 3s′, b(s) = 1 + s, f(τᵢ) = i + 1",
    (True, 1): "γ = 2/3, ρ₀(s) ∝ 2s + 1, π(a|s) ∝ 2a + s + 1, p(s′|s, a) ∝ 2s′ + a + 1 (normalised), "
               "∂π(a|s) = (s + 2)(2a − A + 1), r(s, a, s′) = 2 + 3s + a + 2s′, b(s) = 2 + s, f(τᵢ) = 2i + 1",
    (False, 0): "γ = 1/2, ρ₀(s) = 1/(s + 2), π(a|s) = 1/(a + s + 2), p(s′|s, a) = 1/(s′ + s + a + 2), "
                "∂π(a|s) = a + s + 1, r(s, a, s′) = 1 + s + 2a + 3s′, b(s) = 1 + s, f(τᵢ) = i + 1",
    (False, 1): "γ = 2/3, ρ₀(s) = 1/(2s + 3), π(a|s) = 1/(2a + s + 3), p(s′|s, a) = 1/(2s′ + s + a + 3), "
                "∂π(a|s) = 2a + s + 1, r(s, a, s′) = 2 + 3s + a + 2s′, b(s) = 2 + s, f(τᵢ) = 2i + 1",
}


def _normalised(weights):
    total = sum(weights)
    return [Fraction(w, total) for w in weights]


def rational_model(sizes, normalise: bool, point: int = 0):
    """A ``derive.grounding.TabularModel`` at the explicit rational point ``POINTS[normalise, point]``."""
    from derive.grounding import Sizes, TabularModel

    class RationalModel(TabularModel):
        skip_zero = False

        def __init__(self):  # noqa: D107  (TabularModel's fields, set at the point)
            S, A, n = Sizes.of(sizes).as_tuple()
            self.sizes, self.H, self.normalise, self.rng, self.post = Sizes(S, A, n), n, normalise, None, {}
            self.atoms, self.memo, self._prob, self._f, self._ret = _Atoms(), {}, {}, {}, {}
            self.zero, self.one = RatJet(Fraction(0)), RatJet(Fraction(1), Fraction(0), LinLog(), Fraction(0))
            k = point
            self.gamma = _leaf(Fraction(1, 2) if k == 0 else Fraction(2, 3))
            if normalise:
                rho = _normalised([(1 + k) * s + 1 for s in range(S)])
                pi = {s: _normalised([(1 + k) * a + s + 1 for a in range(A)]) for s in range(S)}
                P = {(s, a): _normalised([(1 + k) * s2 + a + 1 for s2 in range(S)])
                     for s in range(S) for a in range(A)}
                dpi = {(s, a): Fraction((s + 1 + k) * (2 * a - A + 1)) for s in range(S) for a in range(A)}
            else:
                rho = [Fraction(1, (1 + k) * s + 2 + k) for s in range(S)]
                pi = {s: [Fraction(1, (1 + k) * a + s + 2 + k) for a in range(A)] for s in range(S)}
                P = {(s, a): [Fraction(1, (1 + k) * s2 + s + a + 2 + k) for s2 in range(S)]
                     for s in range(S) for a in range(A)}
                dpi = {(s, a): Fraction((1 + k) * a + s + 1) for s in range(S) for a in range(A)}
            self.rho = [_leaf(v) for v in rho]
            self.b = [_lift(s + 1 + k) for s in range(S)]
            self.r, self.P, self.pi = {}, {}, {}
            for s, a, s2 in itertools.product(range(S), range(A), range(S)):
                self.r[s, a, s2] = _lift(1 + k + (1 + 2 * k) * s + (2 - k) * a + (3 - k) * s2)
                self.P[s, a, s2] = _leaf(P[s, a][s2])
            for s, a in itertools.product(range(S), range(A)):
                self.pi[s, a] = _leaf(pi[s][a], dpi[s, a])
            self.trajectories = [(states, actions) for states in itertools.product(range(S), repeat=n + 1)
                                 for actions in itertools.product(range(A), repeat=n)]

        def const(self, c):
            c = Fraction(c.numerator, c.denominator) if hasattr(c, "denominator") else Fraction(c)
            return _leaf(c) if c > 0 else _lift(c)

        def sum(self, items):
            items = list(items)
            return items[0] if len(items) == 1 else sum(items, self.zero)

        def f(self, traj):
            if traj not in self._f:
                self._f[traj] = _lift((1 + point) * len(self._f) + 1)
            return self._f[traj]

        def residual_is_zero(self, res) -> bool:  # pragma: no cover - exact values compare directly
            return res.is_zero()

    return RationalModel()


def _binding(env) -> str:
    from derive.notation import t, tp

    parts = [f"{v} = {env[v]}" for v in (t, tp) if v in env]
    if "_traj" in env and any(not isinstance(k, str) and str(k) in ("tau", "x") for k in env):
        states, actions = env["_traj"]
        parts.append("τ = (" + ", ".join(f"s{i}={s}, a{i}={a}" for i, (s, a) in enumerate(zip(states, actions)))
                     + f", s{len(actions)}={states[-1]})")
    return (" with " + ", ".join(parts)) if parts else ""


def counterexample(step, sizes, max_trajectories: int = 5_000) -> str | None:
    """Both sides of ``step`` at an explicit rational point of the (S, A, H) model, if they differ there.

    Returns:
      "counterexample at (S, A, H) = ...: <point>; lhs = ..., rhs = ... (difference ...)", or None when both
      points tried are roots of the residual, the model is too large, or the step cannot be evaluated.
    """
    from derive.grounding import Sizes, ground, step_bindings

    sz = Sizes.of(sizes)
    if sz.S ** (sz.H + 1) * sz.A ** sz.H > max_trajectories:
        return None
    norm = step.rule.needs_normalisation
    for point in (0, 1):
        try:
            model = rational_model(sz, norm, point)
            lhs, rhs, envs = step_bindings(step, model)
            for env in envs:
                left, right = ground(lhs, model, env), ground(rhs, model, env)
                if not (left.v - right.v) == 0:
                    return (f"counterexample at (S, A, H) = {sz.as_tuple()}, {POINTS[norm, point]}"
                            f"{_binding(env)}: lhs = {_q(left.v)}, rhs = {_q(right.v)} "
                            f"(difference {_q(left.v - right.v)})")
        except Exception:  # noqa: BLE001  (no readable witness: the caller falls back to the residual)
            return None
    return None
