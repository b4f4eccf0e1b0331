"""The rewrite rules of the stationary theorem, the performance-difference lemma and the surrogate gradient.

Each is a ``derive.rules.Rule`` with its guards, replayed and grounded like the seed's rules:

    value_of_start            E_tau[R(tau)] = E_tau[V_0(s_0)]
    grad_into_start_mean      grad E_tau[g(s_0)] = E_tau[grad g(s_0)]            (rho_0 does not depend on theta)
    telescope_start           g_0(s_0) = sum_{t<H} (gamma^t g_t(s_t) - gamma^{t+1} g_{t+1}(s_{t+1}))   (V_H = 0)
    grad_value_recursion      grad V_t(s_t) = sum_a grad pi Q_t + gamma E_{a_t~pi}[E[grad V_{t+1}(s_{t+1}) | h_t, a_t]]
    tower_property_reversed   E_tau[... c E[Y | h_t(, a_t)] ...] = E_tau[... c Y ...]   (c known given the history)
    marginalise_state         E_tau[g(s_t)] = sum_s Pr(s_t = s) g(s)
    grad_into_fixed_measure   grad E_{tau~theta_old}[g] = E_{tau~theta_old}[grad g]
    constants_out_of_grad     grad(c g) = c grad g for theta-free c (theta_old quantities, gamma^t)
    evaluate_at_theta_old     at theta = theta_old: pi_{theta_old} = pi_theta, [X]_{theta_old} = X
    score_from_ratio          grad pi / pi = grad log pi
    old_advantage_definition  [A_t]_old = [Q_t]_old - [V_t]_old
    q_bellman_old             [Q_t]_old = E[r_t + gamma [V_{t+1}]_old | h_t, a_t]
    telescope_sum             sum_t (x_t + gamma^{t+1} g_{t+1} - gamma^t g_t) = sum_t x_t - g_0   (g_H = 0)
    return_recognised         sum_t gamma^t r_t = R(tau)
    old_value_of_start        E_tau[[V_0(s_0)]_old] = E_{tau~theta_old}[R(tau)]

References: R. S. Sutton, D. McAllester, S. Singh, Y. Mansour (2000), Theorem 1; S. Kakade, J. Langford (2002),
Lemma 6.1; J. Schulman, S. Levine, P. Moritz, M. Jordan, P. Abbeel (2015), TRPO, eq. (4)-(6).
"""

from __future__ import annotations

from sympy import Add, Mul, Pow, S, Sum, log

from derive.notation import (
    At, ScoreDot, ActionExpectation, ActionSum, Advantage, Baseline, CondExpectation, Density, Expectation, Grad,
    InitialDist, Policy, QValue, Return, Reward, StateProb, StateSum, VValue, H, gamma, t, tau, theta, theta_old,
)
from derive.rules import Condition, Rule, RuleError, _inner_context, _rule, known_given_history, time_nodes

__all__ = [
    "VALUE_OF_START", "GRAD_INTO_START_MEAN", "TELESCOPE_START", "GRAD_VALUE_RECURSION", "TOWER_PROPERTY_REVERSED",
    "MARGINALISE_STATE", "GRAD_INTO_FIXED_MEASURE", "CONSTANTS_OUT_OF_GRAD", "EVALUATE_AT_THETA_OLD",
    "SCORE_FROM_RATIO", "OLD_ADVANTAGE_DEFINITION", "Q_BELLMAN_OLD", "TELESCOPE_SUM", "RETURN_RECOGNISED",
    "OLD_VALUE_OF_START", "TABULAR_SOFTMAX_SCORE", "ADVANTAGE_MEAN_ZERO", "THEORY_RULES",
]

_NORM = "sum_a pi_theta(a|s) = 1 and sum_{s'} p(s'|s,a) = 1 (the steps after t sum out)"


def _is_traj_mean(n, param=theta) -> bool:
    return isinstance(n, Expectation) and n.density.var == tau and n.density.param == param


# --- the policy-gradient theorem from the Bellman equation ----------------------------------------------------------

@_rule("value_of_start", "E_tau[R(tau)] = E_tau[V_0(s_0)]: the return's mean given s_0 is the value of the start.",
       [_NORM, "V_0(s) = E[R(tau) | s_0 = s]"], r"definition of $V^\pi_0$", "E_tau[R(tau)]",
       needs_normalisation=True)
