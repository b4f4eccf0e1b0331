"""The exact gradient cross-checked: every exact method pgverify has (enumeration, DP or a linear solve) against
each other and against central finite differences of J, for ``pgverify check`` and the report.

A disagreement beyond ``GRADIENT_TOL`` plus the differences' round-off means one of the exact methods is wrong, so
every Monte Carlo verdict measured against it would be too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verify.checks.moments import ENUMERATION_LIMIT, magnitude, try_enumerate
from verify.model.problem import Problem
from verify.numerics.exact import directional_derivatives, finite_difference_gradient, gradient

__all__ = ["FD_DIRECTIONS", "FD_MAX_COMPONENTS", "GRADIENT_TOL", "GradientCheck", "exact_cross_check"]

FD_MAX_COMPONENTS = 64     # check: central differences per component up to this size, along directions beyond
FD_DIRECTIONS = 8          # random unit directions (besides grad J's own) for the directional check
FD_ROUNDOFF = 10 * 2.3e-16 / 1e-5   # central differences (eps = 1e-5): round-off per unit of the problem's magnitude
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


def exact_cross_check(problem: Problem):
    """grad J by DP (finite horizon) or a linear solve, by enumeration when feasible, and by finite differences.

    Enumerates only up to ENUMERATION_LIMIT trajectories, so it also serves problems such as FrozenLake with
    H = 100.
    """
    mdp, policy = problem.mdp, problem.policy
    methods = ["dp"] if mdp.horizon is not None else ["solve"]
    if try_enumerate(mdp, policy, max_trajectories=ENUMERATION_LIMIT) is not None:
        methods.insert(0, "enumerate")
    results = [gradient(mdp, policy, m) for m in methods]
    grads = [r.grad for r in results]
    diff = max(float(np.abs(g - grads[0]).max()) for g in grads)
    g = grads[0].ravel()
    if g.size <= FD_MAX_COMPONENTS:
        diff = max(diff, float(np.abs(finite_difference_gradient(mdp, policy).ravel() - g).max()))
        label = "finite differences"
    else:
        # Two J evaluations per direction instead of per component (Taxi: 3000): grad J's own direction and
        # FD_DIRECTIONS random unit vectors, each compared with grad J . v.
        V = np.random.default_rng(0).standard_normal((FD_DIRECTIONS, g.size))
        V = np.vstack([g / max(float(np.linalg.norm(g)), 1e-300), V / np.linalg.norm(V, axis=1, keepdims=True)])
        diff = max(diff, float(np.abs(directional_derivatives(mdp, policy, V) - V @ g).max()))
        label = f"finite differences along {len(V)} directions"
    # Central differences of J lose about eps_machine |J| / eps to cancellation: |J| ~ 771 on Taxi gives 1e-8 alone.
    tol = GRADIENT_TOL + FD_ROUNDOFF * magnitude(mdp, policy)
    return GradientCheck(mdp.name, results[0].J, (*methods, label), diff, tol)
