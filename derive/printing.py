r"""One printer per medium for the derivation's expressions: LaTeX, Unicode (terminal and JSON), MathML (HTML).

Every mathematical object pgverify shows -- a step, a rule's justification or side condition, an erratum, a
computed polynomial -- is a SymPy expression (or ``Prose``: text with expressions in it) and is printed by:

    to_latex(e)     the LaTeX document (``derive.latex``), amsmath only
    to_unicode(e)   the terminal and JSON: one line of Unicode maths (θ, ∇θ, Σ, sub/superscripts)
    to_mathml(e)    the HTML report: presentation MathML, rendered natively by browsers

All three print products in the source's factor order (weights, densities, transitions, the policy, then
gradients; sums last, so ``R(τ) Σ ∇log π`` reads as in eq. (14)) and sums with the positive, "earlier"
terms first, and print the symbols of a grounded MDP in the source's notation (``seed_notation``):
``dpi_01`` is ∂π(1|0), ``r_010`` is r(0, 1, 0), ``rho0_0`` is ρ₀(0), ``P_01_1`` is p(1|0, 1).

>>> from derive.notation import Grad, Expectation, Return, Density, tau, theta
>>> to_unicode(Grad(Expectation(Return(tau), Density(tau, theta))))
'∇θ E_τ∼p(·|θ)[R(τ)]'
>>> from sympy import Symbol
>>> to_unicode(seed_notation(Symbol("dpi_00") * Symbol("r_010") * Symbol("rho0_0")))
'r(0, 1, 0) ρ₀(0) ∂π(0|0)'
>>> to_latex(seed_notation(Symbol("rho0_1")))
'\\rho_{0}(1)'
"""

from __future__ import annotations

import html
import re
from xml.dom.minidom import Element

from sympy import (
    Add, Basic, Expr, Integer, Mul, Pow, Product, Sum, Symbol, UnevaluatedExpr, fraction, log, oo, sympify,
)
from sympy.printing.latex import LatexPrinter
from sympy.printing.mathml import MathMLPresentationPrinter
from sympy.printing.precedence import precedence
from sympy.printing.str import StrPrinter

from derive.notation import (
    Baseline, Density, Expectation, Grad, InitialDist, Integrate, Policy, Return, Reward, TestFn, Transition,
    tau, theta,
)

__all__ = ["Param", "Objective", "Tex", "Prose", "seed_notation", "name_objective", "seed_factor_order",
           "PGLatexPrinter", "PGUnicodePrinter", "PGMathMLPrinter", "to_latex", "to_unicode", "to_mathml",
           "mathml_block", "latex_escape", "latex_to_unicode", "seed_names_text"]


# --- display nodes --------------------------------------------------------------------------------------------------

class Param(Expr):
    """A parameter of a grounded tabular MDP, shown in the source's notation.

    kinds: "dpi" ∂π(a|s) (the θ-derivative of π_θ(a|s)), "pi" π(a|s), "rho0" ρ₀(s), "r" r(s, a, s'),
    "P" p(s'|s, a), "b" b(s), "f" f(τ_k).  ``indices`` are the integers in the symbol's name.
    """

    is_commutative = True

    def __new__(cls, kind: str, *indices):
        return Expr.__new__(cls, Symbol(kind), *[Integer(i) for i in indices])

    @property
    def kind(self) -> str:
        return self.args[0].name

    @property
    def indices(self) -> tuple[int, ...]:
        return tuple(int(i) for i in self.args[1:])


class Objective(Expr):
    """J(π_θ), the name the source gives E_{τ∼p(·|θ)}[R(τ)]."""

    is_commutative = True


_PARAM_NAMES = [
    (re.compile(r"dpi_(\d)(\d)$"), "dpi"), (re.compile(r"pi_(\d)(\d)$"), "pi"),
    (re.compile(r"rho0_(\d+)$"), "rho0"), (re.compile(r"r_(\d)(\d)(\d)$"), "r"),
    (re.compile(r"P_(\d)(\d)_(\d+)$"), "P"), (re.compile(r"b_(\d+)$"), "b"), (re.compile(r"f_(\d+)$"), "f"),
]


def seed_notation(expr) -> Basic:
    """Replace the grounding's symbol names (dpi_00, r_010, rho0_0, P_01_1, R_tau) by seed-notation nodes."""
    expr = sympify(expr)
    subs = {}
    for s in expr.free_symbols:
        if s.name == "R_tau":
            subs[s] = Return(tau)
            continue
        for pattern, kind in _PARAM_NAMES:
            m = pattern.match(s.name)
            if m:
                subs[s] = Param(kind, *map(int, m.groups()))
                break
    return expr.xreplace(subs) if subs else expr


_NAME_TEXT = [
    (re.compile(r"\bdpi_(\d)(\d)\b"), lambda m: f"∂π({m[2]}|{m[1]})"),
    (re.compile(r"\bpi_(\d)(\d)\b"), lambda m: f"π({m[2]}|{m[1]})"),
    (re.compile(r"\brho0_(\d+)\b"), lambda m: f"ρ₀({m[1]})"),
    (re.compile(r"\br_(\d)(\d)(\d)\b"), lambda m: f"r({m[1]}, {m[2]}, {m[3]})"),
    (re.compile(r"\bP_(\d)(\d)_(\d+)\b"), lambda m: f"p({m[3]}|{m[1]}, {m[2]})"),
    (re.compile(r"\bb_(\d+)\b"), lambda m: f"b({m[1]})"),
    (re.compile(r"\bR_tau\b"), lambda m: "R(τ)"),
    (re.compile(r"\*\*(\d+)"), lambda m: "".join(_SUP[c] for c in m[1])),
    (re.compile(r"\*"), lambda m: "·"),
]


def seed_names_text(text: str) -> str:
    """A message that quotes grounded polynomials (e.g. a failed step's residual), in the source's notation.

    >>> seed_names_text("nonzero residual P_00_1**2*dpi_01*rho0_0")
    'nonzero residual p(1|0, 0)²·∂π(1|0)·ρ₀(0)'
    """
    for pattern, repl in _NAME_TEXT:
        text = pattern.sub(repl, text)
    return text


