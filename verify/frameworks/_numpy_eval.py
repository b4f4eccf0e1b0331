"""A numpy evaluator of JAX jaxprs: a loss's first check without lowering or XLA compilation.

``numpy_program(closed_jaxpr)`` walks a traced program once (nested jaxprs too) and returns a function of its flat
inputs that evaluates it with numpy, one prepared closure per equation. It implements XLA's semantics dtype for
dtype (integer division truncates, float -> int conversion saturates, gathers and dynamic slices clamp or fill as
their mode says, ...); a primitive, or a parameter of one, that it does not implement exactly raises
``Unsupported`` before anything runs, and the caller compiles with XLA instead. Float results differ from XLA's
only in the round-off of reductions, dot products and transcendental functions (summation order, libm), in
subnormal numbers, which XLA's CPU backend may flush to zero by its compile options (numpy keeps them: |x| below
2.2e-308 in float64, 1.2e-38 in float32), and in the sign of a zero that max and min (and their reductions) pick
between -0.0 and 0.0.

Costs (FrozenLake-v1's REINFORCE loss vmapped over [16, 16, T] batches, ``benchmarks/bench_numpy_eval.py``):
preparing a program takes about 1 ms against XLA's 0.15-0.25 CPU-s of lowering and compilation, but the trace
it starts from (``jax.make_jaxpr``, 20-40 ms) is paid per input shape, as ``jax.jit`` pays it; a call costs
1-3x XLA's compiled call, about half of it page faults of numpy's temporaries at T >= 32 (glibc returns large
freed blocks to the system; ``--keep-heap`` there shows the difference).

JAX is imported lazily (inside functions): the module itself needs numpy only.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["Unsupported", "numpy_program", "symbolic_program"]


class Unsupported(Exception):
    """A primitive (or a parameter value of one) the numpy evaluator does not implement exactly; the message names
    it. Refusing is always safe: the caller compiles with XLA instead."""


def numpy_program(closed_jaxpr, dims: dict | None = None) -> Callable[..., list]:
    """The numpy evaluation of ``closed_jaxpr`` (a ``jax.core.ClosedJaxpr``, e.g. from ``jax.make_jaxpr``).

    Args:
      closed_jaxpr: the traced program; its consts are bound once.
      dims: the values of its symbolic dimensions (a program traced with ``jax.export.symbolic_shape``), by
        name, e.g. ``{"T": 37}``; the program is prepared for those values (``symbolic_program`` infers them).

    Returns:
      ``run(*args) -> list[np.ndarray]``: ``args`` are the program's flat inputs (numpy arrays or Python scalars,
      in ``jaxpr.invars`` order), cast to their avals' dtypes; the outputs have the avals' dtypes and shapes and
      are fresh arrays (never views of an input, as jax's outputs are new buffers).

    Raises:
      Unsupported: an equation (at any depth) is not supported; raised here, before anything runs.
    """
    _DIMS.append(dict(dims or {}))
    try:
        return _Program(closed_jaxpr.jaxpr, closed_jaxpr.consts).run
    finally:
        _DIMS.pop()


def symbolic_program(closed_jaxpr) -> Callable[..., list]:
    """``numpy_program`` of a jaxpr traced with symbolic dimensions (``jax.export.symbolic_shape``), prepared
    for each new set of their values (about a millisecond) instead of traced again per shape (tens of ms): e.g.
    batches padded each to its own longest episode T, traced once with T symbolic.

    Returns:
      ``run(*args)``: as ``numpy_program``'s; each dimension variable is read from the first input dimension
      that is exactly that variable, and every input shape is checked against the values found.

    Raises:
      Unsupported: as ``numpy_program`` (at the first call of a new set of values); a dimension variable that
        no input dimension gives alone.
    """
    invars = closed_jaxpr.jaxpr.invars
    where: dict = {}
    for i, v in enumerate(invars):
        for k, d in enumerate(v.aval.shape):
            name = d._to_var() if hasattr(d, "_to_var") else None
            if name is not None and name not in where:
                where[name] = (i, k)
    programs: dict = {}

    def run(*args):
        shapes = [np.shape(a) for a in args]
        key = tuple((name, shapes[i][k]) for name, (i, k) in where.items())
        if key not in programs:
            programs[key] = numpy_program(closed_jaxpr, dict(key))
        return programs[key](*args)
    return run


# --- the program: a list of prepared closures over a list environment ------------------------------------------------

class _Program:
    __slots__ = ("template", "in_slots", "in_specs", "steps", "out_slots", "run")

    def __init__(self, jaxpr, consts):
        template: list = []
        steps: list = []

        def new(value=None) -> int:
            template.append(value)
            return len(template) - 1

        self.in_slots = [new() for _ in jaxpr.invars]
        self.in_specs = [(np.dtype(v.aval.dtype), _shape(v)) for v in jaxpr.invars]
        self.out_slots = _emit(jaxpr, consts, self.in_slots, new, steps)
        self.template, self.steps = template, steps
        self.run = self._run

    def _run(self, *args) -> list:
        if len(args) != len(self.in_slots):
            raise TypeError(f"the program takes {len(self.in_slots)} inputs, got {len(args)}")
        env = list(self.template)
        for i, a, (dt, shape) in zip(self.in_slots, args, self.in_specs):
            a = np.asarray(a, dtype=dt)
            if a.shape != shape:
                raise ValueError(f"input of shape {a.shape} where the program was traced with {shape}")
            env[i] = a
        with np.errstate(all="ignore"):         # XLA's inf/nan, no warnings
            for fn, ins, out, dt, multi in self.steps:
                if multi:
                    for o, d, r in zip(out, dt, fn(*[env[i] for i in ins])):
                        env[o] = r if r.dtype == d else r.astype(d)
                else:
                    r = fn(*[env[i] for i in ins])
                    env[out] = r if r.dtype == dt else r.astype(dt)
        return [np.array(env[i]) for i in self.out_slots]     # fresh, writable: never a view of an input


_INLINED = {"jit": "jaxpr", "pjit": "jaxpr", "closed_call": "call_jaxpr", "checkpoint": "jaxpr", "remat2": "jaxpr",
            "custom_jvp_call": "call_jaxpr", "custom_vjp_call": "call_jaxpr", "custom_vjp_call_jaxpr": "fun_jaxpr"}


def _emit(jaxpr, consts, in_slots, new, steps) -> list:
    """Append ``jaxpr``'s equations to ``steps`` reading its inputs from ``in_slots`` (``new`` allocates a slot of
    the environment, optionally holding a constant); returns the slots of its outputs. Calls (``jit``,
    ``checkpoint``, custom_jvp/vjp: their primal computation) are inlined, so their equations cost what the
    caller's do; ``scan``, ``while`` and ``cond`` get nested programs."""
    Literal = _literal_type()
    env = dict(zip(jaxpr.invars, in_slots))
    for v, c in zip(jaxpr.constvars, consts):
        env[v] = new(_as_array(c, v.aval.dtype))

    def read(v) -> int:
        if isinstance(v, Literal):
            return new(_as_array(v.val, v.aval.dtype))
        return env[v]

    for eqn in jaxpr.eqns:
        _plain_dtypes(eqn)
        ins = [read(v) for v in eqn.invars]
        inner = eqn.params.get(_INLINED.get(eqn.primitive.name, ""))
        if inner is not None:
            closed_consts = getattr(inner, "consts", ())
            outs = _emit(getattr(inner, "jaxpr", inner), closed_consts, ins, new, steps)
        else:
            fn = _rule(eqn)
            outs = [new() for _ in eqn.outvars]       # a DropVar gets a slot of its own, never read
            dtypes = [np.dtype(v.aval.dtype) for v in eqn.outvars]
            if eqn.primitive.multiple_results:
                steps.append((fn, tuple(ins), tuple(outs), tuple(dtypes), True))
            else:
                steps.append((fn, tuple(ins), outs[0], dtypes[0], False))
        env.update(zip(eqn.outvars, outs))
    return [read(v) for v in jaxpr.outvars]


