"""Grounding at a random point, every trajectory at once: ``derive.grounding``'s interpreter over numpy batches.

The scalar interpreter (``derive.grounding``) evaluates a step's two sides once per trajectory tau of the
tabular MDP, with ``derive.jet.Jet`` arithmetic mod p = 2^61 - 1; at (S, A, H) = (3, 2, 3) that is 648
trajectories and about 10^6 Python-level jet operations per report.  Here an expression is compiled once
into closures whose value is a ``derive.jet_batch.JetBatch``: one residue per trajectory (shape (T,)), or one
shared by all (shape ()).  Trajectory variables and the context of the time-indexed nodes are bound to "every
trajectory" at once, so

    f(s_t, a_t) for every tau        = a gather from an (S, A) table at (states[:, t], actions[:, t]),
    E_tau[g] = sum_tau p(tau) g(tau) = a modular sum over the batch axis,
    E_{a_k ~ pi}[g], sum_{s_k} g     = gathers of g at the trajectories with a_k (s_k) replaced,
    E[g | h_k] (tower property)      = per history h_k, a sum over the futures sharing it, gathered back,

each the same ring operation the scalar jets perform, at the same random point (the scalar model's atoms,
drawn by the same ``derive.jet.JetAtoms``), so every residual is the same residue as the scalar path's
(``tests/test_derive_grounding_batch.py`` compares them, and refutes broken steps through this path).  The
Q, V and Pr(s_t = s) tables come from the scalar model's own dynamic programming (S A H jets).

Anything this compiler does not cover (a body that refers to an enclosing trajectory variable, a table whose
entries disagree on which components exist) raises, and ``derive.grounding`` then runs the scalar path; a
nonzero residual found here is re-derived there too, so failure messages are the scalar path's.

>>> from derive.seed import SOURCE
>>> from derive.grounding import shared_model, step_layout
>>> model = shared_model((2, 2, 2), True, "random")
>>> lhs, rhs, free, bindings, mode = step_layout(SOURCE.step(4), model.H)
>>> step_vanishes(model, lhs, rhs, free, bindings, mode)
True
"""

from __future__ import annotations

import numpy as np
from sympy import Basic

from derive.index_exprs import compile_arithmetic, compile_index, compile_policy_node
from derive.jet_batch import JetBatch
from derive.notation import (
    ActionExpectation, ActionSum, Baseline, CondExpectation, Density, Expectation, InitialDist,
    Integrate, Policy, QValue, Return, Reward, StateProb, StateSum, TestFn, Transition, VValue, TIME_NODES,
    tau, theta, x,
)

__all__ = ["BatchModel", "Unsupported", "batch_model", "compile_batch", "line_value", "step_vanishes",
           "first_context_value", "EVERY"]

#: what a trajectory variable (and the time-indexed nodes' context) is bound to: every trajectory, on the batch axis
EVERY = "every trajectory"


class Unsupported(Exception):
    """An expression this compiler does not batch (``derive.grounding`` then uses the scalar interpreter)."""


class _LogAtoms:
    @staticmethod
    def log(arg):
        if arg.lv is None:
            raise ValueError("log of a sum")
        return arg.logarithm()


