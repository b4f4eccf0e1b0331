"""``gradient``, ``mc`` and ``check`` on an LQ file (``"kind": "lq"``): the commands dispatch here on the loaded
problem's kind. Parses nothing of its own: the commands' arguments, read for an LQProblem."""
from __future__ import annotations

import shlex

import numpy as np

from verify.cli._args import EXIT_FAIL, EXIT_OK, print_json
from verify.errors import InvalidMDPError, UsageError
from verify.lq import LQProblem

__all__ = ["lq_from_args", "run_lq_check", "run_lq_gradient", "run_lq_mc"]


def lq_from_args(problem: LQProblem, args) -> LQProblem:
    """--horizon, --gamma and --theta applied to an LQ problem (--gym and --gym-kwargs do not apply)."""
    from verify.cli._args import NOT_GIVEN

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
        problem = problem.with_theta(_read_theta(args.theta, problem))
    if getattr(args, "episodes", None) is not None:
        from verify.model.io import require_memory

        from verify.lq_mc import lq_episodes_for

        T = lq_episodes_for(problem)
        require_memory(8.0 * args.episodes * (T + 1) * (2 * problem.n + 2 * problem.m + 1),
                       f"sampling {args.episodes} LQ episodes of {T} steps")
    return problem


def _read_theta(path: str, lq: LQProblem) -> np.ndarray:
    """--theta for an LQ problem: a .npy or JSON list of the d = m n + 2 m numbers [K, k, log_std], or a JSON
    policy object {"type": "linear_gaussian", ...}."""
    from verify.model.io import read_json_file, read_npy_file
    from verify.model.problem import numeric_array

    if path.endswith(".npy"):
        theta = np.asarray(read_npy_file(path, "--theta file"), dtype=float).ravel()
    else:
        data = read_json_file(path, "--theta file")
        if isinstance(data, dict):
            from verify.lq import lq_from_dict, lq_to_dict

            return lq_from_dict({**lq_to_dict(lq), "policy": data}).theta
        theta = numeric_array(data, f"--theta {path}: theta", (1,))
    if theta.shape != (lq.d,):
        raise InvalidMDPError(f"--theta {path}: theta has {theta.size} entries, the linear Gaussian policy needs "
                              f"{lq.d} (K: {lq.m} x {lq.n}, k: {lq.m}, log_std: {lq.m})")
    return theta


def run_lq_gradient(problem: LQProblem, args) -> int:
    from verify.lq import lq_gradient
    from verify.lq_render import format_lq_gradient

    if getattr(args, "method", "auto") not in ("auto", "dp", "solve"):
        raise UsageError(f"--method {args.method} is for tabular MDPs; an LQ problem's gradient is the Riccati "
                         "recursion (finite horizon) or the Lyapunov equations (horizon null): use --method auto")
    res = lq_gradient(problem)
    if args.json:
        print_json(res.to_json())
    else:
        print(format_lq_gradient(problem, res))
    return EXIT_OK


def _problem_command(args) -> str:
    from verify.cli._args import problem_command

    return problem_command(args)


def _reproduce(args, r) -> str:
    spec = args.estimator if getattr(args, "estimator", None) else r.estimator
    return (f"pgverify mc {_problem_command(args)} --estimator {shlex.quote(spec)} --episodes {r.episodes} "
            f"--seed {r.seed} --alpha {r.alpha!r}")


def _check_sampler(args) -> None:
    if getattr(args, "sampler", "pgverify") != "pgverify":
        raise UsageError("--sampler gymnasium works with --gym only; an LQ problem is sampled by pgverify")
    if getattr(args, "covariance", "auto") == "exact":
        raise UsageError("--covariance exact needs an enumeration of the trajectories; an LQ problem's are "
                         "continuous: the sample test runs (exact means decide where a closed form exists)")


def _user_check(args, problem: LQProblem):
    from verify.cli._args import time_limit, with_time_limit
    from verify.cli._estimator_import import load_estimator
    from verify.lq_check import check_lq_estimator

    timeout = getattr(args, "estimator_timeout", None)
    with time_limit(timeout, f"importing --estimator {args.estimator}"):
        fn = load_estimator(args.estimator)
    fn = with_time_limit(fn, timeout, args.estimator)
    return check_lq_estimator(fn, problem, episodes=args.episodes, seed=args.seed, alpha=args.alpha,
                              name=args.estimator)


def run_lq_mc(problem: LQProblem, args) -> int:
    from verify.lq_mc import run_lq_mc as run
    from verify.lq_render import format_lq_mc

    _check_sampler(args)
    if ":" in args.estimator:
        result = _user_check(args, problem).mc
    else:
        result = run(problem, args.estimator, episodes=args.episodes, seed=args.seed, alpha=args.alpha)
    command = _reproduce(args, result)
    if args.json:
        print_json({**result.to_json(), "command": command})
    else:
        print(format_lq_mc(result, command))
    return EXIT_OK if result.verdict == "consistent" else EXIT_FAIL


def run_lq_check(problem: LQProblem, args) -> int:
    from verify.lq_mc import lq_check
    from verify.lq_render import format_lq_check, format_lq_mc

    _check_sampler(args)
    if args.estimator is not None:
        from verify.lq_mc import FD_TOL, LQCheck, exact_cross_check

        gradients = LQCheck(problem.name, *exact_cross_check(problem), FD_TOL, ())
        check = _user_check(args, problem)
        passed = gradients.gradients_agree and check.passed
        if args.json:
            print_json({"problem": problem.name, "passed": passed, "fd_max_rel": gradients.fd_max_rel,
                        "estimator": check.to_json()})
        else:
            print(format_lq_check(gradients).splitlines()[0])
            print(format_lq_mc(check.mc, _reproduce(args, check.mc)))
        return EXIT_OK if passed else EXIT_FAIL
    check = lq_check(problem, episodes=args.episodes, seed=args.seed, alpha=args.alpha)
    if args.json:
        print_json(check.to_json())
    else:
        print(format_lq_check(check, lambda r: _reproduce(args, r)))
    return EXIT_OK if check.passed else EXIT_FAIL