def VALUE_OF_START(n, ctx):
    if _is_traj_mean(n) and n.body == Return(tau):
        return Expectation(VValue(0), n.density)


START_ONLY = "the averaged quantity depends on s_0 only (whose law rho_0 does not depend on theta)"


def _start_only(e) -> bool:
    nodes = time_nodes(e)
    return bool(nodes) and all(isinstance(node, (VValue, Baseline, InitialDist)) and node.time == 0
                               for node, _ in nodes)


@_rule("grad_into_start_mean", "grad E_tau[g(s_0)] = E_tau[grad g(s_0)]: s_0 ~ rho_0 whatever theta is.",
       [_NORM, START_ONLY], r"$\rho_0$ does not depend on $\theta$", "grad(E_tau[g(s_0)])",
       needs_normalisation=True,
       conditions=[Condition(START_ONLY, lambda n, ctx: _start_only(n.expr.body))])
def GRAD_INTO_START_MEAN(n, ctx):
    if isinstance(n, Grad) and _is_traj_mean(n.expr):
        return Expectation(Grad(n.expr.body, n.wrt), n.expr.density)


V_H_ZERO = "V_H = 0 (no action is left at the horizon)"


def _telescoped(g_of):
    return Sum(gamma**t * g_of(t) - gamma**(t + 1) * g_of(t + 1), (t, 0, H - 1))


@_rule("telescope_start", "g_0 = sum_{t=0}^{H-1} (gamma^t g_t - gamma^{t+1} g_{t+1}) when g_H = 0 (a telescoping sum).",
       [V_H_ZERO], "telescoping sum", "grad V_0(s_0)")
def TELESCOPE_START(n, ctx):
    if isinstance(n, Grad) and isinstance(n.expr, VValue) and n.expr.time == 0:
        return _telescoped(lambda k: Grad(VValue(k), n.wrt))


@_rule("grad_value_recursion",
       "grad V_t(s_t) = sum_a grad pi(a|s_t) Q_t(s_t, a) + gamma E_{a_t ~ pi}[E[grad V_{t+1}(s_{t+1}) | h_t, a_t]] "
       "(differentiate V_t = sum_a pi Q_t and Q_t = rbar + gamma sum_{s'} P V_{t+1}).",
       ["the Bellman equations V_t(s) = sum_a pi(a|s) Q_t(s,a), Q_t(s,a) = E[r_t + gamma V_{t+1}(s_{t+1}) | s, a]",
        "rewards and transitions do not depend on theta", _NORM],
       r"Bellman equation, differentiated", "grad V_t(s_t)", needs_normalisation=True)
def GRAD_VALUE_RECURSION(n, ctx):
    if isinstance(n, Grad) and isinstance(n.expr, VValue):
        k = n.expr.time
        return (ActionSum(Grad(Policy(k), n.wrt) * QValue(k), k)
                + gamma * ActionExpectation(CondExpectation(Grad(VValue(k + 1), n.wrt), k, 1), k))


KNOWN_OUTSIDE = "every other factor of the term is a function of the history conditioned on"


def _conditional(f):
    """(Y, time, with_action) if ``f`` is E[Y | h_k(, a_k)] or E_{a_k ~ pi}[E[Y | h_k, a_k]] (= E[Y | h_k])."""
    if isinstance(f, CondExpectation):
        return f.body, f.time, f.with_action
    if isinstance(f, ActionExpectation) and isinstance(f.body, CondExpectation) and f.body.with_action \
            and f.body.time == f.time:
        return f.body.body, f.time, False
    return None


def _unconditioned(term, ctx, check: list):
    """``term`` with its conditional-mean factor replaced by its body, if the other factors are known."""
    factors = list(term.args) if term.is_Mul else [term]
    for i, f in enumerate(factors):
        found = _conditional(f)
        if found:
            body, k, with_action = found
            others = factors[:i] + factors[i + 1:]
            check.append(all(known_given_history(o, k, with_action, ctx) for o in others))
            return Mul(*others, body)
    return None


def _reversed_tower(n, ctx, check):
    if not _is_traj_mean(n):
        return None
    body = n.body
    inner, wrap = (body.function, lambda e: Sum(e, *body.limits)) if isinstance(body, Sum) else (body, lambda e: e)
    inner_ctx = _inner_context(body, dict(ctx))
    terms = list(inner.args) if inner.is_Add else [inner]
    out, changed = [], False
    for term in terms:
        new = _unconditioned(term, inner_ctx, check)
        changed |= new is not None
        out.append(term if new is None else new)
    return Expectation(wrap(Add(*out)), n.density) if changed else None


