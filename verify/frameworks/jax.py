r"""JAX adapter: exact grad J for a policy ``apply(params, obs) -> logits``, and ``check_loss`` for its loss.

The policy is a pure function ``apply(params, obs)`` mapping observations [B, *obs_shape] to logits [B, A] (or,
with ``output=``, probabilities or log-probabilities), with ``params`` any pytree (Flax/Haiku parameters, a dict
of arrays). The loss is ``loss_fn(params, batch) -> scalar``, exactly as in the training loop; ``batch`` is a
``verify.frameworks.Batch`` of jax arrays. pgverify differentiates it with ``jax.value_and_grad`` under
``jax.jit`` (falling back to eager evaluation when the loss cannot be traced).

A loss is minimised: the check tests E[-grad loss] against grad J. Exact verdicts need float64: each check runs
under ``jax.enable_x64(True)`` (scoped to the call; the process's setting is restored) on float64 parameters.

>>> import jax.numpy as jnp
>>> from verify.model.builtin import builtin_examples
>>> bandit = builtin_examples()["bandit"].mdp
>>> def apply(params, obs):
...     return obs @ params["w"]
>>> def reinforce(params, batch):
...     logp = jax.nn.log_softmax(apply(params, batch.obs))
...     logp_a = jnp.take_along_axis(logp, batch.actions[..., None], axis=-1)[..., 0]
...     disc = batch.gamma ** jnp.arange(batch.rewards.shape[1])
...     G = jnp.cumsum((disc * batch.rewards)[:, ::-1], axis=1)[:, ::-1]     # sum_{t' >= t} gamma^t' r_t'
...     return -(logp_a * G * batch.mask).sum(axis=1).mean()
>>> check_loss(apply, {"w": jnp.zeros((bandit.n_states, bandit.n_actions))}, reinforce, bandit, batch_size=4).verdict
'unbiased'
"""
from __future__ import annotations

import contextlib
import weakref

from typing import Callable

import numpy as np

from verify.checks.batchcheck import (DEFAULT_ALPHA, DEFAULT_BATCH_SIZE, DEFAULT_BATCHES, DEFAULT_TOLERANCE, BatchCheck,
                               _check_settings, check_batches)
from verify.checks.contract import callable_argument, problem_argument
from verify.errors import UsageError
from verify.frameworks._common import (Batch, ExactGradient, LossError, batch_arrays, framework_target, loss_name,
                                       observation_table, policy_log_probs, require_jacobian_memory,
                                       resolve_mdp)
from verify.frameworks._jax_compile import (MAIN_COMPILE, PROBE_COMPILE, frozen_heap, jit as _jit, numpy_tier,
                                            persistent_cache)
from verify.frameworks._padding import (Padding, batch_groups, chunk_batches, padding_changes_loss,
                                        plain_batches)
from verify.frameworks._sparse import require_dp_memory, solve, sparse_tables

from verify.frameworks.rollout import (DEFAULT_ROLLOUT_TOLERANCE, RolloutBatch, RolloutCheck, RolloutModel,
                                       RolloutSpec, check_rollout_estimates, policy_mask,
                                       return_scale, rollout_arrays)

__all__ = ["assert_loss_unbiased", "check_loss", "check_rollout_loss", "exact_gradient"]

try:    # the module's doctest needs ``jax`` in its namespace; nothing else may require it at import time
    import jax
except ImportError:  # pragma: no cover - the extra is missing
    jax = None


def _jax():
    if jax is None:
        raise UsageError("verify.frameworks.jax needs JAX: pip install 'pgverify[jax]'")
    return jax


def _x64(fn):
    """Run ``fn`` with float64 enabled for its duration only (``jax.enable_x64``): the user's process keeps its
    own setting (its later ``jax.random`` draws and dtypes do not change); and with pgverify's persistent
    compilation cache (``verify.frameworks._jax_compile.persistent_cache``), scoped the same way, and the caller's
    heap out of the garbage collector's full passes while jax traces (``frozen_heap``)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _jax().enable_x64(True), persistent_cache(), frozen_heap():
            return fn(*args, **kwargs)
    return wrapper


class _Policy:
    """The user's apply function and float64 parameters, flattened to one vector for gradients."""

    def __init__(self, apply, params, output: str):
        jax = _jax()
        import jax.numpy as jnp

        if not callable(apply):
            raise LossError(f"apply must be a function (params, obs) -> logits, got {type(apply).__name__}")
        leaves, _ = jax.tree_util.tree_flatten(params)
        if not leaves:
            raise LossError("params has no arrays to differentiate")
        try:
            params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype=jnp.float64), params)
        except Exception as exc:  # noqa: BLE001
            raise LossError(f"params could not be converted to float64 arrays: {exc}") from exc
        self.flat, self.unravel = _ravel(params)
        self.params = params
        self.apply = apply
        self.output = output

    def names(self) -> tuple[str, ...]:
        jax = _jax()
        out = []
        for path, leaf in jax.tree_util.tree_flatten_with_path(self.params)[0]:
            key = jax.tree_util.keystr(path)
            shape = np.shape(leaf)
            out += [key] if not shape else [f"{key}[{', '.join(map(str, i))}]" for i in np.ndindex(*shape)]
        return tuple(out)

    def log_probs_fn(self, obs):
        """flat params -> log pi [S, A] for the observations ``obs`` (validated by ``_exact``)."""
        def logp(flat):
            return _log_pi(self.apply(self.unravel(flat), obs), self.output)
        return logp

    def output_shape(self, obs, n_states: int, n_actions: int) -> None:
        """Trace the policy on every state's observation (no compilation) and refuse a wrong output shape."""
        jax = _jax()
        try:
            out = jax.eval_shape(self.apply, self.params, obs)
        except Exception as exc:  # noqa: BLE001 - the user's function: reported, chained
            raise LossError(f"the policy raised {type(exc).__name__} on the observations of all {n_states} states "
                            f"(an array of shape {tuple(obs.shape)}, dtype {obs.dtype}): {exc}") from exc
        if not hasattr(out, "shape"):
            raise LossError(f"the policy returned {type(out).__name__}, not an array of {self.output} [S, A]; pass "
                            "apply=lambda params, obs: ... returning the policy head")
        if tuple(out.shape) != (n_states, n_actions):
            policy_log_probs(np.zeros(out.shape), self.output, n_states, n_actions)     # raises, naming the shape


