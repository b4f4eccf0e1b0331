"""Errata of the source derivation (Schindorfer, Policy Gradient Derivation) whose evidence needs exact numerics:
estimator variances and biases by enumeration.

The symbolic slips live in ``derive.errata``; ``all_errata`` returns both kinds as one tuple of
``derive.errata.Erratum`` (one type, so the report, the JSON, the LaTeX and the HTML read the same data).
Each is a check: a predicate on the computed numbers, and a sentence whose numbers, comparison words and the
example's parameters are generated from them; change the example (``reward_to_go_variance(rewards=(0, 1))``)
and the sentence and the verdict follow.

>>> e = reward_to_go_variance()
>>> e.holds, e.parameters["rewards"]
(True, (-2.0, 2.0))
"""
from __future__ import annotations

import functools

import numpy as np

from derive.errata import Erratum, comparison, symbolic_errata
from derive.notation import Reward, gamma, t, tp, H, time_sum
from sympy import Sum, Symbol
from derive.printing import Prose, Tex
from verify.checks.estimators import get_estimator
from verify.model.mdp import TabularMDP
from verify.checks.moments import exact_moments_all
from verify.model.policy import TabularSoftmax

__all__ = ["all_errata", "discount_restart_bias", "numeric_errata", "rtg_variance_counterexample",
           "reward_to_go_variance", "reward_to_go_discount_origin", "BIAS_ZERO_TOL"]

BIAS_ZERO_TOL = 1e-12   # an exact bias (by enumeration, in float64) below this is round-off, i.e. zero


def _two_pull_bandit(rewards, theta, horizon, discount) -> tuple[TabularMDP, TabularSoftmax]:
    """One state, two actions with the given rewards, pulled ``horizon`` times."""
    mdp = TabularMDP(initial=[1.0], transitions=np.ones((1, 2, 1)), rewards=[list(rewards)], gamma=discount,
                     horizon=horizon, actions=("lose", "win"), name="two-pull bandit")
    return mdp, TabularSoftmax([list(theta)])


def rtg_variance_counterexample(rewards=(-2.0, 2.0), theta=(2.0, -2.0), horizon: int = 2,
                                discount: float = 1.0) -> dict[str, float]:
    """Exact per-episode variances tr Cov[g] of total-return and reward-to-go estimators on a bandit.

    Args:
      rewards: the two arms' rewards.
      theta: the softmax logits [2].
      horizon: pulls per episode.
      discount: γ.

    Returns:
      {"total_return": tr Cov, "reward_to_go": tr Cov}; the source's remark claims the second is smaller.
    """
    mdp, policy = _two_pull_bandit(rewards, theta, horizon, discount)
    est = [get_estimator("total_return"), get_estimator("reward_to_go")]
    moments = exact_moments_all(est, mdp, policy)
    return {name: float(np.trace(m.cov)) for name, m in moments.items()}


def discount_restart_bias(discount: float = 0.5) -> dict[str, float]:
    """max |exact bias| of reward-to-go with γ^{t'} and with the restarted γ^{t'-t}, on a 2-step chain."""
    P = np.zeros((3, 2, 3))
    P[0, 0, 0] = P[0, 1, 1] = 1.0           # 'stay' or 'go' from s0
    P[1, :, 2] = 1.0                        # s1 always moves on to the end
    P[2, :, 2] = 1.0
    r = np.zeros((3, 2))
    r[1] = [1.0, 0.0]
    mdp = TabularMDP([1, 0, 0], P, r, terminal=[2], gamma=discount, horizon=3, name="discounted chain")
    policy = TabularSoftmax(np.zeros((3, 2)))
    est = [get_estimator("reward_to_go"), get_estimator("rtg_restart_discount")]
    moments = exact_moments_all(est, mdp, policy)
    return {name: float(np.abs(m.bias).max()) for name, m in moments.items()}


def _num(v: float) -> str:
    return f"{v:.6g}".replace("-", "−")


_TR_TOTAL = Tex(r"\operatorname{tr}\operatorname{Cov}[g_{\mathrm{total}}]", "tr Cov[g_total]")
_TR_RTG = Tex(r"\operatorname{tr}\operatorname{Cov}[g_{\mathrm{RTG}}]", "tr Cov[g_RTG]")


