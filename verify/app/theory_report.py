"""The report's section on the results beyond the finite-horizon theorem (``verify.checks.theory``), on the built-in examples.

One ``TheoryRow`` per (claim, example): the claim's two sides computed by different code, their difference and the
tolerance, or (for the gamma^t-less update) the Jacobian's asymmetry against the Hessian's. Every row can fail;
a claim that does not apply to an example (TRPO's bound at gamma = 1, Kakade's identity for a linear policy, the
update's asymmetry when gamma = 1, where it is the gradient) is not listed for it, and a check that cannot decide
says so (``undecided``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from verify.app.derivation_numeric import TriState

__all__ = ["TheoryRow", "theory_rows", "TOLERANCE", "perturbation"]

TOLERANCE = 1e-9          # relative to max(1, |reference|_inf): round-off of DP sums and solves
FD_TOLERANCE = 1e-6       # central differences of exact values, eps = 1e-5 (error O(eps^2) times curvature)


@dataclass(frozen=True)
class TheoryRow(TriState):
    """One claim on one example: ``error`` = |lhs - rhs|_inf against ``tol`` (or the row's own test)."""

    claim: str
    example: str
    ok: bool | None
    message: str
    reference: str
    data: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"claim": self.claim, "example": self.example, "ok": self.ok, "passed": self.passed,
                "message": self.message, "reference": self.reference, **self.data}


def perturbation(theta: np.ndarray, size: float = 0.5) -> np.ndarray:
    """A fixed, reproducible direction for theta' = theta + delta (no random numbers: the report is a function of
    its seed only through the Monte Carlo sections)."""
    return size * np.sin(1.0 + np.arange(theta.size)).reshape(theta.shape)


def _compare(claim, example, reference, lhs, rhs, tol=TOLERANCE, what=("lhs", "rhs"), **extra) -> TheoryRow:
    lhs, rhs = np.asarray(lhs, float), np.asarray(rhs, float)
    scale = max(1.0, float(np.abs(rhs).max()) if rhs.size else 1.0)
    err = float(np.abs(lhs - rhs).max()) if lhs.size else 0.0
    ok = err <= tol * scale
    msg = f"|{what[0]} − {what[1]}|∞ = {err:.1e} {'≤' if ok else '>'} {tol * scale:.0e}"
    return TheoryRow(claim, example, ok, msg, reference,
                     {"error": err, "tol": tol * scale, "lhs": lhs.ravel().tolist(), "rhs": rhs.ravel().tolist(),
                      "lhs_is": what[0], "rhs_is": what[1], **extra})


def _central_differences(f, theta, eps: float = 1e-5) -> np.ndarray:
    flat = theta.ravel()
    out = np.empty(flat.size)
    for i in range(flat.size):
        e = np.zeros(flat.size)
        e[i] = eps
        out[i] = (f((flat + e).reshape(theta.shape)) - f((flat - e).reshape(theta.shape))) / (2 * eps)
    return out.reshape(theta.shape)