def _ravel(params):
    """(flat float64 numpy [d], unravel) as ``jax.flatten_util.ravel_pytree`` (leaves in ``tree_flatten`` order),
    without its eagerly compiled concatenation (one XLA compilation, ~0.02 CPU-s, at every first call): the flat
    vector is numpy, and ``unravel`` slices and reshapes a flat vector, traced or numpy."""
    jax = _jax()
    leaves, treedef = jax.tree_util.tree_flatten(params)
    shapes = [np.shape(leaf) for leaf in leaves]
    ends = np.cumsum([int(np.prod(shape)) for shape in shapes]).tolist()
    flat = np.concatenate([np.asarray(leaf, dtype=np.float64).ravel() for leaf in leaves])

    def unravel(v):
        return jax.tree_util.tree_unflatten(treedef, [v[a:b].reshape(shape) for a, b, shape
                                                      in zip([0, *ends[:-1]], ends, shapes)])
    return flat, unravel


def _flat_leaves(tree) -> np.ndarray:
    """A pytree of (device) arrays raveled to one numpy vector, in ``_ravel``'s order (no compilation)."""
    return np.concatenate([np.asarray(x, dtype=float).ravel() for x in _jax().tree_util.tree_leaves(tree)])


def _exact(pol: _Policy, mdp, table, jacobian: bool = False):
    """(J, grad J flat, logp, extra): the sparse DP of ``verify.frameworks._sparse`` under one ``jax.jit``, compiled
    once per policy function, MDP and shapes (later calls of the same policy on the same MDP reuse it); with
    ``jacobian``, ``extra`` is (log pi [S, A], d log pi / d flat params [S A, d]) from the same compilation."""
    import jax.numpy as jnp

    tab = sparse_tables(mdp)
    require_dp_memory(tab, "JAX")
    obs = jnp.asarray(table)
    pol.output_shape(obs, mdp.n_states, mdp.n_actions)
    arrays = {k: getattr(tab, k) for k in _TABLE_ARRAYS}
    try:
        (J, g), out, alone, extra = _dp_value_and_grad()(pol.params, obs, arrays, pol.apply, pol.output, tab,
                                                         jacobian)
    except Exception as exc:  # noqa: BLE001 - the user's function under jax.jit: reported, chained
        raise LossError(f"the policy raised {type(exc).__name__} under jax.jit on the observations of all "
                        f"{mdp.n_states} states (an array of shape {tuple(obs.shape)}, dtype {obs.dtype}): "
                        f"{exc}") from exc
    policy_log_probs(np.asarray(out), pol.output, mdp.n_states, mdp.n_actions)       # validates the values
    refuse_coupled_output(np.asarray(out), np.asarray(alone), len(obs))          # recurrent / batch-coupled
    extra = tuple(np.asarray(x) for x in extra) if jacobian else None
    return float(J), _flat_leaves(g), pol.log_probs_fn(obs), extra


def _target(pol: _Policy, mdp, table, head: Callable | None = None):
    """(grad J flat, log pi [S, A], d log pi / d flat params [S A, d]) for ``check_loss`` and
    ``check_rollout_loss``: the policy head, its coupling probe and its Jacobian under one small ``jax.jit``, and
    grad J by the chain rule through the tabular surrogate theta = log pi (softmax(log pi) = pi, so
    J(params) = J_tab(log pi(params)) and grad J = jac^T grad_theta J_tab, ``verify.numerics.exact.gradient``).
    The DP under ``jax.jit`` (``_exact``) costs several times the compilation; it remains the fallback when a
    probability is 0 (log pi = -inf: the chain rule through log pi does not hold there). ``head``: (params, obs)
    -> ``_head``'s outputs, when the caller compiles the head with more (``check_loss``'s ``_Prelude``)."""
    from verify.frameworks._common import surrogate_policy
    from verify.numerics.exact import gradient

    obs = np.asarray(table)         # numpy into the jit (jnp.asarray would compile a copy: ~0.01 CPU-s)
    pol.output_shape(obs, mdp.n_states, mdp.n_actions)
    require_jacobian_memory(mdp.n_states, mdp.n_actions, pol.flat.size, "JAX")
    try:
        out, alone, rows, jac = (head or (lambda p, o: _head()(p, o, pol.apply, pol.output)))(pol.params, obs)
    except Exception as exc:  # noqa: BLE001 - the user's function under jax.jit: reported, chained
        raise LossError(f"the policy raised {type(exc).__name__} under jax.jit on the observations of all "
                        f"{mdp.n_states} states (an array of shape {tuple(obs.shape)}, dtype {obs.dtype}): "
                        f"{exc}") from exc
    policy_log_probs(np.asarray(out), pol.output, mdp.n_states, mdp.n_actions)       # validates the values
    refuse_coupled_output(np.asarray(out), np.asarray(alone), len(obs))
    rows, jac = np.asarray(rows, dtype=float), np.asarray(jac, dtype=float)
    if not (np.isfinite(rows).all() and np.isfinite(jac).all()):
        _, grad, _, (rows, jac) = _exact(pol, mdp, table, jacobian=True)
        return grad, rows, jac
    g_tab = gradient(mdp, surrogate_policy(rows), "auto").grad
    return jac.T @ np.asarray(g_tab, dtype=float).reshape(-1), rows, jac


