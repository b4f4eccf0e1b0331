"""The seed's slips whose evidence needs exact numerics: estimator variances and biases by enumeration.

The symbolic slips live in ``derive.errata``; ``all_errata`` returns both kinds as one tuple of
``derive.errata.Erratum`` (one type, so the report, the JSON and the LaTeX export read the same data).
"""
from __future__ import annotations

import functools

import numpy as np

from derive.errata import Erratum, symbolic_errata
from verify.estimators import get_estimator
from verify.mdp import TabularMDP
from verify.moments import exact_moments_all
from verify.policy import TabularSoftmax

__all__ = ["all_errata", "discount_restart_bias", "numeric_errata", "rtg_variance_counterexample"]


def _two_pull_bandit() -> tuple[TabularMDP, TabularSoftmax]:
    """One state, actions with rewards -2 and +2, pulled twice (H = 2, gamma = 1); pi favours the -2 arm."""
    mdp = TabularMDP(initial=[1.0], transitions=np.ones((1, 2, 1)), rewards=[[-2.0, 2.0]], gamma=1.0, horizon=2,
                     actions=("lose", "win"), name="two-pull bandit")
    return mdp, TabularSoftmax([[2.0, -2.0]])


def rtg_variance_counterexample() -> dict[str, float]:
    """Exact per-episode variances tr Cov[g] of total-return and reward-to-go estimators on the two-pull bandit.

    Returns:
      {"total_return": tr Cov, "reward_to_go": tr Cov}; the seed's remark claims the second is smaller.
    """
    mdp, policy = _two_pull_bandit()
    est = [get_estimator("total_return"), get_estimator("reward_to_go")]
    moments = exact_moments_all(est, mdp, policy)
    return {name: float(np.trace(m.cov)) for name, m in moments.items()}


def discount_restart_bias() -> dict[str, float]:
    """max |exact bias| of reward-to-go with gamma^{t'} and with the restarted gamma^{t'-t}, on a 2-step chain."""
    P = np.zeros((3, 2, 3))
    P[0, 0, 0] = P[0, 1, 1] = 1.0           # 'stay' or 'go' from s0
    P[1, :, 2] = 1.0                        # s1 always moves on to the end
    P[2, :, 2] = 1.0
    r = np.zeros((3, 2))
    r[1] = [1.0, 0.0]
    mdp = TabularMDP([1, 0, 0], P, r, terminal=[2], gamma=0.5, horizon=3, name="discounted chain")
    policy = TabularSoftmax(np.zeros((3, 2)))
    est = [get_estimator("reward_to_go"), get_estimator("rtg_restart_discount")]
    moments = exact_moments_all(est, mdp, policy)
    return {name: float(np.abs(m.bias).max()) for name, m in moments.items()}


@functools.lru_cache(maxsize=1)
def numeric_errata() -> tuple[Erratum, ...]:
    """The errata whose evidence is an exact variance or bias of an estimator."""
    var = rtg_variance_counterexample()
    bias = discount_restart_bias()
    return (
        Erratum(
            "reward-to-go-variance", "“Reward-to-go has lower variance” is not a theorem",
            "the “reward-to-go” … which has lower variance because actions at time t cannot influence rewards "
            "received before time t",
            "Reward-to-go removes terms with mean zero; that lowers the variance only when those terms are not "
            "negatively correlated with the rest. It often helps, but it can increase the variance.",
            f"Two-pull bandit (rewards −2/+2, θ = (2, −2), H = 2, γ = 1), exact by enumeration: "
            f"tr Cov[total return] = {var['total_return']:.6g} < tr Cov[reward-to-go] = {var['reward_to_go']:.6g} "
            f"({var['reward_to_go'] / var['total_return']:.3g}× larger).",
            var, rtg_variance_counterexample),
        Erratum(
            "reward-to-go-discount-origin", "Reward-to-go must keep γ^{t'}, not restart the discount at t",
            "… would use the “reward-to-go” Σ_{t'=t}^T r_{t'} instead",
            "For J = E[Σ_t γ^t r_t] the weight of ∇log π(a_t|s_t) is Σ_{t'≥t} γ^{t'} r_{t'}; the common "
            "Σ_{t'≥t} γ^{t'−t} r_{t'} is biased unless γ = 1 (it drops the factor γ^t of step t).",
            f"Two-step chain with γ = 0.5, exact by enumeration: max |bias| of reward-to-go with γ^{{t'}} = "
            f"{bias['reward_to_go']:.3g}, with γ^{{t'−t}} = {bias['rtg_restart_discount']:.6g}.",
            bias, discount_restart_bias),
    )


def all_errata() -> tuple[Erratum, ...]:
    """Every erratum: the symbolic ones (derive) then the numeric ones."""
    return (*symbolic_errata(), *numeric_errata())
