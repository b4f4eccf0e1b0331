r"""The REINFORCE estimator catalog: unbiased estimators of grad J and the biased pitfalls seen in real code.

Every estimator maps a batch of episodes to per-episode estimates g(tau_n), shape [N, *theta.shape]; the
Monte Carlo estimate of grad J is their mean. All of them are "per-step weights, then score sums":

    g(tau) = sum_t w_t(tau) grad log pi(a_t|s_t),   computed by ``verify.episodes.step_score_sums(episodes, w)``

with w at the valid steps only (``episodes.steps``, not the padded [N, T] grid: a batch is padded to its longest
episode, ~10x the mean on FrozenLake), so the cost follows the number of steps taken. The values are bit-for-bit
those of the padded formulas (``score_sums(episodes, w_t)``).

| name                   | w_t                                        | unbiased |
|------------------------|--------------------------------------------|----------|
| total_return           | R(tau) = sum_t' gamma^t' r_t'              | yes (seed eqs. 14/15) |
| reward_to_go           | G_t = sum_{t' >= t} gamma^t' r_t'          | yes (causality) |
| baseline_constant      | R(tau) - b, b = J(theta) fixed in advance  | yes (E[grad log pi] = 0) |
| baseline_value         | G_t - gamma^t V_t(s_t)                     | yes (b depends on s_t, t only) |
| rtg_restart_discount   | sum_{t' >= t} gamma^(t' - t) r_t'          | no, unless gamma = 1 |
| rtg_skip_current       | G_{t+1} (drops r_t)                        | no |
| action_baseline        | G_t - gamma^t Q_t(s_t, a_t)                | no: E = 0, bias = -grad J |
| score_wrong_time       | G_{t-1} at step t (score shifted by one)   | no: bias = -E[grad log pi_0 G_0] |
| batch_normalized       | (G_t - mean G) / std G over the batch      | no (and batch-dependent) |

V_t and Q_t are the exact values with H - t actions left (finite horizon) or the stationary values (horizon
null), by dynamic programming; they depend on t because the horizon is finite.

``batch_normalized`` uses statistics of the whole batch, so its per-episode values are not independent and have
no per-episode mean. On an exact enumeration (``episodes.weights`` set) the statistics are the p(tau)-weighted
population ones, so its "exact mean" is the N -> infinity limit of the batch average. The batch is the
``Episodes`` object the estimator is given: ``verify.mc.run_estimators`` gives one sampler chunk at a time
(``verify.sampler.chunk_size`` episodes, 23 239 on FrozenLake 4x4 with H = 100), so the statistics are over a
chunk's steps. The step list changes how a batch is computed on, not which episodes form it.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np

from verify.episodes import Episodes, at_steps, discounted_returns, reward_to_go, step_reward_to_go, step_score_sums
from verify.errors import UsageError
from verify.mdp import TabularMDP
from verify.policy import Policy

__all__ = ["ESTIMATORS", "Estimator", "NORMALIZE_EPS", "estimator_names", "get_estimator", "value_tables"]

NORMALIZE_EPS = 1e-8   # the customary epsilon of return normalisation


@dataclass(frozen=True)
class Estimator:
    """One named gradient estimator.

    Attributes:
      name: catalog key.
      latex: the per-episode estimate g(tau) as a LaTeX formula.
      unbiased: whether E[g(tau)] = grad J(theta) for every MDP and policy.
      description: one sentence for people.
      per_episode: episodes -> [N, *theta.shape].
      batch_dependent: each episode's value depends on the whole batch (no per-episode exact mean).
    """

    name: str
    latex: str
    unbiased: bool
    description: str
    per_episode: Callable[[Episodes], np.ndarray]
    batch_dependent: bool = False

    def __call__(self, episodes: Episodes) -> np.ndarray:
        return self.per_episode(episodes)


_CACHE: OrderedDict = OrderedDict()


def value_tables(mdp: TabularMDP, policy: Policy) -> tuple[np.ndarray, np.ndarray]:
    """Exact V_t(s) and Q_t(s, a): expected sum_{k >= 0} gamma^k r_{t+k} from s_t = s (and a_t = a).

    Finite horizon H: V [H, S] and Q [H, S, A] by backward induction with H - t actions left. Horizon null:
    V [1, S] and Q [1, S, A], the stationary values by a linear solve (row 0 serves every t). Terminal states
    have value 0. Cached for the last few (mdp, policy) pairs, since every batch of a run needs the same tables.

    >>> from verify.policy import TabularSoftmax
    >>> bandit = TabularMDP(initial=[1], transitions=[[[1.0], [1.0]]], rewards=[[1.0, 0.0]], horizon=2)
    >>> V, Q = value_tables(bandit, TabularSoftmax(np.zeros((1, 2))))
    >>> V.tolist(), Q[:, 0].tolist()
    ([[1.0], [0.5]], [[1.5, 0.5], [1.0, 0.0]])
    """
    key = (id(mdp), id(policy))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is mdp and hit[1] is policy:
        return hit[2], hit[3]
    P, pi, g = mdp.transitions, policy.probs, mdp.gamma
    P_alive = P * (~mdp.terminal)[None, None, :]     # entering a terminal state ends the episode
    rbar = mdp.expected_reward
    if mdp.horizon is None:
        P_pi = np.einsum("sa,sat->st", pi, P_alive)
        V = np.linalg.solve(np.eye(mdp.n_states) - g * P_pi, (pi * rbar).sum(axis=1))[None]
        Q = (rbar + g * (P_alive @ V[0]))[None]
    else:
        H = mdp.horizon
        Q = np.empty((H, *rbar.shape))
        V = np.empty((H, mdp.n_states))
        v_next = np.zeros(mdp.n_states)
        for t in range(H - 1, -1, -1):
            Q[t] = rbar + g * (P_alive @ v_next)
            V[t] = v_next = (pi * Q[t]).sum(axis=1)
    for arr in (V, Q):
        arr.setflags(write=False)
    _CACHE[key] = (mdp, policy, V, Q)
    while len(_CACHE) > 8:
        _CACHE.popitem(last=False)
    return V, Q


# Weights are per valid step, [M] in ``eps.steps`` order (see ``verify.episodes.Steps``).

def _discounted_at_step(table: np.ndarray, eps: Episodes, *index: np.ndarray) -> np.ndarray:
    """gamma^t table[t, *index] per step, shape [M]; a stationary table (one row) serves every t."""
    t = eps.steps.t
    # One flat take instead of a multi-dimensional fancy index (several times faster).
    flat = t if table.shape[0] > 1 else np.zeros_like(t)
    for i, size in zip(index, table.shape[1:]):
        flat = flat * size + i
    return eps.discount_t.take(t) * table.reshape(-1).take(flat)


def _weights_total_return(eps: Episodes) -> np.ndarray:
    return discounted_returns(eps)[eps.steps.n]


def _weights_reward_to_go(eps: Episodes) -> np.ndarray:
    return step_reward_to_go(eps)


def _weights_baseline_constant(eps: Episodes) -> np.ndarray:
    # b = J(theta) = sum_s rho0(s) V_0(s), from the MDP, never from the batch (a batch mean correlates with g(tau)).
    V, _ = value_tables(eps.mdp, eps.policy)
    b = float(eps.mdp.initial @ V[0])
    return (discounted_returns(eps) - b)[eps.steps.n]


def _weights_baseline_value(eps: Episodes) -> np.ndarray:
    V, _ = value_tables(eps.mdp, eps.policy)
    return step_reward_to_go(eps) - _discounted_at_step(V, eps, eps.steps.s)


def _weights_rtg_restart_discount(eps: Episodes) -> np.ndarray:
    return step_reward_to_go(eps, restart_discount=True)


def _weights_rtg_skip_current(eps: Episodes) -> np.ndarray:
    return step_reward_to_go(eps, include_current=False)


def _weights_action_baseline(eps: Episodes) -> np.ndarray:
    _, Q = value_tables(eps.mdp, eps.policy)
    return step_reward_to_go(eps) - _discounted_at_step(Q, eps, eps.steps.s, eps.steps.a)


def _weights_score_wrong_time(eps: Episodes) -> np.ndarray:
    # The classic off-by-one logp[1:] * G[:-1]: step t's score meets step t-1's reward-to-go.
    G = step_reward_to_go(eps)
    w = np.zeros_like(G)
    w[1:] = G[:-1]              # steps are episode by episode: the previous entry is the same episode's t - 1
    w[eps.steps.t == 0] = 0.0
    return w


def _weights_batch_normalized(eps: Episodes) -> np.ndarray:
    # Padded on purpose: the batch statistics are numpy sums over the [N, T] grid, and summing the same values
    # in another order would move them (and the exact limit, see verify.moments) by round-off.
    return at_steps(eps, _padded_weights_batch_normalized(eps))


def _padded_weights_batch_normalized(eps: Episodes) -> np.ndarray:
    G_t = reward_to_go(eps)
    mask = eps.mask
    # Statistics over every valid (n, t); an enumeration's weights make them the population statistics.
    w = mask * (1.0 if eps.weights is None else eps.weights[:, None])
    total = w.sum()
    if total == 0:          # no step was taken: there is no score to weight
        return np.zeros_like(G_t)
    mean = (w * G_t).sum() / total
    std = np.sqrt((w * (G_t - mean) ** 2).sum() / total)
    return (G_t - mean) / (std + NORMALIZE_EPS)


def _from_weights(weights: Callable[[Episodes], np.ndarray]) -> Callable[[Episodes], np.ndarray]:
    def per_episode(episodes: Episodes) -> np.ndarray:
        return step_score_sums(episodes, weights(episodes))
    per_episode.__doc__ = f"step_score_sums(episodes, {weights.__name__.removeprefix('_weights_')} weights)"
    return per_episode


_S = r"\nabla_\theta \log \pi_\theta(a_t \mid s_t)"
_G = r"\sum_{t' \ge t} \gamma^{t'} r_{t'}"

ESTIMATORS: tuple[Estimator, ...] = (
    Estimator("total_return", rf"R(\tau) \sum_{{t \ge 0}} {_S}", True,
              "the seed's eqs. (14)/(15): the whole discounted return R(tau) weights every step's score",
              _from_weights(_weights_total_return)),
    Estimator("reward_to_go", rf"\sum_{{t \ge 0}} {_S} {_G}", True,
              "causality: the score of step t is weighted by the rewards from t on, still discounted from 0",
              _from_weights(_weights_reward_to_go)),
    Estimator("baseline_constant", rf"\left(R(\tau) - b\right) \sum_{{t \ge 0}} {_S},\ b = J(\theta)", True,
              "total return minus a constant fixed before sampling (here the exact J), never the batch mean",
              _from_weights(_weights_baseline_constant)),
    Estimator("baseline_value", rf"\sum_{{t \ge 0}} {_S} \left({_G} - \gamma^t V_t(s_t)\right)", True,
              "reward-to-go minus the exact state value V_t(s_t) with the remaining horizon: a state baseline",
              _from_weights(_weights_baseline_value)),
    Estimator("rtg_restart_discount", rf"\sum_{{t \ge 0}} {_S} \sum_{{t' \ge t}} \gamma^{{t'-t}} r_{{t'}}", False,
              "reward-to-go whose discount restarts at t (gamma^(t'-t)): the gradient of another objective; "
              "unbiased only when gamma = 1",
              _from_weights(_weights_rtg_restart_discount)),
    Estimator("rtg_skip_current", rf"\sum_{{t \ge 0}} {_S} \sum_{{t' > t}} \gamma^{{t'}} r_{{t'}}", False,
              "reward-to-go that leaves out r_t, the reward the action a_t itself earns",
              _from_weights(_weights_rtg_skip_current)),
    Estimator("action_baseline", rf"\sum_{{t \ge 0}} {_S} \left({_G} - \gamma^t Q_t(s_t, a_t)\right)", False,
              "a baseline that depends on the action (the critic Q_t(s_t, a_t) instead of V_t(s_t)): the mean is 0, "
              "so the bias is -grad J",
              _from_weights(_weights_action_baseline)),
    Estimator("score_wrong_time",
              r"\sum_{t \ge 1} \nabla_\theta \log \pi_\theta(a_t \mid s_t) \sum_{t' \ge t-1} \gamma^{t'} r_{t'}",
              False,
              "off by one in time (logp[1:] * G[:-1]): step t's score gets step t-1's reward-to-go, so step 0's "
              "term is lost",
              _from_weights(_weights_score_wrong_time)),
    Estimator("batch_normalized",
              rf"\sum_{{t \ge 0}} {_S} \frac{{G_t - \overline{{G}}}}{{\operatorname{{std}}(G) + \epsilon}}", False,
              "reward-to-go normalised by the mean and standard deviation over the batch's steps: rescales and "
              "shifts the gradient; each value depends on the whole batch",
              _from_weights(_weights_batch_normalized), batch_dependent=True),
)

_BY_NAME = {e.name: e for e in ESTIMATORS}


def estimator_names() -> tuple[str, ...]:
    """The catalog's names, in catalog order (unbiased first)."""
    return tuple(_BY_NAME)


def get_estimator(name: str) -> Estimator:
    """The estimator called ``name``.

    Raises:
      UsageError: unknown name (the message lists the known ones).

    >>> get_estimator("reward_to_go").unbiased
    True
    >>> get_estimator("reinforce")
    Traceback (most recent call last):
    ...
    verify.errors.UsageError: unknown estimator 'reinforce'; known estimators: total_return, reward_to_go, \
baseline_constant, baseline_value, rtg_restart_discount, rtg_skip_current, action_baseline, score_wrong_time, \
batch_normalized
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UsageError(f"unknown estimator {name!r}; known estimators: {', '.join(_BY_NAME)}") from None
