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
before the run (the same episodes in a smaller batch, and with less padding, must give the same rows). Precision
is an input: the exact comparison allows the round-off of the type the function returns (``verify.checks.precision``:
1e-9 of the problem's scale for float64, 64 eps32 per step for float32), so float32 round-off is never "proved
biased"; the report then says what float32 cannot decide and how to switch to float64. The output may be any array
type numpy converts (a CPU torch tensor without grad works), but not a list or a scalar.

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
from verify.errors import PGVerifyError, UsageError, positive_int
from verify.checks.estimators import ESTIMATORS, Estimator
from verify.checks.mc import (
    DEFAULT_ALPHA,
    DEFAULT_RESOLUTION,
    DEFAULT_EPISODES,
    McResult,
    run_mc,
)
from verify.checks.contract import EstimatorError, as_problem, callable_argument, describe, name_of, problem_source
from verify.model.labels import component_name
from verify.model.mdp import TabularMDP
from verify.checks.moments import ZERO_BIAS_RTOL, exact_moments_all
from verify.model.policy import Policy
from verify.checks.precision import FLOAT64, ROUNDOFF_FACTOR, Precision, precision_of
from verify.model.problem import Problem
from verify.numerics.sampler import sample_episodes
from verify.checks.text import format_estimator_check

__all__ = ["EstimatorCheck", "EstimatorError", "Undecided", "as_estimator", "assert_estimator_unbiased",
           "check_estimator"]

PROBE_EPISODES = 64     # the contract probe's batch (its first half is re-evaluated alone)
PROBE_RTOL = 1e-9       # a vectorised fn may round differently in another batch size; a batch statistic moves far more



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


def _validate_output(out, name: str, episodes: Episodes, dtypes: set | None = None) -> np.ndarray:
    theta_shape = episodes.policy.theta.shape
    shape = (episodes.n, *theta_shape)
    wanted = f"an array of shape {shape} = [N, *theta.shape] (N = {episodes.n} episodes, theta {theta_shape})"
    if np.isscalar(out) or not (isinstance(out, np.ndarray) or hasattr(out, "__array__")):
        raise EstimatorError(f"estimator {name} returned {describe(out)}, not an array; the contract asks for "
                             f"{wanted}")
    try:
        arr = np.asarray(out)
    except Exception as exc:  # noqa: BLE001 - e.g. a tensor that still requires grad
        raise EstimatorError(f"estimator {name} returned {type(out).__name__}, which numpy cannot convert "
                             f"({type(exc).__name__}: {exc}); return {wanted}") from exc
    if arr.dtype.kind not in "biuf":
        raise EstimatorError(f"estimator {name} returned an array of dtype {arr.dtype}; the contract asks for real "
                             f"numbers, {wanted}")
    if dtypes is not None:
        dtypes.add(arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64))
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
    verify.checks.contract.EstimatorError: estimator too_short returned shape (3,), expected an array of shape (3, 1, 3) \
