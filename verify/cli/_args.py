"""Shared pieces of the command line: argument converters, the problem arguments (FILE or --gym), output paths.

Every converter raises ``argparse.ArgumentTypeError`` (argparse turns it into one line and exit 2).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from verify.errors import InvalidMDPError, UsageError
from verify.problem import Problem, load_problem

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {value}")
    return value


def seed_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer seed") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed must be non-negative, got {value}")
    return value


def print_json(obj) -> None:
    print(json.dumps(obj, indent=1, allow_nan=False))


def writable_output(path: str, force: bool) -> Path:
    """The output path, refusing to overwrite the user's file unless ``force``."""
    out = Path(path)
    if out.exists() and not force:
        raise UsageError(f"{out} exists; pass --force to overwrite it")
    if not out.parent.exists():
        raise UsageError(f"directory {out.parent} does not exist")
    return out


# --- the problem: an MDP file or a gymnasium environment (shared by gradient, mc, check) ---------------------------

NOT_GIVEN = object()


def horizon_arg(text: str) -> int | None:
    if text.strip().lower() in ("null", "none"):
        return None
    return positive_int(text)


def gamma_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"gamma must lie in [0, 1], got {value}")
    return value


def add_gym_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gym-kwargs", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="keyword arguments for gymnasium.make; values parse as JSON where they can "
                             "(is_slippery=false, map_name=8x8, success_rate=0.5)")
    parser.add_argument("--horizon", type=horizon_arg, default=NOT_GIVEN, metavar="H|null",
                        help="maximum number of actions, or null (until termination); default for --gym: the "
                             "environment's time limit (max_episode_steps); for FILE it overrides the file's")
    parser.add_argument("--gamma", type=gamma_arg, default=None, metavar="G",
                        help="discount in [0, 1]; default for --gym 1 (gymnasium's return is undiscounted); for "
                             "FILE it overrides the file's")
    parser.add_argument("--theta", metavar="FILE.npy|FILE.json",
                        help="policy parameters: a .npy array or JSON list shaped like theta, or a JSON policy "
                             "object; default: the file's policy, or uniform (theta = 0) for --gym")


def add_problem_arguments(parser: argparse.ArgumentParser) -> None:
    """FILE, or --gym ENV_ID with --gym-kwargs; --horizon, --gamma and --theta apply to either."""
    parser.add_argument("file", nargs="?", metavar="FILE", help="MDP file (JSON, see README)")
    parser.add_argument("--example", metavar="NAME",
                        help="instead of FILE, a built-in example: bandit, chain, gridworld or discounted")
    parser.add_argument("--gym", metavar="ENV_ID",
                        help="instead of FILE, import a gymnasium toy-text environment exactly (FrozenLake-v1, "
                             "CliffWalking-v1, Taxi-v4; needs pgverify[gym])")
    add_gym_arguments(parser)


def load_theta(path: str, problem: Problem):
    """The policy given by --theta for ``problem`` (same type and shape unless a JSON policy object)."""
    from verify.policy import policy_from_dict

    mdp, policy = problem.mdp, problem.policy
    try:
        if path.endswith(".npy"):
            data = np.load(path, allow_pickle=False)
        else:
            data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"cannot read --theta file {path!r}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"--theta file {path!r} is neither a .npy array nor JSON: {exc}") from None
    if isinstance(data, dict):
        return policy_from_dict(data, mdp.n_states, mdp.n_actions)
    try:
        theta = np.asarray(data, dtype=float)
    except (TypeError, ValueError):
        raise InvalidMDPError(f"--theta {path}: not an array of numbers") from None
    if theta.shape != policy.theta.shape:
        raise InvalidMDPError(f"--theta {path}: theta has shape {theta.shape}, the {policy.kind} policy needs "
                              f"{policy.theta.shape}")
    return policy.with_theta(theta)


def gym_problem_from_args(env_id: str, args) -> Problem:
    from verify.gym import TIME_LIMIT, gym_problem, parse_gym_kwargs

    return gym_problem(env_id, parse_gym_kwargs(args.gym_kwargs),
                       horizon=TIME_LIMIT if args.horizon is NOT_GIVEN else args.horizon,
                       gamma=1.0 if args.gamma is None else args.gamma)


def load_problem_from_args(args) -> Problem:
    """The Problem named by ``add_problem_arguments``: FILE or --gym, then --horizon/--gamma/--theta."""
    given = [x for x in (args.file, getattr(args, "example", None), args.gym) if x is not None]
    if len(given) != 1:
        raise UsageError("give one of an MDP FILE, --example NAME or --gym ENV_ID"
                         + (" (not several)" if given else ""))
    if args.gym is not None:
        problem = gym_problem_from_args(args.gym, args)
    else:
        if args.gym_kwargs:
            raise UsageError("--gym-kwargs applies to --gym only")
        if getattr(args, "example", None) is not None:
            from verify.builtin import load_example

            problem = load_example(args.example)
        else:
            problem = load_problem(args.file)
        changes = {k: v for k, v in (("horizon", args.horizon), ("gamma", args.gamma))
                   if v is not NOT_GIVEN and not (k == "gamma" and v is None)}
        if changes:
            problem = Problem(problem.mdp.replace(**changes), problem.policy)
    if args.theta:
        problem = Problem(problem.mdp, load_theta(args.theta, problem))
    return problem


def problem_command(args) -> str:
    """The problem part of the command line (FILE or --gym ... with overrides), shell-quoted, for replay lines."""
    import shlex

    parts = ([args.file] if args.file is not None else ["--example", args.example]
             if getattr(args, "example", None) is not None else ["--gym", args.gym])
    if args.gym_kwargs:
        parts += ["--gym-kwargs", *args.gym_kwargs]
    if args.horizon is not NOT_GIVEN:
        parts += ["--horizon", "null" if args.horizon is None else str(args.horizon)]
    if args.gamma is not None:
        parts += ["--gamma", repr(args.gamma)]
    if args.theta:
        parts += ["--theta", args.theta]
    if getattr(args, "sampler", "pgverify") != "pgverify":
        parts += ["--sampler", args.sampler]
    return " ".join(shlex.quote(p) for p in parts)
