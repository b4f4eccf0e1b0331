"""The gallery's MDP: small enough that every verdict is exact (3 trajectories), with what the pitfalls need.

State 0 (start): "stop" ends the episode with reward 1, "go" moves to state 1 with reward 0. State 1: "stop" ends
with reward 2, "go" stays with reward 0.5 (then the horizon, 2 actions, cuts it). Episodes last 1 or 2 steps (a
mean over a padded batch's timesteps depends on that), gamma = 0.9 < 1 (a restarted discount changes the
weights), and the three trajectories give 3^B batches of B episodes, so batch-level losses are exact too.
"""
from verify.model.mdp import TabularMDP


def two_step() -> TabularMDP:
    return TabularMDP(
        initial=[1, 0, 0],
        transitions=[[[0, 0, 1], [0, 1, 0]], [[0, 0, 1], [0, 1, 0]], [[0, 0, 1], [0, 0, 1]]],
        rewards=[[1.0, 0.0], [2.0, 0.5], [0.0, 0.0]],
        terminal=[2], gamma=0.9, horizon=2, states=["start", "middle", "end"], actions=["stop", "go"],
        name="two_step")


def fixed_length(gamma: float = 1.0, horizon: int = 3) -> TabularMDP:
    """Two states, no terminal state: every episode lasts exactly ``horizon`` steps (a padded batch is never
    padded). Action a moves to state a; rewards r[s][a] = [[1, 0], [0, 2]]."""
    return TabularMDP(initial=[1, 0], transitions=[[[1, 0], [0, 1]], [[1, 0], [0, 1]]],
                      rewards=[[1.0, 0.0], [0.0, 2.0]], gamma=gamma, horizon=horizon, states=["a", "b"],
                      actions=["to_a", "to_b"], name=f"fixed_length(gamma={gamma:g}, horizon={horizon})")


def corridor() -> TabularMDP:
    """Four live states in a row and a terminal state: "stop" ends the episode with a reward that depends on where
    (0.2, 0, 0.5, 0.3), "go" moves one state right with reward 0.1 (from the last state it stays). Horizon 4
    (episodes are cut: truncation), gamma = 0.9. Four visited states give the rollout checks four independent
    directions (a pitfall's mean can be told from an entropy term), and a rollout of T steps has 2^T outcomes."""
    return TabularMDP(
        initial=[1, 0, 0, 0, 0],
        transitions=[[[0, 0, 0, 0, 1], [0, 1, 0, 0, 0]], [[0, 0, 0, 0, 1], [0, 0, 1, 0, 0]],
                     [[0, 0, 0, 0, 1], [0, 0, 0, 1, 0]], [[0, 0, 0, 0, 1], [0, 0, 0, 1, 0]],
                     [[0, 0, 0, 0, 1], [0, 0, 0, 0, 1]]],
        rewards=[[0.2, 0.1], [0.0, 0.1], [0.5, 0.1], [0.3, 0.1], [0.0, 0.0]],
        terminal=[4], gamma=0.9, horizon=4, states=["s0", "s1", "s2", "s3", "end"], actions=["stop", "go"],
        name="corridor")