def _rows_for(name, problem) -> list[TheoryRow]:
    from verify import theory as T
    from verify.numerics.exact import finite_difference_gradient, gradient
    from verify.model.policy import TabularSoftmax

    mdp, pol = problem.mdp, problem.policy
    grad = gradient(mdp, pol).grad
    rows = [_compare("stationary_theorem", name, "Sutton et al. 2000, Thm 1", T.stationary_gradient(mdp, pol), grad,
                     what=("Σₛ ω(s) Σₐ π ψ Q", "∇J (DP or solve)"))]
    if mdp.horizon is None:
        rows.append(_compare("stationary_theorem_fd", name, "Sutton et al. 2000, Thm 1",
                             T.stationary_gradient(mdp, pol), finite_difference_gradient(mdp, pol), FD_TOLERANCE,
                             what=("1/(1 − γ) E_dγ[ψ Q]", "central differences of J")))
    F = T.fisher(mdp, pol)
    if mdp.horizon is not None and F.size <= 400:
        rows.append(_compare("fisher", name, "Kakade 2001", F.dense(), T.fisher_by_enumeration(mdp, pol),
                             what=("F by DP", "F by enumeration")))
    fit = T.compatible_features(mdp, pol)
    rows.append(_compare("compatible_features", name, "Sutton et al. 2000, Thm 2", fit.Fw, grad,
                         tol=1e-8, what=("F w", "∇J")))
    if isinstance(pol, TabularSoftmax):
        A = T.averaged_advantage(mdp, pol)
        rows.append(_compare("kakade_natural_gradient", name, "Kakade 2001, Thm 1", F.matvec(A), grad,
                             what=("F Ā", "∇J"),
                             natural_gradient=T.natural_gradient(mdp, pol).direction.ravel().tolist()))
    at_old = T.surrogate(mdp, pol, pol)
    rows.append(_compare("surrogate_gradient_at_theta_old", name, "Schulman et al. 2015, eq. (6)", at_old.grad_L, grad,
                         what=("∇L(θ_old)", "∇J(θ_old)")))
    _, g_clip = T.ppo_clip_surrogate(mdp, pol, pol)
    rows.append(_compare("ppo_clip_gradient_at_theta_old", name, "Schulman et al. 2017", g_clip, grad,
                         what=("∇L^CLIP(θ_old)", "∇J(θ_old)")))
    new = pol.with_theta(pol.theta + perturbation(pol.theta))
    away = T.surrogate(mdp, pol, new)
    fd_L = _central_differences(lambda th: T.surrogate(mdp, pol, new.with_theta(th)).L, new.theta)
    row = _compare("surrogate_gap", name, "Schulman et al. 2015", away.grad_L, fd_L, FD_TOLERANCE,
                   what=("∇L(θ′)", "central differences of L"),
                   gap=away.gap.ravel().tolist(), L=away.L, J=away.J)
    rows.append(TheoryRow(row.claim, name, row.ok,
                          f"at θ′ = θ + δ the surrogate's gradient differs from ∇J by max {np.abs(away.gap).max():.3g} "
                          f"(exact: a value of the surrogate, not a bias); ∇L itself: {row.message}",
                          row.reference, row.data))
    pd = T.performance_difference(mdp, pol, new)
    rows.append(_compare("performance_difference", name, "Kakade & Langford 2002, Lemma 6.1",
                         pd.expected_advantage, pd.difference,
                         what=("Σₜ γᵗ E_θ′[A^θ_t]", "(J(θ′) − J(θ))")))
    if mdp.gamma < 1:
        b = T.trpo_bound(mdp, pol, new)
        rows.append(TheoryRow("trpo_bound", name, b.holds,
                              f"J(θ′) = {b.J:.6g} {'≥' if b.holds else '<'} L − C·max KL = {b.bound:.6g} "
                              f"(C = {b.C:.4g}, max KL = {b.max_kl:.3g})", "Schulman et al. 2015, Thm 1", b.to_json()))
    if mdp.horizon is not None and mdp.gamma < 1 and pol.theta.size <= 64:
        c = T.check_gradient_field(mdp, pol)
        i, j = c.worst_pair()
        ok = None if c.is_gradient is None else True
        msg = (f"Jacobian of E[Σ_t ∇log π Ĝ_t] (no γ^t) is not symmetric: J[{i},{j}] = {c.jacobian[i, j]:.6g}, "
               f"J[{j},{i}] = {c.jacobian[j, i]:.6g}, max |J − Jᵀ| = {c.asymmetry:.3g} > {c.threshold:.1e} "
               f"(the Hessian of J, same differences: {c.control:.1e}); not the gradient of any function; "
               f"exact bias against ∇J: max {np.abs(c.bias).max():.3g}"
               if ok else f"undecided: max |J − Jᵀ| = {c.asymmetry:.1e} within the differencing error "
                          f"{c.threshold:.1e}")
        rows.append(TheoryRow("gamma_less_update_not_a_gradient", name, ok, msg, "Nota & Thomas 2020", c.to_json()))
    return rows


def theory_rows(examples=None, quick: bool = False) -> list[TheoryRow]:
    """Every claim on every built-in example (``quick``: the chain only, which has every claim)."""
    from verify.model.builtin import builtin_examples

    examples = builtin_examples() if examples is None else examples
    if quick:
        examples = {k: v for k, v in examples.items() if k == "chain"}
    return [row for name, problem in examples.items() for row in _rows_for(name, problem)]
