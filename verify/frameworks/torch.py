r"""PyTorch adapter: exact grad J for a ``torch.nn.Module`` policy, and ``check_loss`` for a training loop's loss.

The policy is a module mapping observations [B, *obs_shape] to logits [B, A] (or, with ``output=``,
probabilities or log-probabilities; a ``torch.distributions.Categorical`` is also accepted). With ``logits=``
a function ``(module, obs) -> logits`` picks the policy head of a module that returns more (e.g. a shared
trunk with a value head). The loss is ``loss_fn(module, batch) -> scalar tensor``, exactly as in the training
loop, with ``batch`` a ``verify.frameworks.Batch`` of float64/int64 tensors (``verify.frameworks._common``).

A loss is minimised: the check tests E[-grad loss] against grad J. pgverify works on a float64 deep copy of the
module (``copy.deepcopy(policy).double()``), so your module is never modified and round-off is float64's.

>>> import torch
>>> from verify.model.builtin import builtin_examples
>>> chain = builtin_examples()["chain"].mdp
>>> policy = torch.nn.Linear(chain.n_states, chain.n_actions, bias=False)
>>> def reinforce(policy, batch):
...     logp = torch.distributions.Categorical(logits=policy(batch.obs)).log_prob(batch.actions)
...     disc = batch.gamma ** torch.arange(batch.rewards.shape[1], dtype=torch.float64)
...     G = (disc * batch.rewards).flip(1).cumsum(1).flip(1)       # sum_{t' >= t} gamma^t' r_t'
...     return -(logp * G * batch.mask).sum(1).mean()
>>> check_loss(policy, reinforce, chain, batch_size=4).verdict
'unbiased'
"""
from __future__ import annotations

import copy
import functools
from typing import Callable

import numpy as np

from verify.checks.batchcheck import (DEFAULT_ALPHA, DEFAULT_BATCH_SIZE, DEFAULT_BATCHES, DEFAULT_TOLERANCE, BatchCheck,
                               _check_settings, check_batches)
from verify.checks.contract import callable_argument, problem_argument
from verify.errors import UsageError
from verify.frameworks._common import (Batch, ExactGradient, LossError, batch_arrays, framework_target, loss_name,
                                       JAC_BLOCK_BYTES, observation_table, policy_log_probs,
                                       require_jacobian_memory, resolve_mdp)
from verify.frameworks._padding import CHUNK_MAX, Padding, batch_groups, plain_batches
from verify.frameworks._sparse import require_dp_memory, solve, sparse_tables

from verify.frameworks.rollout import (DEFAULT_ROLLOUT_TOLERANCE, RolloutBatch, RolloutCheck, RolloutModel,
                                       RolloutSpec, check_rollout_estimates, policy_mask,
                                       return_scale, rollout_arrays)

__all__ = ["assert_loss_unbiased", "check_loss", "check_rollout_loss", "exact_gradient"]


def _torch():
    try:
        import torch
    except ImportError:
        raise UsageError("verify.frameworks.torch needs PyTorch: pip install 'pgverify[torch]'") from None
    return torch


