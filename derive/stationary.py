"""The policy-gradient theorem derived from the Bellman equation (the grad V recursion), and its stationary form.

    PG_BELLMAN   grad E_tau[R(tau)] = grad E_tau[V_0(s_0)] = E_tau[grad V_0(s_0)]
               = E_tau[sum_t (gamma^t grad V_t(s_t) - gamma^{t+1} grad V_{t+1}(s_{t+1}))]        (V_H = 0)
               = ...   grad V_t(s_t) = sum_a grad pi Q_t + gamma E_{a_t}[E[grad V_{t+1}(s_{t+1}) | h_t, a_t]]
               = sum_t gamma^t sum_s Pr(s_t = s) sum_a grad pi(a|s) Q_t(s, a)

The last line is ``derive.pg_theorem.PG_STATE``'s, reached here from the Bellman equation instead of from the
reward-to-go form: the two routes meet. For horizon null (gamma < 1) the same unrolling runs forever, Q_t = Q
and V_t = V do not depend on t, and sum_t gamma^t Pr(s_t = s) = d_gamma(s) / (1 - gamma), so

    grad J = 1/(1 - gamma) E_{s ~ d_gamma, a ~ pi}[grad log pi(a|s) Q(s, a)]      (Sutton et al. 2000, Theorem 1).

That last specialisation is a limit H -> infinity, which grounding on a finite horizon cannot reach (a symbolic
linear solve (I - gamma P_pi)^{-1} in the grounding is not built); it is checked exactly by
``verify.checks.theory.stationary_gradient`` against the LU solve and central differences on generated MDPs with
horizon null (``tests/test_theory.py``), and every step above is grounded at finite H.

Starts from: grad E_tau[R(tau)], the left side of the seed's eq. (8) (grad J).
Proves: grad J = sum_t gamma^t sum_s Pr(s_t = s) sum_a grad pi(a|s) Q_t(s, a), the last line of ``pg_state``.

R. S. Sutton, D. McAllester, S. Singh, Y. Mansour, "Policy gradient methods for reinforcement learning with
function approximation", NeurIPS 2000, Theorem 1 (proof via the Bellman equation of grad V).

>>> from derive.steps import GRAD_J, replay
>>> all(c.ok for c in replay(PG_BELLMAN))
True
"""

from __future__ import annotations

from sympy import Sum

from derive import rules as R
from derive import theory_rules as TR
from derive.notation import (
    ActionExpectation, ActionSum, CondExpectation, Density, Expectation, Grad, Policy, QValue, Return, StateProb,
    StateSum, VValue, H, gamma, t, tau, theta, time_sum,
)
from derive.pg_theorem import PG_STATE
from derive.steps import GRAD_J, Derivation, Step, chain_steps

__all__ = ["PG_BELLMAN", "STARTS_FROM", "PROVES"]

p_tau = Density(tau, theta)


def _E(body):
    return Expectation(body, p_tau)


_gV = lambda k: Grad(VValue(k))                                          # noqa: E731
_X = ActionSum(Grad(Policy(t)) * QValue(t), t)                            # sum_a grad pi(a|s_t) Q_t(s_t, a)
_Y = ActionExpectation(CondExpectation(_gV(t + 1), t, 1), t)              # E_{a_t}[E[grad V_{t+1} | h_t, a_t]]
_later = _E(time_sum(gamma**(t + 1) * _gV(t + 1)))
_first = _E(time_sum(gamma**t * _gV(t)))

STARTS_FROM = Grad(Expectation(Return(tau), p_tau))
PROVES = PG_STATE.steps[-1].after

_steps = chain_steps(STARTS_FROM, [
    ("BE1", TR.VALUE_OF_START, Grad(_E(VValue(0)))),
    ("BE2", TR.GRAD_INTO_START_MEAN, _E(_gV(0))),
    ("BE3", TR.TELESCOPE_START, _E(time_sum(gamma**t * _gV(t) - gamma**(t + 1) * _gV(t + 1)))),
    ("BE4", R.LINEARITY_OF_EXPECTATION, _first - _later),
    ("BE5", TR.GRAD_VALUE_RECURSION, _E(time_sum(gamma**t * (_X + gamma * _Y))) - _later),
    ("BE6", R.DISTRIBUTE, _E(time_sum(gamma**t * _X + gamma**(t + 1) * _Y)) - _later),
    ("BE7", R.LINEARITY_OF_EXPECTATION, _E(time_sum(gamma**t * _X)) + _E(time_sum(gamma**(t + 1) * _Y)) - _later),
    ("BE8", TR.TOWER_PROPERTY_REVERSED, _E(time_sum(gamma**t * _X))),
    ("BE9", R.EXPECTATION_OF_SUM, Sum(_E(gamma**t * _X), (t, 0, H - 1))),
    ("BE10", R.CONSTANT_OUT_OF_EXPECTATION, Sum(gamma**t * _E(_X), (t, 0, H - 1))),
    ("BE11", TR.MARGINALISE_STATE, Sum(gamma**t * StateSum(StateProb(t) * _X, t), (t, 0, H - 1))),
])
# the recursion rewrites the first mean only (the second holds grad V_{t+1}, which it must leave alone)
_steps[4] = Step("BE5", _steps[4].before, TR.GRAD_VALUE_RECURSION, _steps[4].after, at=_first)

PG_BELLMAN = Derivation(
    "pg_bellman", "The policy-gradient theorem from the Bellman equation (the grad V recursion)",
    tuple(_steps),
    "J = E[V_0(s_0)] with s_0 ~ rho_0 free of theta; the gradient of V_0 telescopes over t (V_H = 0), and "
    "differentiating the Bellman equation gives grad V_t = sum_a grad pi Q_t + gamma E[grad V_{t+1}(s_{t+1})], so "
    "the telescoped terms cancel and grad J = sum_t gamma^t sum_s Pr(s_t = s) sum_a grad pi(a|s) Q_t(s, a), the "
    "state-visitation form (pg_state) reached without the reward-to-go. For horizon null this is "
    "1/(1 - gamma) E_{d_gamma, pi}[grad log pi Q] (Sutton et al. 2000, Thm 1), checked exactly by "
    "verify.checks.theory.stationary_gradient.",
    starts_from=GRAD_J, ends_at="pg_state", proves=GRAD_J)
