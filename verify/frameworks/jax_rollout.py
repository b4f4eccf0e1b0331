r"""JAX: check a loss on rollouts as a vectorised training loop collects them (``check_rollout_loss``).

The loss is ``loss_fn(params, batch) -> scalar`` with ``batch`` a ``verify.frameworks.rollout.RolloutBatch`` of
jax arrays, time-major [T, B, ...] by default (rlax, purejaxrl). Rollouts have static shapes, so the loss's
``jax.value_and_grad`` is compiled once (``jax.jit``) for the whole check, and the check runs under
``jax.enable_x64(True)``, scoped to the call.

Also here: ``refuse_batch_coupled``, which ``verify.frameworks.jax`` calls on every policy: pi(.|s) must not
depend on the other observations of the call (a recurrent scan over the batch, batch statistics).
"""
from __future__ import annotations

import weakref
from typing import Callable

import numpy as np

from verify.frameworks._common import LossError, observation_table, resolve_mdp
from verify.frameworks.rollout import (DEFAULT_ROLLOUT_TOLERANCE, RolloutBatch, RolloutCheck, RolloutModel,
                                       RolloutSpec, check_rollout_estimates, policy_mask, return_scale,
                                       rollout_arrays)

__all__ = ["check_rollout_loss", "refuse_batch_coupled"]

COUPLING_STATES = 16        # states probed one by one
_COMPILED = weakref.WeakKeyDictionary()     # loss_fn -> jax.jit(jax.value_and_grad(loss_fn)), reused across checks


def _compiled(loss_fn):
    """``jax.jit(jax.value_and_grad(loss_fn))``, one per loss function: rollouts have static shapes, so a check (and
    every later check of the same loss) compiles once per batch shape instead of once per call site.

    As with ``jax.jit`` itself, the loss must be pure: a loss that reads global state mutated between two checks
    keeps the first trace (pass a new function, e.g. a ``functools.partial``, or ``jit=False``)."""
    import jax

    try:
        fn = _COMPILED.get(loss_fn)
    except TypeError:           # not weak-referenceable: compile for this check only
        return jax.jit(jax.value_and_grad(loss_fn))
    if fn is None:
        fn = _COMPILED[loss_fn] = jax.jit(jax.value_and_grad(loss_fn))
    return fn


def refuse_batch_coupled(apply: Callable, params, obs, out) -> None:
    """Raise ``LossError`` when the policy's output for a state depends on the other rows of the call.

    ``out`` is ``apply(params, obs)`` on every state's observation; each of the first ``COUPLING_STATES`` states
    is evaluated alone. A recurrent network scanned over the leading axis (a GRU over "time") or batch
    statistics give other numbers: its pi(a|s) is not a function of s, and an exact verdict would be for a
    different policy.
    """
    out = np.asarray(out, dtype=float)
    for s in range(min(len(obs), COUPLING_STATES)):
        alone = np.asarray(apply(params, obs[s:s + 1]), dtype=float)
        if alone.shape != out[s:s + 1].shape:
            return          # the shape check elsewhere names this
        if not np.allclose(alone, out[s:s + 1], rtol=1e-9, atol=1e-12):
            raise LossError(f"the policy's output for state {s} depends on the other observations of the call "
                            f"({out[s].tolist()} in a batch of {len(obs)}, {alone[0].tolist()} alone): a recurrent "
                            "policy or batch statistics; pgverify's exact gradient is that of a Markov policy "
                            "pi(a|s), so it is refused")