def _head():
    """jit of (params, obs, apply, kind) -> (apply's output [S, A], the first ``COUPLING_STATES`` states' outputs
    each alone, log pi [S, A], d log pi / d flat params [S A, d])."""
    if "head" not in _JITTED:
        _JITTED["head"] = _jit(_head_outputs, PROBE_COMPILE, static_argnums=(2, 3))     # runs once per check
    return _JITTED["head"]


def _head_outputs(params, obs, apply, kind):
    """``_head``'s function (traced)."""
    jax = _jax()
    out = apply(params, obs)
    alone = jax.vmap(lambda o: apply(params, o[None])[0])(obs[:COUPLING_STATES])

    def flat_logp(p):
        return _log_pi(apply(p, obs), kind).reshape(-1)
    rows = flat_logp(params)
    return out, alone, rows.reshape(obs.shape[0], -1), _jacobian(flat_logp, params, rows.shape[0])


def _jacobian(flat_logp, params, m: int):
    """d flat_logp / d params raveled, [m, d] (traced): forward mode when d < m (a [d, d] tangent basis: a
    network with few parameters on many states), else reverse mode (an [m, m] cotangent basis)."""
    jax = _jax()
    import jax.numpy as jnp

    d = sum(int(np.size(x)) for x in jax.tree_util.tree_leaves(params))
    jac = (jax.jacfwd if d < m else jax.jacrev)(flat_logp)(params)
    return jnp.concatenate([x.reshape(m, -1) for x in jax.tree_util.tree_leaves(jac)], axis=1)


_TABLE_ARRAYS = ("live", "state", "action", "next_state", "prob", "rbar", "initial")
_JITTED: dict = {}      # jitted helpers, built on first use (jax is imported lazily)


def _log_pi(out, kind: str):
    import jax.numpy as jnp

    if kind == "logits":
        return _jax().nn.log_softmax(out, axis=-1)
    return jnp.log(out) if kind == "probs" else out


def _dp_objective(params, obs, arrays, apply, kind: str, tab):
    """J = rho0 . V_H on the live states, (P_pi V)[s] a segment sum over the successor entries (module docstring of
    ``verify.frameworks._sparse``); V_k is recomputed in the reverse pass (``jax.checkpoint``): O(H n) memory."""
    jax = _jax()
    import jax.numpy as jnp

    pi = jnp.exp(_log_pi(apply(params, obs), kind))
    if tab.n == 0:
        return (pi * 0.0).sum()
    p = pi[arrays["live"]]
    r_pi = (p * arrays["rbar"]).sum(-1)
    w = p[arrays["state"], arrays["action"]] * arrays["prob"]
    if tab.horizon is None:
        V = _sparse_solve(tab)(w, r_pi)
    else:
        def step(_, V):
            PV = jax.ops.segment_sum(w * V[arrays["next_state"]], arrays["state"], num_segments=tab.n,
                                     indices_are_sorted=True)
            return r_pi + tab.gamma * PV
        V = jax.lax.fori_loop(0, tab.horizon, jax.checkpoint(step), jnp.zeros(tab.n, dtype=r_pi.dtype))
    return arrays["initial"] @ V


def _dp_value_and_grad():
    """jit of (params, obs, arrays, apply, kind, tab, jacobian) -> ((J, grad J), (log pi, d log pi / d flat params)
    or ())."""
    if "dp" not in _JITTED:
        jax = _jax()

        def fn(params, obs, arrays, apply, kind, tab, jacobian):
            value = jax.value_and_grad(_dp_objective)(params, obs, arrays, apply, kind, tab)
            out = apply(params, obs)
            alone = jax.vmap(lambda o: apply(params, o[None])[0])(obs[:COUPLING_STATES])
            if not jacobian:
                return value, out, alone, ()

            def flat_logp(p):
                return _log_pi(apply(p, obs), kind).reshape(-1)
            rows = flat_logp(params)
            return value, out, alone, (rows.reshape(obs.shape[0], -1), _jacobian(flat_logp, params, rows.shape[0]))
        _JITTED["dp"] = jax.jit(fn, static_argnums=(3, 4, 5, 6))
    return _JITTED["dp"]


