"""Sparse Laurent polynomials with exact rational coefficients: grounding's arithmetic.

Every quantity a grounded step produces is a Laurent polynomial in the MDP's
parameters: p(tau|theta) is a monomial, so grad log p = grad p / p only divides
by monomials.  Keeping expressions in the normal form

    sum_m c_m prod_k atom_k^{e_{m,k}},   c_m in Q, e_{m,k} in Z \\ {0},

makes "lhs - rhs == 0" a dictionary comparison, roughly ten times faster than
``sympy.expand`` on the same expression.  Atoms are SymPy symbols (and logs of
symbols), registered in an ``Atoms`` table that also records each atom's
derivative with respect to theta.

>>> atoms = Atoms()
>>> p = atoms.leaf(Symbol("p"))
>>> ((p + 1) * (p - 1)).to_expr(atoms)
p**2 - 1
"""

from __future__ import annotations

from sympy.external.gmpy import MPQ  # gmpy2's mpq when installed
from sympy import Add, Basic, Integer, Mul, Rational, Symbol, factorint, log  # noqa: F401

__all__ = ["Atoms", "Laurent", "NotLaurent"]

Mono = tuple  # sorted ((atom id, nonzero exponent), ...)


class NotLaurent(ValueError):
    """The result is not a Laurent polynomial (e.g. division by a sum, log of a sum)."""


def _mono_mul(a: Mono, b: Mono) -> Mono:
    if not a:
        return b
    if not b:
        return a
    d = dict(a)
    for k, e in b:
        v = d.get(k, 0) + e
        if v:
            d[k] = v
        else:
            del d[k]
    return tuple(sorted(d.items()))


class Laurent:
    """A sparse Laurent polynomial: {monomial: int or MPQ}, zero coefficients dropped."""

    __slots__ = ("terms",)

    def __init__(self, terms=None):
        self.terms = {m: c for m, c in (terms or {}).items() if c}

    @classmethod
    def const(cls, c) -> "Laurent":
        """The constant c (an int or an MPQ rational: ints keep the common case fast)."""
        out = cls.__new__(cls)
        out.terms = {(): c} if c else {}
        return out

    def is_zero(self) -> bool:
        return not self.terms

    def monomial(self):
        """(coefficient, monomial) if this is a single term, else None."""
        if len(self.terms) == 1:
            (m, c), = self.terms.items()
            return c, m
        return None

    def __add__(self, other):
        return Laurent.sum((self, _lift(other)))

    @staticmethod
    def sum(items) -> "Laurent":
        """The sum of many polynomials in one pass (repeated ``+`` copies quadratically)."""
        out: dict = {}
        for p in items:
            for m, c in _lift(p).terms.items():
                out[m] = out.get(m, 0) + c
        return Laurent(out)

    __radd__ = __add__

    def __neg__(self):
        return Laurent({m: -c for m, c in self.terms.items()})

    def __sub__(self, other):
        return self + (-_lift(other))

    def __rsub__(self, other):
        return _lift(other) - self

    def __mul__(self, other):
        other = _lift(other)
        out: dict = {}
        for m1, c1 in self.terms.items():
            for m2, c2 in other.terms.items():
                m = _mono_mul(m1, m2)
                out[m] = out.get(m, 0) + c1 * c2
        return Laurent(out)

    __rmul__ = __mul__

    def __pow__(self, n: int):
        if n < 0:
            mono = self.monomial()
            if mono is None:
                raise NotLaurent("negative power of a sum")
            c, m = mono
            inv = c if c in (1, -1) else MPQ(1) / MPQ(c) ** -n
            return Laurent({tuple((k, e * n) for k, e in m): inv})
        out = Laurent.const(1)
        for _ in range(n):
            out = out * self
        return out

    def derivative(self, atoms: "Atoms") -> "Laurent":
        """d/dtheta, using each atom's registered derivative (None: constant)."""
        parts = []
        for m, c in self.terms.items():
            for i, (k, e) in enumerate(m):
                dk = atoms.deriv[k]
                if dk is None:
                    continue
                rest = m[:i] + ((k, e - 1),) + m[i + 1:] if e != 1 else m[:i] + m[i + 1:]
                parts.append(Laurent({rest: c * e}) * dk)
        return Laurent.sum(parts)

    def substitute(self, values: dict) -> "Laurent":
        """Replace atoms by Laurent polynomials (or numbers); negative powers need monomials."""
        parts = []
        for m, c in self.terms.items():
            term = Laurent({(): c})
            keep = []
            for k, e in m:
                if k in values:
                    term = term * (_lift(values[k]) ** e)
                else:
                    keep.append((k, e))
            parts.append(term * Laurent({tuple(keep): 1}))
        return Laurent.sum(parts)

    def to_expr(self, atoms: "Atoms") -> Basic:
        return Add(*[Rational(int(c.numerator), int(c.denominator)) *
                     Mul(*[atoms.expr[k] ** e for k, e in m]) for m, c in self.terms.items()])

    def __repr__(self):
        return f"Laurent({len(self.terms)} terms)"


def _lift(v) -> Laurent:
    return v if isinstance(v, Laurent) else Laurent.const(v)


class Atoms:
    """The atoms of a family of Laurent polynomials and their theta-derivatives."""

    def __init__(self):
        self.expr: list[Basic] = []
        self.deriv: list[Laurent | None] = []
        self._index: dict[Basic, int] = {}

    def leaf(self, sym: Basic, deriv: Laurent | None = None) -> Laurent:
        """The polynomial ``sym`` (registered once; ``deriv`` is d sym / d theta)."""
        k = self._index.get(sym)
        if k is None:
            k = self._index[sym] = len(self.expr)
            self.expr.append(sym)
            self.deriv.append(deriv)
        elif deriv is not None:
            self.deriv[k] = deriv
        return Laurent({((k, 1),): 1})

    def id(self, sym: Basic) -> int:
        return self._index[sym]

    def log(self, arg: Laurent) -> Laurent:
        """log of a monomial c prod a_k^e_k = log c + sum_k e_k log a_k (logs of primes for c).

        Raises:
          NotLaurent: for the log of a sum or of a non-positive constant.
        """
        mono = arg.monomial()
        if mono is None:
            raise NotLaurent("log of a sum")
        c, m = mono
        if c <= 0:
            raise NotLaurent(f"log of a non-positive coefficient {c}")
        out = Laurent()
        for num, sign in ((c.numerator, 1), (c.denominator, -1)):
            for prime, mult in (factorint(num).items() if num != 1 else ()):
                out = out + sign * mult * self.leaf(log(Integer(prime)))
        for k, e in m:
            a = self.expr[k]
            dk = self.deriv[k]
            # d log a = da / a
            d = None if dk is None else dk * Laurent({((k, -1),): 1})
            out = out + e * self.leaf(log(a), d)
        return out