def _reversed_tower_ok(n, ctx) -> bool:
    check: list = []
    _reversed_tower(n, ctx, check)
    return all(check)


@_rule("tower_property_reversed",
       "E[c E[Y | h_t]] = E[c Y] when c is a function of h_t (the law of total expectation, read right to left).",
       [_NORM, KNOWN_OUTSIDE], "tower property (unconditioning)", "E_tau[c E[Y | h_t]]",
       needs_normalisation=True, conditions=[Condition(KNOWN_OUTSIDE, _reversed_tower_ok)])
def TOWER_PROPERTY_REVERSED(n, ctx):
    return _reversed_tower(n, ctx, [])


STATE_ONLY = "the averaged quantity depends on s_t only (its actions are summed over)"


def _state_only_time(e):
    if isinstance(e, (ActionSum, ActionExpectation)):
        k = e.time
        nodes = time_nodes(e.body)
        if nodes and all(isinstance(node, (Policy, QValue, VValue, Advantage, Baseline, StateProb))
                         and node.time == k for node, _ in nodes):
            return k
    return None


@_rule("marginalise_state", "E_tau[g(s_t)] = sum_s Pr(s_t = s) g(s): the rest of tau sums out.",
       [_NORM, STATE_ONLY], r"marginal of $s_t$", "E_tau[g(s_t)]", needs_normalisation=True,
       conditions=[Condition(STATE_ONLY, lambda n, ctx: _state_only_time(n.body) is not None)])
def MARGINALISE_STATE(n, ctx):
    if _is_traj_mean(n) and not isinstance(n.body, Sum):
        k = n.body.time if isinstance(n.body, (ActionSum, ActionExpectation)) else None
        if k is not None:
            return StateSum(StateProb(k) * n.body, k)


# --- the surrogate's gradient at theta_old ---------------------------------------------------------------------

def _constant(e) -> bool:
    """theta-free: no theta among the free symbols outside [.]_{theta_old}, pi_{theta_old} and p(.|theta_old)."""
    stripped = e.replace(lambda a: isinstance(a, At), lambda a: S.One)
    stripped = stripped.replace(lambda a: isinstance(a, Policy) and a.param != theta, lambda a: S.One)
    if theta in stripped.free_symbols:
        return False
    implicit = (QValue, VValue, Advantage, StateProb, CondExpectation, ActionExpectation, Grad, Policy, Density)
    return not any(stripped.atoms(*implicit)) and not isinstance(stripped, implicit)


FIXED_MEASURE = "the trajectories are drawn under theta_old, which does not move with theta"


@_rule("grad_into_fixed_measure", "grad E_{tau ~ theta_old}[g] = E_{tau ~ theta_old}[grad g] (a fixed distribution).",
       [FIXED_MEASURE, "finitely many trajectories (or dominated convergence)"],
       r"$\nabla_\theta$ under a fixed $p(\tau \mid \theta_{old})$", "grad(E_{tau~theta_old}[g])",
       conditions=[Condition(FIXED_MEASURE, lambda n, ctx: n.expr.density.param != theta, "side")])
def GRAD_INTO_FIXED_MEASURE(n, ctx):
    if isinstance(n, Grad) and isinstance(n.expr, Expectation):
        body = n.expr.body
        inner = Sum(Grad(body.function, n.wrt), *body.limits) if isinstance(body, Sum) else Grad(body, n.wrt)
        return Expectation(inner, n.expr.density)


@_rule("constants_out_of_grad", "grad(c g) = c grad g when c does not depend on theta.",
       ["every factor taken out does not depend on theta (theta_old quantities, gamma^t)"],
       r"linearity of $\nabla_\theta$", "grad(c * g)")
def CONSTANTS_OUT_OF_GRAD(n, ctx):
    # the theta-free factors are the ones moved: no guard can fail
    if isinstance(n, Grad) and n.expr.is_Mul:
        out = [a for a in n.expr.args if _constant(a)]
        keep = [a for a in n.expr.args if a not in out]
        if out and keep:
            return Mul(*out) * Grad(Mul(*keep), n.wrt)


AT_THETA_OLD = "the line is evaluated at theta = theta_old (where grad L is compared with grad J)"