= [N, *theta.shape] (N = 3 episodes, theta (1, 3))
    """
    if not callable(fn):
        raise EstimatorError(f"an estimator must be a function episodes -> [N, *theta.shape], got {describe(fn)}")
    label = name or name_of(fn)
    inner = fn.per_episode if isinstance(fn, Estimator) else fn
    dtypes: set = set()      # the floating types fn returned (``verify.checks.precision``: float32 has its own round-off)

    def per_episode(episodes: Episodes) -> np.ndarray:
        try:
            out = inner(_read_only(episodes))
        except PGVerifyError:       # already says what happened (e.g. the CLI's worker: a timeout, an exit)
            raise
        except Exception as exc:  # noqa: BLE001 - anything the user's code raises is reported, chained
            hint = (" (the episode arrays are read-only: copy them before modifying)"
                    if isinstance(exc, ValueError) and "read-only" in str(exc) else "")
            raise EstimatorError(f"estimator {label} raised {type(exc).__name__}: {exc}{hint} (on a batch of "
                                 f"{episodes.n} episodes)") from exc
        return _validate_output(out, label, episodes, dtypes)

    per_episode.dtypes = dtypes
    description = (fn.description if isinstance(fn, Estimator)
                   else (getattr(fn, "__doc__", None) or "").strip().split("\n")[0] or "a user's estimator")
    return Estimator(label, "", True, description, per_episode)


def _truncate(episodes: Episodes, T: int) -> Episodes:
    """The batch cut to T steps (every episode must fit): the same episodes with less padding."""
    return Episodes(episodes.s_t[:, :T + 1], episodes.a_t[:, :T], episodes.r_t[:, :T], episodes.lengths,
                    episodes.mdp, episodes.policy, episodes.weights)


def _first_difference(a: np.ndarray, b: np.ndarray, rtol: float = PROBE_RTOL) -> int | None:
    """The first episode whose rows differ beyond ``rtol`` of the values' size, or None."""
    size = max(float(np.abs(a).max(initial=0.0)), float(np.abs(b).max(initial=0.0)))
    diff = np.abs(a - b).reshape(len(a), -1).max(axis=1, initial=0.0)
    bad = np.flatnonzero(diff > rtol * size)
    return int(bad[0]) if bad.size else None


def _precision(est: Estimator, problem: Problem) -> Precision:
    """The precision the estimator computed in so far (the floating types it returned)."""
    return precision_of(getattr(est.per_episode, "dtypes", ()), problem.mdp, problem.policy,
                        source="the estimator returns {dtype}")


def _probe(est: Estimator, problem: Problem, seed: int) -> Precision:
    """Check the output and the per-episode contract on a small batch, before the expensive run; returns the
    precision the estimator computes in."""
    batch = sample_episodes(problem.mdp, problem.policy, PROBE_EPISODES, np.random.default_rng(seed))
    full = est.per_episode(batch)
    precision = _precision(est, problem)
    # float32 code may round differently in another batch size (vectorised reductions), by its own epsilon
    rtol = max(PROBE_RTOL, ROUNDOFF_FACTOR * precision.eps)
    half = PROBE_EPISODES // 2
    alone = est.per_episode(batch.select(slice(0, half)))
    n = _first_difference(full[:half], alone, rtol)
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
        return precision
    T = int(batch.lengths[short].max())
    cut = est.per_episode(_truncate(batch.select(short), T))
    n = _first_difference(full[short], cut, rtol)
    if n is not None:
        raise EstimatorError(
            f"estimator {est.name} depends on padding: episode {short[n]} (length {batch.lengths[short[n]]}) got "
            f"another estimate when its batch was padded to {T} instead of {batch.T} steps (max change "
            f"{np.abs(full[short[n]] - cut[n]).max():.3g}); steps t >= lengths[n] are padding and must be ignored "
            "(weight them with episodes.mask, or loop to lengths[n])")
    return precision


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
    precision: Precision = FLOAT64     # the floating type the estimator returned, and the tolerance it allows
    bias_profile: tuple = ()           # an unnamed bias: (h, exact max|bias|, tolerance) at horizons h = 1..H

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
        """The report in words (``verify.checks.text.format_estimator_check``, plain text)."""
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
                "matches": list(self.matches), "reproduce": self.reproduce, "precision": self.precision.to_json(),
                "bias_by_horizon": [{"horizon": h, "max_abs_bias": b, "tolerance": t} for h, b, t in self.bias_profile],
                **{k: v for k, v in self.mc.to_json().items()
                   if k in ("decided_by", "mc_verdict", "reason", "paired", "power", "detectable_bias",
                            "detectable_bias_sd", "episodes_to_detect", "resolution", "scaling_error",
                            "rare_differences")}}


