"""The ``pgverify`` command line: parses arguments and dispatches; all work happens in the library.

Exit codes: 0 every check passed, 1 a check failed (or, for ``fuzz``, no counterexample), 2 bad usage or
bad input (one line on stderr, never a traceback).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from verify.errors import InvalidMDPError, PGVerifyError, UsageError
from verify.exact import METHODS, gradient
from verify.problem import Problem, load_problem, save_problem

__all__ = ["main"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line, exit 2
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer seed") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed must be non-negative, got {value}")
    return value


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=1, allow_nan=False))


def _writable_output(path: str, force: bool) -> Path:
    """The output path, refusing to overwrite the user's file unless ``force``."""
    out = Path(path)
    if out.exists() and not force:
        raise UsageError(f"{out} exists; pass --force to overwrite it")
    if not out.parent.exists():
        raise UsageError(f"directory {out.parent} does not exist")
    return out


# --- the problem: an MDP file or a gymnasium environment (shared by gradient, mc, check) ---------------------------

_NOT_GIVEN = object()


def _horizon(text: str) -> int | None:
    if text.strip().lower() in ("null", "none"):
        return None
    return _positive_int(text)


def _gamma(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"gamma must lie in [0, 1], got {value}")
    return value


def _add_gym_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gym-kwargs", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="keyword arguments for gymnasium.make; values parse as JSON where they can "
                             "(is_slippery=false, map_name=8x8, success_rate=0.5)")
    parser.add_argument("--horizon", type=_horizon, default=_NOT_GIVEN, metavar="H|null",
                        help="maximum number of actions, or null (until termination); default for --gym: the "
                             "environment's time limit (max_episode_steps); for FILE it overrides the file's")
    parser.add_argument("--gamma", type=_gamma, default=None, metavar="G",
                        help="discount in [0, 1]; default for --gym 1 (gymnasium's return is undiscounted); for "
                             "FILE it overrides the file's")
    parser.add_argument("--theta", metavar="FILE.npy|FILE.json",
                        help="policy parameters: a .npy array or JSON list shaped like theta, or a JSON policy "
                             "object; default: the file's policy, or uniform (theta = 0) for --gym")


def _add_problem_arguments(parser: argparse.ArgumentParser) -> None:
    """FILE, or --gym ENV_ID with --gym-kwargs; --horizon, --gamma and --theta apply to either."""
    parser.add_argument("file", nargs="?", metavar="FILE", help="MDP file (JSON, see README)")
    parser.add_argument("--gym", metavar="ENV_ID",
                        help="instead of FILE, import a gymnasium toy-text environment exactly (FrozenLake-v1, "
                             "CliffWalking-v1, Taxi-v4; needs pgverify[gym])")
    _add_gym_arguments(parser)


def _load_theta(path: str, problem: Problem):
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


def _gym_problem_from_args(env_id: str, args) -> Problem:
    from verify.gym import TIME_LIMIT, gym_problem, parse_gym_kwargs

    return gym_problem(env_id, parse_gym_kwargs(args.gym_kwargs),
                       horizon=TIME_LIMIT if args.horizon is _NOT_GIVEN else args.horizon,
                       gamma=1.0 if args.gamma is None else args.gamma)


def _load_problem_from_args(args) -> Problem:
    """The Problem named by ``_add_problem_arguments``: FILE or --gym, then --horizon/--gamma/--theta."""
    if (args.file is None) == (args.gym is None):
        raise UsageError("give either an MDP FILE or --gym ENV_ID" + (" (not both)" if args.file else ""))
    if args.gym is not None:
        problem = _gym_problem_from_args(args.gym, args)
    else:
        if args.gym_kwargs:
            raise UsageError("--gym-kwargs applies to --gym only")
        problem = load_problem(args.file)
        changes = {k: v for k, v in (("horizon", args.horizon), ("gamma", args.gamma))
                   if v is not _NOT_GIVEN and not (k == "gamma" and v is None)}
        if changes:
            problem = Problem(problem.mdp.replace(**changes), problem.policy)
    if args.theta:
        problem = Problem(problem.mdp, _load_theta(args.theta, problem))
    return problem


# --- gradient -----------------------------------------------------------------------------------------------------

