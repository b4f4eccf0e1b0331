"""gymnasium's toy-text environments as exact ``TabularMDP``s (the optional extra ``pgverify[gym]``).

Toy-text environments publish their whole model in ``env.unwrapped.P``: for each state s and action a a list of
``(prob, s', reward, terminated)``. The import is exact:

    P[s, a, s'] = sum of prob over the entries of (s, a) leading to s'
    r[s, a, s'] = (sum of prob * reward over those entries) / P[s, a, s']   (probability-weighted mean)
    terminal    = {s' : some entry with prob > 0 leading to s' has terminated = True}
    rho0        = env.unwrapped.initial_state_distrib (or ``isd``, the name older toy-text code used)

The weighted mean keeps sum_{s'} P r, hence J and grad J, exact; FrozenLake, CliffWalking and Taxi never give two
entries to the same s' different rewards anyway. gymnasium marks termination per transition, pgverify per state:
the import checks that every transition from a live state (reachable from rho0 without passing a terminal state)
into a terminal state is marked terminated. Taxi shows why only live states count: its "passenger already
delivered" states are entered unmarked from other delivered states, but those are reachable only through the
terminating drop-off. CliffWalking's cliff is not terminal: gymnasium sends the agent back to the start (-100).

Horizon and discount: gymnasium's return is undiscounted, so gamma defaults to 1; the horizon defaults to the
``TimeLimit`` that ``gymnasium.make`` applies (``spec.max_episode_steps``, which belongs to the id, not to the map:
FrozenLake-v1 100 whatever its ``map_name``, FrozenLake8x8-v1 200, Taxi-v4 200), so J is exactly the expected
return of a ``gymnasium.make`` episode.

CliffWalking has no time limit: pass one, or horizon None (it terminates surely under any softmax policy).

The model is imported as successor lists (``TabularMDP``'s sparse form), never as dense [S, A, S] arrays.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from verify.errors import InvalidMDPError, UsageError
from verify.model.mdp import TabularMDP, reachable_csr
from verify.model.policy import Policy, TabularSoftmax
from verify.model.problem import Problem

__all__ = ["TIME_LIMIT", "gym_problem", "make_env", "mdp_from_env", "parse_gym_kwargs"]

TIME_LIMIT = "time_limit"   # horizon = the environment's registered max_episode_steps

_ACTION_NAMES = {
    "FrozenLakeEnv": ("left", "down", "right", "up"),
    "CliffWalkingEnv": ("up", "right", "down", "left"),
    "TaxiEnv": ("south", "north", "east", "west", "pickup", "dropoff"),
}


def _gymnasium():
    try:
        import gymnasium
    except ImportError:
        raise UsageError("gymnasium environments need gymnasium: pip install 'pgverify[gym]'") from None
    return gymnasium


def parse_gym_kwargs(items: list[str] | None) -> dict[str, Any]:
    """``key=value`` strings as keyword arguments: values are JSON where they parse, else strings.

    ``true``/``false``/``null`` (and Python's ``True``/``False``/``None``) become bool/None, numbers become
    int/float, ``["SFFF", ...]`` a list, anything else (``8x8``) stays a string.

    Raises:
      UsageError: an item without ``=`` or with an empty key, or a key given twice.

    >>> parse_gym_kwargs(["map_name=8x8", "is_slippery=false", "success_rate=0.5", "x=None"])
    {'map_name': '8x8', 'is_slippery': False, 'success_rate': 0.5, 'x': None}
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UsageError(f"--gym-kwargs expects key=value with a Python identifier as key, got {item!r}")
        if key in out:
            raise UsageError(f"--gym-kwargs gives {key!r} twice")
        python_words = {"True": True, "False": False, "None": None}
        if text in python_words:
            out[key] = python_words[text]
            continue
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def make_env(env_id: str, kwargs: dict[str, Any] | None = None):
    """``gymnasium.make(env_id, **kwargs)``; a bad id or bad kwargs is a UsageError.

    Caught: gymnasium's own errors (unknown, deprecated or unregistered id, a missing optional dependency) and
    what an environment's constructor raises for arguments it rejects (TypeError for an unknown keyword, KeyError
    for an unknown map, ValueError/AssertionError for a bad value). Anything else (MemoryError, a bug) propagates.
    """
    gym = _gymnasium()
    kwargs = dict(kwargs or {})
    try:
        return gym.make(env_id, **kwargs)
    except (gym.error.Error, TypeError, KeyError, ValueError, AssertionError) as exc:
        detail = str(exc).replace("\x1b[33m", "").replace("\x1b[0m", "")
        detail = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        shown = f" with {kwargs}" if kwargs else ""
        raise UsageError(f"cannot make gymnasium environment {env_id!r}{shown}: {detail}") from None


def _env_name(env) -> str:
    spec = getattr(env, "spec", None)
    if spec is None:
        return type(env.unwrapped).__name__
    extra = ",".join(f"{k}={v}" for k, v in sorted(spec.kwargs.items()) if k != "render_mode")
    return f"{spec.id}({extra})" if extra else spec.id


def _initial_distribution(env, S: int) -> np.ndarray:
    raw = env.unwrapped
    for attr in ("initial_state_distrib", "isd"):
        if getattr(raw, attr, None) is not None:
            rho0 = np.asarray(getattr(raw, attr), dtype=float)
            if rho0.shape != (S,):
                raise UsageError(f"{_env_name(env)}: {attr} has shape {rho0.shape}, expected ({S},)")
            return rho0
    raise UsageError(f"{_env_name(env)} does not publish its initial-state distribution "
                     "(no initial_state_distrib or isd attribute), so it cannot be imported exactly")


def _model_entries(env, S: int, A: int) -> dict[tuple[int, int, int], list[float]]:
    """{(s, a, s'): [probability, probability * reward, marked mass, unmarked mass]} of ``env.unwrapped.P``,
    accumulated in gymnasium's order; only the entries the table lists (no [S, A, S] array)."""
    table = env.unwrapped.P
    entries: dict[tuple[int, int, int], list[float]] = {}
    for s in range(S):
        for a in range(A):
            try:
                listed = table[s][a]
            except (KeyError, IndexError, TypeError):
                raise UsageError(f"{_env_name(env)}: P[{s}][{a}] is missing") from None
            for i, entry in enumerate(listed):
                try:
                    prob, s_next, reward, terminated = entry
                    prob, reward, s_next = float(prob), float(reward), int(s_next)
                except (TypeError, ValueError):
                    raise UsageError(f"{_env_name(env)}: P[{s}][{a}][{i}] = {entry!r} is not "
                                     "(prob, next_state, reward, terminated)") from None
                if not 0 <= s_next < S or not np.isfinite(prob) or not np.isfinite(reward):
                    raise UsageError(f"{_env_name(env)}: P[{s}][{a}][{i}] = {entry!r} is out of range")
                acc = entries.setdefault((s, a, s_next), [0.0, 0.0, 0.0, 0.0])
                acc[0] += prob
                acc[1] += prob * reward
                acc[2 if terminated else 3] += prob
    return entries


def _tabular_shape(env) -> tuple[int, int]:
    """(S, A) of an environment whose model ``env.step`` follows exactly; UsageError otherwise."""
    raw = env.unwrapped
    n_states = getattr(getattr(raw, "observation_space", None), "n", None)
    n_actions = getattr(getattr(raw, "action_space", None), "n", None)
    if getattr(raw, "P", None) is None or n_states is None or n_actions is None:
        raise UsageError(f"{_env_name(env)} has no tabular model (needs env.unwrapped.P and Discrete observation "
                         "and action spaces, as gymnasium's toy-text environments have)")
    if getattr(raw, "fickle_passenger", False):
        raise UsageError(f"{_env_name(env)}: fickle_passenger changes the destination inside step(), outside P; "
                         "it cannot be imported exactly")
    return int(n_states), int(n_actions)


def mdp_from_env(env, *, horizon: int | None, gamma: float = 1.0, name: str | None = None) -> TabularMDP:
    """The exact TabularMDP of a toy-text environment (see the module docstring for the mapping).

    Args:
      env: a gymnasium environment whose ``unwrapped`` has ``P``, Discrete observation and action spaces and
        ``initial_state_distrib`` (or ``isd``).
      horizon: maximum number of actions, or None for "until termination".
      gamma: discount in [0, 1].
      name: the MDP's name (default: the environment id with its kwargs).

    Returns:
      TabularMDP with S = observation_space.n states named "0".."S-1" (gymnasium's observations) and
      action names where known.

    Raises:
      UsageError: no tabular model, a malformed P, termination that is not a property of the entered state,
        or a model that ``env.step`` does not follow (Taxi's fickle passenger).
      InvalidMDPError: the resulting MDP is invalid (e.g. a bad horizon or gamma).
    """
    raw, label = env.unwrapped, _env_name(env)
    S, A = _tabular_shape(env)
    rho0 = _initial_distribution(env, S)
    entries = _model_entries(env, S, A)
    keys = sorted(entries)
    s_e, a_e, n_e = (np.array([k[i] for k in keys], dtype=np.intp).reshape(-1) for i in range(3))
    prob, pr, marked, unmarked = np.array([entries[k] for k in keys], dtype=float).reshape(-1, 4).T
    both = np.flatnonzero((marked > 0) & (unmarked > 0))
    if both.size:
        i = both[0]
        raise UsageError(f"{label}: P[{s_e[i]}][{a_e[i]}] reaches state {n_e[i]} both with and without termination")
    terminal = np.zeros(S, dtype=bool)
    terminal[n_e[marked > 0]] = True
    alive = ~terminal
    moves = np.flatnonzero((prob > 0) & alive[s_e] & alive[n_e])       # keys are sorted by s
    indptr = np.concatenate([[0], np.cumsum(np.bincount(s_e[moves], minlength=S))])
    live = reachable_csr(indptr, n_e[moves], (rho0 > 0) & alive)
    bad = np.flatnonzero(live[s_e] & terminal[n_e] & (unmarked > 0))
    if bad.size:
        i = bad[0]
        raise UsageError(f"{label}: state {n_e[i]} is terminal (some transition into it terminates), but the "
                         f"reachable transition P[{s_e[i]}][{a_e[i]}] enters it without terminating")
    # The probability-weighted mean reward of the entries merged into one (s, a, s').
    r = np.divide(pr, prob, out=np.zeros_like(pr), where=prob > 0)
    index = np.stack([s_e, a_e, n_e], axis=1).astype(float)
    transitions = {"sparse": np.concatenate([index, prob[:, None]], axis=1)}
    rewards = {"sparse": np.concatenate([index, r[:, None]], axis=1)}
    names = _ACTION_NAMES.get(type(raw).__name__)
    try:
        return TabularMDP(initial=rho0, transitions=transitions, rewards=rewards, terminal=terminal, gamma=gamma,
                          horizon=horizon, states=S, actions=names if names and len(names) == A else A,
                          name=name or label)
    except InvalidMDPError as exc:
        raise InvalidMDPError(f"{label}: {exc}") from None


def gym_problem(env_id: str, kwargs: dict[str, Any] | None = None, *, horizon: int | None | str = TIME_LIMIT,
                gamma: float = 1.0, policy: Policy | None = None) -> Problem:
    """An imported environment with a policy: uniform tabular softmax (theta = 0) unless ``policy`` is given.

    Args:
      env_id, kwargs: as for ``gymnasium.make`` (e.g. "FrozenLake-v1", {"map_name": "8x8"}).
      horizon: a positive int, None (until termination) or TIME_LIMIT (the registered max_episode_steps).
      gamma: discount (default 1: gymnasium's return is undiscounted).
      policy: the policy to differentiate.

    Raises:
      UsageError, InvalidMDPError: as ``make_env`` and ``mdp_from_env``; TIME_LIMIT for an environment without one.

    >>> pytest = __import__("pytest"); _ = pytest.importorskip("gymnasium")
    >>> p = gym_problem("FrozenLake-v1", {"is_slippery": False})
    >>> p.mdp.n_states, p.mdp.n_actions, p.mdp.horizon, int(p.mdp.terminal.sum())
    (16, 4, 100, 5)
    """
    env = make_env(env_id, kwargs)
    try:
        _tabular_shape(env)
        if horizon == TIME_LIMIT:
            horizon = env.spec.max_episode_steps if env.spec is not None else None
            if horizon is None:
                raise UsageError(f"{env_id} has no registered time limit; give a horizon (--horizon H, or null "
                                 "for until termination)")
        mdp = mdp_from_env(env, horizon=horizon, gamma=gamma)
    finally:
        env.close()
    if policy is None:
        policy = TabularSoftmax(np.zeros((mdp.n_states, mdp.n_actions)))
    return Problem(mdp, policy)
