"""Shared test fixtures that are plain functions (importable: pytest puts tests/ on sys.path)."""
import contextlib
import random
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample, Unsatisfiable

from verify.estimators import ESTIMATORS
from verify.exact import finite_difference_gradient
from verify.fuzz import CLAIMS, without_local_constants
from verify.mdp import TabularMDP
from verify.moments import exact_moments_all
from verify.policy import LinearSoftmax, TabularSoftmax
from verify.strategies import problems


def random_problem(seed, S: int = 3, A: int = 2, H: int | None = 3, gamma: float = 0.9, linear: bool = False,
                   terminal: int = 1, features: int = 2, name: str = "mdp"):
    """A dense random MDP with a random tabular or linear softmax policy: (mdp, policy).

    Dirichlet rows for rho0 and P, standard normal rewards r[s, a, s'], the last ``terminal`` states terminal (at
    most S - 1 of them), normal theta (and features [S, A, ``features``] for a linear policy).

    Args:
      seed: an int or a ``numpy.random.Generator`` to draw from.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    mask = np.zeros(S, dtype=bool)
    mask[S - min(terminal, S - 1):] = True
    mdp = TabularMDP(initial=rng.dirichlet(np.ones(S)), transitions=rng.dirichlet(np.ones(S), size=(S, A)),
                     rewards=rng.normal(size=(S, A, S)), terminal=mask, gamma=gamma, horizon=H, name=name)
    if linear:
        return mdp, LinearSoftmax(rng.normal(size=(S, A, features)), rng.normal(size=features))
    return mdp, TabularSoftmax(rng.normal(size=(S, A)))


def assert_same_bits(x, y):
    """x and y have the same shape, dtype and bytes; otherwise fail at once naming the first differing entry.

    (A plain ``x.tobytes() == y.tobytes()`` makes pytest diff megabytes of bytes with difflib: minutes.)
    """
    x, y = np.asarray(x), np.asarray(y)
    assert x.shape == y.shape, f"shapes differ: {x.shape} vs {y.shape}"
    assert x.dtype == y.dtype, f"dtypes differ: {x.dtype} vs {y.dtype}"
    xb = x.reshape(-1).view(np.uint8).reshape(x.size, -1) if x.size else x.reshape(0, 0)
    yb = y.reshape(-1).view(np.uint8).reshape(y.size, -1) if y.size else y.reshape(0, 0)
    differ = np.flatnonzero((np.ascontiguousarray(xb) != np.ascontiguousarray(yb)).any(axis=1)) if x.size else []
    if len(differ):
        i = tuple(int(k) for k in np.unravel_index(int(differ[0]), x.shape))
        raise AssertionError(f"{len(differ)} of {x.size} entries differ in their bits; first at index {i}: "
                             f"{x[i].item()!r} vs {y[i].item()!r}")


# --- mutation score: the catalog's pitfalls are mutants of the correct estimator ----------------------------------
# Used by tests/test_mutation.py and benchmarks/mutation_score.py (which puts tests/ on sys.path).

FD_BIAS_RTOL = 1e-6     # finite differences are good to ~1e-9 here; a gap above this fraction of the scale is bias


def mutation_space():
    """Problems for the mutation score: rewards present and |theta| <= 3, so most biases are far from round-off
    (near-deterministic policies make gradients, hence most biases, vanish like exp(-|theta|))."""
    return problems(reward_kind=st.sampled_from(["state_action", "transition"]), max_abs_theta=3.0)


@dataclass(frozen=True)
class MutantScore:
    """How one estimator fared on a sample of problems.

    Attributes:
      estimator: its name; unbiased: the catalog's label (unbiased estimators are the control group).
      problems: problems tried; biased: where |E[g] - grad J| exceeds FD_BIAS_RTOL of the scale, grad J by
        finite differences of J (no score code involved); caught: where the fuzzer's ``unbiased:`` claim check
        failed; missed: biased but not caught (must be 0).
    """

    estimator: str
    unbiased: bool
    problems: int
    biased: int
    caught: int
    missed: int

    @property
    def killed(self) -> bool:
        return self.caught > 0


def generated_problems(n: int, *, seed: int = 0, space=None) -> list:
    """``n`` problems drawn by Hypothesis from ``space`` (default ``problems()``); deterministic in ``seed``."""
    out: list = []

    def collect(problem) -> bool:
        out.append(problem)
        return len(out) >= n

    config = settings(settings.get_profile("default"), database=None, derandomize=False, max_examples=10 * n,
                      deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    with contextlib.suppress(NoSuchExample, Unsatisfiable), without_local_constants():
        find(problems() if space is None else space, collect, settings=config, random=random.Random(seed))
    return out[:n]


def mutation_score(sample, estimators=None) -> list[MutantScore]:
    """Run every estimator's ``unbiased:`` claim check on every problem, against finite-difference ground truth.

    Returns:
      One MutantScore per estimator, in catalog order.
    """
    estimators = ESTIMATORS if estimators is None else estimators
    counts = {e.name: [0, 0, 0] for e in estimators}
    for problem in sample:
        mdp, pol = problem.mdp, problem.policy
        fd = finite_difference_gradient(mdp, pol)
        moments = exact_moments_all(estimators, mdp, pol)
        for e in estimators:
            m = moments[e.name]
            biased = np.abs(m.mean - fd).max() > FD_BIAS_RTOL * max(m.scale, 1.0)
            caught = not CLAIMS[f"unbiased:{e.name}"].check(mdp, pol).holds
            c = counts[e.name]
            c[0] += int(biased)
            c[1] += int(caught)
            c[2] += int(biased and not caught)
    return [MutantScore(e.name, e.unbiased, len(sample), *counts[e.name]) for e in estimators]
