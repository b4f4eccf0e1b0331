"""``pgverify loss``: check a PyTorch or JAX policy-gradient loss as the training loop calls it.

    pgverify loss FILE:LOSS --policy FILE:POLICY --framework torch|jax [MDP FILE | --example NAME | --gym ENV]

With ``--steps T`` (and ``--envs B``) the loss receives rollouts of B environments x T steps with auto-reset
(``verify.frameworks.rollout``); without, batches of complete episodes (``verify.frameworks.*.check_loss``).
Exit 0 unbiased (or proportional: a positive multiple, unless ``--strict``), 1 biased or undecided, 2 bad input.
"""
from __future__ import annotations

import shlex
import sys

from verify.cli._args import (
    EXIT_FAIL,
    EXIT_OK,
    add_problem_arguments,
    load_problem_from_args,
    positive_int,
    print_json,
    probability,
    problem_command,
    seed_arg,
    seconds_arg,
)
from verify.errors import UsageError

FRAMEWORKS = ("torch", "jax")


def _positive_float(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _float(text: str) -> float:
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text}")
    return value


def register(sub) -> None:
    p = sub.add_parser("loss", help="check a PyTorch/JAX loss on rollouts or episodes against the exact gradient",
                       description="Call your loss exactly as the training loop does (rollouts of --envs "
                                   "environments x --steps steps with auto-reset, or batches of episodes), "
                                   "differentiate it with the framework's autodiff and compare E[-grad loss] on the "
                                   "policy's parameters with the exact expected gradient (exact where the rollouts "
                                   "can be enumerated, else Monte Carlo). Exit 0 unbiased or proportional (unless "
                                   "--strict), 1 biased or undecided, 2 bad input.")
    p.add_argument("loss", metavar="FILE:LOSS", help="your loss: path/to/file.py:function or package.module:function "
                                                     "(loss(policy, batch) in PyTorch, loss(params, batch) in JAX)")
    add_problem_arguments(p)
    p.add_argument("--policy", required=True, metavar="FILE:POLICY",
                   help="the policy: PyTorch: an nn.Module, or a class/function (n_obs, n_actions) -> nn.Module; JAX: "
                        "a pair (apply, params) or a function (n_obs, n_actions) -> (apply, params), apply returning "
                        "the policy's logits")
    p.add_argument("--framework", required=True, choices=FRAMEWORKS, help="torch or jax")
    p.add_argument("--logits", metavar="FILE:FUNCTION",
                   help="PyTorch: (module, obs) -> logits, the policy head of a module that returns more (e.g. "
                        "lambda agent, obs: agent.actor(obs))")
    p.add_argument("--steps", type=positive_int, metavar="T",
                   help="rollout mode: T steps per environment (auto-reset); without it, batches of episodes")
    p.add_argument("--envs", type=positive_int, default=4, metavar="B",
                   help="rollout mode: number of environments (default 4)")
    p.add_argument("--batch-major", action="store_true",
                   help="rollout tensors [B, T, ...] instead of time-major [T, B, ...]")
    p.add_argument("--start", choices=("reset", "stationary"), default="reset",
                   help="rollout mode: every environment starts from a reset (default) or mid-run (stationary)")
    p.add_argument("--time-limit", type=positive_int, metavar="L",
                   help="rollout mode, horizon-null MDPs: truncate episodes after L steps (the objective stays J)")
    p.add_argument("--weighting", choices=("discounted", "visited"), default="discounted",
                   help="rollout target: gamma^k per visited step (grad J's, default) or 1 (GAE-style losses)")
    p.add_argument("--entropy-coef", type=_float, metavar="BETA",
                   help="judge against grad (J + BETA H): the loss's entropy bonus is intended")
    p.add_argument("--policy-params", nargs="+", metavar="PREFIX",
                   help="the judged parameters (name prefixes); default: every parameter that moves pi")
    p.add_argument("--batch-size", type=positive_int, default=16, metavar="B",
                   help="episode mode: episodes per batch (default 16)")
    p.add_argument("--batches", type=positive_int, default=1000, metavar="K",
                   help="Monte Carlo batches when the exact route is not available (default 1000)")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of all sampling (default 0)")
    p.add_argument("--alpha", type=probability, default=1e-3, metavar="A", help="test level (default 0.001)")
    p.add_argument("--tolerance", type=_positive_float, metavar="R",
                   help="the relative bias a passing Monte Carlo run must detect (default 0.02 for rollouts, "
                        "0.1 for episodes)")
    p.add_argument("--strict", action="store_true", help="exit 1 for 'proportional' too")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--loss-timeout", type=seconds_arg, default=None, metavar="SECONDS",
                   help="time limit for preparing the check (importing your modules, building the policy and its "
                        "exact gradient; importing the framework is not counted) and for each call of your loss; they run in a worker process, killed when "
                        "the limit passes (exit 2). Default: no limit")
    p.set_defaults(func=run_loss)