def _one_thread(fn):
    """Run ``fn`` with one intra-op thread, restoring the caller's setting: the check evaluates many tiny tensors,
    where torch's thread pool costs ~10x (6 ms vs 0.6 ms per loss and backward on a busy 2-core machine)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        torch = _torch()
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)
    return wrapper


class _Policy:
    """A float64 copy of the user's module, its trainable parameters, and how to get log pi for observations."""

    def __init__(self, policy, logits, output: str):
        torch = _torch()
        if not isinstance(policy, torch.nn.Module):
            raise LossError(f"policy must be a torch.nn.Module, got {type(policy).__name__}")
        if logits is not None and not callable(logits):
            raise LossError(f"logits must be a function (module, obs) -> logits, got {type(logits).__name__}")

        refuse_random_or_recurrent(policy)     # dropout in training mode, batch norm, RNNs: never pinned silently
        self.model = copy.deepcopy(policy).double()
        self.named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        if not self.named:
            raise LossError(f"the policy {type(policy).__name__} has no parameters that require grad")
        self.params = [p for _, p in self.named]
        self.head = logits or (lambda module, obs: module(obs))
        self.output = output

    def names(self) -> tuple[str, ...]:
        out = []
        for n, p in self.named:
            out += [n] if p.dim() == 0 else [f"{n}[{', '.join(map(str, i))}]" for i in np.ndindex(*p.shape)]
        return tuple(out)

    def log_probs(self, obs, n_states: int, n_actions: int):
        """log pi [S, A] as a tensor connected to the parameters (validated), for the observations of all states."""
        torch = _torch()
        try:
            out = self.head(self.model, obs)
        except Exception as exc:  # noqa: BLE001 - the user's module: reported, chained
            raise LossError(f"the policy raised {type(exc).__name__} on the observations of all {n_states} states "
                            f"(a tensor of shape {tuple(obs.shape)}, dtype {obs.dtype}): {exc}") from exc
        kind = self.output
        if isinstance(out, torch.distributions.Categorical):
            out, kind = out.logits, "log_probs"
        if not isinstance(out, torch.Tensor):
            raise LossError(f"the policy returned {type(out).__name__}, not a tensor of {kind} [S, A]; pass "
                            "logits=lambda module, obs: ... to pick the policy head")
        policy_log_probs(out.detach().cpu().numpy(), kind, n_states, n_actions)     # validates
        if kind == "logits":
            return torch.log_softmax(out, dim=-1)
        return torch.log(out) if kind == "probs" else out


def _flat(grads, params) -> np.ndarray:
    torch = _torch()
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params)]
                     ).detach().cpu().numpy()


def _obs_tensor(table: np.ndarray):
    torch = _torch()
    return torch.as_tensor(table, dtype=torch.int64 if table.dtype.kind in "iub" else torch.float64)


def _exact(pol: _Policy, mdp, table):
    torch = _torch()
    tab = sparse_tables(mdp)
    require_dp_memory(tab, "PyTorch")
    with torch.enable_grad():
        logp = pol.log_probs(_obs_tensor(table), mdp.n_states, mdp.n_actions)
        J = _dp_objective(torch.exp(logp), tab)
        grads = torch.autograd.grad(J, pol.params, allow_unused=True, retain_graph=True) if J.requires_grad else \
            [None] * len(pol.params)
    return J, logp, grads


def _dp_objective(pi, tab):
    """J = rho0 . V_H from action probabilities pi [S, A] on the sparse live tables (``verify.frameworks._sparse``):
    (P_pi V)[s] = sum_e w_e V[s'_e] by a CSR product (``SegmentMatVec``: the reverse pass keeps V_k, O(H n))."""
    torch = _torch()
    if tab.n == 0:
        return (pi * 0.0).sum()
    t = lambda x: torch.as_tensor(x)  # noqa: E731
    live, state, action = t(tab.live), t(tab.state), t(tab.action)
    p = pi[live]
    r_pi = (p * t(tab.rbar)).sum(-1)
    w = p[state, action] * t(tab.prob)
    if tab.horizon is None:
        V = _sparse_solve_fn().apply(w, r_pi, tab)
    else:
        V = torch.zeros(tab.n, dtype=pi.dtype)
        matvec = _segment_matvec_fn()
        ops = _csr_pair(tab, w.detach(), torch)
        for _ in range(tab.horizon):
            V = r_pi + tab.gamma * matvec.apply(w, V, ops)
    return (t(tab.initial) * V).sum()


