"""The estimator contract: what an estimator is, how errors name it, and the problem a check runs on.

Shared by the per-episode check (``verify.gradcheck``), the batch check (``verify.batchcheck``) and the framework
adapters (``verify.frameworks``); none of them owns it.

A **per-episode estimator** is a callable ``episodes -> array [N, *theta.shape]``: one gradient estimate
g(tau_n) per episode of a ``verify.episodes.Episodes`` batch, depending on episode n alone
(``PerEpisodeEstimator``). The catalog's estimators are score sums of per-step weights,

    g(tau) = sum_t w_t(tau) grad_theta log pi(a_t|s_t)        (Williams 1992),

and say so by carrying the weights (``StepWeighted``: ``from_weights`` builds them): the Monte Carlo run then
contracts only the rows an episode visits (``verify.episodes.step_score_rows``) instead of calling the estimator,
the same numbers at the cost of the steps taken. A user's function has no ``weights`` and is simply called.

>>> from verify.estimators import from_weights, reward_to_go
>>> rtg = from_weights(reward_to_go)
>>> isinstance(rtg, PerEpisodeEstimator), step_weights(rtg) is reward_to_go
(True, True)
>>> step_weights(lambda episodes: None) is None
True
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from verify.checks.estimators import Estimator
from verify.errors import UsageError
from verify.model.mdp import TabularMDP
from verify.model.policy import Policy, TabularSoftmax
from verify.model.problem import Problem, load_problem
from verify.numerics.episodes import Episodes

__all__ = ["EstimatorError", "PerEpisodeEstimator", "StepWeighted", "as_problem", "callable_argument", "describe",
           "name_of", "problem_argument", "problem_source", "step_weights"]


class EstimatorError(UsageError):
    """A user's estimator broke the contract: it raised, returned a non-array, a wrong shape or NaN/inf, or its
    values depend on the rest of the batch, on randomness or on padding.

    The message names the function and what it returned; an exception inside the function is chained
    (``__cause__``), so its traceback is still there for debugging.
    """


@runtime_checkable
class PerEpisodeEstimator(Protocol):
    """``episodes -> [N, *theta.shape]``: one estimate per episode, a function of that episode alone."""

    def __call__(self, episodes: Episodes) -> np.ndarray:
        """g(tau_n) for every episode n of the batch, float [N, *theta.shape]."""


@runtime_checkable
class StepWeighted(PerEpisodeEstimator, Protocol):
    """A per-episode estimator that is the score sum of per-step weights, which it exposes.

    Attributes:
      weights: ``episodes -> w`` at the batch's valid steps, float [M] in ``episodes.steps`` order (or a scalar
        for every step); the estimator's value is ``verify.episodes.step_score_sums(episodes, w)``.
    """

    weights: Callable[[Episodes], np.ndarray]


def step_weights(fn) -> Callable[[Episodes], np.ndarray] | None:
    """The per-step weights of a ``StepWeighted`` estimator (the rows-only fast path), else None."""
    return fn.weights if isinstance(fn, StepWeighted) else None


def name_of(fn) -> str:
    """How reports name an estimator: a catalog entry's name, a function's qualified name, ``partial(f)``."""
    if isinstance(fn, Estimator):
        return fn.name
    inner = getattr(fn, "func", fn)          # functools.partial
    qual = getattr(inner, "__qualname__", None) or type(inner).__name__
    return qual if inner is fn else f"partial({qual})"


def describe(obj) -> str:
    """A value as an error message shows it: an array by shape and dtype, anything else by type and short repr.

    >>> describe(np.zeros((2, 3))), describe([1, 2])
    ('an array of shape (2, 3) and dtype float64', 'list [1, 2]')
    """
    if isinstance(obj, np.ndarray):
        return f"an array of shape {obj.shape} and dtype {obj.dtype}"
    text = repr(obj)
    return f"{type(obj).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def as_problem(problem, policy: Policy | None = None, *, who: str = "check_estimator") -> Problem:
    """The Problem a check runs on: a Problem, a TabularMDP (uniform policy unless ``policy``), a built-in example
    name or an MDP file path; ``policy`` replaces the problem's own. ``who`` names the caller in errors."""
    if isinstance(problem, str) and not Path(problem).exists():
        from verify.model.builtin import EXAMPLE_NAMES, load_example
        from verify.model.lq import LQ_EXAMPLE_NAMES

        if problem in EXAMPLE_NAMES or problem in LQ_EXAMPLE_NAMES:   # the names reproduce lines print
            problem = load_example(problem)
    if isinstance(problem, (str, Path)):
        problem = load_problem(problem)
    if getattr(problem, "kind", None) == "lq":      # a verify.model.lq.LQProblem: check_estimator hands it on
        return problem
    if isinstance(problem, TabularMDP):
        problem = Problem(problem, policy if policy is not None else
                          TabularSoftmax(np.zeros((problem.n_states, problem.n_actions))))
    elif not isinstance(problem, Problem):
        raise UsageError(f"{who} needs a Problem, a TabularMDP (with policy=), a built-in example name or an MDP "
                         f"file path, got "
                         f"{describe(problem)}")
    if policy is not None and policy is not problem.policy:
        if not isinstance(policy, Policy):
            raise UsageError(f"policy must be a verify.policy.Policy, got {describe(policy)}")
        problem = Problem(problem.mdp, policy)
    return problem


def callable_argument(label: str) -> str:
    """How a reproduce line names the user's function: a local function's qualified name
    (``test.<locals>.loss``) is not an expression, its own name is."""
    return label.rsplit(".", 1)[-1] if "<locals>" in label else label


def problem_argument(given) -> str:
    """How a framework check's reproduce line names the problem: the MDP file as the user passed it, else
    ``problem`` (the object passed, by variable); never the MDP's internal name, which no loader resolves."""
    return repr(str(given)) if isinstance(given, (str, Path)) else "problem"


def problem_source(given, problem: Problem) -> str:
    """How ``reproduce`` names the problem: the file path or built-in name given, with the gamma/horizon overrides
    that turn the built-in example into ``problem``; else ``problem`` (the object passed, by variable)."""
    from verify.model.builtin import EXAMPLE_NAMES, load_example

    if isinstance(given, Path) or (isinstance(given, str) and Path(given).exists()):
        return repr(str(given))
    name = given if isinstance(given, str) else problem.mdp.name
    if name not in EXAMPLE_NAMES:
        return "problem"
    ref = load_example(name)
    same = (ref.mdp.n_states == problem.mdp.n_states and ref.mdp.n_actions == problem.mdp.n_actions
            and ref.policy.theta.shape == problem.policy.theta.shape
            and np.array_equal(ref.policy.theta, problem.policy.theta)
            and np.array_equal(ref.mdp.initial, problem.mdp.initial)
            and np.array_equal(ref.mdp.transitions, problem.mdp.transitions)
            and np.array_equal(ref.mdp.rewards, problem.mdp.rewards))
    if not same:
        return "problem"
    overrides = "".join(f", {k}={getattr(problem.mdp, k)!r}" for k in ("gamma", "horizon")
                        if getattr(problem.mdp, k) != getattr(ref.mdp, k))
    return repr(name) + overrides
