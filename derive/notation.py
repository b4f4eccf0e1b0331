"""SymPy expression classes for the notation of the policy-gradient derivation.

Every object of the source text is a node that SymPy can hold, compare, substitute
into and print: ``Expectation`` (E_{x~p}[f]), ``Grad`` (nabla_theta),
``Integrate`` (int dx), ``Density`` (p(x|theta), p(tau|theta)), ``TestFn`` (f(x)),
``Return`` (R(tau)), ``Policy`` (pi_theta(a_t|s_t)), ``Transition``
(p(s_{t+1}|s_t,a_t)), ``InitialDist`` (rho_0(s_0)), ``Reward`` (r_t) and
``Baseline`` (b(s_t)); for the EGLP lemma and the policy-gradient theorem also
``CondExpectation`` (E[.|s_0..s_t] or E[.|s_0..s_t, a_t]), ``ActionExpectation``
(E_{a_t~pi(.|s_t)}), ``ActionSum`` (sum over a_t), ``StateSum`` (sum over s_t),
``StateProb`` (Pr(s_t = s)), ``QValue``, ``VValue`` and ``Advantage`` (Q_t, V_t, A_t).
Sums and products over time are SymPy's own ``Sum`` and
``Product`` with the bounds spelled out, and ``log`` is SymPy's ``log``.

The nodes are deliberately inert: no node evaluates itself, so an expression is
exactly the text of an equation, and only the rewrite rules (``derive.rules``)
or an interpretation (``derive.grounding``, ``derive.continuous``) give it
meaning.

>>> from sympy import sstr
>>> sstr(Grad(Expectation(TestFn(x), Density(x, theta))))
'grad_theta(E_{x ~ p(.|theta)}[f(x)])'
"""

from __future__ import annotations

from sympy import Basic, Expr, Integer, Product, S, Sum, Symbol, sympify

__all__ = [
    "theta", "theta_old", "x", "tau", "t", "tp", "H", "gamma", "At", "ScoreDot",
    "Expectation", "Grad", "Integrate", "Density", "TestFn", "Return",
    "Policy", "Transition", "InitialDist", "Reward", "Baseline",
    "CondExpectation", "ActionExpectation", "ActionSum", "StateSum", "StateProb",
    "QValue", "VValue", "Advantage", "TIME_NODES",
    "time_sum", "time_product",
]

theta = Symbol("theta", real=True)
#: the parameter the data were collected with (PPO's and TRPO's theta_old): a constant for grad_theta
theta_old = Symbol("theta_old", real=True)
x = Symbol("x", real=True)
tau = Symbol("tau")
t = Symbol("t", integer=True, nonnegative=True)
tp = Symbol("t'", integer=True, nonnegative=True)
H = Symbol("H", integer=True, positive=True)
gamma = Symbol("gamma", positive=True)


class _Node(Expr):
    """Base of the inert notation nodes: commutative scalars that never evaluate."""

    is_commutative = True

    def __new__(cls, *args):
        return Expr.__new__(cls, *[sympify(a) for a in args])

    def _pstr(self, printer, i: int) -> str:
        return printer._print(self.args[i])


def _arg(i: int) -> property:
    """The node's argument ``i`` under a name (read-only): the nodes are their arguments, SymPy's way."""
    return property(lambda self: self.args[i])


class Density(_Node):
    """p(v | theta): the probability (density) of ``v`` under parameter ``theta``.

    An optional third argument names the support (e.g. ``Interval(0, theta)``); without
    it the support is the whole (theta-independent) space of ``v``.
    """

    var, param = _arg(0), _arg(1)

    @property
    def support(self) -> Basic | None:
        return self.args[2] if len(self.args) > 2 else None

    def _sympystr(self, printer):
        if self.support is not None:
            return f"p({self._pstr(printer, 0)}|{self._pstr(printer, 1)}; {self._pstr(printer, 2)})"
        return f"p({self._pstr(printer, 0)}|{self._pstr(printer, 1)})"