def reward_to_go_variance(rewards=(-2.0, 2.0), theta=(2.0, -2.0), horizon: int = 2,
                          discount: float = 1.0) -> Erratum:
    """“Reward-to-go has lower variance”: shown false when tr Cov[g_RTG] > tr Cov[g_total] on the bandit."""
    params = {"rewards": tuple(map(float, rewards)), "theta": tuple(map(float, theta)), "horizon": horizon,
              "gamma": float(discount)}
    check = functools.partial(rtg_variance_counterexample, params["rewards"], params["theta"], horizon,
                              params["gamma"])
    v = check()
    tot, rtg = v["total_return"], v["reward_to_go"]
    rel = comparison(tot, rtg)
    if tot > 0 and rtg != tot:
        ratio = f" ({rtg / tot:.3g}× larger)" if rtg > tot else f" ({tot / rtg:.3g}× smaller)" if rtg > 0 else ""
    else:
        ratio = ""
    return Erratum(
        "reward-to-go-variance", "“Reward-to-go has lower variance” is not a theorem",
        Prose("The “reward-to-go” ", Sum(Reward(tp), (tp, t, Symbol("T"))), " … “has lower variance "
              "because actions at time t cannot influence rewards received before time t”."),
        Prose("Reward-to-go removes terms with mean zero; that lowers the variance only when those terms are not "
              "negatively correlated with the rest. It often helps, but it can increase the variance."),
        Prose(f"Two-pull bandit (rewards {_num(params['rewards'][0])} and {_num(params['rewards'][1])}, θ = "
              f"({_num(params['theta'][0])}, {_num(params['theta'][1])}), H = {horizon}, ", gamma,
              f" = {_num(params['gamma'])}), exact by enumeration: ", _TR_TOTAL, f" = {_num(tot)} {rel} ", _TR_RTG,
              f" = {_num(rtg)}{ratio}."),
        v, check, lambda val: val["reward_to_go"] > val["total_return"],
        Prose(_TR_RTG, " > ", _TR_TOTAL, " on the example"),
        evidence_display=(Tex(rf"\operatorname{{tr}}\operatorname{{Cov}}[g_{{\mathrm{{total}}}}] = {tot:.6g} "
                              rf"{rel} {rtg:.6g} = \operatorname{{tr}}\operatorname{{Cov}}[g_{{\mathrm{{RTG}}}}]",
                              f"tr Cov[g_total] = {_num(tot)} {rel} {_num(rtg)} = tr Cov[g_RTG]"),),
        parameters=params, kind="warning",
        quotes=("which has lower variance because actions at time  $t$  cannot influence rewards received before "
                "time  $t$",))


def reward_to_go_discount_origin(discount: float = 0.5) -> Erratum:
    """Restarting the discount at t (γ^{t'−t}) is biased unless γ = 1; γ^{t'} is unbiased (exact biases)."""
    check = functools.partial(discount_restart_bias, float(discount))
    v = check()
    ok, restart = v["reward_to_go"], v["rtg_restart_discount"]

    def size(b):
        return _num(b) if b > BIAS_ZERO_TOL or b == 0 else f"0 (round-off {_num(b)})"

    return Erratum(
        "reward-to-go-discount-origin",
        Prose("Keep ", gamma**tp, " in a discounted reward-to-go"),
        Prose("The remark “would use the ‘reward-to-go’ ", Sum(Reward(tp), (tp, t, Symbol("T"))),
              " instead” does not say how to discount it; implementations commonly restart the discount at t."),
        Prose("For ", Tex(r"J = \mathbb{E}[\sum_t \gamma^t r_t]", "J = E[Σₜ γᵗ rₜ]"), " the weight of ",
              Tex(r"\nabla_\theta \log \pi_\theta(a_t \mid s_t)", "∇θ log πθ(aₜ|sₜ)"), " is ",
              time_sum(gamma**tp * Reward(tp), tp, t, H - 1), "; the common ",
              time_sum(gamma**(tp - t) * Reward(tp), tp, t, H - 1),
              " is biased unless γ = 1 (it drops the factor ", gamma**t, " of step t)."),
        Prose(f"Two-step chain with γ = {_num(discount)}, exact by enumeration: max |bias| of reward-to-go with ",
              gamma**tp, f" = {size(ok)}, with ", gamma**(tp - t), f" = {size(restart)}"
              + (" ≠ 0." if restart > BIAS_ZERO_TOL else ", no bias at this γ.")),
        v, check, lambda val: val["rtg_restart_discount"] > BIAS_ZERO_TOL >= val["reward_to_go"],
        Prose("the restarted discount's exact bias ≠ 0 while reward-to-go's is 0 (tolerance ",
              f"{BIAS_ZERO_TOL:g})"),
        parameters={"gamma": float(discount)}, kind="warning",
        quotes=(r"“reward-to-go”  $\sum_{t'=t}^T r_{t'}$  instead",))


@functools.lru_cache(maxsize=1)
def numeric_errata() -> tuple[Erratum, ...]:
    """The errata whose evidence is an exact variance or bias of an estimator, at their default examples."""
    return reward_to_go_variance(), reward_to_go_discount_origin()


def all_errata() -> tuple[Erratum, ...]:
    """Every erratum: the symbolic ones (derive) then the numeric ones."""
    return (*symbolic_errata(), *numeric_errata())
