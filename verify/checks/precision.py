r"""Precision as an input: the floating-point type a user's code computes in, and the round-off it allows.

An exact verdict compares E[g] with grad J "to round-off". In float64 that is ``moments.ZERO_BIAS_RTOL`` (1e-9)
of the problem's scale; a correct estimator computed in float32 misses grad J by ~1e-8 of it (the rounding of
gamma^t, of the cumulative sums, of the score contraction), and a float64 tolerance would "prove" that round-off
a bias. So the tolerance follows the precision actually used:

    rtol = max(ZERO_BIAS_RTOL, ROUNDOFF_FACTOR * eps(dtype) * steps)

with eps the type's machine epsilon (2^-23 for float32) and ``steps`` the problem's effective number of steps
(``effective_steps``: a sum over T terms rounds T times). ROUNDOFF_FACTOR = 64 leaves room for the worst
accumulations seen (float32 estimators on the built-in examples and on ``problems()`` miss E[g] by at most ~4
eps steps of the scale; ``tests/test_precision.py``), and keeps every catalog pitfall far above it (the smallest
exact bias of a pitfall on the built-in examples is ~1e-2 of the scale).

Where the tolerance is wider than float64's, what can be decided is limited: a bias smaller than it cannot be
told from round-off. The verdicts then say so, and how to compute in float64 (``Precision.advice``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verify.checks.moments import ZERO_BIAS_RTOL, magnitude

__all__ = ["FLOAT64", "ROUNDOFF_FACTOR", "Precision", "effective_steps", "precision_of"]

ROUNDOFF_FACTOR = 64.0
EPS = {"float64": float(np.finfo(np.float64).eps), "float32": float(np.finfo(np.float32).eps),
       "float16": float(np.finfo(np.float16).eps), "bfloat16": 2.0 ** -7}
_RANK = {"float64": 0, "float32": 1, "bfloat16": 2, "float16": 3}
ADVICE = {"numpy": "return float64 (np.float64; arr.astype(np.float64))",
          "torch": "call torch.set_default_dtype(torch.float64) before the check, or pass dtype=torch.float64 to the "
                   "tensors your loss creates (torch.arange, torch.tensor, torch.zeros)",
          "jax": "compute in float64 (jax.config.update('jax_enable_x64', True), which pgverify sets, and no "
                 ".astype(jnp.float32) / dtype=jnp.float32 in the loss)"}


def dtype_name(dtype) -> str:
    """"float64", "float32", "float16" or "bfloat16" for a numpy, torch or jax dtype (float64 for integers)."""
    text = str(dtype).rsplit(".", 1)[-1]
    if text in EPS:
        return text
    try:
        kind = np.dtype(dtype)
    except TypeError:
        return "float64"
    return kind.name if kind.kind == "f" and kind.name in EPS else "float64"


def effective_steps(mdp, policy) -> float:
    """The problem's effective number of steps: ``moments.magnitude`` divided by max |r| (at least 1)."""
    r = float(np.abs(mdp.successors.reward).max(initial=0.0))
    return max(1.0, magnitude(mdp, policy) / r) if r > 0 else 1.0


@dataclass(frozen=True)
class Precision:
    """The floating-point type a computation used, where that was read, and the zero-bias tolerance it allows.

    Attributes:
      dtype: "float64", "float32", "float16" or "bfloat16".
      source: what showed it (e.g. "the estimator returns float32").
      steps: the problem's effective number of steps (``effective_steps``).
      framework: "numpy", "torch" or "jax": whose advice ``advice`` gives.
    """

    dtype: str = "float64"
    source: str = ""
    steps: float = 1.0
    framework: str = "numpy"

    @property
    def eps(self) -> float:
        return EPS[self.dtype]

    @property
    def rtol(self) -> float:
        """The zero-bias tolerance relative to the problem's scale."""
        return max(ZERO_BIAS_RTOL, ROUNDOFF_FACTOR * self.eps * max(self.steps, 1.0))

    @property
    def limited(self) -> bool:
        """The precision, not float64's round-off, sets what an exact verdict can decide."""
        return self.rtol > ZERO_BIAS_RTOL

    @property
    def advice(self) -> str:
        return ADVICE[self.framework]

    def describe(self, scale: float | None = None, bias: float | None = None) -> str:
        """One sentence: the precision used, the tolerance it allows and, when limited, how to switch to float64."""
        tol = f"{self.rtol:.2g} of the problem's scale" + ("" if scale is None else f" = {self.rtol * scale:.2g}")
        if not self.limited:
            return f"precision: {self.dtype} ({self.source or 'default'}); round-off tolerance {tol}"
        seen = "" if bias is None else f"; this run's exact max|bias| {bias:.2g} is within it" if (
            scale is not None and bias <= self.rtol * scale) else f"; this run's exact max|bias| {bias:.2g} is above it"
        return (f"precision: {self.dtype} ({self.source}): exact comparisons allow {self.dtype} round-off, "
                f"{tol} ({ROUNDOFF_FACTOR:g} x eps {self.eps:.2g} x {self.steps:.3g} steps){seen}; a bias below "
                f"that cannot be told from round-off at {self.dtype}. To decide down to float64's "
                f"{ZERO_BIAS_RTOL:g}: {self.advice}")

    def to_json(self) -> dict:
        return {"dtype": self.dtype, "source": self.source, "steps": self.steps, "rtol": self.rtol,
                "limited": self.limited}

    def coarser(self, other: "Precision") -> "Precision":
        """The less precise of the two (the one whose round-off dominates)."""
        return other if _RANK[other.dtype] > _RANK[self.dtype] else self


FLOAT64 = Precision()


def precision_of(dtypes, mdp, policy, *, source: str, framework: str = "numpy") -> Precision:
    """The coarsest floating type among ``dtypes`` (numpy/torch/jax dtypes or names) for a problem."""
    names = [dtype_name(d) for d in dtypes] or ["float64"]
    worst = max(names, key=_RANK.__getitem__)
    return Precision(worst, source.format(dtype=worst), effective_steps(mdp, policy), framework)