def cmd_gradient(args) -> int:
    problem = _load_problem_from_args(args)
    res = gradient(problem.mdp, problem.policy, args.method)
    if args.json:
        _print_json(res.to_json())
        return EXIT_OK
    np.set_printoptions(precision=10, suppress=False, linewidth=110)
    print(f"{problem.mdp.name}: J(theta) = {res.J:.12g}   (method: {res.method})")
    print("grad J(theta) =")
    print(res.grad)
    return EXIT_OK


# --- report -------------------------------------------------------------------------------------------------------

def cmd_report(args) -> int:
    from verify.report import build_report_with_progress
    from verify.render import render_report

    to_stdout = args.json == "-"
    out = None if args.json in (None, "-") else _writable_output(args.json, args.force)
    if args.plots:
        from verify.plots import check_output_dir, require_matplotlib

        require_matplotlib()                               # fail before the long run, not after
        check_output_dir(args.plots, force=args.force)
    report = build_report_with_progress(args.seed, args.quick, show=sys.stderr.isatty() and not to_stdout)
    text = json.dumps(report.to_json(), indent=1, allow_nan=False)
    if to_stdout:
        print(text)
    else:
        if out is not None:
            out.write_text(text + "\n")
        render_report(report, color=not args.no_color)
    if args.plots:
        from verify.builtin import builtin_examples
        from verify.plots import write_report_plots
        from verify.report import report_episodes

        paths = write_report_plots(report, builtin_examples(), args.plots, episodes=report_episodes(args.quick),
                                   force=args.force)
        print(f"wrote {len(paths)} figures to {args.plots}", file=sys.stderr if to_stdout else sys.stdout)
    return EXIT_OK if report.passed else EXIT_FAIL


# --- plot ---------------------------------------------------------------------------------------------------------

def cmd_plot(args) -> int:
    from verify.plots import write_problem_plots

    problem = _load_problem_from_args(args)
    for path in write_problem_plots(problem, args.out, episodes=args.episodes, seed=args.seed, force=args.force):
        print(f"wrote {path}")
    return EXIT_OK


# --- latex --------------------------------------------------------------------------------------------------------

def cmd_latex(args) -> int:
    out = _writable_output(args.output, args.force)
    from derive.latex import render_document

    from verify.report import errata_for_latex

    out.write_text(render_document(errata=errata_for_latex()))
    print(f"wrote {out}")
    return EXIT_OK


# --- export-gym ---------------------------------------------------------------------------------------------------

def cmd_export_gym(args) -> int:
    out = _writable_output(args.output, args.force)
    problem = _gym_problem_from_args(args.env_id, args)
    if args.theta:
        problem = Problem(problem.mdp, _load_theta(args.theta, problem))
    save_problem(problem, out, force=args.force)
    print(f"wrote {out} ({problem.mdp.name}: {problem.mdp.n_states} states, {problem.mdp.n_actions} actions, "
          f"horizon {problem.mdp.horizon}, gamma {problem.mdp.gamma:g})")
    return EXIT_OK


# --- fuzz ---------------------------------------------------------------------------------------------------------

def cmd_fuzz(args) -> int:
    from verify import fuzz

    if args.list:
        width = max(len(name) for name in fuzz.CLAIMS)
        for claim in fuzz.CLAIMS.values():
            print(f"{claim.name:<{width}}  {claim.statement}")
            if claim.note:
                print(f"{'':<{width}}    ({claim.note})")
        return EXIT_OK
    if args.claim is None:
        raise UsageError("name the CLAIM to falsify; pgverify fuzz --list shows the claims")
    claim = fuzz.get_claim(args.claim)
    to_stdout = args.out == "-"
    # Refuse an existing file before spending the search budget.
    out = None if to_stdout else _writable_output(args.out or str(fuzz.default_output(claim)), args.force)
    with fuzz.scratch_hypothesis_storage():
        cx = fuzz.search(claim, examples=args.examples, seed=args.seed)
    if cx is None:
        print(f"claim {claim.name}: no counterexample in {args.examples} examples (seed {args.seed}). "
              "The claim survived this search; that is evidence, not a proof.")
        return EXIT_FAIL
    if to_stdout:
        print(fuzz.describe(cx), file=sys.stderr)
        _print_json(fuzz.counterexample_to_dict(cx))
    else:
        fuzz.write_counterexample(cx, out, force=args.force)
        print(fuzz.describe(cx))
        print(f"wrote {out}   (try: pgverify gradient {out})")
    return EXIT_OK


