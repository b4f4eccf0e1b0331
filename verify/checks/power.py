"""What a sampled run could have seen: power relative to grad J, the episodes a decided verdict needs, rare states.

A Monte Carlo "consistent" is worth the smallest bias the run could have detected. ``verify.checks.mc`` runs two tests on
one sample (unpaired: E[g] = grad J; paired: E[g - g_ref] = 0), each at level alpha / 2 (Bonferroni over the two),
so a bias is seen when either test sees it: per component, the detectable bias of the run is the smaller of the two
tests' (``combined_detectable``). "consistent" is then earned only when that is at most ``resolution`` x max |grad J|
in *every* component (``resolved``); a component no test could examine (too few or too one-sided values: the tail
rule of ``verify.checks.stats``) is blind, so a run with one is undecided, and ``episodes_for`` says how many episodes would
decide it. ``rare_components`` names the components where the paired difference is non-zero but too rare to test:
the estimator differs from the reference there, and the run cannot say by how much.

``scaling_errors`` states the power for the bug users have more often than a constant shift: g -> (1 + x) g
(a missing or extra factor) has bias x grad J, detected when x |grad J_i| exceeds the detectable bias somewhere.

Computes only; ``verify.app.render`` words it. Imports ``stats`` and nothing of MDPs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verify.checks.stats import ConsistencyResult, detectable_bias, episodes_needed

__all__ = ["DEFAULT_RESOLUTION", "RareComponent", "combined_detectable", "episodes_for", "rare_components",
           "resolved", "scaling_errors", "structural"]

DEFAULT_RESOLUTION = 0.1     # "consistent" needs the power to see a bias of 10 % of max |grad J| in every component


def _decided(tests) -> list[ConsistencyResult]:
    return [t for t in tests if t is not None and not t.undecided]


def combined_detectable(tests, target_power: float) -> np.ndarray | None:
    """Per component, the smallest bias one of ``tests`` detects with probability ``target_power`` (inf where no
    test sees the component); None when every test is undecided."""
    decided = _decided(tests)
    if not decided:
        return None
    return np.minimum.reduce([detectable_bias(t, target_power) for t in decided])


def structural(tests, grad: np.ndarray) -> np.ndarray:
    """Components where no estimate varied in any test and grad J is exactly 0: terminal or unreachable states,
    where no score-function estimator has anything to say (bool, grad's shape). The resolution leaves them out."""
    varied = np.logical_or.reduce([np.asarray(t.stderr) > 0 for t in tests if t is not None])
    return ~varied & (np.asarray(grad) == 0)


def resolved(detectable: np.ndarray | None, grad: np.ndarray, resolution: float,
             ignore: np.ndarray | None = None) -> bool:
    """Whether every component's detectable bias (but those in ``ignore``) is at most ``resolution`` x max |grad J|.

    >>> resolved(np.array([0.05, 0.09]), np.array([1.0, -0.2]), 0.1), resolved(np.array([0.05, np.inf]),
    ...                                                                       np.array([1.0, 0.0]), 0.1)
    (True, False)
    """
    if detectable is None:
        return False
    ok = detectable <= resolution * float(np.abs(grad).max(initial=0.0))
    return bool(np.all(ok if ignore is None else ok | ignore))


def episodes_for(tests, size: float, target_power: float, ignore: np.ndarray | None = None) -> int | None:
    """Episodes at which every component could be examined and a bias of ``size`` in any one of them is detected
    with probability ``target_power`` by one of ``tests``; None when no test has any power (nothing varies).

    Per test and component: the episodes the tail rule needs (``ConsistencyResult.episodes_to_test``), and those
    that bring the component's detectable bias down to ``size`` (``stats.episodes_needed`` on its per-episode
    standard deviation); on a component that never varied, the episodes that bring the zero-variance allowance
    (about 1/N) down to ``size``; the best test per component, the worst component (but ``ignore``) overall.
    """
    decided = [t for t in tests if t is not None and np.any(t.stderr > 0)]
    if not decided or not size > 0:
        return None
    per_test = []
    for t in decided:
        sd = np.asarray(t.stderr, dtype=float) * np.sqrt(t.n)
        dof = max(int(np.count_nonzero(sd)), 1)
        nc = episodes_needed(1.0, dof, t.alpha, target_power, test=t.test)    # N at effect size 1
        with np.errstate(divide="ignore"):
            need = np.where(sd > 0, np.ceil(nc * (sd / size) ** 2), float(t.n))
        flat = np.ceil(t.n * max(t.null_tolerance / size, 1.0))
        per_test.append(np.where(sd > 0, np.maximum(need, t.episodes_to_test()), flat))
    need = np.minimum.reduce(per_test)
    if ignore is not None:
        need = np.where(ignore, 0.0, need)
    worst = float(need.max(initial=0.0))
    return None if not np.isfinite(worst) else int(max(worst, 2))


@dataclass(frozen=True)
class RareComponent:
    """A component where g differs from the reference in too few (or too one-sided) episodes to test."""

    index: tuple[int, ...]
    episodes: int           # episodes with a non-zero difference there
    mean: float             # mean of g - g_ref there (over all n episodes)
    n: int                  # the run's episodes
    episodes_needed: int    # about how many episodes would make it testable

    @property
    def visits_needed(self) -> int:
        """Episodes with a non-zero difference there that the tail rule asks for (they grow with the episodes)."""
        return int(np.ceil(self.episodes * self.episodes_needed / max(self.n, 1)))


def rare_components(paired: ConsistencyResult | None, limit: int | None = 3) -> list[RareComponent]:
    """Components where the paired difference g - g_ref is non-zero but left out of the test (the tail rule),
    largest |mean difference| first (at most ``limit``; None: all)."""
    if paired is None or paired.nonzero is None:
        return []
    rare = paired.few & (paired.nonzero > 0)
    if not rare.any():
        return []
    idx = np.argwhere(rare)
    order = np.argsort(-np.abs(paired.mean[rare]), kind="stable")[:limit]
    need = paired.episodes_to_test()
    return [RareComponent(tuple(int(i) for i in idx[k]), int(paired.nonzero[tuple(idx[k])]),
                          float(paired.mean[tuple(idx[k])]), paired.n, int(min(need[tuple(idx[k])], 2**62)))
            for k in order]


def scaling_errors(detectable: np.ndarray | None, grad: np.ndarray) -> tuple[float, float]:
    """(x_all, x_top): the smallest relative scaling g -> (1 + x) g of the whole gradient that the run detects
    (bias x grad J, seen where x |grad J_i| >= detectable_i), and of the largest |grad J| component alone; inf
    without power.

    >>> scaling_errors(np.array([0.1, 0.1]), np.array([2.0, 0.5]))
    (0.05, 0.05)
    """
    if detectable is None:
        return float("inf"), float("inf")
    g = np.abs(np.asarray(grad, dtype=float)).ravel()
    d = np.asarray(detectable, dtype=float).ravel()
    big = g > 0
    if not big.any():
        return float("inf"), float("inf")
    x_all = float(np.min(d[big] / g[big]))
    top = int(np.argmax(g))
    return x_all, float(d[top] / g[top])
