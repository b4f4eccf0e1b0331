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
    random:    lhs - rhs == 0 exactly at N random points of F_p, p = 2^61 - 1, every atom
               (parameter, pi, dpi, log of an atom) uniform in {1, ..., p - 1}, carried as
               first-order jets (``derive.jet``; Schwartz-Zippel: a nonzero residual,
               cleared of denominators, of degree <= D vanishes at such a point with
               probability <= D/(p - 1), so all N points miss it w.p. <= (D/(p - 1))^N).

The random method is what makes H = 3 affordable: the tower property's conditional
expectations multiply every trajectory's polynomial by its futures', and the exact
normal form grows quadratically in the number of trajectories while a jet stays
four integers (``benchmarks/bench_grounding.py``).  It runs on every trajectory at once
(``derive.grounding_batch``: the same residues in numpy, 12x faster at (3, 2, 3)); this
module's scalar interpreter is the reference, decides what the batch declines, and words
every failure.

Conditional expectations E[. | h_k] sum over the futures of the context trajectory,
weighted by their conditional probability; E_{a_k ~ pi} and sum_{a_k}, sum_{s_k} vary
one coordinate; Q_t, V_t and Pr(s_t = s) are computed by backward and forward DP on
the same model (so the Markov-property steps compare two different computations).
Steps (9)-(13) have a free tau: they are checked for every trajectory separately; a
free time index t (the EGLP lemma) for every t and every context trajectory.

