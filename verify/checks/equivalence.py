r"""What a catalog pitfall is on the problem at hand: structural equivalences with an unbiased estimator.

A pitfall is "one transform changed" (``verify.checks.estimators``), and on some problems the change is the identity:

| pitfall              | equals        | when                                  | why                                             |
|----------------------|---------------|---------------------------------------|-------------------------------------------------|
| rtg_restart_discount | reward_to_go  | gamma = 1, or horizon 1               | gamma^(t'-t) = gamma^t' when gamma = 1 or t = 0 |
| gae_no_discount      | gae           | gamma = 1, or horizon 1               | the missing gamma^t is 1                        |
| gae_stationary_value | gae           | horizon null, or horizon 1            | the stationary V is the exact V (V_t = V_0)     |

On such a problem the row's honest expectation is "no bias here", not "biased": without an enumeration no test
can catch a bias that is not there, and calling the row "not caught (bias unknown)" would be a permanent false
"undecided". The equivalence is a per-episode identity (the same estimate on every trajectory, to round-off;
``tests/test_labels.py`` compares the values), so the row is then judged as the unbiased estimator it equals.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Equivalence", "structural_equivalence"]


@dataclass(frozen=True)
class Equivalence:
    """A pitfall that coincides, on this problem, with an unbiased catalog estimator.

    Attributes:
      estimator: the pitfall's name. equals: the unbiased estimator's name. reason: the condition, in words.
    """

    estimator: str
    equals: str
    reason: str

    def describe(self) -> str:
        return f"no bias on this problem: equals {self.equals} ({self.reason})"


def structural_equivalence(name: str, mdp) -> Equivalence | None:
    """The unbiased catalog estimator the pitfall ``name`` equals on ``mdp`` per episode, or None.

    >>> from verify.model.builtin import builtin_examples
    >>> structural_equivalence("rtg_restart_discount", builtin_examples()["bandit"].mdp).equals
    'reward_to_go'
    >>> structural_equivalence("rtg_restart_discount", builtin_examples()["chain"].mdp) is None
    True
    """
    gamma, H = mdp.gamma, mdp.horizon
    one_step = H == 1
    if name in ("rtg_restart_discount", "gae_no_discount"):
        equals = "reward_to_go" if name == "rtg_restart_discount" else "gae"
        if gamma == 1.0:
            return Equivalence(name, equals, "gamma = 1: every discount factor is 1")
        if one_step:
            return Equivalence(name, equals, "horizon 1: only t = 0, where the discount starts anyway")
    if name == "gae_stationary_value":
        if H is None:
            return Equivalence(name, "gae", "horizon null: the stationary V is the exact V")
        if one_step:
            return Equivalence(name, "gae", "horizon 1: only V_0 is used")
    return None
