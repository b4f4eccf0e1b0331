"""First-order jets mod p = 2^61 - 1 over a whole batch at once: ``derive.jet`` in numpy uint64 arithmetic.

A ``JetBatch`` holds the four components of ``derive.jet.Jet`` (value, theta-derivative, log value, derivative
of the log; the last three may be None exactly as there) as uint64 arrays of one shape: ``()`` for a value
shared by the batch, ``(T,)`` for one value per trajectory (``derive.grounding_batch``), or a table such as
``(S, A)`` to gather from.  Every element is a residue in {0, ..., p - 1} and every operation is the same
ring operation of F_p[eps]/(eps^2) that ``Jet`` performs, so a batch evaluates to exactly the residues the
scalar jets give at the same point, element by element (``tests/test_derive_grounding_batch.py`` compares
them): the proof stays exact-modular, with the same Schwartz-Zippel bound.

Products of two residues below 2^61 need 122 bits; numpy has no 128-bit integers, so ``mulmod`` splits each
factor into 32-bit halves (a = a1 2^32 + a0, a1 < 2^29), forms the three partial products, each below 2^64,
and folds them with 2^61 = 1 (mod p): 2^64 = 8, and a partial sum m 2^32 = (m >> 29) + (m mod 2^29) 2^32.
Sums of many residues are exact by summing the 32-bit halves separately (``total``, ``group_total``).

>>> a = np.array([2**61 - 2, 3], dtype=np.uint64)
>>> [int(v) for v in mulmod(a, a)]      # (-1)^2 = 1, 3^2 = 9
[1, 9]
"""

from __future__ import annotations

import numpy as np

from derive.jet import PRIME, Jet, SecondDerivative

__all__ = ["JetBatch", "mulmod", "addmod", "negmod", "residues"]

_P = np.uint64(PRIME)
_M32 = np.uint64(2**32 - 1)
_M29 = np.uint64(2**29 - 1)
_U3, _U29, _U32, _U61 = np.uint64(3), np.uint64(29), np.uint64(32), np.uint64(61)
_ZERO = np.uint64(0)


def residues(values) -> np.ndarray:
    """Python ints (any sign or size) reduced mod p, as a uint64 array."""
    return np.array([int(v) % PRIME for v in values], dtype=np.uint64)


def _fold(s):
    """s < 2^64 reduced to {0, ..., p - 1}."""
    s = (s & _P) + (s >> _U61)
    return s - _P * (s >= _P)


def addmod(a, b):
    s = a + b
    return s - _P * (s >= _P)         # (a select would compute the wrapped s - p too, and warn on scalars)


def negmod(a):
    return np.where(a == _ZERO, a, _P - a)


def mulmod(a, b):
    """a b mod p for residues a, b (uint64 arrays, broadcast)."""
    a1, a0, b1, b0 = a >> _U32, a & _M32, b >> _U32, b & _M32
    mid = a1 * b0 + a0 * b1                 # < 2^62
    low = a0 * b0                           # < 2^64
    s = ((a1 * b1) << _U3) + (mid >> _U29) + ((mid & _M29) << _U32) + (low >> _U61) + (low & _P)
    return _fold(s)                         # s < 2^61 + 2^33 + 2^61 + 8 + 2^61 < 2^63


def _sum_last(a):
    """The sum over the last axis mod p, exact: the 32-bit halves are summed separately (no overflow below 2^32
    terms)."""
    hi, lo = (a >> _U32).sum(axis=-1, dtype=np.uint64), (a & _M32).sum(axis=-1, dtype=np.uint64)
    return addmod(mulmod(_fold(hi), np.uint64(2**32)), _fold(lo))


def _sum_groups(a, groups, n):
    """Per group g in 0..n-1, the sum mod p of the entries of ``a`` (shape (T,)) with ``groups == g``."""
    hi, lo = np.zeros(n, dtype=np.uint64), np.zeros(n, dtype=np.uint64)
    np.add.at(hi, groups, a >> _U32)
    np.add.at(lo, groups, a & _M32)
    return addmod(mulmod(_fold(hi), np.uint64(2**32)), _fold(lo))


def _opt(f, *xs):
    return None if any(x is None for x in xs) else f(*xs)


