"""Claims about REINFORCE estimators, and a Hypothesis search for the smallest MDP that falsifies one.

A claim is a statement that should hold for every finite tabular MDP and softmax policy, with a check that
decides it exactly on one (mdp, policy) from the estimators' exact moments (``verify.moments``):

    variance claims:  tr Cov[g_new] <= tr Cov[g_old]   (tr Cov = E|g - E g|^2, the total variance),
    unbiasedness:     E[g] = grad J                    (to ZERO_BIAS_RTOL of the problem's scale).

``search`` asks ``hypothesis.find`` for a problem from ``verify.strategies`` on which the check fails (guided by
``hypothesis.target`` towards larger violations), lets Hypothesis shrink it, and returns it with the evidence.
Deterministic for a given seed: the search runs from ``random.Random(seed)`` with no example database.
"""
from __future__ import annotations

import contextlib
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from hypothesis import HealthCheck, Phase, find, settings, target
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample, Unsatisfiable

from verify.errors import UsageError, positive_int
from verify.checks.estimators import ESTIMATORS, get_estimator
from verify.numerics.exact import objective
from verify.model.mdp import TabularMDP, reachable
from verify.checks.moments import exact_moments_all
from verify.model.policy import LinearSoftmax, Policy, TabularSoftmax
from verify.model.problem import Problem, problem_to_dict, write_mdp_file
from verify.testing.strategies import problems

__all__ = ["CLAIMS", "DEFAULT_EXAMPLES", "VARIANCE_RTOL", "Claim", "Counterexample", "Verdict",
           "counterexample_to_dict", "default_output", "describe", "get_claim", "scratch_hypothesis_storage", "search",
           "without_local_constants", "without_unreachable_states", "write_counterexample"]

DEFAULT_EXAMPLES = 1000
VARIANCE_RTOL = 1e-9     # an increase below this fraction of the variance is float round-off, not a counterexample


@dataclass(frozen=True)
class Verdict:
    """The claim's fate on one problem.

    Attributes:
      holds: whether the claim holds there.
      violation: how far it is from holding, relative to the problem's scale (> 0 exactly when it fails);
        the search maximises it with ``hypothesis.target``.
      evidence: named numbers (floats or lists) that show why.
    """

    holds: bool
    violation: float
    evidence: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Claim:
    """A falsifiable statement with an exact check and the problems to search.

    Attributes:
      name: the CLI's key.
      statement: the claim in words.
      check: (mdp, policy) -> Verdict.
      space: the Hypothesis strategy of problems searched (finite horizon: the checks enumerate).
      note: what the claim is about, for ``pgverify fuzz --list``.
    """

    name: str
    statement: str
    check: Callable[[TabularMDP, Policy], Verdict]
    space: st.SearchStrategy[Problem]
    note: str = ""


@dataclass(frozen=True)
class Counterexample:
    """A shrunk problem on which ``claim`` fails, with the verdict there and how it was found."""

    claim: Claim
    problem: Problem
    verdict: Verdict
    seed: int
    examples: int


def _total_variance(moments) -> float:
    return float(np.trace(moments.cov))


def _variance_claim(new: str, old: str) -> Callable[[TabularMDP, Policy], Verdict]:
    """Check tr Cov[g_new] <= tr Cov[g_old] (up to VARIANCE_RTOL)."""
    def check(mdp: TabularMDP, policy: Policy) -> Verdict:
        m = exact_moments_all([get_estimator(old), get_estimator(new)], mdp, policy)
        v_old, v_new = _total_variance(m[old]), _total_variance(m[new])
        # Round-off allowance: relative to the variances, and absolute to the squared size of a return, so a
        # zero-variance estimator against 1e-33 of float noise is not a counterexample.
        horizon = mdp.horizon or 1
        tol = VARIANCE_RTOL * max(v_old, (np.abs(mdp.rewards).max() * horizon) ** 2 * 1e-3, 1e-300)
        holds = v_new <= v_old + tol
        violation = (v_new - v_old - tol) / max(v_old, tol)
        evidence = {f"total variance of {old}": v_old, f"total variance of {new}": v_new,
                    f"variance ratio {new} / {old}": v_new / v_old if v_old > 0 else float("inf"),
                    "J": objective(mdp, policy),
                    "grad J": m[old].grad.tolist(),
                    f"per-component variance of {old}": np.diag(m[old].cov).tolist(),
                    f"per-component variance of {new}": np.diag(m[new].cov).tolist()}
        return Verdict(bool(holds), float(violation if not holds else min(violation, 0.0)), evidence)
    return check


