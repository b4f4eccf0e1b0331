"""Shared pieces of the command line: argument converters, the problem arguments (FILE or --gym), output paths.

Every converter raises ``argparse.ArgumentTypeError`` (argparse turns it into one line and exit 2).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from verify import errors
from verify._startup import fit_memory_to
from verify.errors import InvalidMDPError, UsageError
from verify.model.io import (
    DEFAULT_LIMITS,
    Limits,
    check_output_path,
    format_bytes,
    parse_size,
    read_json_file,
    read_npy_file,
)

if TYPE_CHECKING:       # the problem modules load numpy: imported where a problem is loaded, not for `--help`
    from verify.model.problem import Problem

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_UNDECIDED = 3     # mc and check --estimator: no test rejected, but the run lacked the power to decide


def resolution_arg(text: str) -> float:
    """--resolution: a positive fraction of max |grad J| (e.g. 0.1)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"--resolution must be a positive number (a fraction of max |grad J|, "
                                         f"e.g. 0.1), got {text!r}")
    return value


def add_resolution_argument(p) -> None:
    # default None: the library's verify.checks.power.DEFAULT_RESOLUTION (not imported here: --help loads no numpy)
    p.add_argument("--resolution", type=resolution_arg, default=None, metavar="R",
                   help="a sampled verdict is 'consistent' only when the run could see a bias of R x max |grad J| in "
                        "every component; otherwise 'undecided' (exit 3 for mc) with the episodes needed "
                        "(default 0.1)")


def resolution_kwargs(args) -> dict:
    """{"resolution": R} when --resolution was given, else {} (the library's default)."""
    r = getattr(args, "resolution", None)
    return {} if r is None else {"resolution": r}


def one_line(message: str) -> str:
    """``message`` on one line: a multi-line text (e.g. a user's exception) joined with ' / ', at most 2000 chars.

    >>> one_line("first\\n\\n  second ")
    'first / second'
    """
    text = " / ".join(part.strip() for part in str(message).splitlines() if part.strip())
    return text if len(text) <= 2000 else text[:1997] + "..."


def size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def work_arg(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of steps (e.g. 1e11)") from None
    if not 1 <= value <= 1e18:
        raise argparse.ArgumentTypeError(f"must lie in [1, 1e18], got {text}")
    return int(value)


def seconds_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 1e6:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1e6] seconds, got {text}")
    return value


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """--max-memory and --max-work: the budgets checked from declared sizes before any work (every command)."""
    group = parser.add_argument_group("resource limits (checked before the work starts)")
    group.add_argument("--max-memory", type=size_arg, default=DEFAULT_LIMITS.max_memory, metavar="BYTES",
                       help=f"refuse requests whose arrays would need more (e.g. 512M, 8G; default "
                            f"{format_bytes(DEFAULT_LIMITS.max_memory)})")
    group.add_argument("--max-work", type=work_arg, default=DEFAULT_LIMITS.max_work, metavar="STEPS",
                       help=f"refuse requests of more elementary steps (sampled steps, DP updates; default "
                            f"{DEFAULT_LIMITS.max_work:.0e})")


def limits_from_args(args) -> Limits:
    return Limits(max_memory=getattr(args, "max_memory", DEFAULT_LIMITS.max_memory),
                  max_work=getattr(args, "max_work", DEFAULT_LIMITS.max_work),
                  max_file_bytes=DEFAULT_LIMITS.max_file_bytes)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    return errors.positive_int(value, "", argparse.ArgumentTypeError)


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


def writable_output(path: str, force: bool, what: str = "output file") -> Path:
    """The output path validated before the work (``verify.model.io.check_output_path``); write it with ``atomic_write``."""
    return check_output_path(path, force=force, what=what)


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


def add_gym_arguments(parser: argparse.ArgumentParser, *, with_file: bool = True) -> None:
    """--gym-kwargs, --horizon, --gamma, --theta; ``with_file=False`` for a command that takes no FILE."""
    file_note = "; for FILE or --example it overrides the file's" if with_file else ""
    parser.add_argument("--gym-kwargs", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="keyword arguments for gymnasium.make; values parse as JSON where they can "
                             "(is_slippery=false, map_name=8x8, success_rate=0.5)")
    parser.add_argument("--horizon", type=horizon_arg, default=NOT_GIVEN, metavar="H|null",
                        help="maximum number of actions, or null (until termination); default for --gym: the "
                             "environment's time limit (max_episode_steps)" + file_note)
    parser.add_argument("--gamma", type=gamma_arg, default=None, metavar="G",
                        help="discount in [0, 1]; default for --gym 1 (gymnasium's return is undiscounted)"
                             + file_note)
    parser.add_argument("--theta", metavar="FILE.npy|FILE.json",
                        help="policy parameters: a .npy array or JSON list shaped like theta, or a JSON policy "
                             "object; default: " + ("the file's policy, or uniform (theta = 0) for --gym" if with_file
                                                    else "uniform (theta = 0)"))


def add_problem_arguments(parser: argparse.ArgumentParser) -> None:
    """FILE, or --gym ENV_ID with --gym-kwargs; --horizon, --gamma and --theta apply to either."""
    parser.add_argument("file", nargs="?", metavar="FILE",
                        help="MDP file (JSON; docs/reference.md, 'The MDP file format')")
    parser.add_argument("--example", metavar="NAME",
                        help="instead of FILE, a built-in example: bandit, chain, gridworld or discounted")
    parser.add_argument("--gym", metavar="ENV_ID",
                        help="instead of FILE, import a gymnasium toy-text environment exactly (FrozenLake-v1, "
                             "CliffWalking-v1, Taxi-v4; needs pgverify[gym])")
    add_gym_arguments(parser)