# --- mc, check, estimators ----------------------------------------------------------------------------------------

def _problem_command(args) -> str:
    """The problem part of the command line (FILE or --gym ... with overrides), shell-quoted, for replay lines."""
    import shlex

    parts = [args.file] if args.file is not None else ["--gym", args.gym]
    if args.gym_kwargs:
        parts += ["--gym-kwargs", *args.gym_kwargs]
    if args.horizon is not _NOT_GIVEN:
        parts += ["--horizon", "null" if args.horizon is None else str(args.horizon)]
    if args.gamma is not None:
        parts += ["--gamma", repr(args.gamma)]
    if args.theta:
        parts += ["--theta", args.theta]
    if getattr(args, "sampler", "pgverify") != "pgverify":
        parts += ["--sampler", args.sampler]
    return " ".join(shlex.quote(p) for p in parts)


def _user_estimator_check(args, problem: Problem):
    """``gradcheck.check_estimator`` for --estimator SPEC, its reproduce hint the ``pgverify mc`` command line."""
    import dataclasses

    from verify.gradcheck import check_estimator, load_estimator
    from verify.mc import reproduce_command

    if getattr(args, "sampler", "pgverify") != "pgverify":
        raise UsageError(f"--sampler {args.sampler} works with catalog estimators only, not --estimator "
                         f"{args.estimator}")
    fn = load_estimator(args.estimator)
    check = check_estimator(fn, problem, episodes=args.episodes, seed=args.seed, alpha=args.alpha,
                            covariance=args.covariance, name=args.estimator)
    return dataclasses.replace(check, reproduce=reproduce_command(_problem_command(args), check.mc, args.covariance))


def cmd_mc(args) -> int:
    from verify.mc import format_mc, reproduce_command, run_mc

    problem = _load_problem_from_args(args)
    if ":" in args.estimator:               # a user's function; catalog names never contain ':'
        check = _user_estimator_check(args, problem)
        if args.json:
            _print_json({**check.to_json(), "command": check.reproduce})
        else:
            print(check.format())
        return EXIT_OK if check.passed else EXIT_FAIL
    sampler = None
    if args.sampler == "gymnasium":
        if args.gym is None:
            raise UsageError("--sampler gymnasium needs --gym ENV_ID (it steps the gymnasium environment itself)")
        from verify.gym import gymnasium_sampler, parse_gym_kwargs

        sampler = gymnasium_sampler(args.gym, parse_gym_kwargs(args.gym_kwargs))
    result = run_mc(problem, args.estimator, episodes=args.episodes, seed=args.seed, alpha=args.alpha,
                    covariance=args.covariance, sampler=sampler)
    command = reproduce_command(_problem_command(args), result, args.covariance)
    if args.json:
        _print_json({**result.to_json(), "command": command})
    else:
        print(format_mc(result, command))
    return EXIT_OK if result.test.consistent else EXIT_FAIL


def cmd_check(args) -> int:
    from verify.mc import render_check, run_check

    problem = _load_problem_from_args(args)
    if args.estimator is not None:
        return _check_one_estimator(args, problem)
    check = run_check(problem, episodes=args.episodes, seed=args.seed, alpha=args.alpha, covariance=args.covariance)
    if args.json:
        _print_json(check.to_json())
    else:
        render_check(check, _problem_command(args), args.covariance, color=not args.no_color)
    return EXIT_OK if check.passed else EXIT_FAIL


def _check_one_estimator(args, problem: Problem) -> int:
    """``check --estimator``: the exact-gradient cross-check and that one estimator, no catalog table."""
    from verify.mc import exact_cross_check

    gradients = exact_cross_check(problem)
    check = _user_estimator_check(args, problem)
    passed = gradients.passed and check.passed
    if args.json:
        _print_json({"problem": problem.mdp.name, "passed": passed, "gradients": gradients.to_json(),
                     "estimator": check.to_json()})
    else:
        print(f"{problem.mdp.name}: J(theta) = {gradients.J:.10g}; {', '.join(gradients.methods)} agree within "
              f"{gradients.max_abs_diff:.1e} (tol {gradients.tol:.0e}): {'ok' if gradients.passed else 'FAILED'}")
        print(check.format())
    return EXIT_OK if passed else EXIT_FAIL


