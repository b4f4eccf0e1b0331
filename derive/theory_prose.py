"""The rules of ``derive.theory_rules`` in words with real mathematics (``Prose``), merged into ``RULE_PROSE``."""

from __future__ import annotations

from derive.notation import theta
from derive.printing import Prose, Tex

__all__ = ["THEORY_PROSE"]

T = Tex
_norm = Prose(T(r"\sum_a \pi_\theta(a \mid s) = 1", "Σₐ πθ(a|s) = 1"), " and ",
              T(r"\sum_{s'} p(s' \mid s, a) = 1", "Σₛ′ p(s′|s, a) = 1"), " (the later steps sum out)")
_h = T(r"h_t", "hₜ")
_old = T(r"\theta_{old}", "θ_old")

THEORY_PROSE: dict = {
    "tabular_softmax_score": (
        Prose("The tabular softmax's score against a table ", T("w", "w"), ": ",
              T(r"\langle \nabla_\theta \log \pi(a_t \mid s_t), w \rangle = w(s_t, a_t) - "
                r"\mathbb{E}_{b \sim \pi(\cdot \mid s_t)}[w(s_t, b)]",
                "⟨∇θ log π(aₜ|sₜ), w⟩ = w(sₜ, aₜ) − E_b∼π(·|sₜ)[w(sₜ, b)]"), "."),
        (Prose("the policy is the tabular softmax, one parameter per state and action"),)),
    "advantage_mean_zero": (
        Prose(T(r"\mathbb{E}_{a_t \sim \pi}[A_t(s_t, a_t)] = 0", "E_aₜ∼π[Aₜ(sₜ, aₜ)] = 0"),
              ": under the policy the advantage has mean zero."),
        (Prose("the advantage is averaged over its own action"), _norm)),
    "value_of_start": (
        Prose(T(r"\mathbb{E}_\tau[R(\tau)] = \mathbb{E}_\tau[V_0(s_0)]", "E_τ[R(τ)] = E_τ[V₀(s₀)]"),
              ": the mean return given the start state is its value."),
        (_norm, Prose(T(r"V_0(s) = \mathbb{E}[R(\tau) \mid s_0 = s]", "V₀(s) = E[R(τ) | s₀ = s]")))),
    "grad_into_start_mean": (
        Prose("The start state is drawn from ", T(r"\rho_0", "ρ₀"), " whatever ", theta,
              " is, so the gradient goes inside the mean over it."),
        (_norm, Prose("the averaged quantity depends on ", T("s_0", "s₀"), " only"))),
    "telescope_start": (
        Prose(T(r"g_0 = \sum_{t=0}^{H-1} (\gamma^t g_t - \gamma^{t+1} g_{t+1})", "g₀ = Σₜ (γᵗ gₜ − γᵗ⁺¹ gₜ₊₁)"),
              " when ", T("g_H = 0", "g_H = 0"), " (a telescoping sum)."),
        (Prose(T("V_H = 0", "V_H = 0"), ": no action is left at the horizon"),)),
    "grad_value_recursion": (
        Prose("Differentiate the Bellman equations ", T(r"V_t = \sum_a \pi Q_t", "Vₜ = Σₐ π Qₜ"), " and ",
              T(r"Q_t = \bar r + \gamma \sum_{s'} p\, V_{t+1}", "Qₜ = r̄ + γ Σₛ′ p Vₜ₊₁"), ": ",
              T(r"\nabla_\theta V_t(s_t) = \sum_a \nabla_\theta \pi\, Q_t + \gamma\, \mathbb{E}[\nabla_\theta "
                r"V_{t+1}(s_{t+1}) \mid s_t]", "∇θVₜ(sₜ) = Σₐ ∇θπ Qₜ + γ E[∇θVₜ₊₁(sₜ₊₁) | sₜ]"), "."),
        (Prose("rewards and transitions do not depend on ", theta), _norm)),
    "tower_property_reversed": (
        Prose("The law of total expectation read right to left: ",
              T(r"\mathbb{E}[c\, \mathbb{E}[Y \mid h_t]] = \mathbb{E}[c\, Y]", "E[c E[Y | hₜ]] = E[c Y]"), "."),
        (_norm, Prose("every other factor is a function of the history ", _h, " conditioned on"))),
    "marginalise_state": (
        Prose(T(r"\mathbb{E}_\tau[g(s_t)] = \sum_s \Pr(s_t = s)\, g(s)", "E_τ[g(sₜ)] = Σₛ Pr(sₜ = s) g(s)"),
              ": the rest of the trajectory sums out."),
        (_norm, Prose("the averaged quantity depends on ", T("s_t", "sₜ"), " only"))),
    "grad_into_fixed_measure": (
        Prose("The trajectories are drawn under ", _old, ", which does not move with ", theta,
              ": the gradient goes inside the mean."),
        (Prose("the sampling distribution is ", T(r"p(\tau \mid \theta_{old})", "p(τ|θ_old)")),
         Prose("finitely many trajectories (or dominated convergence)"))),
    "constants_out_of_grad": (
        Prose(T(r"\nabla_\theta (c\, g) = c\, \nabla_\theta g", "∇θ(c g) = c ∇θg"), " for a constant ",
              T("c", "c"), "."),
        (Prose("every factor taken out does not depend on ", theta, " (quantities at ", _old, ", ",
               T(r"\gamma^t", "γᵗ"), ")"),)),
    "evaluate_at_theta_old": (
        Prose("Evaluate at ", T(r"\theta = \theta_{old}", "θ = θ_old"), ": the old policy, its values and its "
              "trajectory distribution are the current ones there."),
        (Prose("the line is evaluated at ", T(r"\theta = \theta_{old}", "θ = θ_old")),
         Prose("no derivative of a quantity at ", _old, " remains"))),
    "score_from_ratio": (
        Prose(T(r"\nabla_\theta \pi / \pi = \nabla_\theta \log \pi", "∇θπ / π = ∇θ log π"),
              " (the log-derivative identity)."),
        (Prose(T(r"\pi_\theta(a \mid s) > 0", "πθ(a|s) > 0")),)),
    "old_advantage_definition": (
        Prose("The advantage of the old policy is its action value minus its state value."),
        (Prose(T(r"V_t(s) = \mathbb{E}_{a \sim \pi}[Q_t(s, a)]", "Vₜ(s) = E_a∼π[Qₜ(s, a)]"),
               " under the old policy"),)),
    "q_bellman_old": (
        Prose(T(r"Q_t(s_t, a_t) = \mathbb{E}[r_t + \gamma V_{t+1}(s_{t+1}) \mid h_t, a_t]",
                "Qₜ(sₜ, aₜ) = E[rₜ + γ Vₜ₊₁(sₜ₊₁) | hₜ, aₜ]"),
              " whatever policy acts after ", T("t", "t"), " (the Bellman equation)."),
        (Prose("the Bellman equation of the old policy, with ", T("V_H = 0", "V_H = 0")), _norm)),
    "telescope_sum": (
        Prose(T(r"\sum_{t=0}^{H-1} (x_t + \gamma^{t+1} g_{t+1} - \gamma^t g_t) = \sum_t x_t - g_0",
                "Σₜ (xₜ + γᵗ⁺¹ gₜ₊₁ − γᵗ gₜ) = Σₜ xₜ − g₀"), " (a telescoping sum)."),
        (Prose("the telescoped quantity is a value, so ", T("V_H = 0", "V_H = 0")),)),
    "return_recognised": (
        Prose(T(r"\sum_{t=0}^{H-1} \gamma^t r_t = R(\tau)", "Σₜ γᵗ rₜ = R(τ)"), " (the definition of the return)."),
        (Prose("the return of the whole trajectory"),)),
    "old_value_of_start": (
        Prose("The mean of the old start value is the old objective: ",
              T(r"\mathbb{E}_\tau[V^{old}_0(s_0)] = J(\theta_{old})", "E_τ[V₀ᵒˡᵈ(s₀)] = J(θ_old)"), "."),
        (_norm, Prose("the start state has the law ", T(r"\rho_0", "ρ₀"), " under either policy"))),
}