def _unbiased_claim(name: str) -> Callable[[TabularMDP, Policy], Verdict]:
    def check(mdp: TabularMDP, policy: Policy) -> Verdict:
        m = exact_moments_all([get_estimator(name)], mdp, policy)[name]
        worst = float(np.abs(m.bias).max())
        evidence = {"grad J (exact, dynamic programming)": m.grad.tolist(), f"E[g] of {name} (exact)": m.mean.tolist(),
                    "bias E[g] - grad J": m.bias.tolist(), "max |bias|": worst,
                    "max |bias| / scale": worst / m.scale}
        return Verdict(not m.biased, worst / m.scale if m.biased else 0.0, evidence)
    return check


_WITH_REWARDS = st.sampled_from(["state_action", "transition"])
# Reward-to-go equals the total return when H = 1, so that claim searches H >= 2.
_CLAIMS: list[Claim] = [
    Claim("rtg-variance", "reward-to-go never has higher variance than the total return",
          _variance_claim("reward_to_go", "total_return"),
          problems(horizon=st.integers(2, 4), reward_kind=_WITH_REWARDS)),
    Claim("value-baseline-variance",
          "a state-value baseline V_t(s_t) subtracted from the reward-to-go never increases variance",
          _variance_claim("baseline_value", "reward_to_go"), problems(reward_kind=_WITH_REWARDS)),
    Claim("constant-baseline-variance",
          "subtracting the constant baseline b = J(theta) from the total return never increases variance",
          _variance_claim("baseline_constant", "total_return"), problems(reward_kind=_WITH_REWARDS)),
]
_CLAIMS += [Claim(f"unbiased:{e.name}", f"the estimator {e.name} is unbiased: E[g] = grad J",
                  _unbiased_claim(e.name), problems(), note=e.description)
            for e in ESTIMATORS]
CLAIMS: dict[str, Claim] = {c.name: c for c in _CLAIMS}


def get_claim(name: str) -> Claim:
    """The claim called ``name``.

    Raises:
      UsageError: unknown name; the message lists every claim.

    >>> get_claim("rtg-variance").statement
    'reward-to-go never has higher variance than the total return'
    """
    try:
        return CLAIMS[name]
    except KeyError:
        raise UsageError(f"unknown claim {name!r}; known claims: {', '.join(CLAIMS)} "
                         "(pgverify fuzz --list describes them)") from None


def search(claim: Claim, *, examples: int = DEFAULT_EXAMPLES, seed: int = 0) -> Counterexample | None:
    """Search for a problem falsifying ``claim``; Hypothesis shrinks the first one found.

    Args:
      claim: from ``CLAIMS``.
      examples: the budget, Hypothesis' ``max_examples`` (positive).
      seed: the search's random seed; the same seed gives the same result.

    Returns:
      The shrunk Counterexample, or None when none turned up within the budget.

    Raises:
      UsageError: a non-positive budget.
    """
    positive_int(examples, "--examples")

    def falsifies(problem: Problem) -> bool:
        verdict = claim.check(problem.mdp, problem.policy)
        target(verdict.violation, label="violation")
        return not verdict.holds

    # Built on the "default" profile, not the loaded one (a test profile may derandomize and ignore the seed);
    # no database (no state across runs); no explain phase (it only annotates failures of @given tests).
    config = settings(settings.get_profile("default"), database=None, derandomize=False,
                      max_examples=examples, deadline=None,
                      phases=[Phase.generate, Phase.target, Phase.shrink],
                      suppress_health_check=list(HealthCheck))
    try:
        with without_local_constants():
            problem = find(claim.space, falsifies, settings=config, random=random.Random(seed))
    except (NoSuchExample, Unsatisfiable):
        return None
    # Hypothesis cannot shrink S (every array's shape depends on it), so drop the states no episode can visit
    # when the claim still fails without them.
    smaller = without_unreachable_states(problem)
    if smaller is not None and not claim.check(smaller.mdp, smaller.policy).holds:
        problem = smaller
    return Counterexample(claim, problem, claim.check(problem.mdp, problem.policy), seed, examples)