def cmd_estimators(args) -> int:
    from verify.estimators import ESTIMATORS

    if args.json:
        _print_json([{"name": e.name, "unbiased": e.unbiased, "batch_dependent": e.batch_dependent,
                      "latex": e.latex, "description": e.description} for e in ESTIMATORS])
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table(title="REINFORCE estimators: per-episode g(tau); the Monte Carlo estimate is the batch mean")
    for col in ("name", "unbiased", "formula (LaTeX)", "description"):
        table.add_column(col, overflow="fold")
    for e in ESTIMATORS:
        table.add_row(e.name, "yes" if e.unbiased else "no", e.latex, e.description)
    console = Console(no_color=args.no_color, highlight=False)
    console.width = max(console.width, 140)
    console.print(table)
    return EXIT_OK


def _add_mc_arguments(p: argparse.ArgumentParser) -> None:
    from verify.mc import COVARIANCES, DEFAULT_ALPHA, DEFAULT_EPISODES

    p.add_argument("--episodes", type=_positive_int, default=DEFAULT_EPISODES, metavar="N",
                   help=f"number of sampled episodes (default {DEFAULT_EPISODES}: a bias of 0.1 per-episode "
                        "standard deviations is caught with probability >= 0.999)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the episode sampler (default 0)")
    p.add_argument("--alpha", type=_probability, default=DEFAULT_ALPHA, metavar="A",
                   help=f"level of the consistency test (default {DEFAULT_ALPHA:g})")
    p.add_argument("--covariance", choices=COVARIANCES, default="auto",
                   help="covariance of the test: the exact one by trajectory enumeration (chi^2), the sample one "
                        "(max |z| with Bonferroni), or auto = exact when the problem can be enumerated (default)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pgverify",
        description="Check the policy-gradient (REINFORCE) derivation symbolically and numerically: exact "
                    "gradients of tabular MDPs, Monte Carlo estimators against them, and the derivation's steps.",
        epilog="Exit codes: 0 all checks passed, 1 a check failed, 2 bad usage or invalid input. "
               "See README.md for the MDP file format.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("report", help="run the whole verification on the built-in examples",
                       description="Run every check (derivation, exact gradients, Monte Carlo estimators) on the "
                                   "built-in example MDPs and print a report. Exit 0 when every check passes.")
    p.add_argument("--seed", type=_seed, default=0, help="seed for all sampling (default 0)")
    p.add_argument("--quick", action="store_true", help="fewer episodes and smaller grounding sizes")
    p.add_argument("--json", metavar="FILE|-", help="also write the report as JSON to FILE, or only JSON to stdout with -")
    p.add_argument("--plots", metavar="DIR", help="also write PNG figures (MC convergence per example, variance "
                                                  "comparison) into DIR; needs the 'plot' extra")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file or plots")
    p.add_argument("--no-color", action="store_true", help="plain text output")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("gradient", help="exact J and grad J of an MDP file",
                       description="Compute J(theta) and grad J(theta) exactly for the MDP file's policy.")
    _add_problem_arguments(p)
    p.add_argument("--method", choices=METHODS, default="auto",
                   help="enumerate trajectories, dynamic programming (finite horizon), linear solve (horizon "
                        "null); auto = dp or solve (default)")
    p.add_argument("--json", action="store_true", help='print {"J", "grad", "method"} as one JSON object')
    p.set_defaults(func=cmd_gradient)

    p = sub.add_parser("latex", help="export the derivation as a standalone LaTeX document",
                       description="Write every derivation step (numbered as in the seed), its rule and side "
                                   "conditions, the added derivations and the errata as a LaTeX document.")
    p.add_argument("-o", "--output", required=True, help="the .tex file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=cmd_latex)

    p = sub.add_parser("export-gym", help="write a gymnasium toy-text environment as an MDP file",
                       description="Import a gymnasium toy-text environment exactly (env.unwrapped.P, its initial "
                                   "distribution and terminal states) and write it as an MDP file (needs "
                                   "pgverify[gym]).")
    p.add_argument("env_id", metavar="ENV_ID", help="e.g. FrozenLake-v1, CliffWalking-v1, Taxi-v4")
    _add_gym_arguments(p)
    p.add_argument("-o", "--output", required=True, help="the .json MDP file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=cmd_export_gym)

    p = sub.add_parser("fuzz", help="search for a small MDP that falsifies a claim about the estimators",
                       description="Search with Hypothesis for an MDP and policy on which CLAIM fails (decided "
                                   "exactly from the estimators' enumerated moments), shrink it, print it with "
                                   "the evidence and write it as an MDP file. Exit 0 when a counterexample is "
                                   "found and written, 1 when none turns up within --examples, 2 on bad usage.")
    p.add_argument("claim", metavar="CLAIM", nargs="?", help="the claim to falsify (see --list)")
    p.add_argument("--list", action="store_true", help="list the claims and exit")
    p.add_argument("--examples", type=_positive_int, default=1000,
                   help="search budget: how many problems Hypothesis may try (default 1000)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the search; the same seed gives the same "
                                                         "counterexample (default 0)")
    p.add_argument("-o", "--out", metavar="FILE|-",
                   help="where to write the counterexample (default counterexample-CLAIM.json in the current "
                        "directory, ':' in CLAIM written as '-'); - prints the MDP file to stdout and the "
                        "description to stderr")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.set_defaults(func=cmd_fuzz)

    p = sub.add_parser("mc", help="Monte Carlo estimate of grad J by one estimator, tested against the exact one",
                       description="Sample episodes, average one estimator's per-episode gradient estimates and "
                                   "test the mean against the exact grad J (chi^2 with the exact covariance, or max "
                                   "|z| with Bonferroni on the sample variances). Exit 0 consistent, 1 inconsistent, 2 bad input.")
    _add_problem_arguments(p)
    p.add_argument("--estimator", required=True, metavar="NAME|MODULE:FUNCTION",
                   help="catalog name (see pgverify estimators), or your own estimator as package.module:function "
                        "or path/to/file.py:function (the current directory is importable; contract: README, "
                        "'Check your own estimator'); yours also fails when enumeration proves a bias")
    _add_mc_arguments(p)
    p.add_argument("--sampler", choices=("pgverify", "gymnasium"), default="pgverify",
                   help="who samples the episodes: pgverify's vectorised sampler of the MDP (default), or, with "
                        "--gym, gymnasium's own env.reset/env.step loop (an independent check of the import)")
    p.set_defaults(func=cmd_mc)

    p = sub.add_parser("check", help="exact gradients cross-checked, then every estimator on one MDP",
                       description="Compare the exact gradient methods with finite differences, then run every "
                                   "estimator of the catalog on one sample. Exit 0 when the methods agree, every "
                                   "unbiased estimator is consistent and every pitfall with a detectable exact "
                                   "bias is caught.")
    _add_problem_arguments(p)
    _add_mc_arguments(p)
    p.add_argument("--estimator", metavar="MODULE:FUNCTION",
                   help="check only this estimator instead of the catalog: package.module:function, "
                        "path/to/file.py:function or a catalog name; exit 0 when the exact gradients agree and it "
                        "passes (consistent, and no bias proved by enumeration)")
    p.add_argument("--no-color", action="store_true", help="plain text output")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("estimators", help="list the estimator catalog",
                       description="List every estimator: name, whether it is unbiased, its formula.")
    p.add_argument("--json", action="store_true", help="print the catalog as JSON")
    p.add_argument("--no-color", action="store_true", help="plain text output")
    p.set_defaults(func=cmd_estimators)

    p = sub.add_parser("plot", help="figures for your own MDP: MC convergence and variance comparison",
                       description="Write convergence-NAME.png (running mean of every estimator with a 95%% band "
                                   "against the exact gradient) and variance-NAME.png (per-episode variance of the "
                                   "unbiased estimators) into DIR. Needs the 'plot' extra (matplotlib).")
    _add_problem_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the PNG files (created if missing)")
    p.add_argument("--episodes", type=_positive_int, default=5000, help="episodes to sample (default 5000)")
    p.add_argument("--seed", type=_seed, default=0, help="sampling seed (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite existing PNG files")
    p.set_defaults(func=cmd_plot)

    # further subcommands register here
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except PGVerifyError as exc:
        print(f"pgverify {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `pgverify report | head`
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
