"""``pgverify report``: run every check on the built-in examples into one Report data object.

The Report is rendered for people (rich tables) and machines (JSON) from the same data.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from verify import __version__
from verify.builtin import builtin_examples
from verify.exact import finite_difference_gradient, gradient

__all__ = ["GRADIENT_TOL", "GradientCheck", "Report", "build_report", "errata_for_latex", "render_report"]

GRADIENT_TOL = 1e-8   # enumeration/DP/solve agree to ~1e-12; central differences limit this to ~1e-9


@dataclass(frozen=True)
class GradientCheck:
    """Exact gradient of one example by every applicable method, and their largest disagreement."""

    example: str
    J: float
    methods: tuple[str, ...]
    max_abs_diff: float
    tol: float

    @property
    def passed(self) -> bool:
        return bool(self.max_abs_diff <= self.tol)

    def to_json(self) -> dict:
        return {"example": self.example, "J": self.J, "methods": list(self.methods),
                "max_abs_diff": self.max_abs_diff, "tol": self.tol, "passed": self.passed}


@dataclass
class Report:
    seed: int
    quick: bool
    gradients: list[GradientCheck] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def checks(self) -> list:
        return [*self.gradients]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_json(self) -> dict:
        return {"version": __version__, "seed": self.seed, "quick": self.quick, "passed": self.passed,
                "derivation": [], "errata": [], "gradients": [g.to_json() for g in self.gradients],
                "estimators": [], "timing": self.timing}


def check_gradients(name: str, problem) -> GradientCheck:
    mdp, policy = problem.mdp, problem.policy
    methods = ["enumerate", "dp"] if mdp.horizon is not None else ["solve"]
    results = [gradient(mdp, policy, m) for m in methods]
    grads = [r.grad for r in results] + [finite_difference_gradient(mdp, policy)]
    diff = max(float(np.abs(g - grads[0]).max()) for g in grads)
    return GradientCheck(name, results[0].J, (*methods, "finite differences"), diff, GRADIENT_TOL)


def build_report(seed: int = 0, quick: bool = False) -> Report:
    report = Report(seed=seed, quick=quick)
    t0 = time.perf_counter()
    for name, problem in builtin_examples().items():
        report.gradients.append(check_gradients(name, problem))
    report.timing["gradients_s"] = time.perf_counter() - t0
    report.timing["total_s"] = time.perf_counter() - t0
    return report


def errata_for_latex() -> list:
    return []


def render_report(report: Report, color: bool = True) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(no_color=not color, highlight=False)
    table = Table(title="Exact gradients: enumeration vs DP/solve vs finite differences")
    for col in ("example", "J(theta)", "methods", "max |diff|", "tol", ""):
        table.add_column(col)
    for g in report.gradients:
        table.add_row(g.example, f"{g.J:.10g}", ", ".join(g.methods), f"{g.max_abs_diff:.2e}", f"{g.tol:.0e}",
                      "✓" if g.passed else "✗")
    console.print(table)
    n_ok = sum(c.passed for c in report.checks)
    console.print(f"{n_ok}/{len(report.checks)} checks passed, seed {report.seed}, "
                  f"{report.timing['total_s']:.2f} s; replay: pgverify report --seed {report.seed}")
