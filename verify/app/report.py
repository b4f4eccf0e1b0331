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
from verify.checks.crosscheck import GradientCheck

__all__ = ["ContinuousRow", "DerivationRow", "Report",
           "VarianceRow", "build_report", "build_report_with_progress", "errata_for_latex"]

FULL_SIZES = ((2, 2, 2), (3, 2, 3))   # grounding sizes of the full report (H = 3: a discount wrong from t' = 2 shows)
QUICK_SIZES = ((2, 2, 2),)
FULL_EPISODES, QUICK_EPISODES = 20_000, 5_000

#: the derivation checked (``derive.source``): author, title, date, as the JSON's "source" cites it
SOURCE_CITATION = {"author": "Alexander Schindorfer", "title": "Policy Gradient Derivation", "date": "2026-01-21",
                   "equations": "(1)-(15) and the reward-to-go remark"}


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
    chain: list = field(default_factory=list)                # derive.chain.ChainCheck: seams, results, lemmas
    continuous: list[ContinuousRow] = field(default_factory=list)
    derivation_numeric: list = field(default_factory=list)   # verify.app.derivation_numeric.NumericLine
    errata: list = field(default_factory=list)          # derive.errata.Erratum
    gradients: list[GradientCheck] = field(default_factory=list)
    estimators: list = field(default_factory=list)      # (example, verify.checks.mc.CheckRow)
    variance: list[VarianceRow] = field(default_factory=list)
    lq: list = field(default_factory=list)              # verify.app.lq_report.LQRow (continuous actions, LQ)
    theory: list = field(default_factory=list)          # verify.app.theory_report.TheoryRow
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def command(self) -> str:
        return f"pgverify report --seed {self.seed}" + (" --quick" if self.quick else "")

    @property
    def self_check(self):
        """The false-alarm count of the Monte Carlo rows with exact bias zero against its binomial law
        (``verify.checks.selfcheck``); None before the estimators ran."""
        if not self.estimators:
            return None
        from verify.checks.selfcheck import false_alarm_check

        return false_alarm_check(self.estimators)

    @property
    def checks(self) -> list:
        # an erratum is a check: its predicate on the computed evidence (derive.errata.Erratum.passed)
        selfcheck = self.self_check
        return [*self.derivation, *self.chain, *self.continuous, *self.derivation_numeric, *self.errata,
                *self.gradients, *(row for _, row in self.estimators), *self.lq, *self.theory,
                *([selfcheck] if selfcheck is not None and selfcheck.tests else [])]

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
            "source": SOURCE_CITATION,
            "derivation": [r.to_json() for r in self.derivation],
            "chain": [r.to_json() for r in self.chain],
            "side_conditions": side_conditions_json(),
            "continuous": [r.to_json() for r in self.continuous],
            "derivation_numeric": [r.to_json() for r in self.derivation_numeric],
            "errata": [erratum_json(e) for e in self.errata],
            "gradients": [g.to_json() for g in self.gradients],
            "estimators": [{"example": ex, **row.to_json()} for ex, row in self.estimators],
            "variance": [v.to_json() for v in self.variance],
            "self_check": None if self.self_check is None else self.self_check.to_json(),
            "lq": [r.to_json() for r in self.lq],
            "theory": [r.to_json() for r in self.theory],
            "timing": {k: round(v, 3) for k, v in self.timing.items()},
        }


def side_conditions_json() -> dict:
    """How each rule's side conditions stand (``derive.side_conditions``): counts, and those assumed."""
    from derive.seed import DERIVATIONS
    from derive.side_conditions import assumed_conditions, side_condition_counts

    return {**side_condition_counts(DERIVATIONS),
            "assumed_conditions": [{"rule": r, "condition": c} for r, c in assumed_conditions(DERIVATIONS)]}


def erratum_json(e) -> dict:
    if hasattr(e, "to_json"):
        return e.to_json()
    return {"id": e.id, "title": e.title, "source_text": e.source_text, "correction": e.correction,
            "evidence": e.evidence}


# --- the sections ---------------------------------------------------------------------------------------------------

def derivation_rows(sizes, derivations=None) -> list[DerivationRow]:
    """Replay and ground every step of every derivation (default ``derive.seed.DERIVATIONS``)."""
    from derive.grounding import ground_step
    from derive.steps import replay

    rows = []
    default = derivations is None
    for d in _derivations(derivations):
        for step, check in zip(d.steps, _replay(d) if default else replay(d)):
            # "auto": exact normal form where cheap, else jets at a random point mod 2^61 - 1 (derive.grounding)
            grounding = tuple(ground_step(step, sz, "auto") for sz in sizes)
            rows.append(DerivationRow(d.name, step.number, step.rule.name, check.ok, check.message, grounding))
    return rows


