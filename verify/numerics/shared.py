"""Per-batch shared work: what several estimators compute alike on one batch, computed once for all of them.

``pgverify check`` runs the whole catalog on each sampled chunk, and the catalog is compositions of a few weight
functions (``verify.checks.estimators``): reward-to-go G_t feeds four estimators, the exact Q_t(s_t, a_t) at the
steps four, gamma^t V_t(s_t) three, the exact GAE advantages two, gamma^t nearly all. The batch is the natural
context object: every estimator already receives it (the one signature ``episodes -> [N, *theta.shape]`` stays,
and users' estimators are untouched), and it lives exactly one chunk. ``shared(episodes, key, compute)`` keeps
``compute(episodes)`` on the batch under ``key``, like the ``Episodes.steps`` cache it extends, so the first
estimator that needs a quantity computes it and the others read it: the same numbers (the same function on the
same arrays), once per chunk instead of once per estimator.

The cached arrays are made read-only: one estimator editing a shared array in place would corrupt the others,
and now numpy refuses the write instead (compositions such as ``minus`` build new arrays anyway). A batch is
immutable once built (the samplers and the enumeration never edit one; ``verify.checks.gradcheck`` hands users'
functions read-only copies), so a cached value never goes stale; ``Episodes.select`` builds a new batch with an
empty cache.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Hashable, Iterator, TypeVar

import numpy as np

__all__ = ["recomputing", "shared", "shared_keys", "sharing"]

T = TypeVar("T")

_ATTRIBUTE = "_shared_work"     # the batch's __dict__ entry (Episodes is a frozen dataclass, as cached_property uses)
_RECOMPUTE = [False]            # ``recomputing``: every call computes anew (the per-estimator way, for comparisons)


@contextmanager
def recomputing() -> Iterator[None]:
    """Within the block, ``shared`` computes every call anew and stores nothing: the per-estimator recomputation
    the cache replaces, kept so that benchmarks can time both and tests can compare their numbers."""
    before = _RECOMPUTE[0]
    _RECOMPUTE[0] = True
    try:
        yield
    finally:
        _RECOMPUTE[0] = before


def sharing() -> bool:
    """False inside ``recomputing()``: callers with their own memo of per-batch work skip it too."""
    return not _RECOMPUTE[0]


def shared(episodes, key: Hashable, compute: Callable[[object], T]) -> T:
    """``compute(episodes)``, computed on the first call for this batch and ``key``, then returned as is.

    Args:
      episodes: the batch (an ``Episodes``; any object with a ``__dict__``).
      key: what is computed, including every parameter it depends on besides the batch (e.g.
        ``("reward_to_go", restart_discount, include_current)``).
      compute: batch -> value; an ndarray result is stored read-only.

    >>> class Batch: pass
    >>> calls = []
    >>> b = Batch()
    >>> x = shared(b, "x", lambda eps: calls.append(1) or np.arange(3.0))
    >>> y = shared(b, "x", lambda eps: calls.append(1) or np.arange(3.0))
    >>> x is y, len(calls), x.flags.writeable
    (True, 1, False)
    """
    if _RECOMPUTE[0]:
        return compute(episodes)
    cache = episodes.__dict__.get(_ATTRIBUTE)
    if cache is None:
        cache = episodes.__dict__[_ATTRIBUTE] = {}
    try:
        return cache[key]
    except KeyError:
        pass
    value = compute(episodes)
    if isinstance(value, np.ndarray):
        if value.flags.writeable:
            value = value.view()      # the caller may hold the original; the shared view is the read-only one
            value.setflags(write=False)
    cache[key] = value
    return value


def shared_keys(episodes) -> list:
    """The keys computed so far on this batch (for tests and benchmarks that count the shared work)."""
    return list(episodes.__dict__.get(_ATTRIBUTE, {}))