def check_rollout_loss(apply: Callable, params, loss_fn: Callable, problem, *, n_envs: int = 4, n_steps: int = 8,
                       time_major: bool = True, start: str = "reset", time_limit: int | None = None,
                       weighting: str = "discounted", observations="one_hot", output: str = "logits",
                       entropy_coef: float | None = None, policy_params=None, batches: int = 1000, seed: int = 0,
                       alpha: float = 1e-3, tolerance: float = DEFAULT_ROLLOUT_TOLERANCE,
                       name: str | None = None, jit: bool = True,
                       on_monte_carlo: Callable[[str], None] | None = None) -> RolloutCheck:
    r"""Test a JAX loss fed B x T rollouts; as ``verify.frameworks.torch.check_rollout_loss``.

    Args:
      apply: ``(params, obs) -> logits`` of the policy head. params: the parameter pytree (float64 inside).
      loss_fn: ``(params, batch) -> scalar`` to minimise.
      policy_params: leaf paths (``jax.tree_util.keystr``, e.g. ``"['actor']"``) or their prefixes: the judged
        parameters; default: every parameter that moves pi.
      jit: compile ``value_and_grad`` of the loss (once: rollouts have static shapes).
      Others: as the PyTorch function.

    Returns:
      ``verify.frameworks.rollout.RolloutCheck``.
    """
    from verify.frameworks.jax import _exact, _jax, _loss_name, _Policy

    jax = _jax()
    mdp = resolve_mdp(problem)
    spec = RolloutSpec(n_envs, n_steps, time_major, start, time_limit, weighting)
    spec.check_mdp(mdp)
    if not callable(loss_fn):
        raise LossError(f"loss_fn must be a function (params, batch) -> scalar, got {type(loss_fn).__name__}")
    label = _loss_name(loss_fn, name)
    with jax.enable_x64(True):
        import jax.numpy as jnp

        pol = _Policy(apply, params, output)
        table = observation_table(mdp, observations)
        _, grad_J, logp = _exact(pol, mdp, table)
        # eager, not jit: a new closure per check would compile every time (~1 s), while eager operations are
        # compiled once per process and shape (~20 ms afterwards; benchmarks/bench_frameworks.py --rollout)
        jac = np.asarray(jax.jacrev(lambda f: logp(f).reshape(-1))(pol.flat))
        names = pol.names()
        model = RolloutModel(mdp, np.asarray(logp(pol.flat)), spec)
        mask = policy_mask(names, policy_params)
        from jax.flatten_util import ravel_pytree

        fn = _compiled(loss_fn) if jit else jax.value_and_grad(loss_fn)

        def estimate(ro) -> np.ndarray:
            b = rollout_arrays(ro, model, table)
            batch = RolloutBatch(*(jnp.asarray(x) for x in b[:-1]), gamma=b.gamma)
            where = f"on rollouts of {ro.n} environments x {spec.n_steps} steps"
            try:
                loss, g = fn(pol.params, batch)
                g = ravel_pytree(g)[0]
            except TypeError as exc:
                raise LossError(f"loss {label} raised TypeError {where} (a non-scalar loss? reduce it): "
                                f"{exc}") from exc
            except Exception as exc:  # noqa: BLE001 - the user's code: reported, chained
                raise LossError(f"loss {label} raised {type(exc).__name__} {where}: {exc}") from exc
            if not np.isfinite(float(loss)):
                return np.full(len(names), np.nan)          # counted by the engine, not fatal
            return -np.asarray(g, dtype=float)

        call = (f"check_rollout_loss(apply, params, {label}, {mdp.name!r}, n_envs={n_envs}, n_steps={n_steps}, "
                f"time_major={time_major}, start={start!r}, weighting={weighting!r}"
                + ("" if time_limit is None else f", time_limit={time_limit}")
                + ("" if entropy_coef is None else f", entropy_coef={entropy_coef!r}")
                + f", batches={batches}, seed={seed})")
        return check_rollout_estimates(estimate, model, jac, np.asarray(grad_J), names, loss=label, seed=seed,
                                       batches=batches, alpha=alpha, tolerance=tolerance, entropy_coef=entropy_coef,
                                       policy_mask=mask, scale=return_scale(model, jac, np.asarray(grad_J)),
                                       reproduce=call, on_monte_carlo=on_monte_carlo)
