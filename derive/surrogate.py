"""The performance-difference lemma and the surrogate gradient of TRPO and PPO, in pgverify's notation.

    PERFORMANCE_DIFFERENCE  E_{tau~theta}[sum_t gamma^t [A_t(s_t, a_t)]_old] = J(theta) - J(theta_old)
        (Kakade & Langford 2002, Lemma 6.1, finite-horizon time-indexed form): A = Q - V, Q_t = E[r_t + gamma
        V_{t+1}(s_{t+1}) | s_t, a_t] under any policy acting after t, so the V terms telescope to -V_0(s_0).
    SURROGATE_GRADIENT      grad_theta E_{tau~theta_old}[sum_t gamma^t pi_theta(a_t|s_t) / pi_old(a_t|s_t) [A_t]_old]
                            at theta = theta_old = E_tau[sum_t gamma^t grad log pi(a_t|s_t) A_t(s_t, a_t)]
        (Schulman et al. 2015, eq. (6): L_old(theta) matches J to first order at theta_old); the last line is the
        first line of ``pg_advantage``, so with pg_advantage, pg_q and reward_to_go, grad L(theta_old) = grad J.

[X]_old is X under pi_{theta_old}: a constant for grad_theta (``derive.notation.At``), and p(tau|theta_old)
likewise. Grounding gives the old policy its own entries pio_{s,a} (no derivative), independent of pi's, so
the lemma and SG1-SG2 are proved for every pair of policies; only SG3 ("evaluate at theta = theta_old") is
grounded with pio = pi (``derive.grounding.AT_THETA_OLD_RULES``). PPO's clipped
surrogate min(rho A, clip(rho, 1 - eps, 1 + eps) A) equals rho A near rho = 1, so its gradient at theta_old is the
same line; the clip is an order relation, which grounding over a field (random points mod p) cannot interpret, so
that step is checked numerically (``verify.checks.theory.ppo_clip_surrogate``; ``tests/test_theory.py``), as are the
horizon-null forms (1/(1 - gamma) E_{d^theta}[...]) and TRPO's bound.

Starts from / proves (for the chain of derivations):
    performance_difference: starts from E_{tau~theta}[sum_t gamma^t [A_t]_old] (the lemma's right side);
        proves = E_tau[R(tau)] - E_{tau~theta_old}[R(tau)] = J(theta) - J(theta_old).
    surrogate_gradient: starts from grad L_old(theta) (importance-sampled surrogate, without its constant J(old));
        proves = E_tau[sum_t gamma^t grad log pi(a_t|s_t) A_t(s_t, a_t)], the head of pg_advantage.

S. Kakade, J. Langford, "Approximately optimal approximate reinforcement learning", ICML 2002, Lemma 6.1.
J. Schulman, S. Levine, P. Moritz, M. Jordan, P. Abbeel, "Trust region policy optimization", ICML 2015.
J. Schulman, F. Wolski, P. Dhariwal, A. Radford, O. Klimov, "Proximal policy optimization algorithms", 2017.

>>> from derive.steps import GRAD_J, replay
>>> all(c.ok for d in (PERFORMANCE_DIFFERENCE, SURROGATE_GRADIENT) for c in replay(d))
True
"""

from __future__ import annotations

import dataclasses

from sympy import Eq

from derive import rules as R
from derive import theory_rules as TR
from derive.eglp import score
from derive.notation import (
    At, Advantage, CondExpectation, Density, Expectation, Grad, Policy, QValue, Return, Reward, VValue,
    gamma, t, tau, theta, theta_old, time_sum,
)
from derive.pg_theorem import PG_ADVANTAGE
from derive.steps import GRAD_J, Derivation, chain_steps

__all__ = ["PERFORMANCE_DIFFERENCE", "SURROGATE_GRADIENT", "STARTS_FROM", "PROVES", "PDL_STARTS_FROM", "PDL_PROVES",
           "NOT_GRADIENT_LINES"]

p_tau, p_old = Density(tau, theta), Density(tau, theta_old)


def _E(body, density=p_tau):
    return Expectation(body, density)


_A_old = At(Advantage(t))
_Q_old, _V_old, _V_next = At(QValue(t)), At(VValue(t)), At(VValue(t + 1))
_cq = CondExpectation(Reward(t) + gamma * _V_next, t, 1)