def name_objective(expr) -> Basic:
    """Write E_{τ∼p(·|θ)}[R(τ)] as J(π_θ), as the source does on the left of (8), (14) and (15)."""
    return sympify(expr).xreplace({Expectation(Return(tau), Density(tau, theta)): Objective()})


class Tex:
    """Maths written by hand where prose needs it: its LaTeX and its Unicode form (for terminal, JSON, HTML)."""

    __slots__ = ("latex", "text")

    def __init__(self, latex: str, text: str):
        self.latex, self.text = latex, text

    def __repr__(self):
        return f"Tex({self.latex!r}, {self.text!r})"

    def __eq__(self, other):
        return isinstance(other, Tex) and (self.latex, self.text) == (other.latex, other.text)

    def __hash__(self):
        return hash((self.latex, self.text))


class Prose(str):
    r"""Text with mathematics in it: a sequence of str, SymPy expressions and ``Tex`` parts.

    The ``str`` value is the Unicode (plain) form, so a Prose is usable wherever text is; ``latex()``,
    ``unicode()`` and ``html()`` print every part in that medium (expressions inline).

    >>> from derive.notation import theta
    >>> p = Prose("the support does not depend on ", theta)
    >>> str(p), p.latex()
    ('the support does not depend on θ', 'the support does not depend on $\\theta$')
    """

    parts: tuple

    def __new__(cls, *parts):
        flat = []
        for part in parts:
            if isinstance(part, Prose):
                flat.extend(part.parts)
            elif isinstance(part, (str, Tex)):
                flat.append(part)
            else:
                flat.append(sympify(part))
        obj = super().__new__(cls, "".join(_part_unicode(p) for p in flat))
        obj.parts = tuple(flat)
        return obj

    def unicode(self) -> str:
        return str(self)

    def latex(self) -> str:
        out = []
        for p in self.parts:
            if isinstance(p, Tex):
                out.append(f"${p.latex}$")
            elif isinstance(p, str):
                out.append(latex_escape(p))
            else:
                out.append(f"${to_latex(p, inline=True)}$")
        return "".join(out)

    def html(self) -> str:
        """HTML: text escaped, expressions as inline MathML, hand-written maths in italics."""
        out = []
        for p in self.parts:
            if isinstance(p, Tex):
                out.append(f'<span class="m">{_scripts_html(html.escape(p.text))}</span>')
            elif isinstance(p, str):
                out.append(html.escape(p))
            else:
                out.append(to_mathml(p))
        return "".join(out)

    @property
    def expressions(self) -> tuple:
        return tuple(p for p in self.parts if isinstance(p, Basic))


def _scripts_html(text: str) -> str:
    """The Unicode form's leftover ``_x``/``_(..)``/``^(..)`` (characters Unicode has no sub/superscript for) as
    <sub>/<sup>."""
    text = re.sub(r"_\(([^()]*)\)", r"<sub>\1</sub>", text)
    text = re.sub(r"\^\(([^()]*)\)", r"<sup>\1</sup>", text)
    return re.sub(r"_([A-Za-zθτ]+(?:−1)?)", r"<sub>\1</sub>", text)     # g_total: the whole name


def _part_unicode(p) -> str:
    if isinstance(p, Tex):
        return p.text
    if isinstance(p, str):
        return p
    return to_unicode(p)


# --- the source's order -----------------------------------------------------------------------------------------------

_PARAM_RANK = {"b": 2, "r": 2, "f": 2, "rho0": 3, "P": 4, "pi": 5, "dpi": 6}


def _rank(a: Basic, in_grad: bool = False) -> int:
    """The position class of a factor: numbers, discounts, weights, densities, transitions, policy, gradients."""
    if a.is_Number:
        return 0
    if isinstance(a, Pow) and a.exp.is_Number and a.exp < 0:
        return 8
    if isinstance(a, Pow):
        return _rank(a.base, in_grad) if not a.base.is_Symbol else 1
    if a.is_Symbol:
        return 1
    if isinstance(a, Param):
        return _PARAM_RANK.get(a.kind, 7)
    if isinstance(a, (Density, InitialDist)):
        return 1 if in_grad else 3   # the source writes ∇(p f) in (2) but f p elsewhere
    if isinstance(a, (TestFn, Return, Reward, Baseline, Objective)) or a.is_Add:
        return 2
    if isinstance(a, Transition):
        return 4
    if isinstance(a, Policy):
        return 5
    if isinstance(a, log):
        return _rank(a.args[0], in_grad)
    if isinstance(a, Grad):
        return 6
    if isinstance(a, UnevaluatedExpr):
        return 7
    if isinstance(a, (Sum, Product, Integrate)):
        return 9
    return _NAMED_RANK.get(type(a).__name__, 7)


_NAMED_RANK = {"QValue": 2, "VValue": 2, "Advantage": 2, "StateProb": 3, "ActionSum": 9, "StateSum": 9}


def seed_factor_order(factors, in_grad: bool = False) -> list:
    """Factors in the source's order (stable within a class, so ties keep SymPy's canonical order)."""
    return sorted(factors, key=lambda a: _rank(a, in_grad))


def _term_key(term: Basic):
    coeff, rest = term.as_coeff_Mul()
    negative = bool(coeff.is_Number and coeff < 0)
    factors = seed_factor_order(Mul.make_args(rest))
    return (negative, term.is_Number, tuple(_rank(f) for f in factors))


def seed_term_order(terms) -> list:
    """Terms of a sum: positive before negative, then by their factors' classes (f ∇p before p ∇f, as in (3))."""
    return sorted(terms, key=_term_key)


class _SeedOrder:
    """Printer mixin: products and sums in the source's order."""

    _in_grad = 0

    def _as_ordered_terms(self, expr, order=None):
        return seed_term_order(Add.make_args(expr))

    def _ordered_mul(self, expr) -> Basic:
        coeff, rest = expr.as_coeff_mul()
        factors = seed_factor_order(rest, self._in_grad > 0)
        if coeff != 1:
            factors = [coeff, *factors]
        return Mul._from_args(factors)


# --- sub- and superscripts for the Unicode printer ------------------------------------------------------------------

