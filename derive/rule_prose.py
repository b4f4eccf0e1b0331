r"""Each rule's justification and side conditions as text with real mathematics (``Prose``), for every medium.

``derive.rules`` states each rule's justification and side conditions in words for people reading the code;
the documents (LaTeX, Markdown, HTML, the terminal) print the versions below, whose mathematics is SymPy
expressions or hand-written LaTeX with its Unicode twin (``Tex``), never ASCII pseudo-maths.  A rule missing
here falls back to its own words (``rule_prose``), which the tests flag.

>>> j, conds = rule_prose(RULES_BY_NAME["exchange_grad_integral"])
>>> conds[0].latex()
'the support of $p(x \\mid \\theta)$ does not depend on $\\theta$'
"""

from __future__ import annotations

from derive.notation import Density, Transition, InitialDist, theta, x, t, tau
from derive.printing import Prose, Tex

__all__ = ["RULE_PROSE", "rule_prose", "RULES_BY_NAME"]

T = Tex
_p = Density(x, theta)
_grad = T(r"\nabla_\theta", "∇θ")
_sum_pi = T(r"\sum_a \pi_\theta(a \mid s) = 1", "Σₐ πθ(a|s) = 1")
_sum_P = T(r"\sum_{s'} p(s' \mid s, a) = 1", "Σₛ′ p(s′|s, a) = 1")
_h_t = T(r"h_t = (s_0, a_0, \ldots, s_t)", "hₜ = (s₀, a₀, …, sₜ)")
_finite_t = Prose("the sum over ", T(r"t = 0, \ldots, H-1", "t = 0, …, H − 1"), " is finite")

