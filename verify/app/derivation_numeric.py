"""The numerical half follows the derivation: every derived line that is an expectation, evaluated exactly.

Each line of the derivations from (8) to the policy-gradient theorem's three forms
claims to equal grad J.  Here the *same SymPy expression* is interpreted on a
built-in example (its MDP and policy, numbers instead of symbols) by the grounding
interpreter of ``derive.grounding``, with every trajectory of positive probability
enumerated, and compared with grad J from ``verify.numerics.exact.gradient`` (DP: a
computation that shares no code with the interpreter):

    E_tau[g] = sum_tau p(tau|theta) g(tau),   grad -> first-order jets with vector derivatives,
    Q_t, V_t, Pr(s_t = s) by DP on the example,  E[. | h_t] by its futures,

so a wrong symbolic line (a dropped gamma^t, a wrong index range) shows here too, as a
numeric difference on a real MDP.  The baseline lines use b(s) = 1 + s (any b(s) keeps
the mean).  Terminal states are absorbing; no action is taken there, which the
interpreter sees as a single action of probability 1 with zero gradient.  Examples whose
trajectories cannot be enumerated within ``MAX_TRAJECTORIES`` (or with a null horizon)
give an undecided row saying why, never a pass.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np

__all__ = ["NumericLine", "NumJet", "numeric_lines", "expectation_lines", "MAX_TRAJECTORIES", "TOLERANCE",
           "QUICK_EXAMPLES", "TWO_STATE", "quick_examples"]

MAX_TRAJECTORIES = 2_000   # the interpreter walks each line's expression once per trajectory (pure Python)
TOLERANCE = 1e-9           # relative to max(1, |grad J|_inf): round-off of a few thousand float64 terms


def _jet_base():
    from derive.grounding import ExactJet
    return ExactJet


class NumJet(_jet_base()):
    """A float with its gradient (a vector, or None once differentiated) and, for products, its log."""

    __slots__ = ()

    def __init__(self, v, d=0.0, lv=None, ld=None):
        self.v, self.d, self.lv, self.ld = v, d, lv, ld

    @classmethod
    def lift(cls, v) -> "NumJet":
        return v if isinstance(v, NumJet) else NumJet(float(v), 0.0)

    @classmethod
    def one(cls) -> "NumJet":
        return NumJet(1.0, 0.0, 0.0, 0.0)

    def is_zero(self) -> bool:
        return self.v == 0 and (self.d is None or not np.any(self.d))

    def to_expr(self, atoms=None):
        return self.v


class _NumAtoms:
    def log(self, arg: NumJet) -> NumJet:
        if arg.lv is None:
            raise ValueError("log of a sum")
        return NumJet(arg.lv, arg.ld)


def _leaf(value: float, grad=0.0) -> NumJet:
    """A parameter: its value, gradient and log (with d log = grad / value)."""
    lv = math.log(value) if value > 0 else None
    ld = None if lv is None else (grad / value if isinstance(grad, np.ndarray) else 0.0)
    return NumJet(float(value), grad, lv, ld)


def _build_model_class():
    from derive.grounding import Sizes, TabularModel

    class NumericModel(TabularModel):
        """A built-in example as a grounding model: numbers and gradient vectors instead of symbols.

        Args:
          mdp: a finite-horizon ``verify.model.mdp.TabularMDP``.
          policy: its ``verify.model.policy.Policy``.
          baseline: b(s), shape [S] (default 1 + s).
        """

        def __init__(self, mdp, policy, baseline=None):  # noqa: D107  (TabularModel's fields, by hand)
            S, A, n = mdp.n_states, mdp.n_actions, mdp.horizon
            self.sizes, self.H, self.normalise, self.rng, self.post = Sizes(S, A, n), n, True, None, {}
            self.atoms, self.memo, self._prob, self._f, self._ret = _NumAtoms(), {}, {}, {}, {}
            self.zero, self.one = NumJet(0.0, 0.0), NumJet(1.0, 0.0, 0.0, 0.0)
            probs, d = policy.probs, policy.theta.size
            self.gamma = _leaf(mdp.gamma) if mdp.gamma > 0 else NumJet(0.0, 0.0)
            self.rho = [_leaf(v) if v > 0 else NumJet(0.0) for v in mdp.initial]
            b = np.arange(S) + 1.0 if baseline is None else np.asarray(baseline, float)
            self.b = [NumJet(float(v)) for v in b]
            R = np.broadcast_to(mdp.rewards, (S, A, S)) if np.ndim(mdp.rewards) == 3 else mdp.transitions * 0 + \
                np.asarray(mdp.rewards)[..., None]
            self.r, self.P, self.pi = {}, {}, {}
            for s, a in itertools.product(range(S), range(A)):
                for s2 in range(S):
                    terminal = bool(mdp.terminal[s])
                    p = (1.0 if s2 == s else 0.0) if terminal else float(mdp.transitions[s, a, s2])
                    self.P[s, a, s2] = _leaf(p) if p > 0 else NumJet(0.0)
                    self.r[s, a, s2] = NumJet(0.0 if terminal else float(R[s, a, s2]))
                if mdp.terminal[s]:  # no action is taken: one action of probability 1, no gradient
                    self.pi[s, a] = _leaf(1.0, np.zeros(d)) if a == 0 else NumJet(0.0, np.zeros(d), 0.0, np.zeros(d))
                else:
                    grad = probs[s, a] * np.asarray(policy.score(s, a), float).ravel()
                    self.pi[s, a] = _leaf(float(probs[s, a]), grad)
            self.trajectories = _positive_trajectories(self, mdp)
            # <score, w> with a table w (the natural gradient's lines) is the tabular softmax's
            self.tabular_softmax = policy.kind == "tabular_softmax"

        def const(self, c):
            return NumJet(float(c), 0.0, math.log(c) if c > 0 else None, 0.0)

        def sum(self, items):
            items = list(items)
            return items[0] if len(items) == 1 else sum(items, self.zero)

        skip_zero = True  # prune futures of probability 0 (most of an example's grid)

        def f(self, traj):
            raise ValueError("the generic f(x) has no value on an example")

        def residual_is_zero(self, res) -> bool:  # pragma: no cover - not used for numbers
            return res.is_zero()

    return NumericModel


def _positive_trajectories(model, mdp) -> list:
    """Every padded trajectory (s_0, a_0, ..., s_H) of positive probability, depth first."""
    S, A, n = model.sizes.as_tuple()
    out = []

    def grow(states, actions):
        if len(actions) == n:
            out.append((tuple(states), tuple(actions)))
            if len(out) > MAX_TRAJECTORIES:
                raise OverflowError
            return
        s = states[-1]
        for a in range(A):
            if model.pi[s, a].v == 0:
                continue
            for s2 in range(S):
                if model.P[s, a, s2].v > 0:
                    grow(states + [s2], actions + [a])

    for s0 in range(S):
        if model.rho[s0].v > 0:
            grow([s0], [])
    return out


NumericModel = None  # built on first use (derive is imported lazily, as in verify.app.report)


class TriState:
    """A row whose ``ok`` is True (passed), False (failed) or None (undecided, never counted as passed)."""

    ok: bool | None

    @property
    def passed(self) -> bool:
        return self.ok is True

    @property
    def undecided(self) -> bool:
        return self.ok is None


@dataclass(frozen=True)
class NumericLine(TriState):
    """One derived line evaluated on the built-in examples.

    Attributes:
      derivation, number: the line (the ``after`` of that step; "head" for a derivation's first line).
      ok: every evaluated example gives |line - grad J|_inf <= tol (None: no example could be evaluated).
      evaluated: (example, error |line - grad J|_inf, tol) per evaluated example (error nan: not evaluable).
      skipped: (example, reason) per example that cannot be enumerated.
      seconds: wall time.
      message: the verdict in words (computed from the above).
    """

    derivation: str
    number: int | str
    ok: bool | None
    evaluated: tuple
    skipped: tuple
    seconds: float
    message: str

    def to_json(self) -> dict:
        return {"derivation": self.derivation, "number": self.number, "ok": self.ok,
                "evaluated": [{"example": n, "error": None if math.isnan(e) else e, "tol": t}
                              for n, e, t in self.evaluated],
                "skipped": [{"example": n, "reason": r} for n, r in self.skipped], "message": self.message}


def expectation_lines(derivations=None) -> list:
    """(derivation name, number, expression) for every line claimed equal to grad J.

    Only derivations that claim ``proves=GRAD_J`` count: of one chained to a proved result
    (``starts_from``/``ends_at``: reward-to-go, baseline, the policy-gradient theorem) every line, of
    one that proves it by a last equation (the source) the equations whose left side is grad J, its
    (8) (both sides), (14) and (15); the source's (1)-(7) (a generic f), (9)-(13) (identities per
    trajectory) and the EGLP lemma (zero per state) are not about grad J.
    """
    from derive.seed import DERIVATIONS
    from derive.surrogate import NOT_GRADIENT_LINES     # the performance-difference lemma: J(theta) - J(theta_old)

    from derive.chain import DEFINITION
    from derive.steps import GRAD_J

    out = []
    for d in derivations if derivations is not None else DERIVATIONS:
        if d.proves != GRAD_J or d.name in NOT_GRADIENT_LINES:
            continue   # the EGLP lemma (zero per state), derivations that claim no result about grad J
        for i, step in enumerate(d.steps):
            if d.starts_from is None and d.ends_at is None and not (
                    step.is_equation and step.after.lhs == DEFINITION):
                continue  # the source's (1)-(7) are about a generic f, (9)-(13) hold per trajectory
            sides = [("head", step.before)] if i == 0 and not step.is_equation else []
            if step.is_equation:
                sides += [(f"{step.number} lhs", step.after.lhs)] if step.number == 8 else []
                sides.append((f"{step.number} rhs" if step.number == 8 else step.number, step.after.rhs))
            else:
                sides.append((step.number, step.after))
            out += [(d.name, number, e) for number, e in sides]
    return out


QUICK_EXAMPLES = ("bandit", "two_state")

#: the quick half's model with time and discount: 2 states, 2 actions, H = 3, gamma = 0.8, rewards on every
#: transition and a state-dependent policy, so a dropped or misplaced gamma^t, a wrong index range or a
#: reward-to-go restarted at t shows as a difference from grad J (the one-step bandit cannot show any of them)
TWO_STATE = {
    "name": "two_state", "description": "2 states, 2 actions, H = 3, gamma = 0.8: the quick numeric half's "
                                         "model with time and discount.",
    "states": 2, "actions": 2, "initial": [0.6, 0.4],
    "transitions": [[[0.7, 0.3], [0.2, 0.8]], [[0.5, 0.5], [0.9, 0.1]]],
    "rewards": [[[1.0, -0.5], [0.3, 2.0]], [[-1.0, 0.4], [0.7, 0.0]]],
    "gamma": 0.8, "horizon": 3,
    "policy": {"type": "tabular_softmax", "theta": [[0.2, -0.3], [0.5, 0.1]]},
}


def quick_examples() -> dict:
    """{name: Problem} of the quick numeric half: the bandit and ``TWO_STATE`` (time and discount)."""
    from verify.model.builtin import builtin_examples
    from verify.model.problem import problem_from_dict

    return {"bandit": builtin_examples()["bandit"], "two_state": problem_from_dict(dict(TWO_STATE))}


def _verdict(evaluated, skipped, errors) -> tuple[bool | None, str]:
    """The verdict and its evidence; the skipped examples are named only when nothing was evaluated
    (they are the same for every line: ``NumericLine.skipped`` holds them)."""
    parts = [f"{n}: |line - ∇J|∞ = {e:.1e} {'≤' if e <= t else '>'} {t:.0e}" for n, e, t in evaluated
             if not math.isnan(e)]
    parts += [f"{n}: cannot evaluate: {why}" for n, why in errors]
    if not evaluated:
        return None, "undecided: " + "; ".join(f"{n}: {why}" for n, why in skipped)
    ok = all(not math.isnan(e) and e <= t for _, e, t in evaluated)
    return ok, "; ".join(parts)


def numeric_lines(examples=None, derivations=None, quick: bool = False) -> list[NumericLine]:
    """Evaluate every line of ``expectation_lines`` on the built-in examples; compare with exact grad J.

    Args:
      examples: {name: verify.model.problem.Problem} (default: the built-in examples; ``quick``: ``quick_examples()``,
        the bandit and a 2-state model with H = 3 and gamma < 1).
      derivations: the derivations (default ``derive.seed.DERIVATIONS``; tests pass corrupted copies).
      quick: evaluate on ``QUICK_EXAMPLES`` only.

    Returns:
      one NumericLine per line, in derivation order.
    """
    if examples is None and derivations is None:     # pgverify's own lines and examples: a function of its code
        from derive import proof_cache

        return proof_cache.memo("numeric_lines", (bool(quick),), lambda: _numeric_lines(None, None, quick),
                                lambda rows: [[r.derivation, r.number, r.ok, [list(e) for e in r.evaluated],
                                               [list(k) for k in r.skipped], r.seconds, r.message] for r in rows],
                                lambda hit: [NumericLine(str(d), n, None if ok is None else bool(ok),
                                                         tuple((str(a), float(e), float(t)) for a, e, t in ev),
                                                         tuple((str(a), str(why)) for a, why in sk),
                                                         float(sec), str(msg))
                                             for d, n, ok, ev, sk, sec, msg in hit])
    return _numeric_lines(examples, derivations, quick)


def _line_value(e, model, ground):
    """The line ``e`` on ``model`` (context: its first trajectory), every trajectory at once where
    ``derive.grounding_batch`` can (the same operations in the same order as the scalar interpreter, so the same
    floats; ``tests/test_derivation_numeric_batch.py``), else by ``derive.grounding.ground``."""
    from derive.grounding_batch import first_context_value
    from derive.jet_batch import FloatJetBatch

    try:
        out = first_context_value(model, e, FloatJetBatch, ground)
        return NumJet(out.v[0], None if out.d is None else out.d[0])
    except Exception:  # noqa: BLE001  (unsupported, or an error the scalar interpreter words)
        return ground(e, model, {"_traj": model.trajectories[0]})


def _numeric_lines(examples, derivations, quick: bool) -> list[NumericLine]:
    global NumericModel
    from derive.grounding import ground
    from verify.model.builtin import builtin_examples
    from verify.numerics.exact import gradient

    if NumericModel is None:
        NumericModel = _build_model_class()
    if examples is None:
        examples = quick_examples() if quick else builtin_examples()
    lines = expectation_lines(derivations)
    models, skipped = {}, []
    for name, problem in examples.items():
        mdp, policy = problem.mdp, problem.policy
        if mdp.horizon is None:
            skipped.append((name, "horizon null: trajectories are unbounded"))
            continue
        try:
            model = NumericModel(mdp, policy)
        except OverflowError:
            skipped.append((name, f"more than {MAX_TRAJECTORIES} trajectories of positive probability"))
            continue
        exact = np.asarray(gradient(mdp, policy, "dp").grad, float).ravel()
        models[name] = (model, exact, TOLERANCE * max(1.0, float(np.max(np.abs(exact)))))
    rows, values = [], {}
    for d, n, e in lines:
        t0 = time.perf_counter()
        evaluated, errors = [], []
        for name, (model, exact, tol) in models.items():
            try:
                if (name, e) not in values:   # a seam's line recurs as the next derivation's first line
                    values[name, e] = _line_value(e, model, ground)
                vec = np.broadcast_to(np.asarray(values[name, e].v, float), exact.shape)
                evaluated.append((name, float(np.max(np.abs(vec - exact))), tol))
            except Exception as exc:  # noqa: BLE001  (a malformed line is a failed row, never a traceback)
                evaluated.append((name, float("nan"), tol))
                errors.append((name, f"{type(exc).__name__}: {exc}"))
        ok, message = _verdict(evaluated, skipped, errors)
        rows.append(NumericLine(d, n, ok, tuple(evaluated), tuple(skipped), time.perf_counter() - t0, message))
    return rows