_SUB = dict(zip("0123456789+-−=()aehijklmnoprstuvxβγρφχ", "₀₁₂₃₄₅₆₇₈₉₊₋₋₌₍₎ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓᵦᵧᵨᵩᵪ"))
_SUP = dict(zip("0123456789+-−=()abcdefghijklmnoprstuvwxyzABDEGHIJKLMNOPRTUVW′'",
                "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁻⁼⁽⁾ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖʳˢᵗᵘᵛʷˣʸᶻᴬᴮᴰᴱᴳᴴᴵᴶᴷᴸᴹᴺᴼᴾᴿᵀᵁⱽᵂ′′"))


_SCRIPT_AS_IS = "≥≤<>θ"   # no sub/superscript form, yet readable inline: ∇θ, πθ, Σₜ≥₀


def _script(text: str, table: dict, marker: str) -> str:
    text = text.replace(" ", "")
    if text and all(c in table or c in "′'" or c in _SCRIPT_AS_IS for c in text) and \
            not all(c in _SCRIPT_AS_IS for c in text.replace("θ", "")) or text == "θ":
        return "".join(table.get(c, "′" if c in "′'" else c) for c in text)
    return f"{marker}({text})" if len(text) > 1 else f"{marker}{text}"


def sub(text: str) -> str:
    """Unicode subscript of ``text`` (``_(text)`` when some character has none)."""
    return _script(text, _SUB, "_")


def sup(text: str) -> str:
    """Unicode superscript of ``text`` (``^(text)`` when some character has none)."""
    return _script(text, _SUP, "^")


# --- Unicode ---------------------------------------------------------------------------------------------------------

_GREEK = {"theta": "θ", "gamma": "γ", "mu": "μ", "sigma": "σ", "tau": "τ", "rho": "ρ", "pi": "π", "alpha": "α",
          "beta": "β", "lambda": "λ", "delta": "δ", "epsilon": "ε", "phi": "φ", "psi": "ψ", "omega": "ω",
          "Sigma": "Σ", "Delta": "Δ"}


def _unicode_name(name: str) -> str:
    from sympy.printing.conventions import split_super_sub

    base, sups, subs = split_super_sub(name)
    base = _GREEK.get(base, base)
    return base + "".join(sup(_GREEK.get(s, s)) for s in sups) + "".join(sub(_GREEK.get(s, s)) for s in subs)


class PGUnicodePrinter(_SeedOrder, StrPrinter):
    """One line of Unicode maths: θ, ∇θ, Σₜ₌₀ᴴ⁻¹, γᵗ′, products by juxtaposition, − for minus."""

    printmethod = "_pg_unicode"
    _default_settings = {**StrPrinter._default_settings, "order": "none"}

    def _paren(self, e, level) -> str:
        s = self._print(e)
        return f"({s})" if precedence(e) < level else s

    def _print_Symbol(self, e):
        return _unicode_name(e.name)

    _print_Dummy = _print_Symbol

    def _print_Indexed(self, e):
        return _unicode_name(str(e.base)) + sub(",".join(self._print(i) for i in e.indices))

    def _print_Add(self, expr, order=None):
        out = []
        for i, term in enumerate(self._as_ordered_terms(expr)):
            neg = term.could_extract_minus_sign()
            s = self._paren(-term if neg else term, precedence(expr))
            out.append(("−" if i == 0 else " − ") + s if neg else ("" if i == 0 else " + ") + s)
        return "".join(out)

    def _print_Mul(self, expr):
        if expr.could_extract_minus_sign():
            return "−" + self._paren(-expr, precedence(expr))
        num, den = fraction(expr, exact=True)
        if den != 1 and not any(isinstance(a, UnevaluatedExpr) for a in expr.args):
            return f"{self._paren(num, precedence(expr))}/{self._paren(den, precedence(expr) + 1)}"
        args = self._ordered_mul(expr).args
        parts = [self._paren(a, precedence(expr)) for a in args]
        return " ".join(parts)

    def _print_Pow(self, expr, rational=False):
        b, e = expr.as_base_exp()
        if e == -1:
            return f"1/{self._paren(b, precedence(expr) + 1)}"
        base = self._paren(b, precedence(expr) + 1)
        if isinstance(b, (Reward, Baseline, Policy)):
            base = f"({base})" if not base.startswith("(") else base
        return base + sup(self._print(e))

    def _print_Rational(self, e):
        return (f"{e.p}/{e.q}" if e.q != 1 else str(e.p)).replace("-", "−")

    def _print_Integer(self, e):
        return str(e.p).replace("-", "−")

    def _print_Float(self, e):
        return f"{float(e):.6g}".replace("-", "−")

    def _print_Infinity(self, e):
        return "∞"

    def _print_Relational(self, e):
        op = {"==": "=", "!=": "≠", "<=": "≤", ">=": "≥", "<": "<", ">": ">"}[e.rel_op]
        return f"{self._print(e.lhs)} {op} {self._print(e.rhs)}"

    def _limits(self, symbol, limits) -> str:
        out = []
        for v, lo, hi in reversed(limits):
            if hi == oo:
                out.append(symbol + sub(f"{self._print(v)}≥{self._print(lo)}"))
            else:
                out.append(symbol + sub(f"{self._print(v)}={self._print(lo)}") + sup(self._print(hi)))
        return " ".join(out)

    def _print_Sum(self, e):
        body = self._print(e.function)
        if e.function.is_Add:
            body = f"({body})"
        return f"{self._limits('Σ', e.limits)} {body}"

    def _print_Product(self, e):
        body = self._print(e.function)
        if e.function.is_Add:
            body = f"({body})"
        return f"{self._limits('∏', e.limits)} {body}"

    def _print_log(self, e):
        a = e.args[0]
        s = self._print(a)
        return f"log {s}" if _function_like(a) else f"log({s})"

    def _print_exp(self, e):
        return f"exp({self._print(e.args[0])})"

    def _print_UnevaluatedExpr(self, e):
        num, den = fraction(e.args[0], exact=True)
        return f"{self._paren(num, 60)}/{self._paren(den, 60)}" if den != 1 else self._print(e.args[0])

    # the notation
    def _print_Density(self, e):
        return f"p({self._print(e.var)}|{self._print(e.param)})"

    def _print_Expectation(self, e):
        d = e.density
        return f"E_{self._print(d.var)}∼p(·|{self._print(d.param)})[{self._print(e.body)}]"

    def _print_Grad(self, e):
        self._in_grad += 1
        try:
            inner = self._print(e.expr)
        finally:
            self._in_grad -= 1
        if e.expr.is_Add or e.expr.is_Mul or e.expr.is_Pow:
            inner = f"({inner})"
        return f"∇{self._print(e.wrt)} {inner}"

    def _print_Integrate(self, e):
        body = self._print(e.body)
        if e.body.is_Add:
            body = f"({body})"
        return f"∫ d{self._print(e.var)} {body}"

    def _print_TestFn(self, e):
        return f"f({self._print(e.args[0])})"

    def _print_Return(self, e):
        return f"R({self._print(e.args[0])})"

    def _t(self, e, shift=0):
        return sub(self._print(e.args[0] + shift))

    def _print_Policy(self, e):
        return f"π{self._print(e.param)}(a{self._t(e)}|s{self._t(e)})"

    def _print_Transition(self, e):
        return f"p(s{self._t(e, 1)}|s{self._t(e)}, a{self._t(e)})"

    def _print_InitialDist(self, e):
        return "ρ₀(s₀)"

    def _print_Reward(self, e):
        return f"r{self._t(e)}"

    def _print_Baseline(self, e):
        return f"b(s{self._t(e)})"

    def _print_Objective(self, e):
        return "J(πθ)"

    def _print_Param(self, e):
        i = e.indices
        return {"dpi": lambda: f"∂π({i[1]}|{i[0]})", "pi": lambda: f"π({i[1]}|{i[0]})",
                "rho0": lambda: f"ρ₀({i[0]})", "r": lambda: f"r({i[0]}, {i[1]}, {i[2]})",
                "P": lambda: f"p({i[2]}|{i[0]}, {i[1]})", "b": lambda: f"b({i[0]})",
                "f": lambda: f"f(τ{sub(str(i[0]))})"}[e.kind]()

    def _print_CondExpectation(self, e):
        k = sub(self._print(e.time))
        given = f"h{k}, a{k}" if e.with_action else f"h{k}"
        return f"E[{self._print(e.body)} | {given}]"

    def _print_ActionExpectation(self, e):
        k = sub(self._print(e.time))
        return f"E_a{k}∼πθ(·|s{k})[{self._print(e.body)}]"

    def _index_sum(self, letter, e):
        body = self._print(e.body)
        if e.body.is_Add:
            body = f"({body})"
        return "Σ" + sub(letter + self._print(e.time)) + " " + body

    def _print_ActionSum(self, e):
        return self._index_sum("a", e)

    def _print_StateSum(self, e):
        return self._index_sum("s", e)

    def _print_StateProb(self, e):
        return f"Pr(s{self._t(e)})"

    def _print_QValue(self, e):
        return f"Q{self._t(e)}(s{self._t(e)}, a{self._t(e)})"

    def _print_VValue(self, e):
        return f"V{self._t(e)}(s{self._t(e)})"

    def _print_Advantage(self, e):
        return f"A{self._t(e)}(s{self._t(e)}, a{self._t(e)})"

    def _print_At(self, e):
        return f"[{self._print(e.expr)}]_{self._print(e.param)}"

    def _print_ScoreDot(self, e):
        return f"⟨∇θ log πθ(a{self._t(e)}|s{self._t(e)}), {self._print(e.table)}⟩"

    def _print__Node(self, e):
        return e._sympystr(self)

    def emptyPrinter(self, expr):
        if isinstance(expr, (str, Tex)):
            return _part_unicode(expr)
        return StrPrinter.emptyPrinter(self, expr)


