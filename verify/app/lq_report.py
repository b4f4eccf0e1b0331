"""The report's LQ section: the Gaussian-policy derivation grounded exactly (``derive.gaussian_lq``), the exact
LQ gradient cross-checked, and the LQ estimator catalog on the built-in LQ examples, as rows of one kind.

Builds data only (``verify.app.lq_render.lq_report_table`` prints it); ``verify.app.report`` adds the rows to its checks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verify.checks.mc import StatusRow

__all__ = ["LQRow", "lq_rows"]

FULL_EXAMPLES = ("lq2d", "lq1d_discounted")
QUICK_EXAMPLES = ("lq2d",)
QUICK_EPISODES, FULL_EPISODES = 4_000, 20_000


@dataclass(frozen=True)
class LQRow(StatusRow):
    """One LQ check: section ("derivation", "gradient" or "estimator"), example, name, status (passed / failed /
    undecided) and a one-line detail computed from the evidence."""

    section: str
    example: str
    name: str
    status: str
    detail: str

    def to_json(self) -> dict:
        return {"section": self.section, "example": self.example, "name": self.name, "status": self.status,
                "detail": self.detail}


def _lq_verdicts() -> list[tuple[str, str, bool]]:
    """(claim, parameter, ok) of ``derive.gaussian_lq.check_gaussian_lq``, replayed from the proof cache
    (``derive.proof_cache``, keyed by derive's code) when this code has proved them before."""
    from derive import proof_cache
    from derive.gaussian_lq import check_gaussian_lq

    return proof_cache.memo("check_gaussian_lq", (),
                            lambda: [(c.claim, c.param, bool(c.ok)) for c in check_gaussian_lq()],
                            lambda v: [list(c) for c in v],
                            lambda hit: [(str(c), str(p), bool(ok)) for c, p, ok in hit])


def _derivation_rows() -> list[LQRow]:
    claims: dict[str, list] = {}
    for claim, param, ok in _lq_verdicts():
        claims.setdefault(claim, []).append((param, ok))
    rows = []
    for claim, cs in claims.items():
        bad = [p for p, ok in cs if not ok]
        detail = (f"expand(lhs - rhs) == 0 for theta = {', '.join(p for p, _ in cs)} (1-D LQ, H = 2, symbolic)"
                  if not bad else f"differs for {', '.join(bad)}")
        rows.append(LQRow("derivation", "1-D symbolic", claim, "failed" if bad else "passed", detail))
    return rows


def lq_rows(seed: int = 0, quick: bool = False) -> list[LQRow]:
    """Every LQ check of the report (``quick``: the 2-D example only, fewer episodes)."""
    from verify.model.lq import load_lq_example
    from verify.checks.lq_mc import get_lq_estimator, lq_check

    rows = _derivation_rows()
    for name in QUICK_EXAMPLES if quick else FULL_EXAMPLES:
        c = lq_check(load_lq_example(name), episodes=QUICK_EPISODES if quick else FULL_EPISODES, seed=seed)
        rows.append(LQRow("gradient", name, "Riccati/Lyapunov vs central differences",
                          "passed" if c.gradients_agree else "failed",
                          f"J = {c.J:.8g}; max relative difference {c.fd_max_rel:.1e} (tol {c.fd_tol:.0e})"))
        for r in c.rows:
            kind = "unbiased" if get_lq_estimator(r.estimator).unbiased else "pitfall"
            how = (f"exact max|bias| {np.abs(r.exact_bias).max():.3g}, sample vs closed form p = "
                   f"{r.closed_form.p_value:.2g}" if r.exact_mean is not None
                   else f"p = {r.sampled.p_value:.3g} ({r.decided_by})")
            rows.append(LQRow("estimator", name, f"{r.estimator} ({kind})", c.status(r),
                              f"{r.verdict}: {how}; detects {r.detectable:.3g}"))
    return rows
