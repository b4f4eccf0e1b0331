"""``pgverify loss`` in a worker process: the user's loss and policy run there, the verdict is computed here.

A loss is differentiated by its framework's autodiff, so the loss, the policy network and PyTorch or JAX all live
in one process: the worker (``verify.cli._sandbox.Worker``: spawned, its own process group, stdout on stderr,
killed at the end or when ``--loss-timeout`` passes: it limits
importing the user's modules, building the policy and its exact gradient, and each call of the loss; importing the
framework itself is not counted). The worker runs the adapter (``verify.frameworks.torch`` /
``verify.frameworks.jax``) as in-process, except that the adapter's engine (``check_batches``,
``check_rollout_estimates``) is replaced there by a relay, which

1. sends what the engine would have judged with: the policy's log pi [S, A], d log pi / d params [S A, d], the
   framework's exact grad J [d], the parameter names and the engine's settings;
2. then answers the parent's requests "-grad loss on this batch" (episodes as arrays, or a ``Rollout``) until
   the parent closes it.

The parent (pgverify's own process, its own numpy) rebuilds the target from those arrays, recomputes grad J
from log pi and the Jacobian with its own exact DP (the chain rule through log pi) and refuses a framework
gradient that disagrees, samples the batches and decides the verdict. A loss module that monkeypatches numpy
patches the worker's numpy: it can change only the numbers its own loss returns, as any loss can.

Start-up: the worker is a fresh interpreter that imports numpy, pgverify's modules and the framework and loads the
problem again; the parent no longer imports the framework at all, so a PyTorch check costs about 0.1 CPU-s more
than in process (docs/reliability.md, "Your code"). Each loss evaluation costs one round trip through a pipe (~0.1 ms plus the batch's bytes).
"""
from __future__ import annotations

import os
import sys

import numpy as np

from verify.cli._sandbox import Worker, enter_worker, raised
from verify.errors import PGVerifyError, UsageError

__all__ = ["GRAD_AGREEMENT_RTOL", "check_in_worker"]

GRAD_AGREEMENT_RTOL = 1e-4      # framework grad J vs pgverify's (chain rule through log pi), relative to its scale


def _error_message(exc: BaseException, spec: str) -> tuple:
    """("error", kind, text) for what ended the worker's preparation."""
    from verify.checks.contract import EstimatorError

    if isinstance(exc, EstimatorError):
        return ("error", "loss", str(exc))
    if isinstance(exc, PGVerifyError):
        return ("error", "usage", str(exc))
    where = f"loss {spec} (importing it, building the policy or a first call of the loss)"
    if isinstance(exc, SystemExit):
        return ("error", "usage", f"{where} called sys.exit({exc.code!r}); the check did not run to completion")
    if isinstance(exc, ImportError):
        return ("error", "usage", f"a module that this command needs is not installed: {exc}")
    return ("error", "usage", f"{where} raised {type(exc).__name__}: {exc}; the check did not run to completion")


def _answer(conn, evaluate) -> None:  # pragma: no cover - runs in the child
    """Answer ("call", payload) with ("ok", -grad loss) until ("close",)."""
    from verify.checks.contract import EstimatorError

    while True:
        message = conn.recv()
        if message[0] == "close":
            return
        try:
            conn.send(("ok", np.asarray(evaluate(message[1]), dtype=float)))
        except EstimatorError as exc:
            conn.send(("error", "loss", str(exc)))
        except PGVerifyError as exc:
            conn.send(("error", "usage", str(exc)))
        except BaseException as exc:  # noqa: BLE001 - the user's code: named by the parent
            conn.send(raised(exc))


def _portable(args) -> tuple[dict, list[str]]:
    """The parsed arguments as they cross to the worker: ``NOT_GIVEN`` (an identity sentinel) by name."""
    from verify.cli._args import NOT_GIVEN

    given = {k: v for k, v in vars(args).items() if v is not NOT_GIVEN}
    return given, [k for k in vars(args) if k not in given]


def _serve_loss(conn, given: dict, not_given: list[str], cwd: str, path: list[str], adapter_for,
                check_here) -> None:  # pragma: no cover - runs in the child
    """The worker: run the adapter with the engine replaced by a relay to the parent (module docstring)."""
    import argparse

    enter_worker(cwd, path)
    from verify.cli._args import NOT_GIVEN

    args = argparse.Namespace(**given, **dict.fromkeys(not_given, NOT_GIVEN))
    try:
        from verify.cli._args import limits_from_args, load_problem_from_args
        from verify.model.io import limits_scope
        from verify.numerics.episodes import Episodes

        adapter = adapter_for(args.framework)
        conn.send(("started",))             # the framework is imported: from here on the user's code runs
        seen: dict = {}
        framework_target, rollout_model = adapter.framework_target, adapter.RolloutModel

        def target_spy(mdp, logp, grad_flat, jac, names):
            seen.update(logp=np.asarray(logp, dtype=float), grad=np.asarray(grad_flat, dtype=float),
                        jac=np.asarray(jac, dtype=float), names=tuple(names))
            return framework_target(mdp, logp, grad_flat, jac, names)

        def model_spy(mdp, logp, spec):
            seen.update(logp=np.asarray(logp, dtype=float), spec=spec)
            return rollout_model(mdp, logp, spec)

        def relay_batches(estimate, target, **settings):
            conn.send(("ready", "batches", seen, settings))
            mdp, policy = target.problem.mdp, target.problem.policy
            _answer(conn, lambda arrays: estimate(Episodes(*arrays[:4], mdp, policy, arrays[4])))

        def relay_rollouts(estimate, model, jac, grad_J, names, **settings):
            settings.pop("on_monte_carlo", None)
            settings.pop("scale", None)             # recomputed by the parent from what it receives
            seen.update(jac=np.asarray(jac, dtype=float), grad=np.asarray(grad_J, dtype=float), names=tuple(names))
            conn.send(("ready", "rollouts", seen, settings))
            _answer(conn, estimate)

        adapter.framework_target, adapter.RolloutModel = target_spy, model_spy
        adapter.check_batches, adapter.check_rollout_estimates = relay_batches, relay_rollouts
        with limits_scope(limits_from_args(args)):
            check_here(args, load_problem_from_args(args), adapter)
    except BaseException as exc:  # noqa: BLE001 - reported in one line by the parent
        conn.send(_error_message(exc, args.loss))
    conn.close()
    os._exit(0)             # no atexit handlers, no waiting for the user's threads