>>> from derive.seed import SOURCE
>>> ground_step(SOURCE.step(4), (2, 2, 1)).ok
True
"""

from __future__ import annotations

import copy
import itertools
import random
import time
from dataclasses import dataclass
from fractions import Fraction

from sympy import Basic, Symbol, expand, factorint, numer, together

from derive.notation import (
    ActionExpectation, ActionSum, Baseline, CondExpectation, Density, Expectation, InitialDist,
    Integrate, Policy, QValue, Return, Reward, StateProb, StateSum, TestFn, Transition, VValue, TIME_NODES,
    t, tau, theta, tp, x,
)
from derive.jet import PRIME, Jet, JetAtoms
from derive.index_exprs import compile_arithmetic, compile_index as _compile_int, compile_policy_node
from derive.laurent import MAX_EXPONENT, Atoms, Laurent, NotLaurent, mono_items
from derive.steps import Derivation, Step
from derive import proof_cache

__all__ = ["Sizes", "TabularModel", "GroundingResult", "ground", "ground_step",
           "ground_derivation", "ground_value", "DEFAULT_POINTS", "miss_probability", "auto_method",
           "shared_model", "compile_expr"]

DEFAULT_POINTS = 1


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
        """D: a generous bound on the total degree of a residual cleared of denominators.

        Per trajectory: p(tau) (2H + 1), a conditional weight (2H), Q_t or V_t (3H with the
        gamma powers), R or f (H + 1), scores and the cleared 1/pi factors (2H + 2), a marginal
        (2H + 1), plus one per policy entry for the normalisation substitutions.
        """
        return 12 * self.H + 5 + self.S * self.A * self.H


class TabularModel:
    """The parameters of one tabular MDP as Laurent atoms (or jets at a random point), and its trajectories.

    (``verify.app.derivation_numeric.NumericModel`` is the same interface on a built-in example's numbers.)

    Args:
      sizes: (S, A, H).
      normalise: impose sum_a pi_{s,a} = 1 and sum_{s'} P(s'|s,a) = 1.
      rng: if given, every atom is a random element of F_p (``derive.jet``) instead of a symbol.
    """

    skip_zero = False  # symbols and random points are never zero: nothing to prune

    def __init__(self, sizes, normalise: bool = False, rng: random.Random | None = None):
        self.sizes = Sizes.of(sizes)
        S, A, n = self.sizes.as_tuple()
        if rng is None and self.sizes.degree_bound() >= MAX_EXPONENT // 4:
            raise ValueError(f"sizes {self.sizes.as_tuple()} are too large for the exact normal form (degree bound "
                             f"{self.sizes.degree_bound()}); use method='random'")
        self.normalise, self.rng = normalise, rng
        self.atoms = Atoms() if rng is None else JetAtoms(rng)
        self.zero = Laurent() if rng is None else Jet(0)
        self.one = Laurent.const(1) if rng is None else Jet(1, 0, 0, 0)
        self.H = n
        self.gamma = self._value("gamma", positive=True)
        self.rho = [self._value(f"rho0_{s}", positive=True) for s in range(S)]
        self.b = [self._value(f"b_{s}") for s in range(S)]
        self.r = {(s, a, s2): self._value(f"r_{s}{a}{s2}")
                  for s in range(S) for a in range(A) for s2 in range(S)}
        self.P = {(s, a, s2): self._value(f"P_{s}{a}_{s2}", positive=True)
                  for s in range(S) for a in range(A) for s2 in range(S)}
        # pi_{s,a}(theta): an atom whose theta-derivative is the atom dpi_{s,a}
        self.pi = {}
        for s, a in itertools.product(range(S), range(A)):
            d = self.atoms.leaf(Symbol(f"dpi_{s}{a}", real=True))
            self.pi[s, a] = self.atoms.leaf(Symbol(f"pi_{s}{a}", positive=True), d)
        # Symbolically the normalised last entry stays an atom until the residual is
        # formed (``post``), so that 1/pi_last still cancels against pi_last.
        self.post = {}
        if normalise:
            for s in range(S):
                others = [self.pi[s, a] for a in range(A - 1)]
                rest = 1 - sum(others, self.zero)
                if rng is None:
                    k = self._id(self.pi[s, A - 1])
                    self.atoms.deriv[k] = -sum((self.atoms.deriv[self._id(o)] for o in others), Laurent())
                    self.post[k] = rest
                else:
                    self.pi[s, A - 1] = self.atoms.normalised(rest)
                for a in range(A):
                    rest = 1 - sum((self.P[s, a, s2] for s2 in range(S - 1)), self.zero)
                    if rng is None:
                        self.post[self._id(self.P[s, a, S - 1])] = rest
                    else:
                        self.P[s, a, S - 1] = self.atoms.normalised(rest)
        self.trajectories = [
            (states, actions)
            for states in itertools.product(range(S), repeat=n + 1)
            for actions in itertools.product(range(A), repeat=n)]
        self._prob, self._f, self._ret, self.memo = {}, {}, {}, {}

    def const(self, c):
        """The constant c (int or MPQ) in this model's arithmetic."""
        return Laurent.const(c) if self.rng is None else self.atoms.const(c)

    def product(self, items):
        """The product of ``items`` in order, from one."""
        return _product(items, self)

    def sum(self, items):
        items = list(items)
        if self.rng is None:
            return Laurent.sum(items)
        if len(items) == 1:
            return items[0]  # keeps a monomial's log
        return sum(items, self.zero)

    @staticmethod
    def _id(leaf: Laurent) -> int:
        (m, _), = leaf.terms.items()
        return mono_items(m)[0][0]

    def _value(self, name, positive=False) -> Laurent:
        return self.atoms.leaf(Symbol(name, positive=True) if positive else Symbol(name, real=True))

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
                                   for k in range(len(traj[1]))), self.zero)
        return self._ret[traj]

    def q_value(self, k: int, s: int, a: int) -> Laurent:
        """Q_k(s, a) = sum_{s'} P(s'|s,a) (r(s,a,s') + gamma V_{k+1}(s')), V_H = 0 (backward DP)."""
        key = ("Q", k, s, a)
        if key not in self.memo:
            S = self.sizes.S
            self.memo[key] = self.sum(
                self.P[s, a, s2] * (self.r[s, a, s2] + (self.gamma * self.v_value(k + 1, s2) if k + 1 < self.H
                                                         else self.zero))
                for s2 in range(S))
        return self.memo[key]

    def v_value(self, k: int, s: int) -> Laurent:
        """V_k(s) = sum_a pi(a|s) Q_k(s, a)."""
        key = ("V", k, s)
        if key not in self.memo:
            self.memo[key] = self.sum(self.pi[s, a] * self.q_value(k, s, a) for a in range(self.sizes.A))
        return self.memo[key]

    def state_prob(self, k: int, s: int) -> Laurent:
        """Pr(s_k = s) = sum_{s0, a} Pr(s_{k-1} = s0) pi(a|s0) P(s|s0, a), Pr(s_0 = s) = rho_0(s) (forward DP)."""
        key = ("Pr", k, s)
        if key not in self.memo:
            S, A = self.sizes.S, self.sizes.A
            self.memo[key] = self.rho[s] if k == 0 else self.sum(
                self.state_prob(k - 1, s0) * self.pi[s0, a] * self.P[s0, a, s]
                for s0 in range(S) for a in range(A))
        return self.memo[key]

    #: theta_old is theta itself (True: the surrogate's "at theta = theta_old" steps and the numeric half) or an
    #: independent policy (False: identities for every pair of policies, such as the performance-difference lemma)
    same_old = True

    def old_model(self) -> "TabularModel":
        """The same MDP under pi_{theta_old}: the same P, r, rho_0, gamma, and policy entries that are constants
        for grad_theta -- pi's own values when ``same_old``, else independent atoms (normalised like pi)."""
        old = getattr(self, "_old", None)
        if old is not None:
            return old
        old = copy.copy(self)
        old.memo, old._prob = {}, {}
        old._old = old                                     # its own old model is itself
        if self.same_old:
            old.pi = {k: _constant(self, v) for k, v in self.pi.items()}
        else:
            S, A = self.sizes.S, self.sizes.A
            old.pi = {(s, a): self.atoms.leaf(Symbol(f"pio_{s}{a}", positive=True)) for s in range(S) for a in range(A)}
            if self.normalise:
                for s in range(S):
                    rest = 1 - sum((old.pi[s, a] for a in range(A - 1)), self.zero)
                    if self.rng is None:
                        self.post[self._id(old.pi[s, A - 1])] = rest
                    else:
                        old.pi[s, A - 1] = self.atoms.normalised(rest)
        self._old = old
        return old

    def residual_is_zero(self, res: Laurent) -> bool:
        """Whether ``res`` vanishes once the values (random) or normalisation (symbolic) are in."""
        if res.is_zero():
            return True
        if not self.post:
            return False
        try:
            return res.substitute(self.post).is_zero()
        except NotLaurent:
            # 1/(1 - sum): compare over a common denominator instead
            return expand(numer(together(res.to_expr(self.atoms).xreplace(
                {self.atoms.expr[k]: v.to_expr(self.atoms) for k, v in self.post.items()})))) == 0


