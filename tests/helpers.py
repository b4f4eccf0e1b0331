"""Shared test fixtures that are plain functions (importable: pytest puts tests/ on sys.path)."""
import numpy as np

from verify.mdp import TabularMDP
from verify.policy import LinearSoftmax, TabularSoftmax


def random_problem(seed: int, S: int = 3, A: int = 2, H: int = 3, gamma: float = 0.9, linear: bool = False):
    """A dense random MDP (Dirichlet rows, last state terminal) with a random tabular or linear softmax policy."""
    rng = np.random.default_rng(seed)
    mdp = TabularMDP(initial=rng.dirichlet(np.ones(S)), transitions=rng.dirichlet(np.ones(S), size=(S, A)),
                     rewards=rng.normal(size=(S, A, S)), terminal=[S - 1], gamma=gamma, horizon=H)
    if linear:
        return mdp, LinearSoftmax(rng.normal(size=(S, A, 2)), rng.normal(size=2))
    return mdp, TabularSoftmax(rng.normal(size=(S, A)))
