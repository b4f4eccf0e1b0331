r"""Check your own Gaussian-policy estimator on an LQ problem, where grad J is exact.

The contract mirrors ``verify.checks.gradcheck``'s: ``fn(episodes) -> array [N, d]``, one gradient estimate per episode
in theta's order [K (m x n, row-major), k (m), log_std (m)] (``episodes.flatten(g_K, g_k, g_log_std)`` builds it),
with ``episodes`` a ``verify.checks.lq_mc.LQEpisodes`` batch: ``x_t`` [N, T + 1, n], ``u_t`` [N, T, m] (the Gaussian
controls the plant received), ``r_t`` [N, T] (undiscounted), ``problem`` (``K``, ``k``, ``sigma``, ``gamma``).
g(tau_n) must depend on episode n alone (probed: the first half of a batch, evaluated alone, gives the same rows).

The verdict follows ``verify.checks.lq_mc.run_lq_mc``: the Monte Carlo mean against the exact grad J, unpaired and paired
with the exact-value-baseline estimator on the same episodes (the more powerful decides); "consistent" states the
smallest bias the run detects, an estimator that is wrong is matched against the named pitfalls, with the fix.

>>> from verify.model.lq import load_lq_example
>>> from verify.checks.lq_mc import score_sums
>>> from verify.numerics.returns import reward_to_go
>>> def my_reinforce(episodes):
...     return score_sums(episodes, reward_to_go(episodes.r_t, episodes.gamma))
>>> check_lq_estimator(my_reinforce, load_lq_example("lq1d"), episodes=4000).verdict
'consistent'
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from verify.errors import UsageError
from verify.model.lq import LQ_EXAMPLE_NAMES, LQProblem, load_lq_example
from verify.checks.lq_mc import DEFAULT_ALPHA, DEFAULT_EPISODES, LQMcResult, lq_episodes_for, run_lq_mc, sample_lq

__all__ = ["LQEstimatorCheck", "as_lq_problem", "assert_lq_estimator_unbiased", "check_lq_estimator"]

PROBE_EPISODES = 64
PROBE_RTOL = 1e-9


@dataclass(frozen=True, eq=False)
class LQEstimatorCheck:
    """The outcome of ``check_lq_estimator``: ``verdict`` ("consistent", "inconsistent" or "undecided"),
    ``passed``, ``matches`` (pitfall, fix) pairs, ``reproduce``, and the underlying ``mc`` (``LQMcResult``)."""

    estimator: str
    problem: str
    reproduce: str
    mc: LQMcResult = dataclasses.field(repr=False)

    @property
    def verdict(self) -> str:
        return self.mc.verdict

    @property
    def passed(self) -> bool:
        return self.mc.passed

    @property
    def matches(self) -> tuple[tuple[str, str], ...]:
        return self.mc.matches

    def format(self) -> str:
        from verify.checks.lq_text import format_lq_mc

        return format_lq_mc(self.mc, self.reproduce)

    def to_json(self) -> dict:
        return {**self.mc.to_json(), "passed": self.passed, "reproduce": self.reproduce}


def as_lq_problem(problem) -> LQProblem | None:
    """``problem`` as an LQProblem when it is one or names a built-in LQ example; None otherwise."""
    if isinstance(problem, LQProblem):
        return problem
    if isinstance(problem, str) and problem in LQ_EXAMPLE_NAMES:
        return load_lq_example(problem)
    return None


def _probe(fn, lq: LQProblem, seed: int, name: str) -> None:
    from verify.checks.contract import EstimatorError

    batch = sample_lq(lq, PROBE_EPISODES, np.random.default_rng([seed, 7]), horizon=lq_episodes_for(lq))
    try:
        full = np.asarray(fn(batch), dtype=float)
        half = np.asarray(fn(batch.take(slice(0, PROBE_EPISODES // 2))), dtype=float)
    except Exception as exc:  # noqa: BLE001 - the user's code: reported as what it is, one line
        raise EstimatorError(f"estimator {name} raised {type(exc).__name__}: {exc}") from exc
    if full.shape != (PROBE_EPISODES, lq.d):
        raise EstimatorError(f"estimator {name} returned shape {list(full.shape)}, expected [N, d] = "
                             f"[{PROBE_EPISODES}, {lq.d}] (one flat estimate per episode: K, k, log_std)")
    if not np.all(np.isfinite(full)):
        raise EstimatorError(f"estimator {name} returned non-finite values")
    scale = max(float(np.abs(full).max(initial=0.0)), 1e-300)
    if half.shape != full[:PROBE_EPISODES // 2].shape or \
            np.abs(half - full[:PROBE_EPISODES // 2]).max() > PROBE_RTOL * scale:
        raise EstimatorError(f"estimator {name} is not per-episode: the first {PROBE_EPISODES // 2} episodes give "
                             "other rows alone than inside the batch (batch statistics or randomness); its "
                             "estimates are not i.i.d.")


def check_lq_estimator(fn: Callable, problem, *, episodes: int = DEFAULT_EPISODES, seed: int = 0,
                       alpha: float = DEFAULT_ALPHA, name: str | None = None, gamma: float | None = None,
                       horizon=...) -> LQEstimatorCheck:
    """Test whether ``fn`` estimates grad J without bias on an LQ problem (contract: module docstring).

    Args:
      problem: an ``LQProblem`` or a built-in LQ example's name ("lq2d").
      episodes, seed, alpha: the Monte Carlo run (deterministic for a seed).
      gamma, horizon: override the problem's.

    Raises:
      EstimatorError: ``fn`` raises, returns a wrong shape or non-finite values, or is not per-episode.
    """
    lq = as_lq_problem(problem)
    if lq is None:
        raise UsageError(f"check_lq_estimator needs an LQProblem or an LQ example name, got {type(problem).__name__}")
    changes = {k: v for k, v in (("gamma", gamma), ("horizon", horizon)) if v is not ... and
               not (k == "gamma" and v is None)}
    if changes:
        lq = lq.replace(**changes)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}")
    if not callable(fn):
        from verify.checks.contract import EstimatorError

        raise EstimatorError(f"the estimator must be callable, got {type(fn).__name__}")
    label = name or getattr(fn, "__name__", "estimator")
    _probe(fn, lq, int(seed), label)
    mc = run_lq_mc(lq, fn, episodes=episodes, seed=int(seed), alpha=alpha, name=label)
    source = repr(problem) if isinstance(problem, str) else "problem"
    call = f"check_estimator({label}, {source}, episodes={episodes}, seed={seed}, alpha={alpha!r})"
    return LQEstimatorCheck(label, lq.name, call, mc)


def assert_lq_estimator_unbiased(fn: Callable, problem, **settings) -> LQEstimatorCheck:
    """``check_lq_estimator`` that raises ``AssertionError`` (with the report) unless the verdict is consistent."""
    check = check_lq_estimator(fn, problem, **settings)
    if not check.passed:
        raise AssertionError(check.format())
    return check
