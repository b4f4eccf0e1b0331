"""Public Hypothesis strategies for tabular MDPs, softmax policies and their parameters.

Modelled on ``hypothesis.extra.numpy``: every factory is keyword-only, accepts either a plain value or a
strategy for each knob, checks its arguments up front (raising ``hypothesis.errors.InvalidArgument``, the
one error type) and produces *validated* objects (``TabularMDP``, ``Policy``, ``Problem``), so a test only
ever sees inputs pgverify itself would accept.

``hypothesis.find(strategy, condition, settings=...)`` returns the shrunk minimal example; pass
``phases=[Phase.generate, Phase.shrink]`` (as the examples below do): the explain phase adds seconds and
can leave ``find`` returning a not fully shrunk example.

The defaults are enumeration-sized (S <= 3, A <= 3, H <= 4) and reach the edge cases that break code:
deterministic transitions, all-zero rewards, terminal initial states, gamma = 0 and gamma = 1, horizon 1,
near-deterministic policies (|theta| up to 30), unreachable states and a single action. Everything shrinks
towards S = 1, A = 1, H = 1, gamma = 1, no terminal states, zero rewards, deterministic transitions to state 0
and the uniform policy (theta = 0).

>>> from hypothesis import given
>>> @given(problems())
... def test_probabilities_sum_to_one(problem):
...     assert np.allclose(problem.policy.probs.sum(axis=1), 1.0)
>>> test_probabilities_sum_to_one()
"""
from __future__ import annotations

import inspect
import itertools
import math
import numbers
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra.numpy import arrays

from verify.errors import positive_int
from verify.model.mdp import TabularMDP
from verify.model.policy import LinearSoftmax, Policy, TabularSoftmax
from verify.model.problem import Problem

__all__ = ["POLICY_KINDS", "REWARD_KINDS", "mdps", "policies", "problems", "thetas"]

REWARD_KINDS = ("state_action", "transition", "zero")
POLICY_KINDS = ("tabular_softmax", "linear_softmax")
# Integer weights normalised to probabilities: exact zeros (deterministic rows, unreachable states) are common
# and every row sums to 1 within float rounding, far inside the MDP's 1e-9 tolerance.
_MAX_WEIGHT = 3
_MAX_HALF_REWARD = 6          # rewards are k / 2 for |k| <= 6: small, exact in binary, shrink to 0
_MAX_FEATURES = 3


# --- argument checking: every problem is an InvalidArgument raised before any drawing ------------------------------

def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _count(value: Any, name: str) -> st.SearchStrategy[int]:
    """A strategy of positive ints from an int or a strategy (drawn values are checked when drawn)."""
    if isinstance(value, st.SearchStrategy):
        return value.map(lambda v: _check_count(v, name))
    return st.just(_check_count(value, name))


def _check_count(value: Any, name: str) -> int:
    return positive_int(value, name, InvalidArgument, alternative="(or a strategy of them)")


def _check_horizon(value: Any) -> int | None:
    if value is None:
        return None
    return positive_int(value, "horizon", InvalidArgument, alternative="or None (until termination)")


def _check_gamma(value: Any) -> float:
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or not 0 <= value <= 1):
        raise InvalidArgument(f"gamma must be a number in [0, 1] (or a strategy of them), got {value!r}")
    return float(value)


