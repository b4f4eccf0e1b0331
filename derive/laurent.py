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

__all__ = ["Atoms", "Laurent", "NotLaurent", "mono_items", "mono", "MAX_EXPONENT"]

# A monomial prod_k atom_k^e_k is the int sum_k e_k 2^(16 k) (one signed 16-bit field per atom id k): the
# encoding is linear, so the product of two monomials is the sum of their ints (one big-int addition instead
# of merging sorted exponent tuples, which was half of a symbolic grounding's time), and it is injective while
# every |e_k| < 2^15 = MAX_EXPONENT.  An exponent is at most the degree of the polynomial it is a term of;
# ``derive.grounding.TabularModel`` refuses a symbolic model whose degree bound reaches MAX_EXPONENT / 4, and
# a negative power is checked here.
Mono = int
_FIELD = 16
_MASK, _HALF = (1 << _FIELD) - 1, 1 << (_FIELD - 1)
MAX_EXPONENT = _HALF


def mono(pairs) -> Mono:
    """The monomial prod_k atom_k^e_k of ((k, e_k), ...)."""
    return sum(e << (_FIELD * k) for k, e in pairs)


def mono_items(m: Mono) -> list:
    """((atom id, nonzero exponent), ...) of a monomial, in increasing atom id."""
    out, k = [], 0
    while m:
        skip = ((m & -m).bit_length() - 1) // _FIELD     # whole fields of zeros below the lowest set bit
        if skip:
            m >>= _FIELD * skip
            k += skip
        e = m & _MASK
        if e >= _HALF:
            e -= 1 << _FIELD
        if e:
            out.append((k, e))
        m = (m - e) >> _FIELD
        k += 1
    return out


class NotLaurent(ValueError):
    """The result is not a Laurent polynomial (e.g. division by a sum, log of a sum)."""


class Laurent:
    """A sparse Laurent polynomial: {monomial: int or MPQ}, zero coefficients dropped.

    ``Laurent(terms)`` takes the dictionary over (it is not copied unless a coefficient is 0): pass a new one.
    """

    __slots__ = ("terms",)

    def __init__(self, terms=None):
        terms = terms or {}
        # Most sums and products cancel nothing: the dictionary is kept as it is unless a coefficient is 0.
        self.terms = terms if all(terms.values()) else {m: c for m, c in terms.items() if c}

    @classmethod
    def const(cls, c) -> "Laurent":
        """The constant c (an int or an MPQ rational: ints keep the common case fast)."""
        out = cls.__new__(cls)
        out.terms = {0: c} if c else {}
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
        get = out.get
        for p in items:
            for m, c in _lift(p).terms.items():
                out[m] = get(m, 0) + c
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
        a, b = self.terms, other.terms
        if len(a) == 1 or len(b) == 1:
            # times a monomial: adding a fixed monomial is injective and c1 c2 != 0, so no merging, no zeros
            (m1, c1), = (a if len(a) == 1 else b).items()
            rest = b if len(a) == 1 else a
            out = Laurent.__new__(Laurent)
            out.terms = ({m1 + m2: c2 for m2, c2 in rest.items()} if c1 == 1 else
                         {m1 + m2: c1 * c2 for m2, c2 in rest.items()})
            return out
        out: dict = {}
        get = out.get
        for m1, c1 in a.items():
            for m2, c2 in b.items():
                m = m1 + m2
                out[m] = get(m, 0) + c1 * c2
        return Laurent(out)

    __rmul__ = __mul__

    def __pow__(self, n: int):
        if n < 0:
            mono = self.monomial()
            if mono is None:
                raise NotLaurent("negative power of a sum")
            c, m = mono
            if any(abs(e * n) >= MAX_EXPONENT for _, e in mono_items(m)):
                raise OverflowError(f"an exponent beyond the monomial encoding's {MAX_EXPONENT}")
            inv = c if c in (1, -1) else MPQ(1) / MPQ(c) ** -n
            return Laurent({m * n: inv})
        if n == 0:
            return Laurent.const(1)
        out = self
        for _ in range(n - 1):
            out = out * self
        return out

    def derivative(self, atoms: "Atoms") -> "Laurent":
        """d/dtheta, using each atom's registered derivative (None: constant)."""
        parts = []
        for m, c in self.terms.items():
            for k, e in mono_items(m):
                dk = atoms.deriv[k]
                if dk is None:
                    continue
                parts.append(Laurent({m - (1 << (_FIELD * k)): c * e}) * dk)
        return Laurent.sum(parts)

    def substitute(self, values: dict) -> "Laurent":
        """Replace atoms by Laurent polynomials (or numbers); negative powers need monomials."""
        # Terms are grouped by the powers of the replaced atoms they carry: each group's product of powers is
        # expanded once and multiplies the sum of the group's remaining monomials (a residual of thousands of
        # terms has a few dozen such groups).
        groups: dict = {}
        for m, c in self.terms.items():
            replaced = tuple((k, e) for k, e in mono_items(m) if k in values)
            rest = m - mono(replaced)                # the encoding is linear: drop the replaced atoms' fields
            group = groups.setdefault(replaced, {})
            group[rest] = group.get(rest, 0) + c
        parts = []
        for replaced, rest in groups.items():
            factor = Laurent.const(1)
            for k, e in replaced:
                factor = factor * (_lift(values[k]) ** e)
            parts.append(factor * Laurent(rest))
        return Laurent.sum(parts)

    def to_expr(self, atoms: "Atoms") -> Basic:
        return Add(*[Rational(int(c.numerator), int(c.denominator)) *
                     Mul(*[atoms.expr[k] ** e for k, e in mono_items(m)]) for m, c in self.terms.items()])

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
        return Laurent({1 << (_FIELD * k): 1})

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
        for k, e in mono_items(m):
            a = self.expr[k]
            dk = self.deriv[k]
            # d log a = da / a
            d = None if dk is None else dk * Laurent({-(1 << (_FIELD * k)): 1})
            out = out + e * self.leaf(log(a), d)
        return out

