"""``pgverify mc``, ``check`` and ``estimators``: Monte Carlo estimators against the exact gradient."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from verify.cli._args import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_UNDECIDED,
    add_problem_arguments,
    add_resolution_argument,
    load_problem_from_args,
    positive_int,
    print_json,
    probability,
    problem_command,
    resolution_kwargs,
    seconds_arg,
    seed_arg,
)
from verify.cli._text import print_folded, sampling_progress
from verify.errors import UsageError

if TYPE_CHECKING:                   # the problem modules load numpy: not for `pgverify --help`
    from verify.model.problem import Problem


def register(sub) -> None:
    p = sub.add_parser("mc", help="Monte Carlo estimate of grad J by one estimator, tested against the exact one",
                       description="Sample episodes, average one estimator's per-episode gradient estimates and "
                                   "judge the mean against the exact grad J: by the exact bias when the "
                                   "trajectories can be enumerated, else by max |z| (Bonferroni), paired against a "
                                   "catalog control on the same episodes or unpaired, whichever detects smaller "
                                   "biases. Exit 0 consistent, 1 "
                                   "biased or inconsistent, 2 bad input, 3 undecided (no test rejected, but the run "
                                   "could not see a bias of --resolution x max |grad J|: the episodes needed are "
                                   "printed).")
    add_problem_arguments(p)
    p.add_argument("--estimator", required=True, metavar="NAME|MODULE:FUNCTION",
                   help="catalog name (see pgverify estimators), or your own estimator as package.module:function "
                        "or path/to/file.py:function (the current directory is importable; contract: "
                        "docs/estimators.md, 'Check your own estimator'); yours also fails when enumeration proves "
                        "a bias")
    _add_mc_arguments(p)
    p.add_argument("--sampler", choices=("pgverify", "gymnasium"), default="pgverify",
                   help="who samples the episodes: pgverify's vectorised sampler of the MDP (default), or, with "
                        "--gym, gymnasium's own env.reset/env.step loop (an independent check of the import)")
    p.add_argument("--no-color", action="store_true",
                   help="no colour in the progress display (shown on stderr while sampling, on a terminal only)")
    p.set_defaults(func=run_mc)

    p = sub.add_parser("check", help="exact gradients cross-checked, then every estimator on one MDP",
                       description="Compare the exact gradient methods with finite differences, then run every "
                                   "estimator of the catalog on one sample. Exit 0 when the methods agree and no "
                                   "row failed: an unbiased estimator biased (exactly) or inconsistent (sampled). "
                                   "Rows the run cannot decide are listed as undecided, never as passed.")
    add_problem_arguments(p)
    _add_mc_arguments(p)
    p.add_argument("--estimator", metavar="MODULE:FUNCTION",
                   help="check only this estimator instead of the catalog: package.module:function, "
                        "path/to/file.py:function or a catalog name; exit 0 when the exact gradients agree and it "
                        "passes (consistent, and no bias proved by enumeration)")
    p.add_argument("--no-color", action="store_true", help="plain text output")
    p.set_defaults(func=run_check)

    p = sub.add_parser("estimators", help="list the estimator catalog",
                       description="List every estimator: name, whether it is unbiased, its formula.")
    p.add_argument("--json", action="store_true", help="print the catalog as JSON")
    p.add_argument("--no-color", action="store_true", help="plain text output")
    p.set_defaults(func=run_estimators)


def reproduce_command(args, result) -> str:
    """The ``pgverify mc`` command line that reproduces ``result`` exactly: the problem as it was named (FILE,
    --example or --gym, with --horizon/--gamma/--theta overrides), the estimator as it was given, the settings."""
    import shlex

    spec = args.estimator if getattr(args, "estimator", None) else result.estimator.name
    cmd = (f"pgverify mc {problem_command(args)} --estimator {shlex.quote(spec)} --episodes {result.episodes} "
           f"--seed {result.seed} --alpha {result.alpha!r}")
    return cmd + ("" if result.covariance == "auto" else f" --covariance {result.covariance}")


def _user_estimator_check(args, problem: Problem):
    """``gradcheck.check_estimator`` for --estimator SPEC, its reproduce hint the ``pgverify mc`` command line."""
    import dataclasses

    from verify.cli._sandbox import SandboxedEstimator
    from verify.checks.gradcheck import check_estimator

    if getattr(args, "sampler", "pgverify") != "pgverify":
        raise UsageError(f"--sampler {args.sampler} works with catalog estimators only, not --estimator "
                         f"{args.estimator}")
    # The user's code runs in a worker process (verify/cli/_sandbox.py): its prints, exits, threads, timeouts
    # and monkeypatches stay there.
    with SandboxedEstimator(args.estimator, getattr(args, "estimator_timeout", None)) as fn:
        check = check_estimator(fn, problem, episodes=args.episodes, seed=args.seed, alpha=args.alpha,
                                covariance=args.covariance, name=args.estimator, **resolution_kwargs(args))
    return dataclasses.replace(check, reproduce=reproduce_command(args, check.mc))


def run_mc(args) -> int:
    from verify.checks.mc import run_mc
    from verify.app.render import format_mc

    problem = load_problem_from_args(args)
    if getattr(problem, "kind", None) == "lq":
        from verify.cli.lq import run_lq_mc as run_lq

        return run_lq(problem, args)
    if ":" in args.estimator:               # a user's function; catalog names never contain ':'
        check = _user_estimator_check(args, problem)
        if args.json:
            print_json({**check.to_json(), "command": check.reproduce})
        else:
            print_folded(check.format())
        return _exit_code(check.verdict)
    sampler = None
    if args.sampler == "gymnasium":
        if args.gym is None:
            raise UsageError("--sampler gymnasium needs --gym ENV_ID (it steps the gymnasium environment itself)")
        from verify.frameworks.gym import parse_gym_kwargs
        from verify.frameworks.gym_sampler import gymnasium_sampler

        sampler = gymnasium_sampler(args.gym, parse_gym_kwargs(args.gym_kwargs))
    if sampler is None:
        from verify.numerics.sampler import iter_episode_chunks

        sampler = iter_episode_chunks        # what run_mc samples with by default: the same episodes
    with sampling_progress(f"{problem.mdp.name}, {args.estimator}", args.episodes,
                           color=not args.no_color) as track:
        result = run_mc(problem, args.estimator, episodes=args.episodes, seed=args.seed, alpha=args.alpha,
                        covariance=args.covariance, sampler=track(sampler), **resolution_kwargs(args))
    command = reproduce_command(args, result)
    if args.json:
        print_json({**result.to_json(), "command": command})
    else:
        print_folded(format_mc(result, command))
    return _exit_code(result.verdict)


def _exit_code(verdict: str) -> int:
    """0 consistent, 3 undecided, 1 biased or inconsistent."""
    return {"consistent": EXIT_OK, "undecided": EXIT_UNDECIDED}.get(verdict, EXIT_FAIL)


def run_check(args) -> int:
    from verify.checks.mc import run_check
    from verify.app.render import render_check

    problem = load_problem_from_args(args)
    if getattr(problem, "kind", None) == "lq":
        from verify.cli.lq import run_lq_check

        return run_lq_check(problem, args)
    if args.estimator is not None:
        return _check_one_estimator(args, problem)
    check = run_check(problem, episodes=args.episodes, seed=args.seed, alpha=args.alpha, covariance=args.covariance,
                      **resolution_kwargs(args))
    if args.json:
        print_json(check.to_json())
    else:
        render_check(check, lambda r: reproduce_command(args, r), color=not args.no_color)
    return EXIT_OK if check.passed else EXIT_FAIL


def _check_one_estimator(args, problem: Problem) -> int:
    """``check --estimator``: the exact-gradient cross-check and that one estimator, no catalog table."""
    from verify.checks.crosscheck import exact_cross_check

    gradients = exact_cross_check(problem)
    check = _user_estimator_check(args, problem)
    passed = gradients.passed and check.passed
    if args.json:
        print_json({"problem": problem.mdp.name, "passed": passed, "gradients": gradients.to_json(),
                    "estimator": check.to_json()})
    else:
        print_folded(f"{problem.mdp.name}: J(theta) = {gradients.J:.10g}; {', '.join(gradients.methods)} agree "
                     f"within {gradients.max_abs_diff:.1e} (tol {gradients.tol:.0e}): "
                     f"{'ok' if gradients.passed else 'FAILED'}\n{check.format()}")
    return EXIT_FAIL if not gradients.passed else _exit_code(check.verdict)


def run_estimators(args) -> int:
    from verify.checks.estimators import ESTIMATORS

    if args.json:
        print_json([{"name": e.name, "unbiased": e.unbiased, "batch_dependent": e.batch_dependent,
                      "latex": e.latex, "unicode": e.unicode, "description": e.description} for e in ESTIMATORS])
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table(title="REINFORCE estimators: per-episode g(τ); the Monte Carlo estimate is the batch mean")
    for col in ("name", "unbiased", "g(τ)", "description"):
        table.add_column(col, overflow="fold")
    for e in ESTIMATORS:
        table.add_row(e.name, "yes" if e.unbiased else "no", e.unicode, e.description)
    # the terminal's width; columns fold; text as written (a formula's "[...]" is no markup, ":x:" no emoji code)
    Console(no_color=args.no_color, highlight=False, markup=False, emoji=False).print(table)
    return EXIT_OK


def _add_mc_arguments(p: argparse.ArgumentParser) -> None:
    from verify.cli._defaults import COVARIANCES, DEFAULT_ALPHA, DEFAULT_EPISODES   # --help loads no numpy

    p.add_argument("--episodes", type=positive_int, default=DEFAULT_EPISODES, metavar="N",
                   help=f"number of sampled episodes (default {DEFAULT_EPISODES}: a bias of 0.1 per-episode "
                        "standard deviations is caught with probability >= 0.999)")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the episode sampler (default 0)")
    p.add_argument("--alpha", type=probability, default=DEFAULT_ALPHA, metavar="A",
                   help=f"level of the consistency test (default {DEFAULT_ALPHA:g})")
    p.add_argument("--covariance", choices=COVARIANCES, default="auto",
                   help="covariance of the test: the exact one by trajectory enumeration (chi^2), the sample one "
                        "(max |z| with Bonferroni), or auto = exact when the problem can be enumerated (default)")
    add_resolution_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--estimator-timeout", type=seconds_arg, default=None, metavar="SECONDS",
                   help="time limit for importing your --estimator function and for each call of it; it runs in "
                        "a worker process, killed when the limit passes (exit 2). Default: no limit")
