"""First-order jets modulo a prime: grounding's fast, exact-at-random-points arithmetic.

A ``Jet`` is the image of a Laurent polynomial (``derive.laurent``) under a random
evaluation of its atoms in F_p, p = 2^61 - 1, carried with its theta-derivative and,
for monomials, its logarithm:

    v = ev(x),  d = ev(D x),  lv = ev(log x),  ld = ev(D log x)   (all mod p)

Atoms (the MDP's parameters, pi_{s,a}, dpi_{s,a}, and the logs of atoms) get
independent uniform values in {1, ..., p - 1}; log of a monomial c prod a_k^e_k is
sum e_k log a_k plus a random value per prime of c, exactly as ``Atoms.log`` expands
it.  Because x -> (v + eps d) is a ring homomorphism from the Laurent ring with its
derivation D into F_p[eps]/(eps^2), a residual that is zero as a Laurent polynomial
evaluates to zero, and a nonzero one (times the monomial clearing its denominators,
of degree <= D_max) vanishes with probability <= D_max / (p - 1) per point
(Schwartz, "Fast probabilistic algorithms for verification of polynomial identities", J. ACM 27(4), 1980,
https://doi.org/10.1145/322217.322225; Zippel, "Probabilistic algorithms for sparse polynomials", EUROSAM 1979,
https://doi.org/10.1007/3-540-09519-5_73).  Every operation is one or two machine-size integer
multiplications instead of a dictionary merge, and expressions never swell.  ``derive.jet_batch`` performs the
same operations on numpy arrays of residues (every trajectory at once); this class is its reference.

>>> import random
>>> atoms = JetAtoms(random.Random(0))
>>> a = atoms.leaf("a")
>>> ((a + 1) * (a - 1) - (a * a - 1)).is_zero()
True
"""

from __future__ import annotations

import random

from sympy import factorint

__all__ = ["PRIME", "Jet", "JetAtoms", "SecondDerivative"]

PRIME = 2**61 - 1


class SecondDerivative(ValueError):
    """A jet carries the first derivative only: differentiating twice is refused."""


def _inv(v: int) -> int:
    if v % PRIME == 0:
        raise ZeroDivisionError("division by a value that is 0 mod p (redraw the point)")
    return pow(v, PRIME - 2, PRIME)


class Jet:
    """(value, d/dtheta, log value, d log / dtheta) mod PRIME; d is None after a derivative, logs None for sums."""

    __slots__ = ("v", "d", "lv", "ld")

    def __init__(self, v: int, d: int | None = 0, lv: int | None = None, ld: int | None = None):
        self.v, self.d, self.lv, self.ld = v % PRIME, None if d is None else d % PRIME, lv, ld

    def is_zero(self) -> bool:
        return self.v == 0

    @staticmethod
    def _raw(v, d, lv=None, ld=None) -> "Jet":
        # the hot path: operands are already reduced, so skip __init__'s checks
        out = object.__new__(Jet)
        out.v, out.d, out.lv, out.ld = v, d, lv, ld
        return out

    def __add__(self, other):
        o = other if type(other) is Jet else _lift(other)
        d = None if self.d is None or o.d is None else (self.d + o.d) % PRIME
        return Jet._raw((self.v + o.v) % PRIME, d)

    __radd__ = __add__

    def __neg__(self):
        return Jet._raw(-self.v % PRIME, None if self.d is None else -self.d % PRIME)

    def __sub__(self, other):
        return self + (-_lift(other))

    def __rsub__(self, other):
        return _lift(other) - self

    def __mul__(self, other):
        o = other if type(other) is Jet else _lift(other)
        sv, ov, sd, od = self.v, o.v, self.d, o.d
        d = None if sd is None or od is None else (sv * od + sd * ov) % PRIME
        if self.lv is None or o.lv is None:
            return Jet._raw(sv * ov % PRIME, d)
        ld = None if self.ld is None or o.ld is None else (self.ld + o.ld) % PRIME
        return Jet._raw(sv * ov % PRIME, d, (self.lv + o.lv) % PRIME, ld)

    __rmul__ = __mul__

    def __pow__(self, n: int):
        if n < 0:
            inv = _inv(self.v)
            base = Jet(inv, None if self.d is None else -self.d * inv * inv,
                       None if self.lv is None else -self.lv, None if self.ld is None else -self.ld)
            return base ** -n
        out = Jet(1, 0, 0, 0)
        for _ in range(n):
            out = out * self
        return out

    def derivative(self, atoms=None) -> "Jet":
        if self.d is None:
            raise SecondDerivative("a jet carries the first derivative only")
        return Jet(self.d, None)

    def substitute(self, values) -> "Jet":
        return self  # the values are in already

    def to_expr(self, atoms=None) -> str:
        return f"{self.v} (mod 2^61 - 1, at a random point)"

    def __repr__(self):
        return f"Jet({self.v}, {self.d})"


def _lift(v) -> Jet:
    if isinstance(v, Jet):
        return v
    return Jet(int(v.numerator) * _inv(int(v.denominator)), 0) if hasattr(v, "denominator") and v.denominator != 1 \
        else Jet(int(v), 0)


class JetAtoms:
    """Random values for atoms, drawn once per atom name; the ``Atoms`` interface of ``derive.laurent``."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self._logs: dict = {}

    def draw(self) -> int:
        return self.rng.randint(1, PRIME - 1)

    def leaf(self, sym, deriv: Jet | None = None) -> Jet:
        """A fresh atom: random value and log; derivative ``deriv`` (a Jet) or 0."""
        v = self.draw()
        d = 0 if deriv is None else deriv.v
        return Jet(v, d, self.draw(), d * _inv(v))

    def normalised(self, rest: Jet) -> Jet:
        """The atom fixed by normalisation (1 - sum of the others): its value and derivative, a fresh log."""
        return Jet(rest.v, rest.d, self.draw(), None if rest.d is None else rest.d * _inv(rest.v))

    def const(self, c) -> Jet:
        """The constant c; its log (for c > 0) is the sum of fresh random logs of its primes."""
        out = _lift(c)
        num, den = (int(c.numerator), int(c.denominator)) if hasattr(c, "denominator") else (int(c), 1)
        if num > 0:
            lv = 0
            for n, sign in ((num, 1), (den, -1)):
                for prime, mult in (factorint(n).items() if n != 1 else ()):
                    if prime not in self._logs:
                        self._logs[prime] = self.draw()
                    lv += sign * mult * self._logs[prime]
            out.lv, out.ld = lv % PRIME, 0
        return out

    def log(self, arg: Jet) -> Jet:
        if arg.lv is None:
            raise ValueError("log of a sum")
        return Jet(arg.lv, arg.ld)
