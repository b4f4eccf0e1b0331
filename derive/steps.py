"""Steps, derivations, and replay: does each cited rule turn `before` into `after`?

A ``Step`` is one "=" of a derivation: the equation number, the expression (or
equation) before, the ``Rule`` cited, and the expression after.  ``replay``
applies each rule to its ``before`` and accepts the step when the result equals
``after`` structurally, or when their difference expands to zero:

    ok  <=>  rule(before) == after   or   expand(rule(before) - after) == 0

(for equations, side by side).  ``simplify`` is never called: it is about ten
times slower and the source's steps do not need it.  A step may name a focus
``at``, a subexpression of ``before`` the rule is applied to (the rest is kept).

Replay never raises: a rule that does not match, a violated side condition, a
time index outside 0..H-1 (e.g. a sum to t = H) or any error while rewriting is a
failed ``StepCheck`` whose message names the step, the rule and the reason.

>>> from derive.notation import Grad, Density, tau
>>> from derive.rules import TRAJECTORY_FACTORISATION, trajectory_probability
>>> s = Step(9, Density(tau, theta), TRAJECTORY_FACTORISATION, trajectory_probability())
>>> check_step(s).ok
True
"""

from __future__ import annotations

from dataclasses import dataclass

from sympy import Basic, expand
from sympy.core.relational import Equality

from derive.notation import theta  # noqa: F401  (used by the doctest)
from derive.rules import Rule, RuleError, SideConditionError, index_range_problems

__all__ = ["Step", "Derivation", "StepCheck", "check_step", "replay", "equivalent", "GRAD_J"]

#: what a derivation's ``starts_from`` / ``proves`` say for "the gradient of the objective, nabla_theta J"
GRAD_J = "grad_J"


def _valid_number(number) -> bool:
    if isinstance(number, bool):
        return False
    return (isinstance(number, int) and number > 0) or (isinstance(number, str) and number != "")


@dataclass(frozen=True)
class Step:
    """One rewrite of a derivation.

    Attributes:
      number: the equation number of ``after`` (an int for the source's (1)-(15),
        a label such as "RTG3" for the added derivations).
      before: the expression or equation the rule is applied to.
      rule: the rule cited.
      after: the expression or equation the step claims.
      at: optional focus: the subexpression of ``before`` the rule rewrites.
    """

    number: int | str
    before: Basic
    rule: Rule
    after: Basic
    at: Basic | None = None

    def __post_init__(self):
        if not _valid_number(self.number):
            raise ValueError(f"step number must be a positive int or a label, got {self.number!r}")
        if not isinstance(self.rule, Rule):
            raise TypeError(f"step {self.number}: rule must be a Rule")
        for side in (self.before, self.after):
            if not isinstance(side, Basic):
                raise TypeError(f"step {self.number}: {side!r} is not a SymPy expression")
        if self.at is not None and not isinstance(self.at, Basic):
            raise TypeError(f"step {self.number}: the focus {self.at!r} is not a SymPy expression")
        if isinstance(self.before, Equality) != isinstance(self.after, Equality):
            raise ValueError(f"step {self.number}: before and after must both be equations or both not")

    @property
    def is_equation(self) -> bool:
        return isinstance(self.after, Equality)

    def _repr_latex_(self) -> str:   # Jupyter: the step's equation, numbered (derive.display)
        from derive.display import step_repr_latex
        return step_repr_latex(self)

    def _repr_markdown_(self) -> str:
        from derive.display import step_markdown
        return step_markdown(self)


def chain_steps(head, table) -> list[Step]:
    """Steps from ``head`` through a table of ``(number, rule, after[, at])``: each step starts where the last
    ended (``at``, optional, is the step's fifth field)."""
    steps, before = [], head
    for number, rule, after, *at in table:
        steps.append(Step(number, before, rule, after, at[0] if at else None))
        before = after
    return steps


