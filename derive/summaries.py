"""Each derivation's summary sentence, with its formulas taken from the derivation itself.

A summary that states a formula prints an expression computed from the derivation's lines (its first and
last line, the reward-to-go factor of its last line, the identity its last step's rule applied), never a
hand-written string: if the derivation changes, so does the sentence, and a summary can no longer claim
γ^t Q_t for a Q form that lost its γ^t.  Words that name notation (h_t, (s_t, a_t)) stay ``Tex``; citations
are ``Tex`` too.

>>> from derive.seed import REWARD_TO_GO
>>> "given hₜ" in str(summary(REWARD_TO_GO)) and "given sₜ" not in str(summary(REWARD_TO_GO))
True
"""

from __future__ import annotations

from sympy import Sum


from derive.notation import Reward, gamma, t, tp
from derive.printing import Prose, Tex, name_objective
from derive.steps import Derivation

__all__ = ["summary", "SUMMARIES"]

_SUTTON = Tex(r"\cite{sutton2000}", "[Sutton et al. 2000]")
_H_T = Tex(r"h_t = (s_0, a_0, \ldots, s_t)", "hₜ = (s₀, a₀, …, sₜ)")


def _first(d):
    from derive.chain import first_line
    return first_line(d)


def _last(d):
    from derive.chain import last_line
    return last_line(d)


def _grad_j():
    from derive.chain import DEFINITION
    return name_objective(DEFINITION)


def _equals(a, b):
    # two inline formulas, so a paragraph may break at the "="
    return Prose(name_objective(a), " = ", name_objective(b))


def _future_sum(e):
    """The sum over t' (the reward-to-go) inside a line, or None."""
    found = [s for s in e.atoms(Sum) if s.limits[0][0] == tp]
    return found[0] if len(found) == 1 else None


def _source(d):
    return Prose("Equations (1)–(15) of Schindorfer's derivation ", Tex(r"\cite{schindorfer2026}",
                                                                      "[Schindorfer 2026]"),
                 ", with its errata corrected. The score-function identity (1)–(7) ",
                 Tex(r"\cite{williams1992}", "[Williams 1992]"),
                 ", instantiated at the trajectory distribution (8), and the gradient of ",
                 Tex(r"\log p(\tau \mid \theta)", "log p(τ|θ)"),
                 " reduced to the policy's score (9)–(13), give the simple policy gradient (14)–(15).")


def _reward_to_go(d):
    G = _future_sum(_last(d))
    out = [Prose("Writing ", Tex(r"R(\tau)", "R(τ)"), " out and splitting at ", Tex("t", "t"),
                 ", the rewards ", Tex(r"r_{t'}", "rₜ′"), " with ", Tex("t' < t", "t′ < t"), " are known given ",
                 _H_T, " (tower property, taking out what is known), while given ", Tex("h_t", "hₜ"),
                 " the action ", Tex(r"a_t \sim \pi_\theta(\cdot \mid s_t)", "aₜ ∼ πθ(·|sₜ)"),
                 " and the EGLP lemma gives its score mean zero")]
    if G is None:
        return Prose(*out, ".")
    out.append(Prose(", so only the reward-to-go ", G, " remains."))
    discount = (G.function / Reward(tp)).simplify()
    if discount == gamma**tp:
        out.append(Prose(" The discount stays ", discount, ", not ", gamma**(tp - t), "."))
    else:
        out.append(Prose(" Its discount is ", discount, "."))
    return Prose(*out)


def _baseline(d):
    return Prose("Conditioning on ", Tex("h_t", "hₜ"), " (tower property), ", Tex("b(s_t)", "b(sₜ)"),
                 " is known and comes out, and the EGLP lemma removes it: ", _equals(_first(d), _last(d)),
                 ", so subtracting a baseline that depends on the state only keeps the estimator's mean ",
                 Tex(r"\cite{williams1992,schulman2016}", "[Williams 1992; Schulman et al. 2016]"), ".")


def _eglp(d):
    lines = [_first(d)] + [s.after for s in d.steps]
    chain = []
    for i, line in enumerate(lines):
        chain += ([" = "] if i else []) + [line]
    return Prose("For every state ", Tex("s_t", "sₜ"), ": ", *chain,
                 " (the expected grad-log-prob lemma of Spinning Up ",
                 Tex(r"\cite{spinningup2018}", "[Achiam 2018]"), "). Reward-to-go and the baseline reduce to it "
                 "through the tower property.")


def _pg_q(d):
    from derive.chain import _instances

    step = d.steps[-1]
    found = _instances(step) if step.rule.match is not None else []
    markov = Prose(" by the Markov property ", _equals(found[0][0], found[0][1])) if found else ""
    return Prose("Conditioning each term of the reward-to-go form on ", Tex("(h_t, a_t)", "(hₜ, aₜ)"),
                 ", the score is known and comes out, and", markov or " the Markov property gives",
                 ": ", _equals(_grad_j(), _last(d)), ", the policy-gradient theorem ", _SUTTON, ".")


def _pg_advantage(d):
    return Prose("With ", Tex("A_t = Q_t - V_t", "Aₜ = Qₜ − Vₜ"), ", the ", Tex("V_t(s_t)", "Vₜ(sₜ)"),
                 " term is a state-dependent baseline: conditioning on ", Tex("h_t", "hₜ"),
                 " and the EGLP lemma remove it, so ", _equals(_first(d), _last(d)), ", the Q form ",
                 Tex(r"\cite{sutton2000,schulman2016}", "[Sutton et al. 2000; Schulman et al. 2016]"), ".")


def _pg_state(d):
    first = d.steps[0].after
    term = first.function if isinstance(first, Sum) else None
    return Prose("Each term ", *([term] if term is not None else ["of the Q form"]), " depends on ",
                 Tex("(s_t, a_t)", "(sₜ, aₜ)"), " only, so the rest of the trajectory sums out: ",
                 _equals(_grad_j(), _last(d)), " ", _SUTTON, ".")


SUMMARIES = {"source": _source, "reward_to_go": _reward_to_go, "baseline": _baseline, "eglp": _eglp,
             "pg_q": _pg_q, "pg_advantage": _pg_advantage, "pg_state": _pg_state}


def summary(d: Derivation) -> Prose:
    """The derivation's summary for documents: built from its lines for the built-in derivations, else its own
    ``summary`` text (a theorem of Sutton et al. cited)."""
    builder = SUMMARIES.get(d.name)
    if builder is not None:
        try:
            return builder(d)
        except Exception:  # noqa: BLE001  (a derivation reshaped beyond the builder: its own words)
            pass
    s = d.summary if isinstance(d.summary, Prose) else Prose(d.summary or "")
    if d.name.startswith(("pg_theorem", "policy_gradient")):
        s = Prose(s, " ", _SUTTON)
    return s



