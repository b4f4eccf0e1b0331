"""A batch of episodes as padded numpy arrays: the one format enumeration, sampling and estimators share.

Episode n has ``lengths[n]`` actions. Time runs along axis 1 (t = 0 .. T-1 for actions and rewards,
t = 0 .. T for states). Padding after the end: action 0, reward 0, state = the final state, so every
index stays valid and a padded step contributes nothing once multiplied by ``mask``.

A batch is padded to its longest episode, which can be ten times the mean (FrozenLake 4x4, H = 100: T ~ 80,
mean length 7.7), so per-step work on [N, T] arrays mostly touches padding. ``Episodes.steps`` lists the valid
steps only (``Steps``, M = sum of lengths), and the ``step_*`` functions work on that list: per-step weights
w [M] instead of w_t [N, T]. They perform the same floating-point operations on the valid steps as the padded
formulas, in the same order per episode, so their results are bit-for-bit those of the padded computation.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from verify.numerics import returns
from verify.numerics.shared import shared
from verify.model.mdp import TabularMDP
from verify.model.policy import Policy

__all__ = ["Episodes", "StepEpisodes", "Steps", "at_steps", "discounted_returns", "episodes_from_lists",
           "longest_first", "reward_to_go", "score_sums", "score_total", "step_index", "step_reward_to_go",
           "step_score_rows", "step_score_sums", "time_blocks", "valid_steps", "visited_cells"]


@dataclass(frozen=True, eq=False)
class Steps:
    """The valid steps (t < lengths[n]) of a batch, M = sum(lengths) of them, episode by episode.

    Each episode's steps lie together in increasing t, as a pass over its row of the padded [N, T] arrays meets
    them, so per-episode sums accumulate in the same order as on the padded arrays. The episodes come longest
    first (stably; ``step_index``), so that the steps at time t, taken episode by episode, form a prefix of those
    at time t - 1 (``time_blocks``): backward recursions over t then touch monotone positions.

    Attributes:
      n, t: episode and time of each step, int [M].
      s, a, r: s_t, a_t and r_t at each step, [M].
      lengths: the batch's episode lengths, int [N].
      n_states, n_actions: the policy's S and A (the shape of W[n, s, a]).
    """

    n: np.ndarray
    t: np.ndarray
    s: np.ndarray
    a: np.ndarray
    r: np.ndarray
    lengths: np.ndarray
    n_states: int
    n_actions: int

    def __post_init__(self) -> None:
        # Every estimator of a run reads the same cached Steps: one that edited them would corrupt the others.
        # Read-only views, so that arrays shared with the batch (lengths) stay writable there.
        for name in ("n", "t", "s", "a", "r", "lengths"):
            view = np.asarray(getattr(self, name)).view()
            view.setflags(write=False)
            object.__setattr__(self, name, view)

    @cached_property
    def visited_cells(self) -> tuple[np.ndarray, np.ndarray]:
        """``visited_cells(self)``, computed once (every score sum of the batch needs it)."""
        return visited_cells(self)

    @cached_property
    def time_blocks(self) -> tuple[np.ndarray, list[int]]:
        """``time_blocks(self.lengths)``, computed once (backward recursions over t need it)."""
        return time_blocks(self.lengths)


def visited_cells(steps: Steps) -> tuple[np.ndarray, np.ndarray]:
    """The rows of W[n, s, a] the steps touch and where each step's cell lies in them: (visited [U], cell [M]).

    ``visited`` lists the flat rows n S + s once each, ascending; ``cell`` is the step's (row rank) A + a, an
    index into the [U, A] array of those rows. Episodes visit few of the S states, so U is much less than N S.

    >>> st = Steps(n=np.array([0, 0, 2]), t=np.array([0, 1, 0]), s=np.array([1, 1, 0]), a=np.array([0, 1, 1]),
    ...            r=np.zeros(3), lengths=np.array([2, 0, 1]), n_states=2, n_actions=2)
    >>> [x.tolist() for x in visited_cells(st)]
    [[1, 4], [0, 1, 3]]
    """
    S, A = steps.n_states, steps.n_actions
    row = steps.n * S
    row += steps.s
    if steps.lengths.size * S <= 8 * row.size + 2**20:
        # A mask over all N S rows: linear, and the fastest while N S is not much more than the steps.
        seen = np.zeros(steps.lengths.size * S, dtype=bool)
        seen[row] = True
        visited = np.flatnonzero(seen)
        rank = np.empty(seen.size, dtype=np.intp)
        rank[visited] = np.arange(visited.size)
        cell = rank.take(row)
    else:
        # Big S (10^5 states: the mask and its ranks would be 4 GB for a chunk): sort the steps' rows instead.
        order = np.argsort(row, kind="stable")
        ranked = row[order]
        new = np.concatenate(([True], ranked[1:] != ranked[:-1])) if ranked.size else np.zeros(0, dtype=bool)
        visited = ranked[new]
        cell = np.empty(row.size, dtype=np.intp)
        cell[order] = np.cumsum(new) - 1
    cell *= A
    cell += steps.a
    for arr in (visited, cell):
        arr.setflags(write=False)
    return visited, cell


def longest_first(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The episodes in the order of the ``Steps`` layout and where each one's steps start: (order [N], first [N]).

    ``order`` sorts the episodes longest first, ties in episode order; episode ``order[j]`` starts at ``first[j]``
    (ascending).

    >>> [x.tolist() for x in longest_first(np.array([1, 3, 0, 3]))]
    [[1, 3, 0, 2], [0, 3, 6, 7]]
    """
    lengths = np.asarray(lengths, dtype=np.intp)
    key = int(lengths.max(initial=0)) - lengths
    # A stable sort; 16-bit keys get numpy's radix sort.
    order = np.argsort(key.astype(np.uint16) if key.max(initial=0) < 2**16 else key, kind="stable")
    L = lengths[order]
    return order, np.cumsum(L) - L


