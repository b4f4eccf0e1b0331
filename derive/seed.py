"""The source's equations (1)-(15) (A. Schindorfer, Policy Gradient Derivation, 2026) and the two derivations its
closing remark omits.

Every ``after`` below is transcribed by hand from the source (with the errata of
``derive.errata`` corrected), never produced by applying the rule: replay would
otherwise be a tautology.  Numbers are the source's; the added derivations use
labels "RTG1".. and "B1"...

Corrections built in (see ``derive.errata``): eq. (9) includes rho_0(s_0) and
runs t = 0..H-1 over tau = (s_0, a_0, ..., s_{H-1}, a_{H-1}, s_H); expectations
are over tau ~ p(.|theta); R(tau) = sum_t gamma^t r_t keeps its discount.

    seed:          grad E_{x~p}[f] = E_{x~p}[f grad log p]                 (1)-(7)
                   grad J = E_tau[R(tau) sum_t grad log pi(a_t|s_t)]        (8)-(15)
    reward_to_go:  grad J = E_tau[sum_t grad log pi(a_t|s_t) sum_{t'>=t} gamma^{t'} r_{t'}]
    baseline:      E_tau[sum_t grad log pi(a_t|s_t) (G_t - b(s_t))] = E_tau[sum_t grad log pi(a_t|s_t) G_t]

Past rewards and the baseline drop out through the tower property and the EGLP
lemma (``derive.eglp``): no step is an axiom.  ``DERIVATIONS`` also holds the EGLP
lemma and the policy-gradient theorem's forms (``derive.pg_theorem``), in the
order the report and the LaTeX show them.

>>> [s.number for s in SOURCE.steps][:3], len(SOURCE.steps)
([1, 2, 3], 15)
"""

from __future__ import annotations

from sympy import Eq, UnevaluatedExpr, log

from derive import rules as R
from derive.eglp import EGLP, EGLP_RULE, score
from derive.pg_theorem import PG_ADVANTAGE, PG_Q, PG_STATE, reward_to_go
from derive.notation import (
    ActionExpectation, Baseline, CondExpectation, Density, Expectation, Grad, InitialDist, Integrate, Policy,
    Return, Reward,    TestFn, Transition, gamma, t, tau, theta, time_sum, tp, x, H,
)
from derive.steps import GRAD_J, Derivation, Step, chain_steps

__all__ = ["SOURCE", "REWARD_TO_GO", "BASELINE", "EGLP", "PG_Q", "PG_ADVANTAGE", "PG_STATE", "DERIVATIONS", "score",
           "reward_to_go"]

f, p = TestFn(x), Density(x, theta)
p_tau, R_tau = Density(tau, theta), Return(tau)


# (1)-(7): the score-function identity for a generic f and p(x|theta).
_E1 = [
    (1, R.EXPECTATION_AS_INTEGRAL, Grad(Integrate(f * p, x))),
    (2, R.EXCHANGE_GRAD_INTEGRAL, Integrate(Grad(p * f), x)),
    (3, R.PRODUCT_RULE, Integrate(f * Grad(p) + p * Grad(f), x)),
    (4, R.GRAD_OF_INDEPENDENT, Integrate(f * Grad(p), x)),
    (5, R.MULTIPLY_DIVIDE_DENSITY, Integrate(f * p * UnevaluatedExpr(Grad(p) / p), x)),
    (6, R.LOG_DERIVATIVE, Integrate(f * p * Grad(log(p)), x)),
    (7, R.EXPECTATION_RECOGNISED, Expectation(f * Grad(log(p)), p)),
]

_HEAD = Grad(Expectation(f, p))


_steps = chain_steps(_HEAD, _E1)

# (8): the identity at x = tau, f = R, p(x|theta) = p(tau|theta).
_eq8 = Eq(Grad(Expectation(R_tau, p_tau)), Expectation(R_tau * Grad(log(p_tau)), p_tau),
          evaluate=False)
_steps.append(Step(8, Eq(_HEAD, _steps[-1].after, evaluate=False), R.SUBSTITUTE_TRAJECTORY, _eq8))

# (9)-(13): grad log p(tau|theta) keeps only the policy terms.
_traj = R.trajectory_probability()
_eq9 = Eq(p_tau, _traj, evaluate=False)
_eq10 = Eq(log(p_tau), log(_traj), evaluate=False)
_log_sum = log(InitialDist()) + time_sum(log(Transition(t)) + log(Policy(t)))
_eq11 = Eq(log(p_tau), _log_sum, evaluate=False)
_eq12 = Eq(Grad(log(p_tau)), Grad(_log_sum), evaluate=False)
_eq13 = Eq(Grad(log(p_tau)), time_sum(score()), evaluate=False)
_steps += [
    Step(9, p_tau, R.TRAJECTORY_FACTORISATION, _traj),
    Step(10, _eq9, R.TAKE_LOGS, _eq10),
    Step(11, _eq10, R.LOG_OF_PRODUCT, _eq11),
    Step(12, _eq11, R.GRAD_BOTH_SIDES, _eq12),
    Step(13, _eq12, R.DROP_INDEPENDENT_TERMS, _eq13),
]

# (14)-(15): substitute (13) into (8); pull R(tau) inside the sum over t.
_eq14 = Eq(_eq8.lhs, Expectation(R_tau * time_sum(score()), p_tau), evaluate=False)
_eq15 = Eq(_eq8.lhs, Expectation(time_sum(R_tau * score()), p_tau), evaluate=False)
_steps += [
    Step(14, _eq8, R.substitute_identity(_eq13, "(13)"), _eq14),
    Step(15, _eq14, R.FACTOR_INTO_SUM, _eq15),
]