_DTYPES = frozenset(np.dtype(t) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                                         np.uint32, np.uint64, np.float32, np.float64))


def _plain_dtypes(eqn):
    """Booleans, integers, float32 and float64 only (what the tests compare with XLA): float16, bfloat16, float8,
    complex, PRNG keys... are refused."""
    for v in list(eqn.invars) + list(eqn.outvars):
        dtype = getattr(v.aval, "dtype", None)
        try:
            plain = np.dtype(dtype) in _DTYPES
        except TypeError:           # jax's extended dtypes (PRNG keys) are no numpy dtypes
            plain = False
        if dtype is None or not plain:
            raise Unsupported(f"primitive {eqn.primitive.name} on {dtype}")


def _literal_type():
    """jax's Literal class: from jax's core, loaded with jax (``jax.extend.core``, its public name, costs 15 ms
    of imports the first time)."""
    try:
        from jax._src.core import Literal
    except ImportError:         # a jax that moved it: the public path
        from jax.extend.core import Literal
    return Literal


_DIMS: list = [{}]      # the values of the symbolic dimensions of the program being prepared (a stack)


def _dim(d) -> int:
    """A dimension (or a shape-valued parameter) as an int: a symbolic one (``jax.export.symbolic_shape``)
    evaluated with the values the program is prepared for."""
    if hasattr(d, "_evaluate"):
        try:
            d = d._evaluate(_DIMS[-1])
        except Exception as exc:  # noqa: BLE001 - jax's error for an unbound dimension variable
            raise Unsupported(f"symbolic dimension {d} without a value ({exc})") from exc
    return int(d)


def _shape(v) -> tuple:
    return tuple(_dim(s) for s in v.aval.shape)


def _as_array(value, dtype) -> np.ndarray:
    return np.asarray(value, dtype=np.dtype(dtype))