def _raise_error(worker: Worker, reply) -> None:
    from verify.frameworks._common import LossError

    if reply[0] == "error":
        raise (LossError if reply[1] == "loss" else UsageError)(reply[2])
    error = worker.user_error(reply)
    if isinstance(error, UsageError):
        raise error
    raise LossError(f"loss {worker.label.partition(' ')[2]} raised {type(error).__name__}: {error}")


def _grad_agrees(mdp, logp: np.ndarray, jac: np.ndarray, grad: np.ndarray, what: str) -> None:
    """Refuse a framework grad J that pgverify's exact DP, pulled back through d log pi / d params, contradicts."""
    from verify.frameworks._common import surrogate_policy
    from verify.numerics.exact import gradient

    try:
        ours = gradient(mdp, surrogate_policy(logp)).grad.reshape(-1) @ jac
    except PGVerifyError:           # beyond a budget pgverify's DP keeps: the framework's stands alone
        return
    scale = max(float(np.abs(grad).max(initial=0.0)), float(np.abs(ours).max(initial=0.0)), 1e-300)
    worst = float(np.abs(ours - grad).max(initial=0.0))
    if not worst <= GRAD_AGREEMENT_RTOL * scale:
        raise UsageError(f"{what}: the framework's exact grad J and pgverify's (its DP on the policy's action "
                         f"probabilities, chain rule through log pi) differ by {worst:.3g} (tolerance "
                         f"{GRAD_AGREEMENT_RTOL:g} x {scale:.3g}); was numpy or the framework patched by the "
                         "loss's or the policy's module?")


def check_in_worker(args, problem, *, adapter_for, check_here, announce=None):
    """The ``pgverify loss`` check, the user's code in a worker (module docstring); a ``BatchCheck`` or a
    ``RolloutCheck``.

    ``adapter_for(framework)`` imports the adapter and ``check_here(args, problem, adapter)`` runs it (both run in
    the worker; module-level functions, pickled by name); ``announce`` gets the Monte Carlo cost before it starts.

    Raises:
      UsageError / LossError: what the worker's preparation or a loss evaluation reported; the worker died, ran
        past ``--loss-timeout`` or raised a ``BaseException``.
    """
    from verify.checks.precision import Precision, effective_steps, EPS

    spec = args.loss
    timeout = getattr(args, "loss_timeout", None)
    with Worker(_serve_loss, (*_portable(args), os.getcwd(), list(sys.path), adapter_for, check_here),
                label=f"loss {spec}", timeout=timeout, option="--loss-timeout") as worker:
        worker.timeout = None               # importing the framework is not the user's time
        reply = worker.receive(f"importing {args.framework}")
        worker.timeout = timeout
        if reply[0] == "started":
            reply = worker.receive(f"preparing loss {spec} (importing your modules, building the policy, its exact "
                                   "gradient and a first call of the loss)")
        if reply[0] != "ready":
            _raise_error(worker, reply)
        _, kind, seen, settings = reply
        mdp = problem.mdp
        what = f"loss {spec}"

        def call(payload) -> np.ndarray:
            worker.send(("call", payload))
            answer = worker.receive(f"one call of loss {spec}")
            if answer[0] != "ok":
                _raise_error(worker, answer)
            return answer[1]

        logp, jac, grad, names = seen["logp"], seen["jac"], seen["grad"], seen["names"]
        if jac.shape != (logp.size, grad.size) or len(names) != grad.size:
            raise UsageError(f"{what}: the worker reported inconsistent shapes (log pi {logp.shape}, Jacobian "
                             f"{jac.shape}, grad J {grad.shape})")
        _grad_agrees(mdp, logp, jac, grad, what)
        if kind == "batches":
            from verify.checks.batchcheck import check_batches
            from verify.frameworks._common import framework_target

            target = framework_target(mdp, logp, grad, jac, names)
            precision = settings.get("precision")
            if precision is not None:       # the dtype the loss computes in is its own; the tolerance is ours
                dtype = precision.dtype if precision.dtype in EPS else "float64"
                settings["precision"] = Precision(dtype, str(precision.source),
                                                  effective_steps(mdp, target.problem.policy), precision.framework)

            def estimate(episodes) -> np.ndarray:
                return call((np.asarray(episodes.s_t), np.asarray(episodes.a_t), np.asarray(episodes.r_t),
                             np.asarray(episodes.lengths), episodes.weights))

            return check_batches(estimate, target, **settings)
        from verify.frameworks.rollout import RolloutModel, check_rollout_estimates, return_scale

        model = RolloutModel(mdp, logp, seen["spec"])
        return check_rollout_estimates(call, model, jac, grad, names, scale=return_scale(model, jac, grad),
                                       on_monte_carlo=announce, **settings)