# Expressions are compiled once into closures ``fn(model, env)``: grounding evaluates the same
# body on every trajectory, and SymPy's type dispatch and hashing per node per trajectory
# cost more than the arithmetic itself.

def _constant(model, value):
    """``value`` without a theta-derivative: symbolically an atom pio_{s,a} substituted back by pi_{s,a} when the
    residual is formed (so 1/pi_old still cancels against pi); numerically the value with derivative 0."""
    if isinstance(value, Laurent):
        k = model._id(value)
        sym = model.atoms.expr[k]
        old = model.atoms.leaf(Symbol(f"pio{str(sym)[2:]}", positive=True))
        model.post[model._id(old)] = model.post.get(k, value)
        return old
    zero = lambda d: None if d is None else 0 * d      # noqa: E731  (a number or a gradient vector)
    return type(value)(value.v, zero(value.d), value.lv, zero(value.ld))


def _product(items, model):
    out = model.one
    for i in items:
        # one times the first factor would copy it (values are never changed in place: the factor itself serves)
        out = i if out is model.one and type(i) is type(out) else out * i
    return out


def _grad_key(e, env) -> tuple:
    """What ``e``'s derivative depends on here: the context trajectory and the int bindings."""
    return e, env.get("_traj"), _int_bindings(env)


def _int_bindings(env) -> tuple:
    return tuple((k, v) for k, v in env.items() if isinstance(v, int))


