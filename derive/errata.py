"""The seed's slips that SymPy can expose, each with evidence computed, not asserted.

Every ``Erratum`` holds the seed's text, the correction, a ``check`` that
computes a value with SymPy, and ``evidence``: a sentence formatted from that
value.  The errata needing exact estimator variances (reward-to-go variance,
discount-restart bias) live in ``verify.errata``.

>>> [e.id for e in symbolic_errata()][:2]
['rho0-omitted', 'product-index-range']
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

from sympy import Basic, Function, IndexedBase, Symbol, expand, factor

from derive.continuous import uniform_counterexample
from derive.grounding import ground_value
from derive.notation import (
    Density, Expectation, Grad, Integrate, Policy, Return, Transition, t, tau, theta,
    time_product, time_sum,
)
from derive.seed import reward_to_go, score

__all__ = ["Erratum", "symbolic_errata"]


@dataclass(frozen=True)
class Erratum:
    """One slip of the seed.

    Attributes:
      id: short stable identifier.
      title: one line.
      seed_text: what the seed says (quoted).
      correction: what it should say.
      evidence: a sentence stating the computed value.
      value: the value ``check()`` returned when the erratum was built.
      check: recomputes the value.
    """

    id: str
    title: str
    seed_text: str
    correction: str
    evidence: str
    value: Any = field(compare=False)
    check: Callable[[], Any] = field(compare=False, repr=False)

    def __post_init__(self):
        for name in ("id", "title", "seed_text", "correction", "evidence"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"Erratum.{name} must be a non-empty string")
        if not callable(self.check):
            raise TypeError("Erratum.check must be callable")


def _make(id, title, seed_text, correction, check, describe) -> Erratum:
    value = check()
    return Erratum(id, title, seed_text, correction, describe(value), value, check)


def seed_trajectory_mass(sizes=(2, 2, 2)) -> Basic:
    """sum_tau prod_t p(s_{t+1}|s_t,a_t) pi(a_t|s_t): eq. (9) as written, summed (= S)."""
    return ground_value(Integrate(time_product(Transition(t) * Policy(t)), tau), sizes)


def corrected_trajectory_mass(sizes=(2, 2, 2)) -> Basic:
    """sum_tau p(tau|theta) with rho_0(s_0) included (= sum_s rho_0(s))."""
    return ground_value(Integrate(Density(tau, theta), tau), sizes)


def missing_states(T: int = 2) -> set:
    """States the seed's factors for t = 0..T reference but tau = (s_0, a_0, ..., s_T, a_T) lacks."""
    s, a = IndexedBase("s"), IndexedBase("a")
    P, pi, r = Function("p"), Function("pi"), Function("r")
    in_tau = {s[k] for k in range(T + 1)} | {a[k] for k in range(T + 1)}
    factors = [P(s[k + 1], s[k], a[k]) * pi(a[k], s[k]) for k in range(T + 1)]
    rewards = [r(s[k], a[k], s[k + 1]) for k in range(T + 1)]
    used = set().union(*[e.atoms(type(s[0])) for e in factors + rewards])
    return used - in_tau


def objective_over_policy() -> tuple[Basic, Basic]:
    """(E_{a~pi_theta}[R] with normalised pi, grad E_{tau~p}[R] on a symbolic (1, 2, 1) MDP)."""
    R = Symbol("R_tau")
    pi0 = Function("pi_0")(theta)
    over_pi = expand(pi0 * R + (1 - pi0) * R)
    true_grad = ground_value(Grad(Expectation(Return(tau), Density(tau, theta))), (1, 2, 1))
    return over_pi, true_grad


def transition_reward_dependence(sizes=(2, 2, 2)) -> dict[str, int]:
    """How many transition and reward parameters sum_tau p(tau|theta) and sum_tau R(tau) involve."""
    p_syms = {str(v) for v in ground_value(Integrate(Density(tau, theta), tau), sizes,
                                           normalise=False).free_symbols}
    R_syms = {str(v) for v in ground_value(Integrate(Return(tau), tau), sizes,
                                           normalise=False).free_symbols}
    count = lambda names, prefix: sum(n.startswith(prefix) for n in names)  # noqa: E731
    return {"P in p(tau)": count(p_syms, "P_"), "r in p(tau)": count(p_syms, "r_"),
            "r in R(tau)": count(R_syms, "r_"), "P in R(tau)": count(R_syms, "P_")}


def undiscounted_rtg_bias(sizes=(1, 2, 2)) -> Basic:
    """E[sum_t grad log pi_t sum_{t'>=t} r_{t'}] - grad E[sum_t gamma^t r_t], factored."""
    rtg = Expectation(time_sum(score() * reward_to_go(t, 1)), Density(tau, theta))
    J = Grad(Expectation(Return(tau), Density(tau, theta)))
    return factor(ground_value(rtg - J, sizes))


