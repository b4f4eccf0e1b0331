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
``TimeLimit`` that ``gymnasium.make`` applies (``spec.max_episode_steps``: FrozenLake 4x4 100, 8x8 200, Taxi 200),
so J is exactly the expected return of a ``gymnasium.make`` episode. CliffWalking has no time limit: pass one, or
horizon None (it terminates surely under any softmax policy).
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from verify.episodes import Episodes, episodes_from_lists
from verify.errors import InvalidMDPError, UsageError
from verify.mdp import TabularMDP, reachable
from verify.policy import Policy, TabularSoftmax
from verify.problem import Problem

__all__ = ["TIME_LIMIT", "gym_problem", "gymnasium_sampler", "make_env", "mdp_from_env", "parse_gym_kwargs",
           "sample_episodes_gymnasium"]

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
    """``gymnasium.make(env_id, **kwargs)``, with every failure (unknown id, bad kwargs) as a UsageError."""
    gym = _gymnasium()
    kwargs = dict(kwargs or {})
    try:
        return gym.make(env_id, **kwargs)
    except Exception as exc:  # gymnasium raises many types (NameNotFound, TypeError, KeyError, ...)
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


def _model_arrays(env, S: int, A: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """P, r [S, A, S] and the probability mass of marked / unmarked termination per (s, a, s')."""
    table = env.unwrapped.P
    P, pr = np.zeros((S, A, S)), np.zeros((S, A, S))
    marked, unmarked = np.zeros((S, A, S)), np.zeros((S, A, S))
    for s in range(S):
        for a in range(A):
            try:
                entries = table[s][a]
            except (KeyError, IndexError, TypeError):
                raise UsageError(f"{_env_name(env)}: P[{s}][{a}] is missing") from None
            for i, entry in enumerate(entries):
                try:
                    prob, s_next, reward, terminated = entry
                    prob, reward, s_next = float(prob), float(reward), int(s_next)
                except (TypeError, ValueError):
                    raise UsageError(f"{_env_name(env)}: P[{s}][{a}][{i}] = {entry!r} is not "
                                     "(prob, next_state, reward, terminated)") from None
                if not 0 <= s_next < S or not np.isfinite(prob) or not np.isfinite(reward):
                    raise UsageError(f"{_env_name(env)}: P[{s}][{a}][{i}] = {entry!r} is out of range")
                P[s, a, s_next] += prob
                pr[s, a, s_next] += prob * reward
                (marked if terminated else unmarked)[s, a, s_next] += prob
    r = np.divide(pr, P, out=np.zeros_like(pr), where=P > 0)
    return P, r, marked, unmarked


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
    P, r, marked, unmarked = _model_arrays(env, S, A)
    both = np.argwhere((marked > 0) & (unmarked > 0))
    if both.size:
        s, a, s_next = both[0]
        raise UsageError(f"{label}: P[{s}][{a}] reaches state {s_next} both with and without termination")
    terminal = (marked > 0).any(axis=(0, 1))
    alive = ~terminal
    live = reachable((P > 0).any(axis=1) & alive[:, None] & alive[None, :], (rho0 > 0) & alive)
    bad = np.argwhere(live[:, None, None] & terminal[None, None, :] & (unmarked > 0))
    if bad.size:
        s, a, s_next = bad[0]
        raise UsageError(f"{label}: state {s_next} is terminal (some transition into it terminates), but the "
                         f"reachable transition P[{s}][{a}] enters it without terminating")
    names = _ACTION_NAMES.get(type(raw).__name__)
    try:
        return TabularMDP(initial=rho0, transitions=P, rewards=r, terminal=terminal, gamma=gamma, horizon=horizon,
                          actions=names if names and len(names) == A else None, name=name or label)
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


def sample_episodes_gymnasium(env, mdp: TabularMDP, policy: Policy, n: int, rng: np.random.Generator, *,
                              max_steps: int | None = None) -> Episodes:
    """``n`` episodes from gymnasium's own ``env.reset``/``env.step`` loop, as an Episodes batch.

    Independent of pgverify's model: states, rewards and termination are what ``env.step`` returns; only the
    actions a_t ~ pi(.|s_t) are drawn by us. An episode ends when gymnasium reports ``terminated`` or after the
    horizon (``truncated`` from gymnasium's TimeLimit is ignored: the MDP's horizon decides).

    Args:
      env: the environment (e.g. from ``make_env``), whose imported model is ``mdp``.
      mdp: gives the horizon, gamma and the shapes the estimators need.
      policy: the policy acting.
      n: number of episodes.
      rng: the only source of randomness: seeds the environment once, then draws every action.
      max_steps: cap for horizon None (default: the horizon, else 100 000).

    Returns:
      Episodes s_t [n, T+1], a_t [n, T], r_t [n, T], lengths [n].

    Raises:
      UsageError: bad n, or an episode still running at the cap with horizon None.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise UsageError(f"the number of episodes must be a positive integer, got {n!r}")
    policy.check_compatible(mdp.n_states, mdp.n_actions)
    cap = mdp.horizon if mdp.horizon is not None else (max_steps or 100_000)
    cdf = np.cumsum(policy.probs, axis=1)
    last = mdp.n_actions - 1
    episodes = []
    obs, _ = env.reset(seed=int(rng.integers(2**63)))
    for i in range(n):
        if i:
            obs, _ = env.reset()
        states, actions, rewards, done = [int(obs)], [], [], False
        while not done and len(actions) < cap:
            # Inverse CDF; the min guards against a cumulative sum that rounds to just below 1.
            a = min(int(np.searchsorted(cdf[states[-1]], rng.random(), side="right")), last)
            obs, reward, done, _, _ = env.step(a)
            states.append(int(obs))
            actions.append(a)
            rewards.append(float(reward))
        if not done and mdp.horizon is None:
            raise UsageError(f"a gymnasium episode did not terminate within {cap} steps (horizon null)")
        episodes.append((states, actions, rewards))
    return episodes_from_lists(episodes, mdp, policy)


def gymnasium_sampler(env_id: str, kwargs: dict[str, Any] | None = None, *, chunk: int = 10_000):
    """An episode source for ``verify.mc.run_estimators``: batches from gymnasium's own env.step loop.

    Args:
      env_id, kwargs: the environment, as for ``make_env`` (made once per run).
      chunk: episodes per batch (memory stays bounded for any number of episodes).

    Returns:
      ``sample(mdp, policy, n, rng)`` yielding Episodes batches of ``sample_episodes_gymnasium``.
    """
    def sample(mdp: TabularMDP, policy: Policy, n: int, rng: np.random.Generator):
        env = make_env(env_id, kwargs)
        try:
            for start in range(0, n, chunk):
                yield sample_episodes_gymnasium(env, mdp, policy, min(chunk, n - start), rng)
        finally:
            env.close()
    return sample