def _nested(closed) -> Callable:
    """The prepared program of a nested ``ClosedJaxpr`` (or an open ``Jaxpr`` without consts)."""
    if hasattr(closed, "consts"):
        return _Program(closed.jaxpr, closed.consts).run
    return _Program(closed, ()).run


# --- rules: primitive name -> (eqn -> closure) ------------------------------------------------------------------------

_RULES: dict[str, Callable] = {}


def _rule(eqn) -> Callable:
    name = eqn.primitive.name
    make = _RULES.get(name)
    if make is None:
        raise Unsupported(f"primitive {name}")
    return make(eqn, **eqn.params)


def _register(*names):
    def deco(make):
        for n in names:
            _RULES[n] = make
        return make
    return deco


def _no_accuracy(name, accuracy):
    if accuracy is not None:
        raise Unsupported(f"primitive {name} with accuracy={accuracy!r}")


def _out_dtype(eqn, k: int = 0) -> np.dtype:
    return np.dtype(eqn.outvars[k].aval.dtype)


def _in_dtype(eqn, k: int = 0) -> np.dtype:
    return np.dtype(eqn.invars[k].aval.dtype)


def _is_int(dt) -> bool:
    return np.issubdtype(dt, np.integer)


def _is_float(dt) -> bool:
    return np.issubdtype(dt, np.floating)


def _elementwise(table: dict):
    """Rules whose closure is a numpy ufunc (``accuracy`` must be None where the primitive has it)."""
    for name, ufunc in table.items():
        def make(eqn, accuracy=None, _f=ufunc, _n=name, **params):
            _no_accuracy(_n, accuracy)
            if params.get("out_dtype") is not None:
                raise Unsupported(f"primitive {_n} with out_dtype={params['out_dtype']}")
            return _f
        _RULES[name] = make


_elementwise({
    "add": np.add, "add_any": np.add, "sub": np.subtract, "mul": np.multiply, "neg": np.negative,
    "exp": np.exp, "log": np.log, "tanh": np.tanh, "sqrt": np.sqrt, "abs": np.abs, "log1p": np.log1p,
    "expm1": np.expm1, "exp2": np.exp2, "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin,
    "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "asinh": np.arcsinh,
    "acosh": np.arccosh, "atanh": np.arctanh, "atan2": np.arctan2, "cbrt": np.cbrt, "floor": np.floor,
    "ceil": np.ceil, "is_finite": np.isfinite, "nextafter": np.nextafter,
    "max": np.maximum, "min": np.minimum,          # both propagate NaN, as XLA's max and min
    "eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
    "ge": np.greater_equal,
    "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor, "not": np.invert,   # bool: logical
    "square": np.square,
})


@_register("dim_as_value")
def _dim_as_value(eqn, dim, **params):
    value = np.array(_dim(dim), dtype=_out_dtype(eqn))
    return lambda: value


@_register("stop_gradient", "copy", "copy_p", "optimization_barrier")
def _identity(eqn, **params):
    if eqn.primitive.multiple_results:
        return lambda *xs: xs
    return lambda x: x


@_register("div")
def _div(eqn, **params):
    dt = _out_dtype(eqn)
    if not _is_int(dt):
        return np.true_divide
    return _int_div


def _int_div(a, b):
    """XLA's integer division: truncated toward zero; x / 0 = -1; INT_MIN / -1 = INT_MIN (wraps)."""
    a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
    zero = b == 0
    safe = np.where(zero, 1, b).astype(b.dtype)
    if np.issubdtype(a.dtype, np.signedinteger):
        overflow = (a == np.iinfo(a.dtype).min) & (safe == -1)
        safe = np.where(overflow, 1, safe).astype(b.dtype)     # a / 1 = INT_MIN: the wrapped result
        q = np.floor_divide(a, safe)
        q = q + ((np.remainder(a, safe) != 0) & ((a < 0) != (safe < 0))).astype(q.dtype)
    else:
        q = np.floor_divide(a, safe)
    return np.where(zero, np.array(-1).astype(a.dtype), q).astype(a.dtype)


@_register("rem")
def _rem(eqn, **params):
    if not _is_int(_out_dtype(eqn)):
        return np.fmod                       # C fmod: the sign of the dividend, as XLA's rem

    def rem(a, b):
        """XLA's integer remainder: the sign of the dividend; x % 0 = x; INT_MIN % -1 = 0."""
        a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
        zero = b == 0
        safe = np.where(zero, 1, b).astype(b.dtype)
        r = np.fmod(a, safe)                 # numpy's integer fmod truncates (C semantics); a % -1 = 0
        return np.where(zero, a, r).astype(a.dtype)
    return rem


@_register("sign")
def _sign(eqn, **params):
    if _is_int(_out_dtype(eqn)):
        return np.sign

    def sign(x):
        return np.where(x == 0, x, np.sign(x))       # XLA keeps -0.0 (numpy's sign(-0.0) is +0.0)
    return sign


