"""``pgverify report``: every check on the built-in examples, gathered into one ``Report`` data object.

Sections: the derivation (replay + grounding per step, continuous checks), errata, exact gradients,
Monte Carlo estimators against exact gradients, and exact per-episode variances. The same object is
rendered for people (``verify.app.render``), written as JSON (``Report.to_json``) and plotted (``verify.app.plots``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from verify import __version__
from verify.model.builtin import builtin_examples
from verify.checks.mc import GradientCheck

__all__ = ["ContinuousRow", "DerivationRow", "Report",
           "VarianceRow", "build_report", "build_report_with_progress", "errata_for_latex"]

FULL_SIZES = ((2, 2, 2), (3, 2, 3))   # grounding sizes of the full report (H = 3: a discount wrong from t' = 2 shows)
QUICK_SIZES = ((2, 2, 2),)
FULL_EPISODES, QUICK_EPISODES = 20_000, 5_000


@dataclass(frozen=True)
class DerivationRow:
    """One step: does the rule replay, and is the step an exact identity on symbolic tabular MDPs?"""

    derivation: str
    number: int | str
    rule: str
    replay_ok: bool
    replay_message: str
    grounding: tuple   # derive.grounding.GroundingResult, one per size

    @property
    def passed(self) -> bool:
        return self.replay_ok and all(g.ok for g in self.grounding)

    def to_json(self) -> dict:
        return {"derivation": self.derivation, "number": self.number, "rule": self.rule,
                "replay": {"ok": self.replay_ok, "message": self.replay_message},
                "grounding": [{"sizes": list(g.sizes), "method": g.method, "points": g.points, "ok": g.ok,
                               "message": g.message} for g in self.grounding],
                "passed": self.passed}


@dataclass(frozen=True)
class ContinuousRow:
    """A closed-form continuous check of steps (1)-(7): Gaussian (must hold) or Uniform(0, theta) (must fail at 2)."""

    model: str
    expectation: str
    failing_steps: tuple
    expected_failing: tuple
    values: tuple[str, str]   # grad E[f] and E[f grad log p], as printed

    @property
    def passed(self) -> bool:
        return tuple(self.failing_steps) == tuple(self.expected_failing)

    def to_json(self) -> dict:
        return {"model": self.model, "expectation": self.expectation, "failing_steps": list(self.failing_steps),
                "expected_failing_steps": list(self.expected_failing),
                "grad_of_expectation": self.values[0], "expectation_of_score": self.values[1],
                "passed": self.passed}


@dataclass(frozen=True)
class VarianceRow:
    """Per-episode variance tr Cov[g] of one unbiased estimator on one example (exact, or sampled if not enumerable)."""

    example: str
    estimator: str
    variance: float
    source: str

    def to_json(self) -> dict:
        return {"example": self.example, "estimator": self.estimator, "variance_trace": self.variance,
                "source": self.source}


@dataclass
class Report:
    """Everything ``pgverify report`` found; ``passed`` is the exit status."""

    seed: int
    quick: bool
    derivation: list[DerivationRow] = field(default_factory=list)
    continuous: list[ContinuousRow] = field(default_factory=list)
    derivation_numeric: list = field(default_factory=list)   # verify.app.derivation_numeric.NumericLine
    errata: list = field(default_factory=list)          # derive.errata.Erratum
    gradients: list[GradientCheck] = field(default_factory=list)
    estimators: list = field(default_factory=list)      # (example, verify.checks.mc.CheckRow)
    variance: list[VarianceRow] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def command(self) -> str:
        return f"pgverify report --seed {self.seed}" + (" --quick" if self.quick else "")

    @property
    def checks(self) -> list:
        # an erratum is a check: its predicate on the computed evidence (derive.errata.Erratum.passed)
        return [*self.derivation, *self.continuous, *self.derivation_numeric, *self.errata, *self.gradients,
                *(row for _, row in self.estimators)]

    @property
    def passed(self) -> bool:
        """No check failed (undecided rows are not failures; they are never counted as passed either)."""
        return self.summary["failed"] == 0

    @property
    def summary(self) -> dict:
        """Counts of checks, passed, failed and undecided (rows the run could not decide), and errata."""
        undecided = sum(bool(getattr(c, "undecided", False)) for c in self.checks)
        passed = sum(bool(c.passed) for c in self.checks)
        return {"checks": len(self.checks), "passed": passed, "failed": len(self.checks) - passed - undecided,
                "undecided": undecided, "errata": len(self.errata)}

    def to_json(self) -> dict:
        return {
            "version": __version__, "seed": self.seed, "quick": self.quick, "passed": self.passed,
            "command": self.command,
            "summary": self.summary,
            "derivation": [r.to_json() for r in self.derivation],
            "continuous": [r.to_json() for r in self.continuous],
            "derivation_numeric": [r.to_json() for r in self.derivation_numeric],
            "errata": [erratum_json(e) for e in self.errata],
            "gradients": [g.to_json() for g in self.gradients],
            "estimators": [{"example": ex, **row.to_json()} for ex, row in self.estimators],
            "variance": [v.to_json() for v in self.variance],
            "timing": {k: round(v, 3) for k, v in self.timing.items()},
        }


def erratum_json(e) -> dict:
    if hasattr(e, "to_json"):
        return e.to_json()
    return {"id": e.id, "title": e.title, "seed_text": e.seed_text, "correction": e.correction,
            "evidence": e.evidence}


# --- the sections ---------------------------------------------------------------------------------------------------

def derivation_rows(sizes) -> list[DerivationRow]:
    """Replay and ground every step of every derivation (the seed's, reward-to-go, baseline)."""
    from derive.grounding import ground_step
    from derive.seed import DERIVATIONS
    from derive.steps import replay

    rows = []
    for d in DERIVATIONS:
        for step, check in zip(d.steps, replay(d)):
            # "auto": exact normal form where cheap, else jets at a random point mod 2^61 - 1 (derive.grounding)
            grounding = tuple(ground_step(step, sz, "auto") for sz in sizes)
            rows.append(DerivationRow(d.name, step.number, step.rule.name, check.ok, check.message, grounding))
    return rows


def continuous_rows() -> list[ContinuousRow]:
    from derive.continuous import check_gaussian, uniform_counterexample

    rows = []
    for param in ("mu", "sigma"):
        checks = check_gaussian(param)
        rows.append(ContinuousRow(checks[0].model, f"θ = {'μ' if param == 'mu' else 'σ'}",
                                  tuple(c.number for c in checks if not c.ok),
                                  (), (str(checks[0].before), str(checks[-1].after))))
    u = uniform_counterexample()
    rows.append(ContinuousRow(u.model, "support depends on θ", u.failing_steps, (2,),
                              tuple(str(v) for v in u.values)))
    return rows


def errata_for_latex() -> tuple:
    """Every erratum (symbolic and numeric), as the LaTeX export and the report show them."""
    from verify.app.errata import all_errata

    return all_errata()


def variance_rows(name: str, runs) -> list[VarianceRow]:
    """tr Cov[g] per unbiased estimator (runs: verify.checks.mc.McResult): exact from the enumeration, else the sample's."""
    out = []
    for r in runs:
        if not r.estimator.unbiased:
            continue
        if r.moments is not None:
            out.append(VarianceRow(name, r.estimator.name, float(np.trace(r.moments.cov)), "exact"))
        else:
            out.append(VarianceRow(name, r.estimator.name, float(r.episodes * np.sum(r.test.stderr ** 2)), "sample"))
    return out


def report_episodes(quick: bool) -> int:
    """Monte Carlo episodes per example in the full and the quick report."""
    return QUICK_EPISODES if quick else FULL_EPISODES


def build_report(seed: int = 0, quick: bool = False, progress=None, trace: int = 0, *,
                 estimators=None, resolution: float | None = None) -> Report:
    """Run every check. ``progress`` is an optional rich Progress to advance (the CLI shows one on terminals);
    ``trace`` > 0 keeps each Monte Carlo run's convergence trace at about that many points (for the figures);
    ``estimators`` is the catalog to check (default ``verify.checks.estimators.ESTIMATORS``; tests pass a broken one)."""
    from verify.checks.estimators import ESTIMATORS
    from verify.checks.mc import run_check

    estimators = ESTIMATORS if estimators is None else tuple(estimators)
    report = Report(seed=seed, quick=quick)
    examples = builtin_examples()
    task = progress.add_task("verifying", total=4 + len(examples)) if progress is not None else None

    def done(label: str, t0: float) -> None:
        report.timing[f"{label}_s"] = time.perf_counter() - t0
        if progress is not None:
            progress.advance(task)

    t_start = t0 = time.perf_counter()
    report.derivation = derivation_rows(QUICK_SIZES if quick else FULL_SIZES)
    done("derivation", t0)
    t0 = time.perf_counter()
    report.continuous = continuous_rows()
    done("continuous", t0)
    t0 = time.perf_counter()
    from verify.app.derivation_numeric import numeric_lines   # the derivation's lines, evaluated on the examples
    report.derivation_numeric = numeric_lines(quick=quick)
    done("derivation_numeric", t0)
    t0 = time.perf_counter()
    report.errata = list(errata_for_latex())
    done("errata", t0)
    for name, problem in examples.items():
        t0 = time.perf_counter()
        check = run_check(problem, estimators, episodes=report_episodes(quick), seed=seed, trace=trace,
                          **({} if resolution is None else {"resolution": resolution}))
        report.gradients.append(check.gradients)
        report.estimators.extend((name, row) for row in check.rows)
        report.variance.extend(variance_rows(name, [row.mc for row in check.rows]))
        done(f"example_{name}", t0)
    report.timing["total_s"] = time.perf_counter() - t_start
    return report


def build_report_with_progress(seed: int, quick: bool, show: bool, trace: int = 0, *, estimators=None,
                               color: bool = True, resolution: float | None = None) -> Report:
    """``build_report`` under a transient rich progress bar when ``show`` (output is a terminal), plain with
    ``color=False`` (rich honours ``NO_COLOR`` by itself)."""
    if not show:
        return build_report(seed, quick, trace=trace, estimators=estimators, resolution=resolution)
    from rich.console import Console
    from rich.progress import Progress

    with Progress(transient=True, console=Console(stderr=True, no_color=not color)) as progress:
        return build_report(seed, quick, progress, trace=trace, estimators=estimators, resolution=resolution)