_COMPILED: dict = {}


def compile_expr(e: Basic):
    """``e`` as a closure ``fn(model, env) -> value`` (cached per expression)."""
    fn = _COMPILED.get(e)
    if fn is None:
        fn = _COMPILED[e] = _compile(e)
    return fn


def _compile(e: Basic):  # noqa: C901  (one branch per node type)
    if isinstance(e, (Expectation, Integrate)):
        var = e.density.var if isinstance(e, Expectation) else e.var
        body, weighted = compile_expr(e.body), isinstance(e, Expectation)
        # tau ~ p(.|theta_old): the weights are constants for grad_theta
        old = weighted and e.density.param != theta

        def expectation(model, env):
            parts = []
            for tr in model.trajectories:
                g = body(model, {**env, var: tr, "_traj": tr})
                p = model.old_model().prob(tr) if old else model.prob(tr)
                parts.append(p * g if weighted else g)
            return model.sum(parts)
        return expectation
    fn = compile_policy_node(e, compile_expr, _grad_key)
    if fn is not None:
        return fn
    if isinstance(e, (Density, TestFn, Return)):
        arg, kind = e.args[0], type(e)

        def trajectory_node(model, env):
            tr = env.get(arg)
            if tr is None:
                raise ValueError(f"unbound trajectory variable in {e}")
            return model.prob(tr) if kind is Density else (model.f(tr) if kind is TestFn else model.ret(tr))
        return trajectory_node
    if isinstance(e, TIME_NODES):
        return _compile_time_node(e)
    if isinstance(e, (CondExpectation, ActionExpectation, ActionSum, StateSum)):
        return _compile_local(e)
    fn = compile_arithmetic(e, compile_expr)
    if fn is not None:
        return fn
    raise ValueError(f"cannot ground {type(e).__name__}: {e}")


def _compile_time_node(e):
    time_of, kind = _compile_int(e.time), type(e)
    state_only = kind in (Baseline, VValue, StateProb)

    def node(model, env):
        states, actions = _context(env)
        k = time_of(model, env)
        top = model.H if state_only else model.H - 1
        if not 0 <= k <= top:
            raise ValueError(f"time index {e.time} = {k} of {e} outside 0..{top}")
        if kind is Policy:
            pi = model.pi[states[k], actions[k]]
            return pi if e.param == theta else model.old_model().pi[states[k], actions[k]]   # a constant
        if kind is Transition:
            return model.P[states[k], actions[k], states[k + 1]]
        if kind is InitialDist:
            return model.rho[states[0]]
        if kind is Reward:
            return model.r[states[k], actions[k], states[k + 1]]
        if kind is Baseline:
            return model.b[states[k]]
        if kind is StateProb:
            return model.state_prob(k, states[k])
        if kind is QValue:
            return model.q_value(k, states[k], actions[k])
        if kind is VValue:
            return model.v_value(k, states[k]) if k < model.H else model.zero
        return model.q_value(k, states[k], actions[k]) - model.v_value(k, states[k])  # Advantage
    return node


def ground(e: Basic, model: TabularModel, env: dict) -> Laurent:
    """Interpret a notation expression on ``model`` as a Laurent polynomial (or a Jet).

    Args:
      e: an expression built from ``derive.notation``.
      model: the tabular MDP.
      env: bindings: trajectory variables (tau, x) to trajectories, time symbols
        to ints, and "_traj" to the trajectory the time-indexed nodes refer to.

    Raises:
      ValueError: for an unbound variable, an unknown node or a time index outside the horizon.
      NotLaurent: for a division by a sum or the log of a sum.
    """
    return compile_expr(e)(model, env)