def _csr_pair(tab, w, torch):
    """(P_pi, P_pi^T as torch CSR matrices [n, n], s_e, s'_e): P_pi[s, s'] sums w_e over the entries (s, ., s'),
    coalesced and sorted as CSR requires. One sparse product per DP step and no [nnz] temporaries (whose per-step
    allocation fragments the heap: 2.5 GB instead of 0.9 GB at 10^5 states, H = 200)."""
    import warnings

    n = tab.n
    key = tab.state * n + tab.next_state
    pairs, slot = np.unique(key, return_inverse=True)           # sorted by (s, s')
    rows, cols = np.divmod(pairs, n)
    values = torch.zeros(pairs.size, dtype=w.dtype).index_add_(0, torch.as_tensor(slot.ravel()), w)
    order = np.lexsort((rows, cols))                             # (s', s): the transpose's CSR order

    def csr(r, c, v):
        crow = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=n))])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)       # "sparse CSR support is in beta"
            return torch.sparse_csr_tensor(torch.as_tensor(crow), torch.as_tensor(c), v, (n, n),
                                           check_invariants=False)
    return (csr(rows, cols, values), csr(cols[order], rows[order], values[torch.as_tensor(order)]),
            torch.as_tensor(tab.state), torch.as_tensor(tab.next_state))


_FUNCTIONS: dict = {}


def _segment_matvec_fn():
    """The autograd Function y[s] = sum_{e: s_e = s} w_e x[s'_e] (built once; torch is imported lazily)."""  # noqa
    if "matvec" not in _FUNCTIONS:
        torch = _torch()

        class SegmentMatVec(torch.autograd.Function):
            """y = P_pi x with P_pi[s, s'] = sum of w_e over the entries (s, ., s'); ``ops`` from ``_csr_pair``:
            dy/dx^T g = P_pi^T g, (dy/dw_e)^T g = g[s_e] x[s'_e]."""

            @staticmethod
            def forward(ctx, w, x, ops):
                ctx.save_for_backward(x)
                ctx.ops = ops
                return ops[0] @ x

            @staticmethod
            def backward(ctx, g):
                x, = ctx.saved_tensors
                _, P_t, state, nxt = ctx.ops
                gw = g[state] * x[nxt] if ctx.needs_input_grad[0] else None
                gx = P_t @ g if ctx.needs_input_grad[1] else None
                return gw, gx, None
        _FUNCTIONS["matvec"] = SegmentMatVec
    return _FUNCTIONS["matvec"]


def _sparse_solve_fn():
    """The autograd Function V = (I - gamma P_pi)^{-1} b by scipy's sparse LU, its derivative by the transposed
    system (``verify.frameworks._sparse``)."""
    if "solve" not in _FUNCTIONS:
        torch = _torch()

        class SparseSolve(torch.autograd.Function):
            @staticmethod
            def forward(ctx, w, b, tab):
                w_np = w.detach().cpu().numpy()
                x = torch.as_tensor(solve(tab, w_np, b.detach().cpu().numpy()), dtype=b.dtype)
                ctx.save_for_backward(w, x)
                ctx.tab = tab
                return x

            @staticmethod
            def backward(ctx, g):
                w, x = ctx.saved_tensors
                tab = ctx.tab
                lam = solve(tab, w.detach().cpu().numpy(), g.detach().cpu().numpy(), transpose=True)
                gw = tab.gamma * lam[tab.state] * x.detach().cpu().numpy()[tab.next_state]
                return torch.as_tensor(gw, dtype=w.dtype), torch.as_tensor(lam, dtype=g.dtype), None
        _FUNCTIONS["solve"] = SparseSolve
    return _FUNCTIONS["solve"]


@_one_thread
def exact_gradient(policy, problem, *, logits: Callable | None = None, observations="one_hot",
                   output: str = "logits") -> ExactGradient:
    r"""Exact J(theta) and grad J for every parameter of a PyTorch policy on a tabular MDP.

    J(theta) = rho0 . V_H by dynamic programming (or V = (I - gamma P_pi)^{-1} r_pi for horizon null), written in
    torch on the policy's action probabilities pi(.|s) = policy(obs(s)), and differentiated by autograd: the
    policy-gradient theorem's value without sampling.

    Args:
      policy: ``torch.nn.Module`` (obs [B, *obs_shape] -> logits [B, A]); evaluated as a float64 copy.
      problem: ``TabularMDP``, ``Problem`` or MDP file path.
      logits: ``(module, obs) -> logits`` when the module's output is not the logits itself.
      observations: "one_hot" (float [S, S]), "index" (int [S]) or an array [S, *obs_shape].
      output: what the policy returns: "logits", "log_probs" or "probs".

    Returns:
      ExactGradient (``J``, ``grad``: parameter name -> numpy array of the parameter's shape).

    Raises:
      LossError: the policy raised, or returned the wrong shape, non-finite values or probabilities not summing to 1.
    """
    mdp = resolve_mdp(problem)
    pol = _Policy(policy, logits, output)
    J, _, grads = _exact(pol, mdp, observation_table(mdp, observations))
    return ExactGradient(float(J.detach()), {n: (np.zeros(tuple(p.shape)) if g is None else g.detach().cpu().numpy())
                                    for (n, p), g in zip(pol.named, grads)})