@_register("logistic")
def _logistic(eqn, accuracy=None, **params):
    _no_accuracy("logistic", accuracy)
    one = np.array(1, dtype=_out_dtype(eqn))
    # 1 / (1 + exp(-x)), to round-off (importing scipy.special would cost 0.2 s, as much as XLA's compilation)
    return lambda x: one / (one + np.exp(-x))


@_register("erf")
def _erf(eqn, accuracy=None, **params):
    _no_accuracy("erf", accuracy)
    from scipy.special import erf
    return erf


@_register("lgamma", "digamma", "erf_inv")
def _special(eqn, accuracy=None, **params):
    _no_accuracy(eqn.primitive.name, accuracy)
    from scipy import special
    return {"lgamma": special.gammaln, "digamma": special.digamma, "erf_inv": special.erfinv}[eqn.primitive.name]


@_register("rsqrt")
def _rsqrt(eqn, accuracy=None, **params):
    _no_accuracy("rsqrt", accuracy)
    dt = _out_dtype(eqn)
    one = np.array(1, dtype=dt)
    return lambda x: one / np.sqrt(x)


@_register("round")
def _round(eqn, rounding_method=0, **params):
    if int(rounding_method) == 1:           # TO_NEAREST_EVEN
        return np.rint

    return _round_half_away


def _round_half_away(x):
    """XLA's ROUND_AWAY_FROM_ZERO (x - trunc(x) is exact, so halves are found exactly)."""
    r = np.trunc(x)
    frac = np.abs(x - r)
    return np.where(frac >= 0.5, r + np.sign(x), r).astype(x.dtype)


@_register("pow")
def _pow(eqn, **params):
    dt = _out_dtype(eqn)
    if not _is_float(dt):
        raise Unsupported(f"primitive pow on {dt}")
    # XLA converts an integer exponent to the base's dtype, then calls power
    return lambda x, y: np.power(x, np.asarray(y).astype(dt, copy=False))


@_register("integer_pow")
def _integer_pow(eqn, y, **params):
    dt = _out_dtype(eqn)
    y = int(y)
    if y == 0:
        return lambda x: np.ones(np.shape(x), dtype=dt)
    reciprocal, n = y < 0, abs(y)

    def integer_pow(x):
        # jax's lowering: binary exponentiation by repeated multiplication (not libm's pow), then 1 / acc
        acc, base, k = None, x, n
        while k > 0:
            if k & 1:
                acc = base if acc is None else acc * base
            k >>= 1
            if k > 0:
                base = base * base
        return np.array(1, dtype=dt) / acc if reciprocal else acc
    return integer_pow


@_register("select_n")
def _select_n(eqn, **params):
    n = len(eqn.invars) - 1
    if n == 1:
        return lambda which, a: a
    if _in_dtype(eqn) == np.bool_:
        return lambda which, a, b: np.where(which, b, a)

    def select_n(which, *cases):
        # XLA: an out-of-range case index is undefined; clamped here (select_n is only bound in range)
        return np.choose(np.clip(which, 0, n - 1), cases)
    return select_n


@_register("clamp")
def _clamp(eqn, **params):
    return lambda lo, x, hi: np.minimum(np.maximum(x, lo), hi)


@_register("convert_element_type")
def _convert(eqn, new_dtype, **params):
    src, dst = _in_dtype(eqn), np.dtype(new_dtype)
    if dst == np.bool_:
        return lambda x: np.not_equal(x, 0)
    if _is_float(src) and _is_int(dst):
        info = np.iinfo(dst)
        lo, hi = float(info.min), float(info.max)       # hi rounds up to 2^k in floating point

        def float_to_int(x):
            """XLA: truncation toward zero, saturating at the integer range, NaN -> 0."""
            t = np.trunc(x)
            big, small, nan = t >= hi, t <= lo, np.isnan(t)
            out = np.where(big | small | nan, 0, t).astype(dst)
            if big.any() or small.any() or nan.any():
                out = np.where(big, info.max, np.where(small, info.min, out)).astype(dst)
            return out
        return float_to_int
    return lambda x: np.asarray(x).astype(dst)


# --- shapes ---------------------------------------------------------------------------------------------------------

@_register("broadcast_in_dim")
def _broadcast_in_dim(eqn, shape, broadcast_dimensions, **params):
    if len(eqn.invars) != 1:
        raise Unsupported("primitive broadcast_in_dim with dynamic shapes")
    shape = tuple(_dim(s) for s in shape)
    dims = [int(d) for d in broadcast_dimensions]
    operand_shape = _shape(eqn.invars[0])
    lifted = [1] * len(shape)
    for d, n in zip(dims, operand_shape):
        lifted[d] = n
    lifted = tuple(lifted)
    return lambda x: np.broadcast_to(np.reshape(x, lifted), shape)


@_register("reshape")
def _reshape(eqn, new_sizes, dimensions=None, **params):
    if dimensions is not None:
        raise Unsupported("primitive reshape with dimensions")
    if len(eqn.invars) != 1:
        raise Unsupported("primitive reshape with dynamic shapes")
    new_sizes = tuple(_dim(s) for s in new_sizes)
    return lambda x: np.reshape(x, new_sizes)