def _function_like(a: Basic) -> bool:
    """Whether ``log a`` reads unambiguously without parentheses (a single function-like factor)."""
    return isinstance(a, (Density, Policy, Transition, InitialDist, TestFn, Return, Param)) or a.is_Symbol


# --- LaTeX ------------------------------------------------------------------------------------------------------------

class PGLatexPrinter(_SeedOrder, LatexPrinter):
    """SymPy's LaTeX printer with the source's notation and order; nested sums printed as nested sums."""

    printmethod = "_pg_latex"

    def __init__(self, settings=None):
        super().__init__({"fold_short_frac": False, "order": "none", **(settings or {})})

    def _as_ordered_terms(self, expr, order=None):
        return seed_term_order(Add.make_args(expr))

    def _print_Mul(self, expr):
        if isinstance(expr, Mul) and fraction(expr, exact=True)[1] == 1:
            expr = self._ordered_mul(expr)
        return super()._print_Mul(expr)

    def _print_UnevaluatedExpr(self, expr):
        # the multiply-and-divide step (5) shows ∇p / p as a displayed fraction
        return self._print(expr.args[0])

    def _print_Infinity(self, e):
        return r"\infty"

    def _limits(self, symbol, limits) -> str:
        # an unbounded upper limit is written as the source writes it: \prod_{t \geq 0}
        return " ".join(rf"{symbol}_{{{self._print(v)} \geq {self._print(lo)}}}" if hi == oo else
                        rf"{symbol}_{{{self._print(v)}={self._print(lo)}}}^{{{self._print(hi)}}}"
                        for v, lo, hi in reversed(limits))

    def _print_Sum(self, e):
        body = self._print(e.function)
        if e.function.is_Add:
            body = rf"\left({body}\right)"
        return self._limits(r"\sum", e.limits) + " " + body

    def _print_Product(self, e):
        body = self._print(e.function)
        if e.function.is_Add:
            body = rf"\left({body}\right)"
        return self._limits(r"\prod", e.limits) + " " + body

    def _print_log(self, expr, exp=None):
        a = expr.args[0]
        s = self._print(a)
        out = rf"\log {s}" if _function_like(a) else rf"\log\left({s}\right)"
        return out if exp is None else rf"\left({out}\right)^{{{exp}}}"

    def _print_Density(self, e):
        return rf"p({self._print(e.var)} \mid {self._print(e.param)})"

    def _print_Expectation(self, e):
        d = e.density
        return (rf"\mathbb{{E}}_{{{self._print(d.var)} \sim p(\cdot \mid {self._print(d.param)})}}"
                rf"\left[{self._print(e.body)}\right]")

    def _print_Grad(self, e):
        self._in_grad += 1
        try:
            inner = self._print(e.expr)
        finally:
            self._in_grad -= 1
        if e.expr.is_Add or e.expr.is_Mul or e.expr.is_Pow:
            inner = rf"\left({inner}\right)"
        return rf"\nabla_{{{self._print(e.wrt)}}} {inner}"

    def _print_Integrate(self, e):
        body = self._print(e.body)
        if e.body.is_Add:
            body = rf"\left({body}\right)"
        return rf"\int d{self._print(e.var)}\, {body}"

    def _print_TestFn(self, e):
        return f"f({self._print(e.args[0])})"

    def _print_Return(self, e):
        return f"R({self._print(e.args[0])})"

    def _t(self, e, shift=0):
        return self._print(e.args[0] + shift)

    def _print_Policy(self, e):
        return rf"\pi_{{{self._print(e.param)}}}(a_{{{self._t(e)}}} \mid s_{{{self._t(e)}}})"

    def _print_Transition(self, e):
        return rf"p(s_{{{self._t(e, 1)}}} \mid s_{{{self._t(e)}}}, a_{{{self._t(e)}}})"

    def _print_InitialDist(self, e):
        return r"\rho_{0}(s_{0})"

    def _print_Reward(self, e):
        return f"r_{{{self._t(e)}}}"

    def _print_Baseline(self, e):
        return f"b(s_{{{self._t(e)}}})"

    def _print_Objective(self, e):
        return r"J(\pi_{\theta})"

    def _print_CondExpectation(self, e):
        given = e._given(self, lambda x: "{" + self._print(x) + "}")
        return rf"\mathbb{{E}}\left[{e._pstr(self, 0)} \,\middle|\, {given}\right]"

    def _print_ActionExpectation(self, e):
        k = e._pstr(self, 1)
        return (rf"\mathbb{{E}}_{{a_{{{k}}} \sim \pi_{{\theta}}(\cdot \mid s_{{{k}}})}}"
                rf"\left[{e._pstr(self, 0)}\right]")

    def _index_sum(self, e, letter: str) -> str:
        """sum over every a_t (or s_t) of the body, parenthesised when it is a sum."""
        body = e._pstr(self, 0)
        if e.body.is_Add:
            body = rf"\left({body}\right)"
        return rf"\sum_{{{letter}_{{{e._pstr(self, 1)}}}}} {body}"

    def _print_ActionSum(self, e):
        return self._index_sum(e, "a")

    def _print_StateSum(self, e):
        return self._index_sum(e, "s")

    def _print_StateProb(self, e):
        return rf"\Pr_{{\pi_\theta}}(s_{{{e._sub(self)}}})"

    def _print_QValue(self, e):
        k = e._sub(self)
        return rf"Q^{{\pi}}_{{{k}}}(s_{{{k}}}, a_{{{k}}})"

    def _print_VValue(self, e):
        k = e._sub(self)
        return rf"V^{{\pi}}_{{{k}}}(s_{{{k}}})"

    def _print_Advantage(self, e):
        k = e._sub(self)
        return rf"A^{{\pi}}_{{{k}}}(s_{{{k}}}, a_{{{k}}})"

    def _print_At(self, e):
        return rf"\left.{self._print(e.expr)}\right|_{{{self._print(e.param)}}}"

    def _print_ScoreDot(self, e):
        k = self._print(e.time)
        return (rf"\left\langle \nabla_\theta \log \pi_\theta(a_{{{k}}} \mid s_{{{k}}}),\, "
                rf"{self._print(e.table)} \right\rangle")

    def _print__Node(self, e):
        # every node class of derive.notation has its _print_ above (tests/test_layout.py); a node defined
        # elsewhere may still bring its own _latex
        return e._latex(self)

    def _print_Param(self, e):
        i = e.indices
        return {"dpi": lambda: rf"\partial\pi({i[1]} \mid {i[0]})", "pi": lambda: rf"\pi({i[1]} \mid {i[0]})",
                "rho0": lambda: rf"\rho_{{0}}({i[0]})", "r": lambda: f"r({i[0]}, {i[1]}, {i[2]})",
                "P": lambda: rf"p({i[2]} \mid {i[0]}, {i[1]})", "b": lambda: f"b({i[0]})",
                "f": lambda: f"f(\\tau_{{{i[0]}}})"}[e.kind]()


