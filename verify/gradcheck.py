r"""Check your own estimator: a gradcheck for REINFORCE implementations.

``torch.autograd.gradcheck`` compares a deterministic gradient with finite differences. An estimator is random,
so "is my REINFORCE code right?" means: is E[g(tau)] = grad J(theta)? ``check_estimator`` answers that on a
tabular MDP whose grad J pgverify knows exactly, two ways:

- **Exact.** When the MDP is small (finite horizon, at most ``mc.ENUMERATION_LIMIT`` trajectories) your function
  is evaluated on every trajectory, weighted by p(tau|theta): E[g] is known exactly, so a bias is *proved*, not
  only suspected, however small, and an unbiased estimator never fails. This decides the verdict: "biased" when
  the exact bias exceeds float round-off (1e-9 of the problem's scale), else "consistent".
- **Monte Carlo.** Sample episodes, average your per-episode estimates and test the mean against the exact grad
  J (``stats.consistency_test``: chi^2 with the exact covariance when the trajectories can be enumerated, a test
  on the sample (co)variance otherwise). Always reported (it is what your training loop sees); it decides the
  verdict only when nothing can be enumerated, together with a paired test of E[g - g_ref] = 0 against a
  catalog control on the same episodes (``verify.checks.mc``): the more powerful of the two decides, "inconsistent" when
  its p <= alpha, "undecided" when the sample has no variance (never a pass). Every result states its power.

When a bias is proved, the catalog pitfalls (``pgverify estimators``) whose exact mean equals yours on this MDP
are named: that usually says which bug it is.

The estimator contract
----------------------
An estimator is a function ``fn(episodes) -> array [N, *theta.shape]``: one gradient estimate g(tau_n) per
episode (not the batch mean; the Monte Carlo estimate is the mean of the rows). ``episodes`` is a
``verify.numerics.episodes.Episodes`` batch, the arrays the built-in catalog uses:

- ``episodes.s_t`` int [N, T+1], ``episodes.a_t`` int [N, T], ``episodes.r_t`` float [N, T]: the reward of step t
  is r(s_t, a_t, s_{t+1}), undiscounted; ``episodes.lengths`` int [N]: episode n took ``lengths[n]`` actions.
- Steps t >= lengths[n] are padding (action 0, reward 0, the final state) and must not count:
  ``episodes.mask`` (bool [N, T]) is ``t < lengths[n]``. T differs between batches.
- ``episodes.policy.score(s, a)``: grad_theta log pi(a|s) for index arrays of one shape B, [*B, *theta.shape];
  ``episodes.policy.probs`` [S, A]; ``episodes.policy.theta``.
- ``episodes.mdp.gamma``: the discount; the objective is J = E[sum_t gamma^t r_t].
- The arrays are read-only; ``episodes.weights`` is pgverify's (p(tau) on the enumeration, else None): ignore it.

g(tau_n) must depend on episode n alone and deterministically: no batch statistics (return normalisation), no
internal randomness. Then the estimates are i.i.d. and their exact mean is a sum over trajectories. This is probed
before the run (the same episodes in a smaller batch, and with less padding, must give the same rows). Compute
in float64: the exact comparison allows float64 round-off (1e-9 of the problem's scale), not float32's. The output
may be any array type numpy converts (a CPU torch tensor without grad works), but not a list or a scalar.

Many generated examples: false alarms
-------------------------------------
On an enumerable problem (``problems()``' default horizons 1..4 all are) there are none: the verdict is exact.
Otherwise each call's false-alarm probability is alpha, the level of the Monte Carlo test, and over k examples,
as with ``@given(problems(...))``, the probability of any false alarm is at most k * alpha (a union bound; it
holds however the examples depend on each other). The default alpha = 1e-3 with the ``ci`` profile's 25
examples gives <= 2.5%; for hundreds or thousands of examples pass alpha = 1e-4 or 1e-5 (the detectable effect
grows only slowly as alpha shrinks). The level is asymptotic: an action of probability near or below 1/N is
missing from the sample or under-represented in it, the sample covariance then misses its direction, and the
test can reject an unbiased estimator (seen with horizon null and near-deterministic policies; linear policies
reach them even with small theta, their features multiply it). ``problems(horizon=None,
kind="tabular_softmax", max_abs_theta=1.0)`` with a few thousand episodes stays clear of it. Each check is
deterministic for its seed, so Hypothesis replays a failing example, false alarm or not, exactly: rerun it with
another ``seed`` to tell the two apart.

>>> from verify.model.builtin import builtin_examples
>>> from verify.numerics.episodes import reward_to_go, score_sums
>>> def my_reinforce(episodes):                      # sum_t grad log pi(a_t|s_t) sum_{t'>=t} gamma^t' r_t'
...     return score_sums(episodes, reward_to_go(episodes))
>>> check = check_estimator(my_reinforce, builtin_examples()["chain"], episodes=2000)
>>> check.verdict, check.passed, bool(abs(check.exact_bias).max() < 1e-12)
('consistent', True, True)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from verify.numerics.episodes import Episodes
from verify.errors import UsageError
from verify.checks.estimators import ESTIMATORS, Estimator
from verify.checks.mc import (
    DEFAULT_ALPHA,
    DEFAULT_RESOLUTION,
    DEFAULT_EPISODES,
    McResult,
    component_name,
    run_mc,
)
from verify.model.mdp import TabularMDP
from verify.checks.moments import ZERO_BIAS_RTOL, exact_moments_all
from verify.model.policy import Policy, TabularSoftmax
from verify.model.problem import Problem, load_problem
from verify.numerics.sampler import sample_episodes

__all__ = ["EstimatorCheck", "EstimatorError", "Undecided", "as_estimator", "assert_estimator_unbiased",
           "check_estimator"]

PROBE_EPISODES = 64     # the contract probe's batch (its first half is re-evaluated alone)
PROBE_RTOL = 1e-9       # a vectorised fn may round differently in another batch size; a batch statistic moves far more



class EstimatorError(UsageError):
    """A user's estimator broke the contract: it raised, returned a non-array, a wrong shape or NaN/inf, or its
    values depend on the rest of the batch, on randomness or on padding.

    The message names the function and what it returned; an exception inside the function is chained
    (``__cause__``), so its traceback is still there for debugging.
    """


class Undecided(AssertionError):
    """``assert_estimator_unbiased`` could not decide: no test rejected, but the run lacked the power to see a bias
    of the tolerance (``resolution`` x max |grad J|) in every component. An ``AssertionError``, so a test fails
    rather than passing silently; the message states the episodes a decided run needs (``episodes_needed``).
    """

    def __init__(self, message: str, check: "EstimatorCheck"):
        super().__init__(message)
        self.check = check
        self.episodes_needed = check.mc.episodes_to_resolve()


# --- the contract: wrapping and validating the user's function ------------------------------------------------------

def _name_of(fn) -> str:
    if isinstance(fn, Estimator):
        return fn.name
    inner = getattr(fn, "func", fn)          # functools.partial
    qual = getattr(inner, "__qualname__", None) or type(inner).__name__
    return qual if inner is fn else f"partial({qual})"


def _describe(obj) -> str:
    if isinstance(obj, np.ndarray):
        return f"an array of shape {obj.shape} and dtype {obj.dtype}"
    text = repr(obj)
    return f"{type(obj).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _read_only(episodes: Episodes) -> Episodes:
    """The same batch with non-writable views: a function that edits its input would corrupt later estimators."""
    def ro(arr):
        if arr is None:
            return None
        view = arr.view()
        view.setflags(write=False)
        return view
    return Episodes(ro(episodes.s_t), ro(episodes.a_t), ro(episodes.r_t), ro(episodes.lengths), episodes.mdp,
                    episodes.policy, ro(episodes.weights))


def _validate_output(out, name: str, episodes: Episodes) -> np.ndarray:
    theta_shape = episodes.policy.theta.shape
    shape = (episodes.n, *theta_shape)
    wanted = f"an array of shape {shape} = [N, *theta.shape] (N = {episodes.n} episodes, theta {theta_shape})"
    if np.isscalar(out) or not (isinstance(out, np.ndarray) or hasattr(out, "__array__")):
        raise EstimatorError(f"estimator {name} returned {_describe(out)}, not an array; the contract asks for "
                             f"{wanted}")
    try:
        arr = np.asarray(out)
    except Exception as exc:  # noqa: BLE001 - e.g. a tensor that still requires grad
        raise EstimatorError(f"estimator {name} returned {type(out).__name__}, which numpy cannot convert "
                             f"({type(exc).__name__}: {exc}); return {wanted}") from exc
    if arr.dtype.kind not in "biuf":
        raise EstimatorError(f"estimator {name} returned an array of dtype {arr.dtype}; the contract asks for real "
                             f"numbers, {wanted}")
    if arr.shape != shape:
        hint = ""
        if arr.shape == theta_shape:
            hint = ": that is theta's shape; return one estimate per episode, not their mean"
        elif arr.size == episodes.n * int(np.prod(theta_shape)):
            hint = ": the right number of entries; reshape to [N, *theta.shape]"
        raise EstimatorError(f"estimator {name} returned shape {arr.shape}, expected {wanted}{hint}")
    arr = arr.astype(float, copy=False)
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        idx = tuple(int(i) for i in bad[0])
        raise EstimatorError(f"estimator {name} returned {arr[idx]} for episode {idx[0]}, "
                             f"theta[{', '.join(map(str, idx[1:]))}] ({len(bad)} non-finite entries); every "
                             "estimate must be finite")
    return arr


def as_estimator(fn: Callable[[Episodes], np.ndarray] | Estimator, *, name: str | None = None) -> Estimator:
    """Wrap a contract function as an ``Estimator`` whose calls validate what it returns.

    The wrapper hands ``fn`` read-only views of the batch and turns every contract violation into an
    ``EstimatorError``; it can go wherever a catalog estimator goes (``mc.run_estimators``,
    ``moments.exact_moments``).

    Args:
      fn: ``episodes -> [N, *theta.shape]`` (see the module docstring), or a catalog ``Estimator``.
      name: how reports name it (default: the function's qualified name).

    Returns:
      An ``Estimator`` with ``unbiased=True`` (the claim under test) and ``batch_dependent=False`` (the contract).

    Raises:
      EstimatorError: ``fn`` is not callable; later, from the wrapper, on a violation.

    >>> est = as_estimator(lambda episodes: np.zeros(3), name="too_short")
    >>> from verify.model.builtin import builtin_examples
    >>> from verify.numerics.exact import enumerate_trajectories
    >>> bandit = builtin_examples()["bandit"]
    >>> est(enumerate_trajectories(bandit.mdp, bandit.policy))
    Traceback (most recent call last):
    ...
    verify.checks.gradcheck.EstimatorError: estimator too_short returned shape (3,), expected an array of shape (3, 1, 3) \
= [N, *theta.shape] (N = 3 episodes, theta (1, 3))
    """
    if not callable(fn):
        raise EstimatorError(f"an estimator must be a function episodes -> [N, *theta.shape], got {_describe(fn)}")
    label = name or _name_of(fn)
    inner = fn.per_episode if isinstance(fn, Estimator) else fn

    def per_episode(episodes: Episodes) -> np.ndarray:
        try:
            out = inner(_read_only(episodes))
        except Exception as exc:  # noqa: BLE001 - anything the user's code raises is reported, chained
            hint = (" (the episode arrays are read-only: copy them before modifying)"
                    if isinstance(exc, ValueError) and "read-only" in str(exc) else "")
            raise EstimatorError(f"estimator {label} raised {type(exc).__name__}: {exc}{hint} (on a batch of "
                                 f"{episodes.n} episodes)") from exc
        return _validate_output(out, label, episodes)

    description = (fn.description if isinstance(fn, Estimator)
                   else (getattr(fn, "__doc__", None) or "").strip().split("\n")[0] or "a user's estimator")
    return Estimator(label, "", True, description, per_episode)


def _truncate(episodes: Episodes, T: int) -> Episodes:
    """The batch cut to T steps (every episode must fit): the same episodes with less padding."""
    return Episodes(episodes.s_t[:, :T + 1], episodes.a_t[:, :T], episodes.r_t[:, :T], episodes.lengths,
                    episodes.mdp, episodes.policy, episodes.weights)


def _first_difference(a: np.ndarray, b: np.ndarray) -> int | None:
    """The first episode whose rows differ beyond PROBE_RTOL of the values' size, or None."""
    size = max(float(np.abs(a).max(initial=0.0)), float(np.abs(b).max(initial=0.0)))
    diff = np.abs(a - b).reshape(len(a), -1).max(axis=1, initial=0.0)
    bad = np.flatnonzero(diff > PROBE_RTOL * size)
    return int(bad[0]) if bad.size else None


def _probe(est: Estimator, problem: Problem, seed: int) -> None:
    """Check the output and the per-episode contract on a small batch, before the expensive run."""
    batch = sample_episodes(problem.mdp, problem.policy, PROBE_EPISODES, np.random.default_rng(seed))
    full = est.per_episode(batch)
    half = PROBE_EPISODES // 2
    alone = est.per_episode(batch.select(slice(0, half)))
    n = _first_difference(full[:half], alone)
    if n is not None:
        raise EstimatorError(
            f"estimator {est.name} is not a per-episode function: its estimate for episode {n} changed when "
            f"evaluated in a batch of {half} instead of {PROBE_EPISODES} episodes (max change "
            f"{np.abs(full[n] - alone[n]).max():.3g}); g(tau_n) must depend on episode n alone and deterministically "
            "(no batch statistics such as return normalisation, no internal randomness), so that the estimates are "
            "i.i.d. and their exact mean exists; an estimator with batch statistics returns one estimate per batch "
            "and is checked by verify.checks.batchcheck.check_batch_estimator")
    # Less padding rather than more: a batch never runs past the horizon, and estimators may rely on that.
    short = np.flatnonzero(batch.lengths < batch.T)
    if short.size == 0:
        return
    T = int(batch.lengths[short].max())
    cut = est.per_episode(_truncate(batch.select(short), T))
    n = _first_difference(full[short], cut)
    if n is not None:
        raise EstimatorError(
            f"estimator {est.name} depends on padding: episode {short[n]} (length {batch.lengths[short[n]]}) got "
            f"another estimate when its batch was padded to {T} instead of {batch.T} steps (max change "
            f"{np.abs(full[short[n]] - cut[n]).max():.3g}); steps t >= lengths[n] are padding and must be ignored "
            "(weight them with episodes.mask, or loop to lengths[n])")


# --- the check -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class EstimatorCheck:
    """The outcome of ``check_estimator``: a user's estimator against the exact gradient on one problem.

    Attributes:
      estimator, problem: names. episodes, seed, alpha: the run's settings.
      grad: exact grad J(theta) (dynamic programming or a linear solve), theta's shape.
      mean, stderr: sample mean of the per-episode estimates and its standard error, theta's shape.
      test, statistic, dof, p_value: the Monte Carlo consistency test (``ConsistencyResult.test``: "chi2" with
        the exact covariance, else a sample test); ``consistent``: p_value > alpha.
      exact_mean, exact_std: E[g] and the per-episode standard deviation by enumeration, or None when the
        problem cannot be enumerated; ``n_trajectories``: how many trajectories that took.
      exact_biased: the exact bias exceeds float round-off (None without enumeration).
      effect: exact bias in per-episode standard deviations (Mahalanobis; inf off the covariance's support);
        detectable: the effect this run detects with probability ``mc.DETECT_POWER``.
      worst, component: the component reported (largest exact bias if proved, else largest |z|) and its name.
      matches: catalog estimators with the same exact mean (computed when a bias is proved).
      reproduce: the call (or command line) that repeats this check exactly.
      mc: the underlying ``mc.McResult``.
    """

    estimator: str
    problem: str
    episodes: int
    seed: int
    alpha: float
    grad: np.ndarray
    mean: np.ndarray
    stderr: np.ndarray
    test: str
    statistic: float
    dof: int
    p_value: float
    consistent: bool
    exact_mean: np.ndarray | None
    exact_std: np.ndarray | None
    exact_biased: bool | None
    n_trajectories: int | None
    effect: float | None
    detectable: float
    worst: tuple[int, ...]
    component: str
    matches: tuple[str, ...]
    reproduce: str
    mc: McResult = dataclasses.field(repr=False)

    @property
    def exact_bias(self) -> np.ndarray | None:
        """E[g] - grad J by enumeration, theta's shape, or None."""
        return None if self.exact_mean is None else self.exact_mean - self.grad

    @property
    def verdict(self) -> str:
        """"biased" or "consistent" by the exact bias when the trajectories can be enumerated; otherwise the
        Monte Carlo verdict ("consistent", "inconsistent" or "undecided", from the paired or the unpaired test,
        whichever is more powerful for the run: ``mc.decided_by``)."""
        return self.mc.verdict

    @property
    def passed(self) -> bool:
        return self.verdict == "consistent"

    def format(self) -> str:
        """The report in words (``verify.app.render.format_estimator_check``)."""
        from verify.app.render import format_estimator_check

        return format_estimator_check(self)

    def to_json(self) -> dict:
        fin = lambda x: None if x is None or not np.isfinite(x) else float(x)  # noqa: E731
        arr = lambda a: None if a is None else a.tolist()  # noqa: E731
        return {"estimator": self.estimator, "problem": self.problem, "episodes": self.episodes, "seed": self.seed,
                "alpha": self.alpha, "verdict": self.verdict, "passed": self.passed, "grad": arr(self.grad),
                "mean": arr(self.mean), "stderr": arr(self.stderr), "test": self.test,
                "statistic": fin(self.statistic), "dof": self.dof, "p_value": self.p_value,
                "consistent": self.consistent, "exact_mean": arr(self.exact_mean), "exact_bias": arr(self.exact_bias),
                "exact_std": arr(self.exact_std), "exact_biased": self.exact_biased,
                "n_trajectories": self.n_trajectories, "effect_size": fin(self.effect),
                "effect_size_infinite": bool(self.effect is not None and np.isinf(self.effect)),
                "detectable_effect": self.detectable,
                "worst": {"index": list(self.worst), "name": self.component},
                "matches": list(self.matches), "reproduce": self.reproduce,
                **{k: v for k, v in self.mc.to_json().items()
                   if k in ("decided_by", "mc_verdict", "reason", "paired", "power", "detectable_bias",
                            "detectable_bias_sd", "episodes_to_detect", "resolution", "scaling_error",
                            "rare_differences")}}


def as_problem(problem, policy: Policy | None = None, *, who: str = "check_estimator") -> Problem:
    """The Problem a check runs on: a Problem, a TabularMDP (uniform policy unless ``policy``), a built-in example
    name or an MDP file path; ``policy`` replaces the problem's own. ``who`` names the caller in errors."""
    if isinstance(problem, str) and not Path(problem).exists():
        from verify.model.builtin import EXAMPLE_NAMES, load_example

        if problem in EXAMPLE_NAMES:   # the name reproduce lines print for a built-in example
            problem = load_example(problem)
    if isinstance(problem, (str, Path)):
        problem = load_problem(problem)
    if isinstance(problem, TabularMDP):
        problem = Problem(problem, policy if policy is not None else
                          TabularSoftmax(np.zeros((problem.n_states, problem.n_actions))))
    elif not isinstance(problem, Problem):
        raise UsageError(f"{who} needs a Problem, a TabularMDP (with policy=), a built-in example name or an MDP "
                         f"file path, got "
                         f"{_describe(problem)}")
    if policy is not None and policy is not problem.policy:
        if not isinstance(policy, Policy):
            raise UsageError(f"policy must be a verify.model.policy.Policy, got {_describe(policy)}")
        problem = Problem(problem.mdp, policy)
    return problem


def _catalog_matches(exact_mean: np.ndarray, scale: float, problem: Problem) -> tuple[str, ...]:
    catalog = [e for e in ESTIMATORS if not e.batch_dependent]
    moments = exact_moments_all(catalog, problem.mdp, problem.policy)
    return tuple(name for name, m in moments.items()
                 if np.abs(m.mean - exact_mean).max() <= ZERO_BIAS_RTOL * max(scale, m.scale))


def _problem_source(given, problem: Problem) -> str:
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


_KEEP = object()


def check_estimator(fn: Callable[[Episodes], np.ndarray] | Estimator, problem: Problem | TabularMDP | str | Path, *,
                    policy: Policy | None = None, episodes: int = DEFAULT_EPISODES, seed: int = 0,
                    alpha: float = DEFAULT_ALPHA, covariance: str = "auto", name: str | None = None,
                    gamma: float | None = None, horizon=_KEEP,
                    resolution: float = DEFAULT_RESOLUTION) -> EstimatorCheck:
    r"""Test whether ``fn`` estimates grad J(theta) without bias on ``problem``.

    H0: E[g(tau)] = grad J(theta), with g = ``fn`` per episode. Exact, when the trajectories can be enumerated:
    E[g] = sum_tau p(tau|theta) g(tau), and the bias E[g] - grad J counts when it exceeds float round-off (1e-9
    of the problem's scale); this decides the verdict. Monte Carlo, always: the mean of ``episodes`` i.i.d.
    estimates is tested against the exact gradient at level ``alpha`` (``stats.consistency_test``); this decides
    the verdict when nothing can be enumerated.

    Args:
      fn: the estimator, ``episodes -> [N, *theta.shape]`` (contract: module docstring); a catalog ``Estimator``
        also works.
      problem: a ``Problem``, a ``TabularMDP``, the path of an MDP file or a built-in example's name ("chain").
      policy: the policy to differentiate; default the problem's, or the uniform softmax (theta = 0, [S, A]) for
        a bare MDP.
      episodes: Monte Carlo sample size (default 20000: an effect of 0.1 per-episode standard deviations is
        caught with probability >= 0.999).
      seed: seed of ``numpy.random.default_rng`` for all sampling; the check is deterministic for a seed.
      alpha: level of the Monte Carlo test, the false-alarm probability of one call.
      covariance: "auto", "exact" or "sample", as ``mc.run_estimators`` ("sample" also skips the enumeration).
      name: how the report names ``fn``.
      gamma, horizon: override the problem's discount and horizon (``horizon=None``: until termination).
      resolution: without an enumeration, "consistent" needs the power to see a bias of resolution x max |grad J|
        in every component (default 0.1); otherwise the verdict is "undecided" with the episodes needed.

    Returns:
      EstimatorCheck (``.passed``, ``.verdict``, ``.format()``; ``.reproduce`` is the call that repeats it, naming
      the file or built-in example and the gamma/horizon overrides).

    Raises:
      EstimatorError: ``fn`` is not callable, raises, returns something that is not a finite array of shape
        [N, *theta.shape], or is not a per-episode function (batch statistics, randomness, padding).
      UsageError: bad settings or problem (InvalidMDPError for an invalid file or an incompatible policy).
    """
    given = problem
    problem = as_problem(problem, policy)
    changes = {k: v for k, v in (("gamma", gamma), ("horizon", horizon)) if v is not _KEEP and v is not (
        None if k == "gamma" else _KEEP)}
    if changes:
        problem = Problem(problem.mdp.replace(**changes), problem.policy)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}")
    est = as_estimator(fn, name=name)
    _probe(est, problem, seed)
    mc = run_mc(problem, est, episodes=episodes, seed=seed, alpha=alpha, covariance=covariance, resolution=resolution)
    t, m = mc.test, mc.moments
    worst, matches = mc.sampled.worst, ()
    if m is not None and m.biased:
        worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(np.abs(m.bias))), m.bias.shape))
        matches = _catalog_matches(m.mean, m.scale, problem)
    call = (f"check_estimator({est.name}, {_problem_source(given, problem)}, episodes={episodes}, seed={seed}, "
            f"alpha={alpha!r}" + ("" if covariance == "auto" else f", covariance={covariance!r}")
            + ("" if resolution == DEFAULT_RESOLUTION else f", resolution={resolution!r}") + ")")
    return EstimatorCheck(
        estimator=est.name, problem=problem.mdp.name, episodes=episodes, seed=int(seed), alpha=alpha,
        grad=np.asarray(t.exact), mean=t.mean, stderr=t.stderr, test=t.test, statistic=t.statistic, dof=t.dof,
        p_value=t.p_value, consistent=t.consistent,
        exact_mean=None if m is None else m.mean, exact_std=None if m is None else m.std,
        exact_biased=None if m is None else m.biased, n_trajectories=None if m is None else m.n_trajectories,
        effect=mc.effect, detectable=mc.detectable, worst=worst, component=component_name(problem, worst),
        matches=matches, reproduce=call, mc=mc)