@_register("squeeze")
def _squeeze(eqn, dimensions, **params):
    shape = _shape(eqn.outvars[0])
    return lambda x: np.reshape(x, shape)


@_register("transpose")
def _transpose(eqn, permutation, **params):
    perm = tuple(int(p) for p in permutation)
    return lambda x: np.transpose(x, perm)


@_register("rev")
def _rev(eqn, dimensions, **params):
    index = [slice(None)] * len(eqn.invars[0].aval.shape)
    for d in dimensions:
        index[int(d)] = slice(None, None, -1)
    index = tuple(index)
    return lambda x: x[index]


@_register("concatenate")
def _concatenate(eqn, dimension, **params):
    axis = int(dimension)
    return lambda *xs: np.concatenate(xs, axis=axis)


@_register("split")
def _split(eqn, sizes, axis, **params):
    cuts = list(np.cumsum([_dim(s) for s in sizes])[:-1])
    axis = int(axis)
    return lambda x: np.split(x, cuts, axis=axis)


@_register("iota")
def _iota(eqn, dtype, shape, dimension, **params):
    if len(eqn.invars):
        raise Unsupported("primitive iota with dynamic shapes")
    shape, d = tuple(_dim(s) for s in shape), int(dimension)
    lifted = [1] * len(shape)
    lifted[d] = shape[d]
    value = np.broadcast_to(np.arange(shape[d], dtype=np.dtype(dtype)).reshape(lifted), shape)
    return lambda: value


@_register("slice")
def _slice(eqn, start_indices, limit_indices, strides=None, **params):
    strides = strides or (1,) * len(start_indices)
    index = tuple(slice(_dim(a), _dim(b), _dim(s)) for a, b, s in zip(start_indices, limit_indices, strides))
    return lambda x: x[index]


@_register("pad")
def _pad(eqn, padding_config, **params):
    config = [(_dim(lo), _dim(hi), _dim(interior)) for lo, hi, interior in padding_config]
    in_shape = _shape(eqn.invars[0])
    out_shape = _shape(eqn.outvars[0])
    dt = _out_dtype(eqn)
    full_shape, place, crop = [], [], []
    for n, (lo, hi, interior) in zip(in_shape, config):
        inner = n + max(n - 1, 0) * interior
        full_shape.append(max(lo, 0) + inner + max(hi, 0))
        place.append(slice(max(lo, 0), max(lo, 0) + inner, interior + 1))
        crop.append(slice(-min(lo, 0), full_shape[-1] + min(hi, 0)))
    full_shape, place, crop = tuple(full_shape), tuple(place), tuple(crop)

    def pad(x, value):
        out = np.full(full_shape, value, dtype=dt)
        out[place] = x
        out = out[crop]
        assert out.shape == out_shape
        return out
    return pad


def _clamped_starts(operand_shape, sizes):
    hi = [int(n) - int(s) for n, s in zip(operand_shape, sizes)]

    def starts(idx):
        return [min(max(int(i), 0), h) for i, h in zip(idx, hi)]
    return starts


@_register("dynamic_slice")
def _dynamic_slice(eqn, slice_sizes, **params):
    operand_shape = _shape(eqn.invars[0])
    if len(eqn.invars) != 1 + len(operand_shape):
        raise Unsupported("primitive dynamic_slice with dynamic shapes")
    sizes = [_dim(s) for s in slice_sizes]
    starts = _clamped_starts(operand_shape, sizes)

    def dynamic_slice(x, *idx):
        # XLA clamps each start into [0, dim - size]
        return x[tuple(slice(s, s + n) for s, n in zip(starts(idx), sizes))]
    return dynamic_slice


@_register("dynamic_update_slice")
def _dynamic_update_slice(eqn, **params):
    operand_shape = _shape(eqn.invars[0])
    sizes = _shape(eqn.invars[1])
    starts = _clamped_starts(operand_shape, sizes)

    def dynamic_update_slice(x, update, *idx):
        out = np.array(x, copy=True)
        out[tuple(slice(s, s + n) for s, n in zip(starts(idx), sizes))] = update
        return out
    return dynamic_update_slice


# --- reductions -------------------------------------------------------------------------------------------------------

def _axes(axes) -> tuple:
    return tuple(int(a) for a in axes)


def _accumulation(name: str, fn) -> None:
    """reduce_sum / reduce_prod: numpy's ``fn`` accumulating in the output's dtype (never on bool)."""
    def make(eqn, axes, **params):
        axes, dt = _axes(axes), _out_dtype(eqn)
        if dt == np.bool_:
            raise Unsupported(f"primitive {name} on bool")
        return lambda x: fn(x, axis=axes, dtype=dt)
    _RULES[name] = make


_accumulation("reduce_sum", np.sum)
_accumulation("reduce_prod", np.prod)


def _lowest(dt):
    if dt == np.bool_:
        return False
    return -np.inf if _is_float(dt) else np.iinfo(dt).min