# --- MathML -----------------------------------------------------------------------------------------------------------

class PGMathMLPrinter(_SeedOrder, MathMLPresentationPrinter):
    """SymPy's presentation-MathML printer with the notation's nodes, the source's order and notation."""

    printmethod = "_pg_mathml"

    def __init__(self, settings=None):
        super().__init__({"order": "old", **(settings or {})})

    def _el(self, tag: str, *children, text: str | None = None) -> Element:
        el = self.dom.createElement(tag)
        if text is not None:
            el.appendChild(self.dom.createTextNode(html.escape(text, quote=False)))
        for c in children:
            el.appendChild(c)
        return el

    def _mi(self, text):
        el = self._el("mi", text=text)
        if len(text) > 1:
            el.setAttribute("mathvariant", "normal")
        return el

    def _mo(self, text, stretchy: bool | None = None):
        el = self._el("mo", text=text)
        if text in "()[]|,":
            # Chromium spaces a bare <mo> like an operator; a function's brackets hug their arguments
            el.setAttribute("lspace", "0.2em" if text == "|" else "0")
            el.setAttribute("rspace", {"|": "0.2em", ",": "0.15em"}.get(text, "0"))
        if stretchy is not None:
            el.setAttribute("stretchy", "true" if stretchy else "false")
        return el

    def _space(self, width="0.17em"):
        el = self.dom.createElement("mspace")
        el.setAttribute("width", width)
        return el

    def _mn(self, text):
        return self._el("mn", text=text)

    def _row(self, *parts) -> Element:
        """An mrow of parts: elements, expressions (printed), or str (an operator, or a letter as mi)."""
        row = self._el("mrow")
        for p in parts:
            if isinstance(p, Element):
                row.appendChild(p)
            elif isinstance(p, str):
                row.appendChild(self._mi(p) if p.isalpha() else (self._mn(p) if p.isdigit() else self._mo(p)))
            else:
                row.appendChild(self._print(p))
        return row

    def _msub(self, base, subscript) -> Element:
        return self._el("msub", base if isinstance(base, Element) else self._row(base),
                        subscript if isinstance(subscript, Element) else self._row(subscript))

    def _fenced(self, inner, left="(", right=")") -> Element:
        lo, ro = self._mo(left, stretchy=True), self._mo(right, stretchy=True)
        return self._row(lo, inner if isinstance(inner, Element) else self._print(inner), ro)

    def _print_Mul(self, expr):
        if isinstance(expr, Mul) and not any(isinstance(a, UnevaluatedExpr) for a in expr.args):
            num, den = fraction(expr, exact=True)
            if den == 1:
                if expr.could_extract_minus_sign():
                    return self._row("-", self._print(-expr))
                args = self._ordered_mul(expr).args
                row = self._el("mrow")
                for i, a in enumerate(args):
                    if i:
                        row.appendChild(self._mo("\u2062"))   # invisible times
                    last_sum = i == len(args) - 1 and isinstance(a, (Sum, Product))
                    row.appendChild(self._print(a) if last_sum else self.parenthesize(a, precedence(expr)))
                return row
        return super()._print_Mul(expr)

    def _print_UnevaluatedExpr(self, expr):
        return self._print(expr.args[0])

    def _print_Symbol(self, sym, style="plain"):
        return super()._print_Symbol(sym, style)

    def _limits(self, symbol, limits):
        row = self._el("mrow")
        for v, lo, hi in reversed(limits):
            if hi == oo:
                row.appendChild(self._el("munder", self._mo(symbol), self._row(v, "≥", lo)))
            else:
                row.appendChild(self._el("munderover", self._mo(symbol), self._row(v, "=", lo), self._print(hi)))
        return row

    def _print_Sum(self, e):
        body = self._print(e.function)
        if e.function.is_Add:
            body = self._fenced(body)
        return self._row(self._limits("\u2211", e.limits), body)

    def _print_Product(self, e):
        body = self._print(e.function)
        if e.function.is_Add:
            body = self._fenced(body)
        return self._row(self._limits("\u220f", e.limits), body)

    def _print_log(self, e):
        a = e.args[0]
        inner = self._print(a) if _function_like(a) else self._fenced(a)
        return self._row(self._mi("log"), self._mo("\u2061"), self._space(), inner)

    def _print_Relational(self, e):
        op = {"==": "=", "!=": "≠", "<=": "≤", ">=": "≥", "<": "<", ">": ">"}[e.rel_op]
        return self._row(e.lhs, self._mo(op), e.rhs)

    def _print_Infinity(self, e):
        return self._mi("∞")

    def _cond(self, var, given) -> Element:
        """(var | given...) with commas."""
        parts = [self._mo("(", False), var if isinstance(var, Element) else self._print(var), self._mo("|", False)]
        for i, g in enumerate(given):
            if i:
                parts.append(self._mo(","))
            parts.append(g if isinstance(g, Element) else self._print(g))
        parts.append(self._mo(")", False))
        return self._row(*parts)

    def _print_Density(self, e):
        return self._row(self._mi("p"), self._cond(e.var, [e.param]))

    def _print_Expectation(self, e):
        d = e.density
        subscript = self._row(d.var, self._mo("∼"), self._mi("p"), self._cond(self._mo("·"), [d.param]))
        return self._row(self._msub(self._mi("𝔼"), subscript), self._fenced(e.body, "[", "]"))

    def _print_Grad(self, e):
        self._in_grad += 1
        try:
            inner = self._print(e.expr)
        finally:
            self._in_grad -= 1
        if e.expr.is_Add or e.expr.is_Mul or e.expr.is_Pow:
            inner = self._fenced(inner)
        return self._row(self._msub(self._mo("∇"), self._print(e.wrt)), self._space("0.1em"), inner)

    def _print_Integrate(self, e):
        body = self._print(e.body)
        if e.body.is_Add:
            body = self._fenced(body)
        return self._row(self._mo("∫"), self._mi("d"), self._print(e.var), self._space(), body)

    def _fn(self, name, *args) -> Element:
        parts = [self._mo("(", False)]
        for i, a in enumerate(args):
            if i:
                parts.append(self._mo(","))
            parts.append(a if isinstance(a, Element) else self._print(a))
        parts.append(self._mo(")", False))
        return self._row(name if isinstance(name, Element) else self._mi(name), self._row(*parts))

    def _var(self, letter, e, shift=0) -> Element:
        return self._msub(self._mi(letter), self._print(e.args[0] + shift))

    def _print_TestFn(self, e):
        return self._fn("f", e.args[0])

    def _print_Return(self, e):
        return self._fn("R", e.args[0])

    def _print_Policy(self, e):
        return self._row(self._msub(self._mi("π"), self._print(e.param)),
                         self._cond(self._var("a", e), [self._var("s", e)]))

    def _print_Transition(self, e):
        return self._row(self._mi("p"), self._cond(self._var("s", e, 1), [self._var("s", e), self._var("a", e)]))

    def _print_InitialDist(self, e):
        return self._fn(self._msub(self._mi("ρ"), self._mn("0")), self._msub(self._mi("s"), self._mn("0")))

    def _print_Reward(self, e):
        return self._var("r", e)

    def _print_Baseline(self, e):
        return self._fn("b", self._var("s", e))

    def _print_Objective(self, e):
        return self._fn("J", self._msub(self._mi("π"), self._mi("θ")))

    def _print_Param(self, e):
        i = [self._mn(str(k)) for k in e.indices]
        kind = e.kind
        if kind == "dpi":
            return self._row(self._mo("∂"), self._mi("π"), self._cond(i[1], [i[0]]))
        if kind == "pi":
            return self._row(self._mi("π"), self._cond(i[1], [i[0]]))
        if kind == "rho0":
            return self._fn(self._msub(self._mi("ρ"), self._mn("0")), i[0])
        if kind == "r":
            return self._fn("r", *i)
        if kind == "P":
            return self._row(self._mi("p"), self._cond(i[2], [i[0], i[1]]))
        if kind == "b":
            return self._fn("b", i[0])
        return self._fn("f", self._msub(self._mi("τ"), i[0]))

    def _print_CondExpectation(self, e):
        k = self._print(e.time)
        given = [self._msub(self._mi("h"), k)]
        if e.with_action:
            given += [self._mo(","), self._msub(self._mi("a"), self._print(e.time))]
        return self._row(self._mi("𝔼"), self._mo("["), e.body, self._mo("|"), *given, self._mo("]"))

    def _print_ActionExpectation(self, e):
        a, s_ = (self._msub(self._mi(v), self._print(e.time)) for v in "as")
        subscript = self._row(a, self._mo("∼"), self._msub(self._mi("π"), self._mi("θ")),
                              self._cond(self._mo("·"), [s_]))
        return self._row(self._msub(self._mi("𝔼"), subscript), self._fenced(e.body, "[", "]"))

    def _index_sum(self, letter, e):
        body = self._print(e.body)
        if e.body.is_Add:
            body = self._fenced(body)
        under = self._el("munder", self._mo("\u2211"), self._msub(self._mi(letter), self._print(e.time)))
        return self._row(under, body)

    def _print_ActionSum(self, e):
        return self._index_sum("a", e)

    def _print_StateSum(self, e):
        return self._index_sum("s", e)

    def _print_StateProb(self, e):
        return self._fn(self._msub(self._mi("Pr"), self._msub(self._mi("π"), self._mi("θ"))), self._var("s", e))

    def _print_QValue(self, e):
        return self._fn(self._msub(self._mi("Q"), self._print(e.time)), self._var("s", e), self._var("a", e))

    def _print_VValue(self, e):
        return self._fn(self._msub(self._mi("V"), self._print(e.time)), self._var("s", e))

    def _print_Advantage(self, e):
        return self._fn(self._msub(self._mi("A"), self._print(e.time)), self._var("s", e), self._var("a", e))

    def _print_At(self, e):
        return self._el("mtext", text=to_unicode(e))

    def _print_ScoreDot(self, e):
        return self._el("mtext", text=to_unicode(e))

    def _print__Node(self, e):
        return self._el("mtext", text=to_unicode(e))

    def emptyPrinter(self, expr):
        return self._el("mtext", text=to_unicode(expr))


