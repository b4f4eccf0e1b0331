"""Check your own derivation: the report's derivation checks (replay, grounding, the chain, the numeric half)
on a ``derive.steps.Derivation`` you wrote, chained to the built-in derivations it starts from or ends at.

>>> from derive.userfile import parse_derivation
>>> per_step = parse_derivation('''
... name: per_step
... starts_from: reward_to_go
... proves: grad_J
... start: E(time_sum(score(t) * reward_to_go(t)))
... step P1 expectation_of_sum: time_sum(E(score(t) * reward_to_go(t)))
... ''')
>>> result = check_derivation(per_step, quick=True)
>>> result.passed, [row.label for row in result.section.chain]
(True, ['per_step ← reward_to_go (RTG9)', 'per_step proves ∇J'])
"""
from __future__ import annotations

from dataclasses import dataclass

from verify.errors import UsageError

__all__ = ["DerivationCheck", "check_derivation", "step_status"]


@dataclass(frozen=True)
class DerivationCheck:
    """What the checks found for one derivation.

    Attributes:
      derivation: the ``derive.steps.Derivation`` checked.
      section: ``verify.app.report.DerivationSection``: its steps' rows, its chain rows (seams, claimed result,
        lemma uses) and its numeric rows (lines claimed equal to grad J, on the examples).
      quick: grounded at (2, 2, 2) and evaluated on the quick examples only.
    """

    derivation: object
    section: object
    quick: bool

    @property
    def failures(self) -> list[str]:
        return self.section.failures

    @property
    def passed(self) -> bool:
        """No row failed (numeric rows that could not be decided are not failures, nor passes)."""
        return not self.failures

    def to_json(self) -> dict:
        d = self.derivation
        return {"derivation": d.name, "title": str(d.title), "starts_from": d.starts_from, "ends_at": d.ends_at,
                "proves": None if d.proves is None else str(d.proves), "quick": self.quick,
                "passed": self.passed, "steps": [r.to_json() for r in self.section.steps],
                "chain": [r.to_json() for r in self.section.chain],
                "numeric": [r.to_json() for r in self.section.numeric], "failures": self.failures}


def check_derivation(derivation, quick: bool = False, builtins=None) -> DerivationCheck:
    """Replay and ground every step of ``derivation``, check its seams, claimed result and lemma uses against
    the built-in derivations (``derive.seed.DERIVATIONS``, or ``builtins``), and evaluate its lines claimed
    equal to grad J on the examples: the same functions ``pgverify report`` runs.

    Raises:
      UsageError: the derivation's name is a built-in derivation's.
    """
    from derive.steps import Derivation
    from verify.app.report import DerivationSection, chain_rows, derivation_rows, FULL_SIZES, QUICK_SIZES
    from verify.app.derivation_numeric import numeric_lines

    if builtins is None:
        from derive.seed import DERIVATIONS as builtins
    if not isinstance(derivation, Derivation):
        raise UsageError(f"expected a derive.steps.Derivation, got {type(derivation).__name__}")
    if derivation.name in {d.name for d in builtins}:
        raise UsageError(f"the derivation's name {derivation.name!r} is a built-in derivation's; choose another")
    sizes = QUICK_SIZES if quick else FULL_SIZES
    chain = [r for r in chain_rows(sizes, tuple(builtins) + (derivation,)) if r.derivation == derivation.name]
    section = DerivationSection(derivation_rows(sizes, [derivation]), chain,
                                numeric_lines(quick=quick, derivations=[derivation]))
    return DerivationCheck(derivation, section, quick)


def step_status(rows) -> dict:
    """{(derivation, number): derive.latex.StepStatus} from report rows (for the LaTeX and Markdown export)."""
    from derive.latex import StepStatus

    return {(r.derivation, r.number): StepStatus(r.replay_ok, r.replay_message, tuple(
        (tuple(g.sizes), g.method, g.ok, g.message) for g in r.grounding)) for r in rows}