def _highest(dt):
    if dt == np.bool_:
        return True
    return np.inf if _is_float(dt) else np.iinfo(dt).max


@_register("reduce_max")
def _reduce_max(eqn, axes, **params):
    axes, dt = _axes(axes), _out_dtype(eqn)
    init = _lowest(dt)        # XLA's identity of max: an empty reduction gives -inf (numpy would raise)
    return _small_axis(eqn, axes, np.maximum) or (lambda x: np.maximum.reduce(x, axis=axes, initial=init))


@_register("reduce_min")
def _reduce_min(eqn, axes, **params):
    axes, dt = _axes(axes), _out_dtype(eqn)
    init = _highest(dt)
    return _small_axis(eqn, axes, np.minimum) or (lambda x: np.minimum.reduce(x, axis=axes, initial=init))


def _small_axis(eqn, axes, ufunc):
    """max/min over one short axis (a softmax's actions) as a chain of elementwise ufunc calls on slices: numpy's
    reduce over a short last axis runs one inner loop per row, 5-10x slower. The same value (max and min are
    exact), NaN propagating as well; None when it does not apply."""
    shape = _shape(eqn.invars[0])
    if len(axes) != 1 or not 2 <= shape[axes[0]] <= 8:
        return None
    parts = [(slice(None),) * axes[0] + (i,) for i in range(shape[axes[0]])]

    def reduce(x):
        acc = ufunc(x[parts[0]], x[parts[1]])
        for p in parts[2:]:
            acc = ufunc(acc, x[p])
        return acc
    return reduce


def _logical(name: str, fn) -> None:
    """reduce_and / reduce_or: numpy's ``fn`` on booleans (XLA's bitwise reductions of integers are refused)."""
    def make(eqn, axes, **params):
        axes = _axes(axes)
        if _out_dtype(eqn) != np.bool_:
            raise Unsupported(f"primitive {name} on integers")
        return lambda x: fn(x, axis=axes)
    _RULES[name] = make


_logical("reduce_and", np.all)
_logical("reduce_or", np.any)


@_register("argmax", "argmin")
def _argmax(eqn, axes, index_dtype, **params):
    (axis,) = _axes(axes)
    if _shape(eqn.invars[0])[axis] == 0:
        raise Unsupported(f"primitive {eqn.primitive.name} over an empty axis")
    pick = np.argmax if eqn.primitive.name == "argmax" else np.argmin
    dt = np.dtype(index_dtype)
    # numpy and jax both return the first NaN, else the first extreme value
    return lambda x: pick(x, axis=axis).astype(dt)


_CUMULATIVE = {"cumsum": np.add, "cumprod": np.multiply, "cummax": np.maximum, "cummin": np.minimum,
               "cumlogsumexp": np.logaddexp}


@_register(*_CUMULATIVE)
def _cumulative(eqn, axis, reverse, **params):
    name, axis, dt = eqn.primitive.name, int(axis), _out_dtype(eqn)
    if name == "cumlogsumexp" and not _is_float(dt):
        raise Unsupported(f"primitive cumlogsumexp on {dt}")
    if dt == np.bool_ and name in ("cumsum", "cumprod"):
        raise Unsupported(f"primitive {name} on bool")
    ufunc = _CUMULATIVE[name]
    flip = [slice(None)] * len(eqn.invars[0].aval.shape)
    flip[axis] = slice(None, None, -1)
    flip = tuple(flip)
    if reverse:
        return lambda x: ufunc.accumulate(x[flip], axis=axis, dtype=dt)[flip]
    return lambda x: ufunc.accumulate(x, axis=axis, dtype=dt)


# --- dot_general ----------------------------------------------------------------------------------------------------

@_register("dot_general")
def _dot_general(eqn, dimension_numbers, preferred_element_type=None, precision=None, **params):
    (lc, rc), (lb, rb) = [[tuple(int(d) for d in ds) for ds in pair] for pair in dimension_numbers]
    ls, rs = _shape(eqn.invars[0]), _shape(eqn.invars[1])
    dt = _out_dtype(eqn)
    if dt == np.bool_:
        raise Unsupported("primitive dot_general on bool")
    lf = [d for d in range(len(ls)) if d not in lc and d not in lb]
    rf = [d for d in range(len(rs)) if d not in rc and d not in rb]
    B = int(np.prod([ls[d] for d in lb], dtype=np.int64))
    M = int(np.prod([ls[d] for d in lf], dtype=np.int64))
    K = int(np.prod([ls[d] for d in lc], dtype=np.int64))
    N = int(np.prod([rs[d] for d in rf], dtype=np.int64))
    lperm, rperm = tuple(lb) + tuple(lf) + tuple(lc), tuple(rb) + tuple(rc) + tuple(rf)
    out_shape = tuple(ls[d] for d in lb) + tuple(ls[d] for d in lf) + tuple(rs[d] for d in rf)
    lid, rid = lperm == tuple(range(len(ls))), rperm == tuple(range(len(rs)))

    def operands(x, y):
        x = np.asarray(x).astype(dt, copy=False)
        y = np.asarray(y).astype(dt, copy=False)
        return (x if lid else np.transpose(x, lperm)), (y if rid else np.transpose(y, rperm))

    if B == 1:
        def dot(x, y):
            x, y = operands(x, y)
            return np.matmul(np.reshape(x, (M, K)), np.reshape(y, (K, N))).reshape(out_shape)
    else:
        def dot(x, y):
            x, y = operands(x, y)
            return np.matmul(np.reshape(x, (B, M, K)), np.reshape(y, (B, K, N))).reshape(out_shape)
    return dot