def _sparse_solve(tab):
    """(w, b) -> (I - gamma P_pi)^{-1} b by scipy's sparse LU on the host, with its derivative by the transposed
    system (``verify.frameworks._sparse``)."""
    jax = _jax()
    import jax.numpy as jnp

    # Arguments and results cross as raw bytes: jax canonicalises a callback's float64 values to float32 in the
    # callback thread, where the check's scoped jax.enable_x64 does not hold (a 1e-7 relative error otherwise).
    def raw(x):
        return np.ascontiguousarray(x, dtype=np.float64).view(np.uint8).reshape(-1, 8)

    def cooked(x):
        return np.ascontiguousarray(x).view(np.float64).reshape(-1)

    def host(w, b, transpose=False):
        return raw(solve(tab, w, b, transpose))

    def call(fn, *args):
        shapes = tuple(jax.ShapeDtypeStruct((a.shape[0], 8), jnp.uint8) for a in args[:2])
        out = jax.pure_callback(lambda *a: fn(*(cooked(x) for x in a)), shapes,
                                *(jax.lax.bitcast_convert_type(a.astype(jnp.float64), jnp.uint8) for a in args))
        return tuple(jax.lax.bitcast_convert_type(o, jnp.float64) for o in out)

    @jax.custom_vjp
    def f(w, b):
        return call(lambda w, b: (raw(np.zeros(len(w))), host(w, b)), w, b)[1]

    def fwd(w, b):
        x = f(w, b)
        return x, (w, x)

    def bwd(res, g):
        w, x = res

        def grads(w, g, x):
            lam = solve(tab, w, g, True)
            return raw(tab.gamma * lam[tab.state] * x[tab.next_state]), raw(lam)
        return call(grads, w, g, x)
    f.defvjp(fwd, bwd)
    return f


@_x64
def exact_gradient(apply: Callable, params, problem, *, observations="one_hot",
                   output: str = "logits") -> ExactGradient:
    r"""Exact J(theta) and grad J for every parameter of a JAX policy on a tabular MDP.

    J = rho0 . V_H by dynamic programming (V = (I - gamma P_pi)^{-1} r_pi for horizon null) in jax.numpy on the
    action probabilities softmax(apply(params, obs(s))), differentiated by ``jax.grad``.

    Args:
      apply: ``(params, obs [B, *obs_shape]) -> logits [B, A]``.
      params: the parameter pytree (converted to float64).
      problem: ``TabularMDP``, ``Problem`` or MDP file path.
      observations: "one_hot" (float [S, S]), "index" (int [S]) or an array [S, *obs_shape].
      output: what ``apply`` returns: "logits", "log_probs" or "probs".

    Returns:
      ExactGradient (``J``; ``grad``: leaf path (``jax.tree_util.keystr``) -> numpy array of the leaf's shape).

    Raises:
      LossError: the policy raised, or returned the wrong shape, non-finite values or probabilities not summing to 1.
    """
    mdp = resolve_mdp(problem)
    pol = _Policy(apply, params, output)
    J, g, _, _ = _exact(pol, mdp, observation_table(mdp, observations))
    grads = pol.unravel(g)
    return ExactGradient(J, {_jax().tree_util.keystr(path): np.asarray(leaf)
                             for path, leaf in _jax().tree_util.tree_flatten_with_path(grads)[0]})