# --- entry points -----------------------------------------------------------------------------------------------------

def to_latex(expr, inline: bool = False) -> str:
    """LaTeX (math mode) for an expression, in the source's notation and order.

    ``inline`` drops ``\\left``/``\\right`` so TeX may break a long formula inside a paragraph.
    """
    out = PGLatexPrinter().doprint(sympify(expr))
    if not inline:
        return out
    out = out.replace(r"\middle|", r"\mid ")   # \middle needs the \left ... \right dropped here
    return re.sub(r"\\(left|right)(?=[()\[\]|.])", "", out)


def to_unicode(expr) -> str:
    """One line of Unicode maths for an expression (terminal and JSON)."""
    if isinstance(expr, Prose):
        return str(expr)
    return PGUnicodePrinter().doprint(sympify(expr))


def to_mathml(expr, display: bool = False) -> str:
    """A ``<math>`` element (presentation MathML) for an expression; ``display`` for a block equation."""
    body = PGMathMLPrinter().doprint(sympify(expr))
    mode = ' display="block"' if display else ""
    return f'<math xmlns="http://www.w3.org/1998/Math/MathML"{mode}>{body}</math>'


def mathml_block(lhs, rhs, tag: str | None = None) -> str:
    """A displayed equation ``lhs = rhs`` as MathML (lhs may be None for a continued chain "= rhs")."""
    p = PGMathMLPrinter()
    parts = [] if lhs is None else [p.doprint(sympify(lhs))]
    inner = "".join(parts) + "<mo>=</mo>" + p.doprint(sympify(rhs))
    label = f'<mspace width="2em"/><mtext>({html.escape(str(tag))})</mtext>' if tag is not None else ""
    return f'<math xmlns="http://www.w3.org/1998/Math/MathML" display="block"><mrow>{inner}{label}</mrow></math>'


