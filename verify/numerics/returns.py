r"""Returns, baselines and advantages as pure functions on arrays: the maths of every estimator, nothing else.

Two layouts, the same recursions:

- padded: a batch of N episodes as [N, T] arrays (``r_t[n, t]``, states ``s_t`` [N, T + 1]) with ``lengths`` [N];
  entries at t >= lengths[n] are padding and never change a result (they are masked or multiplied by zero).
  These are the functions to call on arrays any rollout code has (rlax's convention, batched).
- steps: only the M = sum(lengths) valid steps, episode by episode in increasing t, each a flat [M] array, with
  the ``blocks = (first, running)`` of ``verify.episodes.time_blocks``; the catalog computes on this layout
  (cost M instead of N T). A ``step_`` function performs the floating-point operations of its padded twin in the
  same order, so the values are the same bits.

Notation: gamma^t is the discount from the episode's start (the objective J = E[sum_t gamma^t r_t]); V and Q are
time-indexed tables, V[t, s] and Q[t, s, a] with H - t actions left, or one row (stationary) serving every t
(``verify.exact.value_tables`` computes the exact ones).

References:
  Williams, "Simple statistical gradient-following algorithms for connectionist reinforcement learning",
    Machine Learning 8 (1992), https://doi.org/10.1007/BF00992696 (REINFORCE).
  Sutton, McAllester, Singh and Mansour, "Policy gradient methods for reinforcement learning with function
    approximation", NeurIPS 12 (2000), https://proceedings.neurips.cc/paper/1999/hash/464d828b85b0bed98e80ade0a5c43b0f-Abstract.html
    (the policy-gradient theorem: Q weights).
  Greensmith, Bartlett and Baxter, "Variance reduction techniques for gradient estimates in reinforcement
    learning", JMLR 5 (2004), https://www.jmlr.org/papers/v5/greensmith04a.html (baselines).
  Schulman, Moritz, Levine, Jordan and Abbeel, "High-dimensional continuous control using generalized advantage
    estimation", ICLR (2016), https://arxiv.org/abs/1506.02438 (GAE).

>>> r_t = np.array([[1.0, 1.0, 1.0], [2.0, 0.0, 0.0]])
>>> lengths = np.array([3, 1])
>>> discounted_returns(r_t, 0.5, lengths).tolist()
[1.75, 2.0]
>>> reward_to_go(r_t, 0.5, lengths).tolist()
[[1.75, 0.75, 0.25], [2.0, 0.0, 0.0]]
"""
from __future__ import annotations

import numpy as np

__all__ = ["discount_t", "discounted_cumsum", "discounted_returns", "gae_advantages", "reward_to_go",
           "state_baseline", "step_discounted_cumsum", "step_td_errors", "td_errors", "valid_mask", "values_at"]


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _lengths(lengths, N: int, T: int) -> np.ndarray:
    if lengths is None:
        return np.full(N, T, dtype=np.intp)
    lengths = np.asarray(lengths)
    _check(lengths.shape == (N,), f"lengths must have shape [N] = ({N},), got {lengths.shape}")
    _check(bool(((lengths >= 0) & (lengths <= T)).all()), f"lengths must lie in 0..T = 0..{T}")
    return lengths.astype(np.intp, copy=False)


def _rewards(x_t, name: str = "r_t") -> np.ndarray:
    x_t = np.asarray(x_t, dtype=float)
    _check(x_t.ndim == 2, f"{name} must have shape [N, T], got {x_t.shape}")
    return x_t


def discount_t(gamma: float, T: int) -> np.ndarray:
    """gamma^t for t = 0 .. T-1, float [T].

    >>> discount_t(0.5, 3).tolist()
    [1.0, 0.5, 0.25]
    """
    return gamma ** np.arange(T, dtype=float)


def valid_mask(lengths, T: int) -> np.ndarray:
    """mask[n, t] = t < lengths[n], bool [N, T]."""
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


def discounted_returns(r_t, gamma: float, lengths=None) -> np.ndarray:
    r"""The discounted return of each episode, R(tau) = sum_{t < L} gamma^t r_t (Williams 1992's weight).

    Args:
      r_t: rewards, float [N, T].
      gamma: discount in [0, 1].
      lengths: valid steps per episode, int [N] (None: all T).

    Returns:
      R, float [N].
    """
    r_t = _rewards(r_t)
    N, T = r_t.shape
    if lengths is not None:
        r_t = np.where(valid_mask(_lengths(lengths, N, T), T), r_t, 0.0)
    return r_t @ discount_t(gamma, T)


