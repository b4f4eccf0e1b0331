"""The memory a Monte Carlo run needs, estimated before it starts: what ``--max-memory`` checks for ``mc``.

A run (``verify.checks.mc.run_estimators``) passes through three phases, each holding what the one before kept:

1. the exact gradient: ``verify.numerics.exact.gradient_bytes`` (its live-state operator stays cached);
2. the sampler's joint table (``verify.numerics.sampler.joint_table``): built once, its alias construction's
   temporaries at their peak;
3. the chunks: the table, the value tables of estimators and paired references that need them
   (``verify.numerics.backward.horizon_values_bytes``), one chunk (its padded arrays, the visited rows of the
   estimator and its references, ``action_values_at``'s expansion: a measured size per padded step) and the
   running moments (diagonal: a few arrays of theta's size per estimator and per paired difference).

The constants are per-entry sizes measured on the gridworlds of ``benchmarks/bench_scale.py`` (10^4 to 10^6
states), which prints the estimate against the measured peak.
"""
from __future__ import annotations

import numpy as np

from verify.model.problem import live_size
from verify.numerics.backward import horizon_values_bytes
from verify.numerics.exact import gradient_bytes
from verify.numerics.sampler import ALIAS_MAX_WIDTH, CHUNK_STEP_BYTES, chunk_size, default_max_steps, episode_bytes

__all__ = ["run_bytes"]

TABLE_BUILD_BYTES = 154.0   # per joint-table entry during the alias construction (measured 154 at S = 10^4, 10^5)
TABLE_KEPT_BYTES = 55.0     # per joint-table entry kept while sampling (measured 55 at S = 10^6)
OPERATOR_BYTES = 12.0       # per live transition of the exact gradient's cached operator (CSR values, indices)
MOMENT_BYTES = 40.0         # per parameter and running diagonal SampleMoments (mean, scatter, counts, extremes)


def _step_cap(mdp, max_steps: int | None) -> int:
    return default_max_steps(mdp) if max_steps is None else max_steps


def _table_entries(mdp) -> int:
    """Entries of the sampler's joint table: S x the widest row (alias layout), else the transitions."""
    succ = mdp.successors
    widths = np.diff(succ.state_indptr)
    width = int(widths[~mdp.terminal].max(initial=0))
    return mdp.n_states * width if width <= ALIAS_MAX_WIDTH else succ.nnz


def run_bytes(problem, episodes: int, estimators, *, paired: bool = True, enumerated: bool = False,
              max_steps: int | None = None, dense: bool = False) -> float:
    """Peak memory of ``run_estimators(problem, estimators, episodes=...)`` beyond the model, in bytes.

    Args:
      estimators: the catalog entries (or their names) the run evaluates.
      paired, enumerated: whether the paired test's references run (sampling without an enumeration), and
        whether the trajectories are enumerated (then the exact moments are checked on their own).
    """
    mdp, policy = problem.mdp, problem.policy
    n_est = len(estimators)
    gradient = gradient_bytes(mdp)
    n, nnz = live_size(mdp) if mdp.horizon is not None else (mdp.n_states, mdp.successors.nnz)
    operator = OPERATOR_BYTES * nnz + 16.0 * n * mdp.n_actions
    entries = _table_entries(mdp)
    table = TABLE_BUILD_BYTES * entries
    refs = paired and not enumerated
    values = horizon_values_bytes(mdp) if refs and mdp.horizon is not None else 0.0
    d = policy.theta.size
    # a running sum per estimator, one per paired difference, and the pilot chunk's trial difference
    moments = MOMENT_BYTES * d * (2 * n_est + 1 if refs else n_est)
    batch = min(episodes, chunk_size(mdp, max_steps=max_steps, dense=dense))
    if dense:       # [N, S, A] estimates: the sampler's own per-episode bound (``sampler.episode_bytes``)
        chunk = batch * episode_bytes(mdp, max_steps=max_steps, dense=True)
    elif mdp.horizon is None:
        # The step cap of horizon null (10^5 steps at gamma = 1) is a truncation bound, not a length: a chunk
        # pads to its longest episode, and ``chunk_size`` already sized the batch so that capped episodes fit
        # the limit at ``episode_bytes`` each; charging CHUNK_STEP_BYTES for every capped step would refuse a
        # two-state run.
        chunk = batch * episode_bytes(mdp, max_steps=max_steps)
    else:           # the padded [N, T + 1] arrays, the visited rows of g and of each reference, their expansions
        chunk = CHUNK_STEP_BYTES * batch * (_step_cap(mdp, max_steps) + 1)
    chunks = TABLE_KEPT_BYTES * entries + values + moments + chunk
    return max(gradient, operator + table, operator + chunks)