class BatchModel:
    """A ``derive.grounding.TabularModel`` at a random point (``rng`` given) as tables and per-trajectory batches.

    Args:
      model: the scalar model; its atoms (and any drawn later: f_tau, constants' logs) are the values used.
      arith: ``JetBatch`` (a random point mod p) or ``FloatJetBatch`` (a numeric model: floats and gradients,
        ``verify.app.derivation_numeric``), the batch form of the model's own jets.
    """

    def __init__(self, model, arith=JetBatch):
        if arith is JetBatch and getattr(model, "rng", None) is None:
            raise Unsupported("a symbolic model has no random point to batch")
        self.scalar, self.sizes, self.H, self.arith = model, model.sizes, model.H, arith
        S, A, n = model.sizes.as_tuple()
        self.T = len(model.trajectories)
        if not self.T:
            raise Unsupported("no trajectories")
        self.states = np.array([s for s, _ in model.trajectories], dtype=np.intp).reshape(self.T, n + 1)
        self.actions = np.array([a for _, a in model.trajectories], dtype=np.intp).reshape(self.T, n)
        self._position = {tr: i for i, tr in enumerate(model.trajectories)}
        sa, sas = [(s, a) for s in range(S) for a in range(A)], [(s, a, s2) for s in range(S) for a in range(A)
                                                                for s2 in range(S)]
        self.pi = arith.stack([model.pi[k] for k in sa], (S, A))
        self.P = arith.stack([model.P[k] for k in sas], (S, A, S))
        self.r = arith.stack([model.r[k] for k in sas], (S, A, S))
        self.rho = arith.stack(model.rho, (S,))
        self.b = arith.stack(model.b, (S,))
        self.gamma, self.zero, self.one = (arith.of(v) for v in (model.gamma, model.zero, model.one))
        self.atoms = _LogAtoms()
        self.memo: dict = {}
        self._old = None

    @property
    def tabular_softmax(self) -> bool:
        return getattr(self.scalar, "tabular_softmax", True)

    def _cached(self, key, make):
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]

    def old_model(self) -> "BatchModel":
        if self._old is None:
            old = self.scalar.old_model()
            self._old = self if old is self.scalar else BatchModel(old, self.arith)
        return self._old

    def const(self, c) -> JetBatch:
        return self._cached(("const", c), lambda: self.arith.of(self.scalar.const(c)))

    def sum(self, items) -> JetBatch:
        items = list(items)
        if not items:
            return self.zero
        out = items[0]
        for i in items[1:]:
            out = out + i
        return out if len(items) > 1 else self.arith.of(out)

    def product(self, items) -> JetBatch:
        out = self.one
        for i in items:
            out = out * i
        return out

    # --- per-trajectory batches (shape (T,)) ---------------------------------------------------------------------
    def at(self, table: str, k: int) -> JetBatch:
        """``table`` (pi, P, r, rho, b, Q_k, V_k, Pr_k) at each trajectory's (s_k, a_k, s_{k+1})."""
        def make():
            s, a = self.states[:, k], self.actions[:, k] if k < self.H else None
            if table == "pi":
                return self.pi[s, a]
            if table in ("P", "r"):
                return getattr(self, table)[s, a, self.states[:, k + 1]]
            if table in ("rho", "b"):
                return getattr(self, table)[s]
            if table == "Q":
                return self._dp_table(k, "Q")[s, a]
            return self._dp_table(k, table)[s]   # V, Pr
        return self._cached(("at", table, k), make)

    def _dp_table(self, k: int, kind: str) -> JetBatch:
        m, (S, A, _) = self.scalar, self.sizes.as_tuple()
        if kind == "Q":
            return self.arith.stack([m.q_value(k, s, a) for s in range(S) for a in range(A)], (S, A))
        if kind == "V":
            return self.arith.stack([m.v_value(k, s) for s in range(S)], (S,))
        return self.arith.stack([m.state_prob(k, s) for s in range(S)], (S,))

    def prob_all(self) -> JetBatch:
        """p(tau|theta) for every trajectory: rho_0(s_0) prod_k pi(a_k|s_k) P(s_{k+1}|s_k, a_k)."""
        def make():
            p = self.at("rho", 0)
            for k in range(self.H):
                p = p * self.at("pi", k) * self.at("P", k)
            return p
        return self._cached("prob", make)

    def f_all(self) -> JetBatch:
        return self._cached("f", lambda: self._per_trajectory(
            self.arith.stack([self.scalar.f(tr) for tr in self.scalar.trajectories], (self.T,))))

    def _per_trajectory(self, table):
        return table[np.arange(self.T)]

    def ret_all(self) -> JetBatch:
        """R(tau) = sum_k gamma^k r_k for every trajectory."""
        def make():
            out = self.zero
            for k in range(self.H):
                out = out + self.gamma ** k * self.at("r", k)
            return out
        return self._cached("ret", make)

    def replaced(self, k: int, what: str, value: int) -> tuple[np.ndarray, list]:
        """For each trajectory, the index of the one with its a_k (what="a") or s_k (what="s") set to ``value``;
        and (position, trajectory) for those outside the model's list (a numeric model lists the trajectories of
        positive probability only: ``substitute`` evaluates them by the scalar interpreter, if there is one)."""
        def make():
            out, outside = [], []
            for i, (states, actions) in enumerate(self.scalar.trajectories):
                new = ((states, actions[:k] + (value,) + actions[k + 1:]) if what == "a" else
                       (states[:k] + (value,) + states[k + 1:], actions))
                if new not in self._position:
                    if self.scalar_ground is None:
                        raise Unsupported("a replaced trajectory outside the model's list")
                    outside.append((i, new))
                out.append(self._position.get(new, 0))
            return np.array(out, dtype=np.intp), outside
        return self._cached(("replaced", k, what, value), make)

    #: ``derive.grounding.ground`` for the trajectories outside the list (set by ``first_context_value``)
    scalar_ground = None

    def at_replaced(self, g, body: Basic, env: dict, k: int, what: str, value: int):
        """``body`` (whose batch is ``g``) at every trajectory with a_k or s_k set to ``value``."""
        if not g.per_trajectory:
            return g
        index, outside = self.replaced(k, what, value)
        out = g[index]
        if outside:
            # the scalar interpreter at each trajectory outside the list, with every trajectory binding moved to it
            values = [self.scalar_ground(body, self.scalar, {key: (new if v is EVERY else v) for key, v in env.items()})
                      for _, new in outside]
            out = out.with_entries([i for i, _ in outside], values)
        return out

    def histories(self, k: int, first: int) -> tuple[np.ndarray, int]:
        """Each trajectory's history (s_0..s_k, a_0..a_{first-1}) as a group number, and the number of groups."""
        def make():
            rows = np.concatenate([self.states[:, :k + 1], self.actions[:, :first]], axis=1)
            _, groups = np.unique(rows, axis=0, return_inverse=True)
            groups = groups.reshape(-1)
            return groups, int(groups.max()) + 1
        return self._cached(("histories", k, first), make)


