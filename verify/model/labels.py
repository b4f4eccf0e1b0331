"""Readable names of a problem's parameters: theta[s, a] with the MDP's state and action names (tabular
policies), theta[k] otherwise. The one place messages, reports and JSON get a component's name from."""
from __future__ import annotations

from verify.model.problem import Problem

__all__ = ["component_name"]


def component_name(problem: Problem, index: tuple[int, ...]) -> str:
    """theta[s, a] with the MDP's state and action names (tabular), or theta[k] (linear).

    >>> from verify.builtin import builtin_examples
    >>> component_name(builtin_examples()["chain"], (1, 1))
    "theta[1, 1] (state 's1', action 'right')"
    """
    label = f"theta[{', '.join(str(i) for i in index)}]"
    if problem.policy.kind == "tabular_softmax" and len(index) == 2:
        s, a = index
        label += f" (state {problem.mdp.states[s]!r}, action {problem.mdp.actions[a]!r})"
    return label