def load_theta(path: str, problem: Problem):
    """The policy given by --theta for ``problem`` (same type and shape unless a JSON policy object)."""
    from verify.model.policy import policy_from_dict
    from verify.model.problem import numeric_array

    mdp, policy = problem.mdp, problem.policy
    if path.endswith(".npy"):
        theta = read_npy_file(path, "--theta file")
    else:
        data = read_json_file(path, "--theta file")
        if isinstance(data, dict):
            return policy_from_dict(data, mdp.n_states, mdp.n_actions)
        if not isinstance(data, list):
            raise InvalidMDPError(f"--theta {path}: expected a list shaped like theta or a policy object, got "
                                  f"{type(data).__name__}")
        theta = numeric_array(data, f"--theta {path}: theta", (policy.theta.ndim,))
    if theta.shape != policy.theta.shape:
        raise InvalidMDPError(f"--theta {path}: theta has shape {theta.shape}, the {policy.kind} policy needs "
                              f"{policy.theta.shape}")
    return policy.with_theta(theta)


def gym_problem_from_args(env_id: str, args) -> Problem:
    from verify.frameworks.gym import TIME_LIMIT, gym_problem, parse_gym_kwargs

    return gym_problem(env_id, parse_gym_kwargs(args.gym_kwargs),
                       horizon=TIME_LIMIT if args.horizon is NOT_GIVEN else args.horizon,
                       gamma=1.0 if args.gamma is None else args.gamma)


def load_problem_from_args(args) -> Problem:
    """The Problem named by ``add_problem_arguments``: FILE or --gym, then --horizon/--gamma/--theta."""
    from verify.model.problem import Problem, load_problem

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
            from verify.model.builtin import load_example

            problem = load_example(args.example)
        else:
            problem = load_problem(args.file)
        if getattr(problem, "kind", None) == "lq":   # continuous actions: the overrides of an LQ problem
            return lq_from_args(problem, args)
        changes = {k: v for k, v in (("horizon", args.horizon), ("gamma", args.gamma))
                   if v is not NOT_GIVEN and not (k == "gamma" and v is None)}
        if changes:
            problem = Problem(problem.mdp.replace(**changes), problem.policy)
    if args.theta:
        problem = Problem(problem.mdp, load_theta(args.theta, problem))
    # A small problem's arrays are allocated and freed many times: reused memory, no huge pages (verify._startup)
    fit_memory_to(problem.mdp.n_states * problem.mdp.n_actions)
    if getattr(args, "episodes", None) is not None:
        from verify.numerics.sampler import check_sampling_budget

        check_sampling_budget(problem, args.episodes)
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


# --- continuous actions: the problem arguments read for an LQ problem (verify.model.lq) -----------------------

def lq_from_args(problem, args):
    """--horizon, --gamma and --theta applied to an LQ problem (--gym and --gym-kwargs do not apply)."""
    if getattr(args, "gym_kwargs", None):
        raise UsageError("--gym-kwargs applies to --gym only")
    changes = {}
    if getattr(args, "horizon", NOT_GIVEN) is not NOT_GIVEN:
        changes["horizon"] = args.horizon
    if getattr(args, "gamma", None) is not None:
        changes["gamma"] = args.gamma
    if changes:
        problem = problem.replace(**changes)
    if getattr(args, "theta", None):
        problem = problem.with_theta(_read_lq_theta(args.theta, problem))
    if getattr(args, "episodes", None) is not None:
        from verify.model.io import require_memory

        from verify.checks.lq_mc import lq_episodes_for

        T = lq_episodes_for(problem)
        require_memory(8.0 * args.episodes * (T + 1) * (2 * problem.n + 2 * problem.m + 1),
                       f"sampling {args.episodes} LQ episodes of {T} steps")
    return problem


def _read_lq_theta(path: str, lq):
    """--theta for an LQ problem: a .npy or JSON list of the d = m n + 2 m numbers [K, k, log_std], or a JSON
    policy object {"type": "linear_gaussian", ...}."""
    import numpy as np

    from verify.model.io import read_json_file, read_npy_file
    from verify.model.problem import numeric_array

    if path.endswith(".npy"):
        theta = np.asarray(read_npy_file(path, "--theta file"), dtype=float).ravel()
    else:
        data = read_json_file(path, "--theta file")
        if isinstance(data, dict):
            from verify.model.lq import lq_from_dict, lq_to_dict

            return lq_from_dict({**lq_to_dict(lq), "policy": data}).theta
        theta = numeric_array(data, f"--theta {path}: theta", (1,))
    if theta.shape != (lq.d,):
        raise InvalidMDPError(f"--theta {path}: theta has {theta.size} entries, the linear Gaussian policy needs "
                              f"{lq.d} (K: {lq.m} x {lq.n}, k: {lq.m}, log_std: {lq.m})")
    return theta


def add_cache_argument(p) -> None:
    """``--no-cache``: prove every derivation step again, ignoring and not writing the proof cache."""
    p.add_argument("--no-cache", action="store_true",
                   help="prove every derivation step again, neither reading nor writing the proof cache "
                        "(see pgverify cache; also PGVERIFY_NO_CACHE=1)")


def cache_scope(args):
    """A context in which the proof cache (``derive.proof_cache``) is off if ``--no-cache`` was given."""
    import contextlib

    if getattr(args, "no_cache", False):
        from derive.proof_cache import disabled
        return disabled()
    return contextlib.nullcontext()
