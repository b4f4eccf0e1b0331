"""Grounding: prove each step on every trajectory of a finite tabular MDP.

An abstract step is interpreted on an MDP with S states, A actions and horizon
H, where trajectories are tau = (s_0, a_0, ..., s_{H-1}, a_{H-1}, s_H) and

    p(tau|theta) = rho_0(s_0) prod_{t=0}^{H-1} pi_{s_t,a_t}(theta) P(s_{t+1}|s_t,a_t),
    R(tau) = sum_{t=0}^{H-1} gamma^t r(s_t, a_t, s_{t+1}),
    E_tau[g] = sum_tau p(tau|theta) g(tau),   int dx g = sum_tau g(tau),

with symbolic rho_0, P, r, b, gamma, a symbol f_tau per trajectory for the
generic f(x), and undefined functions pi_{s,a}(theta).  Where a rule needs
normalisation the last action's probability is 1 - sum of the others (and
likewise for P).  A step is proved when

    symbolic:  expand(lhs - rhs) == 0 with every symbol free, or
    random:    lhs - rhs == 0 exactly at N random rational points (Schwartz-Zippel:
               a nonzero residual of degree <= D vanishes at a point drawn from a set
               of size M with probability <= D/M, so all N miss it w.p. <= (D/M)^N).

Steps (9)-(13) have a free tau: they are checked for every trajectory separately.

>>> from derive.seed import SEED
>>> ground_step(SEED.step(4), (2, 2, 1)).ok
True
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass
from fractions import Fraction

from sympy import (
    Add, Basic, Integer, Mul, Product, Rational, Sum, Symbol,
    UnevaluatedExpr, Pow, expand, expand_log, factorint, log, numer, together,
)
from sympy.core.relational import Equality

from derive.notation import (
    Baseline, Density, Expectation, Grad, InitialDist, Integrate, Policy, Return, Reward,
    TestFn, Transition, H, gamma, tau, theta, x,
)
from derive.steps import Derivation, Step

__all__ = ["Sizes", "TabularModel", "GroundingResult", "ground", "ground_step",
           "ground_derivation", "ground_value", "canonical", "derivative", "DEFAULT_POINTS", "SAMPLE_SET_SIZE"]

DEFAULT_POINTS = 3
SAMPLE_SET_SIZE = 2**31  # M: numerators drawn uniformly from 1..M


@dataclass(frozen=True)
class Sizes:
    """(S, A, H): numbers of states and actions, and the horizon."""

    S: int
    A: int
    H: int

    def __post_init__(self):
        for name in ("S", "A", "H"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Sizes.{name} must be a positive int, got {v!r}")

    @classmethod
    def of(cls, sizes) -> "Sizes":
        return sizes if isinstance(sizes, Sizes) else cls(*sizes)

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.S, self.A, self.H)

    def degree_bound(self) -> int:
        """D: a bound on the degree of a cleared residual (p, R, f and 1/pi factors)."""
        return 3 * self.H + 3 + self.S * self.A * self.H


class TabularModel:
    """The symbols (or rational values) of one tabular MDP, and its trajectories.

    Args:
      sizes: (S, A, H).
      normalise: impose sum_a pi_{s,a} = 1 and sum_{s'} P(s'|s,a) = 1.
      rng: if given, every parameter is a random rational instead of a symbol.
    """

    def __init__(self, sizes, normalise: bool = False, rng: random.Random | None = None):
        self.sizes = Sizes.of(sizes)
        S, A, n = self.sizes.as_tuple()
        self.normalise, self.rng = normalise, rng
        self.H = Integer(n)
        self.gamma = self._value("gamma", positive=True)
        self.rho = [self._value(f"rho0_{s}", positive=True) for s in range(S)]
        self.b = [self._value(f"b_{s}") for s in range(S)]
        self.r = {(s, a, s2): self._value(f"r_{s}{a}{s2}")
                  for s in range(S) for a in range(A) for s2 in range(S)}
        self.P = {(s, a, s2): self._value(f"P_{s}{a}_{s2}", positive=True, upper=Fraction(1, S))
                  for s in range(S) for a in range(A) for s2 in range(S)}
        # pi_{s,a}(theta) is a symbol whose theta-derivative is the symbol dpi_{s,a}:
        # ``derivative`` below differentiates much faster than sympy.diff on Function(theta)
        self.pi, self.dmap = {}, {}
        for s, a in itertools.product(range(S), range(A)):
            self.pi[s, a] = Symbol(f"pi_{s}{a}", positive=True)
            self.dmap[self.pi[s, a]] = Symbol(f"dpi_{s}{a}", real=True)
        # the values substituted after grounding (random mode only)
        self.jet = {} if rng is None else {
            sym: self._value("", positive=True, signed=(k == 1), upper=Fraction(1, A))
            for pair in zip(self.dmap, self.dmap.values()) for k, sym in enumerate(pair)}
        # Symbolically the normalised last entry stays a symbol until after the first
        # expand: substituting 1 - sum first lets expand split (1 - p) before 1/(1 - p) cancels.
        self.post = {}
        if normalise:
            for s in range(S):
                last, others = self.pi[s, A - 1], [self.pi[s, a] for a in range(A - 1)]
                self.dmap[last] = -Add(*[self.dmap[o] for o in others])
                if rng is None:
                    self.post[last] = 1 - Add(*others)
                else:
                    self.jet[last] = 1 - Add(*[self.jet[o] for o in others])
                for a in range(A):
                    rest = 1 - Add(*[self.P[s, a, s2] for s2 in range(S - 1)])
                    if rng is None:
                        self.post[self.P[s, a, S - 1]] = rest
                    else:
                        self.P[s, a, S - 1] = rest
        self.trajectories = [
            (states, actions)
            for states in itertools.product(range(S), repeat=n + 1)
            for actions in itertools.product(range(A), repeat=n)]
        self._prob, self._f = {}, {}

    def _value(self, name, positive=False, signed=False, upper=Fraction(1)):
        if self.rng is None:
            return Symbol(name, positive=True) if positive else Symbol(name, real=True)
        k = self.rng.randint(1, SAMPLE_SET_SIZE - 1)
        v = upper * Fraction(k, SAMPLE_SET_SIZE)
        if signed and self.rng.random() < 0.5:
            v = -v
        return Rational(v.numerator, v.denominator)

    def prob(self, traj) -> Basic:
        """p(tau|theta) with rho_0: the product of 2H + 1 factors."""
        if traj not in self._prob:
            states, actions = traj
            self._prob[traj] = self.rho[states[0]] * Mul(*[
                self.pi[states[k], actions[k]] * self.P[states[k], actions[k], states[k + 1]]
                for k in range(len(actions))])
        return self._prob[traj]

    def f(self, traj) -> Basic:
        """f(tau): an independent symbol (or rational) per trajectory."""
        if traj not in self._f:
            self._f[traj] = self._value(f"f_{len(self._f)}")
        return self._f[traj]

    def reward(self, traj, k: int) -> Basic:
        states, actions = traj
        return self.r[states[k], actions[k], states[k + 1]]

    def ret(self, traj) -> Basic:
        return Add(*[self.gamma**k * self.reward(traj, k) for k in range(len(traj[1]))])


def derivative(e: Basic, dmap: dict) -> Basic:
    """d e / d theta for e built from +, *, numeric powers and log of symbols.

    Args:
      e: a grounded expression.
      dmap: each theta-dependent symbol's derivative; other symbols are constants.

    >>> p, dp = Symbol("p"), Symbol("dp")
    >>> derivative(3 * p**2 + log(p), {p: dp})
    6*dp*p + dp/p
    """
    if e.is_Symbol:
        return dmap.get(e, Integer(0))
    if e.is_Number:
        return Integer(0)
    if e.is_Add:
        return Add(*[derivative(a, dmap) for a in e.args])
    if e.is_Mul:
        args, terms = e.args, []
        for i, a in enumerate(args):
            da = derivative(a, dmap)
            if da != 0:
                terms.append(Mul(*args[:i], da, *args[i + 1:]))
        return Add(*terms)
    if e.is_Pow and e.exp.is_Number:
        db = derivative(e.base, dmap)
        return Integer(0) if db == 0 else e.exp * e.base ** (e.exp - 1) * db
    if isinstance(e, log):
        du = derivative(e.args[0], dmap)
        return Integer(0) if du == 0 else du / e.args[0]
    raise ValueError(f"cannot differentiate {e}")


def _int(e, model, env) -> int:
    v = ground(e, model, env)
    if not v.is_Integer:
        raise ValueError(f"index {e} does not evaluate to an integer (got {v})")
    return int(v)


def _loop(fn, limits, model, env):
    """Evaluate Sum/Product limits outermost first (inner bounds may use outer indices)."""
    if not limits:
        return [ground(fn, model, env)]
    (v, lo, hi), rest = limits[-1], limits[:-1]
    out = []
    for k in range(_int(lo, model, env), _int(hi, model, env) + 1):
        out += _loop(fn, rest, model, {**env, v: k})
    return out


def ground(e: Basic, model: TabularModel, env: dict) -> Basic:
    """Interpret a notation expression on ``model``.

    Args:
      e: an expression built from ``derive.notation``.
      model: the tabular MDP.
      env: bindings: trajectory variables (tau, x) to trajectories, time symbols
        to ints, and "_traj" to the trajectory the time-indexed nodes refer to.

    Raises:
      ValueError: for an unbound variable or an unknown node.
    """
    if isinstance(e, (Expectation, Integrate)):
        var = e.density.var if isinstance(e, Expectation) else e.var
        terms = []
        for tr in model.trajectories:
            g = ground(e.body, model, {**env, var: tr, "_traj": tr})
            terms.append(model.prob(tr) * g if isinstance(e, Expectation) else g)
        return Add(*terms)
    if isinstance(e, (Density, TestFn, Return)):
        tr = env.get(e.args[0])
        if tr is None:
            raise ValueError(f"unbound trajectory variable in {e}")
        return model.prob(tr) if isinstance(e, Density) else (
            model.f(tr) if isinstance(e, TestFn) else model.ret(tr))
    if isinstance(e, (Policy, Transition, InitialDist, Reward, Baseline)):
        states, actions = env["_traj"]
        k = _int(e.time, model, env)
        if isinstance(e, Policy):
            return model.pi[states[k], actions[k]]
        if isinstance(e, Transition):
            return model.P[states[k], actions[k], states[k + 1]]
        if isinstance(e, InitialDist):
            return model.rho[states[0]]
        if isinstance(e, Reward):
            return model.reward(env["_traj"], k)
        return model.b[states[k]]
    if isinstance(e, Grad):
        if e.wrt != theta:
            raise ValueError(f"can only differentiate with respect to theta, not {e.wrt}")
        return derivative(ground(e.expr, model, env), model.dmap)
    if isinstance(e, Sum):
        return Add(*_loop(e.function, e.limits, model, env))
    if isinstance(e, Product):
        return Mul(*_loop(e.function, e.limits, model, env))
    if isinstance(e, UnevaluatedExpr):
        return ground(e.args[0], model, env)
    if isinstance(e, Symbol):
        if e in env:
            return Integer(env[e])
        if e == H:
            return model.H
        if e == gamma:
            return model.gamma
        if e == theta:
            return e
        raise ValueError(f"unbound symbol {e}")
    if e.is_Number:
        return e
    if e.is_Add or e.is_Mul or e.is_Pow or isinstance(e, log):
        return e.func(*[ground(a, model, env) for a in e.args])
    raise ValueError(f"cannot ground {type(e).__name__}: {e}")


def _free_trajectory_vars(e: Basic, bound=frozenset()) -> set:
    if isinstance(e, Expectation):
        return _free_trajectory_vars(e.body, bound | {e.density.var})
    if isinstance(e, Integrate):
        return _free_trajectory_vars(e.body, bound | {e.var})
    if e in (tau, x):
        return set() if e in bound else {e}
    return set().union(*[_free_trajectory_vars(a, bound) for a in e.args]) if e.args else set()


def _log_primes(e: Basic) -> Basic:
    """Rewrite log(q), q a positive rational, over log-of-prime symbols (Q-independent)."""
    def split(q):
        out = Integer(0)
        for num, sign in ((q.p, 1), (q.q, -1)):
            for prime, mult in factorint(num).items():
                out += sign * mult * Symbol(f"log{prime}")
        return out
    return e.replace(lambda n: isinstance(n, log) and n.args[0].is_Rational and n.args[0] > 0,
                     lambda n: split(n.args[0]))


def _is_zero(residual: Basic, model: TabularModel) -> bool:
    r = residual.xreplace(model.jet)
    if model.rng is not None:
        return expand(_log_primes(r)) == 0 if r.has(log) else r == 0
    if r.has(log):
        r = expand_log(r, force=True)
    r = expand(r)
    if r != 0 and model.post:
        r = expand(r.xreplace(model.post))
    if r != 0 and any(p.exp.is_negative and p.base.is_Add for p in r.atoms(Pow)):
        # 1/(1 - p) terms: expand's form is not canonical, so compare over a common denominator
        r = expand(numer(together(r)))
    return r == 0


def canonical(value: Basic, model: TabularModel) -> Basic:
    """The expanded value of a grounded expression (pi jets and normalisation substituted)."""
    r = value.xreplace(model.jet)
    if r.has(log) and model.rng is None:
        r = expand_log(r, force=True)
    r = expand(r)
    return expand(r.xreplace(model.post)) if model.post else r


def ground_value(e: Basic, sizes, normalise: bool = True) -> Basic:
    """The closed form of a trajectory-free expression on a symbolic tabular MDP.

    >>> from derive.notation import Integrate, Density, tau, theta
    >>> ground_value(Integrate(Density(tau, theta), tau), (2, 2, 1))
    rho0_0 + rho0_1
    """
    model = TabularModel(sizes, normalise)
    return canonical(ground(e, model, {}), model)


def _residuals(step: Step, model: TabularModel) -> list[Basic]:
    eq = step.after if step.is_equation else None
    e = (eq.lhs - eq.rhs) if eq is not None else (step.before - step.after)
    free = _free_trajectory_vars(e)
    if not free:
        return [ground(e, model, {})]
    # an identity in a free trajectory: one residual per trajectory (no cancellation across them)
    return [ground(e, model, {**{v: tr for v in free}, "_traj": tr}) for tr in model.trajectories]


@dataclass(frozen=True)
class GroundingResult:
    """The outcome of grounding one step at one size.

    Attributes:
      number: the step's equation number.
      rule: the rule's name.
      sizes: (S, A, H).
      method: "symbolic" (proved for all parameter values) or "random-rational".
      points: number of random rational points (0 for symbolic).
      ok: every residual is zero.
      seconds: wall time.
      message: how it was decided, or the first nonzero residual.
    """

    number: int | str
    rule: str
    sizes: tuple[int, int, int]
    method: str
    points: int
    ok: bool
    seconds: float
    message: str


def ground_step(step: Step, sizes=(2, 2, 2), method: str = "symbolic",
                points: int = DEFAULT_POINTS, seed: int = 0) -> GroundingResult:
    """Prove ``step`` on a tabular MDP of the given sizes.

    Args:
      step: the step; equations are checked as ``after.lhs - after.rhs == 0``,
        expression steps as ``before - after == 0``.
      sizes: (S, A, H).
      method: "symbolic" or "random" (exact evaluation at random rationals).
      points: number of random points (method="random" only).
      seed: seed of the random points.

    Returns:
      a GroundingResult.

    Raises:
      ValueError: for an unknown method.
    """
    sz = Sizes.of(sizes)
    if method not in ("symbolic", "random"):
        raise ValueError(f"method must be 'symbolic' or 'random', got {method!r}")
    norm = step.rule.needs_normalisation
    start = time.perf_counter()
    rng = random.Random(seed) if method == "random" else None
    models = [TabularModel(sz, norm, rng)] if rng is None else \
        [TabularModel(sz, norm, rng) for _ in range(points)]
    ok, message = True, ""
    for model in models:
        for res in _residuals(step, model):
            if not _is_zero(res, model):
                ok, message = False, f"nonzero residual {str(res.xreplace(model.jet))[:300]}"
                break
        if not ok:
            break
    if ok:
        message = ("expand(lhs - rhs) == 0" if rng is None else
                   f"lhs - rhs == 0 at {points} random rational points (M = 2^31, "
                   f"degree <= {sz.degree_bound()})")
        if norm:
            message += "; normalisation imposed"
    return GroundingResult(step.number, step.rule.name, sz.as_tuple(),
                           "symbolic" if rng is None else "random-rational",
                           0 if rng is None else points, ok,
                           time.perf_counter() - start, message)


def ground_derivation(derivation: Derivation, sizes=(2, 2, 2), method: str = "symbolic",
                      points: int = DEFAULT_POINTS, seed: int = 0) -> list[GroundingResult]:
    """``ground_step`` for every step of ``derivation``, in order."""
    return [ground_step(s, sizes, method, points, seed) for s in derivation.steps]