class JetBatch:
    """``derive.jet.Jet``'s (v, d, lv, ld) mod p, each a uint64 array (d None after a derivative, the logs None for
    sums); the same operations, elementwise."""

    __slots__ = ("v", "d", "lv", "ld")

    def __init__(self, v, d=None, lv=None, ld=None):
        self.v, self.d, self.lv, self.ld = v, d, lv, ld

    @classmethod
    def of(cls, x) -> "JetBatch":
        """A JetBatch from a Jet, an int or a rational (shape ())."""
        if isinstance(x, JetBatch):
            return x
        if not isinstance(x, Jet):
            from derive.jet import _lift
            x = _lift(x)
        r = lambda c: None if c is None else np.uint64(int(c) % PRIME)  # noqa: E731
        return cls(r(x.v), r(x.d), r(x.lv), r(x.ld))

    @classmethod
    def stack(cls, jets, shape) -> "JetBatch":
        """The jets (a flat list of ``Jet``) as one batch of the given shape; a component is None when it is None
        for any of them (an operation that needs it then fails, and the caller falls back to the scalar jets)."""
        def comp(name):
            vals = [getattr(j, name) for j in jets]
            return None if any(v is None for v in vals) else residues(vals).reshape(shape)
        return cls(comp("v"), comp("d"), comp("lv"), comp("ld"))

    @property
    def shape(self) -> tuple:
        return np.shape(self.v)

    def is_zero(self) -> bool:
        return not np.any(self.v)

    def __getitem__(self, index) -> "JetBatch":
        g = lambda c: None if c is None else c[index]  # noqa: E731
        return JetBatch(self.v[index], g(self.d), g(self.lv), g(self.ld))

    def __add__(self, other):
        o = JetBatch.of(other)
        return JetBatch(addmod(self.v, o.v), _opt(addmod, self.d, o.d))

    __radd__ = __add__

    def __neg__(self):
        return JetBatch(negmod(self.v), _opt(negmod, self.d))

    def __sub__(self, other):
        return self + (-JetBatch.of(other))

    def __rsub__(self, other):
        return JetBatch.of(other) - self

    def __mul__(self, other):
        o = JetBatch.of(other)
        d = None if self.d is None or o.d is None else addmod(mulmod(self.v, o.d), mulmod(self.d, o.v))
        if self.lv is None or o.lv is None:
            return JetBatch(mulmod(self.v, o.v), d)
        return JetBatch(mulmod(self.v, o.v), d, addmod(self.lv, o.lv), _opt(addmod, self.ld, o.ld))

    __rmul__ = __mul__

    def __pow__(self, n: int):
        if n < 0:
            flat = np.ravel(self.v).tolist()
            if any(v == 0 for v in flat):
                raise ZeroDivisionError("division by a value that is 0 mod p (redraw the point)")
            inv = residues([pow(v, PRIME - 2, PRIME) for v in flat]).reshape(np.shape(self.v))
            base = JetBatch(inv, _opt(lambda d: negmod(mulmod(d, mulmod(inv, inv))), self.d),
                            _opt(negmod, self.lv), _opt(negmod, self.ld))
            return base ** -n
        out = JetBatch(np.uint64(1), _ZERO, _ZERO, _ZERO)
        for _ in range(n):
            out = out * self
        return out

    def derivative(self, atoms=None) -> "JetBatch":
        if self.d is None:
            raise SecondDerivative("a jet carries the first derivative only")
        return JetBatch(self.d, None)

    def total(self) -> "JetBatch":
        """The sum over the last axis (a sum of one term keeps its log, as ``TabularModel.sum`` does)."""
        if self.shape[-1] == 1:
            return self[..., 0]
        return JetBatch(_sum_last(self.v), _opt(_sum_last, self.d))

    def group_total(self, groups: np.ndarray, n: int) -> "JetBatch":
        """Per group, the sum of a (T,) batch's entries in it (``groups``: (T,) ints in 0..n-1)."""
        if n == self.shape[0]:
            raise ValueError("one entry per group: no sum")   # the caller gathers instead
        return JetBatch(_sum_groups(self.v, groups, n), _opt(lambda d: _sum_groups(d, groups, n), self.d))

    def broadcast(self, n: int) -> "JetBatch":
        """A shape-() batch as n equal entries (shape (n,))."""
        b = lambda c: None if c is None else np.broadcast_to(c, (n,))  # noqa: E731
        return JetBatch(b(self.v), b(self.d), b(self.lv), b(self.ld))

    def __repr__(self):
        return f"JetBatch(shape={self.shape})"
