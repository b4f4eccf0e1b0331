"""The natural gradient of the tabular softmax is the advantage (Kakade 2001), in pgverify's notation.

The Fisher matrix is F = sum_t gamma^t E[grad log pi(a_t|s_t) grad log pi(a_t|s_t)^T], so for a parameter-space
vector w, F w = E_tau[sum_t gamma^t grad log pi(a_t|s_t) <grad log pi(a_t|s_t), w>]. For the tabular softmax a
parameter vector is a table w(s, a), and with w = A_t (the advantage at each t):

    NATURAL_GRADIENT  E_tau[sum_t gamma^t grad log pi(a_t|s_t) <grad log pi(a_t|s_t), A_t>]
                    = E_tau[sum_t gamma^t grad log pi(a_t|s_t) (A_t(s_t, a_t) - E_{a_t ~ pi}[A_t(s_t, a_t)])]
                    = E_tau[sum_t gamma^t grad log pi(a_t|s_t) A_t(s_t, a_t)]        (the head of pg_advantage)

so F A = grad J, i.e. F^+ grad J = A up to F's null space (a constant per state) when A does not depend on t
(horizon null: Kakade 2001, Theorem 1; the compatible-features theorem of Sutton et al. 2000, Theorem 2, with
psi^T w = A). For a finite horizon the time-independent w that works is the occupancy-averaged
Abar(s, a) = sum_t d_t(s) A_t(s, a) / omega(s) (``verify.checks.theory.averaged_advantage``).

What grounding proves and what it cannot: step NG1 is the tabular softmax's score, which grounding (whose policy
entries pi_{s,a} carry a generic derivative, not the softmax's) interprets by that same formula, so its grounding
checks the notation only; NG2 (the advantage has mean zero) is a real identity, grounded. The identity F Abar =
grad J and F^+ grad J = Abar - mean_a Abar are checked exactly, with the Fisher matrix formed by DP and by
enumeration, on generated MDPs (``tests/test_theory.py``) and on the built-in examples (the report's section 6).

Starts from: F w at w = A (the definition of the Fisher matrix, contracted with A).
Proves: E_tau[sum_t gamma^t grad log pi(a_t|s_t) A_t(s_t, a_t)], the head of pg_advantage (= grad J).

S. Kakade, "A natural policy gradient", NeurIPS 2001, Theorem 1. R. S. Sutton, D. McAllester, S. Singh,
Y. Mansour (2000), Theorem 2. S. Amari, "Natural gradient works efficiently in learning", 1998.

>>> from derive.steps import replay
>>> all(c.ok for c in replay(NATURAL_GRADIENT))
True
"""

from __future__ import annotations

from derive import theory_rules as TR
from derive.eglp import score
from derive.notation import ActionExpectation, Advantage, Density, Expectation, ScoreDot, gamma, t, tau, theta, time_sum
from derive.pg_theorem import PG_ADVANTAGE
from derive.steps import GRAD_J, Derivation, chain_steps

__all__ = ["NATURAL_GRADIENT", "STARTS_FROM", "PROVES"]

p_tau = Density(tau, theta)
STARTS_FROM = Expectation(time_sum(gamma**t * score() * ScoreDot(t, Advantage(t))), p_tau)
PROVES = PG_ADVANTAGE.steps[0].before

NATURAL_GRADIENT = Derivation(
    "natural_gradient", "The natural gradient of the tabular softmax is the advantage (F A = grad J)",
    tuple(chain_steps(STARTS_FROM, [
        ("NG1", TR.TABULAR_SOFTMAX_SCORE,
         Expectation(time_sum(gamma**t * score() * (Advantage(t) - ActionExpectation(Advantage(t), t))), p_tau)),
        ("NG2", TR.ADVANTAGE_MEAN_ZERO, PROVES),
    ])),
    "F w = E[sum_t gamma^t grad log pi <grad log pi, w>]; for the tabular softmax <grad log pi(a|s), w> = w(s, a) - "
    "E_pi[w(s, .)], and with w = A the mean term vanishes: F A = E[sum_t gamma^t grad log pi A_t] = grad J "
    "(pg_advantage), so the natural gradient F^+ grad J is the advantage up to a constant per state "
    "(Kakade 2001, Thm 1).",
    ends_at="pg_advantage", proves=GRAD_J)

assert NATURAL_GRADIENT.steps[-1].after == PROVES