def _context(env):
    if "_traj" not in env:
        raise ValueError("a time-indexed node outside any expectation needs a trajectory")
    return env["_traj"]


def _rebind(env: dict, old, new) -> dict:
    """env with the trajectory ``old`` replaced by ``new`` everywhere (tau, x and "_traj")."""
    return {k: (new if v is old or v == old else v) for k, v in env.items()} | {"_traj": new}


def _compile_local(e):
    """Conditional means and sums over one time step's action or state, in the context trajectory.

    E[body | h_k] sums over the future (a_k, s_{k+1}, ..., s_H) weighted by its conditional
    probability prod_{j>=k} pi(a_j|s_j) P(s_{j+1}|s_j, a_j) (with a_k fixed and its pi(a_k|s_k)
    left out when conditioning on a_k too); E_{a_k ~ pi(.|s_k)} and sum_{a_k} vary a_k only;
    sum_{s_k} varies s_k only.
    """
    body, time_of, kind = compile_expr(e.args[0]), _compile_int(e.args[1]), type(e)
    with_action = kind is CondExpectation and e.with_action

    def local(model, env):
        states, actions = _context(env)
        k = time_of(model, env)
        S, A, n = model.sizes.as_tuple()
        if not 0 <= k <= n - 1:
            raise ValueError(f"time index {e.args[1]} = {k} of {kind.__name__} outside 0..{n - 1}")
        old = env["_traj"]
        parts = []
        if kind is CondExpectation:
            first = k + 1 if with_action else k
            key = (e, tuple(states[:k + 1]), tuple(actions[:first]), _int_bindings(env))
            if key in model.memo:
                return model.memo[key]
            def grow(sts, acts, w):
                # the futures in time order, pruned where a numeric model's weight is 0
                j = len(acts)
                if j == n:
                    parts.append(w * body(model, _rebind(env, old, (tuple(sts), tuple(acts)))))
                    return
                for a in ((actions[j],) if j < first else range(A)):
                    wa = w * model.pi[sts[j], a] if j >= first else w
                    for s2 in range(S):
                        w2 = wa * model.P[sts[j], a, s2]
                        if model.skip_zero and w2.is_zero():
                            continue
                        grow(sts + [s2], acts + [a], w2)
            grow(list(states[:k + 1]), list(actions[:k]), model.one)
            model.memo[key] = model.sum(parts) if parts else model.zero
            return model.memo[key]
        if kind in (ActionExpectation, ActionSum):
            for a in range(A):
                new = (tuple(states), tuple(actions[:k]) + (a,) + tuple(actions[k + 1:]))
                g = body(model, _rebind(env, old, new))
                parts.append(model.pi[states[k], a] * g if kind is ActionExpectation else g)
            return model.sum(parts)
        for s in range(S):  # StateSum
            new = (tuple(states[:k]) + (s,) + tuple(states[k + 1:]), tuple(actions))
            parts.append(body(model, _rebind(env, old, new)))
        return model.sum(parts)
    return local


def _needs_context(e: Basic) -> bool:
    """Whether a time-indexed node of ``e`` lies outside every expectation or integral over tau."""
    if isinstance(e, (Expectation, Integrate)):
        return False
    if isinstance(e, TIME_NODES):
        return True
    return any(_needs_context(a) for a in e.args)


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


def _value(model: TabularModel, e: Basic, env: dict):
    """ground(e) memoised per model: a derivation's consecutive steps share their lines."""
    key = ("line", e, tuple(env.items()))
    if key not in model.memo:
        model.memo[key] = ground(e, model, env)
    return model.memo[key]