def _check_terminal(value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise InvalidArgument(f"terminal must be True (at least one terminal state), False (none), None (either) "
                              f"or a strategy of these, got {value!r}")
    return value


def _check_reward_kind(value: Any) -> str | None:
    if value is not None and value not in REWARD_KINDS:
        raise InvalidArgument(f"reward_kind must be one of {REWARD_KINDS} or None (any), got {value!r}")
    return value


def _check_kind(value: Any) -> str | None:
    if value is not None and value not in POLICY_KINDS:
        raise InvalidArgument(f"kind must be one of {POLICY_KINDS} or None (either), got {value!r}")
    return value


def _check_max_abs(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise InvalidArgument(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _lift(value: Any, check) -> st.SearchStrategy:
    """``value`` as a strategy: a plain value is checked now, a strategy's draws are checked when drawn."""
    if isinstance(value, st.SearchStrategy):
        return value.map(check)
    return st.just(check(value))


def _with_repr(name: str, strategy: st.SearchStrategy, given: dict) -> st.SearchStrategy:
    """``strategy``, whose repr reads like Hypothesis' own: ``name(arg=value, ...)`` with the arguments given.

    Hypothesis' reprs come from its ``defines_strategy`` decorator (``LazyStrategy``), an internal; without it
    (a future Hypothesis) the strategy is returned as is and only the repr is plainer. Draws are unchanged either
    way: the lazy strategy draws from ``strategy``. (``st.composite``, the public way to such a repr, wraps each
    draw in a draw of its own, and the shrinker then finds larger counterexamples: tests/test_properties.py.)
    """
    try:
        from hypothesis.strategies._internal.utils import defines_strategy
    except ImportError:     # pragma: no cover - depends on Hypothesis' internals
        return strategy

    def build(**_):
        return strategy
    build.__name__ = build.__qualname__ = name
    return defines_strategy()(build)(**given)


def _given(fn, arguments: dict) -> dict:
    """The arguments of ``fn`` that differ from their defaults (by identity: the defaults are objects made once)."""
    params = inspect.signature(fn).parameters
    return {k: arguments[k] for k, p in params.items() if arguments[k] is not p.default}


# --- building blocks ------------------------------------------------------------------------------------------------

# Integer weight vectors in {0..3}^3 (all zero included: it maps to the point mass on state 0), ordered by
# support size then total weight, so sampled_from shrinks towards sparse rows.
_WEIGHTS_3 = tuple(sorted(itertools.product(range(_MAX_WEIGHT + 1), repeat=3),
                          key=lambda w: (sum(x > 0 for x in w), sum(w), [-x for x in w])))


def _reward() -> st.SearchStrategy[float]:
    return st.integers(-_MAX_HALF_REWARD, _MAX_HALF_REWARD).map(lambda k: k / 2.0)


def _default_gamma() -> st.SearchStrategy[float]:
    # The named values first: one_of shrinks to its first branch, sampled_from to its first element.
    return st.sampled_from([1.0, 0.0, 0.5, 0.9]) | st.floats(0.0, 1.0)


# --- public strategies ----------------------------------------------------------------------------------------------

def mdps(*, states: int | st.SearchStrategy[int] = st.integers(1, 3),
         actions: int | st.SearchStrategy[int] = st.integers(1, 3),
         horizon: int | None | st.SearchStrategy[int | None] = st.integers(1, 4),
         gamma: float | st.SearchStrategy[float] | None = None,
         terminal: bool | None | st.SearchStrategy[bool | None] = None,
         reward_kind: str | None | st.SearchStrategy[str | None] = None) -> st.SearchStrategy[TabularMDP]:
    """Validated ``TabularMDP``s with integer-weighted transition rows (each sums to 1 within 1e-9).

    Args:
      states: S, a positive int or a strategy of them (default 1..3; shrinks to 1).
      actions: A, likewise (default 1..3; shrinks to 1, the single-action case).
      horizon: H, a positive int, ``None`` for "until termination", or a strategy of these (default 1..4).
        With ``horizon=None`` and gamma = 1 the MDP is made to terminate surely: at least one terminal state
        and every non-terminal row gives some weight to one (required by ``TabularMDP``).
      gamma: the discount, a number in [0, 1] or a strategy (default: 1, 0, 0.5, 0.9 or any float in [0, 1];
        shrinks to 1).
      terminal: True (at least one terminal state), False (none), None (any mask; shrinks to none), or a
        strategy of these. Terminal states may carry initial mass (episodes of length 0).
      reward_kind: "state_action" (r[s, a]), "transition" (r[s, a, s']), "zero", None (any; shrinks to
        "state_action" with zero rewards) or a strategy. Rewards are multiples of 1/2 in [-3, 3].

    Returns:
      A strategy of ``TabularMDP``.

    Raises:
      InvalidArgument: a malformed argument (a drawn value from a strategy argument is checked when drawn),
        or horizon=None with gamma=1 and terminal=False, which no MDP satisfies.

    >>> from hypothesis import Phase, find, settings
    >>> quiet = settings(database=None, derandomize=True, phases=[Phase.generate, Phase.shrink])
    >>> m = find(mdps(), lambda m: True, settings=quiet)        # the shrink target
    >>> m.transitions.shape, m.horizon, m.gamma, bool(m.terminal.any()), bool(m.rewards.any())
    ((1, 1, 1), 1, 1.0, False, False)
    """
    S_st, A_st = _count(states, "states"), _count(actions, "actions")
    H_st = _lift(horizon, _check_horizon)
    g_st = _default_gamma() if gamma is None else _lift(gamma, _check_gamma)
    term_st = _lift(terminal, _check_terminal)
    rk_st = _lift(reward_kind, _check_reward_kind)
    if (horizon is None and terminal is False and not isinstance(gamma, st.SearchStrategy) and gamma is not None
            and _check_gamma(gamma) == 1.0):
        raise InvalidArgument("horizon=None with gamma=1 needs a terminal state, but terminal=False")
    given = _given(mdps, dict(states=states, actions=actions, horizon=horizon, gamma=gamma, terminal=terminal,
                              reward_kind=reward_kind))
    return _with_repr("mdps", _mdps(S_st, A_st, H_st, g_st, term_st, rk_st), given)


@st.composite
def _mdps(draw, S_st, A_st, H_st, g_st, term_st, rk_st) -> TabularMDP:
    S, A, H, gamma = draw(S_st), draw(A_st), draw(H_st), draw(g_st)
    want_terminal = draw(term_st)
    must_end = H is None and gamma == 1.0
    if must_end and want_terminal is False:
        assume(False)       # only reachable with strategy arguments; rare by construction
    kind = draw(rk_st)
    if kind is None:
        kind = draw(st.sampled_from(REWARD_KINDS))
    # Half the MDPs (and the shrink target) are deterministic: every row a point mass.
    stochastic = draw(st.booleans())
    # Everything about state s is drawn in one block of a fixed number of choices (rows and rewards are drawn
    # at width max(S, 3) and cut to S). Lowering S then leaves the earlier states' blocks intact, which lets
    # the shrinker remove a state instead of getting stuck at an example with a useless unreachable one.
    width = max(S, 3)
    if width == 3:      # one choice per row: every normalised weight vector in {0..3}^3, simplest first
        weights = st.sampled_from(_WEIGHTS_3)
    else:
        weights = st.lists(st.integers(0, _MAX_WEIGHT), min_size=width, max_size=width)
    mask = np.zeros(S, dtype=bool)
    init_w = np.zeros(S)
    P = np.zeros((S, A, S))
    r = np.zeros((S, A, S))
    for s in range(S):
        if want_terminal is not False:
            mask[s] = draw(st.booleans())
        init_w[s] = draw(st.integers(0, _MAX_WEIGHT))
        for a in range(A):
            if stochastic:
                w = np.array(draw(weights)[:S], dtype=float)
                P[s, a] = w / w.sum() if w.any() else np.eye(S)[0]
            else:
                P[s, a, draw(st.integers(0, width - 1)) % S] = 1.0
            if kind == "state_action":
                r[s, a, :] = draw(_reward())
            elif kind == "transition":
                r[s, a] = draw(st.lists(_reward(), min_size=width, max_size=width))[:S]
    initial = init_w / init_w.sum() if init_w.any() else np.eye(S)[0]
    if (want_terminal or must_end) and not mask.any():
        mask[draw(st.integers(0, S - 1))] = True
    if must_end:
        # Certain termination: every non-terminal row leaks weight to a terminal state.
        ends = np.flatnonzero(mask)
        for s in np.flatnonzero(~mask):
            for a in range(A):
                e = ends[draw(st.integers(0, ends.size - 1))]
                leak = draw(st.integers(1, _MAX_WEIGHT)) / (_MAX_WEIGHT + 1)
                P[s, a] = (1 - leak) * P[s, a]
                P[s, a, e] += leak
        P = P / P.sum(axis=2, keepdims=True)
    rewards = r[:, :, 0] if kind != "transition" else r
    return TabularMDP(initial=initial, transitions=P, rewards=rewards, terminal=mask, gamma=gamma, horizon=H,
                      name="generated")


def thetas(shape: int | tuple[int, ...] | st.SearchStrategy[tuple[int, ...]], *,
           max_abs: float = 30.0) -> st.SearchStrategy[np.ndarray]:
    """float64 parameter arrays with entries in [-max_abs, max_abs]; shrink to all zeros (the uniform policy).

    Hypothesis favours the bounds, so |theta| = max_abs (near-deterministic softmax at the default 30) is
    reached as readily as theta = 0.

    Args:
      shape: the array's shape (an int, a tuple of positive ints, or a strategy of tuples).
      max_abs: bound on |theta| (positive, finite; default 30).

    Returns:
      A strategy of float arrays of the given shape.

    Raises:
      InvalidArgument: a malformed shape or bound.

    >>> from hypothesis import Phase, find, settings
    >>> quiet = settings(database=None, derandomize=True, phases=[Phase.generate, Phase.shrink])
    >>> find(thetas((2, 3)), lambda th: True, settings=quiet).tolist()
    [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    bound = _check_max_abs(max_abs, "max_abs")
    if isinstance(shape, st.SearchStrategy):
        shape_st = shape.map(_check_shape)
    else:
        shape_st = st.just(_check_shape(shape))
    elements = st.floats(-bound, bound, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    # Adding 0.0 turns -0.0 into 0.0 so saved files and printed examples read naturally.
    drawn = shape_st.flatmap(lambda shp: arrays(np.float64, shp, elements=elements).map(lambda th: th + 0.0))
    return _with_repr("thetas", drawn, _given(thetas, dict(shape=shape, max_abs=max_abs)))


def _check_shape(shape: Any) -> tuple[int, ...]:
    if _is_int(shape):
        shape = (shape,)
    if not isinstance(shape, tuple) or not shape or not all(_is_int(n) and n >= 1 for n in shape):
        raise InvalidArgument(f"shape must be a positive int or a non-empty tuple of positive ints, got {shape!r}")
    return tuple(int(n) for n in shape)


def policies(mdp: TabularMDP | st.SearchStrategy[TabularMDP], *,
             kind: str | None | st.SearchStrategy[str | None] = None,
             max_abs_theta: float = 30.0) -> st.SearchStrategy[Policy]:
    """Softmax policies acting on ``mdp``'s states and actions.

    ``linear_softmax`` draws K = 1..3 features per (s, a), integers in [-2, 2] (shrink to 0), and theta of
    shape [K]; ``tabular_softmax`` draws theta of shape [S, A]. Both shrink to theta = 0, the uniform policy.

    Args:
      mdp: a ``TabularMDP`` or a strategy of them.
      kind: "tabular_softmax", "linear_softmax", None (either; shrinks to tabular) or a strategy.
      max_abs_theta: bound on |theta| (default 30: near-deterministic policies are reached).

    Returns:
      A strategy of ``Policy``.

    Raises:
      InvalidArgument: ``mdp`` is not an MDP (or strategy), unknown ``kind``, bad bound.

    >>> from hypothesis import Phase, find, settings
    >>> quiet = settings(database=None, derandomize=True, phases=[Phase.generate, Phase.shrink])
    >>> mdp = TabularMDP(initial=[1], transitions=[[[1.0], [1.0]]], rewards=[[1.0, 0.0]], horizon=1)
    >>> find(policies(mdp), lambda p: True, settings=quiet).probs.tolist()
    [[0.5, 0.5]]
    """
    if isinstance(mdp, st.SearchStrategy):
        mdp_st = mdp.map(_check_mdp)
    else:
        mdp_st = st.just(_check_mdp(mdp))
    kind_st = _lift(kind, _check_kind)
    bound = _check_max_abs(max_abs_theta, "max_abs_theta")
    given = _given(policies, dict(mdp=mdp, kind=kind, max_abs_theta=max_abs_theta))
    return _with_repr("policies", _policies(mdp_st, kind_st, bound), given)


def _check_mdp(mdp: Any) -> TabularMDP:
    if not isinstance(mdp, TabularMDP):
        raise InvalidArgument(f"mdp must be a TabularMDP or a strategy of them, got {type(mdp).__name__}")
    return mdp


@st.composite
def _policies(draw, mdp_st, kind_st, bound: float) -> Policy:
    mdp = draw(mdp_st)
    S, A = mdp.n_states, mdp.n_actions
    kind = draw(kind_st)
    if kind is None:
        kind = draw(st.sampled_from(POLICY_KINDS))
    if kind == "tabular_softmax":
        return TabularSoftmax(draw(thetas((S, A), max_abs=bound)))
    K = draw(st.integers(1, _MAX_FEATURES))
    phi = np.reshape(draw(st.lists(st.integers(-2, 2), min_size=S * A * K, max_size=S * A * K)), (S, A, K)) * 1.0
    return LinearSoftmax(phi, draw(thetas((K,), max_abs=bound)))


def problems(*, states: int | st.SearchStrategy[int] = st.integers(1, 3),
             actions: int | st.SearchStrategy[int] = st.integers(1, 3),
             horizon: int | None | st.SearchStrategy[int | None] = st.integers(1, 4),
             gamma: float | st.SearchStrategy[float] | None = None,
             terminal: bool | None | st.SearchStrategy[bool | None] = None,
             reward_kind: str | None | st.SearchStrategy[str | None] = None,
             kind: str | None | st.SearchStrategy[str | None] = None,
             max_abs_theta: float = 30.0) -> st.SearchStrategy[Problem]:
    """``Problem(mdp, policy)`` pairs: an MDP from ``mdps(...)`` and a policy for it from ``policies(...)``.

    The arguments are those of ``mdps`` and ``policies``; the result is what an MDP file holds, so
    ``verify.problem.save_problem`` writes any example as a file the CLI accepts.

    Raises:
      InvalidArgument: as ``mdps`` and ``policies``.

    >>> from hypothesis import Phase, find, settings
    >>> quiet = settings(database=None, derandomize=True, phases=[Phase.generate, Phase.shrink])
    >>> p = find(problems(), lambda p: True, settings=quiet)
    >>> p.mdp.horizon, p.mdp.gamma, p.policy.kind
    (1, 1.0, 'tabular_softmax')
    """
    mdp_st = mdps(states=states, actions=actions, horizon=horizon, gamma=gamma, terminal=terminal,
                  reward_kind=reward_kind)
    kind_st = _lift(kind, _check_kind)
    bound = _check_max_abs(max_abs_theta, "max_abs_theta")
    given = _given(problems, dict(states=states, actions=actions, horizon=horizon, gamma=gamma, terminal=terminal,
                                  reward_kind=reward_kind, kind=kind, max_abs_theta=max_abs_theta))
    return _with_repr("problems", _problems(mdp_st, kind_st, bound), given)


@st.composite
def _problems(draw, mdp_st, kind_st, bound: float) -> Problem:
    mdp = draw(mdp_st)
    return Problem(mdp, draw(_policies(st.just(mdp), kind_st, bound)))