def _catalog_matches(exact_mean: np.ndarray, scale: float, problem: Problem,
                     rtol: float = ZERO_BIAS_RTOL) -> tuple[str, ...]:
    from verify.checks.fixes import KNOWN_BUGS

    catalog = [e for e in (*ESTIMATORS, *KNOWN_BUGS) if not e.batch_dependent]
    moments = exact_moments_all(catalog, problem.mdp, problem.policy)
    return tuple(name for name, m in moments.items()
                 if np.abs(m.mean - exact_mean).max() <= rtol * max(scale, m.scale))


PROFILE_MAX_HORIZON = 12   # the bias-by-horizon profile of an unnamed bias re-enumerates up to this horizon


def bias_by_horizon(est: Estimator, problem: Problem, rtol: float) -> tuple[tuple[int, float, float], ...]:
    """Where an unnamed bias enters: (h, exact max|bias|, tolerance) for the same MDP cut at horizon h = 1..H.

    The estimator is re-evaluated exactly on every trajectory of the shorter problems; the first h with a bias
    beyond round-off says the first h - 1 steps are handled right and step t = h - 1 is where it goes wrong
    (discounting, time indexing, the end of an episode). Empty when the horizon is null or too long.
    """
    H = problem.mdp.horizon
    if H is None or H > PROFILE_MAX_HORIZON:
        return ()
    out = []
    for h in range(1, H + 1):
        mdp = problem.mdp.replace(horizon=h)
        try:
            m = exact_moments_all([est], mdp, problem.policy)[est.name]
        except UsageError:
            break
        out.append((h, float(np.abs(m.bias).max()), float(rtol * m.scale)))
    return tuple(out)


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
    if getattr(problem, "kind", None) == "lq":      # continuous actions: a Gaussian policy on an LQ problem
        from verify.checks.lq_check import check_lq_estimator

        if policy is not None:
            raise UsageError("policy= applies to tabular problems; an LQ problem carries its linear Gaussian policy")
        return check_lq_estimator(fn, problem, episodes=episodes, seed=seed, alpha=alpha, name=name, gamma=gamma,
                                  horizon=... if horizon is _KEEP else horizon)
    changes = {k: v for k, v in (("gamma", gamma), ("horizon", horizon)) if v is not _KEEP and v is not (
        None if k == "gamma" else _KEEP)}
    if changes:
        problem = Problem(problem.mdp.replace(**changes), problem.policy)
    positive_int(seed, "seed", least=0)
    est = as_estimator(fn, name=name)
    precision = _probe(est, problem, seed)
    mc = run_mc(problem, est, episodes=episodes, seed=seed, alpha=alpha, covariance=covariance,
                rtol=precision.rtol, resolution=resolution)
    precision = precision.coarser(_precision(est, problem))    # what the whole run returned
    t, m = mc.test, mc.moments
    worst, matches, profile = mc.sampled.worst, (), ()
    if m is not None and m.biased:
        worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(np.abs(m.bias))), m.bias.shape))
        matches = _catalog_matches(m.mean, m.scale, problem, m.rtol)
        if not matches:
            profile = bias_by_horizon(est, problem, m.rtol)

    call = (f"check_estimator({callable_argument(est.name)}, {problem_source(given, problem)}, "
            f"episodes={episodes}, seed={seed}, "
            f"alpha={alpha!r}" + ("" if covariance == "auto" else f", covariance={covariance!r}")
            + ("" if resolution == DEFAULT_RESOLUTION else f", resolution={resolution!r}") + ")")
    return EstimatorCheck(
        estimator=est.name, problem=problem.mdp.name, episodes=episodes, seed=int(seed), alpha=alpha,
        grad=np.asarray(t.exact), mean=t.mean, stderr=t.stderr, test=t.test, statistic=t.statistic, dof=t.dof,
        p_value=t.p_value, consistent=t.consistent,
        exact_mean=None if m is None else m.mean, exact_std=None if m is None else m.std,
        exact_biased=None if m is None else m.biased, n_trajectories=None if m is None else m.n_trajectories,
        effect=mc.effect, detectable=mc.detectable, worst=worst, component=component_name(problem, worst),
        matches=matches, reproduce=call, mc=mc, precision=precision, bias_profile=profile)


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