def _residuals(step: Step, model: TabularModel):
    """The residuals lhs - rhs to check, one per binding of the step's free variables.

    A free trajectory (tau, x) is checked per trajectory (no cancellation across them); a free
    time index (t, t': an identity "for every t") per value 0..H-1, and a time-indexed node
    outside every expectation per context trajectory; otherwise once.
    """
    lhs, rhs, envs = step_bindings(step, model)
    for env in envs:
        yield _value(model, lhs, env) - _value(model, rhs, env)


def step_bindings(step: Step, model: TabularModel):
    """(lhs, rhs, environments): the two sides ``_residuals`` compares and each binding of the free variables."""
    lhs, rhs, free, bindings, mode = step_layout(step, model.H)
    if mode == "every":
        envs = ({**{v: tr for v in free}, **b, "_traj": tr} for tr in model.trajectories for b in bindings)
    else:
        base = model.trajectories[0]
        envs = ({**b, "_traj": base} if mode == "first" else b for b in bindings)
    return lhs, rhs, envs


def step_layout(step: Step, horizon: int):
    """(lhs, rhs, free trajectory variables, time bindings, mode): what ``step_bindings`` enumerates, unrolled.

    mode "every": each binding is checked with the free trajectory variables (and the context of the
    time-indexed nodes) at every trajectory; "first": at the first trajectory's context only (a time-indexed
    node outside every expectation, no free index); "none": no trajectory context.
    """
    eq = step.after if step.is_equation else None
    lhs, rhs = (eq.lhs, eq.rhs) if eq is not None else (step.before, step.after)
    e = lhs - rhs
    free = _free_trajectory_vars(e)
    times = sorted((v for v in (t, tp) if v in e.free_symbols), key=str)
    bindings = [dict(zip(times, ks)) for ks in itertools.product(range(horizon), repeat=len(times))]
    context = _needs_context(e)
    mode = "every" if free or (times and context) else ("first" if context else "none")
    return lhs, rhs, free, bindings, mode


_MODELS: dict = {}


def shared_model(sizes, normalise: bool, method: str, seed: int = 0, point: int = 0,
                 same_old: bool = False) -> TabularModel:
    """The model (symbolic, or random point ``point`` of ``seed``) shared by every step grounded with it.

    Sharing lets a line computed as one step's ``after`` be reused as the next step's ``before``. ``same_old``:
    pi_{theta_old} is pi_theta (a step evaluated at theta = theta_old), else an independent policy.
    """
    key = (Sizes.of(sizes).as_tuple(), bool(normalise), method, seed, point, bool(same_old))
    if key not in _MODELS:
        if len(_MODELS) >= 32:
            _MODELS.clear()
        rng = None if method == "symbolic" else random.Random(f"pgverify-{seed}-{point}-{int(normalise)}")
        model = TabularModel(sizes, normalise, rng)
        model.same_old = bool(same_old)
        _MODELS[key] = model
    return _MODELS[key]


#: rules whose step holds at theta = theta_old only (elsewhere theta_old is grounded as an independent policy)
AT_THETA_OLD_RULES = frozenset({"evaluate_at_theta_old"})


#: the symbolic normal form is used up to this many trajectories (S^(H+1) A^H) when no normalisation is needed
AUTO_SYMBOLIC_TRAJECTORIES = 64


def auto_method(step: Step, sizes) -> str:
    """"symbolic" where the exact normal form is cheap, else "random".

    Normalisation (sum_a pi = 1, sum_s' P = 1) is substituted into the symbolic residual,
    and the tower property's conditional expectations multiply every trajectory's
    polynomial by its futures': both grow quadratically in the number of trajectories
    (8 s for the normalised steps at (2, 2, 2) against 0.2 s by jets; ``benchmarks/bench_grounding.py``).
    """
    sz = Sizes.of(sizes)
    small = sz.S ** (sz.H + 1) * sz.A ** sz.H <= AUTO_SYMBOLIC_TRAJECTORIES
    return "symbolic" if small and not step.rule.needs_normalisation else "random"