def _replay(d):
    """``derive.steps.replay`` of a built-in derivation (its rules are pgverify's own code, so the proof cache's
    fingerprint covers them), replayed from the cache when this code has replayed it before."""
    from derive import proof_cache
    from derive.steps import StepCheck, replay

    def decode(hit):
        out = []
        for step, (number, rule, ok, message) in zip(d.steps, hit, strict=True):
            if number != str(step.number) or rule != step.rule.name:
                raise ValueError("a cached replay of other steps")
            out.append(StepCheck(step.number, rule, bool(ok), str(message)))
        return out

    return proof_cache.memo("replay", (d.name,), lambda: replay(d),
                            lambda checks: [[str(c.number), c.rule, bool(c.ok), c.message] for c in checks], decode)


def _derivations(derivations):
    if derivations is None:
        from derive.seed import DERIVATIONS
        return DERIVATIONS
    return tuple(derivations)


def chain_rows(sizes, derivations=None) -> list:
    """The checks between derivations (``derive.chain``): seams, claimed results, lemma uses."""
    from derive.chain import check_chain

    return check_chain(_derivations(derivations), sizes)


@dataclass(frozen=True)
class DerivationSection:
    """What the report checks of a list of derivations: steps, the chain between them, the numeric half."""

    steps: list
    chain: list
    numeric: list

    @property
    def rows(self) -> list:
        return [*self.steps, *self.chain, *self.numeric]

    @property
    def failures(self) -> list[str]:
        """One line per failed row: the step, seam or line and the reason."""
        out = []
        for r in self.steps:
            if not r.replay_ok:
                out.append(f"{r.derivation} ({r.number}) replay: {r.replay_message}")
            out += [f"{r.derivation} ({r.number}) grounding: {g.message}" for g in r.grounding if not g.ok]
        out += [f"{c.label}: {c.message}" for c in self.chain if not c.ok]
        out += [f"{n.derivation} ({n.number}) numeric: {n.message}" for n in self.numeric if n.ok is False]
        return out


def derivation_section(derivations=None, quick: bool = False) -> DerivationSection:
    """Every check ``pgverify report`` (``--quick``) runs on the derivations: replay and grounding per step,
    the chain (seams, results, lemmas) and the numeric half, at the report's sizes and examples."""
    from verify.app.derivation_numeric import numeric_lines   # the derivation's lines, evaluated on the examples

    sizes = QUICK_SIZES if quick else FULL_SIZES
    # None (the built-in derivations) lets the replay and the numeric half come from the proof cache
    given = None if derivations is None else _derivations(derivations)
    return DerivationSection(derivation_rows(sizes, given), chain_rows(sizes, given),
                             numeric_lines(quick=quick, derivations=given))


def continuous_rows() -> list[ContinuousRow]:
    """The closed-form continuous checks, replayed from the proof cache (``derive.proof_cache``) when this same
    code has computed them before (they have no inputs)."""
    from derive import proof_cache

    return proof_cache.memo("continuous_rows", (), _continuous_rows,
                            lambda rows: [[r.model, r.expectation, list(r.failing_steps), list(r.expected_failing),
                                           list(r.values)] for r in rows],
                            lambda hit: [ContinuousRow(str(m), str(e), tuple(f), tuple(x), (str(v[0]), str(v[1])))
                                         for m, e, f, x, v in hit])


def _continuous_rows() -> list[ContinuousRow]:
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
    task = progress.add_task("verifying", total=5 + len(examples)) if progress is not None else None

    def done(label: str, t0: float) -> None:
        report.timing[f"{label}_s"] = time.perf_counter() - t0
        if progress is not None:
            progress.advance(task)

    t_start = t0 = time.perf_counter()
    section = derivation_section(quick=quick)
    report.derivation, report.chain, report.derivation_numeric = section.steps, section.chain, section.numeric
    done("derivation", t0)
    t0 = time.perf_counter()
    report.continuous = continuous_rows()
    done("continuous", t0)
    t0 = time.perf_counter()
    report.errata = list(errata_for_latex())
    done("errata", t0)
    t0 = time.perf_counter()
    from verify.app.theory_report import theory_rows     # stationary theorem, PDL, surrogates, natural gradient
    report.theory = theory_rows(quick=quick)
    done("theory", t0)
    for name, problem in examples.items():
        t0 = time.perf_counter()
        check = run_check(problem, estimators, episodes=report_episodes(quick), seed=seed, trace=trace,
                          **({} if resolution is None else {"resolution": resolution}))
        report.gradients.append(check.gradients)
        report.estimators.extend((name, row) for row in check.rows)
        report.variance.extend(variance_rows(name, [row.mc for row in check.rows]))
        done(f"example_{name}", t0)
    t0 = time.perf_counter()
    from verify.app.lq_report import lq_rows    # continuous actions: the LQ examples with a Gaussian policy
    report.lq = lq_rows(seed, quick)
    done("lq", t0)
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
