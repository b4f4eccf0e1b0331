"""The policy-gradient theorem (Sutton et al. 2000), derived from the reward-to-go form.

Sutton, McAllester, Singh and Mansour, "Policy gradient methods for reinforcement learning with function
approximation", NeurIPS 12 (2000), https://proceedings.neurips.cc/paper/1999/hash/464d828b85b0bed98e80ade0a5c43b0f-Abstract.html.

Three derivations, each a chain of steps replayed and grounded like the source's:

    PG_Q          E_tau[sum_t grad log pi(a_t|s_t) sum_{t'>=t} gamma^{t'} r_{t'}]
                = E_tau[sum_t gamma^t grad log pi(a_t|s_t) Q_t(s_t, a_t)]
                  (condition each term on (h_t, a_t), take the score out, Markov property)
    PG_ADVANTAGE  E_tau[sum_t gamma^t grad log pi(a_t|s_t) A_t(s_t, a_t)] = the Q form
                  (A = Q - V: the baseline derivation with b(s_t) = gamma^t V_t(s_t))
    PG_STATE      the Q form = sum_t gamma^t sum_s Pr(s_t = s) sum_a grad pi(a|s) Q_t(s, a)

with the finite-horizon, time-indexed values
Q_t(s, a) = E[sum_{t'=t}^{H-1} gamma^{t'-t} r_{t'} | s_t = s, a_t = a] and
V_t(s) = E_{a ~ pi(.|s)}[Q_t(s, a)].  The reward-to-go line itself equals grad J by
``derive.seed.REWARD_TO_GO``.

R. S. Sutton, D. McAllester, S. Singh, Y. Mansour, "Policy gradient methods for
reinforcement learning with function approximation", NeurIPS 2000, Theorem 1.

>>> from derive.steps import replay
>>> all(c.ok for d in (PG_Q, PG_ADVANTAGE, PG_STATE) for c in replay(d))
True
"""

from __future__ import annotations

from sympy import Sum

from derive import rules as R
from derive.eglp import EGLP_RULE, score
from derive.notation import (
    ActionExpectation, ActionSum, Advantage, CondExpectation, Density, Expectation, Grad, Policy, QValue,
    Reward, StateProb, StateSum, VValue, gamma, t, tau, theta, time_sum, tp, H,
)
from derive.steps import GRAD_J, Derivation, Step, chain_steps

__all__ = ["PG_Q", "PG_ADVANTAGE", "PG_STATE", "reward_to_go", "Q_FORM", "REWARD_TO_GO_FORM"]

p_tau = Density(tau, theta)


def reward_to_go(time=t, discount=gamma**tp):
    """sum_{t'=time}^{H-1} discount * r_{t'} (default discount gamma^{t'}, unbiased for J)."""
    return time_sum(discount * Reward(tp), tp, time, H - 1)


def _E(body):
    return Expectation(body, p_tau)


_G = reward_to_go()
#: the last line of the reward-to-go derivation: grad J = E[sum_t grad log pi_t G_t]
REWARD_TO_GO_FORM = _E(time_sum(score() * _G))
#: the policy-gradient theorem's Q form
Q_FORM = _E(time_sum(gamma**t * score() * QValue(t)))

PG_Q = Derivation(
    "pg_q", "The policy-gradient theorem, Q form",
    tuple(chain_steps(REWARD_TO_GO_FORM, [
        ("PGQ1", R.TOWER_PROPERTY_ACTION, _E(time_sum(CondExpectation(score() * _G, t, 1)))),
        ("PGQ2", R.PULL_OUT_KNOWN, _E(time_sum(score() * CondExpectation(_G, t, 1)))),
        ("PGQ3", R.Q_VALUE_DEFINITION, Q_FORM),
    ])),
    "Conditioning each term of the reward-to-go form on (h_t, a_t), the score is known and comes "
    "out, and by the Markov property E[sum_{t'>=t} gamma^{t'} r_{t'} | h_t, a_t] = gamma^t Q_t(s_t, a_t): "
    "grad J = E[sum_t gamma^t grad log pi(a_t|s_t) Q_t(s_t, a_t)] (Sutton et al. 2000).",
    starts_from="reward_to_go", proves=GRAD_J)

_with_v = _E(time_sum(gamma**t * score() * VValue(t)))
_QmV = _E(time_sum(gamma**t * score() * QValue(t))) - _with_v
PG_ADVANTAGE = Derivation(
    "pg_advantage", "The policy-gradient theorem, advantage form (baseline b = V)",
    tuple(chain_steps(_E(time_sum(gamma**t * score() * Advantage(t))), [
        ("PGA1", R.ADVANTAGE_DEFINITION, _E(time_sum(gamma**t * score() * (QValue(t) - VValue(t))))),
        ("PGA2", R.DISTRIBUTE, _E(time_sum(gamma**t * score() * QValue(t) - gamma**t * score() * VValue(t)))),
        ("PGA3", R.LINEARITY_OF_EXPECTATION, _QmV),
        ("PGA4", R.TOWER_PROPERTY, Q_FORM - _E(time_sum(CondExpectation(gamma**t * score() * VValue(t), t)))),
        ("PGA5", R.PULL_OUT_KNOWN, Q_FORM - _E(time_sum(gamma**t * VValue(t) * CondExpectation(score(), t)))),
        ("PGA6", R.CONDITION_ON_STATE,
         Q_FORM - _E(time_sum(gamma**t * VValue(t) * ActionExpectation(score(), t)))),
        ("PGA7", EGLP_RULE, Q_FORM),
    ])),
    "With A_t = Q_t - V_t, the V_t(s_t) term is a state-dependent baseline: conditioning on h_t "
    "and the EGLP lemma remove it, so E[sum_t gamma^t grad log pi(a_t|s_t) A_t(s_t, a_t)] is the Q form.")
# the tower property conditions the V term only
PG_ADVANTAGE = Derivation(PG_ADVANTAGE.name, PG_ADVANTAGE.title, tuple(
    Step(s.number, s.before, s.rule, s.after, _with_v) if s.number == "PGA4" else s for s in PG_ADVANTAGE.steps),
    PG_ADVANTAGE.summary, ends_at="pg_q", proves=GRAD_J)

_score_q = _E(score() * QValue(t))
PG_STATE = Derivation(
    "pg_state", "The policy-gradient theorem, state-visitation form",
    tuple(chain_steps(Q_FORM, [
        ("PGS1", R.EXPECTATION_OF_SUM, Sum(_E(gamma**t * score() * QValue(t)), (t, 0, H - 1))),
        ("PGS2", R.CONSTANT_OUT_OF_EXPECTATION, Sum(gamma**t * _score_q, (t, 0, H - 1))),
        ("PGS3", R.MARGINALISE_STATE_ACTION,
         Sum(gamma**t * StateSum(StateProb(t) * ActionSum(Policy(t) * score() * QValue(t), t), t), (t, 0, H - 1))),
        ("PGS4", R.SCORE_TIMES_POLICY,
         Sum(gamma**t * StateSum(StateProb(t) * ActionSum(Grad(Policy(t)) * QValue(t), t), t), (t, 0, H - 1))),
    ])),
    "Each term E[gamma^t grad log pi(a_t|s_t) Q_t(s_t, a_t)] depends on (s_t, a_t) only, so the rest of "
    "the trajectory sums out: grad J = sum_t gamma^t sum_s Pr(s_t = s) sum_a grad pi(a|s) Q_t(s, a).",
    starts_from="pg_q", proves=GRAD_J)