# --- gather and scatter-add -------------------------------------------------------------------------------------------

def _mode(name, mode) -> str:
    label = getattr(mode, "name", str(mode))
    if label not in ("CLIP", "FILL_OR_DROP", "PROMISE_IN_BOUNDS"):
        raise Unsupported(f"{name} mode {label}")
    return label


def _window_index(operand_shape, batch_shape, out_rank, offset_dims, window_sizes, window_operand_dims, batching,
                  index_batching):
    """XLA's gather/scatter layout in an output (gather) / updates (scatter) array of rank ``out_rank``: returns
    ``lift``, the shape that puts a batch-shaped array at the output's batch positions, and per operand dimension
    its static index part laid out in the output (the window iota of a window dimension, the batch position of
    an operand batching dimension, None otherwise: the start from the index vector, or 0)."""
    batch_positions = [p for p in range(out_rank) if p not in offset_dims]
    lift = [1] * out_rank
    for p, n in zip(batch_positions, batch_shape):
        lift[p] = n
    lift = tuple(lift)
    statics = []
    for d in range(len(operand_shape)):
        static = None
        if d in window_operand_dims:
            j = window_operand_dims.index(d)
            shape = [1] * out_rank
            shape[offset_dims[j]] = window_sizes[j]
            static = np.arange(window_sizes[j]).reshape(shape)
        if d in batching:
            j = index_batching[batching.index(d)]
            shape = [1] * out_rank
            shape[batch_positions[j]] = batch_shape[j]
            static = np.arange(batch_shape[j]).reshape(shape)
        statics.append(static)
    return lift, statics


def _gather_layout(eqn, dnums, operand_shape, indices_shape, window_of, out_rank, offset_dims):
    batch_shape = tuple(indices_shape[:-1])
    index_map = [int(d) for d in dnums[2]]
    batching = [int(d) for d in dnums[3]]
    index_batching = [int(d) for d in dnums[4]]
    collapsed = [int(d) for d in dnums[1]]
    window_operand_dims = [d for d in range(len(operand_shape)) if d not in collapsed and d not in batching]
    window_sizes = [window_of(d) for d in window_operand_dims]
    lift, statics = _window_index(operand_shape, batch_shape, out_rank, offset_dims, window_sizes,
                                  window_operand_dims, batching, index_batching)
    upper = [int(operand_shape[d]) - (window_of(d) if d in window_operand_dims else 1) for d in index_map]
    return lift, statics, index_map, np.array(upper, dtype=np.int64)


def _flat_index(operand_shape, lift, statics, index_map):
    """``flat(starts)``: the flat (C order) operand index of every output (gather) / update (scatter) element: the
    static part (window iotas, batch positions) summed once, the starts from the index vector added per call."""
    strides = [int(np.prod(operand_shape[d + 1:], dtype=np.int64)) for d in range(len(operand_shape))]
    static = np.zeros((), dtype=np.int64)
    for d, part in enumerate(statics):
        if part is not None:
            static = static + part * strides[d]
    weights = [strides[d] for d in index_map]

    def flat(starts):
        offset = starts[..., 0] * weights[0] if weights else np.zeros(starts.shape[:-1], dtype=np.int64)
        for k in range(1, len(weights)):
            offset = offset + starts[..., k] * weights[k]
        return static + np.reshape(offset, lift)
    return flat


@_register("gather")
def _gather(eqn, dimension_numbers, slice_sizes, mode, fill_value=None, **params):
    mode = _mode("gather", mode)
    dn = dimension_numbers
    operand_shape = _shape(eqn.invars[0])
    indices_shape = _shape(eqn.invars[1])
    out_shape = _shape(eqn.outvars[0])
    offset_dims = [int(d) for d in dn.offset_dims]
    sizes = [_dim(s) for s in slice_sizes]
    dnums = (dn.offset_dims, dn.collapsed_slice_dims, dn.start_index_map, dn.operand_batching_dims,
             dn.start_indices_batching_dims)
    lift, statics, index_map, upper = _gather_layout(eqn, dnums, operand_shape, indices_shape,
                                                     lambda d: sizes[d], len(out_shape), offset_dims)
    dt = _out_dtype(eqn)
    if fill_value is None:
        fill_value = (np.nan if _is_float(dt) else True if dt == np.bool_ else
                      np.iinfo(dt).min if np.issubdtype(dt, np.signedinteger) else np.iinfo(dt).max)
    fill = np.array(fill_value, dtype=dt)
    flat = _flat_index(operand_shape, lift, statics, index_map)

    def gather(operand, indices):
        starts = np.asarray(indices).astype(np.int64)
        # every mode gathers at the start clamped into [0, dim - slice size] (CLIP, PROMISE_IN_BOUNDS: as XLA);
        # FILL_OR_DROP then fills the windows whose start was out of range (as jax's _gather_fill)
        out = np.broadcast_to(np.take(np.ravel(operand), flat(np.clip(starts, 0, upper))), out_shape)
        if mode == "FILL_OR_DROP":
            ok = np.all((starts >= 0) & (starts <= upper), axis=-1)
            if not ok.all():
                return np.where(np.reshape(ok, lift), out, fill)
        return out
    return gather