def _jacobian(logp, params) -> np.ndarray:
    """d log pi(a|s) / d params, [S A, d]."""
    torch = _torch()
    flat = logp.reshape(-1)
    m = flat.numel()
    d = sum(p.numel() for p in params)
    require_jacobian_memory(m, 1, d, "PyTorch")      # m = S A rows
    if m <= ROW_LOOP_MAX:
        return _jacobian_rows(flat, params)
    if d < m:
        cols = _jacobian_columns(flat, params, d)
        if cols is not None:
            return cols
    block = int(max(1, min(m, JAC_BLOCK_BYTES // (8 * (m + d)))))     # rows of the identity per backward pass
    try:
        out = np.empty((m, d))
        for start in range(0, m, block):
            n = min(block, m - start)
            eye = torch.zeros((n, m), dtype=flat.dtype)
            eye[torch.arange(n), torch.arange(start, start + n)] = 1.0
            rows = torch.autograd.grad(flat, params, grad_outputs=eye, allow_unused=True, retain_graph=True,
                                       is_grads_batched=True)
            out[start:start + n] = torch.cat([(torch.zeros((n, p.numel()), dtype=flat.dtype) if g is None else
                                               g.reshape(n, -1)) for g, p in zip(rows, params)],
                                             dim=1).detach().cpu().numpy()
        return out
    except RuntimeError:      # an operation without a batching rule: one backward pass per (s, a)
        return _jacobian_rows(flat, params)


# Up to this many rows (S A), one scalar backward pass per row: ~30 us each, while the first batched pass with
# grad_outputs imports torch.fx's symbolic shapes (~0.4 CPU-s, once per process: half of a first check_loss)
ROW_LOOP_MAX = 256


def _jacobian_rows(flat, params) -> np.ndarray:
    """d flat / d params [m, d], one backward pass per row."""
    torch = _torch()
    with torch.enable_grad():
        return np.stack([_flat(torch.autograd.grad(flat[i], params, allow_unused=True, retain_graph=True), params)
                         for i in range(flat.numel())])


def _jacobian_columns(flat, params, d: int) -> np.ndarray | None:
    """d flat / d params [m, d] by columns, for few parameters on many states: u -> J^T u is one backward pass
    that is linear in u, and its derivative in u gives the columns of J, d of them in one batched backward pass
    (the double-backward form of forward mode). None when an operation has no double backward or batching rule
    (the caller then goes row by row)."""
    torch = _torch()
    try:
        with torch.enable_grad():
            u = torch.zeros(flat.numel(), dtype=flat.dtype, requires_grad=True)
            vjp = torch.autograd.grad(flat, params, grad_outputs=u, create_graph=True, retain_graph=True,
                                      allow_unused=True)
            used = [i for i, g in enumerate(vjp) if g is not None and g.requires_grad]
            out = np.zeros((flat.numel(), d))
            if not used:
                return out
            g = torch.cat([vjp[i].reshape(-1) for i in used])
            cols = torch.autograd.grad(g, u, grad_outputs=torch.eye(g.numel(), dtype=flat.dtype),
                                       is_grads_batched=True, retain_graph=True)[0]
    except RuntimeError:
        return None
    offsets = np.cumsum([0] + [p.numel() for p in params])
    at = 0
    for i in used:
        n = params[i].numel()
        out[:, offsets[i]:offsets[i] + n] = cols[at:at + n].T.detach().cpu().numpy()
        at += n
    return out


@_one_thread
def check_loss(policy, loss_fn: Callable, problem, *, logits: Callable | None = None, observations="one_hot",
               output: str = "logits", batch_size: int = DEFAULT_BATCH_SIZE, batches: int = DEFAULT_BATCHES,
               seed: int = 0, alpha: float = DEFAULT_ALPHA, tolerance: float = DEFAULT_TOLERANCE,
               second_batch_size: int | None = None, name: str | None = None,
               pad_to: int | None = None) -> BatchCheck:
    r"""Test a PyTorch policy-gradient loss: is E[-grad loss] the exact grad J, a positive multiple, or biased?

    pgverify samples batches of ``batch_size`` episodes from the policy's own action probabilities, calls
    ``loss_fn(module, batch)`` as the training loop does, differentiates it with autograd and compares
    E[-grad loss] with the exact grad J (``exact_gradient``) for every parameter: exactly when the loss is
    per-episode (or the batches can be enumerated) and the MDP is small, else by a Monte Carlo test over
    ``batches`` i.i.d. batches (``verify.checks.batchcheck``).

    Args:
      policy, problem, logits, observations, output: as ``exact_gradient``.
      loss_fn: ``(module, batch) -> scalar tensor`` to be minimised; ``batch`` is a ``verify.frameworks.Batch``.
      batch_size: episodes per batch B. batches: Monte Carlo batches. seed: all sampling. alpha: test level.
      tolerance: the relative bias a Monte Carlo run must be able to detect to say "unbiased".
      second_batch_size: a second B for batch-level losses (default 4 B).
      name: how the report names the loss.
      pad_to: pad every batch to this many steps (e.g. the horizon) instead of its longest episode.

    Returns:
      ``verify.checks.batchcheck.BatchCheck``: ``verdict`` "unbiased", "proportional" (``c``), "biased" (angle,
      relative bias, ``matches``) or "undecided"; ``format()``, ``to_json()``.

    Raises:
      LossError: the loss raised or returned a non-scalar, NaN/inf, or a tensor without grad; the policy broke its
        contract (see ``exact_gradient``).
    """
    torch = _torch()
    mdp = resolve_mdp(problem)
    if not callable(loss_fn):
        raise LossError(f"loss_fn must be a function (module, batch) -> scalar tensor, got {type(loss_fn).__name__}")
    label = loss_name(loss_fn, name)
    pol = _Policy(policy, logits, output)
    table = observation_table(mdp, observations)
    J, logp, grads = _exact(pol, mdp, table)
    with torch.enable_grad():
        jac = _jacobian(logp, pol.params)
    target = framework_target(mdp, logp.detach().cpu().numpy(), _flat(grads, pol.params), jac, pol.names())
    obs_dtype = torch.int64 if table.dtype.kind in "iub" else torch.float64

    def tensors(b: Batch) -> Batch:
        return Batch(obs=torch.as_tensor(b.obs, dtype=obs_dtype), actions=torch.as_tensor(b.actions),
                     rewards=torch.as_tensor(b.rewards), terminated=torch.as_tensor(b.terminated),
                     truncated=torch.as_tensor(b.truncated), mask=torch.as_tensor(b.mask),
                     lengths=torch.as_tensor(b.lengths), next_obs=torch.as_tensor(b.next_obs, dtype=obs_dtype),
                     gamma=b.gamma)

    def estimate(episodes) -> np.ndarray:
        b = batch_arrays(episodes, table, pad_to)
        return evaluate(tensors(b), f"on a batch of {episodes.n} episodes padded to {b.actions.shape[1]} steps")

    def many(eps, B: int, K: int) -> np.ndarray:
        """The K estimates of the batches of B consecutive episodes of ``eps`` (``check_batches``), the same as
        ``estimate`` batch by batch; the batch arrays and tensors are built for up to ``CHUNK_MAX`` batches of one
        padded length at once, and each batch's tensors are views of them."""
        plain = plain_batches(eps, B)
        Y = np.empty((K, len(target.names)))
        for T, ks in batch_groups(Padding(pad_to, mdp.horizon), plain, B).items():
            for start in range(0, len(ks), CHUNK_MAX):
                idx = ks[start:start + CHUNK_MAX]
                b = tensors(batch_arrays(plain.select((idx[:, None] * B + np.arange(B)).ravel()), table, T))
                for j, k in enumerate(idx):
                    one = Batch(*(x[j * B:(j + 1) * B] for x in b[:-1]), gamma=b.gamma)
                    Y[k] = evaluate(one, f"on a batch of {B} episodes padded to {T} steps")
        return Y

    def evaluate(batch: Batch, where: str) -> np.ndarray:
        """-grad loss on the tensor batch ``batch``; the user's errors become ``LossError``s naming ``where``."""
        with torch.enable_grad():
            try:
                loss = loss_fn(pol.model, batch)
            except Exception as exc:  # noqa: BLE001 - the user's code: reported, chained
                raise LossError(f"loss {label} raised {type(exc).__name__} {where}: {exc}") from exc
            if not isinstance(loss, torch.Tensor):
                raise LossError(f"loss {label} returned {type(loss).__name__} {where}, not a tensor; return the "
                                "loss tensor itself (not loss.item() or a numpy value), so it can be differentiated")
            if loss.numel() != 1:
                raise LossError(f"loss {label} returned a tensor of shape {tuple(loss.shape)} {where}, not a scalar; "
                                "reduce it (.mean() or .sum()) as the training loop does before backward()")
            if not torch.isfinite(loss).all():
                raise LossError(f"loss {label} returned {loss.item()} {where}; a loss must be finite")
            if not loss.requires_grad:
                raise LossError(f"loss {label} returned a tensor without grad {where}: it does not depend on the "
                                "policy's parameters (a .detach(), .item(), numpy round trip or torch.no_grad() "
                                "cut it off, or it uses another module than the one passed in)")
            grads = torch.autograd.grad(loss.reshape(()), pol.params, allow_unused=True)
        if all(g is None for g in grads):
            raise LossError(f"loss {label} does not depend on the policy's parameters {where}")
        g = -_flat(grads, pol.params)
        if not np.isfinite(g).all():
            raise LossError(f"the gradient of loss {label} is not finite {where}")
        return g

    estimate.many = many
    from verify.frameworks._precision import probe_batch, torch_precision

    _check_settings(batch_size, batches, seed, alpha, tolerance, second_batch_size)
    precision = torch_precision(lambda: estimate(probe_batch(target, batch_size, seed)), target)
    call = (f"check_loss(policy, {callable_argument(label)}, {problem_argument(problem)}, "
            f"batch_size={batch_size}, batches={batches}, "
            f"seed={seed}, "
            f"alpha={alpha!r}" + ("" if second_batch_size is None else f", second_batch_size={second_batch_size}")
            + ("" if pad_to is None else f", pad_to={pad_to}")
            + ")")
    return check_batches(estimate, target, name=label, batch_size=batch_size, batches=batches, seed=seed,
                         alpha=alpha, tolerance=tolerance, second_batch_size=second_batch_size, reproduce=call,
                         extra={"loss": True}, precision=precision)


def assert_loss_unbiased(policy, loss_fn: Callable, problem, *, allow_proportional: bool = False,
                         **settings) -> BatchCheck:
    """``check_loss`` that raises ``AssertionError`` (with the report) unless the verdict is "unbiased" (or
    "proportional" with ``allow_proportional``)."""
    check = check_loss(policy, loss_fn, problem, **settings)
    if not (check.passed or (allow_proportional and check.verdict == "proportional")):
        raise AssertionError(check.format())
    return check

# --- rollouts (PyTorch: check a loss on rollouts as a vectorised training loop collects them (``check_rollout_loss``).) ----------

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


    mdp = resolve_mdp(problem)
    spec = RolloutSpec(n_envs, n_steps, time_major, start, time_limit, weighting)
    spec.check_mdp(mdp)
    if not callable(loss_fn):
        raise LossError(f"loss_fn must be a function (module, batch) -> scalar tensor, got {type(loss_fn).__name__}")
    label = loss_name(loss_fn, name)

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
