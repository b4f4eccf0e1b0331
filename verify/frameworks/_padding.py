r"""How many steps a framework batch is padded to (``pad_to``), and whether padding changes the user's loss.

A compiled loss (``jax.jit``) is compiled once per batch shape: padding every batch to its longest episode costs
one compilation per distinct length (41 on FrozenLake-v1's 1000 batches), which dwarfs the check itself. The
default ``pad_to="auto"`` pads to a static length instead:

- the horizon H, when H <= ``AUTO_PAD_MAX`` (one compilation per check);
- else (horizon null or very long) powers of two from ``AUTO_PAD_MIN``, grown only when a batch needs more and
  capped at H: at most log2(longest episode) + 1 compilations, each at most twice the longest episode.

Padding appends masked steps (``mask`` 0, reward 0, the final state's observation), so a loss that sums
``mask``-weighted terms has the same value at every padded length. A loss that averages over padded time does not
(``rlax.policy_gradient_loss``, ``.mean()`` over [B, T]): its gradient is divided by T. Such a loss must see the
padding a training loop gives it, so ``padding_changes_loss`` evaluates the loss on one probe batch at its natural
length and at a longer one, with random rewards on the real steps (a probe of zero returns would hide a 1/T), and
the adapter then pads each batch to its longest episode instead (the verdict is the one without ``pad_to``).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from verify.errors import UsageError
from verify.frameworks._common import Batch, batch_arrays
from verify.numerics.episodes import Episodes, StepEpisodes

__all__ = ["AUTO_PAD_MAX", "AUTO_PAD_MIN", "CHUNK_BYTES", "CHUNK_MAX", "PADDING_RTOL", "Padding", "batch_groups",
           "chunk_batches", "padding_changes_loss", "plain_batches"]

AUTO_PAD_MAX = 1024      # horizons up to this are the static padded length itself
AUTO_PAD_MIN = 8         # the smallest power-of-two bucket
CHUNK_BYTES = 8 << 20    # batch arrays evaluated in one compiled call (a chunk of batches): small enough for cache
CHUNK_MAX = 16           # batches per call: the per-call overhead is amortised by then (FrozenLake: 8 ~ 17)
PADDING_RTOL = 1e-5      # above float32 reduction round-off (~1e-6), below the 1/(T + 1) a mean over padded time moves


class Padding:
    """The padded length of each batch for ``pad_to``: None (each batch's longest episode), an int, or "auto"."""

    def __init__(self, pad_to, horizon: int | None):
        if not (pad_to is None or pad_to == "auto" or (isinstance(pad_to, (int, np.integer))
                                                       and not isinstance(pad_to, bool) and pad_to >= 1)):
            raise UsageError(f"pad_to must be 'auto', None or a positive number of steps, got {pad_to!r}")
        self.pad_to = pad_to
        self.horizon = horizon
        self.bucket = 0          # "auto" without a usable horizon: the current power of two (only grows)

    @property
    def static(self) -> bool:
        """Whether every batch gets one length (one compilation)."""
        return isinstance(self.pad_to, (int, np.integer)) or (
            self.pad_to == "auto" and self.horizon is not None and self.horizon <= AUTO_PAD_MAX)

    def length(self, longest: int) -> int | None:
        """The padded length for a batch whose longest episode has ``longest`` steps (None: that length)."""
        if self.pad_to is None:
            return None
        if self.pad_to != "auto":
            return int(self.pad_to)
        if self.static:
            return int(self.horizon)
        while self.bucket < max(longest, AUTO_PAD_MIN):
            self.bucket = max(AUTO_PAD_MIN, 2 * self.bucket)
        return self.bucket if self.horizon is None else min(self.bucket, int(self.horizon))

    def describe(self) -> str:
        if self.pad_to is None:
            return "each batch padded to its longest episode"
        if self.pad_to != "auto":
            return f"every batch padded to {int(self.pad_to)} steps"
        if self.static:
            return f"every batch padded to the horizon H = {self.horizon} (pad_to='auto')"
        return f"batches padded to powers of two from {AUTO_PAD_MIN} steps (pad_to='auto'), grown as needed"

    def arrays(self, episodes, table: np.ndarray) -> Batch:
        """``batch_arrays`` at this padding."""
        return batch_arrays(episodes, table, self.length(int(np.max(episodes.lengths, initial=0))))


def padding_changes_loss(loss_value: Callable[[Batch], float], episodes, table: np.ndarray, padding: Padding,
                         seed: int, at: tuple[int, int] | None = None) -> bool:
    """Whether ``loss_value`` (numpy batch -> loss) differs beyond ``PADDING_RTOL`` (relative) between ``episodes``
    padded to their longest episode and padded by ``padding`` (at least one step more), or padded to the two
    lengths ``at`` (both at least the longest episode: shapes a caller has compiled anyway), with N(0, 1) rewards
    on the real steps (zero returns would hide a mean over padded time)."""
    longest = int(np.max(episodes.lengths, initial=0))
    if at is not None and not longest <= at[0] < at[1]:
        raise ValueError(f"padding lengths {at} for episodes of up to {longest} steps")
    natural = batch_arrays(episodes, table, None if at is None else at[0])
    rng = np.random.default_rng([seed, 29])
    rewards = rng.standard_normal(natural.rewards.shape) * natural.mask
    padded = padding.length(longest)
    longer = batch_arrays(episodes, table, at[1] if at is not None else
                          max(padded if padded is not None else 0, longest + 1))
    extra = np.zeros((rewards.shape[0], longer.rewards.shape[1] - rewards.shape[1]))
    v0 = float(loss_value(natural._replace(rewards=rewards)))
    v1 = float(loss_value(longer._replace(rewards=np.concatenate([rewards, extra], axis=1))))
    return not abs(v0 - v1) <= PADDING_RTOL * max(abs(v0), abs(v1), 1e-300)


def plain_batches(eps: Episodes, B: int) -> Episodes:
    """``eps`` (K batches of B consecutive episodes) with each batch's rows as the batch check hands them to an
    estimate one batch at a time (``_plain``: cut to the batch's longest episode T_k), then padded back to the
    common width: states past T_k repeat the episode's final state, actions and rewards past T_k are 0. So
    ``batch_arrays(plain.select(slice(k B, (k + 1) B)), table, T)`` is the k-th batch's ``Batch`` at T steps.
    The sampler's episodes (``StepEpisodes``) already hold the final state and zeros past every episode's end, so
    they are returned as they are (the three padded copies cost a quarter of a compiled JAX check)."""
    if isinstance(eps, StepEpisodes):
        return eps
    lengths = np.asarray(eps.lengths)
    T_k = np.repeat(lengths.reshape(-1, B).max(axis=1, initial=0), B)[:, None]
    t = np.arange(eps.s_t.shape[1])[None, :]
    final = eps.s_t[np.arange(lengths.size), lengths][:, None]
    keep = t[:, :eps.a_t.shape[1]] < T_k
    return Episodes(np.where(t <= T_k, eps.s_t, final), np.where(keep, eps.a_t, 0), np.where(keep, eps.r_t, 0.0),
                    lengths, eps.mdp, eps.policy)


def batch_groups(padding: Padding, eps: Episodes, B: int) -> dict[int, np.ndarray]:
    """Padded length T -> the indices k of the batches (B consecutive episodes each) padded to T, in the order a
    batch-by-batch check pads them (``Padding.length`` only grows its power-of-two bucket)."""
    longest = np.asarray(eps.lengths).reshape(-1, B).max(axis=1, initial=0)
    if padding.static:
        T = padding.length(int(longest.max(initial=0)))
        return {T: np.arange(longest.size)}
    T_k = np.array([padding.length(int(n)) or int(n) for n in longest])
    return {int(T): np.flatnonzero(T_k == T) for T in np.unique(T_k)}


def chunk_batches(n_batches: int, bytes_per_batch: float, limit: float = CHUNK_BYTES) -> int:
    """How many batches go into one compiled call: as many as fit ``limit`` bytes, at most ``CHUNK_MAX`` and
    ``n_batches``, at least 1; a last, shorter chunk is filled up by repeating a batch (one compiled shape)."""
    return int(max(1, min(n_batches, CHUNK_MAX, limit // max(bytes_per_batch, 1.0))))