@_x64
def check_loss(apply: Callable, params, loss_fn: Callable, problem, *, observations="one_hot",
               output: str = "logits", batch_size: int = DEFAULT_BATCH_SIZE, batches: int = DEFAULT_BATCHES,
               seed: int = 0, alpha: float = DEFAULT_ALPHA, tolerance: float = DEFAULT_TOLERANCE,
               second_batch_size: int | None = None, name: str | None = None,
               pad_to: int | str | None = "auto", jit: bool = True, numpy_first: bool = True) -> BatchCheck:
    r"""Test a JAX policy-gradient loss: is E[-grad loss] the exact grad J, a positive multiple, or biased?

    As ``verify.frameworks.torch.check_loss``: batches of ``batch_size`` episodes are sampled from the policy's
    action probabilities, ``loss_fn(params, batch)`` is differentiated by ``jax.value_and_grad`` and
    E[-grad loss] is compared with ``exact_gradient`` (``verify.checks.batchcheck``).

    Args:
      apply, params, problem, observations, output: as ``exact_gradient``.
      loss_fn: ``(params, batch) -> scalar`` to be minimised; ``batch`` is a ``verify.frameworks.Batch``.
      batch_size, batches, seed, alpha, tolerance, second_batch_size, name: as the torch ``check_loss``.
      pad_to: "auto" (default): static shapes, one compilation: every batch padded to the horizon (powers of two
        when the horizon is null or above ``verify.frameworks._padding.AUTO_PAD_MAX``), unless padding changes
        the loss's value on a probe batch (a mean over padded time), when each batch is padded to its longest
        episode as without it; an int: that many steps; None: each batch's longest episode.
      jit: evaluate the loss's gradient under ``jax.jit`` (one compilation per padded length T); a loss that
        cannot be traced falls back to eager evaluation.
      numpy_first: with ``jit``, the loss's first check in this process evaluates the traced programs (the
        batches' vmapped ``value_and_grad``, the policy head, the probes) with numpy instead of compiling them
        (``verify.frameworks._jax_compile.numpy_tier``: the same jaxprs, no XLA compilation, which would cost
        more than the check itself); its later checks compile them once and reuse them. False: compile from the
        first check.

    Returns:
      ``verify.checks.batchcheck.BatchCheck``.

    Raises:
      LossError: the loss raised (e.g. converting a traced value to numpy or a float), returned a non-scalar or
        NaN/inf; the policy broke its contract (see ``exact_gradient``).
    """
    jax = _jax()
    import jax.numpy as jnp

    # a loss's first check in this process runs on numpy; later ones compile (numpy_first)
    with numpy_tier() if jit and numpy_first and _first_check(loss_fn) else contextlib.nullcontext():
        mdp = resolve_mdp(problem)
        if not callable(loss_fn):
            raise LossError(f"loss_fn must be a function (params, batch) -> scalar, got {type(loss_fn).__name__}")
        label = loss_name(loss_fn, name)
        pol = _Policy(apply, params, output)
        table = observation_table(mdp, observations)
        padding = Padding(pad_to, mdp.horizon)
        rows = mdp.n_states * mdp.n_actions
        fused = (_Prelude(loss_fn, pol, mdp, table, padding.length(0), batch_size)
                 if jit and padding.static and max(rows, pol.flat.size) <= PRELUDE_MAX_ROWS else None)
        grad, logp_now, jac = _target(pol, mdp, table, head=fused.head if fused is not None else None)
        target = framework_target(mdp, logp_now, grad, jac, pol.names())
        unravel = pol.unravel

        def value_and_grad(params, batch):
            return jax.value_and_grad(lambda f: loss_fn(unravel(f), batch))(pol.flat)

        # one compilation per loss function and padded shape, reused across checks; numpy batches go straight in
        state = {"fn": _compiled(loss_fn, flat=True) if jit else value_and_grad, "vmap": jit}
        untraceable = (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
                       jax.errors.TracerBoolConversionError, jax.errors.TracerIntegerConversionError)

        def evaluate(b: Batch, where: str) -> tuple[float, np.ndarray]:
            """(loss, -grad loss) of the numpy batch ``b``; the user's errors become ``LossError``s naming ``where``."""
            try:
                try:
                    if state["fn"] is value_and_grad:
                        loss, g = value_and_grad(pol.params, Batch(*(jnp.asarray(x) for x in b[:-1]), gamma=b.gamma))
                    else:
                        fn = fused.value_and_grad if fused is not None and fused.fits_one(b) else state["fn"]
                        loss, g = jax.device_get(fn(pol.params, b))     # one transfer for both
                except untraceable:
                    if state["fn"] is value_and_grad:
                        raise
                    state["fn"] = value_and_grad            # Python control flow on values: evaluate eagerly
                    return evaluate(b, where)
            except TypeError as exc:
                if "scalar-output" in str(exc):
                    raise LossError(f"loss {label} returned a non-scalar {where} ({exc}); reduce it (.mean() or "
                                    ".sum()) as the training loop does before jax.grad") from exc
                raise LossError(f"loss {label} raised TypeError {where}: {exc}") from exc
            except Exception as exc:  # noqa: BLE001 - the user's code: reported, chained
                raise LossError(f"loss {label} raised {type(exc).__name__} {where}: {exc}") from exc
            loss = float(loss)
            if not np.isfinite(loss):
                raise LossError(f"loss {label} returned {loss} {where}; a loss must be finite")
            g = -np.asarray(g, dtype=float)
            if not np.isfinite(g).all():
                raise LossError(f"the gradient of loss {label} is not finite {where}")
            return loss, g

        def evaluate_chunk(b: Batch, C: int, n: int) -> tuple[np.ndarray, np.ndarray] | None:
            """(loss [C], -grad loss [C, d]) of C stacked batches (arrays [C, B, T, ...]) in one call of the vmapped
            compiled loss (``_compiled_many``); None when it cannot be used (eager fallback, a loss that vmap cannot
            batch, a non-finite batch), and the caller evaluates batch by batch, which names the error."""
            if state["fn"] is value_and_grad or not state["vmap"]:
                return None
            try:
                loss, g = jax.device_get(_compiled_many(loss_fn, n)(pol.params, b))
            except Exception:  # noqa: BLE001 - evaluate() reports the user's error on the batch itself (or goes eager)
                state["vmap"] = False           # not retried for every chunk: batch by batch from here on
                return None
            loss, g = np.asarray(loss, dtype=float), -np.asarray(g, dtype=float)
            if loss.shape != (C,) or g.shape != (C, pol.flat.size) or not (np.isfinite(loss).all()
                                                                             and np.isfinite(g).all()):
                return None
            return loss, g

        def batch_bytes(B: int, T: int) -> int:
            return B * (T + 1) * (2 * table[:1].nbytes + 48)      # obs and next_obs, six [B, T] fields

        def single(b: Batch, where: str) -> tuple[float, np.ndarray]:
            """``evaluate`` of one batch of ``batch_size`` episodes through the vmapped compiled loss (the batch
            repeated to the main run's chunk of C: the check's one compiled shape at this padded length)."""
            T = b.actions.shape[1]
            if T == padding.length(int(np.max(b.lengths, initial=0))):
                C = chunk_batches(batches, batch_bytes(batch_size, T))
                out = evaluate_chunk(Batch(*(np.broadcast_to(x, (C, *np.shape(x))) for x in b[:-1]), gamma=b.gamma),
                                     C, batches)
                if out is not None:
                    return float(out[0][0]), out[1][0]
            return evaluate(b, where)

        def many(eps, B: int, K: int) -> np.ndarray:
            """The K estimates of the batches of B consecutive episodes of ``eps`` (``check_batches``): grouped by
            padded length, C batches per call of the vmapped compiled loss (one compilation per length, not one call
            per batch); the same numbers as ``estimate`` on each batch, which is the fallback."""
            plain = plain_batches(eps, B)
            Y = np.empty((K, pol.flat.size))
            for T, ks in batch_groups(padding, plain, B).items():
                C = chunk_batches(len(ks), batch_bytes(B, T))
                for start in range(0, len(ks), C):
                    idx = ks[start:start + C]
                    full = np.concatenate([idx, np.repeat(idx[-1:], C - len(idx))])     # the last chunk filled up
                    b = batch_arrays(plain.select((full[:, None] * B + np.arange(B)).ravel()), table, T)
                    out = evaluate_chunk(Batch(*(x.reshape(C, B, *x.shape[1:]) for x in b[:-1]), gamma=b.gamma), C,
                                         len(ks))
                    if out is not None:
                        Y[idx] = out[1][:len(idx)]
                        continue
                    for j, k in enumerate(idx):
                        one = Batch(*(x.reshape(C, B, *x.shape[1:])[j] for x in b[:-1]), gamma=b.gamma)
                        Y[k] = evaluate(one, f"on a batch of {B} episodes padded to {T} steps")[1]
            return Y

        def loss_value(b: Batch, where: str) -> float:
            """The loss alone on ``b``: at the static padded length from the vmapped compiled ``value_and_grad`` (the
            check's own compilation: the batch repeated to a chunk), at other lengths from a compiled forward pass
            (cheaper to compile)."""
            T = b.actions.shape[1]
            if T == padding.length(int(np.max(b.lengths, initial=0))) or state["fn"] is value_and_grad:
                return single(b, where)[0] if jit and len(b.lengths) == batch_size else evaluate(b, where)[0]
            try:
                if fused is not None and fused.fits_probe(b):
                    return float(fused.value(pol.params, b))
                return float(_compiled_value(loss_fn)(pol.params, b))
            except Exception:  # noqa: BLE001 - untraceable or failing: evaluate() reports it (or falls back)
                return evaluate(b, where)[0]

        def estimate(episodes) -> np.ndarray:
            b = padding.arrays(episodes, table)
            where = f"on a batch of {episodes.n} episodes padded to {b.actions.shape[1]} steps"
            return single(b, where)[1] if jit and episodes.n == batch_size else evaluate(b, where)[1]

        if jit:
            estimate.many = many
            if batch_size <= PROBE_AT_BATCH_SIZE:       # the convention probe's batch: the chunk's compiled shape
                estimate.probe_episodes = batch_size

        from verify.frameworks._precision import jax_precision, probe_batch

        _check_settings(batch_size, batches, seed, alpha, tolerance, second_batch_size)
        probe_episodes = probe_batch(target, batch_size, seed)
        if pad_to == "auto" and padding_changes_loss(
                lambda b: loss_value(b, f"on a probe batch of {batch_size} episodes padded to "
                                        f"{b.actions.shape[1]} steps"),
                probe_batch(target, batch_size, seed, size=batch_size), table, padding, seed,
                at=None if fused is None or not fused.ok else (fused.T, fused.T + 1)):
            padding = Padding(None, mdp.horizon)    # a mean over padded time: it must see the padding a loop gives it
        probe = padding.arrays(probe_episodes, table)
        precision = jax_precision(lambda f: loss_fn(unravel(f), Batch(*(jnp.asarray(x) for x in probe[:-1]),
                                                                      gamma=probe.gamma)), (pol.flat,), target)
        call = (f"check_loss(apply, params, {callable_argument(label)}, {problem_argument(problem)}, "
                f"batch_size={batch_size}, "
                f"batches={batches}, "
                f"seed={seed}, alpha={alpha!r}" + ("" if second_batch_size is None else
                                                  f", second_batch_size={second_batch_size}")
                + ("" if pad_to == "auto" else f", pad_to={pad_to!r}") + ")")
        return check_batches(estimate, target, name=label, batch_size=batch_size, batches=batches, seed=seed,
                             alpha=alpha, tolerance=tolerance, second_batch_size=second_batch_size, reproduce=call,
                             extra={"loss": True, "padding": padding.describe()}, precision=precision)


