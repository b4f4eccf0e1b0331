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

__all__ = ["JetBatch", "FloatJetBatch", "mulmod", "addmod", "negmod", "residues"]

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

    @property
    def per_trajectory(self) -> bool:
        return self.shape != ()

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

    def logarithm(self) -> "JetBatch":
        """log of a monomial: its log value with the log's derivative (``derive.jet.JetAtoms.log``)."""
        return JetBatch(self.lv, self.ld)

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


def _pad(x, ndim):
    """x with trailing axes of length 1 up to ``ndim`` (the leading axis is the batch's, the rest a value's own)."""
    return x if x.ndim >= ndim else x.reshape(x.shape + (1,) * (ndim - x.ndim))


def _mul(x, y):
    nd = max(x.ndim, y.ndim)
    return _pad(x, nd) * _pad(y, nd)


def _plus(x, y):
    nd = max(x.ndim, y.ndim)
    return _pad(x, nd) + _pad(y, nd)


def _seq_sum(x, groups=None, n=None):
    """The sum over the leading axis in order, (((0 + x_0) + x_1) + ...), as Python's ``sum(parts, zero)``; per
    group (``groups``: the leading index's group) in the same order."""
    if groups is None:
        return np.cumsum(np.concatenate([np.zeros_like(x[:1]), x]), axis=0)[-1:]
    out = np.zeros((n,) + x.shape[1:], dtype=x.dtype)
    np.add.at(out, groups, x)        # unbuffered, in index order
    return out


