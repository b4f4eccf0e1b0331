"""``gradient``, ``mc`` and ``check`` on an LQ file (``"kind": "lq"``): the commands dispatch here on the loaded
problem's kind. Parses nothing of its own: the commands' arguments, read for an LQProblem."""
from __future__ import annotations

import shlex

from verify.cli._args import EXIT_FAIL, EXIT_OK, print_json
from verify.errors import UsageError
from verify.model.lq import LQProblem

__all__ = ["run_lq_check", "run_lq_gradient", "run_lq_mc"]


def run_lq_gradient(problem: LQProblem, args) -> int:
    from verify.model.lq import lq_gradient
    from verify.checks.lq_text import format_lq_gradient

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
    from verify.cli._sandbox import SandboxedEstimator, UserCodeError
    from verify.checks.lq_check import check_lq_estimator

    # As the tabular --estimator: the user's code runs in a worker process (verify/cli/_sandbox.py), the LQ
    # episodes pickled to it; its prints, exits, threads, timeouts and monkeypatches stay there.
    with SandboxedEstimator(args.estimator, getattr(args, "estimator_timeout", None)) as fn:
        try:
            return check_lq_estimator(fn, problem, episodes=args.episodes, seed=args.seed, alpha=args.alpha,
                                      name=args.estimator)
        except UserCodeError as exc:     # raised after the probe (which names it itself): one line, exit 2
            raise UsageError(f"estimator {args.estimator} raised {type(exc).__name__}: {exc}") from None


def run_lq_mc(problem: LQProblem, args) -> int:
    from verify.checks.lq_mc import run_lq_mc as run
    from verify.checks.lq_text import format_lq_mc

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
    from verify.checks.lq_mc import lq_check
    from verify.checks.lq_text import format_lq_check, format_lq_mc

    _check_sampler(args)
    if args.estimator is not None:
        from verify.checks.lq_mc import FD_TOL, LQCheck, exact_cross_check

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