def assert_loss_unbiased(apply: Callable, params, loss_fn: Callable, problem, *, allow_proportional: bool = False,
                         **settings) -> BatchCheck:
    """``check_loss`` that raises ``AssertionError`` (with the report) unless the verdict is "unbiased" (or
    "proportional" with ``allow_proportional``)."""
    check = check_loss(apply, params, loss_fn, problem, **settings)
    if not (check.passed or (allow_proportional and check.verdict == "proportional")):
        raise AssertionError(check.format())
    return check

# --- rollouts (JAX: check a loss on rollouts as a vectorised training loop collects them (``check_rollout_loss``).) ----------

COUPLING_STATES = 16        # states probed one by one
# check_loss's per-batch functions (the probes' single episodes and other batch sizes, the padding probe's forward
# pass) run a handful of times: compiled with PROBE_COMPILE (no backend optimisation); the K batches of the run
# itself with MAIN_COMPILE (verify.frameworks._jax_compile: the same run time, less than half the compilation)
PROBE_AT_BATCH_SIZE = 32    # up to this batch size the convention probe uses it (one compiled shape fewer; its
                            # single episodes are evaluated one by one, so a larger batch would cost more than that)
QUICK_BATCHES = 64          # batches of one padded length below which they too are compiled with PROBE_COMPILE
_COMPILED = weakref.WeakKeyDictionary()     # loss_fn -> {flat: jax.jit(value_and_grad)}, reused across checks


