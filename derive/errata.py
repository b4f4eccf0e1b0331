"""Errata of the source derivation (A. Schindorfer, *Policy Gradient Derivation*, 21 January 2026) that SymPy can
expose; each is a check: a predicate on evidence computed, never asserted.

Every ``Erratum`` is classed (``kind``: a slip, a notation issue or a warning; only slips are called slips),
quotes the source verbatim (``quotes``, checked against ``source_document()``), and holds the source's words and
equations, the correction, a ``check`` that computes a value,
a ``predicate`` on that value (what must be true for the source to be wrong, e.g. Σ_τ p(τ) ≠ 1), and
``evidence``: a sentence whose numbers, comparison words and the example's parameters are generated from the
value.  A predicate that fails (an example whose parameters no longer show the slip) makes ``holds`` false,
and the report fails.  The errata needing exact estimator variances live in ``verify.app.errata``.

Mathematics is never a string here: the source's text, the correction and the evidence are ``Prose`` (text with
SymPy expressions in it), and the displays are expressions, printed per medium by ``derive.printing``.

>>> [e.id for e in symbolic_errata()][:2]
['rho0-omitted', 'product-index-range']
>>> all(e.holds for e in symbolic_errata())
True
>>> rho0_omitted((1, 2, 2)).holds   # one state: Σ_τ of (9) as written is 1, the slip does not show
False
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

from sympy import (
    Basic, Eq, Function, IndexedBase, Mul, Ne, Sum, Symbol, diff, expand, factor, oo, solve,
)

from derive.continuous import uniform_counterexample
from derive.grounding import ground_value
from derive.notation import (
    Density, Expectation, Grad, InitialDist, Integrate, Policy, Return, Reward, TestFn, Transition, gamma, t, tau,
    theta, x,
    time_product, time_sum, tp, H,
)
from derive.display import markdown_math
from derive.printing import Prose, Tex, seed_notation, to_latex
from derive.seed import reward_to_go, score

__all__ = ["Erratum", "KINDS", "errata_counts", "kind_label", "SOURCE_CITATION", "source_document", "symbolic_errata", "rho0_omitted", "product_index_range", "objective_distribution",
           "transition_named_reward", "reward_to_go_drops_discount", "exchange_regularity", "comparison"]


#: the kinds of erratum, and the word each is called by in documents
KINDS = {"slip": "slip", "notation": "notation", "warning": "warning"}

#: the derivation the errata are about
SOURCE_CITATION = "A. Schindorfer, Policy Gradient Derivation, 21 January 2026"


def source_document() -> str:
    """The source derivation's text (package data ``derive/source/policy-gradient-derivation.txt``)."""
    from importlib import resources
    return (resources.files("derive") / "source" / "policy-gradient-derivation.txt").read_text(encoding="utf-8")


def errata_counts(errata) -> str:
    """'8 errata (3 slips, 1 notation issue, 4 warnings)': the headings of every medium, counted by kind."""
    errata = list(errata)
    names = {"slip": ("slip", "slips"), "notation": ("notation issue", "notation issues"),
             "warning": ("warning", "warnings")}
    parts = [f"{n} {names[k][n != 1]}" for k in KINDS for n in [sum(getattr(e, "kind", "slip") == k
                                                                     for e in errata)] if n]
    return f"{len(errata)} errat{'um' if len(errata) == 1 else 'a'}" + (f" ({', '.join(parts)})" if parts else "")


def kind_label(e) -> str:
    """'Slip', 'Notation' or 'Warning': what an erratum is called (only slips are called slips)."""
    return getattr(e, "kind", "slip").capitalize()