def _resolve(spec: str, option: str):
    """The object named by FILE:NAME or package.module:NAME (``_estimator_import``'s importer)."""
    from verify.cli._estimator_import import _import_module

    if ":" not in spec:
        raise UsageError(f"{option} {spec}: expected path/to/file.py:NAME or package.module:NAME")
    module, _, attr = spec.rpartition(":")
    if not module or not attr:
        raise UsageError(f"{option} {spec}: expected path/to/file.py:NAME or package.module:NAME")
    try:
        obj, owner = _import_module(module, spec), f"module {module}"
    except UsageError as exc:
        raise UsageError(str(exc).replace("--estimator ", f"{option} ", 1)) from exc.__cause__
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"{option} {spec}: {owner} has no attribute {part!r}")
        obj, owner = getattr(obj, part), part
    return obj


def _made(obj, spec: str, n_obs: int, n_actions: int):
    """``obj(n_obs, n_actions)``: a policy factory's product; what it raises is the user's input error."""
    try:
        return obj(n_obs, n_actions)
    except Exception as exc:  # noqa: BLE001 - the user's code: reported in one line
        raise UsageError(f"--policy {spec}: calling {spec.rpartition(':')[2]}({n_obs}, {n_actions}) raised "
                         f"{type(exc).__name__}: {exc} (a policy factory takes the observation size and the number "
                         "of actions)") from exc


def _policy(spec: str, framework: str, n_obs: int, n_actions: int):
    obj = _resolve(spec, "--policy")
    if framework == "torch":
        import torch

        if isinstance(obj, torch.nn.Module):
            return obj
        if callable(obj):
            made = _made(obj, spec, n_obs, n_actions)
            if isinstance(made, torch.nn.Module):
                return made
            raise UsageError(f"--policy {spec}: {spec.rpartition(':')[2]}({n_obs}, {n_actions}) returned "
                             f"{type(made).__name__}, not a torch.nn.Module")
        raise UsageError(f"--policy {spec}: {type(obj).__name__} is neither an nn.Module nor a function (n_obs, "
                         "n_actions) -> nn.Module")
    if isinstance(obj, tuple) and len(obj) == 2 and callable(obj[0]):
        return obj
    if callable(obj):
        made = _made(obj, spec, n_obs, n_actions)
        if isinstance(made, tuple) and len(made) == 2 and callable(made[0]):
            return made
        raise UsageError(f"--policy {spec}: {spec.rpartition(':')[2]}({n_obs}, {n_actions}) returned "
                         f"{type(made).__name__}, not a pair (apply, params)")
    raise UsageError(f"--policy {spec}: {type(obj).__name__} is neither a pair (apply, params) nor a function "
                     "(n_obs, n_actions) -> (apply, params)")


def reproduce_command(args) -> str:
    """The ``pgverify loss`` command line that repeats this check (every setting that changes the result)."""
    parts = ["pgverify", "loss", args.loss, problem_command(args), "--policy", args.policy,
             "--framework", args.framework]
    if args.logits:
        parts += ["--logits", args.logits]
    if args.steps:
        parts += ["--steps", str(args.steps), "--envs", str(args.envs)]
        if args.batch_major:
            parts.append("--batch-major")
        if args.start != "reset":
            parts += ["--start", args.start]
        if args.time_limit:
            parts += ["--time-limit", str(args.time_limit)]
        if args.weighting != "discounted":
            parts += ["--weighting", args.weighting]
    else:
        parts += ["--batch-size", str(args.batch_size)]
    if args.entropy_coef is not None:
        parts += ["--entropy-coef", repr(args.entropy_coef)]
    if args.policy_params:
        parts += ["--policy-params", *args.policy_params]
    if args.tolerance is not None:
        parts += ["--tolerance", repr(args.tolerance)]
    parts += ["--batches", str(args.batches), "--seed", str(args.seed), "--alpha", repr(args.alpha)]
    # problem_command is already quoted; quote the rest
    return " ".join(p if i == 3 else shlex.quote(p) for i, p in enumerate(parts))