def without_unreachable_states(problem: Problem) -> Problem | None:
    """The same problem restricted to the states reachable from rho0, or None when every state is reachable.

    Every trajectory, hence every exact moment, is unchanged: a reachable non-terminal state's transition row
    puts no mass on an unreachable one, and the policy's parameters for unreachable states never matter.

    >>> from verify.policy import TabularSoftmax
    >>> mdp = TabularMDP(initial=[1, 0], transitions=[[[1, 0]], [[1, 0]]], rewards=[[1], [2]], horizon=2)
    >>> small = without_unreachable_states(Problem(mdp, TabularSoftmax(np.zeros((2, 1)))))
    >>> small.mdp.n_states, small.policy.theta.shape
    (1, (1, 1))
    """
    mdp, pol = problem.mdp, problem.policy
    seen = reachable((mdp.transitions > 0).any(axis=1) & ~mdp.terminal[:, None], mdp.initial > 0)
    if seen.all():
        return None
    keep = np.flatnonzero(seen)
    every_action = np.arange(mdp.n_actions)
    small = TabularMDP(initial=mdp.initial[keep], transitions=mdp.transitions[np.ix_(keep, every_action, keep)],
                       rewards=mdp.rewards[np.ix_(keep, every_action, keep)], terminal=mdp.terminal[keep],
                       gamma=mdp.gamma, horizon=mdp.horizon, actions=mdp.actions, name=mdp.name,
                       states=tuple(mdp.states[i] for i in keep))
    if isinstance(pol, LinearSoftmax):
        return Problem(small, LinearSoftmax(pol.features[keep], pol.theta))
    return Problem(small, TabularSoftmax(pol.theta[keep]))


@contextlib.contextmanager
def without_local_constants():
    """Switch off Hypothesis' harvesting of numbers from the source of every loaded non-library module.

    Hypothesis (6.13x and later) mixes such constants into generation, so one seed would search differently
    depending on which modules happen to be imported (the CLI, a test session, a notebook). Without them the
    result depends only on the seed, the strategies and the Hypothesis version. Hypothesis offers no setting for
    this, so the harvester (an internal) is swapped for an empty pool. A Hypothesis without the harvester
    (``hypothesis.internal.constants_ast``) needs nothing; one that harvests through internals that moved raises
    RuntimeError rather than silently searching differently in every process.

    Raises:
      RuntimeError: Hypothesis harvests constants, but not through the internals this expects.
    """
    try:
        from hypothesis.internal.constants_ast import Constants
    except ImportError:             # no harvesting in this Hypothesis: nothing to switch off
        yield
        return
    try:
        from hypothesis.internal.conjecture import providers
        harvest, cache = providers._get_local_constants, providers.CONSTANTS_CACHE.cache
    except (ImportError, AttributeError) as exc:
        import hypothesis
        raise RuntimeError(f"Hypothesis {hypothesis.__version__} harvests local constants, but not through "
                           f"providers._get_local_constants / CONSTANTS_CACHE ({exc}); pgverify fuzz cannot make "
                           "its search independent of the loaded modules: use a Hypothesis release pgverify "
                           "supports, or update verify.fuzz.without_local_constants") from None
    providers._get_local_constants = Constants      # an empty pool
    cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = harvest
        cache.clear()