SOURCE = Derivation(
    "source", "The policy gradient, equations (1)-(15) of Schindorfer's derivation",
    tuple(_steps),
    "The score-function identity (1)-(7), instantiated at the trajectory distribution (8), "
    "and the gradient of log p(tau|theta) reduced to the policy's score (9)-(13), give "
    "the simple policy gradient (14)-(15).", proves=GRAD_J)

# Reward-to-go: rewards earned before time t are known given h_t = (s_0, ..., s_t), and the
# score at t has mean zero given h_t (tower property, then the EGLP lemma).
_E = lambda body: Expectation(body, p_tau)  # noqa: E731
_g = gamma**tp * Reward(tp)
_past = _E(time_sum(time_sum(_g * score(), tp, 0, t - 1)))
_future = _E(time_sum(time_sum(_g * score(), tp, t, H - 1)))
_cond = lambda body, lo, hi: _E(time_sum(time_sum(body, tp, lo, hi)))  # noqa: E731
_rtg = chain_steps(_eq15.rhs, [
    ("RTG1", R.RETURN_DEFINITION, _E(time_sum(time_sum(_g, tp) * score()))),
    ("RTG2", R.FACTOR_INTO_SUM, _E(time_sum(time_sum(_g * score(), tp)))),
    ("RTG3", R.SPLIT_AT_T, _E(time_sum(time_sum(_g * score(), tp, 0, t - 1))
                              + time_sum(time_sum(_g * score(), tp, t, H - 1)))),
    ("RTG4", R.LINEARITY_OF_EXPECTATION, _past + _future),
    ("RTG5", R.TOWER_PROPERTY, _cond(CondExpectation(_g * score(), t), 0, t - 1) + _future),
    ("RTG6", R.PULL_OUT_KNOWN, _cond(_g * CondExpectation(score(), t), 0, t - 1) + _future),
    ("RTG7", R.CONDITION_ON_STATE, _cond(_g * ActionExpectation(score(), t), 0, t - 1) + _future),
    ("RTG8", EGLP_RULE, _future),
    ("RTG9", R.FACTOR_OUT_OF_SUM, _E(time_sum(score() * reward_to_go()))),
])
# the tower property conditions the past rewards' term only
_rtg[4] = Step("RTG5", _rtg[4].before, R.TOWER_PROPERTY, _rtg[4].after, at=_past)
REWARD_TO_GO = Derivation(
    "reward_to_go", "Reward-to-go: past rewards drop out of the simple policy gradient",
    tuple(_rtg),
    "Writing R(tau) out and splitting at t, the rewards r_{t'} with t' < t are known given "
    "h_t = (s_0, a_0, ..., s_t) (tower property, taking out what is known), while given h_t the "
    "action a_t ~ pi(.|s_t) and the EGLP lemma gives E[grad log pi(a_t|s_t) | h_t] = 0, so only "
    "the reward-to-go sum_{t'>=t} gamma^{t'} r_{t'} remains. The discount stays gamma^{t'}, not gamma^{t'-t}.",
    starts_from="source", proves=GRAD_J)

_G = reward_to_go()
_with_b = _E(time_sum(score() * Baseline(t)))
_base = chain_steps(_E(time_sum(score() * (_G - Baseline(t)))), [
    ("B1", R.DISTRIBUTE, _E(time_sum(score() * _G - score() * Baseline(t)))),
    ("B2", R.LINEARITY_OF_EXPECTATION, _E(time_sum(score() * _G)) - _with_b),
    ("B3", R.TOWER_PROPERTY, _E(time_sum(score() * _G)) - _E(time_sum(CondExpectation(score() * Baseline(t), t)))),
    ("B4", R.PULL_OUT_KNOWN, _E(time_sum(score() * _G)) - _E(time_sum(Baseline(t) * CondExpectation(score(), t)))),
    ("B5", R.CONDITION_ON_STATE,
     _E(time_sum(score() * _G)) - _E(time_sum(Baseline(t) * ActionExpectation(score(), t)))),
    ("B6", EGLP_RULE, _E(time_sum(score() * _G))),
])
_base[2] = Step("B3", _base[2].before, R.TOWER_PROPERTY, _base[2].after, at=_with_b)
BASELINE = Derivation(
    "baseline", "A state-dependent baseline leaves the gradient unbiased",
    tuple(_base),
    "Conditioning on h_t (tower property), b(s_t) is known and comes out, and the EGLP lemma "
    "gives E[grad log pi(a_t|s_t) | h_t] = 0, so subtracting b(s_t) from the reward-to-go keeps "
    "the estimator's mean equal to grad J.", ends_at="reward_to_go", proves=GRAD_J)

# beyond the finite-horizon theorem: derive.stationary, derive.surrogate, derive.natural
from derive.stationary import PG_BELLMAN  # noqa: E402
from derive.surrogate import PERFORMANCE_DIFFERENCE, SURROGATE_GRADIENT  # noqa: E402
from derive.natural import NATURAL_GRADIENT  # noqa: E402

DERIVATIONS = (SOURCE, EGLP, REWARD_TO_GO, BASELINE, PG_Q, PG_ADVANTAGE, PG_STATE,
               PG_BELLMAN, PERFORMANCE_DIFFERENCE, SURROGATE_GRADIENT, NATURAL_GRADIENT)


def __getattr__(name):
    # ``SEED`` was the source derivation's old name ("seed" now means a random seed only)
    if name == "SEED":
        import warnings
        warnings.warn("derive.seed.SEED is deprecated; use derive.SOURCE", DeprecationWarning, stacklevel=2)
        return SOURCE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
