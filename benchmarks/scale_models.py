"""Large sparse MDPs for the scale benchmarks (imported by bench_scale.py; not a test helper).

``gridworld(S)``: a slippery gridworld of about S cells, 4 actions (left, down, right, up); the intended move
with probability 0.8, each perpendicular one 0.1 (walls keep the agent in place, so a pair has at most 3
successors and at most 4 distinct next states per state and action); 2 % of the cells are holes (terminal,
reward -1), the far corner is the goal (terminal, reward +1), every other step costs -0.01; the start is uniform
over the first row. Built directly in the sparse form ``{"sparse": rows}`` as a numeric array, as a large MDP
file would be.
"""
from __future__ import annotations

import numpy as np

from verify.mdp import TabularMDP

MOVES = ((0, -1), (1, 0), (0, 1), (-1, 0))      # left, down, right, up (gymnasium's FrozenLake order)


def gridworld_rows(S: int, seed: int = 0):
    """(transition rows [nnz, 4], reward rows [nnz, 4], terminal mask [S], initial [S], width) of ``gridworld``."""
    width = max(2, int(round(np.sqrt(S))))
    height = max(2, S // width)
    S = width * height
    rng = np.random.default_rng(seed)
    cell = np.arange(S)
    row, col = np.divmod(cell, width)
    holes = rng.random(S) < 0.02
    holes[:width] = False                       # the start row is safe
    goal = np.zeros(S, dtype=bool)
    goal[S - 1] = True
    holes[S - 1] = False
    terminal = holes | goal
    blocks = []
    for a in range(4):
        for b, p in (((a - 1) % 4, 0.1), (a, 0.8), ((a + 1) % 4, 0.1)):
            nr = np.clip(row + MOVES[b][0], 0, height - 1)
            nc = np.clip(col + MOVES[b][1], 0, width - 1)
            blocks.append(np.stack([cell, np.full(S, a), nr * width + nc, np.full(S, p)], axis=1))
    rows = np.concatenate(blocks).astype(float)
    # Moves that end in the same cell (walls) are merged: one row per (s, a, s').
    key = (rows[:, 0] * 4 + rows[:, 1]) * S + rows[:, 2]
    uniq, inverse = np.unique(key, return_inverse=True)
    merged = np.zeros((uniq.size, 4))
    merged[:, 3] = np.bincount(inverse, weights=rows[:, 3])
    merged[:, 0], rest = np.divmod(uniq, 4 * S)
    merged[:, 1], merged[:, 2] = np.divmod(rest, S)
    nxt = merged[:, 2].astype(int)
    reward = np.where(goal[nxt], 1.0, np.where(holes[nxt], -1.0, -0.01))
    rewards = np.concatenate([merged[:, :3], reward[:, None]], axis=1)
    initial = np.zeros(S)
    initial[:width] = 1.0 / width
    return merged, rewards, terminal, initial, S


def gridworld(S: int, horizon: int | None = 200, gamma: float = 1.0, seed: int = 0) -> TabularMDP:
    """The slippery gridworld with about S states as a TabularMDP built from its sparse rows."""
    trans, rew, terminal, initial, S = gridworld_rows(S, seed)
    return TabularMDP(initial=initial, transitions={"sparse": trans}, rewards={"sparse": rew}, terminal=terminal,
                      gamma=gamma, horizon=horizon, states=S, actions=("left", "down", "right", "up"),
                      name=f"gridworld{S}")