def adapter_for(framework: str):
    """The framework's adapter module (imports PyTorch or JAX: in the worker, never in pgverify's process)."""
    if framework == "torch":
        try:
            from verify.frameworks import torch as adapter
        except ImportError:
            raise UsageError("--framework torch needs PyTorch: pip install 'pgverify[torch]'") from None
        return adapter
    from verify.frameworks import jax as adapter

    if adapter.jax is None:
        raise UsageError("--framework jax needs JAX: pip install 'pgverify[jax]'")
    return adapter


def _check_flags(args) -> None:
    """The option combinations refused before the worker starts."""
    if args.framework == "jax" and args.logits:
        raise UsageError("--logits is for PyTorch; in JAX the policy's apply returns the logits")
    if not args.steps:
        for flag, value in (("--entropy-coef", args.entropy_coef), ("--policy-params", args.policy_params),
                            ("--time-limit", args.time_limit)):
            if value is not None:
                raise UsageError(f"{flag} applies to rollouts (--steps T)")


def check_here(args, problem, adapter):
    """The check in this process: the user's loss and policy imported here and handed to the adapter. The CLI
    calls it in its worker (``verify.cli._loss_sandbox``), which relays the adapter's engine to pgverify's process.
    """
    mdp = problem.mdp
    _check_flags(args)
    loss_fn = _resolve(args.loss, "loss")
    if not callable(loss_fn):
        raise UsageError(f"loss {args.loss}: {type(loss_fn).__name__} is not a function")
    policy = _policy(args.policy, args.framework, mdp.n_states, mdp.n_actions)
    logits = _resolve(args.logits, "--logits") if args.logits else None
    name = args.loss.rpartition(":")[2]
    if args.steps:
        settings = dict(n_envs=args.envs, n_steps=args.steps, time_major=not args.batch_major, start=args.start,
                        time_limit=args.time_limit, weighting=args.weighting, entropy_coef=args.entropy_coef,
                        policy_params=args.policy_params, batches=args.batches, seed=args.seed, alpha=args.alpha,
                        name=name, on_monte_carlo=_announce)
        if args.tolerance is not None:
            settings["tolerance"] = args.tolerance
        if args.framework == "torch":
            return adapter.check_rollout_loss(policy, loss_fn, mdp, logits=logits, **settings)
        return adapter.check_rollout_loss(policy[0], policy[1], loss_fn, mdp, **settings)
    settings = dict(batch_size=args.batch_size, batches=args.batches, seed=args.seed, alpha=args.alpha, name=name)
    if args.tolerance is not None:
        settings["tolerance"] = args.tolerance
    if args.framework == "torch":
        return adapter.check_loss(policy, loss_fn, mdp, logits=logits, **settings)
    return adapter.check_loss(policy[0], policy[1], loss_fn, mdp, **settings)


def run_loss(args) -> int:
    import dataclasses

    from verify.cli._loss_sandbox import check_in_worker

    problem = load_problem_from_args(args)
    _check_flags(args)
    command = reproduce_command(args)
    # The loss, the policy and the framework run in a worker process (verify/cli/_loss_sandbox.py); the verdict
    # is decided here.
    check = dataclasses.replace(check_in_worker(args, problem, adapter_for=adapter_for, check_here=check_here,
                                                announce=_announce), reproduce=command)
    if args.json:
        print_json({**check.to_json(), "command": command})
    else:
        print(check.format())
    ok = check.verdict == "unbiased" or (check.verdict == "proportional" and not args.strict)
    return EXIT_OK if ok else EXIT_FAIL


def _announce(text: str) -> None:
    """The Monte Carlo run's cost, printed before it starts (stderr: the report stays on stdout)."""
    print(f"pgverify loss: {text}", file=sys.stderr, flush=True)
