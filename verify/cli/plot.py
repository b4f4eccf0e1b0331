"""``pgverify plot``: figures for one problem."""
from __future__ import annotations

from verify.cli._args import (
    EXIT_OK,
    add_problem_arguments,
    load_problem_from_args,
    positive_int,
    seed_arg,
)


def register(sub) -> None:
    p = sub.add_parser("plot", help="figures for your own MDP: MC convergence and variance comparison",
                       description="Sample the episodes once, run every estimator of the catalog on them and "
                                   "write into DIR: convergence-NAME.png (does each running mean converge to the "
                                   "exact grad J? the relative error of the whole vector and the components of "
                                   "largest |grad J| with 95% bands) and variance-NAME.png (per-episode variance "
                                   "of the unbiased estimators). NAME is the problem's name with anything but "
                                   "letters, digits, '.' and '-' as '_'. Needs matplotlib: "
                                   "pip install 'pgverify[plot]'.")
    add_problem_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the PNG files (created if missing)")
    p.add_argument("--episodes", type=positive_int, default=5000, metavar="N",
                   help="episodes to sample (default 5000)")
    p.add_argument("--seed", type=seed_arg, default=0, help="sampling seed (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite existing PNG files")
    p.set_defaults(func=run_plot)


def run_plot(args) -> int:
    from verify.app.plots import write_problem_plots

    problem = load_problem_from_args(args)
    for path in write_problem_plots(problem, args.out, episodes=args.episodes, seed=args.seed, force=args.force):
        print(f"wrote {path}")
    return EXIT_OK
