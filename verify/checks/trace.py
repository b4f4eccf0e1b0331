"""Convergence traces: the running mean of a stream of per-episode gradient estimates at log-spaced checkpoints.

A Monte Carlo run (``verify.mc.run_estimators(..., trace=C)``) records one ``ConvergenceTrace`` per estimator from
the very episodes its test uses, so the figures (``verify.plots``) show that run, not a second sample. Memory is
O(C k) for k parameters; each chunk costs one ``np.add.reduceat`` over its episodes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ConvergenceTrace", "TraceRecorder", "checkpoints"]


def checkpoints(episodes: int, points: int = 200) -> np.ndarray:
    """About ``points`` log-spaced episode counts from 1 to ``episodes`` (both included), strictly increasing.

    >>> checkpoints(1000, 5).tolist()
    [1, 6, 32, 178, 1000]
    """
    n = np.unique(np.geomspace(1, episodes, num=max(2, min(points, episodes))).round().astype(np.int64))
    return n[(n >= 1) & (n <= episodes)]


@dataclass(frozen=True)
class ConvergenceTrace:
    """Running statistics of g_1, ..., g_n at the checkpoints n.

    Attributes:
      n: episode counts, shape [C].
      mean: running mean m_n = (1/n) sum_{i<=n} g_i, shape [C, *theta.shape].
      var_trace: running sample variance summed over the components, tr Cov_n[g], shape [C] (0 at n = 1).
      components: flat indices of the components whose own variance is kept, shape [m].
      var: running sample variance of those components, shape [C, m].
    """

    n: np.ndarray
    mean: np.ndarray
    var_trace: np.ndarray
    components: np.ndarray
    var: np.ndarray

    def relative_error(self, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(||m_n - grad J||, 2 sqrt(tr Cov_n / n), scale) divided by scale = ||grad J|| (1 when grad J = 0).

        The second is twice the root-mean-square error an unbiased mean of n episodes has: an unbiased
        estimator's error stays near it and falls like 1/sqrt(n); a biased one levels off at ||bias||.
        """
        scale = float(np.linalg.norm(grad)) or 1.0
        err = np.linalg.norm((self.mean - grad).reshape(len(self.n), -1), axis=1)
        return err / scale, 2 * np.sqrt(self.var_trace / self.n) / scale, scale


class TraceRecorder:
    """Accumulates a ConvergenceTrace chunk by chunk.

    >>> rec = TraceRecorder(4, shape=(1,), components=[0], points=4)
    >>> rec.add(np.array([[1.0], [3.0]])); rec.add(np.array([[2.0], [6.0]]))
    >>> t = rec.result()
    >>> t.n.tolist(), t.mean[:, 0].tolist(), t.var[:, 0].round(6).tolist()   # variances of 1,3 / 1,3,2 / 1,3,2,6
    ([1, 2, 3, 4], [1.0, 2.0, 2.0, 3.0], [0.0, 2.0, 1.0, 4.666667])
    """

    def __init__(self, episodes: int, *, shape: tuple[int, ...], components, points: int = 200):
        self.n = checkpoints(episodes, points)
        self.shape, self.components = tuple(shape), np.asarray(components, dtype=np.int64)
        k = int(np.prod(self.shape, dtype=np.int64))
        self.seen, self.total, self.total_sq, self.total_comp_sq = 0, np.zeros(k), 0.0, np.zeros(len(self.components))
        self.sums, self.sq_traces, self.comp_sq = [], [], []

    def add(self, x: np.ndarray) -> None:
        """Append a chunk of per-episode estimates, shape [B, *shape]."""
        x = np.asarray(x, dtype=float).reshape(len(x), -1)
        b = len(x)
        at = self.n[(self.n > self.seen) & (self.n <= self.seen + b)] - self.seen   # checkpoints, 1..b
        if len(at):
            head = x[:at[-1]]
            starts = np.concatenate([[0], at[:-1]])
            seg = np.add.reduceat(head, starts, axis=0)
            sq = np.add.reduceat(np.einsum("ij,ij->i", head, head), starts)
            csq = np.add.reduceat(head[:, self.components] ** 2, starts, axis=0)
            self.sums.append(self.total + np.cumsum(seg, axis=0))
            self.sq_traces.append(self.total_sq + np.cumsum(sq))
            self.comp_sq.append(self.total_comp_sq + np.cumsum(csq, axis=0))
        self.total = self.total + x.sum(axis=0)
        self.total_sq += float(np.einsum("ij,ij->", x, x))
        self.total_comp_sq = self.total_comp_sq + (x[:, self.components] ** 2).sum(axis=0)
        self.seen += b

    def result(self) -> ConvergenceTrace:
        """The trace at every checkpoint reached so far."""
        sums = np.concatenate(self.sums) if self.sums else np.zeros((0, self.total.size))
        n = self.n[:len(sums)].astype(float)
        mean = sums / n[:, None]
        bessel = n / np.maximum(n - 1, 1)
        var_trace = np.clip(np.concatenate(self.sq_traces) / n - (mean ** 2).sum(axis=1), 0, None) * bessel \
            if len(n) else np.zeros(0)
        comp = np.concatenate(self.comp_sq) if self.comp_sq else np.zeros((0, len(self.components)))
        var = np.clip(comp / n[:, None] - mean[:, self.components] ** 2, 0, None) * bessel[:, None]
        return ConvergenceTrace(n=self.n[:len(sums)], mean=mean.reshape(len(n), *self.shape),
                                var_trace=var_trace, components=self.components, var=var)