@dataclass(frozen=True)
class Erratum:
    """One erratum of the source, checked.

    Attributes:
      id: short stable identifier.
      title: one line.
      source_text: what the source says (its words, with its maths as expressions).
      correction: what it should say.
      evidence: a sentence generated from ``value`` (numbers, comparison words, the example's parameters).
      value: what ``check()`` returned when the erratum was built.
      check: recomputes the value.
      predicate: value -> bool: true when the evidence shows the slip.
      claim: what the predicate tests, in words and maths.
      source_display: the source's equations as written (expressions, for a document's displays).
      correction_display: the corrected equations.
      evidence_display: the computed values as equations.
      parameters: the example's parameters (the arguments its builder was called with).
      kind: "slip" (the source is wrong as written), "notation" (a misleading name or symbol; the maths is
        right once read as meant) or "warning" (right as far as it goes, but a reader applying it elsewhere
        goes wrong: a missing hypothesis, a claim that is not a theorem).
      quotes: the source's words this erratum is about, verbatim from ``source_document()`` (a test checks it).
    """

    id: str
    title: str
    source_text: str
    correction: str
    evidence: str
    value: Any = field(compare=False)
    check: Callable[[], Any] = field(compare=False, repr=False)
    predicate: Callable[[Any], bool] = field(compare=False, repr=False, default=None)
    claim: str = ""
    source_display: tuple = ()
    correction_display: tuple = ()
    evidence_display: tuple = ()
    parameters: dict = field(default_factory=dict, compare=False)
    kind: str = "slip"
    quotes: tuple = ()

    def __post_init__(self):
        for name in ("id", "title", "source_text", "correction", "evidence"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"Erratum.{name} must be a non-empty string")
        if self.kind not in KINDS:
            raise ValueError(f"Erratum.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not isinstance(self.quotes, tuple) or not all(isinstance(q, str) and q for q in self.quotes):
            raise ValueError("Erratum.quotes must be a tuple of non-empty strings (verbatim from the source)")
        if not callable(self.check):
            raise TypeError("Erratum.check must be callable")
        if self.predicate is not None and not callable(self.predicate):
            raise TypeError("Erratum.predicate must be callable")

    @property
    def seed_text(self) -> str:
        """Deprecated name of ``source_text`` ("seed" now means a random seed only)."""
        return self.source_text

    @property
    def holds(self) -> bool:
        """Whether the computed evidence shows the slip (the predicate on ``value``); no predicate: False."""
        return bool(self.predicate(self.value)) if self.predicate is not None else False

    @property
    def passed(self) -> bool:
        """An erratum is a check of the report: it passes when its evidence holds."""
        return self.holds

    @property
    def verdict(self) -> str:
        return "shown" if self.holds else f"NOT shown: the evidence no longer satisfies {self.claim}"

    def to_json(self) -> dict:
        return {"id": self.id, "kind": self.kind, "title": str(self.title), "source_text": str(self.source_text),
                "quotes": list(self.quotes),
                "correction": str(self.correction), "evidence": str(self.evidence), "claim": str(self.claim),
                "holds": self.holds, "passed": self.passed,
                "parameters": {k: _jsonable(v) for k, v in self.parameters.items()}}

    def _repr_markdown_(self) -> str:
        return erratum_markdown(self)

    def _repr_latex_(self) -> str:
        from derive.printing import to_latex
        shown = self.evidence_display or self.correction_display
        return "$$" + r" \\ ".join(to_latex(e) for e in shown) + "$$" if shown else None


def _jsonable(v):
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return str(v)


def comparison(a, b) -> str:
    """The relation between two numbers as a word-sized symbol: '<', '=', '>'."""
    return "<" if a < b else (">" if a > b else "=")


# --- the computations ------------------------------------------------------------------------------------------------

def seed_trajectory_mass(sizes=(2, 2, 2)) -> Basic:
    """sum_tau prod_t p(s_{t+1}|s_t,a_t) pi(a_t|s_t): eq. (9) as written, summed (= S)."""
    return ground_value(Integrate(time_product(Transition(t) * Policy(t)), tau), sizes)


def corrected_trajectory_mass(sizes=(2, 2, 2)) -> Basic:
    """sum_tau p(tau|theta) with rho_0(s_0) included (= sum_s rho_0(s))."""
    return ground_value(Integrate(Density(tau, theta), tau), sizes)


def missing_states(T: int = 2) -> set:
    """States the source's factors for t = 0..T reference but tau = (s_0, a_0, ..., s_T, a_T) lacks."""
    s, a = IndexedBase("s"), IndexedBase("a")
    P, pi, r = Function("p"), Function("pi"), Function("r")
    in_tau = {s[k] for k in range(T + 1)} | {a[k] for k in range(T + 1)}
    factors = [P(s[k + 1], s[k], a[k]) * pi(a[k], s[k]) for k in range(T + 1)]
    rewards = [r(s[k], a[k], s[k + 1]) for k in range(T + 1)]
    used = set().union(*[e.atoms(type(s[0])) for e in factors + rewards])
    return used - in_tau


def objective_over_policy(sizes=(1, 2, 1)) -> tuple[Basic, Basic]:
    """(E_{a~pi_theta}[R] with normalised pi, grad E_{tau~p}[R] on a symbolic MDP of ``sizes``)."""
    R = Symbol("R_tau")
    pi0 = Function("pi_0")(theta)
    over_pi = expand(pi0 * R + (1 - pi0) * R)
    true_grad = ground_value(Grad(Expectation(Return(tau), Density(tau, theta))), sizes)
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


# --- the errata ------------------------------------------------------------------------------------------------------

_p_tau = Density(tau, theta)
_J = Expectation(Return(tau), _p_tau)
_seed_product = Transition(t) * Policy(t)
_pi = Tex(r"\pi_\theta", "πθ")
_p_dot = Tex(r"p(\cdot \mid \theta)", "p(·|θ)")
_sizes_text = "(S, A, H) = "


def _sizes(sizes) -> str:
    return f"{_sizes_text}{tuple(sizes)}"


def rho0_omitted(sizes=(2, 2, 2)) -> Erratum:
    """Eq. (9) omits ρ₀(s₀): summed over every trajectory it gives S, not 1 (shown when S ≠ 1)."""
    check = functools.partial(lambda sz: (seed_trajectory_mass(sz), corrected_trajectory_mass(sz)), sizes)
    v = check()
    seed_sum = Integrate(time_product(_seed_product), tau)
    word = "≠" if expand(v[0] - 1) != 0 else "="
    return Erratum(
        "rho0-omitted", "Eq. (9) omits the initial-state distribution",
        Prose("(9) writes ", Eq(_p_tau, Product_seed(), evaluate=False),
              ": there is no factor for the first state."),
        Prose("Include ", InitialDist(), " and run the product over t = 0, …, H − 1: ",
              Eq(_p_tau, _corrected_probability(), evaluate=False),
              ". Like the transitions, ", InitialDist(), " does not depend on θ and drops out of ",
              Grad(_log(_p_tau)), "."),
        Prose(f"On a symbolic MDP with {_sizes(sizes)}, normalised π and p, summing (9) as written over every "
              "trajectory ", tau, " (", Tex(r"\int d\tau", "∫ dτ"), " is the sum over ", tau, ") gives ",
              seed_notation(v[0]), f" {word} 1",
              " (the number of states)" if word == "≠" else "",
              "; with ", InitialDist(), " included the sum is ", seed_notation(v[1]), ", which is 1 because ",
              Tex(r"\sum_s \rho_0(s) = 1", "Σₛ ρ₀(s) = 1"), "."),
        v, check, lambda val: expand(val[0] - 1) != 0,
        Prose("Σ over τ of (9) as written ≠ 1"),
        source_display=(Eq(_p_tau, Product_seed(), evaluate=False),),
        correction_display=(Eq(_p_tau, _corrected_probability(), evaluate=False),),
        evidence_display=(Eq(seed_sum, seed_notation(v[0]), evaluate=False),
                          Eq(Integrate(_p_tau, tau), seed_notation(v[1]), evaluate=False)),
        parameters={"sizes": tuple(sizes)}, kind="slip",
        quotes=(r"p(\tau|\theta) = \prod_{t \geq 0} p(s_{t+1} | s_t, a_t) \pi_{\theta}(a_t | s_t)",))


def Product_seed():
    """∏_{t ≥ 0} p(s_{t+1}|s_t, a_t) π_θ(a_t|s_t): eq. (9) as the source writes it."""
    from sympy import Product
    return Product(_seed_product, (t, 0, oo))


def _corrected_probability():
    return InitialDist() * time_product(_seed_product)


def _tidy(v) -> Basic:
    """-(γ - 1) X as (1 - γ) X, in the source's notation."""
    v, m = seed_notation(v), seed_notation(-v)
    if v.could_extract_minus_sign() and m.is_Mul:
        adds = sorted((a for a in m.args if a.is_Add), key=lambda a: gamma not in a.free_symbols)
        if adds:
            rest = list(m.args)
            rest.remove(adds[0])
            return Mul(-adds[0], *rest, evaluate=False)
    return v


def _log(e):
    from sympy import log
    return log(e)


def product_index_range(T: int = 2) -> Erratum:
    """τ = (s₀, a₀, …, s_T, a_T) lacks s_{T+1}, which the last factor of (9) and the last reward need."""
    check = functools.partial(missing_states, T)
    v = check()
    states = sorted(v, key=str)
    listed = []
    for i, s in enumerate(states):
        listed += ([", "] if i else []) + [s]
    return Erratum(
        "product-index-range", "The index t ≥ 0 is unbounded and τ ends with an action",
        Prose("It defines ",
              Tex(r"\tau = (s_0, a_0, s_1, a_1, \ldots, s_T, a_T)", "τ = (s₀, a₀, s₁, a₁, …, s_T, a_T)"),
              ", multiplies over ",
              Tex(r"t \geq 0", "t ≥ 0"), " in (9) and sums over ", Tex(r"t \geq 0", "t ≥ 0"),
              " in (11)–(14) but over t = 0, …, T in R(τ) and (15)."),
        Prose(Tex(r"\tau = (s_0, a_0, \ldots, s_{H-1}, a_{H-1}, s_H)", "τ = (s₀, a₀, …, s_H−1, a_H−1, s_H)"),
              ": every product and sum runs over t = 0, …, H − 1, and ",
              Tex(r"r_t = r(s_t, a_t, s_{t+1})", "rₜ = r(sₜ, aₜ, sₜ₊₁)"), "."),
        Prose(f"For T = {T}, the factors t = 0, …, T of (9) and the rewards ",
              Tex(r"r_0, \ldots, r_T", "r₀, …, r_T"), " reference ", *listed,
              ", which τ does not contain." if states else "; τ contains every state they reference."),
        v, check, lambda val: len(val) > 0, Prose("the set of referenced states missing from τ is not empty"),
        evidence_display=(), parameters={"T": T}, kind="slip",
        quotes=(r"(s_0, a_0, s_1, a_1, \dots, s_T, a_T)", r"\prod_{t \geq 0}", r"\sum_{t \geq 0}",
                r"R(\tau) = \sum_{t=0}^T \gamma^t r_t", r"\sum_{t=0}^T R(\tau)"))


def objective_distribution(sizes=(1, 2, 1)) -> Erratum:
    """J as E_{x∼π_θ}[R(τ)] is θ-free; the true objective E_{τ∼p(·|θ)}[R(τ)] has a nonzero gradient."""
    check = functools.partial(objective_over_policy, sizes)
    v = check()
    over_pi, grad = seed_notation(v[0]), seed_notation(v[1])
    theta_free = diff(v[0], theta) == 0
    nonzero = expand(v[1]) != 0
    return Erratum(
        "objective-distribution",
        Prose("J's expectation is over ", Tex(r"x \sim \pi_\theta", "x ∼ πθ"), " instead of ",
              Tex(r"\tau \sim p(\cdot \mid \theta)", "τ ∼ p(·|θ)")),
        Prose("It defines ", Tex(r"J(\pi_\theta) \stackrel{\mathrm{def}}{=} \mathbb{E}_{x \sim \pi_\theta}"
                                 r"[R(\tau)]", "J(πθ) ≝ E_x∼πθ[R(τ)]"),
              ": the mean is over a variable x that ", Return(tau), " does not contain."),
        Prose(Tex(r"J(\pi_\theta) = \mathbb{E}_{\tau \sim p(\cdot \mid \theta)}[R(\tau)]",
                  "J(πθ) = E_τ∼p(·|θ)[R(τ)]"),
              ": ", _pi, " is a distribution over actions, ", _p_dot,
              " the distribution over trajectories it induces. (The ",
              Tex(r"\mathbb{E}_{\tau \sim \pi_\theta}", "E_τ∼πθ"),
              " of (8) and (14)–(15) is the usual shorthand for the same mean, as in Spinning Up: not an error.)"),
        Prose("Averaging ", Return(tau), " over an action drawn from ", _pi, " gives ", over_pi,
              " (free of θ, gradient 0)" if theta_free else " (it depends on θ)",
              f", while on a symbolic MDP with {_sizes(sizes)} ", Eq(Grad(_J), grad, evaluate=False),
              ", which is not 0." if nonzero else ", which is 0 too."),
        v, check, lambda val: diff(val[0], theta) == 0 and expand(val[1]) != 0,
        Prose("the expectation over ", _pi, " is free of θ while ", Ne(Grad(_J), 0, evaluate=False)),
        evidence_display=(Eq(Grad(_J), grad, evaluate=False),), parameters={"sizes": tuple(sizes)},
        kind="slip", quotes=(r"J(\pi_\theta) &\stackrel{\text{def}}{=} \mathbb{E}_{x \sim \pi_\theta}[R(\tau)]",))


def transition_named_reward(sizes=(2, 2, 2)) -> Erratum:
    """p(τ|θ) involves the transitions, never the rewards; R(τ) the rewards, never the transitions."""
    check = functools.partial(transition_reward_dependence, sizes)
    v = check()
    return Erratum(
        "transition-named-reward",
        Prose("The transition probability is called ", Tex(r"\mathcal{R}(s_t, a_t, s_{t+1})", "ℛ(sₜ, aₜ, sₜ₊₁)")),
        Prose("The reward “is changed by an action which, in turn, changes the unknown transition function ",
              Tex(r"\mathcal{R}(s_t, a_t, s_{t+1})", "ℛ(sₜ, aₜ, sₜ₊₁)"), " which cannot be differentiated”."),
        Prose("The unknown transition probability is ", Transition(t), "; the reward function ",
              Tex(r"r(s_t, a_t, s_{t+1})", "r(sₜ, aₜ, sₜ₊₁)"), " enters ", Return(tau),
              " only. Neither depends on θ."),
        Prose(f"On a symbolic MDP with {_sizes(sizes)}, ", _p_tau, f" involves {v['P in p(tau)']} transition and "
              f"{v['r in p(tau)']} reward parameters; ", Return(tau), f" involves {v['r in R(tau)']} reward and "
              f"{v['P in R(tau)']} transition parameters."),
        v, check,
        lambda val: val["P in p(tau)"] > 0 and val["r in p(tau)"] == 0 and val["r in R(tau)"] > 0
        and val["P in R(tau)"] == 0,
        Prose(_p_tau, " has transition parameters and no reward parameters, and ", Return(tau), " the reverse"),
        parameters={"sizes": tuple(sizes)}, kind="notation",
        quotes=(r"changes the unknown transition function  $\mathcal{R}(s_t, a_t, s_{t+1})$  which cannot be "
                "differentiated",))


def reward_to_go_drops_discount(sizes=(1, 2, 2)) -> Erratum:
    """The undiscounted reward-to-go differs from ∇J_γ by a bias that vanishes only where γ = 1."""
    check = functools.partial(undiscounted_rtg_bias, sizes)
    v = check()
    zero = expand(v) == 0
    roots = [] if zero else [r for r in solve(v, gamma) if r.is_positive]
    where = ("it is 0 at this size" if zero else
             ("it vanishes only at " + " and ".join(f"γ = {r}" for r in roots) if roots else
              "it vanishes at no γ > 0"))
    undiscounted = Expectation(time_sum(score() * time_sum(Reward(tp), tp, t, H - 1)), _p_tau)
    return Erratum(
        "reward-to-go-drops-discount", "The reward-to-go remark is the undiscounted case",
        Prose("With ", Eq(Return(tau), Sum(gamma**t * Reward(t), (t, 0, Symbol("T"))), evaluate=False),
              " (“or … for the discounted case”), the remark “would use the ‘reward-to-go’ ",
              Sum(Reward(tp), (tp, t, Symbol("T"))), " instead” gives the undiscounted weight only."),
        Prose("For the discounted objective the reward-to-go is ", time_sum(gamma**tp * Reward(tp), tp, t, H - 1),
              " (derivation RTG); without ", gamma**tp, " it is the gradient of the undiscounted return."),
        Prose(f"On a symbolic MDP with {_sizes(sizes)}, ", Eq(undiscounted - Grad(_J), _tidy(v), evaluate=False),
              f"; {where}."),
        v, check, lambda val: expand(val) != 0,
        Prose("the undiscounted reward-to-go's bias (the difference above) is not 0"),
        evidence_display=(Eq(undiscounted - Grad(_J), _tidy(v), evaluate=False),),
        parameters={"sizes": tuple(sizes)}, kind="warning",
        quotes=(r"\sum_{t=0}^T \gamma^t r_t$  for the discounted case", r"“reward-to-go”  $\sum_{t'=t}^T r_{t'}$"))


def exchange_regularity(power: int = 1) -> Erratum:
    """x ∼ Uniform(0, θ), f(x) = x^power: exchanging ∇ and ∫ in step (2) changes the value."""
    check = functools.partial(lambda k: uniform_counterexample(k).values, power)
    v = check()
    u = uniform_counterexample(power)
    lhs, rhs = Grad(Expectation(TestFn(x), Density(x, theta))), Expectation(
        TestFn(x) * Grad(_log(Density(x, theta))), Density(x, theta))
    steps = ", ".join(f"({n})" for n in u.failing_steps) or "none"
    return Erratum(
        "exchange-regularity", "Step (2)'s “mild regularity conditions” exclude θ-dependent support",
        Prose("Step (2): “derivative and integral can be exchanged under mild regularity conditions”."),
        Prose("Exchanging ", Tex(r"\nabla_\theta", "∇θ"), " and ", Tex(r"\int", "∫"), " needs the support of ",
              _p_dot, " not to depend on θ and ",
              Tex(r"|\nabla_\theta (f p)|", "|∇θ(f p)|"),
              " to be dominated by an integrable function of x (dominated convergence)."),
        Prose("For ", Tex(r"x \sim \mathrm{Uniform}(0, \theta)", "x ∼ Uniform(0, θ)"), " and ",
              Eq(TestFn(x), x**power, evaluate=False), ": ",
              Eq(lhs, v[0], evaluate=False), f" {'≠' if v[0] != v[1] else '='} ", Eq(rhs, v[1], evaluate=False),
              f"; the steps whose two sides differ: {steps}."),
        v, check, lambda val: val[0] != val[1], Prose(Ne(lhs, rhs, evaluate=False)),
        evidence_display=(Eq(lhs, v[0], evaluate=False), Eq(rhs, v[1], evaluate=False)),
        parameters={"power": power}, kind="warning",
        quotes=("derivative and integral can be exchanged under mild regularity conditions",))


@functools.lru_cache(maxsize=1)
def symbolic_errata() -> tuple[Erratum, ...]:
    """Build the errata at their default examples, computing each one's evidence (about a second)."""
    return (rho0_omitted(), product_index_range(), objective_distribution(), transition_named_reward(),
            reward_to_go_drops_discount(), exchange_regularity())


# --- Markdown (notebooks and the Markdown document) ----------------------------------------------------------------

def erratum_markdown(e) -> str:
    def prose(v):
        return markdown_math(v) if isinstance(v, Prose) else str(v)

    holds = getattr(e, "holds", None)
    lines = [f"### {prose(e.title)}", "", f"`{e.id}` — **{kind_label(e)}.** *The source:* {prose(e.source_text)}",
             ""]
    for item in getattr(e, "source_display", ()):
        lines += ["$$", _display_markdown(item), "$$", ""]
    lines += [f"*Correction:* {prose(e.correction)}", ""]
    for item in getattr(e, "correction_display", ()):
        lines += ["$$", _display_markdown(item), "$$", ""]
    lines += [f"*Evidence (computed):* {prose(e.evidence)}", ""]
    for item in getattr(e, "evidence_display", ()):
        lines += ["$$", _display_markdown(item), "$$", ""]
    if holds is not None:
        lines += [("✓ the evidence satisfies: " if holds else "✗ **FAILED**: the evidence does not satisfy: ")
                  + prose(e.claim), ""]
    return "\n".join(lines)


def _display_markdown(item) -> str:
    if isinstance(item, Tex):
        return item.latex
    return to_latex(item)
