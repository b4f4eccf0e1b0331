r"""PyTorch: check a loss on rollouts as a vectorised training loop collects them (``check_rollout_loss``).

The loss is ``loss_fn(module, batch) -> scalar tensor`` with ``batch`` a ``verify.frameworks.rollout.RolloutBatch``
of tensors, time-major [T, B, ...] by default (cleanrl's buffers) or batch-major. The verdict is on the policy's
parameters (those that move pi; a critic's own parameters get the value loss's gradient, reported apart), against
the exact expected gradient of the rollout procedure (``verify.frameworks.rollout``).

Also here: ``refuse_random_or_recurrent``, which ``verify.frameworks.torch`` calls on every policy: a module in
training mode with dropout (a different pi on every call) and a recurrent module (pi depends on the history, not
on the state) are refused with the reason, never pinned to one draw or one hidden state.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from verify.frameworks._common import LossError, observation_table, resolve_mdp
from verify.frameworks.rollout import (DEFAULT_ROLLOUT_TOLERANCE, RolloutBatch, RolloutCheck, RolloutModel,
                                       RolloutSpec, check_rollout_estimates, policy_mask,
                                       return_scale, rollout_arrays)

__all__ = ["check_rollout_loss", "refuse_random_or_recurrent"]

_RANDOM = ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout")


def refuse_random_or_recurrent(module) -> None:
    """Raise ``LossError`` for a module pgverify cannot check as a Markov policy pi(a|s).

    - dropout in training mode: pi differs on every call (J is a random variable); ``module.eval()`` checks the
      deterministic policy the loss would use at evaluation (or write the stochastic objective explicitly);
    - batch normalisation in training mode: pi(.|s) depends on the other observations of the call;
    - a recurrent layer (RNN, GRU, LSTM and their cells): pi(a_t|h_t) depends on the history, so the exact
      gradient of a state-based policy would be the gradient of a different policy.
    """
    import torch

    for name, sub in module.named_modules():
        kind = type(sub).__name__
        where = f"{type(module).__name__}" + (f".{name}" if name else "")
        if isinstance(sub, (torch.nn.RNNBase, torch.nn.RNNCellBase)):
            raise LossError(f"the policy {where} is recurrent ({kind}): pi(a_t|h_t) depends on the history, and "
                            "pgverify's exact gradient is that of a Markov policy pi(a|s); checking it would give an "
                            "exact verdict for a different policy, so it is refused")
        if sub.training and (kind in _RANDOM or isinstance(sub, torch.nn.modules.dropout._DropoutNd)) \
                and getattr(sub, "p", 0) > 0:
            raise LossError(f"the policy {where} is {kind}(p={sub.p}) in training mode: pi changes on every call, "
                            "so there is no single gradient to check; call policy.eval() first (or write the "
                            "stochastic objective explicitly)")
        if sub.training and isinstance(sub, torch.nn.modules.batchnorm._BatchNorm):
            raise LossError(f"the policy {where} is {kind} in training mode: pi(.|s) depends on the other "
                            "observations of the batch; call policy.eval() first")


def check_rollout_loss(policy, loss_fn: Callable, problem, *, n_envs: int = 4, n_steps: int = 8,
                       time_major: bool = True, start: str = "reset", time_limit: int | None = None,
                       weighting: str = "discounted", logits: Callable | None = None, observations="one_hot",
                       output: str = "logits", entropy_coef: float | None = None, policy_params=None,
                       batches: int = 1000, seed: int = 0, alpha: float = 1e-3,
                       tolerance: float = DEFAULT_ROLLOUT_TOLERANCE, name: str | None = None,
                       on_monte_carlo: Callable[[str], None] | None = None) -> RolloutCheck:
    r"""Test a PyTorch loss fed B x T rollouts: is E[-grad loss] on the policy's parameters g_roll, c g_roll, or
    biased (and why)?

    Args:
      policy: ``torch.nn.Module``; ``logits=(module, obs) -> logits`` picks the policy head (e.g.
        ``lambda agent, obs: agent.actor(obs)``). observations, output: as ``verify.frameworks.torch.check_loss``.
      loss_fn: ``(module, batch) -> scalar tensor`` to minimise; ``batch`` a ``RolloutBatch`` of tensors.
      problem: ``TabularMDP``, ``Problem`` or MDP file path.
      n_envs, n_steps, time_major, start, time_limit, weighting: the ``RolloutSpec``.
      entropy_coef: beta: judge against grad (J_roll + beta H) (without it, an entropy term is named as a cause).
      policy_params: names (or name prefixes) of the judged parameters; default: every parameter that moves pi.
      batches, seed, alpha, tolerance: the Monte Carlo run (when the rollouts cannot be enumerated).
      on_monte_carlo: called with the Monte Carlo run's cost before it starts.

    Returns:
      ``verify.frameworks.rollout.RolloutCheck``.

    Raises:
      LossError: the loss raised or returned a non-scalar or a tensor without grad; the policy is random
        (dropout in training mode), batch-coupled or recurrent; see ``verify.frameworks.torch``.
    """
    import torch

    from verify.frameworks.torch import _exact, _flat, _jacobian, _loss_name, _one_thread, _Policy

    mdp = resolve_mdp(problem)
    spec = RolloutSpec(n_envs, n_steps, time_major, start, time_limit, weighting)
    spec.check_mdp(mdp)
    if not callable(loss_fn):
        raise LossError(f"loss_fn must be a function (module, batch) -> scalar tensor, got {type(loss_fn).__name__}")
    label = _loss_name(loss_fn, name)

    @_one_thread
    def run() -> RolloutCheck:
        pol = _Policy(policy, logits, output)
        table = observation_table(mdp, observations)
        _, logp, grads = _exact(pol, mdp, table)
        with torch.enable_grad():
            jac = _jacobian(logp, pol.params)
        grad_J = _flat(grads, pol.params)
        names = pol.names()
        model = RolloutModel(mdp, logp.detach().cpu().numpy(), spec)
        mask = policy_mask(names, policy_params)
        obs_dtype = torch.int64 if table.dtype.kind in "iub" else torch.float64

        def tensor(x):
            x = np.asarray(x)
            if x.dtype.kind == "b":
                return torch.as_tensor(x)
            return torch.as_tensor(x, dtype=torch.int64 if x.dtype.kind in "iu" else torch.float64)

        def estimate(ro) -> np.ndarray:
            b = rollout_arrays(ro, model, table)
            batch = RolloutBatch(*(torch.as_tensor(np.asarray(v), dtype=obs_dtype) if f in ("obs", "next_obs",
                                                                                           "last_obs")
                                   else tensor(v) for f, v in zip(RolloutBatch._fields[:-1], b[:-1])), gamma=b.gamma)
            where = f"on rollouts of {ro.n} environments x {spec.n_steps} steps"
            with torch.enable_grad():
                try:
                    loss = loss_fn(pol.model, batch)
                except Exception as exc:  # noqa: BLE001 - the user's code: reported, chained
                    raise LossError(f"loss {label} raised {type(exc).__name__} {where}: {exc}") from exc
                if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                    raise LossError(f"loss {label} returned {type(loss).__name__} "
                                    f"{tuple(getattr(loss, 'shape', ()))} {where}, not a scalar tensor")
                if not torch.isfinite(loss).all():
                    return np.full(len(names), np.nan)          # counted by the engine, not fatal
                if not loss.requires_grad:
                    raise LossError(f"loss {label} returned a tensor without grad {where}")
                g = torch.autograd.grad(loss.reshape(()), pol.params, allow_unused=True)
            return -_flat(g, pol.params)

        call = (f"check_rollout_loss(policy, {label}, {mdp.name!r}, n_envs={n_envs}, n_steps={n_steps}, "
                f"time_major={time_major}, start={start!r}, weighting={weighting!r}"
                + ("" if time_limit is None else f", time_limit={time_limit}")
                + ("" if entropy_coef is None else f", entropy_coef={entropy_coef!r}")
                + f", batches={batches}, seed={seed})")
        return check_rollout_estimates(estimate, model, jac, grad_J, names, loss=label, seed=seed, batches=batches,
                                       alpha=alpha, tolerance=tolerance, entropy_coef=entropy_coef,
                                       policy_mask=mask, scale=return_scale(model, jac, grad_J), reproduce=call,
                                       on_monte_carlo=on_monte_carlo)
    return run()