@contextlib.contextmanager
def scratch_hypothesis_storage():
    """Point Hypothesis' storage directory at a temporary one for the duration.

    Even without an example database Hypothesis caches constants it harvests from source files under
    ``./.hypothesis``; a command-line search should leave nothing behind in the user's working directory.
    """
    with tempfile.TemporaryDirectory(prefix="pgverify-fuzz-") as tmp:
        set_hypothesis_home_dir(tmp)
        try:
            yield
        finally:
            set_hypothesis_home_dir(None)


def _fmt(value) -> str:
    """Numbers to 6 significant digits; arrays as one-line nested lists (counterexamples are tiny)."""
    if isinstance(value, (float, int, np.floating, np.integer)):
        return f"{float(value):.6g}"
    return "[" + ", ".join(_fmt(v) for v in np.asarray(value, dtype=float)) + "]"


def describe(cx: Counterexample) -> str:
    """The counterexample for people: the claim, the MDP and policy entry by entry, the evidence."""
    mdp, pol = cx.problem.mdp, cx.problem.policy
    S, A = mdp.n_states, mdp.n_actions
    terminal = [int(i) for i in np.flatnonzero(mdp.terminal)]
    lines = [f"claim {cx.claim.name}: {cx.claim.statement}",
             f"FALSE - counterexample found with seed {cx.seed} (budget {cx.examples} examples), shrunk by Hypothesis:",
             f"  {S} state{'s' * (S != 1)}, {A} action{'s' * (A != 1)}, horizon {mdp.horizon}, gamma {mdp.gamma:g}, "
             f"terminal states {terminal or 'none'}",
             f"  initial rho0 = {_fmt(mdp.initial)}"]
    for s in range(S):
        if mdp.terminal[s]:
            continue
        for a in range(A):
            # Rewards into unreachable successors never happen; show them only when they differ by s'.
            r = mdp.rewards[s, a]
            seen = r[mdp.transitions[s, a] > 0]
            shown = _fmt(seen[0]) if np.all(seen == seen[0]) else f"by s' {_fmt(r)}"
            lines.append(f"  s={s} a={a}: P(.|s,a) = {_fmt(mdp.transitions[s, a])}  reward {shown}")
    lines.append(f"  policy {pol.kind}: theta = {_fmt(pol.theta)}")
    if pol.kind == "linear_softmax":
        lines.append(f"    features phi[s][a] = {_fmt(pol.features)}")
    lines.append(f"    pi(a|s) = {_fmt(pol.probs)}")
    lines.append("evidence:")
    width = max(len(k) for k in cx.verdict.evidence)
    lines += [f"  {k:<{width}} = {_fmt(v)}" for k, v in cx.verdict.evidence.items()]
    return "\n".join(lines)


def default_output(claim: Claim) -> Path:
    """Where ``pgverify fuzz`` writes by default: ``counterexample-<claim>.json`` in the working directory."""
    return Path(f"counterexample-{claim.name.replace(':', '-')}.json")


def counterexample_to_dict(cx: Counterexample) -> dict:
    """The counterexample as an MDP file (a dict); the claim and the evidence go into ``description``."""
    data = problem_to_dict(cx.problem)
    data["name"] = f"counterexample-{cx.claim.name.replace(':', '-')}"
    summary = "; ".join(f"{k} = {_fmt(v)}" for k, v in cx.verdict.evidence.items())
    data["description"] = (f"Counterexample to the claim '{cx.claim.statement}' ({cx.claim.name}), found by "
                           f"pgverify fuzz {cx.claim.name} --seed {cx.seed} --examples {cx.examples}: {summary}")
    return data


def write_counterexample(cx: Counterexample, path: str | Path, *, force: bool = False) -> Path:
    """Write the counterexample as an MDP file that ``pgverify gradient/mc/check`` read.

    Raises:
      UsageError: the file exists (and not ``force``) or cannot be written.
    """
    return write_mdp_file(counterexample_to_dict(cx), path, force=force)
