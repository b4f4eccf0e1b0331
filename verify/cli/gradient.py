"""``pgverify gradient``: exact J and grad J of a problem."""
from __future__ import annotations

import numpy as np

from verify.cli._args import (
    EXIT_OK,
    add_problem_arguments,
    load_problem_from_args,
    print_json,
)
from verify.exact import METHODS, gradient


def register(sub) -> None:
    p = sub.add_parser("gradient", help="exact J and grad J of an MDP file",
                       description="Compute J(theta) and grad J(theta) exactly for the MDP file's policy.")
    add_problem_arguments(p)
    p.add_argument("--method", choices=METHODS, default="auto",
                   help="enumerate trajectories, dynamic programming (finite horizon), linear solve (horizon "
                        "null); auto = dp or solve (default)")
    p.add_argument("--json", action="store_true", help='print {"J", "grad", "method"} as one JSON object')
    p.set_defaults(func=run_gradient)


def run_gradient(args) -> int:
    problem = load_problem_from_args(args)
    res = gradient(problem.mdp, problem.policy, args.method)
    if args.json:
        print_json(res.to_json())
        return EXIT_OK
    np.set_printoptions(precision=10, suppress=False, linewidth=110)
    print(f"{problem.mdp.name}: J(theta) = {res.J:.12g}   (method: {res.method})")
    print("grad J(theta) =")
    print(res.grad)
    return EXIT_OK
