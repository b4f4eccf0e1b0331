"""``pgverify gradient``: exact J and grad J of a problem, labelled: the horizon, gamma, the method, and grad J by
state and action (the largest entries with a count when the table would be long)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from verify._lazy import LazyModule
from verify.cli._args import (
    EXIT_OK,
    add_problem_arguments,
    load_problem_from_args,
    print_json,
)
from verify.cli._defaults import METHODS

if TYPE_CHECKING:                  # rich loads only when a table is printed, numpy when a problem is (start-up time)
    import numpy as np
    from rich.console import Console

    from verify.model.problem import Problem
    from verify.numerics.exact import GradientResult
else:
    np = LazyModule("numpy")

MAX_ROWS = 24     # a longer grad J prints its TOP_ENTRIES largest entries instead (--json prints all)
TOP_ENTRIES = 20


def register(sub) -> None:
    p = sub.add_parser("gradient", help="exact J and grad J of an MDP file",
                       description="Compute J(theta) and grad J(theta) exactly for the problem's policy and print "
                                   "them with the horizon, gamma and method used; grad J by state and action.")
    add_problem_arguments(p)
    p.add_argument("--method", choices=METHODS, default="auto",
                   help="enumerate trajectories, dynamic programming (finite horizon), linear solve (horizon "
                        "null); auto = dp or solve (default)")
    p.add_argument("--json", action="store_true", help='print {"J", "grad", "method"} as one JSON object')
    p.set_defaults(func=run_gradient)


def run_gradient(args) -> int:
    from verify.numerics.exact import gradient

    problem = load_problem_from_args(args)
    if getattr(problem, "kind", None) == "lq":
        from verify.cli.lq import run_lq_gradient

        return run_lq_gradient(problem, args)
    res = gradient(problem.mdp, problem.policy, args.method)
    if args.json:
        print_json(res.to_json())
        return EXIT_OK
    from rich.console import Console      # imported here: rich costs start-up that --json and --help never need

    # names are data: "[red]x" or ":smile:" in a state's name is printed as written (no markup, no emoji codes)
    print_gradient(problem, res, Console(highlight=False, soft_wrap=False, markup=False, emoji=False))
    return EXIT_OK


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def gradient_entries(problem: Problem, grad: np.ndarray) -> list[tuple[str, str, float]]:
    """(row label, column label, value) for every entry of grad J: state and action names for a tabular policy,
    ``theta[k]`` for a linear one.

    >>> from verify.model.builtin import load_example
    >>> chain = load_example("chain")
    >>> gradient_entries(chain, np.arange(8.0).reshape(4, 2))[:3]
    [('s0', 'left', 0.0), ('s0', 'right', 1.0), ('s1', 'left', 2.0)]
    """
    mdp = problem.mdp
    if grad.shape == (mdp.n_states, mdp.n_actions):
        return [(str(mdp.states[s]), str(mdp.actions[a]), float(grad[s, a]))
                for s in range(mdp.n_states) for a in range(mdp.n_actions)]
    return [(f"theta[{', '.join(map(str, idx))}]", "", float(grad[idx])) for idx in np.ndindex(grad.shape)]


def print_gradient(problem: Problem, res: GradientResult, console: Console) -> None:
    """J with the horizon, gamma and method, then grad J as a states x actions table (a column for a linear
    policy's theta[k]); beyond MAX_ROWS rows, the TOP_ENTRIES largest |entries| with how many there are."""
    from rich.table import Table

    mdp, policy, grad = problem.mdp, problem.policy, np.asarray(res.grad)
    horizon = "null (until termination)" if mdp.horizon is None else str(mdp.horizon)
    console.print(f"{mdp.name}: {_plural(mdp.n_states, 'state')}, {_plural(mdp.n_actions, 'action')}, "
                  f"horizon {horizon}, gamma {mdp.gamma:g}", markup=False)
    console.print(f"policy {policy.kind}, theta of shape {list(grad.shape)}", markup=False)
    console.print(f"J(theta) = {res.J:.12g}   (method: {res.method})", markup=False)
    tabular = grad.shape == (mdp.n_states, mdp.n_actions)
    entries = gradient_entries(problem, grad)
    rows = mdp.n_states if tabular else len(entries)
    if rows <= MAX_ROWS:
        if tabular:
            console.print("grad J(theta), by state (rows) and action (columns):", markup=False)
            table = Table("state", *map(str, mdp.actions))
            for s in range(mdp.n_states):
                table.add_row(str(mdp.states[s]), *(f"{v:.8g}" for v in grad[s]))
        else:
            console.print("grad J(theta), by parameter:", markup=False)
            table = Table("parameter", "dJ/dtheta")
            for label, _, value in entries:
                table.add_row(label, f"{value:.8g}")
    else:
        top = sorted(entries, key=lambda e: -abs(e[2]))[:TOP_ENTRIES]
        nonzero = sum(v != 0 for _, _, v in entries)
        console.print(f"grad J(theta): the {len(top)} largest of {len(entries)} entries by |value| "
                      f"({nonzero} non-zero), --json for all:", markup=False)
        table = Table(*(("state", "action") if tabular else ("parameter",)), "dJ/dtheta")
        for row, col, value in top:
            table.add_row(*((row, col) if tabular else (row,)), f"{value:.8g}")
    numeric = table.columns[1:] if rows <= MAX_ROWS else table.columns[-1:]
    for column in numeric:
        column.justify = "right"
    console.print(table)
