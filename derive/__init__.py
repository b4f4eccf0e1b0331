"""pgverify.derive: the policy-gradient derivation as SymPy data (SymPy only; never imports verify).

The public surface the report, the CLI and the tests use:

>>> from derive import DERIVATIONS, replay
>>> all(c.ok for d in DERIVATIONS for c in replay(d))
True
"""

from derive.continuous import check_gaussian, uniform_counterexample
from derive.errata import Erratum, symbolic_errata
from derive.grounding import GroundingResult, ground_derivation, ground_step
from derive.latex import render_document
from derive.rules import Condition, Rule, RuleError, SideConditionError
from derive.seed import BASELINE, DERIVATIONS, EGLP, PG_ADVANTAGE, PG_Q, PG_STATE, REWARD_TO_GO, SOURCE
from derive.steps import Derivation, Step, StepCheck, replay

__all__ = [
    "SOURCE", "REWARD_TO_GO", "BASELINE", "EGLP", "PG_Q", "PG_ADVANTAGE", "PG_STATE", "DERIVATIONS",
    "Derivation", "Step", "StepCheck", "Rule", "RuleError", "SideConditionError", "Condition", "replay",
    "ground_step", "ground_derivation", "GroundingResult",
    "check_gaussian", "uniform_counterexample", "Erratum", "symbolic_errata", "render_document",
]


def __getattr__(name):
    # ``SEED`` was the source derivation's old name ("seed" now means a random seed only)
    if name == "SEED":
        import warnings
        warnings.warn("derive.SEED is deprecated; use derive.SOURCE", DeprecationWarning, stacklevel=2)
        return SOURCE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