def miss_probability(sizes, points: int) -> float:
    """Schwartz-Zippel: the chance that ``points`` random points all miss a nonzero residual, (D / (p - 1))^N."""
    return (Sizes.of(sizes).degree_bound() / (PRIME - 1)) ** points


@dataclass(frozen=True)
class GroundingResult:
    """The outcome of grounding one step at one size.

    Attributes:
      number: the step's equation number.
      rule: the rule's name.
      sizes: (S, A, H).
      method: "symbolic" (proved for all parameter values) or "random-modular" (random points mod p).
      points: number of random points (0 for symbolic).
      ok: every residual is zero.
      seconds: wall time.
      message: how it was decided, or the first nonzero residual.
      cached: replayed from ``derive.proof_cache`` (proved by this same code in an earlier run); ``seconds``
        is then the lookup's time.
    """

    number: int | str
    rule: str
    sizes: tuple[int, int, int]
    method: str
    points: int
    ok: bool
    seconds: float
    message: str
    cached: bool = False


def ground_step(step: Step, sizes=(2, 2, 2), method: str = "symbolic",
                points: int = DEFAULT_POINTS, seed: int = 0) -> GroundingResult:
    """Prove ``step`` on a tabular MDP of the given sizes.

    Args:
      step: the step; equations are checked as ``after.lhs - after.rhs == 0``,
        expression steps as ``before - after == 0``.
      sizes: (S, A, H).
      method: "symbolic" (Laurent normal form), "random" (exact evaluation of first-order
        jets at random points of F_p, p = 2^61 - 1: ``derive.jet``) or "auto" (``auto_method``).
      points: number of random points (method="random" only).
      seed: seed of the random points.

    Returns:
      a GroundingResult.

    Raises:
      ValueError: for an unknown method.
    """
    sz = Sizes.of(sizes)
    if method not in ("symbolic", "random", "auto"):
        raise ValueError(f"method must be 'symbolic', 'random' or 'auto', got {method!r}")
    norm = step.rule.needs_normalisation
    if method == "auto":
        method = auto_method(step, sz)
    start = time.perf_counter()
    k = _cache_key(step, sz, method, points, seed)
    hit = None if k is None else proof_cache.get(k)
    if hit is not None:
        try:
            return GroundingResult(step.number, step.rule.name, sz.as_tuple(), str(hit["method"]), int(hit["points"]),
                                   bool(hit["ok"]), time.perf_counter() - start, str(hit["message"]), cached=True)
        except Exception:  # noqa: BLE001  (an entry of the wrong shape is a miss)
            pass
    result = _ground_step(step, sz, method, points, seed, norm, start)
    if k is not None:
        proof_cache.put(k, {"method": result.method, "points": result.points, "ok": result.ok,
                            "message": result.message})
    return result


def _cache_key(step: Step, sz: Sizes, method: str, points: int, seed: int):
    """The proof cache's key of one grounding (``derive.proof_cache``): everything the verdict depends on."""
    if not proof_cache.enabled():
        return None
    try:
        text = proof_cache.expr_text
        return proof_cache.key("ground_step", text(step.before), text(step.after), bool(step.is_equation),
                               step.rule.name, bool(step.rule.needs_normalisation), str(step.number),
                               sz.as_tuple(), method, int(points), int(seed))
    except Exception:  # noqa: BLE001  (an expression that cannot be written out is simply not cached)
        return None


