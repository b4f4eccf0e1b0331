"""The continuous-densities section of the Markdown export: the LaTeX document's section, in Markdown.

Equations (1)-(7) in closed form on N(μ, σ²) with a cubic f (every step holds) and on Uniform(0, θ) with f(x) = x
(step (2) fails: the support depends on θ). The values are computed by ``derive.continuous`` each time, never
written here.
"""
from __future__ import annotations

from derive.printing import to_latex

__all__ = ["continuous_markdown"]


def continuous_markdown() -> str:
    """``## Continuous densities``: both Gaussian parametrisations (both ends of the chain), then the Uniform
    table of each step's two sides with ✓/✗.

    >>> text = continuous_markdown()
    >>> text.splitlines()[0], "| (2) |" in text
    ('## Continuous densities', True)
    """
    from derive.continuous import check_gaussian, uniform_counterexample

    out = ["## Continuous densities", "",
           r"Equations (1)–(7) evaluated in closed form. For $x \sim \mathcal{N}(\mu, \sigma^2)$ and a cubic "
           r"$f(x) = c_0 + c_1 x + c_2 x^2 + c_3 x^3$ with symbolic coefficients, both sides of every step are "
           r"polynomials in $(\mu, \sigma, c_k)$:", ""]
    for param, name in (("mu", r"\mu"), ("sigma", r"\sigma")):
        checks = check_gaussian(param)
        fails = [c.number for c in checks if not c.ok]
        verdict = ("every step holds" if not fails else
                   "**steps " + ", ".join(f"({n})" for n in fails) + " fail**")
        out += [f"**$\\theta = {name}$:** {verdict}, and both ends equal", "", "$$",
                rf"\nabla_{{{name}}} \mathbb{{E}}[f(x)] = {to_latex(checks[0].before)}", "$$", ""]
    u = uniform_counterexample()
    failing = ", ".join(f"({n})" for n in u.failing_steps) or "none"
    out += [r"**Uniform$(0, \theta)$, $f(x) = x$:** the support depends on $\theta$, so exchanging $\nabla_\theta$ "
            rf"and $\int$ drops the boundary term. Each step's two sides (steps whose sides differ: {failing}):", "",
            "| step | before | after | |", "|---|---|---|---|"]
    out += [f"| ({c.number}) | ${to_latex(c.before)}$ | ${to_latex(c.after)}$ | {'✓' if c.ok else '✗'} |"
            for c in u.checks]
    return "\n".join(out + [""])
