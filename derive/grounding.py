"""Grounding: prove each step on every trajectory of a finite tabular MDP.

An abstract step is interpreted on an MDP with S states, A actions and horizon
H, where trajectories are tau = (s_0, a_0, ..., s_{H-1}, a_{H-1}, s_H) and

    p(tau|theta) = rho_0(s_0) prod_{t=0}^{H-1} pi_{s_t,a_t}(theta) P(s_{t+1}|s_t,a_t),
    R(tau) = sum_{t=0}^{H-1} gamma^t r(s_t, a_t, s_{t+1}),
    E_tau[g] = sum_tau p(tau|theta) g(tau),   int dx g = sum_tau g(tau),

with symbolic rho_0, P, r, b, gamma, a symbol f_tau per trajectory for the
generic f(x), and policy functions pi_{s,a}(theta) left undefined: each is
carried as its value pi_{s,a} and derivative dpi_{s,a} at theta (every step
differentiates at most once, so this first-order jet is exact).  Where a rule
needs normalisation the last action's probability is 1 - sum of the others,
so dpi_{s,A-1} = -sum of the others (and likewise sum_{s'} P = 1).  A step is
proved when

    symbolic:  lhs - rhs == 0 with every symbol free, in the normal form of
               ``derive.laurent`` (what expand(lhs - rhs) == 0 decides, ~10x faster), or
    random:    lhs - rhs == 0 exactly at N random points, every parameter an integer
               drawn from {1, ..., M}, M = 2^20 (Schwartz-Zippel: a nonzero residual,
               cleared of denominators, of degree <= D vanishes at such a point with
               probability <= D/M, so all N points miss it w.p. <= (D/M)^N).

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

from sympy.external.gmpy import MPQ
from sympy import Basic, Product, Sum, Symbol, UnevaluatedExpr, expand, log, numer, together

from derive.notation import (
    Baseline, Density, Expectation, Grad, InitialDist, Integrate, Policy, Return, Reward,
    TestFn, Transition, H, gamma, tau, theta, x,
)
from derive.laurent import Atoms, Laurent, NotLaurent
from derive.steps import Derivation, Step

__all__ = ["Sizes", "TabularModel", "GroundingResult", "ground", "ground_step",
           "ground_derivation", "ground_value", "DEFAULT_POINTS", "SAMPLE_SET_SIZE"]

DEFAULT_POINTS = 3
SAMPLE_SET_SIZE = 2**20  # M: random points are drawn uniformly from {1, ..., M}


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
    """The parameters of one tabular MDP as Laurent atoms (or rational values), and its trajectories.

    Args:
      sizes: (S, A, H).
      normalise: impose sum_a pi_{s,a} = 1 and sum_{s'} P(s'|s,a) = 1.
      rng: if given, every parameter is a random rational instead of a symbol; the
        pi_{s,a} and their derivatives dpi_{s,a} stay atoms until ``values``.
    """

    def __init__(self, sizes, normalise: bool = False, rng: random.Random | None = None):
        self.sizes = Sizes.of(sizes)
        S, A, n = self.sizes.as_tuple()
        self.normalise, self.rng = normalise, rng
        self.atoms = Atoms()
        self.H = n
        self.gamma = self._value("gamma", positive=True)
        self.rho = [self._value(f"rho0_{s}", positive=True) for s in range(S)]
        self.b = [self._value(f"b_{s}") for s in range(S)]
        self.r = {(s, a, s2): self._value(f"r_{s}{a}{s2}")
                  for s in range(S) for a in range(A) for s2 in range(S)}
        self.P = {(s, a, s2): self._value(f"P_{s}{a}_{s2}", positive=True)
                  for s in range(S) for a in range(A) for s2 in range(S)}
        # pi_{s,a}(theta): an atom whose theta-derivative is the atom dpi_{s,a}
        self.pi, self.values = {}, {}
        for s, a in itertools.product(range(S), range(A)):
            d = self.atoms.leaf(Symbol(f"dpi_{s}{a}", real=True))
            self.pi[s, a] = self.atoms.leaf(Symbol(f"pi_{s}{a}", positive=True), d)
            if rng is not None:
                self.values[self._id(self.pi[s, a])] = _rand(rng)
                self.values[self._id(d)] = _rand(rng, signed=True)
        # Symbolically the normalised last entry stays an atom until the residual is
        # formed (``post``), so that 1/pi_last still cancels against pi_last.
        self.post = {}
        if normalise:
            for s in range(S):
                last, others = self.pi[s, A - 1], [self.pi[s, a] for a in range(A - 1)]
                k = self._id(last)
                self.atoms.deriv[k] = -sum((self.atoms.deriv[self._id(o)] for o in others), Laurent())
                rest = 1 - sum(others, Laurent())
                if rng is None:
                    self.post[k] = rest
                else:
                    self.values[k] = rest.substitute(self.values)
                for a in range(A):
                    rest = 1 - sum((self.P[s, a, s2] for s2 in range(S - 1)), Laurent())
                    if rng is None:
                        self.post[self._id(self.P[s, a, S - 1])] = rest
                    else:
                        self.P[s, a, S - 1] = rest
        self.trajectories = [
            (states, actions)
            for states in itertools.product(range(S), repeat=n + 1)
            for actions in itertools.product(range(A), repeat=n)]
        self._prob, self._f, self._ret, self.memo = {}, {}, {}, {}

    @staticmethod
    def _id(leaf: Laurent) -> int:
        (m, _), = leaf.terms.items()
        return m[0][0]

    def _value(self, name, positive=False) -> Laurent:
        if self.rng is None:
            return self.atoms.leaf(Symbol(name, positive=True) if positive else Symbol(name, real=True))
        return Laurent.const(_rand(self.rng))

    def prob(self, traj) -> Laurent:
        """p(tau|theta) with rho_0: a monomial of 2H + 1 factors."""
        if traj not in self._prob:
            states, actions = traj
            p = self.rho[states[0]]
            for k in range(len(actions)):
                p = p * self.pi[states[k], actions[k]] * self.P[states[k], actions[k], states[k + 1]]
            self._prob[traj] = p
        return self._prob[traj]

    def f(self, traj) -> Laurent:
        """f(tau): an independent symbol (or rational) per trajectory."""
        if traj not in self._f:
            self._f[traj] = self._value(f"f_{len(self._f)}")
        return self._f[traj]

    def reward(self, traj, k: int) -> Laurent:
        states, actions = traj
        return self.r[states[k], actions[k], states[k + 1]]

    def ret(self, traj) -> Laurent:
        """R(tau) = sum_t gamma^t r_t."""
        if traj not in self._ret:
            self._ret[traj] = sum((self.gamma ** k * self.reward(traj, k)
                                   for k in range(len(traj[1]))), Laurent())
        return self._ret[traj]

    def residual_is_zero(self, res: Laurent) -> bool:
        """Whether ``res`` vanishes once the values (random) or normalisation (symbolic) are in."""
        if res.is_zero():
            return True
        if self.values:
            return res.substitute(self.values).is_zero()
        if not self.post:
            return False
        try:
            return res.substitute(self.post).is_zero()
        except NotLaurent:
            # 1/(1 - sum): compare over a common denominator instead
            return expand(numer(together(res.to_expr(self.atoms).xreplace(
                {self.atoms.expr[k]: v.to_expr(self.atoms) for k, v in self.post.items()})))) == 0


def _rand(rng: random.Random, signed: bool = False) -> int:
    # integers, not probabilities: a polynomial identity test needs no range, and
    # small exact ints keep the arithmetic cheap (no rational blow-up)
    v = rng.randint(1, SAMPLE_SET_SIZE)
    return -v if signed and rng.random() < 0.5 else v


def _int(e, model, env) -> int:
    """Evaluate an index expression (t - 1, H - 1, ...) to an int."""
    if e.is_Integer:
        return int(e)
    if e.is_Symbol:
        if e in env:
            return env[e]
        if e == H:
            return model.H
        raise ValueError(f"unbound index {e}")
    if e.is_Add:
        return sum(_int(a, model, env) for a in e.args)
    if e.is_Mul:
        out = 1
        for a in e.args:
            out *= _int(a, model, env)
        return out
    raise ValueError(f"index {e} is not an integer expression")


def _loop(fn, limits, model, env):
    """Evaluate Sum/Product limits outermost first (inner bounds may use outer indices)."""
    if not limits:
        return [ground(fn, model, env)]
    (v, lo, hi), rest = limits[-1], limits[:-1]
    out = []
    for k in range(_int(lo, model, env), _int(hi, model, env) + 1):
        out += _loop(fn, rest, model, {**env, v: k})
    return out


def _product(items) -> Laurent:
    out = _ONE
    for i in items:
        out = out * i
    return out


_ONE = Laurent.const(1)


def ground(e: Basic, model: TabularModel, env: dict) -> Laurent:
    """Interpret a notation expression on ``model`` as a Laurent polynomial.

    Args:
      e: an expression built from ``derive.notation``.
      model: the tabular MDP.
      env: bindings: trajectory variables (tau, x) to trajectories, time symbols
        to ints, and "_traj" to the trajectory the time-indexed nodes refer to.

    Raises:
      ValueError: for an unbound variable or an unknown node.
      NotLaurent: for a division by a sum or the log of a sum.
    """
    if isinstance(e, (Expectation, Integrate)):
        var = e.density.var if isinstance(e, Expectation) else e.var
        parts = []
        for tr in model.trajectories:
            g = ground(e.body, model, {**env, var: tr, "_traj": tr})
            parts.append(model.prob(tr) * g if isinstance(e, Expectation) else g)
        return Laurent.sum(parts)
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
        # the same score grad log pi(a_t|s_t) recurs in every inner sum: memoise per binding
        key = (e, env.get("_traj"), tuple((k, v) for k, v in env.items() if isinstance(v, int)))
        if key not in model.memo:
            model.memo[key] = ground(e.expr, model, env).derivative(model.atoms)
        return model.memo[key]
    if isinstance(e, Sum):
        return Laurent.sum(_loop(e.function, e.limits, model, env))
    if isinstance(e, Product):
        return _product(_loop(e.function, e.limits, model, env))
    if isinstance(e, UnevaluatedExpr):
        return ground(e.args[0], model, env)
    if isinstance(e, Symbol):
        if e in env:
            return Laurent.const(env[e])
        if e == H:
            return Laurent.const(model.H)
        if e == gamma:
            return model.gamma
        raise ValueError(f"unbound symbol {e}")
    if e.is_Integer:
        return Laurent.const(int(e))
    if e.is_Rational:
        return Laurent.const(MPQ(int(e.p), int(e.q)))
    if e.is_Add:
        return Laurent.sum(ground(a, model, env) for a in e.args)
    if e.is_Mul:
        return _product(ground(a, model, env) for a in e.args)
    if e.is_Pow and e.exp.is_Integer:
        return ground(e.base, model, env) ** int(e.exp)
    if e.is_Pow:
        return ground(e.base, model, env) ** _int(e.exp, model, env)
    if isinstance(e, log):
        return model.atoms.log(ground(e.args[0], model, env))
    raise ValueError(f"cannot ground {type(e).__name__}: {e}")


def _free_trajectory_vars(e: Basic, bound=frozenset()) -> set:
    if isinstance(e, Expectation):
        return _free_trajectory_vars(e.body, bound | {e.density.var})
    if isinstance(e, Integrate):
        return _free_trajectory_vars(e.body, bound | {e.var})
    if e in (tau, x):
        return set() if e in bound else {e}
    return set().union(*[_free_trajectory_vars(a, bound) for a in e.args]) if e.args else set()


def ground_value(e: Basic, sizes, normalise: bool = True) -> Basic:
    """The closed form of a trajectory-free expression on a symbolic tabular MDP.

    >>> from derive.notation import Integrate, Density, tau, theta
    >>> ground_value(Integrate(Density(tau, theta), tau), (2, 2, 1))
    rho0_0 + rho0_1
    """
    model = TabularModel(sizes, normalise)
    v = ground(e, model, {})
    if model.post:
        v = v.substitute(model.post)
    return v.to_expr(model.atoms)


def _residuals(step: Step, model: TabularModel) -> list[Laurent]:
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
            if not model.residual_is_zero(res):
                ok, message = False, f"nonzero residual {str(res.to_expr(model.atoms))[:300]}"
                break
        if not ok:
            break
    if ok:
        message = ("lhs - rhs == 0 exactly (Laurent normal form)" if rng is None else
                   f"lhs - rhs == 0 at {points} random integer points (M = 2^20, "
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
