"""Vectorised Monte Carlo sampling of episodes, reproducible from an explicit ``numpy.random.Generator``.

All N episodes advance together, one numpy step per time index:

- the policy and the dynamics are merged into one joint table p(a, s' | s) = pi(a|s) P(s'|s, a), built from the
  MDP's successor lists (FrozenLake has 12 of 64 (a, s') pairs per state; nothing [S, A, S] is allocated);
- (a_t, s_{t+1}) is drawn jointly per running episode with the state's alias table (Walker/Vose: a uniform
  column, kept or replaced by its alias; O(1), no search), or, for rows wider than ``ALIAS_MAX_WIDTH``, with one
  global ``searchsorted`` of s_t + u into the row-offset cumulative keys ``s + cumsum_k p_k(s)``
  (Taxi: 104 -> 30 ns per step; ``benchmarks/bench_sampler.py`` compares with compiled per-step loops);
- finished episodes are dropped from the working set each step instead of being masked, so a step costs the
  number of *running* episodes (FrozenLake 4x4, H = 100: mean length 7.7 of 100 steps); one gather of
  ``JointTable.next_or_end`` gives both the next row and whether the episode ended, and the uniforms are drawn
  into one buffer per chunk (the same stream and the same episodes as before, fewer passes per step);
- only (episode, table entry) pairs are logged; at the end one scatter reorders the log into the estimators' step
  list (``Episodes.steps``: episode by episode, longest first) and states, actions and rewards are gathered from
  the entry index. The batch is a ``StepEpisodes``: its padded arrays are filled from the step list
  when first read, which the reward-to-go estimators never do (FrozenLake's padded arrays are ~10x the steps).

With numba installed (``pip install 'pgverify[fast]'``) a compiled kernel (``verify.numerics.sampler_kernel``)
runs the same loop per chunk, drawing from the same generator in the same order: the same episodes bit for bit,
12-14 ns per step faster (FrozenLake, Taxi), for ~0.5 CPU-s of loading per process. ``compiled_kernel`` decides
(speed only): ``PGVERIFY_NO_NUMBA=1`` never, ``PGVERIFY_NUMBA=1`` always, by default once the run expects
``KERNEL_MIN_STEPS``.

``iter_episode_chunks`` bounds memory (10^6 episodes never sit in memory at once). ``sample_episodes_naive`` is
the per-step reference (``rng.choice`` per draw) that shares no code with the fast path: an independent check
in the tests, not a speed yardstick (``benchmarks/bench_sampler.py`` compares with a ``bisect`` loop and a
compiled loop instead).

Horizon null. Episodes run until they enter a terminal state, capped at ``max_steps`` actions. For gamma < 1 the
cap costs a bias of at most gamma^m max|r| / (1 - gamma) in J and max|r| max|grad log pi| gamma^m
((m + 1)/(1 - gamma) + gamma/(1 - gamma)^2) in grad J; ``default_max_steps`` picks the smallest m that makes both
below 1e-12 of their a-priori bounds max|r|/(1 - gamma) and max|r| max|grad log pi|/(1 - gamma)^2. For gamma = 1
no cap is harmless, so an episode still running at the cap raises ``UsageError``.
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Iterator

import numpy as np

from verify.numerics.episodes import Episodes, StepEpisodes, Steps, episodes_from_lists, longest_first, step_index
from verify.errors import UsageError, positive_int
from verify.model.mdp import TabularMDP
from verify.model.io import WorkMeter, current_limits, require_memory, require_work, work_meter
from verify.model.policy import Policy

if TYPE_CHECKING:
    from verify.model.problem import Problem

__all__ = ["ALIAS_MAX_WIDTH", "CHUNK_BYTES", "GAMMA_ONE_MAX_STEPS", "KERNEL_MIN_STEPS", "PROCESS_BYTES",
           "ROWS_MIN_PARAMETERS", "TRUNCATION_RTOL", "JointTable", "check_sampling_budget", "chunk_size",
           "compiled_kernel", "concatenate", "default_max_steps", "effective_horizon", "episode_bytes",
           "iter_episode_chunks", "joint_table", "sample_episodes", "sample_episodes_naive"]

CHUNK_BYTES = 200 * 2**20      # working-set budget of one chunk
PROCESS_BYTES = 160 * 2**20    # the process before sampling: interpreter, numpy, scipy, rich (measured ~62-100 MB RSS)
# Peak bytes per padded step of a chunk with every estimator's and reference's visited rows (measured 176-213 on the
# gridworlds, 20 000 episodes); ``verify.checks.budget.run_bytes`` charges it, so the chunks are sized by it too.
CHUNK_STEP_BYTES = 195
TRUNCATION_RTOL = 1e-12        # relative truncation bias allowed for horizon null, gamma < 1
GAMMA_ONE_MAX_STEPS = 100_000  # default cap for horizon null with gamma = 1 (reaching it is an error)


ALIAS_MAX_WIDTH = 64       # rows with more (a, s') entries than this are drawn by one global searchsorted instead


@dataclass(frozen=True, eq=False)
class JointTable:
    """The successor table of p(a, s' | s) = pi(a|s) P(s'|s, a), one row per state, and how to draw from it.

    Two layouts, both exact:

    - alias (rows of at most ``ALIAS_MAX_WIDTH`` entries, e.g. FrozenLake 12, Taxi 6, gridworlds 16): row s
      occupies entries [s K, (s + 1) K), K = ``width``, padded with probability 0; Walker's alias method (Vose's
      construction, per row): draw a column j uniformly, keep it with probability ``accept[s K + j]``, else take
      ``alias[s K + j]``. O(1) per draw, no search.
    - keys (wider rows): the successor lists in CSR order, ``keys = s + cumulative probability`` over all rows, and
      one ``searchsorted`` of s + u finds the entry (rows never overlap: each lies in [s, s + 1]).

    Attributes:
      width: K for the alias layout, 0 for the keys layout.
      accept, alias: alias layout: acceptance probability and alternative entry of each entry, [S K].
      keys, last: keys layout: cumulative keys [nnz] and the index of each row's last entry [S].
      n_entries: number of real entries of row s (0 for terminal states), int [S].
      state, action, next_state: s, a and s' of each entry.
      reward: r(s, a, s') of each entry; ends: whether s' is terminal.
      next_row: where s' 's row starts for the draw (s' K, or s' for keys), int.
    """

    width: int
    accept: np.ndarray | None
    alias: np.ndarray | None
    keys: np.ndarray | None
    last: np.ndarray | None
    n_entries: np.ndarray
    state: np.ndarray
    action: np.ndarray
    next_state: np.ndarray
    reward: np.ndarray
    ends: np.ndarray
    next_row: np.ndarray

    @cached_property
    def next_or_end(self) -> np.ndarray:
        """``next_row``, or -1 where the entry ends the episode: one gather per step tells both (read-only)."""
        out = np.where(self.ends, -1, self.next_row)
        out.setflags(write=False)
        return out

    def probabilities(self) -> np.ndarray:
        """The probability of drawing each entry (what the table encodes), float [table size]."""
        if self.width:
            K = self.width
            p = self.accept / K
            np.add.at(p, self.alias, (1.0 - self.accept) / K)
            return np.where(self.n_entries[self.state] > 0, p, 0.0)
        p = np.diff(self.keys, prepend=0.0)
        first = np.concatenate([[0], self.last[:-1] + 1])
        p[first[self.n_entries > 0]] = self.keys[first[self.n_entries > 0]] - np.flatnonzero(self.n_entries > 0)
        return p


def _vose(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Alias tables of the rows of p [S, K] (rows sum to 1, or 0 for rows never drawn): (accept [S, K], alias [S, K]).

    Vose, "A linear algorithm for generating random numbers with a given distribution", IEEE Transactions on
    Software Engineering 17(9) (1991), https://doi.org/10.1109/32.92917, vectorised over
    rows: each round pairs one under-full column of every row with an over-full one. At most K rounds.
    """
    S, K = p.shape
    total = p.sum(axis=1, keepdims=True)
    q = np.divide(p * K, total, out=np.zeros_like(p), where=total > 0)
    accept = np.ones((S, K))
    alias = np.broadcast_to(np.arange(K), (S, K)).copy()
    small, large = q < 1.0, q >= 1.0
    act = np.arange(S)
    for _ in range(K):
        act = act[small[act].any(axis=1) & large[act].any(axis=1)]
        if act.size == 0:
            break
        i, j = small[act].argmax(axis=1), large[act].argmax(axis=1)
        accept[act, i] = q[act, i]
        alias[act, i] = j
        small[act, i] = False
        q[act, j] -= 1.0 - q[act, i]
        now_small = q[act, j] < 1.0
        large[act[now_small], j[now_small]] = False
        small[act[now_small], j[now_small]] = True
    # Columns left unpaired hold q = 1 up to round-off: they keep themselves (accept 1).
    return accept, alias


def joint_table(mdp: TabularMDP, policy: Policy, *, alias: bool | None = None) -> JointTable:
    """Build the joint table from the MDP's successor lists; terminal states get no entries (no action there).

    Args:
      mdp, policy: what to sample.
      alias: force the alias (True) or keys (False) layout; None picks alias when every row has at most
        ``ALIAS_MAX_WIDTH`` entries.

    >>> from verify.policy import TabularSoftmax
    >>> mdp = TabularMDP(initial=[1, 0], transitions=[[[0.5, 0.5], [0, 1]], [[0, 1], [0, 1]]],
    ...                  rewards=[[0, 1], [0, 0]], terminal=[1], horizon=3)
    >>> tab = joint_table(mdp, TabularSoftmax(np.zeros((2, 2))))
    >>> tab.width, tab.probabilities()[:3].round(12).tolist(), tab.action[:3].tolist(), tab.next_state[:3].tolist()
    (3, [0.25, 0.25, 0.5], [0, 0, 1], [0, 1, 1])
    """
    policy.check_compatible(mdp.n_states, mdp.n_actions)
    S, A = mdp.n_states, mdp.n_actions
    succ = mdp.successors
    state = succ.state
    keep = np.flatnonzero(~mdp.terminal[state])
    e_state, e_action = state[keep], succ.pair[keep] % A
    p = policy.probs[e_state, e_action] * succ.prob[keep]
    n_entries = np.bincount(e_state, minlength=S)
    K = max(int(n_entries.max(initial=0)), 1)
    use_alias = K <= ALIAS_MAX_WIDTH if alias is None else alias
    row_start = np.concatenate([[0], np.cumsum(n_entries)[:-1]])
    nxt, reward = succ.next_state[keep], succ.reward[keep]
    if use_alias:
        slot = e_state * K + (np.arange(keep.size) - row_start[e_state])
        P = np.zeros(S * K)
        P[slot] = p
        accept, alias_idx = _vose(P.reshape(S, K))
        flat = lambda x, fill: _scatter(S * K, slot, x, fill)  # noqa: E731
        alias_flat = (alias_idx + (np.arange(S) * K)[:, None]).ravel()
        next_state = flat(nxt, 0)
        return JointTable(width=K, accept=accept.ravel(), alias=alias_flat, keys=None, last=None,
                          n_entries=n_entries, state=np.repeat(np.arange(S), K), action=flat(e_action, 0),
                          next_state=next_state, reward=flat(reward, 0.0), ends=mdp.terminal[next_state],
                          next_row=next_state * K)
    # Keys: cumulative sums within rows; the last real entry of each row pinned to exactly s + 1, so every u in
    # [0, 1) lands in the row (rows sum to 1 within 1e-9).
    cum = np.cumsum(p)
    cum -= np.repeat(np.concatenate([[0.0], cum])[row_start], n_entries)
    last = np.maximum(row_start + n_entries - 1, 0)
    has = n_entries > 0
    cum[last[has]] = 1.0
    return JointTable(width=0, accept=None, alias=None, keys=e_state + cum, last=last, n_entries=n_entries,
                      state=e_state, action=e_action, next_state=nxt, reward=reward, ends=mdp.terminal[nxt],
                      next_row=nxt)


def _scatter(size: int, slot: np.ndarray, values: np.ndarray, fill) -> np.ndarray:
    out = np.full(size, fill, dtype=np.asarray(values).dtype)
    out[slot] = values
    return out


def default_max_steps(mdp: TabularMDP) -> int:
    """The step cap: the horizon, or for horizon null the smallest m with gamma^m (1 + m (1 - gamma)) <= 1e-12.

    gamma^m (1 + m (1 - gamma)) bounds both relative truncation biases of the module docstring.
    For gamma = 1 (termination is certain) it is ``GAMMA_ONE_MAX_STEPS``, and reaching it raises.

    >>> m = default_max_steps(TabularMDP(initial=[1], transitions=[[[1.0]]], rewards=[[1.0]], gamma=0.9))
    >>> m, bool(0.9 ** m * (1 + 0.1 * m) <= 1e-12 < 0.9 ** (m - 1) * (1 + 0.1 * (m - 1)))
    (295, True)
    """
    if mdp.horizon is not None:
        return mdp.horizon
    return effective_horizon(mdp.gamma)


def effective_horizon(gamma: float, rtol: float = TRUNCATION_RTOL) -> int:
    """The smallest m >= 1 with gamma^m (1 + m (1 - gamma)) <= rtol, found in O(log m) evaluations.

    The log of the bound, b(m) = m log gamma + log1p(m (1 - gamma)), is decreasing for m >= 1, so m is bracketed by
    doubling and then bisected: the cost does not grow with m (a step-by-step search took 26 CPU-s at
    gamma = 1 - 1e-7 and never ended at 1 - 1e-15). gamma = 1 gives ``GAMMA_ONE_MAX_STEPS``, gamma = 0 gives 1.

    >>> effective_horizon(0.9), effective_horizon(0.99)
    (295, 3094)
    >>> effective_horizon(1 - 1e-15) > 10**16
    True
    """
    if gamma == 1.0:
        return GAMMA_ONE_MAX_STEPS
    if gamma == 0.0:
        return 1
    log_g, target = math.log(gamma), math.log(rtol)

    def bound(m: int) -> float:        # log of gamma^m (1 + m (1 - gamma))
        return m * log_g + math.log1p(m * (1 - gamma))

    lo, hi = 0, 1                      # invariant: bound(hi) <= target < bound(lo) (bound(0) = 0 > target)
    while bound(hi) > target:
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if bound(mid) <= target else (mid, hi)
    return hi


def _resolve_max_steps(mdp: TabularMDP, max_steps: int | None) -> int:
    if max_steps is None:
        return default_max_steps(mdp)
    if mdp.horizon is not None:
        raise UsageError(f"max_steps applies to horizon null only (this MDP has horizon {mdp.horizon})")
    positive_int(max_steps, "max_steps")
    return int(max_steps)


ROWS_MIN_PARAMETERS = 256     # from this many S A, mc streams estimates as visited rows (verify.mc.FULL_MOMENTS_MAX_D)


def episode_bytes(mdp: TabularMDP, *, max_steps: int | None = None, dense: bool = False) -> int:
    """Working-set bytes per episode of sampling it and running an estimator on it (see ``chunk_size``).

    With T the step cap: the sampler's log, the step list (n, t, s, a, r) and the padded arrays, and the
    estimators' and the paired references' temporaries, about 13 arrays of 8 bytes per step (measured: 80-85
    bytes of peak RSS per step for ``mc --estimator reward_to_go`` on a 2-state MDP with horizon 10^5 and no
    terminal state), and about five arrays of per-episode estimates (the bincount, the score contraction, centred
    values for the moments): 8 (13 (T + 1) + 5 S A) bytes. Above ``ROWS_MIN_PARAMETERS`` (S A) mc keeps an
    estimate as its visited rows, at most min(S, T + 1) of A entries: 8 (13 (T + 1) + 5 min(S, T + 1) A) bytes
    (S = 10^5 would otherwise count 16 MB per episode). ``dense``: an estimator without visited rows (a user's
    function, or an action-value estimator) returns [N, S, A], and its evaluation holds about eight such arrays
    (measured: 7.2 for ``q_value`` on 20 001 parameters): 8 (13 (T + 1) + 8 S A) bytes.
    """
    T = _resolve_max_steps(mdp, max_steps)
    S, A = mdp.n_states, mdp.n_actions
    if dense:
        return 8 * (13 * (T + 1) + 8 * S * A)
    rows = S if S * A < ROWS_MIN_PARAMETERS else min(S, T + 1)
    return 8 * (13 * (T + 1) + 5 * rows * A)


def chunk_size(mdp: TabularMDP, *, max_steps: int | None = None, budget: int | None = None,
               dense: bool = False) -> int:
    """Episodes per chunk, so that sampling one chunk and running an estimator on it fit the memory limit.

    With ``budget`` (bytes): ``budget // episode_bytes(mdp)``, at least one. By default the chunking every seed's
    random stream has used so far, max(256, ``CHUNK_BYTES`` // (8 (8 (T + 1) + 5 rows A))) episodes, lowered
    to what the memory limit leaves beyond the process itself (``PROCESS_BYTES``) at ``episode_bytes`` each: the
    old floor of 256 episodes let a horizon of 10^5 take 2.7 GB under a 2 GiB limit. Throughput hardly depends
    on the chunk size beyond a few thousand episodes. ``dense``: as ``episode_bytes``.

    >>> frozen_lake_sized = TabularMDP(initial=[1] + [0] * 15, transitions=np.full((16, 4, 16), 1 / 16),
    ...                                rewards=np.zeros((16, 4)), horizon=100)
    >>> chunk_size(frozen_lake_sized)           # 200 MiB / (8 (8 * 101 + 5 * 64)) = 200 MiB / 9024 bytes
    23239
    >>> long = TabularMDP(initial=[1], transitions=[[[1.0]]], rewards=[[1.0]], horizon=10**5)
    >>> chunk_size(long), chunk_size(long, budget=100 * 2**20)     # 195 bytes per step under 2 GiB - 160 MiB
    (101, 10)
    """
    per_episode = episode_bytes(mdp, max_steps=max_steps, dense=dense)
    if budget is not None:
        return int(max(1, budget // per_episode))
    T = _resolve_max_steps(mdp, max_steps)
    S, A = mdp.n_states, mdp.n_actions
    rows = S if S * A < ROWS_MIN_PARAMETERS else min(S, T + 1)
    stream = max(256, CHUNK_BYTES // (8 * (8 * (T + 1) + 5 * rows * A)))   # keeps every seed's episodes as before
    # A chunk must fit at the rate the run's budget charges (``run_bytes``), or a limit that smaller chunks would
    # meet refuses the run: 1 000 episodes of 10^5 steps under 1G were refused at 1.6 GiB.
    charged = per_episode if dense or mdp.horizon is None else max(per_episode, CHUNK_STEP_BYTES * (T + 1))
    fits = max(1, (current_limits().max_memory - PROCESS_BYTES) // charged)
    return int(min(stream, fits))


def _draw(table: JointTable, rows: np.ndarray, rng: np.random.Generator, buf: np.ndarray | None = None) -> np.ndarray:
    """One table entry per running episode, given each one's row start (s K for alias, s for keys).

    ``buf``: a float array of at least ``rows.size`` entries that the uniforms may overwrite (the sampler reuses one
    per chunk: no allocation per step).
    """
    u = rng.random(rows.size) if buf is None else rng.random(out=buf[:rows.size])
    if table.width:
        K = table.width
        u *= K
        j = u.astype(np.intp)
        np.minimum(j, K - 1, out=j)     # u K can round up to K
        u -= j                           # the fractional part: a second uniform
        j += rows
        return np.where(u < table.accept[j], j, table.alias[j])
    u += rows
    k = table.keys.searchsorted(u, side="right")
    return np.minimum(k, table.last[rows], out=k)


def _sample_chunk(mdp: TabularMDP, policy: Policy, table: JointTable, n: int, cap: int,
                  rng: np.random.Generator, meter: WorkMeter, workspace: dict | None = None,
                  expected_steps: float = 0.0) -> Episodes:
    init_keys = np.cumsum(mdp.initial)
    # The same pinning as the joint table's last entries: u in [0, 1) always lands on a state with rho0 > 0.
    init_keys[np.flatnonzero(mdp.initial > 0)[-1]:] = np.inf
    s0 = init_keys.searchsorted(rng.random(n), side="right")
    alive = np.flatnonzero(~mdp.terminal[s0])
    rows = s0[alive] * max(table.width, 1)
    kernel = compiled_kernel(expected_steps)
    if kernel is not None:
        batch = _sample_chunk_compiled(kernel, mdp, policy, table, n, cap, s0, alive, rows, rng, meter,
                                       {} if workspace is None else workspace)
        if batch is not None:
            return batch
    ids: list[np.ndarray] = []
    ks: list[np.ndarray] = []
    step, buf = table.next_or_end, np.empty(alive.size)
    # The work limit bounds what runs (a horizon-null episode's length is known only when it ends): the loop
    # stops once the steps taken exceed what is left of it.
    left, taken = meter.remaining(), 0
    for t in range(cap):
        if alive.size == 0:
            break
        taken += alive.size
        if taken > left:
            meter.charge(taken, _work_what(mdp, n))
        k = _draw(table, rows, rng, buf)
        ids.append(alive)            # the same array object until an episode ends (no copies on long episodes)
        ks.append(k)
        rows = step[k]
        if rows.min() < 0:           # some episodes ended at this step
            keep = rows >= 0
            alive = alive[keep]
            rows = rows[keep]
    _require_terminated(mdp, alive.size, n, cap)
    del rows, buf  # the working set is gone; everything else is rebuilt from the log.
    meter.charge(taken, "sampling")

    T = len(ids)
    running = np.fromiter((x.size for x in ids), dtype=np.intp, count=T)
    epi = np.concatenate(ids) if T else np.zeros(0, dtype=np.intp)
    lengths = np.bincount(epi, minlength=n)
    # The log is time-major; one scatter per array reorders it into the Steps layout (episode by episode, longest
    # first), from which the padded arrays are later filled row by row rather than by strided scatters.
    order, first = longest_first(lengths)
    start = np.empty(n, dtype=np.intp)
    start[order] = first
    at_step = start[epi]
    at_step += np.repeat(np.arange(T), running)
    k = np.empty(epi.size, dtype=np.intp)
    if T:
        k[at_step] = np.concatenate(ks)
    del ids, ks, epi, at_step
    # Padding convention of Episodes: the final state repeats after the end.
    final = s0.copy()
    ran = lengths > 0
    final[ran] = table.next_state[k[start[ran] + lengths[ran] - 1]]
    n_step, t_step = step_index(lengths)
    steps = Steps(n=n_step, t=t_step, s=table.state.take(k), a=table.action.take(k), r=table.reward.take(k),
                  lengths=lengths, n_states=mdp.n_states, n_actions=mdp.n_actions)
    # The padded arrays are built from the steps when first read (the reward-to-go estimators never do).
    return StepEpisodes(steps, final, mdp, policy)


def _work_what(mdp: TabularMDP, n: int) -> str:
    return f"sampling {n} episodes (horizon {mdp.horizon}, gamma {mdp.gamma!r})"


def _require_terminated(mdp: TabularMDP, running: int, n: int, cap: int) -> None:
    if running and mdp.horizon is None and mdp.gamma == 1.0:
        raise UsageError(f"{running} of {n} episodes did not terminate within max_steps = {cap} steps (gamma = 1, "
                         "horizon null); pass a larger max_steps or give the MDP a horizon")


_KERNEL: object = None      # the compiled kernel module once looked for; False when numba is not importable
# Loading the kernel costs ~0.5 CPU-s per process (importing numba 0.18, reading numba's disk cache 0.31; ~1.3 s
# when it compiles; up to 0.7 under load) and saves 12-14 ns per step (FrozenLake 25 -> 12-13, Taxi 17 -> 4 at 200 000
# episodes, bench_sampler.py): it pays from 4-6 10^7 steps; 10^8 keeps a margin for a cold disk cache.
KERNEL_MIN_STEPS = 10**8


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def compiled_kernel(expected_steps: float = math.inf):
    """The sampler's compiled kernel (``verify.numerics.sampler_kernel``), or None for the numpy path.

    Both paths give the same episodes bit for bit (``tests/test_sampler_kernel.py``): the choice is speed only.
    None when numba is not installed or ``PGVERIFY_NO_NUMBA`` is set. Otherwise the kernel once loaded in this
    process; before that, it is loaded (numba imported, never at start-up) when ``PGVERIFY_NUMBA`` is set or the
    run still expects at least ``KERNEL_MIN_STEPS`` steps, the point from which it pays for its loading.
    """
    if _env_flag("PGVERIFY_NO_NUMBA"):
        return None
    global _KERNEL
    if _KERNEL is None:
        if expected_steps < KERNEL_MIN_STEPS and not _env_flag("PGVERIFY_NUMBA"):
            return None
        from verify.numerics import sampler_kernel
        _KERNEL = sampler_kernel if sampler_kernel.numba is not None else False   # without numba: numpy
    return _KERNEL or None


@contextlib.contextmanager
def _interrupt_after_compiled_code():
    """Ctrl-C during the block is raised as ``KeyboardInterrupt`` when it ends, not inside it.

    numba compiles the kernel on its first calls, and its compiler calls back into Python through ctypes (the object
    cache's notifications); a ``KeyboardInterrupt`` raised inside such a callback is printed ("Exception ignored on
    calling ctypes callback function") and dropped, and the run went on (``tests/test_hostile_signals.py`` caught
    it once in CI). The compiled loops do not look at signals anyway, so the interrupt comes no later than before.
    Only Python's own handler in the main thread is replaced; any other is left alone.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    seen = []
    signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if seen:
        raise KeyboardInterrupt


def _sample_chunk_compiled(kernel, mdp: TabularMDP, policy: Policy, table: JointTable, n: int, cap: int,
                           s0: np.ndarray, alive: np.ndarray, rows: np.ndarray, rng: np.random.Generator,
                           meter: WorkMeter, workspace: dict) -> Episodes | None:
    """``_sample_chunk`` from s_0 on, by the compiled kernel: the same draws, episodes and errors (None, nothing
    drawn, when the kernel cannot have its log's memory)."""
    with _interrupt_after_compiled_code():
        result = kernel.run_chunk(table, alive, rows, n, cap, meter.remaining(), rng, workspace)
    if result is None:
        return None
    stopped, taken, running, lengths, log = result
    if stopped:
        meter.charge(taken, _work_what(mdp, n))
        raise UsageError(f"{_work_what(mdp, n)} stopped at the work limit")   # charge raises; round-off aside
    _require_terminated(mdp, running, n, cap)
    meter.charge(taken, "sampling")
    with _interrupt_after_compiled_code():
        order, first = kernel.longest_first(lengths, cap)
        final = s0.copy()
        n_step, t_step, s, a, r = kernel.steps_from_log(table, log, lengths, order, first, final)
    steps = Steps(n=n_step, t=t_step, s=s, a=a, r=r, lengths=lengths, n_states=mdp.n_states,
                  n_actions=mdp.n_actions)
    return StepEpisodes(steps, final, mdp, policy)


def iter_episode_chunks(mdp: TabularMDP, policy: Policy, n: int, rng: np.random.Generator, *,
                        chunk: int | None = None, max_steps: int | None = None) -> Iterator[Episodes]:
    """Sample ``n`` episodes as consecutive batches of at most ``chunk`` episodes each.

    The batches come from one random stream: for a given seed, ``n`` and ``chunk`` the episodes are identical
    whatever the caller does between batches.

    Args:
      mdp, policy: what to sample.
      n: number of episodes (positive).
      rng: the only source of randomness.
      chunk: episodes per batch; default ``chunk_size(mdp)`` (a 200 MB working set).
      max_steps: step cap for horizon null (default ``default_max_steps``); an error with a finite horizon.

    Yields:
      Episodes batches, each padded to its own longest episode.

    Raises:
      UsageError: bad ``n``/``chunk``/``max_steps``, or gamma = 1 episodes that outlive ``max_steps``.
    """
    positive_int(n, "the number of episodes")
    cap = _resolve_max_steps(mdp, max_steps)
    if chunk is None:
        chunk = chunk_size(mdp, max_steps=max_steps)
    else:
        positive_int(chunk, "chunk")
    table = joint_table(mdp, policy)
    meter = work_meter()
    workspace: dict = {}     # the compiled kernel's scratch arrays, reused by every chunk
    steps = 0
    for start in range(0, n, chunk):
        # the steps still to come, from the chunks so far (the first chunk takes the numpy path unless the kernel
        # is loaded already: the choice changes the speed, never the episodes)
        expected = steps / start * (n - start) if start else 0.0
        batch = _sample_chunk(mdp, policy, table, min(chunk, n - start), cap, rng, meter, workspace, expected)
        steps += int(batch.lengths.sum())
        yield batch


def concatenate(batches: list[Episodes]) -> Episodes:
    """One Episodes batch from several of the same MDP and policy, padded to the longest episode."""
    if len(batches) == 1:
        return batches[0]
    T = max(b.T for b in batches)

    def pad(x: np.ndarray, width: int, edge: bool) -> np.ndarray:
        extra = width - x.shape[1]
        if extra == 0:
            return x
        fill = np.repeat(x[:, -1:], extra, axis=1) if edge else np.zeros((x.shape[0], extra), dtype=x.dtype)
        return np.concatenate([x, fill], axis=1)

    first = batches[0]
    return Episodes(np.concatenate([pad(b.s_t, T + 1, True) for b in batches]),
                    np.concatenate([pad(b.a_t, T, False) for b in batches]),
                    np.concatenate([pad(b.r_t, T, False) for b in batches]),
                    np.concatenate([b.lengths for b in batches]), first.mdp, first.policy)


def sample_episodes(mdp: TabularMDP, policy: Policy, n: int, rng: np.random.Generator, *,
                    chunk: int | None = None, max_steps: int | None = None) -> Episodes:
    """``n`` episodes in one batch (sampled chunk by chunk; use ``iter_episode_chunks`` when n is large).

    Args and Raises: as ``iter_episode_chunks``.

    Returns:
      Episodes with s_t [n, T+1], a_t [n, T], r_t [n, T], lengths [n]; T is the longest episode's length.

    >>> from verify.policy import TabularSoftmax
    >>> coin = TabularMDP(initial=[1, 0], transitions=[[[0.5, 0.5]], [[0, 1]]], rewards=[[1], [0]],
    ...                   terminal=[1], horizon=50)
    >>> eps = sample_episodes(coin, TabularSoftmax(np.zeros((2, 1))), 10_000, np.random.default_rng(0))
    >>> round(float(eps.lengths.mean()), 1)      # geometric(1/2) lengths: mean 2
    2.0
    """
    return concatenate(list(iter_episode_chunks(mdp, policy, n, rng, chunk=chunk, max_steps=max_steps)))


def sample_episodes_naive(mdp: TabularMDP, policy: Policy, n: int, rng: np.random.Generator, *,
                          max_steps: int | None = None) -> Episodes:
    """The per-step reference sampler: ``rng.choice`` for s_0, every a_t and every s_{t+1}, one episode at a time.

    Slow (one ``rng.choice`` per draw) and simple; shares no sampling code with ``sample_episodes``.
    """
    policy.check_compatible(mdp.n_states, mdp.n_actions)
    cap = _resolve_max_steps(mdp, max_steps)
    S, A = mdp.n_states, mdp.n_actions
    pi, P, r, terminal = policy.probs, mdp.transitions, mdp.rewards, mdp.terminal
    episodes = []
    for _ in range(n):
        s = int(rng.choice(S, p=mdp.initial))
        states, actions, rewards = [s], [], []
        while not terminal[s] and len(actions) < cap:
            a = int(rng.choice(A, p=pi[s]))
            s_next = int(rng.choice(S, p=P[s, a]))
            states.append(s_next)
            actions.append(a)
            rewards.append(r[s, a, s_next])
            s = s_next
        if not terminal[s] and mdp.horizon is None and mdp.gamma == 1.0:
            raise UsageError(f"an episode did not terminate within max_steps = {cap} steps (gamma = 1, horizon null)")
        episodes.append((states, actions, rewards))
    return episodes_from_lists(episodes, mdp, policy)


# --- the budget: refuse a run before it starts -----------------------------------------------------------------------

def check_sampling_budget(problem: Problem, episodes: int, *, chunked: bool = True,
                          max_steps: int | None = None, dense: bool = False) -> None:
    """Refuse, before sampling, ``episodes`` whose chunk memory or least work exceeds the limits.

    Memory: ``PROCESS_BYTES`` plus a chunk of min(episodes, ``chunk_size``) episodes (all of them when not
    ``chunked``) of ``episode_bytes`` each, T the step cap (the horizon, or the truncation cap for horizon null:
    about 3 10^5 steps at gamma = 0.9999). Work: at least one step per episode (episodes usually end long before
    T, so T x episodes would refuse honest requests); the sampler's ``WorkMeter`` bounds the steps that run.
    ``dense``: some estimator returns [N, S, A] (see ``episode_bytes``).
    """
    mdp = problem.mdp
    T = default_max_steps(mdp) if max_steps is None else max_steps
    per_episode = float(episode_bytes(mdp, max_steps=max_steps, dense=dense))
    batch = episodes if not chunked else min(episodes, chunk_size(mdp, max_steps=max_steps, dense=dense))
    hint = "" if mdp.horizon is not None else (f" (horizon null, gamma {mdp.gamma!r}: the step cap keeps the "
                                                "truncation bias below 1e-12; give the MDP a horizon (--horizon H) "
                                                "to lower it)")
    require_memory(PROCESS_BYTES + batch * per_episode,
                   f"sampling {batch} episodes at a time with a step cap of {T}" + hint)
    require_work(float(episodes), f"sampling {episodes} episodes")