def discounted_cumsum(x_t, c: float, lengths=None) -> np.ndarray:
    r"""y_t = x_t + c y_{t+1} within each episode (y = 0 from t = L on), float [N, T]; padding gives 0.

    The backward recursion behind reward-to-go (c = gamma, "restarted" discount) and GAE (c = gamma lambda).

    Args:
      x_t: float [N, T].
      c: the factor.
      lengths: int [N] (None: all T).

    >>> discounted_cumsum(np.array([[1.0, 1.0, 1.0]]), 0.5).tolist()
    [[1.75, 1.5, 1.0]]
    """
    x_t = _rewards(x_t, "x_t")
    N, T = x_t.shape
    if lengths is not None:
        x_t = np.where(valid_mask(_lengths(lengths, N, T), T), x_t, 0.0)
    y_t = np.zeros_like(x_t)
    acc = np.zeros(N)
    for t in range(T - 1, -1, -1):
        acc = x_t[:, t] + c * acc
        y_t[:, t] = acc
    return y_t


def reward_to_go(r_t, gamma: float, lengths=None, *, restart_discount: bool = False,
                 include_current: bool = True) -> np.ndarray:
    r"""G_t = sum_{t' >= t} gamma^{t'} r_{t'} per episode and time, float [N, T] (0 at padding).

    The causal form of REINFORCE: E[grad log pi(a_t|s_t) r_{t'}] = 0 for t' < t, so each step's score needs only
    the rewards from t on (Williams 1992; the discount stays gamma^{t'}, counted from the start).

    Args:
      r_t: rewards, float [N, T].
      gamma: discount.
      lengths: int [N] (None: all T).
      restart_discount: weights gamma^{t' - t} instead (a common, biased variant for gamma < 1).
      include_current: False starts the sum at t' = t + 1 (biased: drops the reward a_t earns).
    """
    r_t = _rewards(r_t)
    N, T = r_t.shape
    if lengths is not None:
        r_t = np.where(valid_mask(_lengths(lengths, N, T), T), r_t, 0.0)
    if restart_discount:
        # Backward recursion G_t = r_t + gamma G_{t+1}: dividing by gamma^t would underflow for long episodes.
        G_t = discounted_cumsum(r_t, gamma)
        return G_t if include_current else G_t - r_t
    disc_r = r_t * discount_t(gamma, T)[None, :]
    G_t = np.cumsum(disc_r[:, ::-1], axis=1)[:, ::-1]
    if not include_current:
        G_t = G_t - disc_r
    return G_t


def values_at(table, t, *index) -> np.ndarray:
    r"""table[t, *index] elementwise, with a one-row (stationary) table serving every t; shaped like ``t``.

    Args:
      table: V [T', S] or Q [T', S, A] (T' = 1: stationary).
      t: times, int array of any shape B (each < T' unless T' = 1).
      index: s (and a), int arrays of shape B.

    >>> V = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> values_at(V, np.array([0, 1, 1]), np.array([1, 0, 1])).tolist()
    [2.0, 3.0, 4.0]
    """
    table = np.asarray(table)
    _check(table.ndim == 1 + len(index), f"a table indexed by t and {len(index)} more must have "
                                         f"{1 + len(index)} axes, got shape {table.shape}")
    t = np.asarray(t)
    # One flat take instead of a multi-dimensional fancy index (several times faster).
    flat = t if table.shape[0] > 1 else np.zeros_like(t)
    for i, size in zip(index, table.shape[1:]):
        flat = flat * size + i
    return table.reshape(-1).take(flat)


def state_baseline(V, s_t, gamma: float) -> np.ndarray:
    r"""gamma^t V_t(s_t), float [N, T]: the state-value baseline in the objective's discounting.

    Any b(s_t, t) keeps the estimator unbiased, E[grad log pi(a_t|s_t) b(s_t, t)] = 0 (Greensmith et al. 2004);
    b = gamma^t V_t is the customary near-optimal choice.

    Args:
      V: [T', S] (T' = 1: stationary).
      s_t: states, int [N, T] (the states acted in; pass ``s_t[:, :T]`` of an [N, T + 1] array).
      gamma: discount.
    """
    s_t = np.asarray(s_t)
    _check(s_t.ndim == 2, f"s_t must have shape [N, T], got {s_t.shape}")
    T = s_t.shape[1]
    t = np.broadcast_to(np.arange(T), s_t.shape)
    return discount_t(gamma, T) * values_at(V, t, s_t)