def batch_model(model, arith=JetBatch) -> BatchModel:
    """The ``BatchModel`` of a scalar random-point (or numeric) model, built once per model."""
    bm = getattr(model, "_batch", None)
    if bm is None:
        bm = model._batch = BatchModel(model, arith)
    return bm


def _grad_key(e, env) -> tuple:
    """What ``e``'s derivative depends on here: whether a trajectory is bound (every one at once) and the ints."""
    return e, "_traj" in env, _ints(env)


def _ints(env) -> tuple:
    return tuple((k, v) for k, v in env.items() if isinstance(v, int))


def _context(env):
    if "_traj" not in env:
        raise ValueError("a time-indexed node outside any expectation needs a trajectory")
    if env["_traj"] is not EVERY:
        raise Unsupported("a context other than every trajectory")


_COMPILED: dict = {}


def compile_batch(e: Basic):
    """``e`` as a closure ``fn(batch_model, env) -> JetBatch`` (cached per expression)."""
    fn = _COMPILED.get(e)
    if fn is None:
        fn = _COMPILED[e] = _compile(e)
    return fn


def _compile(e: Basic):  # noqa: C901  (one branch per node type, as derive.grounding._compile)
    if isinstance(e, (Expectation, Integrate)):
        var = e.density.var if isinstance(e, Expectation) else e.var
        if any(e.body.has(v) for v in (tau, x) if v != var):
            raise Unsupported(f"{e}: a body that refers to another trajectory variable")
        body, weighted = compile_batch(e.body), isinstance(e, Expectation)
        old = weighted and e.density.param != theta

        def expectation(model, env):
            g = body(model, {**env, var: EVERY, "_traj": EVERY})
            if weighted:
                g = (model.old_model() if old else model).prob_all() * g
            elif not g.per_trajectory:
                g = g.broadcast(model.T)
            return g.total()
        return expectation
    fn = compile_policy_node(e, compile_batch, _grad_key)
    if fn is not None:
        return fn
    if isinstance(e, (Density, TestFn, Return)):
        arg, kind = e.args[0], type(e)

        def trajectory_node(model, env):
            if env.get(arg) is None:
                raise ValueError(f"unbound trajectory variable in {e}")
            if env[arg] is not EVERY:
                raise Unsupported("a trajectory variable bound to one trajectory")
            return model.prob_all() if kind is Density else (model.f_all() if kind is TestFn else model.ret_all())
        return trajectory_node
    if isinstance(e, TIME_NODES):
        return _compile_time_node(e)
    if isinstance(e, (CondExpectation, ActionExpectation, ActionSum, StateSum)):
        return _compile_local(e)
    fn = compile_arithmetic(e, compile_batch)
    if fn is not None:
        return fn
    raise ValueError(f"cannot ground {type(e).__name__}: {e}")


_TABLES = {Transition: "P", Reward: "r", Baseline: "b", StateProb: "Pr", QValue: "Q"}