def step_index(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Episode and time of every valid step in the ``Steps`` layout: (n [M], t [M]).

    >>> [x.tolist() for x in step_index(np.array([1, 2, 0]))]
    [[1, 1, 0], [0, 1, 0]]
    """
    lengths = np.asarray(lengths, dtype=np.intp)
    order, first = longest_first(lengths)
    L = lengths[order]
    n = np.repeat(order, L)
    return n, np.arange(n.size, dtype=np.intp) - np.repeat(first, L)


def time_blocks(lengths: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """The steps of the ``Steps`` layout time by time: (first [N], running [T]).

    Time t of the episodes still running at t lies at the positions ``first[:running[t]] + t`` (ascending):
    ``first`` is where each episode's steps start (``longest_first``) and ``running[t]`` counts the episodes longer
    than t. Time t + 1 concerns the first ``running[t + 1]`` of those episodes, in the same order, so a recursion
    from t + 1 to t updates a prefix.

    >>> first, running = time_blocks(np.array([1, 2]))     # layout: (1, 0), (1, 1), (0, 0)
    >>> first.tolist(), running
    ([0, 2], [2, 1])
    """
    lengths = np.asarray(lengths, dtype=np.intp)
    _, first = longest_first(lengths)
    first.setflags(write=False)
    T = int(lengths.max(initial=0))
    running = lengths.size - np.cumsum(np.bincount(lengths, minlength=T + 1)[:T])
    return first, running.tolist()


@dataclass(frozen=True, eq=False)
class Episodes:
    """N episodes of one MDP under one policy.

    Attributes:
      s_t: states, int [N, T+1].
      a_t: actions, int [N, T].
      r_t: rewards r(s_t, a_t, s_{t+1}) (undiscounted), float [N, T].
      lengths: number of actions taken, int [N].
      mdp, policy: what generated them (estimators need gamma and grad log pi).
      weights: p(tau|theta) per episode when the batch is an exact enumeration, else None.
    """

    s_t: np.ndarray
    a_t: np.ndarray
    r_t: np.ndarray
    lengths: np.ndarray
    mdp: TabularMDP
    policy: Policy
    weights: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.a_t.shape[0]

    @property
    def T(self) -> int:
        return self.a_t.shape[1]

    @property
    def mask(self) -> np.ndarray:
        """mask[n, t] = t < lengths[n], bool [N, T]."""
        return returns.valid_mask(self.lengths, self.T)

    @property
    def discount_t(self) -> np.ndarray:
        """gamma^t, shape [T]."""
        return returns.discount_t(self.mdp.gamma, self.T)

    @cached_property
    def steps(self) -> Steps:
        """``valid_steps(self)``, computed once per batch (every estimator of a run shares it).

        Cached: a batch is treated as immutable once built (the samplers and enumeration never edit one).
        """
        return valid_steps(self)

    def select(self, index) -> "Episodes":
        """The sub-batch ``index`` (any numpy index along the episode axis)."""
        w = None if self.weights is None else self.weights[index]
        return Episodes(self.s_t[index], self.a_t[index], self.r_t[index], self.lengths[index],
                        self.mdp, self.policy, w)


def episodes_from_lists(runs, mdp: TabularMDP, policy: Policy) -> Episodes:
    """Pad per-episode Python lists (what a per-step loop collects) into one Episodes batch.

    Args:
      runs: sequence of (states, actions, rewards) lists, len(states) = len(actions) + 1 = len(rewards) + 1.
      mdp, policy: what generated them.

    >>> from verify.policy import TabularSoftmax
    >>> mdp = TabularMDP([1, 0], [[[0, 1]], [[0, 1]]], [[1], [0]], terminal=[1], horizon=3)
    >>> eps = episodes_from_lists([([0, 1], [0], [1.0]), ([0], [], [])], mdp, TabularSoftmax(np.zeros((2, 1))))
    >>> eps.s_t.tolist(), eps.lengths.tolist()
    ([[0, 1], [0, 0]], [1, 0])
    """
    n = len(runs)
    T = max(len(a) for _, a, _ in runs)
    s_t = np.array([s + [s[-1]] * (T + 1 - len(s)) for s, _, _ in runs], dtype=np.intp)
    a_t = np.array([a + [0] * (T - len(a)) for _, a, _ in runs], dtype=np.intp).reshape(n, T)
    r_t = np.array([r + [0.0] * (T - len(r)) for _, _, r in runs], dtype=float).reshape(n, T)
    lengths = np.array([len(a) for _, a, _ in runs], dtype=np.intp)
    return Episodes(s_t, a_t, r_t, lengths, mdp, policy)


def valid_steps(episodes: Episodes) -> Steps:
    """The valid steps of a batch (``Steps``), gathered from the padded arrays: O(M) work.

    >>> from verify.policy import TabularSoftmax
    >>> mdp = TabularMDP(initial=[1, 0], transitions=[[[0.5, 0.5]], [[0, 1]]], rewards=[[1], [0]], terminal=[1])
    >>> eps = Episodes(np.array([[0, 1, 1], [0, 0, 1]]), np.zeros((2, 2), int), np.array([[1.0, 0], [1, 1]]),
    ...                np.array([1, 2]), mdp, TabularSoftmax(np.zeros((2, 1))))
    >>> st = valid_steps(eps)
    >>> st.n.tolist(), st.t.tolist(), st.s.tolist(), st.r.tolist()     # episode 1 (the longer) first
    ([1, 1, 0], [0, 1, 0], [0, 0, 0], [1.0, 1.0, 1.0])
    """
    T = episodes.T
    lengths = np.asarray(episodes.lengths, dtype=np.intp)
    n, t = step_index(lengths)
    # Flat gathers: a 2-D fancy index costs several times more.
    at = n * T + t
    s = episodes.s_t.reshape(-1)[at + n]            # (n, t) in an [N, T + 1] array
    S, A = episodes.policy.probs.shape
    return Steps(n=n, t=t, s=s, a=episodes.a_t.reshape(-1)[at], r=episodes.r_t.reshape(-1)[at], lengths=lengths,
                 n_states=S, n_actions=A)


class StepEpisodes(Episodes):
    """An ``Episodes`` batch made from its step list, whose padded arrays are built on first use.

    A sampler has the steps at hand; the padded s_t, a_t, r_t cost ~10x more memory traffic than the steps on
    FrozenLake and the catalog's reward-to-go estimators never read them (``total_return`` reads r_t, user
    estimators read whatever they use). Built arrays are cached, so each is built at most once. Everything else
    is an ``Episodes``: ``n`` and ``T`` come from ``lengths``.

    >>> from verify.policy import TabularSoftmax
    >>> mdp = TabularMDP(initial=[1, 0], transitions=[[[0.5, 0.5]], [[0, 1]]], rewards=[[1], [0]], terminal=[1])
    >>> eps = Episodes(np.array([[0, 1, 1], [0, 0, 1]]), np.zeros((2, 2), int), np.array([[1.0, 0], [1, 1]]),
    ...                np.array([1, 2]), mdp, TabularSoftmax(np.zeros((2, 1))))
    >>> lazy = StepEpisodes(eps.steps, eps.s_t[:, -1], eps.mdp, eps.policy)
    >>> lazy.n, lazy.T, "s_t" in vars(lazy), lazy.s_t.tolist(), lazy.r_t.tolist()
    (2, 2, False, [[0, 1, 1], [0, 0, 1]], [[1.0, 0.0], [1.0, 1.0]])
    """

    def __init__(self, steps: Steps, final: np.ndarray, mdp: TabularMDP, policy: Policy):
        """
        Args:
          steps: the valid steps.
          final: each episode's final state s_{lengths[n]}, int [N] (the padding of s_t).
          mdp, policy: as ``Episodes``.
        """
        # lengths: a writable copy, like every other batch's (the step list keeps its read-only view).
        for name, value in (("lengths", np.array(steps.lengths)), ("mdp", mdp), ("policy", policy), ("weights", None)):
            object.__setattr__(self, name, value)
        self.__dict__.update(steps=steps, _final=np.asarray(final), _T=int(steps.lengths.max(initial=0)))

    @property
    def n(self) -> int:
        return self.lengths.size

    @property
    def T(self) -> int:
        return self._T

    @cached_property
    def s_t(self) -> np.ndarray:
        st = self.steps
        s_t = np.empty((self.n, self.T + 1), dtype=np.intp)
        s_t[:] = self._final[:, None]      # from t = lengths[n] on: the final state
        s_t.reshape(-1)[st.n * (self.T + 1) + st.t] = st.s
        return s_t

    @cached_property
    def a_t(self) -> np.ndarray:
        return self._padded(self.steps.a, np.intp)

    @cached_property
    def r_t(self) -> np.ndarray:
        return self._padded(self.steps.r, float)

    def _padded(self, values: np.ndarray, dtype) -> np.ndarray:
        st = self.steps
        x = np.zeros((self.n, self.T), dtype=dtype)
        # Flat scatters: a 2-D fancy assignment costs several times more.
        x.reshape(-1)[st.n * self.T + st.t] = values
        return x


def at_steps(episodes: Episodes, x_t: np.ndarray) -> np.ndarray:
    """x_t[n, t] at the valid steps, shape [M] in ``Steps`` order, for a padded [N, T] array (or a broadcast view)."""
    st = episodes.steps
    try:
        padded = np.broadcast_to(x_t, (episodes.n, episodes.T))
    except ValueError:
        raise ValueError(f"per-step values must have shape [N, T] = {(episodes.n, episodes.T)} or broadcast to it, "
                         f"got {np.shape(x_t)}") from None
    return padded[st.n, st.t]


def discounted_returns(episodes: Episodes) -> np.ndarray:
    """R(tau) = sum_t gamma^t r_t per episode, shape [N]: ``verify.returns.discounted_returns`` of the batch."""
    return returns.discounted_returns(episodes.r_t, episodes.mdp.gamma)     # padding is 0: no mask needed


def reward_to_go(episodes: Episodes, *, restart_discount: bool = False, include_current: bool = True) -> np.ndarray:
    """G_t = sum_{t' >= t} gamma^{t'} r_{t'} per episode and time, shape [N, T]: ``verify.returns.reward_to_go``.

    With ``restart_discount`` the weights are gamma^{t'-t} instead (a common, biased variant for the
    discounted objective); without ``include_current`` the sum starts at t' = t + 1.
    """
    return returns.reward_to_go(episodes.r_t, episodes.mdp.gamma, restart_discount=restart_discount,
                                include_current=include_current)


def step_reward_to_go(episodes: Episodes, *, restart_discount: bool = False,
                      include_current: bool = True) -> np.ndarray:
    """``reward_to_go`` at the valid steps, shape [M] in ``Steps`` order, in O(M) work instead of O(N T).

    The same recursion G_t = G_{t+1} + gamma^t r_t (or r_t + gamma G_{t+1} with ``restart_discount``) as the
    padded cumulative sum, one block of running episodes per t (``verify.returns.step_discounted_cumsum``), so
    the values are bit-for-bit the same.

    >>> from verify.policy import TabularSoftmax
    >>> mdp = TabularMDP(initial=[1, 0], transitions=[[[0.5, 0.5]], [[0, 1]]], rewards=[[1], [0]], terminal=[1],
    ...                  gamma=0.5)
    >>> eps = Episodes(np.array([[0, 1, 1], [0, 0, 1]]), np.zeros((2, 2), int), np.array([[1.0, 0], [1, 1]]),
    ...                np.array([1, 2]), mdp, TabularSoftmax(np.zeros((2, 1))))
    >>> step_reward_to_go(eps).tolist(), at_steps(eps, reward_to_go(eps)).tolist()
    ([1.5, 0.5, 1.0], [1.5, 0.5, 1.0])
    """
    st = episodes.steps
    gamma = episodes.mdp.gamma
    x = st.r if restart_discount else st.r * episodes.discount_t.take(st.t)
    G = returns.step_discounted_cumsum(x, gamma if restart_discount else 1.0, st.time_blocks)
    return G if include_current else G - x


def step_score_sums(episodes: Episodes, w: np.ndarray) -> np.ndarray:
    """sum_t w_t grad log pi(a_t|s_t) per episode from weights at the valid steps, shape [N, *theta.shape].

    One weighted ``bincount`` over the steps' (episode, s_t, a_t) cells builds the rows of W[n, s, a] the
    episodes visit (the other rows are zero); the policy contracts W with its score
    (``Policy.score_contract_rows``).

    Args:
      episodes: the batch.
      w: per-step weights, float [M] in ``episodes.steps`` order.
    """
    M = episodes.steps.t.size
    if np.shape(w) != (M,):
        raise ValueError(f"per-step weights must have shape [M] = ({M},) (the batch's valid steps, in "
                         f"episodes.steps order), got {np.shape(w)}")
    A = episodes.policy.probs.shape[1]
    visited, cell = episodes.steps.visited_cells
    W_rows = np.bincount(cell, weights=w, minlength=visited.size * A).reshape(-1, A)
    return episodes.policy.score_contract_rows(W_rows, visited, episodes.n)


def step_score_rows(episodes: Episodes, w: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``step_score_sums`` of a tabular policy as its non-zero rows: (rows [U], values [U, A]), None otherwise.

    Row ``rows[u]`` = n S + s (ascending) is episode n's estimate for state s; every other row of the [N, S, A]
    result is zero. The same bincount and contraction as ``step_score_sums``, so the values are its bits; memory
    and work follow the visited (episode, state) pairs, not N S A (S = 10^5: 3 MB per episode dense).
    """
    policy = episodes.policy
    if not hasattr(policy, "score_rows"):
        return None
    M = episodes.steps.t.size
    if np.shape(w) != (M,):
        raise ValueError(f"per-step weights must have shape [M] = ({M},), got {np.shape(w)}")
    A = policy.probs.shape[1]
    visited, cell = episodes.steps.visited_cells
    W_rows = np.bincount(cell, weights=w, minlength=visited.size * A).reshape(-1, A)
    if not hasattr(policy, "row_probs"):
        return visited, policy.score_rows(W_rows, visited)
    # pi(.|s) at the visited rows: the score rows' common part, the same for every estimator of the batch
    pi_rows = shared(episodes, "pi at the visited rows", lambda eps: policy.row_probs(visited))
    return visited, policy.score_rows(W_rows, visited, pi_rows)


def score_sums(episodes: Episodes, w_t: np.ndarray) -> np.ndarray:
    """sum_t w_t[n, t] grad log pi(a_t|s_t) per episode, shape [N, *theta.shape].

    Padded steps are ignored (their weights are never read): ``step_score_sums`` of w_t at the valid steps.

    Args:
      episodes: the batch.
      w_t: per-step weights, float [N, T].
    """
    return step_score_sums(episodes, at_steps(episodes, w_t))


def score_total(episodes: Episodes, w_t: np.ndarray) -> np.ndarray:
    """sum_n sum_t w_t[n, t] grad log pi(a_t|s_t), shape theta.shape: ``score_sums(...).sum(0)`` without [N, ...].

    The score is linear in W, so the batch can be summed before contracting.
    """
    S, A = episodes.policy.probs.shape
    T = episodes.T
    w = np.where(episodes.mask, w_t, 0.0)
    flat = episodes.s_t[:, :T] * A + episodes.a_t
    W = np.bincount(flat.ravel(), weights=w.ravel(), minlength=S * A).reshape(S, A)
    return episodes.policy.score_contract(W)