def assert_estimator_unbiased(fn: Callable[[Episodes], np.ndarray] | Estimator,
                              problem: Problem | TabularMDP | str | Path, **settings) -> EstimatorCheck:
    """``check_estimator`` that raises ``AssertionError`` unless the verdict is "consistent".

    Args and Raises: as ``check_estimator``; also AssertionError whose message names the worst component, the
    exact gradient, the exact and sample means, the standard error, the p-value and the seed; ``Undecided`` (an
    AssertionError) when no test rejected but the run could not see a bias of ``resolution`` x max |grad J| in
    every component: it states the episodes needed. Pass ``resolution=`` for the tolerance you need.

    Returns:
      The EstimatorCheck, when it passed.

    >>> from verify.model.builtin import builtin_examples
    >>> from verify.numerics.episodes import reward_to_go, score_sums
    >>> def restarted(episodes):                          # the classic bug: gamma^(t'-t) instead of gamma^t'
    ...     return score_sums(episodes, reward_to_go(episodes, restart_discount=True))
    >>> assert_estimator_unbiased(restarted, builtin_examples()["chain"], episodes=2000)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: estimator restarted on chain: BIASED, proved by enumerating 227 trajectories: its exact mean is \
not grad J
    worst component: theta[1, 0] (state 's1', action 'left'): exact grad J -0.127522, exact mean -0.155312 (exact \
bias -0.0278), sample mean ...
    same exact mean as the catalog pitfall rtg_restart_discount: reward-to-go whose discount restarts at t ...
    seed 0; reproduce: check_estimator(restarted, 'chain', episodes=2000, seed=0, alpha=0.001)
    """
    check = check_estimator(fn, problem, **settings)
    if check.verdict == "undecided":
        raise Undecided(check.format(), check)
    if not check.passed:
        raise AssertionError(check.format())
    return check
