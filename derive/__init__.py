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
from derive.rules import Rule, RuleError
from derive.seed import BASELINE, DERIVATIONS, REWARD_TO_GO, SEED
from derive.steps import Derivation, Step, StepCheck, replay

__all__ = [
    "SEED", "REWARD_TO_GO", "BASELINE", "DERIVATIONS", "Derivation", "Step", "StepCheck",
    "Rule", "RuleError", "replay", "ground_step", "ground_derivation", "GroundingResult",
    "check_gaussian", "uniform_counterexample", "Erratum", "symbolic_errata", "render_document",
]