class Expectation(_Node):
    """E_{v ~ p(.|theta)}[body], where ``density`` is a ``Density`` p(v|theta)."""

    def __new__(cls, body, density):
        if not isinstance(density, Density):
            raise TypeError(f"Expectation needs a Density, got {density!r}")
        return _Node.__new__(cls, body, density)

    body, density = _arg(0), _arg(1)

    def _sympystr(self, printer):
        d = self.density
        return (f"E_{{{printer._print(d.var)} ~ p(.|{printer._print(d.param)})}}"
                f"[{self._pstr(printer, 0)}]")


class Grad(_Node):
    """nabla_wrt expr, unevaluated."""

    def __new__(cls, expr, wrt=theta):
        return _Node.__new__(cls, expr, wrt)

    expr, wrt = _arg(0), _arg(1)

    def _sympystr(self, printer):
        return f"grad_{self._pstr(printer, 1)}({self._pstr(printer, 0)})"


class Integrate(_Node):
    """int d(var) body over the whole (θ-independent) support of ``var``."""

    body, var = _arg(0), _arg(1)

    def _sympystr(self, printer):
        return f"Int(d{self._pstr(printer, 1)}, {self._pstr(printer, 0)})"


class TestFn(_Node):
    """f(v): a θ-independent test function of the random variable."""

    __test__ = False  # keep pytest from collecting the class

    def _sympystr(self, printer):
        return f"f({self._pstr(printer, 0)})"


class Return(_Node):
    """R(tau): the discounted return sum_{t=0}^{H-1} gamma^t r_t of a trajectory."""

    def _sympystr(self, printer):
        return f"R({self._pstr(printer, 0)})"


class _TimeNode(_Node):
    """A node indexed by a time step (a symbol such as t, or an integer)."""

    time = _arg(0)

    def _sub(self, printer, shift: int = 0) -> str:
        return printer._print(self.time + shift)


class Policy(_TimeNode):
    """pi_theta(a_time | s_time)."""

    def __new__(cls, time, param=theta):
        return _Node.__new__(cls, time, param)

    param = _arg(1)

    def _sympystr(self, printer):
        return f"pi_{self._pstr(printer, 1)}(a_{self._sub(printer)}|s_{self._sub(printer)})"


class Transition(_TimeNode):
    """p(s_{time+1} | s_time, a_time): the environment's transition probability."""

    def _sympystr(self, printer):
        k = self._sub(printer)
        return f"P(s_{self._sub(printer, 1)}|s_{k},a_{k})"


class InitialDist(_TimeNode):
    """rho_0(s_0): the initial-state distribution (always at time 0)."""

    def __new__(cls):
        return _Node.__new__(cls, Integer(0))

    def _sympystr(self, printer):
        return "rho0(s_0)"


class Reward(_TimeNode):
    """r_time = r(s_time, a_time, s_{time+1})."""

    def _sympystr(self, printer):
        return f"r_{self._sub(printer)}"


class Baseline(_TimeNode):
    """b(s_time): a baseline that depends on the state only (never on a_time)."""

    def _sympystr(self, printer):
        return f"b(s_{self._sub(printer)})"


class CondExpectation(_Node):
    """E[body | s_0, a_0, ..., s_time] (with_action = 0) or E[body | s_0, ..., s_time, a_time] (with_action = 1).

    The conditional expectation over the rest of the trajectory given its history up to
    ``time``, under the policy and the transitions.
    """

    def __new__(cls, body, time, with_action=0):
        flag = sympify(with_action)
        if flag not in (S.true, S.false, S.Zero, S.One):
            raise ValueError(f"with_action must be 0 or 1, got {with_action!r}")
        return _Node.__new__(cls, body, time, Integer(1 if flag in (S.true, S.One) else 0))

    body, time = _arg(0), _arg(1)

    @property
    def with_action(self) -> bool:
        return bool(self.args[2])

    def _given(self, printer, sub) -> str:
        k = sub(self.time)
        return f"h_{k}, a_{k}" if self.with_action else f"h_{k}"

    def _sympystr(self, printer):
        return f"E[{self._pstr(printer, 0)} | {self._given(printer, printer._print)}]"