def td_errors(r_t, V, s_t, gamma: float, lengths=None) -> np.ndarray:
    r"""delta_t = r_t + gamma V_{t+1}(s_{t+1}) - V_t(s_t), with V_{t+1} = 0 after the last step; float [N, T].

    The bootstrap is 0 at each episode's last step (a terminal state, or the horizon: no action left), so the
    deltas telescope: sum_{t' >= t} gamma^{t'-t} delta_{t'} = sum_{t' >= t} gamma^{t'-t} r_{t'} - V_t(s_t).

    Args:
      r_t: rewards, float [N, T].
      V: [T', S] (T' = 1: stationary).
      s_t: states, int [N, T + 1].
      gamma: discount.
      lengths: int [N] (None: all T).
    """
    r_t = _rewards(r_t)
    N, T = r_t.shape
    s_t = np.asarray(s_t)
    _check(s_t.shape == (N, T + 1), f"s_t must have shape [N, T + 1] = {(N, T + 1)}, got {s_t.shape}")
    mask = valid_mask(_lengths(lengths, N, T), T)
    v = values_at(V, np.broadcast_to(np.arange(T), (N, T)), s_t[:, :T])
    v_next = np.zeros_like(v)
    v_next[:, :-1] = np.where(mask[:, 1:], v[:, 1:], 0.0)     # s_{t+1} acts at t + 1 only if the episode runs on
    return np.where(mask, r_t + gamma * v_next - v, 0.0)


def gae_advantages(r_t, V, s_t, gamma: float, lam: float, lengths=None) -> np.ndarray:
    r"""GAE(lambda): A_t = sum_{l >= 0} (gamma lambda)^l delta_{t+l} (Schulman et al. 2016), float [N, T].

    With the exact time-indexed V, E[A_t | s_t, a_t] = Q_t(s_t, a_t) - V_t(s_t) for every lambda, so
    sum_t gamma^t grad log pi(a_t|s_t) A_t is unbiased. With any other V only lambda = 1 is: the deltas
    telescope to the reward-to-go from t (discount restarted) minus V(s_t), a state baseline.

    Args:
      r_t: rewards, float [N, T].
      V: [T', S] (T' = 1: stationary).
      s_t: states, int [N, T + 1].
      gamma: discount.
      lam: lambda in [0, 1].
      lengths: int [N] (None: all T).

    >>> V = np.array([[0.0]])        # one state, no baseline: GAE(1) is the restarted reward-to-go
    >>> gae_advantages(np.array([[1.0, 1.0]]), V, np.zeros((1, 3), int), 0.5, 1.0).tolist()
    [[1.5, 1.0]]
    """
    return discounted_cumsum(td_errors(r_t, V, s_t, gamma, lengths), gamma * lam)


# --- the step layout: [M] arrays in ``verify.episodes.Steps`` order ---------------------------------------------------

def step_discounted_cumsum(x, c: float, blocks: tuple[np.ndarray, list[int]]) -> np.ndarray:
    r"""``discounted_cumsum`` on the step layout: y = x + c y_next within each episode, float [M].

    One block of running episodes per t, from the last t back: block t + 1's episodes are the first ones of block
    t (longest first), so the update touches a prefix. With c = 1 the additions are those of numpy's cumulative
    sum over the reversed padded row, hence the same bits.

    Args:
      x: float [M].
      c: the factor.
      blocks: ``(first, running)`` of ``verify.episodes.time_blocks(lengths)``.
    """
    first, running = blocks
    x = np.asarray(x, dtype=float)
    _check(x.ndim == 1 and x.size == sum(running), f"x must have shape [M] = ({sum(running)},), got {x.shape}")
    y = np.empty(x.shape)
    later = y[:0]
    for t in range(len(running) - 1, -1, -1):
        at = first[:running[t]] + t
        y_t = x[at]
        y_t[:later.size] += later if c == 1.0 else c * later
        y[at] = later = y_t
    return y


def step_td_errors(r, t, s, V, gamma: float) -> np.ndarray:
    r"""``td_errors`` on the step layout, float [M]: delta = r + gamma V_{t+1}(s_{t+1}) - V_t(s_t).

    The next step of the same episode is the next entry (episodes are contiguous, t increasing); after an
    episode's last step the bootstrap is 0.

    Args:
      r, t, s: reward, time and state of each step, [M].
      V: [T', S] (T' = 1: stationary).
      gamma: discount.
    """
    v = values_at(V, t, s)
    v_next = np.zeros_like(v)
    same_episode = t[1:] == t[:-1] + 1
    v_next[:-1][same_episode] = v[1:][same_episode]
    return r + gamma * v_next - v