def _ground_step(step: Step, sz: Sizes, method: str, points: int, seed: int, norm: bool,
                 start: float) -> GroundingResult:
    rng = None if method == "symbolic" else True
    same_old = step.rule.name in AT_THETA_OLD_RULES
    models = [shared_model(sz, norm, method, seed, i, same_old) for i in range(1 if rng is None else points)]
    ok, message = True, ""
    try:
        for model in models:
            if rng is not None and BATCH and _batch_vanishes(step, model):
                continue
            for res in _residuals(step, model):
                if not model.residual_is_zero(res):
                    witness = counterexample(step, sz)
                    ok, message = False, (f"({step.number}) {step.rule.name}: not an identity at (S, A, H) = "
                                          f"{sz.as_tuple()}: " + (witness or "nonzero residual "
                                                                  f"{str(res.to_expr(model.atoms))[:300]}"))
                    break
            if not ok:
                break
    except Exception as err:  # noqa: BLE001  (a malformed step is a failed row, never a traceback)
        return GroundingResult(step.number, step.rule.name, sz.as_tuple(),
                               "symbolic" if rng is None else "random-modular", 0 if rng is None else points,
                               False, time.perf_counter() - start,
                               f"({step.number}) {step.rule.name}: cannot ground at (S, A, H) = {sz.as_tuple()}: "
                               f"{type(err).__name__}: {err}")
    if ok:
        message = ("lhs - rhs == 0 exactly (Laurent normal form)" if rng is None else
                   f"lhs - rhs == 0 at {points} random points mod p = 2^61 - 1 (degree <= {sz.degree_bound()}: "
                   f"a nonzero residual survives w.p. <= {miss_probability(sz, points):.0e})")
        if norm:
            message += "; normalisation imposed"
    return GroundingResult(step.number, step.rule.name, sz.as_tuple(),
                           "symbolic" if rng is None else "random-modular",
                           0 if rng is None else points, ok,
                           time.perf_counter() - start, message)


#: ask ``derive.grounding_batch`` first for the random method (False: the scalar jets only, the reference that
#: ``benchmarks/bench_grounding.py`` times it against)
BATCH = True


def _batch_vanishes(step: Step, model: TabularModel) -> bool:
    """Every residual of ``step`` is 0 at ``model``'s random point, decided on all trajectories at once
    (``derive.grounding_batch``: the same residues as the scalar jets, in numpy).  False when a residual is
    nonzero or the batch cannot evaluate the step: the scalar path then decides it and words any failure."""
    from derive import grounding_batch

    try:
        return grounding_batch.step_vanishes(model, *step_layout(step, model.H))
    except Exception:  # noqa: BLE001  (Unsupported, or a malformed step: the scalar path reports it)
        return False


def ground_derivation(derivation: Derivation, sizes=(2, 2, 2), method: str = "symbolic",
                      points: int = DEFAULT_POINTS, seed: int = 0) -> list[GroundingResult]:
    """``ground_step`` for every step of ``derivation``, in order."""
    return [ground_step(s, sizes, method, points, seed) for s in derivation.steps]


# --- readable failures: a failed step's two sides at an explicit rational point ---------------------------------
#
# Readable counterexamples: a failed step's two sides at an explicit rational point a person can check.
#
# Grounding decides an identity in the Laurent normal form or at random points modulo 2^61 - 1; neither
# residual says *why* a step fails.  Here the same step is evaluated with exact rationals at a small,
# explicitly stated point of the same tabular MDP:
#
#     gamma = 1/2,  rho_0(s) ~ s + 1,  pi(a|s) ~ a + s + 1,  p(s'|s, a) ~ s' + a + 1     (normalised)
#     d pi(a|s)/d theta = (s + 1)(2a - A + 1) (summing to 0 over a),  r(s, a, s') = 1 + s + 2a + 3s',
#     b(s) = 1 + s,  f(tau_i) = i + 1,
#
# or, for a step whose rule does not need sum_a pi = 1 and sum_s' p = 1, the unnormalised point
# pi(a|s) = 1/(a + s + 2), p(s'|s, a) = 1/(s' + s + a + 2), rho_0(s) = 1/(s + 2), d pi(a|s) = a + s + 1.
# A second point (gamma = 2/3, shifted weights) is tried when the first happens to be a root.  Logarithms are
# exact: log of a rational is a combination of logs of primes (linearly independent over Q), so equality of
# the two sides is decided exactly, and a counterexample found here is a proof that the step is false.
#
# True

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