def _compile_time_node(e):
    time_of, kind = compile_index(e.time), type(e)
    state_only = kind in (Baseline, VValue, StateProb)

    def node(model, env):
        _context(env)
        k = time_of(model, env)
        top = model.H if state_only else model.H - 1
        if not 0 <= k <= top:
            raise ValueError(f"time index {e.time} = {k} of {e} outside 0..{top}")
        if kind is Policy:
            return (model if e.param == theta else model.old_model()).at("pi", k)
        if kind is InitialDist:
            return model.at("rho", 0)
        if kind in _TABLES:
            return model.at(_TABLES[kind], k)
        if kind is VValue:
            return model.at("V", k) if k < model.H else model.zero
        return model.at("Q", k) - model.at("V", k)  # Advantage
    return node


def _compile_local(e):
    """``derive.grounding._compile_local`` on the batch: the body once for every trajectory, then per trajectory
    the sum over the trajectories that differ from it in a_k (s_k), or that share its history."""
    body, time_of, kind = compile_batch(e.args[0]), compile_index(e.args[1]), type(e)
    with_action = kind is CondExpectation and e.with_action

    def local(model, env):
        _context(env)
        k = time_of(model, env)
        S, A, n = model.sizes.as_tuple()
        if not 0 <= k <= n - 1:
            raise ValueError(f"time index {e.args[1]} = {k} of {kind.__name__} outside 0..{n - 1}")
        key = (e, tuple(sorted(map(str, env))), _ints(env))
        if key in model.memo:
            return model.memo[key]
        g = body(model, env)
        if kind is CondExpectation:
            first = k + 1 if with_action else k
            w = model.one
            for j in range(k, n):
                w = (w * model.at("pi", j) if j >= first else w) * model.at("P", j)
            groups, count = model.histories(k, first)
            terms = w * g
            out = terms if count == model.T else terms.group_total(groups, count)[groups]
        elif kind in (ActionExpectation, ActionSum):
            s_k = model.states[:, k]
            out = model.sum((model.pi[s_k, a] * model.at_replaced(g, e.args[0], env, k, "a", a)
                             if kind is ActionExpectation else model.at_replaced(g, e.args[0], env, k, "a", a))
                            for a in range(A))
        else:  # StateSum
            out = model.sum(model.at_replaced(g, e.args[0], env, k, "s", s) for s in range(S))
        model.memo[key] = out
        return out
    return local


def line_value(bm: BatchModel, e: Basic, env: dict) -> JetBatch:
    """``e`` on every trajectory, memoised per model: a derivation's consecutive steps share their lines."""
    key = ("line", e, tuple(env.items()))
    if key not in bm.memo:
        bm.memo[key] = compile_batch(e)(bm, env)
    return bm.memo[key]


def step_vanishes(model, lhs: Basic, rhs: Basic, free, bindings, mode: str) -> bool:
    """Whether lhs - rhs is 0 mod p for every binding (``derive.grounding.step_layout``) at ``model``'s point.

    Raises:
      Unsupported, or whatever the scalar interpreter would raise: the caller then grounds the step by it.
    """
    bm = batch_model(model)
    for b in bindings:
        env = dict(b)
        if mode == "every":
            env.update({v: EVERY for v in free})
        if mode != "none":
            env["_traj"] = EVERY
        v = (line_value(bm, lhs, env) - line_value(bm, rhs, env)).v
        if mode == "first" and np.ndim(v):
            v = v[0]
        if np.any(v):
            return False
    return True


def first_context_value(model, e: Basic, arith=JetBatch, scalar_ground=None):
    """``e`` with the time-indexed nodes' context at ``model.trajectories[0]`` (the numeric half's lines), from the
    batch: the value's components for that context (``v``, ``d``, ...), as one shared batch.

    Args:
      scalar_ground: ``derive.grounding.ground``, to evaluate a body at a trajectory outside the model's list
        (a numeric model's replaced action of probability 0); None: such a line is unsupported.

    Raises:
      Unsupported when the batch cannot evaluate ``e`` exactly as the scalar interpreter would (the caller then
      uses ``derive.grounding.ground``), or whatever that interpreter would raise.
    """
    bm = batch_model(model, arith)
    bm.scalar_ground = scalar_ground
    out = line_value(bm, e, {"_traj": EVERY})
    if out.per_trajectory:
        out = out[np.arange(1)]
    if np.isnan(np.asarray(out.v, dtype=float)).any():
        raise Unsupported("a value the batch cannot give (a log at a probability-0 cell)")
    return out