def _first_check(loss_fn) -> bool:
    """Whether this is ``check_loss``'s first check of ``loss_fn`` in this process (a loss that cannot be weakly
    referenced has no compiled functions kept across checks: every check is a first)."""
    try:
        fns = _COMPILED.setdefault(loss_fn, {})
    except TypeError:
        return True
    first = "checked" not in fns
    fns["checked"] = True
    return first


def _compiled(loss_fn, flat: bool = False):
    """``jax.jit(jax.value_and_grad(loss_fn))``, one per loss function: rollouts have static shapes, so a check (and
    every later check of the same loss) compiles once per batch shape instead of once per call site. ``flat``: the
    gradient raveled to one vector inside the compiled function (``check_loss``'s per-batch evaluation: the
    probes, compiled quickly with ``PROBE_COMPILE``).

    As with ``jax.jit`` itself, the loss must be pure: a loss that reads global state mutated between two checks
    keeps the first trace (pass a new function, e.g. a ``functools.partial``, or ``jit=False``)."""
    import jax

    def build():
        if not flat:
            return _jit(jax.value_and_grad(loss_fn), MAIN_COMPILE)
        return _jit(_flat_value_and_grad(loss_fn), PROBE_COMPILE)

    try:
        fns = _COMPILED.get(loss_fn)
    except TypeError:           # not weak-referenceable: compile for this check only
        return build()
    if fns is None:
        fns = _COMPILED[loss_fn] = {}
    if flat not in fns:
        fns[flat] = build()
    return fns[flat]


def _compiled_many(loss_fn, n_batches: int):
    """``jax.jit(jax.vmap(value_and_grad(loss_fn)))`` over a leading axis of batches (every ``Batch`` field but
    ``gamma``), the gradient raveled, one per loss function as ``_compiled``: a check's K batches of one padded
    length are one compilation and K / C calls. Fewer than ``QUICK_BATCHES`` batches (a padded length few batches
    have, without static padding) are compiled quickly (``PROBE_COMPILE``)."""
    try:
        fns = _COMPILED.setdefault(loss_fn, {})
    except TypeError:
        fns = {}
    key = "many" if n_batches >= QUICK_BATCHES else "many-quick"
    if key not in fns:
        fns[key] = _jit(_batched_value_and_grad(loss_fn), MAIN_COMPILE if key == "many" else PROBE_COMPILE)
    return fns[key]


def _flat_value_and_grad(loss_fn):
    """(params, batch) -> (loss, d loss / d params raveled to one vector)."""
    import jax
    from jax.flatten_util import ravel_pytree

    vg = jax.value_and_grad(loss_fn)

    def flat_vg(params, batch):
        loss, g = vg(params, batch)
        return loss, ravel_pytree(g)[0]
    return flat_vg


def _batched_value_and_grad(loss_fn):
    """``_flat_value_and_grad`` under ``jax.vmap`` over a leading axis of batches (every ``Batch`` field but
    ``gamma``): (params, C stacked batches) -> (loss [C], flat grad [C, d]); what ``_compiled_many`` compiles."""
    import jax

    axes = Batch(*([0] * (len(Batch._fields) - 1)), gamma=None)
    return jax.vmap(_flat_value_and_grad(loss_fn), in_axes=(None, axes))


def _compiled_value(loss_fn):
    """``jax.jit(loss_fn)`` (the loss's value only), one per loss function, as ``_compiled``, with the probes'
    quick compilation (``PROBE_COMPILE``)."""
    try:
        fns = _COMPILED.setdefault(loss_fn, {})
    except TypeError:
        return _jit(loss_fn, PROBE_COMPILE)
    if "value" not in fns:
        fns["value"] = _jit(loss_fn, PROBE_COMPILE)
    return fns["value"]


def _compiled_prelude(loss_fn):
    """jit of (params, obs, one, probe, apply, kind) -> (``_head``'s outputs, (loss, flat grad) of the batch ``one``,
    the loss of the batch ``probe``), one per loss function as ``_compiled``, compiled quickly (``PROBE_COMPILE``):
    ``_Prelude``."""
    def build():
        flat_vg = _flat_value_and_grad(loss_fn)

        def fn(params, obs, one, probe, apply, kind):
            return _head_outputs(params, obs, apply, kind), flat_vg(params, one), loss_fn(params, probe)
        return _jit(fn, PROBE_COMPILE, static_argnums=(4, 5))
    try:
        fns = _COMPILED.setdefault(loss_fn, {})
    except TypeError:
        return build()
    if "prelude" not in fns:
        fns["prelude"] = build()
    return fns["prelude"]


