"""Episodes from gymnasium's own ``env.reset``/``env.step`` loop (the optional extra ``pgverify[gym]``): an episode
source independent of pgverify's model, for checking the imported model and the estimators against the
environment itself. The model import is ``verify.gym``."""
from __future__ import annotations

from typing import Any

import numpy as np

from verify.errors import UsageError, positive_int
from verify.frameworks.gym import make_env
from verify.model.mdp import TabularMDP
from verify.model.policy import Policy
from verify.numerics.episodes import Episodes, episodes_from_lists

__all__ = ["gymnasium_sampler", "sample_episodes_gymnasium"]


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
    positive_int(n, "the number of episodes")
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