@functools.lru_cache(maxsize=1)
def symbolic_errata() -> tuple[Erratum, ...]:
    """Build the errata, computing each one's evidence (about a second)."""
    u = uniform_counterexample()
    return (
        _make("rho0-omitted", "Eq. (9) omits the initial-state distribution",
              "p(τ|θ) = ∏_{t≥0} p(s_{t+1}|s_t, a_t) π_θ(a_t|s_t)   (9)",
              "p(τ|θ) = ρ0(s_0) ∏_{t=0}^{H-1} π_θ(a_t|s_t) p(s_{t+1}|s_t, a_t); "
              "ρ0 then drops out of ∇ log p(τ|θ) like the transitions.",
              lambda: (seed_trajectory_mass(), corrected_trajectory_mass()),
              lambda v: f"On a symbolic MDP with (S, A, H) = (2, 2, 2), normalised π and p, "
                        f"Σ_τ of (9) as written = {v[0]} (the number of states), not 1; "
                        f"with ρ0(s_0) it is {v[1]} = Σ_s ρ0(s)."),
        _make("product-index-range", "The index t ≥ 0 is unbounded and τ ends with an action",
              "τ = (s_0, a_0, s_1, a_1, …, s_T, a_T); ∏_{t≥0} p(s_{t+1}|s_t, a_t) π_θ(a_t|s_t); "
              "Σ_{t≥0} in (11)-(14) but Σ_{t=0}^{T} in (15)",
              "τ = (s_0, a_0, …, s_{H-1}, a_{H-1}, s_H): every product and sum runs over "
              "t = 0, …, H-1, and r_t = r(s_t, a_t, s_{t+1}).",
              missing_states,
              lambda v: f"For T = 2 the factors t = 0..T of (9) and the rewards r_0..r_T "
                        f"reference {sorted(map(str, v))}, which τ does not contain."),
        _make("objective-distribution", "J's expectation is over x ∼ π_θ instead of τ ∼ p(·|θ)",
              "J(π_θ) ≝ E_{x∼π_θ}[R(τ)]; (8) and (14)-(15) write E_{τ∼π_θ}",
              "J(π_θ) = E_{τ∼p(·|θ)}[R(τ)]: π_θ is a distribution over actions, "
              "p(·|θ) the distribution over trajectories it induces.",
              objective_over_policy,
              lambda v: f"Averaging R(τ) over an action drawn from π_θ gives {v[0]} "
                        f"(still random, θ-free, gradient 0), while ∇_θ E_{{τ∼p(·|θ)}}[R(τ)] on a "
                        f"symbolic (1, 2, 1) MDP is {v[1]}."),
        _make("transition-named-reward", "The transition probability is called ℛ(s_t, a_t, s_{t+1})",
              "the reward … changes the unknown transition function ℛ(s_t, a_t, s_{t+1}) "
              "which cannot be differentiated",
              "The unknown transition probability is p(s_{t+1}|s_t, a_t); the reward function "
              "r(s_t, a_t, s_{t+1}) enters R(τ) only. Neither depends on θ.",
              transition_reward_dependence,
              lambda v: "On a symbolic (2, 2, 2) MDP, p(τ|θ) involves "
                        f"{v['P in p(tau)']} transition and {v['r in p(tau)']} reward parameters; "
                        f"R(τ) involves {v['r in R(tau)']} reward and {v['P in R(tau)']} "
                        "transition parameters."),
        _make("reward-to-go-drops-discount", "The reward-to-go remark drops γ",
              "R(τ) = Σ_{t=0}^T γ^t r_t … would use the “reward-to-go” Σ_{t'=t}^T r_{t'} instead",
              "For the discounted objective the reward-to-go is Σ_{t'=t}^{H-1} γ^{t'} r_{t'} "
              "(derivation RTG); without γ^{t'} it is the gradient of the undiscounted return.",
              undiscounted_rtg_bias,
              lambda v: "On a symbolic (1, 2, 2) MDP, E[Σ_t ∇log π(a_t|s_t) Σ_{t'≥t} r_{t'}] − "
                        f"∇_θ J_γ = {v}, nonzero unless γ = 1."),
        _make("exchange-regularity", "Step (2)'s “mild regularity conditions” exclude θ-dependent support",
              "derivative and integral can be exchanged under mild regularity conditions   (2)",
              "Exchanging ∇_θ and ∫ needs the support of p(·|θ) not to depend on θ and "
              "|∇_θ(f p)| to be dominated by an integrable function (dominated convergence).",
              lambda: u.values,
              lambda v: f"For x ∼ Uniform(0, θ), f(x) = x: ∇_θ E[f] = {v[0]} but "
                        f"E[f ∇_θ log p] = {v[1]}; only step (2) changes the value."),
    )