def _evaluate_at_theta_old(expr):
    if not expr.has(theta_old):
        raise RuleError("rule 'evaluate_at_theta_old' expects a quantity at theta_old; there is none in "
                        f"{expr}")
    out = expr.replace(lambda a: isinstance(a, At) and a.param == theta_old, lambda a: a.expr)
    out = out.replace(lambda a: isinstance(a, Policy) and a.param == theta_old, lambda a: Policy(a.time))
    return out.replace(lambda a: isinstance(a, Density) and a.param == theta_old, lambda a: Density(a.var, theta))


NO_DERIVATIVE_LEFT = "no derivative of a theta_old quantity remains"

# A whole-line rule: its side condition must see every gradient of the line, including one around the mean
# it rewrites (evaluating inside grad_theta would differentiate the wrong function).
EVALUATE_AT_THETA_OLD = Rule(
    "evaluate_at_theta_old",
    "At theta = theta_old: pi_{theta_old} = pi_theta, [X]_{theta_old} = X and p(.|theta_old) = p(.|theta).",
    (AT_THETA_OLD, NO_DERIVATIVE_LEFT), r"evaluate at $\theta = \theta_{old}$", _evaluate_at_theta_old,
    conditions=(Condition(NO_DERIVATIVE_LEFT, lambda e, ctx: not any(g.has(theta_old) or g.has(At)
                                                                        for g in e.atoms(Grad)), "side"),))


@_rule("score_from_ratio", "grad pi(a_t|s_t) / pi(a_t|s_t) = grad log pi(a_t|s_t) (the log-derivative identity).",
       ["pi_theta(a|s) > 0"], "log-derivative identity", "grad(pi) * pi^-1")
def SCORE_FROM_RATIO(n, ctx):
    if n.is_Mul:
        grads = [a for a in n.args if isinstance(a, Grad) and isinstance(a.expr, Policy) and a.expr.param == theta]
        for g in grads:
            inv = Pow(g.expr, -1)
            if inv in n.args:
                rest = [a for a in n.args if a is not g and a != inv]
                return Mul(*rest) * Grad(log(g.expr), g.wrt)


# --- the performance-difference lemma ---------------------------------------------------------------------------

@_rule("old_advantage_definition", "[A_t]_old = [Q_t]_old - [V_t]_old (the advantage of the old policy).",
       ["V_t(s) = E_{a ~ pi(.|s)}[Q_t(s, a)] under the old policy"], "definition of the advantage", "[A_t]_old")
def OLD_ADVANTAGE_DEFINITION(n, ctx):
    if isinstance(n, At) and isinstance(n.expr, Advantage):
        k = n.expr.time
        return At(QValue(k), n.param) - At(VValue(k), n.param)


@_rule("q_bellman_old",
       "[Q_t(s_t, a_t)]_old = E[r_t + gamma [V_{t+1}(s_{t+1})]_old | h_t, a_t]: Q depends on the policy after t only "
       "through V_{t+1}, and s_{t+1} ~ p(.|s_t, a_t) whatever policy acts.",
       ["the Bellman equation Q_t(s,a) = E[r_t + gamma V_{t+1}(s_{t+1}) | s_t = s, a_t = a], V_H = 0", _NORM],
       r"Bellman equation for $Q_t$", "[Q_t]_old", needs_normalisation=True)
def Q_BELLMAN_OLD(n, ctx):
    if isinstance(n, At) and isinstance(n.expr, QValue):
        k = n.expr.time
        return CondExpectation(Reward(k) + gamma * At(VValue(k + 1), n.param), k, 1)


def _telescope_pair(terms):
    """(gamma^{t+1} g_{t+1}, -gamma^t g_t) among the terms of a sum over t, with g_t a value node."""
    for up in terms:
        c_up, rest_up = up.as_coeff_Mul()
        if c_up != 1 or not rest_up.is_Mul or gamma**(t + 1) not in rest_up.args:
            continue
        g_next = Mul(*[a for a in rest_up.args if a != gamma**(t + 1)])
        g_now = g_next.xreplace({t + 1: t}) if g_next.has(t + 1) else None
        if g_now is None or g_now.has(t + 1):
            continue
        down = -gamma**t * g_now
        if down in terms:
            return up, down, g_now
    return None


G_H_ZERO = "the telescoped quantity is a value V_t, so V_H = 0"


def _telescope_g_is_value(n, ctx) -> bool:
    found = _telescope_pair(list(n.function.args))
    g = found[2]
    inner = g.expr if isinstance(g, At) else g
    return isinstance(inner, VValue)