@_register("scatter-add", "scatter_add")
def _scatter_add(eqn, dimension_numbers, mode, update_jaxpr=None, update_consts=(), **params):
    mode = _mode("scatter-add", mode)
    dn = dimension_numbers
    operand_shape = _shape(eqn.invars[0])
    indices_shape = _shape(eqn.invars[1])
    updates_shape = _shape(eqn.invars[2])
    window_dims = [int(d) for d in dn.update_window_dims]
    inserted, batching = [int(d) for d in dn.inserted_window_dims], [int(d) for d in dn.operand_batching_dims]
    window_operand_dims = [d for d in range(len(operand_shape)) if d not in inserted and d not in batching]
    window_size = dict(zip(window_operand_dims, (updates_shape[p] for p in window_dims)))
    dnums = (window_dims, dn.inserted_window_dims, dn.scatter_dims_to_operand_dims, dn.operand_batching_dims,
             dn.scatter_indices_batching_dims)
    lift, statics, index_map, upper = _gather_layout(eqn, dnums, operand_shape, indices_shape,
                                                     lambda d: window_size[d], len(updates_shape), window_dims)
    dt = _out_dtype(eqn)
    size = int(np.prod(operand_shape, dtype=np.int64))
    flat_index = _flat_index(operand_shape, lift, statics, index_map)

    def scatter_add(operand, indices, updates):
        starts = np.asarray(indices).astype(np.int64)
        keep = None
        if mode != "CLIP":      # FILL_OR_DROP and PROMISE_IN_BOUNDS: XLA skips a window not wholly in bounds
            ok = np.all((starts >= 0) & (starts <= upper), axis=-1)
            if not ok.all():
                keep = np.broadcast_to(np.reshape(ok, lift), updates_shape)
        flat = np.broadcast_to(flat_index(np.clip(starts, 0, upper)), updates_shape)
        updates = np.broadcast_to(updates, updates_shape)
        if keep is not None:
            flat, updates = flat[keep], updates[keep]
        flat, updates = np.ravel(flat), np.ravel(updates)
        if dt == np.float64:
            added = np.bincount(flat, weights=updates, minlength=size).reshape(operand_shape)
            return np.add(operand, added)
        out = np.array(operand, dtype=dt, copy=True)
        np.add.at(out.reshape(-1), flat, updates.astype(dt))
        return out
    if update_jaxpr is not None:
        eqns = list(update_jaxpr.eqns)
        if len(eqns) != 1 or eqns[0].primitive.name not in ("add", "add_any"):
            raise Unsupported("scatter-add with a custom update computation")
    return scatter_add


# --- control flow and calls -------------------------------------------------------------------------------------------

@_register("scan")
def _scan(eqn, jaxpr, num_consts, num_carry, length, reverse, **params):
    body = _nested(jaxpr)
    nc, nk, n = int(num_consts), int(num_carry), _dim(length)
    ys_specs = [(_shape(v), np.dtype(v.aval.dtype)) for v in eqn.outvars[nk:]]
    order = range(n - 1, -1, -1) if reverse else range(n)

    def scan(*args):
        consts, carry, xs = list(args[:nc]), list(args[nc:nc + nk]), args[nc + nk:]
        ys = [np.empty(shape, dtype=dt) for shape, dt in ys_specs]
        for t in order:
            out = body(*consts, *carry, *[x[t] for x in xs])
            carry = out[:nk]
            for y, v in zip(ys, out[nk:]):
                y[t] = v
        return carry + ys
    return scan


@_register("while")
def _while(eqn, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts, **params):
    cond, body = _nested(cond_jaxpr), _nested(body_jaxpr)
    nc, nb = int(cond_nconsts), int(body_nconsts)

    def while_loop(*args):
        cconsts, bconsts, carry = args[:nc], args[nc:nc + nb], list(args[nc + nb:])
        while bool(cond(*cconsts, *carry)[0]):
            carry = body(*bconsts, *carry)
        return carry
    return while_loop


@_register("cond")
def _cond(eqn, branches, **params):
    programs = [_nested(b) for b in branches]
    last = len(programs) - 1

    def cond(index, *args):
        i = int(index)
        return programs[i if 0 <= i <= last else last](*args)     # XLA: out of range runs the last branch
    return cond
