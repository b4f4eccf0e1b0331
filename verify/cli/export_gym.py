"""``pgverify export-gym``: a gymnasium toy-text environment written as an MDP file."""
from __future__ import annotations

from verify.cli._args import (
    EXIT_OK,
    add_gym_arguments,
    gym_problem_from_args,
    load_theta,
    writable_output,
)


def register(sub) -> None:
    p = sub.add_parser("export-gym", help="write a gymnasium toy-text environment as an MDP file",
                       description="Import a gymnasium toy-text environment exactly (env.unwrapped.P, its initial "
                                   "distribution and terminal states) and write it as an MDP file (needs "
                                   "pgverify[gym]).")
    p.add_argument("env_id", metavar="ENV_ID", help="e.g. FrozenLake-v1, CliffWalking-v1, Taxi-v4")
    add_gym_arguments(p, with_file=False)
    p.add_argument("-o", "--output", required=True, help="the .json MDP file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=run_export_gym)


def run_export_gym(args) -> int:
    from verify.model.mdp import DENSE_FILE_MAX_ENTRIES     # here, not at the top: `pgverify --help` loads no numpy
    from verify.model.problem import Problem, save_problem

    out = writable_output(args.output, args.force)
    problem = gym_problem_from_args(args.env_id, args)
    if args.theta:
        problem = Problem(problem.mdp, load_theta(args.theta, problem))
    save_problem(problem, out, force=args.force)
    mdp = problem.mdp
    form = ("dense arrays" if mdp.is_dense and mdp.n_states ** 2 * mdp.n_actions <= DENSE_FILE_MAX_ENTRIES
            else f"sparse, {mdp.successors.nnz} transition entries")
    print(f"wrote {out} ({mdp.name}: {mdp.n_states} states, {mdp.n_actions} actions, horizon {mdp.horizon}, "
          f"gamma {mdp.gamma:g}; {form})")
    return EXIT_OK