@_rule("telescope_sum", "sum_{t<H} (x_t + gamma^{t+1} g_{t+1} - gamma^t g_t) = sum_{t<H} x_t + gamma^H g_H - g_0, g_H = 0.",
       [G_H_ZERO], "telescoping sum", "Sum(x_t + gamma^{t+1} g_{t+1} - gamma^t g_t, (t, 0, H-1))",
       conditions=[Condition(G_H_ZERO, _telescope_g_is_value)])
def TELESCOPE_SUM(n, ctx):
    if isinstance(n, Sum) and len(n.limits) == 1 and tuple(n.limits[0]) == (t, 0, H - 1) and n.function.is_Add:
        found = _telescope_pair(list(n.function.args))
        if found:
            up, down, g_now = found
            rest = [a for a in n.function.args if a != up and a != down]
            return Sum(Add(*rest), (t, 0, H - 1)) - g_now.xreplace({t: 0})


@_rule("return_recognised", "sum_{t=0}^{H-1} gamma^t r_t = R(tau) (definition of the return).",
       ["R(tau) is the discounted return of the whole trajectory"], "definition of the return",
       "Sum(gamma^t r_t, (t, 0, H-1))")
def RETURN_RECOGNISED(n, ctx):
    if isinstance(n, Sum) and len(n.limits) == 1 and tuple(n.limits[0]) == (t, 0, H - 1) \
            and n.function == gamma**t * Reward(t):
        return Return(tau)


@_rule("old_value_of_start", "E_tau[[V_0(s_0)]_old] = E_{tau ~ theta_old}[R(tau)]: s_0 ~ rho_0 under either policy.",
       [_NORM, "V_0(s) = E[R(tau) | s_0 = s] under the old policy"], r"definition of $J(\theta_{old})$",
       "E_tau[[V_0(s_0)]_old]", needs_normalisation=True)
def OLD_VALUE_OF_START(n, ctx):
    if _is_traj_mean(n) and isinstance(n.body, At) and n.body.expr == VValue(0):
        return Expectation(Return(tau), Density(tau, n.body.param))


# --- the natural gradient (Kakade 2001) ---------------------------------------------------------------------------

TABULAR = "the policy is the tabular softmax, one parameter theta_{s,a} per state and action"


@_rule("tabular_softmax_score",
       "<grad log pi(a_t|s_t), w> = w(s_t, a_t) - E_{b ~ pi(.|s_t)}[w(s_t, b)] for the tabular softmax "
       "(d log pi(a|s) / d theta_{s',b} = [s' = s]([b = a] - pi(b|s))).",
       [TABULAR], "tabular softmax score", "<grad log pi(a_t|s_t), w>")
def TABULAR_SOFTMAX_SCORE(n, ctx):
    if isinstance(n, ScoreDot):
        return n.table - ActionExpectation(n.table, n.time)


OWN_ADVANTAGE = "the advantage is averaged over its own action under pi (V_t = E_{a ~ pi}[Q_t])"


@_rule("advantage_mean_zero", "E_{a_t ~ pi(.|s_t)}[A_t(s_t, a_t)] = 0, since V_t(s_t) = E_{a_t ~ pi}[Q_t(s_t, a_t)].",
       [_NORM, OWN_ADVANTAGE], "the advantage has mean zero", "E_{a_t ~ pi}[A_t(s_t, a_t)]",
       needs_normalisation=True,
       conditions=[Condition(OWN_ADVANTAGE, lambda n, ctx: n.body.time == n.time)])
def ADVANTAGE_MEAN_ZERO(n, ctx):
    if isinstance(n, ActionExpectation) and isinstance(n.body, Advantage):
        return S.Zero


THEORY_RULES = {r.name: r for r in [
    TABULAR_SOFTMAX_SCORE, ADVANTAGE_MEAN_ZERO,
    VALUE_OF_START, GRAD_INTO_START_MEAN, TELESCOPE_START, GRAD_VALUE_RECURSION, TOWER_PROPERTY_REVERSED,
    MARGINALISE_STATE, GRAD_INTO_FIXED_MEASURE, CONSTANTS_OUT_OF_GRAD, EVALUATE_AT_THETA_OLD, SCORE_FROM_RATIO,
    OLD_ADVANTAGE_DEFINITION, Q_BELLMAN_OLD, TELESCOPE_SUM, RETURN_RECOGNISED, OLD_VALUE_OF_START]}