RULE_PROSE: dict[str, tuple[Prose, tuple[Prose, ...]]] = {
    "expectation_as_integral": (
        Prose("Definition of expectation as an integral (a sum for discrete ", x, ")."),
        (Prose(_p, " is a density (or mass function) of ", x),)),
    "exchange_grad_integral": (
        Prose("Differentiate under the integral sign (Leibniz rule)."),
        (Prose("the support of ", _p, " does not depend on ", theta),
         Prose(T(r"|\nabla_\theta (f p)|", "|∇θ(f p)|"), " is dominated by an integrable function of ", x,
               " (dominated convergence)"))),
    "product_rule": (
        Prose(T(r"\nabla_\theta (u v) = v \nabla_\theta u + u \nabla_\theta v", "∇θ(u v) = v ∇θu + u ∇θv"), "."),
        (Prose("every factor is differentiable in ", theta),)),
    "grad_of_independent": (
        Prose("The gradient of a quantity that does not depend on ", theta, " is zero."),
        (Prose("the differentiated term does not depend on ", theta),)),
    "multiply_divide_density": (
        Prose("Multiply and divide by ", _p, "."),
        (Prose(T(r"p(x \mid \theta) > 0", "p(x|θ) > 0"), " wherever ", T(r"\nabla_\theta p(x \mid \theta)",
                                                                          "∇θ p(x|θ)"), " is integrated"),)),
    "log_derivative": (
        Prose(T(r"\nabla_\theta p / p = \nabla_\theta \log p", "∇θ p / p = ∇θ log p"),
              " (the chain rule for the logarithm)."),
        (Prose(T(r"p(x \mid \theta) > 0", "p(x|θ) > 0")),)),
    "expectation_recognised": (
        Prose("An integral of ", _p, " times ", T("g(x)", "g(x)"), " is ",
              T(r"\mathbb{E}_{x \sim p(\cdot \mid \theta)}[g(x)]", "E_x∼p(·|θ)[g(x)]"), "."),
        (Prose(T(r"p(\cdot \mid \theta)", "p(·|θ)"), " is a probability density of the integration variable"),)),
    "substitute_trajectory": (
        Prose("Instantiate the identity (1)–(7) at ", T(r"x = \tau", "x = τ"), ", ", T("f = R", "f = R"), ", ",
              T(r"p(x \mid \theta) = p(\tau \mid \theta)", "p(x|θ) = p(τ|θ)"), "."),
        (Prose(T(r"R(\tau)", "R(τ)"), " does not depend on ", theta),
         Prose(T(r"J(\pi_\theta) = \mathbb{E}_{\tau \sim p(\cdot \mid \theta)}[R(\tau)]",
                 "J(πθ) = E_τ∼p(·|θ)[R(τ)]")))),
    "trajectory_factorisation": (
        Prose("The chain rule of probability and the Markov property."),
        (Prose(T(r"\tau = (s_0, a_0, \ldots, s_{H-1}, a_{H-1}, s_H)", "τ = (s₀, a₀, …, s_H−1, a_H−1, s_H)"),
               ", a finite horizon ", T("H", "H")),
         Prose(T(r"a_t \sim \pi_\theta(\cdot \mid s_t)", "aₜ ∼ πθ(·|sₜ)"), " and ",
               T(r"s_{t+1} \sim p(\cdot \mid s_t, a_t)", "sₜ₊₁ ∼ p(·|sₜ, aₜ)"), " given the past"))),
    "take_logs": (Prose("Take the logarithm of both sides."), (Prose("both sides are positive"),)),
    "log_of_product": (
        Prose(T(r"\log(ab) = \log a + \log b", "log(ab) = log a + log b"), " and ",
              T(r"\log \prod_i x_i = \sum_i \log x_i", "log ∏ᵢ xᵢ = Σᵢ log xᵢ"), "."),
        (Prose("every factor is positive"),)),
    "grad_both_sides": (
        Prose("Apply ", _grad, " to both sides of an identity in ", theta, "."),
        (Prose("the equation holds for every ", theta, " in an open set"),)),
    "grad_of_sum": (
        Prose("The gradient is linear: ", T(r"\nabla_\theta \sum_i u_i = \sum_i \nabla_\theta u_i",
                                            "∇θ Σᵢ uᵢ = Σᵢ ∇θ uᵢ"), "."),
        (_finite_t,)),
    "drop_independent_terms": (
        Prose("Distribute ", _grad, " over the sum; ", InitialDist(), " and ", Transition(t),
              " do not depend on ", theta, "."),
        (_finite_t, Prose("the dropped terms do not depend on ", theta))),
    "factor_into_sum": (
        Prose(T(r"c \sum_t g_t = \sum_t c\, g_t", "c Σₜ gₜ = Σₜ c gₜ"), " when ", T("c", "c"),
              " does not depend on ", t, "."),
        (Prose("the factor does not depend on the summation index"),)),
    "factor_out_of_sum": (
        Prose(T(r"\sum_t c\, g_t = c \sum_t g_t", "Σₜ c gₜ = c Σₜ gₜ"), " when ", T("c", "c"),
              " does not depend on ", t, "."),
        (Prose("the factor does not depend on the summation index"),)),
    "return_definition": (
        Prose("The discounted return ", T(r"R(\tau) = \sum_{t'=0}^{H-1} \gamma^{t'} r_{t'}", "R(τ) = Σₜ′₌₀ᴴ⁻¹ γᵗ′ rₜ′"),
              "."),
        (Prose("the rewards ", T(r"r_{t'} = r(s_{t'}, a_{t'}, s_{t'+1})", "rₜ′ = r(sₜ′, aₜ′, sₜ′₊₁)"),
               " do not depend on ", theta),)),
    "split_at_t": (
        Prose("Split ", T(r"\sum_{t'=0}^{H-1}", "Σₜ′₌₀ᴴ⁻¹"), " into ", T("t' < t", "t′ < t"), " and ",
              T(r"t' \geq t", "t′ ≥ t"), "."),
        (Prose(T(r"0 \leq t \leq H-1", "0 ≤ t ≤ H − 1")),)),
    "distribute": (Prose(T("g(u + v) = gu + gv", "g(u + v) = gu + gv"), "."), (Prose("none (field axioms)"),)),
    "linearity_of_expectation": (
        Prose("Linearity of expectation: ", T(r"\mathbb{E}[u + v] = \mathbb{E}[u] + \mathbb{E}[v]",
                                              "E[u + v] = E[u] + E[v]"), "."),
        (Prose("each term has a finite expectation"),)),
    "past_rewards_vanish": (
        Prose(T(r"\mathbb{E}[\nabla_\theta \log \pi_\theta(a_t \mid s_t)\, r_{t'}] = 0",
                "E[∇θ log πθ(aₜ|sₜ) rₜ′] = 0"), " for ", T("t' < t", "t′ < t"), ": ", T(r"r_{t'}", "rₜ′"),
              " is fixed given ", T("s_t", "sₜ"), " and the score has mean zero given ", T("s_t", "sₜ"), "."),
        (Prose(_sum_pi, " for every ", T("s", "s")), Prose(_sum_P, " (later steps sum out)"),
         Prose(T("t' < t", "t′ < t"), " (causality)"))),
    "baseline_vanishes": (
        Prose(T(r"\mathbb{E}[\nabla_\theta \log \pi_\theta(a_t \mid s_t)\, b(s_t)] = 0",
                "E[∇θ log πθ(aₜ|sₜ) b(sₜ)] = 0"), " because ", _sum_pi, "."),
        (Prose(_sum_pi, " for every ", T("s", "s")),
         Prose(T("b", "b"), " depends on the state ", T("s_t", "sₜ"), " only, not on ", T("a_t", "aₜ")))),
    "tower_property": (
        Prose("The law of total expectation: ", T(r"\mathbb{E}[Y_t] = \mathbb{E}[\mathbb{E}[Y_t \mid h_t]]",
                                                  "E[Yₜ] = E[E[Yₜ|hₜ]]"), ", ", _h_t, "."),
        (Prose(_sum_pi, " and ", _sum_P), _finite_t)),
    "tower_property_action": (
        Prose("The law of total expectation: ",
              T(r"\mathbb{E}[Y_t] = \mathbb{E}[\mathbb{E}[Y_t \mid h_t, a_t]]", "E[Yₜ] = E[E[Yₜ|hₜ, aₜ]]"), "."),
        (Prose(_sum_pi, " and ", _sum_P), _finite_t)),
    "pull_out_known": (
        Prose("Take out what is known: ", T(r"\mathbb{E}[X Y \mid h_t] = X\, \mathbb{E}[Y \mid h_t]",
                                            "E[X Y|hₜ] = X E[Y|hₜ]"), " when ", T("X", "X"),
              " is a function of ", T("h_t", "hₜ"), "."),
        (Prose("every factor taken out is a function of the history conditioned on (", T(r"r_{t'}", "rₜ′"),
               " needs ", T(r"t' \leq t-1", "t′ ≤ t − 1"), ")"),)),
    "condition_on_state": (
        Prose("The Markov property: given ", T("h_t", "hₜ"), ", ", T(r"a_t \sim \pi_\theta(\cdot \mid s_t)",
                                                                     "aₜ ∼ πθ(·|sₜ)"), "."),
        (Prose(T(r"a_t \sim \pi_\theta(\cdot \mid s_t)", "aₜ ∼ πθ(·|sₜ)"), " given the history"),
         Prose("the body depends on ", T("(s_t, a_t)", "(sₜ, aₜ)"), " only"))),
    "q_value_definition": (
        Prose(T(r"\mathbb{E}[\sum_{t' \geq t} \gamma^{t'} r_{t'} \mid h_t, a_t] = \gamma^t Q_t(s_t, a_t)",
                "E[Σₜ′≥ₜ γᵗ′ rₜ′|hₜ, aₜ] = γᵗ Qₜ(sₜ, aₜ)"),
              ": the future depends on the past through ", T("(s_t, a_t)", "(sₜ, aₜ)"), " only."),
        (Prose("the Markov property of the transitions and the policy"),
         Prose("the sum runs over ", T(r"t' = t, \ldots, H-1", "t′ = t, …, H − 1")))),
    "advantage_definition": (
        Prose("The advantage ", T(r"A_t(s_t, a_t) = Q_t(s_t, a_t) - V_t(s_t)", "Aₜ(sₜ, aₜ) = Qₜ(sₜ, aₜ) − Vₜ(sₜ)"),
              "."),
        (Prose(T(r"V_t(s) = \mathbb{E}_{a \sim \pi_\theta(\cdot \mid s)}[Q_t(s, a)]",
                 "Vₜ(s) = E_a∼πθ(·|s)[Qₜ(s, a)]")),)),
    "action_expectation_as_sum": (
        Prose("An expectation over finitely many actions is a sum: ",
              T(r"\mathbb{E}_{a_t \sim \pi_\theta(\cdot \mid s_t)}[g] = \sum_{a_t} \pi_\theta(a_t \mid s_t)\, g",
                "E_aₜ∼πθ(·|sₜ)[g] = Σₐₜ πθ(aₜ|sₜ) g"), "."),
        (Prose("the action set is finite"),)),
    "score_times_policy": (
        Prose(T(r"\pi_\theta \nabla_\theta \log \pi_\theta = \nabla_\theta \pi_\theta", "πθ ∇θ log πθ = ∇θ πθ"),
              " (the log-derivative identity, reversed)."),
        (Prose(T(r"\pi_\theta(a \mid s) > 0", "πθ(a|s) > 0")),
         Prose("the policy and the score are at the same time step"))),
    "grad_out_of_action_sum": (
        Prose(T(r"\sum_{a_t} \nabla_\theta g = \nabla_\theta \sum_{a_t} g", "Σₐₜ ∇θ g = ∇θ Σₐₜ g"),
              " (a finite sum)."),
        (Prose("the action set is finite"),)),
    "policy_normalised": (
        Prose(T(r"\sum_{a_t} \pi_\theta(a_t \mid s_t) = 1", "Σₐₜ πθ(aₜ|sₜ) = 1"),
              ": the policy is a probability distribution."),
        (Prose(_sum_pi, " for every ", T("s", "s")), Prose("the policy is summed over its own action"))),
    "expectation_of_sum": (
        Prose("Linearity over a finite sum: ", T(r"\mathbb{E}[\sum_t Y_t] = \sum_t \mathbb{E}[Y_t]",
                                                 "E[Σₜ Yₜ] = Σₜ E[Yₜ]"), "."),
        (_finite_t,)),
    "constant_out_of_expectation": (
        Prose(T(r"\mathbb{E}[c\, Y] = c\, \mathbb{E}[Y]", "E[c Y] = c E[Y]"), " for a constant ", T("c", "c"),
              " (here ", T(r"\gamma^t", "γᵗ"), ")."),
        (Prose(T("c", "c"), " does not depend on the trajectory"),)),
    "marginalise_state_action": (
        Prose("The rest of ", tau, " sums out: ",
              T(r"\mathbb{E}_\tau[g(s_t, a_t)] = \sum_s \Pr(s_t = s) \sum_a \pi_\theta(a \mid s)\, g(s, a)",
                "E_τ[g(sₜ, aₜ)] = Σₛ Pr(sₜ = s) Σₐ πθ(a|s) g(s, a)"), "."),
        (Prose(_sum_pi, " and ", _sum_P, " (the steps after ", t, " sum out)"),
         Prose("the body depends on ", T("(s_t, a_t)", "(sₜ, aₜ)"), " only"))),
    "eglp": (
        Prose("The EGLP lemma (derivation EGLP): ",
              T(r"\mathbb{E}_{a_t \sim \pi_\theta(\cdot \mid s_t)}[\nabla_\theta \log \pi_\theta(a_t \mid s_t)] = 0",
                "E_aₜ∼πθ(·|sₜ)[∇θ log πθ(aₜ|sₜ)] = 0"), "."),
        (Prose(_sum_pi, " for every ", T("s", "s")),
         Prose("the mean is over the score's own action"))),
}


from derive.theory_prose import THEORY_PROSE  # noqa: E402  (the stationary theorem, PDL and surrogate rules)

RULE_PROSE.update(THEORY_PROSE)


def rule_prose(rule) -> tuple[Prose, tuple[Prose, ...]]:
    """(justification, side conditions) of ``rule`` as Prose; a rule not in the table keeps its own words.

    A composite or substitution rule (e.g. "substitute (13)") is covered by its name's prefix.
    """
    if isinstance(getattr(rule, "justification", None), Prose):
        return rule.justification, tuple(Prose(c) for c in rule.side_conditions)
    if rule.name in RULE_PROSE:
        return RULE_PROSE[rule.name]
    if rule.name.startswith("substitute_("):
        label = rule.name[len("substitute_"):]
        return (Prose(f"Substitute the identity {label}."),
                (Prose(f"the identity {label} holds for every trajectory"),))
    return Prose(rule.justification), tuple(Prose(str(c)) for c in rule.side_conditions)


def _rules_by_name():
    from derive.rules import RULES
    return RULES


class _Lazy(dict):
    def __missing__(self, key):
        self.update(_rules_by_name())
        return dict.__getitem__(self, key)


RULES_BY_NAME = _Lazy()
