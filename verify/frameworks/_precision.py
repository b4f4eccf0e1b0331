"""The floating types a framework loss actually computes in (``verify.checks.precision``), observed on one batch.

pgverify hands the loss float64 parameters and batch tensors, but the loss may create its own: PyTorch's
``gamma ** torch.arange(T)`` is ``torch.get_default_dtype()`` (float32 unless changed), and a JAX loss may cast
with ``.astype(jnp.float32)``. Their round-off (~6e-8 relative) then reaches the gradient, and a float64 tolerance
would call it a bias. So the loss is evaluated once while every intermediate's dtype is recorded: PyTorch through a
``TorchFunctionMode`` (every torch function's floating outputs), JAX through the loss's jaxpr (every equation's
output, nested jaxprs included).
"""
from __future__ import annotations

import numpy as np

from verify.checks.precision import Precision, precision_of
from verify.numerics.sampler import sample_episodes

__all__ = ["jax_precision", "probe_batch", "torch_precision"]


def probe_batch(target, batch_size: int, seed: int, size: int | None = None):
    """A small batch (``size`` episodes, default at most 8) from the target's problem to observe the loss on (its
    own stream: no sample is shared)."""
    return sample_episodes(target.problem.mdp, target.problem.policy,
                           max(2, min(batch_size, 8)) if size is None else size, np.random.default_rng([seed, 13]))


def torch_precision(run, target) -> Precision:
    """Call ``run()`` (one loss evaluation) recording the floating dtypes of every torch function's outputs."""
    import torch
    from torch.overrides import TorchFunctionMode

    seen: set = set()

    def record(out) -> None:
        if isinstance(out, torch.Tensor) and out.is_floating_point():
            seen.add(out.dtype)
        elif isinstance(out, (tuple, list)):
            for o in out:
                record(o)

    class Recorder(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            record(out)
            return out

    with Recorder():
        run()
    default = str(torch.get_default_dtype()).replace("torch.", "")
    source = ("the loss computes in {dtype}; tensors created without dtype= follow torch.get_default_dtype() = "
              f"{default}")
    return precision_of(seen, target.problem.mdp, target.problem.policy, source=source, framework="torch")


def jax_precision(fn, args, target) -> Precision:
    """The floating dtypes of every equation of ``fn(*args)``'s jaxpr (nested ones too); a loss that cannot be
    traced is judged by its output."""
    import jax

    seen: set = set()

    def walk(jaxpr) -> None:
        for eqn in jaxpr.eqns:
            for v in eqn.outvars:
                dtype = getattr(getattr(v, "aval", None), "dtype", None)
                if dtype is not None and np.dtype(dtype).kind == "f":
                    seen.add(np.dtype(dtype))
            for p in eqn.params.values():
                for sub in (p if isinstance(p, (tuple, list)) else (p,)):
                    inner = getattr(sub, "jaxpr", sub)
                    if hasattr(inner, "eqns"):
                        walk(inner)

    try:
        walk(jax.make_jaxpr(fn)(*args).jaxpr)
    except Exception:  # noqa: BLE001 - untraceable losses (Python control flow on values): the output decides
        try:
            out = fn(*args)
            seen.add(np.asarray(out).dtype)
        except Exception:  # noqa: BLE001 - the check itself reports the loss's errors
            pass
    return precision_of(seen, target.problem.mdp, target.problem.policy, source="the loss computes in {dtype}",
                        framework="jax")