class FloatJetBatch:
    """The numeric half's jets (``verify.app.derivation_numeric.NumJet``: a float, its gradient vector, and the
    log's) for a batch: every component has a leading axis, the batch's (T, ``tr``) or 1 (shared by the batch),
    then the value's own axes (a gradient: (n,)).  The operations are NumJet's, term by term in its order, so the
    values are the scalar interpreter's (sums over the batch are taken in trajectory order, as it takes them)."""

    __slots__ = ("v", "d", "lv", "ld", "tr")

    def __init__(self, v, d=None, lv=None, ld=None, tr=False):
        self.v, self.d, self.lv, self.ld, self.tr = v, d, lv, ld, tr

    @staticmethod
    def _arr(c):
        return None if c is None else np.asarray(c, dtype=float)[None]

    @classmethod
    def of(cls, x) -> "FloatJetBatch":
        """A shared batch from a NumJet (anything with v, d, lv, ld) or a number."""
        if isinstance(x, FloatJetBatch):
            return x
        if not hasattr(x, "v"):
            return cls(cls._arr(float(x)), cls._arr(0.0))
        return cls(cls._arr(x.v), cls._arr(x.d), cls._arr(x.lv), cls._arr(x.ld))

    @classmethod
    def stack(cls, jets, shape) -> "FloatJetBatch":
        """A table of the given shape (its leading axes; entries' own axes follow). A component None for every
        entry is None; None for some only is NaN there (an entry no batch gathers: a probability-0 cell, whose
        log does not exist)."""
        def comp(name):
            vals = [getattr(j, name) for j in jets]
            if all(v is None for v in vals):
                return None
            arrs = [np.asarray(np.nan if v is None else v, dtype=float) for v in vals]
            own = np.broadcast_shapes(*(a.shape for a in arrs))
            return np.stack([np.broadcast_to(a, own) for a in arrs]).reshape(tuple(shape) + own)
        return cls(comp("v"), comp("d"), comp("lv"), comp("ld"))

    @property
    def per_trajectory(self) -> bool:
        return self.tr

    def is_zero(self) -> bool:
        return not np.any(self.v) and (self.d is None or not np.any(self.d))

    def __getitem__(self, index) -> "FloatJetBatch":
        g = lambda c: None if c is None else c[index]  # noqa: E731
        return FloatJetBatch(self.v[index], g(self.d), g(self.lv), g(self.ld), tr=True)

    def __add__(self, other):
        o = FloatJetBatch.of(other)
        return FloatJetBatch(_plus(self.v, o.v), None if self.d is None or o.d is None else _plus(self.d, o.d),
                             tr=self.tr or o.tr)

    __radd__ = __add__

    def __neg__(self):
        return FloatJetBatch(-self.v, None if self.d is None else -self.d, tr=self.tr)

    def __sub__(self, other):
        return self + (-FloatJetBatch.of(other))

    def __rsub__(self, other):
        return FloatJetBatch.of(other) - self

    def __mul__(self, other):
        o = FloatJetBatch.of(other)
        tr = self.tr or o.tr
        d = None if self.d is None or o.d is None else _plus(_mul(self.v, o.d), _mul(self.d, o.v))
        if self.lv is None or o.lv is None:
            return FloatJetBatch(_mul(self.v, o.v), d, tr=tr)
        ld = None if self.ld is None or o.ld is None else _plus(self.ld, o.ld)
        return FloatJetBatch(_mul(self.v, o.v), d, _plus(self.lv, o.lv), ld, tr=tr)

    __rmul__ = __mul__

    def __pow__(self, n: int):
        if n < 0:
            if not np.all(self.v):
                raise ZeroDivisionError("float division by zero")
            inv = 1 / self.v
            base = FloatJetBatch(inv, None if self.d is None else _mul(_mul(-self.d, inv), inv),
                                 None if self.lv is None else -self.lv, None if self.ld is None else -self.ld,
                                 tr=self.tr)
            return base ** -n
        out = FloatJetBatch(*(self._arr(c) for c in (1.0, 0.0, 0.0, 0.0)))
        for _ in range(n):
            out = out * self
        return out

    def derivative(self, atoms=None) -> "FloatJetBatch":
        if self.d is None:
            raise ValueError("second derivative: a jet carries the first derivative only")
        return FloatJetBatch(self.d, None, tr=self.tr)

    def logarithm(self) -> "FloatJetBatch":
        return FloatJetBatch(self.lv, self.ld, tr=self.tr)

    def total(self) -> "FloatJetBatch":
        """The sum over the batch, in order (one entry keeps its log, as ``sum`` of one part does)."""
        if self.v.shape[0] == 1:
            return FloatJetBatch(self.v, self.d, self.lv, self.ld)
        return FloatJetBatch(_seq_sum(self.v), None if self.d is None else _seq_sum(self.d))

    def group_total(self, groups: np.ndarray, n: int) -> "FloatJetBatch":
        if n == self.v.shape[0]:
            raise ValueError("one entry per group: no sum")
        return FloatJetBatch(_seq_sum(self.v, groups, n), None if self.d is None else _seq_sum(self.d, groups, n),
                             tr=True)

    def with_entries(self, positions, jets) -> "FloatJetBatch":
        """A per-trajectory batch with the entries at ``positions`` replaced by the scalar ``jets`` (a component
        some jet lacks is dropped from the batch: using it then fails, and the caller falls back)."""
        comps = []
        for name in ("v", "d", "lv", "ld"):
            c = getattr(self, name)
            vals = [getattr(j, name) for j in jets]
            if c is None or any(v is None for v in vals):
                comps.append(None)
                continue
            c = np.array(c, dtype=float)                  # a copy: batches are shared through the memo
            for i, v in zip(positions, vals):
                c[i] = v
            comps.append(c)
        return FloatJetBatch(*comps, tr=True)

    def broadcast(self, n: int) -> "FloatJetBatch":
        b = lambda c: None if c is None else np.broadcast_to(c, (n,) + c.shape[1:])  # noqa: E731
        return FloatJetBatch(b(self.v), b(self.d), b(self.lv), b(self.ld), tr=True)

    def __repr__(self):
        return f"FloatJetBatch(v.shape={self.v.shape}, per_trajectory={self.tr})"