PERFORMANCE_DIFFERENCE = Derivation(
    "performance_difference", "The performance-difference lemma (finite horizon, time-indexed)",
    tuple(chain_steps(_E(time_sum(gamma**t * _A_old)), [
        ("PD1", TR.OLD_ADVANTAGE_DEFINITION, _E(time_sum(gamma**t * (_Q_old - _V_old)))),
        ("PD2", TR.Q_BELLMAN_OLD, _E(time_sum(gamma**t * (_cq - _V_old)))),
        ("PD3", R.DISTRIBUTE, _E(time_sum(gamma**t * _cq - gamma**t * _V_old))),
        ("PD4", TR.TOWER_PROPERTY_REVERSED, _E(time_sum(gamma**t * (Reward(t) + gamma * _V_next)
                                                          - gamma**t * _V_old))),
        ("PD5", R.DISTRIBUTE, _E(time_sum(gamma**t * Reward(t) + gamma**(t + 1) * _V_next - gamma**t * _V_old))),
        ("PD6", TR.TELESCOPE_SUM, _E(time_sum(gamma**t * Reward(t)) - At(VValue(0)))),
        ("PD7", R.LINEARITY_OF_EXPECTATION, _E(time_sum(gamma**t * Reward(t))) - _E(At(VValue(0)))),
        ("PD8", TR.RETURN_RECOGNISED, _E(Return(tau)) - _E(At(VValue(0)))),
        ("PD9", TR.OLD_VALUE_OF_START, _E(Return(tau)) - _E(Return(tau), p_old)),
    ])),
    "Under the new policy, E[sum_t gamma^t A^old_t(s_t, a_t)]: Q^old_t(s_t, a_t) = E[r_t + gamma V^old_{t+1}(s_{t+1}) "
    "| h_t, a_t] whatever policy acts after t, so the old values telescope to -V^old_0(s_0), whose mean is "
    "J(theta_old): J(theta) - J(theta_old) = sum_t gamma^t E_{tau~theta}[A^old_t] (Kakade & Langford 2002).")

_ratio = Policy(t) * Policy(t, theta_old)**-1
STARTS_FROM = Grad(_E(time_sum(gamma**t * _ratio * _A_old), p_old))
PROVES = PG_ADVANTAGE.steps[0].before

SURROGATE_GRADIENT = Derivation(
    "surrogate_gradient", "The surrogate's gradient at the old parameters is the policy gradient (TRPO, PPO)",
    tuple(chain_steps(STARTS_FROM, [
        ("SG1", TR.GRAD_INTO_FIXED_MEASURE,
         _E(time_sum(Grad(gamma**t * _ratio * _A_old)), p_old)),
        ("SG2", TR.CONSTANTS_OUT_OF_GRAD,
         _E(time_sum(gamma**t * Policy(t, theta_old)**-1 * _A_old * Grad(Policy(t))), p_old)),
        ("SG3", TR.EVALUATE_AT_THETA_OLD,
         _E(time_sum(gamma**t * Policy(t)**-1 * Advantage(t) * Grad(Policy(t))))),
        ("SG4", TR.SCORE_FROM_RATIO, _E(time_sum(gamma**t * score() * Advantage(t)))),
    ])),
    "The surrogate L_old(theta) = J(old) + E_{tau~theta_old}[sum_t gamma^t pi_theta/pi_old A^old_t] is an average "
    "under the old policy, so the gradient goes inside; only pi_theta moves, and at theta = theta_old "
    "grad pi / pi = grad log pi: grad L(theta_old) = E[sum_t gamma^t grad log pi A_t], the advantage form of the "
    "policy-gradient theorem (pg_advantage), i.e. grad J. PPO's clipped surrogate has the same gradient there.",
    ends_at="pg_advantage", proves=GRAD_J)

assert SURROGATE_GRADIENT.steps[-1].after == PROVES

#: the performance-difference lemma's first and last lines (for the chaining of derivations)
PDL_STARTS_FROM = PERFORMANCE_DIFFERENCE.steps[0].before
PDL_PROVES = PERFORMANCE_DIFFERENCE.steps[-1].after
# What the lemma proves, as the chain checks it (first line = lhs, last line = rhs): a statement, not grad J.
PERFORMANCE_DIFFERENCE = dataclasses.replace(PERFORMANCE_DIFFERENCE,
                                             proves=Eq(PDL_STARTS_FROM, PDL_PROVES, evaluate=False))

#: derivations whose lines are not claimed equal to grad J (the numeric half skips them)
NOT_GRADIENT_LINES = ("performance_difference",)