class ActionExpectation(_Node):
    """E_{a_time ~ pi_theta(.|s_time)}[body]: the mean over the action at ``time`` given s_time."""

    body, time = _arg(0), _arg(1)

    def _sympystr(self, printer):
        k = self._pstr(printer, 1)
        return f"E_{{a_{k} ~ pi(.|s_{k})}}[{self._pstr(printer, 0)}]"


class ActionSum(_Node):
    """sum_{a_time} body: the sum over every action a at ``time`` (s_time fixed)."""

    body, time = _arg(0), _arg(1)

    def _sympystr(self, printer):
        return f"Sum_{{a_{self._pstr(printer, 1)}}}({self._pstr(printer, 0)})"


class StateSum(_Node):
    """sum_{s_time} body: the sum over every state at ``time``."""

    body, time = _arg(0), _arg(1)

    def _sympystr(self, printer):
        return f"Sum_{{s_{self._pstr(printer, 1)}}}({self._pstr(printer, 0)})"


class StateProb(_TimeNode):
    """Pr(s_time = s | pi_theta): the marginal probability of the state at ``time``."""

    def _sympystr(self, printer):
        return f"Pr(s_{self._sub(printer)})"


class QValue(_TimeNode):
    """Q_time(s_time, a_time) = E[sum_{t'>=time} gamma^{t'-time} r_{t'} | s_time, a_time] (finite horizon)."""

    def _sympystr(self, printer):
        k = self._sub(printer)
        return f"Q_{k}(s_{k},a_{k})"


class VValue(_TimeNode):
    """V_time(s_time) = E_{a ~ pi(.|s_time)}[Q_time(s_time, a)]."""

    def _sympystr(self, printer):
        k = self._sub(printer)
        return f"V_{k}(s_{k})"


class Advantage(_TimeNode):
    """A_time(s_time, a_time) = Q_time(s_time, a_time) - V_time(s_time)."""

    def _sympystr(self, printer):
        k = self._sub(printer)
        return f"A_{k}(s_{k},a_{k})"


#: the nodes indexed by a time step, each with ``.time``
TIME_NODES = (Policy, Transition, InitialDist, Reward, Baseline, StateProb, QValue, VValue, Advantage)


def time_sum(expr, var=t, lo=0, hi=H - 1) -> Sum:
    """sum_{var=lo}^{hi} expr, unevaluated (default: over t = 0 .. H-1).

    >>> time_sum(Reward(t))
    Sum(r_t, (t, 0, H - 1))
    """
    return Sum(expr, (var, lo, hi))


def time_product(expr, var=t, lo=0, hi=H - 1) -> Product:
    """prod_{var=lo}^{hi} expr, unevaluated (default: over t = 0 .. H-1)."""
    return Product(expr, (var, lo, hi))


class At(_Node):
    """[expr] at ``param``: ``expr`` (a value of the policy, e.g. A_t or V_t) evaluated at another parameter.

    A constant for grad_theta (the surrogates' A^{theta_old}_t); grounding evaluates it under a second policy
    whose entries have no derivative (independent of pi, or pi's values at theta = theta_old).
    """

    def __new__(cls, expr, param=None):
        return _Node.__new__(cls, expr, theta_old if param is None else param)

    expr, param = _arg(0), _arg(1)

    def _sympystr(self, printer):
        return f"[{self._pstr(printer, 0)}]_{self._pstr(printer, 1)}"


class ScoreDot(_Node):
    """<grad_theta log pi_theta(a_time|s_time), w>: the score contracted with a table w (the tabular softmax's
    parameters are one per (s, a), so w is a function of (s, a), e.g. the advantage A_time); F w's integrand."""

    def __new__(cls, time, table):
        return _Node.__new__(cls, time, table)

    time, table = _arg(0), _arg(1)

    def _sympystr(self, printer):
        k = self._pstr(printer, 0)
        return f"<grad log pi(a_{k}|s_{k}), {self._pstr(printer, 1)}>"