class _Prelude:
    """``check_loss``'s small functions as ONE compiled program when every batch has one padded length T: the policy
    head with its Jacobian (``_head``), the loss's ``value_and_grad`` on one episode at T steps (the convention
    probe's single episodes) and the loss's value on ``batch_size`` episodes at T + 1 steps (the padding probe's
    second length; its first, T, is the batches' own compiled shape). Three compilations cost 0.27-0.33 CPU-s with
    their tracing and lowering, the one 0.20-0.22 (FrozenLake-v1, ``benchmarks/bench_frameworks.py --jax``). A call
    computes all three: what a call does not need gets a placeholder batch (one one-step episode from state 0,
    repeated), whose outputs are dropped; so only small problems use it (``PRELUDE_MAX_ROWS``: the head's Jacobian
    is recomputed by every call). When the first call fails (the loss cannot be traced, returns a non-scalar, ...)
    it is not used again and the separate functions report the error as without it."""

    def __init__(self, loss_fn, pol: _Policy, mdp, table: np.ndarray, T: int, batch_size: int):
        from types import SimpleNamespace

        self.fn, self.pol, self.table = _compiled_prelude(loss_fn), pol, table
        self.T, self.batch_size, self.ok = T, batch_size, True

        def placeholder(n: int, steps: int) -> Batch:
            eps = SimpleNamespace(s_t=np.zeros((n, 2), dtype=np.int64), a_t=np.zeros((n, 1), dtype=np.int64),
                                  r_t=np.zeros((n, 1)), lengths=np.ones(n, dtype=np.int64), mdp=mdp)
            return batch_arrays(eps, table, steps)
        self.one, self.probe = placeholder(1, T), placeholder(batch_size, T + 1)

    def _call(self, one: Batch, probe: Batch):
        return self.fn(self.pol.params, self.table, one, probe, self.pol.apply, self.pol.output)

    def head(self, params, obs):
        """``_head``'s outputs (``_target``), from the first call; the separate ``_head`` when it fails."""
        try:
            return self._call(self.one, self.probe)[0]
        except Exception:  # noqa: BLE001 - the user's code: the separate functions report it (or fall back)
            self.ok = False
            return _head()(params, obs, self.pol.apply, self.pol.output)

    def fits_one(self, b: Batch) -> bool:
        return self.ok and b.actions.shape == (1, self.T)

    def fits_probe(self, b: Batch) -> bool:
        return self.ok and b.actions.shape == (self.batch_size, self.T + 1)

    def value_and_grad(self, _params, b: Batch):
        """(loss, flat grad) of the one-episode batch ``b`` (``fits_one``)."""
        return self._call(b, self.probe)[1]

    def value(self, _params, b: Batch):
        """The loss of the batch ``b`` of ``batch_size`` episodes at T + 1 steps (``fits_probe``)."""
        return self._call(self.one, b)[2]


PRELUDE_MAX_ROWS = 1024     # S A up to this: the prelude's head (a Jacobian [S A, d], d <= PRELUDE_MAX_ROWS too)
                            # costs well under a millisecond per call


def refuse_batch_coupled(apply: Callable, params, obs, out) -> None:
    """Raise ``LossError`` when the policy's output for a state depends on the other rows of the call.

    ``out`` is ``apply(params, obs)`` on every state's observation; each of the first ``COUPLING_STATES`` states
    is evaluated alone. A recurrent network scanned over the leading axis (a GRU over "time") or batch
    statistics give other numbers: its pi(a|s) is not a function of s, and an exact verdict would be for a
    different policy.
    """
    out = np.asarray(out, dtype=float)
    n = min(len(obs), COUPLING_STATES)
    alone = [np.asarray(apply(params, obs[s:s + 1]), dtype=float) for s in range(n)]
    if any(a.shape != out[s:s + 1].shape for s, a in enumerate(alone)):
        return          # the shape check elsewhere names this
    refuse_coupled_output(out, np.concatenate(alone) if alone else out[:0], len(obs))


def refuse_coupled_output(out: np.ndarray, alone: np.ndarray, n_obs: int) -> None:
    """``refuse_batch_coupled`` given the outputs: ``out`` [S, A] of one call on every state, ``alone`` [k, A] of
    the first k states each called alone."""
    for s in range(len(alone)):
        if not np.allclose(alone[s], out[s], rtol=1e-9, atol=1e-12):
            raise LossError(f"the policy's output for state {s} depends on the other observations of the call "
                            f"({out[s].tolist()} in a batch of {n_obs}, {alone[s].tolist()} alone): a recurrent "
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

    jax = _jax()
    mdp = resolve_mdp(problem)
    spec = RolloutSpec(n_envs, n_steps, time_major, start, time_limit, weighting)
    spec.check_mdp(mdp)
    if not callable(loss_fn):
        raise LossError(f"loss_fn must be a function (params, batch) -> scalar, got {type(loss_fn).__name__}")
    label = loss_name(loss_fn, name)
    with jax.enable_x64(True), persistent_cache(), frozen_heap():
        import jax.numpy as jnp

        pol = _Policy(apply, params, output)
        table = observation_table(mdp, observations)
        grad_J, logp_now, jac = _target(pol, mdp, table)      # one small compilation per policy function
        names = pol.names()
        model = RolloutModel(mdp, logp_now, spec)
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