_TEX_SYMBOLS = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε", "theta": "θ",
    "lambda": "λ", "mu": "μ", "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "phi": "φ", "psi": "ψ",
    "omega": "ω", "Sigma": "Σ", "Delta": "Δ", "nabla": "∇", "partial": "∂", "sum": "Σ", "prod": "∏", "int": "∫",
    "log": "log", "exp": "exp", "mid": "|", "ge": "≥", "geq": "≥", "le": "≤", "leq": "≤", "neq": "≠", "ne": "≠",
    "sim": "∼", "cdot": "·", "times": "×", "infty": "∞", "ldots": "…", "dots": "…", "to": "→", "in": "∈",
    "approx": "≈", "Pr": "Pr", "max": "max", "min": "min", "quad": "  ", "qquad": "    ",
}
_TEX_ACCENTS = {"hat": "\u0302", "tilde": "\u0303", "overline": "\u0305", "bar": "\u0304"}


def latex_to_unicode(tex: str) -> str:
    r"""A one-line Unicode rendering of simple LaTeX maths (the catalog's formulas): Greek, operators,
    sub/superscripts, \frac, accents; \left/\right and spacing commands dropped.

    >>> latex_to_unicode(r"\sum_{t \ge 0} \nabla_\theta \log \pi_\theta(a_t \mid s_t) \gamma^{t'} r_{t'}")
    'Σₜ≥₀ ∇θ log πθ(aₜ|sₜ) γᵗ′ rₜ′'
    """
    pos = 0

    def group() -> str:
        nonlocal pos
        while pos < len(tex) and tex[pos] == " ":
            pos += 1
        if pos < len(tex) and tex[pos] == "{":
            pos += 1
            out = body("}")
            pos += 1
            return out
        if pos < len(tex) and tex[pos] == "\\":
            return command()
        ch = tex[pos] if pos < len(tex) else ""
        pos += 1
        return ch

    def command() -> str:
        nonlocal pos
        m = re.match(r"\\([A-Za-z]+|.)", tex[pos:])
        pos += len(m.group(0))
        name = m.group(1)
        if name in ("left", "right", "middle", "big", "Big", "bigl", "bigr", "Bigl", "Bigr"):
            return ""
        if name in (",", ";", " ", ":", "!"):
            return " " if name != "!" else ""
        if name == "frac":
            num, den = group(), group()
            wrap = lambda v: v if len(v) <= 1 or re.fullmatch(r"[\w·]+", v) else f"({v})"  # noqa: E731
            return f"{wrap(num)}/{wrap(den)}"
        if name in ("operatorname", "mathrm", "text", "mathbf", "mathit"):
            return group()
        if name == "mathbb":
            return {"E": "E", "R": "ℝ", "P": "P"}.get(g := group(), g)
        if name in _TEX_ACCENTS:
            g = group()
            return g[:1] + _TEX_ACCENTS[name] + g[1:] if g else ""
        return _TEX_SYMBOLS.get(name, name)

    def script(table_fn) -> str:
        return table_fn(group().replace(" ", ""))

    def body(stop: str | None = None) -> str:
        nonlocal pos
        out = []
        while pos < len(tex) and (stop is None or tex[pos] != stop):
            ch = tex[pos]
            if ch == "\\":
                out.append(command())
            elif ch == "_":
                pos += 1
                out.append(script(sub))
            elif ch == "^":
                pos += 1
                out.append(script(sup))
            elif ch == "{":
                out.append(group())
            elif ch == "-":
                pos += 1
                out.append("−")
            else:
                pos += 1
                out.append(ch)
        return "".join(out)

    text = body()
    text = re.sub(r"(∇θ|log)(?=[^\s(])", r"\1 ", text)   # an operator stays apart from its operand
    text = re.sub(r"\s*\|\s*(?=[^|]*\))", "|", text)                     # p(a|s): the bar hugs its operands
    return re.sub(r" {2,}", " ", re.sub(r"\s*,\s*", ", ", text)).strip()


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
                  "^": r"\^{}", "_": r"\_", "%": r"\%", "~": r"\textasciitilde{}", "|": r"\textbar{}"}