@dataclass(frozen=True)
class Derivation:
    """A named sequence of steps: the single source the tests, report and LaTeX read.

    Attributes:
      name: identifier ("seed", "reward_to_go", "baseline").
      title: one-line human title.
      steps: the steps in order.
      summary: one paragraph on what the derivation establishes.
      starts_from: the proved result its first line is (checked by ``derive.chain``): ``GRAD_J`` (the
        definition nabla_theta E_tau[R(tau)]), an earlier derivation's name (the line it proved: its last
        line, or its first line if it ``ends_at`` an earlier result), or "name:NUMBER" (that step's line;
        an equation's right side); None: it starts from no earlier result.
      proves: what its lines are proved equal to: ``GRAD_J`` (every line equals nabla_theta J, through
        ``starts_from`` or ``ends_at`` or a last equation whose left side is nabla_theta J), or a lemma's
        statement, an equation ``lhs = rhs`` (its first line must be lhs, its last line rhs); None: no claim.
      ends_at: like ``starts_from``, for its last line (a derivation that arrives at a proved result).
    """

    name: str
    title: str
    steps: tuple[Step, ...]
    summary: str = ""
    starts_from: str | None = None
    proves: object = None
    ends_at: str | None = None

    def __post_init__(self):
        if not self.name or not self.steps:
            raise ValueError("a derivation needs a name and at least one step")
        numbers = [s.number for s in self.steps]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"derivation {self.name}: duplicate step numbers {numbers}")
        for field in ("starts_from", "ends_at"):
            v = getattr(self, field)
            if v is not None and (not isinstance(v, str) or not v):
                raise ValueError(f"derivation {self.name}: {field} must be a reference (a non-empty str), got {v!r}")
        if self.proves is not None and self.proves != GRAD_J and not isinstance(self.proves, Equality):
            raise ValueError(f"derivation {self.name}: proves must be GRAD_J or an equation, got {self.proves!r}")

    def step(self, number) -> Step:
        """The step numbered ``number``; raises KeyError if absent."""
        for s in self.steps:
            if s.number == number:
                return s
        raise KeyError(number)

    def _repr_latex_(self) -> str:   # Jupyter: ``from derive import SOURCE; SOURCE`` shows the numbered derivation
        from derive.display import derivation_repr_latex
        return derivation_repr_latex(self)

    def _repr_markdown_(self) -> str:
        from derive.display import derivation_repr_markdown
        return derivation_repr_markdown(self)


@dataclass(frozen=True)
class StepCheck:
    """The outcome of replaying one step."""

    number: int | str
    rule: str
    ok: bool
    message: str


def _same(a: Basic, b: Basic) -> tuple[bool, str]:
    if a == b:
        return True, "structurally equal"
    if expand(a - b) == 0:
        return True, "equal after expand(lhs - rhs) == 0"
    return False, f"differs: rule gives {a}, step claims {b}"


def equivalent(a: Basic, b: Basic) -> tuple[bool, str]:
    """Whether ``a`` and ``b`` are the same expression (or equation, side by side).

    Returns:
      (ok, how): ``how`` names the test that decided.
    """
    if isinstance(a, Equality) and isinstance(b, Equality):
        ok_l, how_l = _same(a.lhs, b.lhs)
        ok_r, how_r = _same(a.rhs, b.rhs)
        if ok_l and ok_r:
            return True, f"lhs {how_l}; rhs {how_r}"
        return False, how_l if not ok_l else how_r
    if isinstance(a, Equality) or isinstance(b, Equality):
        return False, "one side is an equation, the other an expression"
    return _same(a, b)


def _apply(step: Step) -> Basic:
    if step.at is None:
        return step.rule.apply(step.before)
    if not step.before.has(step.at):
        raise RuleError(f"the focus {step.at} is not part of the expression before the step")
    return step.before.xreplace({step.at: step.rule.apply(step.at)})


def check_step(step: Step) -> StepCheck:
    """Replay one step: apply its rule to ``before`` (or its focus) and compare with ``after``.

    Never raises: every failure is a StepCheck with ok False and a message
    "(number) rule: reason".
    """
    def fail(reason: str) -> StepCheck:
        return StepCheck(step.number, step.rule.name, False, f"({step.number}) {step.rule.name}: {reason}")

    try:
        for side, e in (("before", step.before), ("after", step.after)):
            problems = index_range_problems(e)
            if problems:
                return fail(f"time index out of range {side} the step: {problems[0]}")
        got = _apply(step)
        ok, how = equivalent(got, step.after)
    except SideConditionError as err:
        return fail(f"side condition violated: {err}")
    except RuleError as err:
        return fail(f"rule does not apply: {err}")
    except Exception as err:  # noqa: BLE001  (a malformed step is a failed row, never a traceback)
        return fail(f"replay error: {type(err).__name__}: {err}")
    return StepCheck(step.number, step.rule.name, True, how) if ok else fail(how)


def replay(derivation: Derivation) -> list[StepCheck]:
    """Replay every step of ``derivation``.

    Returns:
      one StepCheck per step, in order.
    """
    return [check_step(s) for s in derivation.steps]
