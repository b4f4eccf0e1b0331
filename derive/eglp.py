"""The EGLP lemma: the expected grad-log-prob of a policy is zero, derived from sum_a pi = 1.

    E_{a ~ pi_theta(.|s)}[grad log pi_theta(a|s)] = sum_a pi grad log pi = sum_a grad pi
                                                  = grad sum_a pi = grad 1 = 0

(the "Expected Grad-Log-Prob" lemma in OpenAI's Spinning Up, Part 3, "Intro to Policy
Optimization", https://spinningup.openai.com/en/latest/spinningup/rl_intro3.html; Williams, "Simple statistical
gradient-following algorithms for connectionist reinforcement learning", 1992, https://doi.org/10.1007/BF00992696).  ``EGLP`` is its derivation, replayed
and grounded like the source's; ``EGLP_RULE`` is the lemma as a rule, instantiated
at any time step, with ``proved_by = "eglp"``: reward-to-go and the baseline use it
(through the tower property) instead of an axiom.

>>> from derive.steps import replay
>>> all(c.ok for c in replay(EGLP))
True
"""

from __future__ import annotations

from sympy import Eq, S, log

from derive import rules as R
from derive.notation import ActionExpectation, ActionSum, Grad, Policy, t
from derive.rules import Condition, Rule
from derive.steps import Derivation, chain_steps

__all__ = ["EGLP", "EGLP_RULE", "score"]


def score(time=t):
    """grad_theta log pi_theta(a_time | s_time)."""
    return Grad(log(Policy(time)))


EGLP = Derivation(
    "eglp", "The EGLP lemma: the score of a policy has mean zero",
    tuple(chain_steps(ActionExpectation(score(), t), [
        ("EGLP1", R.ACTION_EXPECTATION_AS_SUM, ActionSum(Policy(t) * score(), t)),
        ("EGLP2", R.SCORE_TIMES_POLICY, ActionSum(Grad(Policy(t)), t)),
        ("EGLP3", R.GRAD_OUT_OF_ACTION_SUM, Grad(ActionSum(Policy(t), t))),
        ("EGLP4", R.POLICY_NORMALISED, Grad(S.One)),
        ("EGLP5", R.GRAD_OF_INDEPENDENT, S.Zero),
    ])),
    "For every state s_t: E_{a_t ~ pi(.|s_t)}[grad log pi(a_t|s_t)] = sum_a grad pi(a|s_t) "
    "= grad sum_a pi(a|s_t) = grad 1 = 0 (Spinning Up's expected grad-log-prob lemma). "
    "Reward-to-go and the baseline reduce to it through the tower property.",
    proves=Eq(ActionExpectation(score(), t), S.Zero, evaluate=False))

OWN_ACTION = "the mean is over the score's own action (E_{a_t ~ pi(.|s_t)}[grad log pi(a_t|s_t)])"


def _score_time(n):
    b = n.body
    if isinstance(b, Grad) and isinstance(b.expr, log) and isinstance(b.expr.args[0], Policy):
        return b.expr.args[0].time
    return None


def _eglp_match(n, ctx):
    if isinstance(n, ActionExpectation) and _score_time(n) is not None:
        return S.Zero


EGLP_RULE = Rule(
    "eglp", "The EGLP lemma (derivation EGLP1-EGLP5): E_{a_t ~ pi(.|s_t)}[grad log pi(a_t|s_t)] = 0.",
    ("sum_a pi_theta(a|s) = 1 for every s", OWN_ACTION), "EGLP lemma",
    None, True, _eglp_match, "E_{a_t ~ pi(.|s_t)}[grad log pi(a_t|s_t)]",
    (Condition(OWN_ACTION, lambda n, ctx: _score_time(n) == n.time),), proved_by="eglp")