_LATEX_MATH = {"α": r"\alpha", "β": r"\beta", "γ": r"\gamma", "θ": r"\theta", "λ": r"\lambda", "μ": r"\mu",
               "π": r"\pi", "ρ": r"\rho", "σ": r"\sigma", "τ": r"\tau", "Σ": r"\Sigma", "∇": r"\nabla",
               "∼": r"\sim", "≥": r"\geq", "≤": r"\leq", "≠": r"\neq", "→": r"\to", "·": r"\cdot", "∈": r"\in",
               "×": r"\times", "≈": r"\approx", "∞": r"\infty", "∂": r"\partial", "ε": r"\varepsilon",
               "−": "-", "<": "<", ">": ">"}     # a minus sign and relations are maths, not an en dash or \textless
_LATEX_TEXT = {"…": r"\ldots{}", "“": "``", "”": "''", "’": "'", "‘": "`", "—": "---", "–": "--",
               "′": "'", "✓": r"$\checkmark$", "✗": r"$\times$",
               **{c: f"$_{d}$" for c, d in zip("₀₁₂₃₄₅₆₇₈₉", "0123456789")},
               **{c: f"$^{d}$" for c, d in zip("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")}}


_NUMBER = r"−?\d+(?:\.\d+)?"
# Maths that prose computes into its text: "θ = (2, −2)", "(S, A, H) = (2, 2, 2)", "H = 2", and signed or
# exponent numbers ("−2", "1.5e−17"); everything else stays text.
_END = r"(?!\w|\.\d)"        # a number ends at a non-word character; a full stop may end the sentence
_PROSE_MATH = re.compile(
    rf"(?<![\w\\.])(?P<lhs>[A-Za-zα-ω]|\((?:[A-Za-z], )+[A-Za-z]\)) = (?P<rhs>{_NUMBER}|\((?:{_NUMBER}, )+{_NUMBER}\))"
    rf"{_END}|(?P<cmp>(?:(?<![\w.]){_NUMBER} )?[<>≤≥≠] {_NUMBER}){_END}"
    rf"|(?<![\w.])(?P<sign>−?)(?P<digits>\d+(?:\.\d+)?)(?:e(?P<esign>[−+]?)(?P<exp>\d+))?{_END}")


def _inline_math(text: str) -> str:
    return "".join(f"{_LATEX_MATH[c]} " if c in _LATEX_MATH and len(_LATEX_MATH[c]) > 1 else _LATEX_MATH.get(c, c)
                   for c in text).replace(" ,", ",").replace(" )", ")").strip()


def latex_escape(s: str) -> str:
    r"""Escape prose for LaTeX text mode: specials escaped, Greek letters and relations as inline maths.

    Prose here is words: mathematics is never written as a string (it is an expression or ``Tex``), so
    this never has to guess at sub- and superscripts.  Unknown non-ASCII characters become ``?``. What prose
    computes into its text is set as maths: an assignment of numbers, a number with a minus sign (not an en
    dash) or an exponent, a comparison with a number:

    >>> latex_escape("θ = (2, −2), H = 2, rewards −2 and 2, a < b, pages 3–4, 1.5e−17, 0 ≠ 1, at γ = 1.")
    '$\\theta = (2, -2)$, $H = 2$, rewards $-2$ and 2, a $<$ b, pages 3--4, $1.5 \\cdot 10^{-17}$, $0 \\neq 1$, at $\\gamma = 1$.'
    """
    out, at = [], 0
    for m in _PROSE_MATH.finditer(s):
        if m["lhs"]:
            maths = f"{_inline_math(m['lhs'])} = {_inline_math(m['rhs'])}"
        elif m["cmp"]:
            maths = re.sub(" +", " ", _inline_math(m["cmp"]))
        elif m["sign"] or m["exp"] is not None:
            power = "" if m["exp"] is None else rf" \cdot 10^{{{'-' if m['esign'] == '−' else ''}{int(m['exp'])}}}"
            maths = f"{'-' if m['sign'] else ''}{m['digits']}{power}"
        else:
            continue
        out.append(_latex_escape_chars(s[at:m.start()]))
        out.append(f"${maths}$")
        at = m.end()
    out.append(_latex_escape_chars(s[at:]))
    return re.sub(r"(?<!\\)\$\$", "", "".join(out))     # adjacent maths join: $\theta$$<$ -> $\theta<$


def _latex_escape_chars(s: str) -> str:
    out = []
    for ch in s:
        if ch in _LATEX_SPECIAL:
            out.append(_LATEX_SPECIAL[ch])
        elif ch in _LATEX_MATH:
            out.append(f"${_LATEX_MATH[ch]}$")
        elif ch in _LATEX_TEXT:
            out.append(_LATEX_TEXT[ch])
        elif ord(ch) < 128:
            out.append(ch)
        else:
            out.append("?")
    return "".join(out)
