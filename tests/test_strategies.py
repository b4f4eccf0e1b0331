"""The public strategies: every edge case is generated (shown with ``find``), every output is valid, and bad
arguments raise ``InvalidArgument`` (one table)."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from verify.mdp import TabularMDP
from verify.policy import LinearSoftmax, TabularSoftmax
from verify.problem import Problem, problem_from_dict, problem_to_dict
from verify.strategies import mdps, policies, problems, thetas

# find() stops at the first example satisfying the condition and shrinks it (the explain phase only costs time).
# Showing that an edge case is *generated* needs no shrinking, so REACH skips it; derandomized, both are
# deterministic.
FIND = settings(database=None, max_examples=2000, phases=[Phase.generate, Phase.shrink], derandomize=True,
                suppress_health_check=list(HealthCheck))
REACH = settings(FIND, phases=[Phase.generate])
BANDIT = TabularMDP(initial=[1], transitions=[[[1.0], [1.0]]], rewards=[[1.0, 0.0]], horizon=1)


def reachable(mdp: TabularMDP) -> np.ndarray:
    """States reachable from rho0 with positive probability (every softmax action has positive probability)."""
    adj = (mdp.transitions > 0).any(axis=1) & ~mdp.terminal[:, None]
    seen = mdp.initial > 0
    for _ in range(mdp.n_states):
        seen = seen | adj[seen].any(axis=0)
    return seen


def one_hot_rows(mdp: TabularMDP) -> bool:
    rows = mdp.transitions[~mdp.terminal]
    return bool(np.all(np.sort(rows, axis=-1)[..., -1] == 1.0))


EDGE_CASES = {
    "deterministic transitions, S >= 2": (mdps(), lambda m: m.n_states >= 2 and one_hot_rows(m)),
    "stochastic transitions": (mdps(), lambda m: not one_hot_rows(m)),
    "all-zero rewards, S >= 2, A >= 2": (
        mdps(), lambda m: m.n_states >= 2 and m.n_actions >= 2 and not m.rewards.any()),
    "r[s, a, s'] depends on s'": (mdps(), lambda m: np.ptp(m.rewards, axis=2).any()),
    "terminal initial state": (mdps(), lambda m: bool((m.initial[m.terminal] > 0).any())),
    "terminal and non-terminal initial states": (
        mdps(), lambda m: bool((m.initial[m.terminal] > 0).any() and (m.initial[~m.terminal] > 0).any())),
    "gamma = 0": (mdps(), lambda m: m.gamma == 0.0 and m.horizon >= 2),
    "gamma = 1": (mdps(), lambda m: m.gamma == 1.0 and m.horizon >= 2),
    "gamma strictly inside (0, 1), not a named value": (
        mdps(), lambda m: 0 < m.gamma < 1 and m.gamma not in (0.5, 0.9)),
    "horizon 1 with S = 3": (mdps(), lambda m: m.horizon == 1 and m.n_states == 3),
    "horizon 4": (mdps(), lambda m: m.horizon == 4),
    "unreachable state": (mdps(), lambda m: not reachable(m).all()),
    "single action, S >= 2": (mdps(), lambda m: m.n_actions == 1 and m.n_states >= 2),
    "S = 3": (mdps(), lambda m: m.n_states == 3),
    "A = 3": (mdps(), lambda m: m.n_actions == 3),
    "horizon None with gamma = 1 (terminates surely)": (mdps(horizon=None), lambda m: m.gamma == 1.0),
    "near-deterministic tabular policy": (
        policies(BANDIT, kind="tabular_softmax"), lambda p: p.probs.min() < 1e-20),
    "near-deterministic linear policy": (
        policies(BANDIT, kind="linear_softmax"), lambda p: p.probs.min() < 1e-20),
    "|theta| = 30 exactly": (thetas((2, 2)), lambda th: np.abs(th).max() == 30.0),
    "linear policy on a generated MDP": (problems(), lambda p: isinstance(p.policy, LinearSoftmax)),
}


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_edge_case_is_generated(name):
    strategy, condition = EDGE_CASES[name]
    example = find(strategy, condition, settings=REACH)
    assert condition(example)


def test_shrink_targets():
    mdp = find(mdps(), lambda m: True, settings=FIND)
    assert mdp.transitions.shape == (1, 1, 1) and mdp.horizon == 1 and mdp.gamma == 1.0
    assert not mdp.terminal.any() and not mdp.rewards.any()
    pol = find(policies(find(mdps(states=2, actions=3), lambda m: True, settings=FIND)), lambda p: True, settings=FIND)
    assert isinstance(pol, TabularSoftmax) and np.array_equal(pol.probs, np.full((2, 3), 1 / 3))
    # A counterexample needing reward shrinks to one state and action with a single non-zero reward (its value
    # is the shrinker's business: any multiple of 1/2 falsifies "no reward").
    mdp = find(mdps(), lambda m: m.rewards.any(), settings=FIND)
    assert mdp.transitions.shape == (1, 1, 1) and np.count_nonzero(mdp.rewards) == 1


@settings(max_examples=60)
@given(problems(horizon=st.none() | st.integers(1, 4)))
def test_every_example_is_a_valid_problem(problem):
    mdp = problem.mdp
    assert np.abs(mdp.transitions.sum(axis=2) - 1).max() <= 1e-9
    assert abs(mdp.initial.sum() - 1) <= 1e-9
    assert mdp.n_states <= 3 and mdp.n_actions <= 3 and (mdp.horizon is None or mdp.horizon <= 4)
    assert np.abs(problem.policy.theta).max(initial=0) <= 30
    # The MDP-file round trip (what the fuzzer writes) rebuilds the same problem.
    again = problem_from_dict(problem_to_dict(problem))
    assert np.array_equal(again.mdp.transitions, mdp.transitions)
    assert np.array_equal(again.policy.probs, problem.policy.probs)


@settings(max_examples=40)
@given(mdps(horizon=None, gamma=1.0))
def test_null_horizon_with_gamma_one_terminates_surely(mdp):
    assert mdp.terminal.any() and mdp.terminates_surely()


@settings(max_examples=30)
@given(mdps(states=2, actions=3, horizon=2, gamma=0.5, terminal=False, reward_kind="transition"))
def test_fixed_arguments_are_respected(mdp):
    assert mdp.transitions.shape == (2, 3, 2) and mdp.horizon == 2 and mdp.gamma == 0.5
    assert not mdp.terminal.any()


@settings(max_examples=30)
@given(mdps(reward_kind="zero", terminal=True))
def test_zero_rewards_and_forced_terminal(mdp):
    assert not mdp.rewards.any() and mdp.terminal.any()


@settings(max_examples=30)
@given(thetas(st.sampled_from([(1,), (2, 3)]), max_abs=1e3))
def test_thetas_respect_shape_and_bound(theta):
    assert theta.shape in ((1,), (2, 3)) and theta.dtype == np.float64
    assert np.all(np.abs(theta) <= 1e3)


def _draw(strategy):
    return find(strategy, lambda _: True, settings=REACH)


INVALID = [
    # (what, build the strategy, only detected when drawing)
    ("states = 0", lambda: mdps(states=0), False),
    ("states = 1.5", lambda: mdps(states=1.5), False),
    ("states = True", lambda: mdps(states=True), False),
    ("actions = -1", lambda: mdps(actions=-1), False),
    ("horizon = 0", lambda: mdps(horizon=0), False),
    ("horizon = 2.0", lambda: mdps(horizon=2.0), False),
    ("gamma = 1.5", lambda: mdps(gamma=1.5), False),
    ("gamma = -0.1", lambda: mdps(gamma=-0.1), False),
    ("gamma = nan", lambda: mdps(gamma=math.nan), False),
    ("gamma = '0.9'", lambda: mdps(gamma="0.9"), False),
    ("terminal = 'yes'", lambda: mdps(terminal="yes"), False),
    ("reward_kind = 'dense'", lambda: mdps(reward_kind="dense"), False),
    ("horizon None, gamma 1, no terminal", lambda: mdps(horizon=None, gamma=1.0, terminal=False), False),
    ("drawn states = 0", lambda: mdps(states=st.just(0)), True),
    ("drawn gamma = 2", lambda: mdps(gamma=st.just(2.0)), True),
    ("drawn reward_kind", lambda: mdps(reward_kind=st.just("dense")), True),
    ("policies of a dict", lambda: policies({"initial": [1]}), False),
    ("policies kind = 'gaussian'", lambda: policies(BANDIT, kind="gaussian"), False),
    ("policies max_abs_theta = 0", lambda: policies(BANDIT, max_abs_theta=0), False),
    ("policies max_abs_theta = inf", lambda: policies(BANDIT, max_abs_theta=math.inf), False),
    ("policies of a drawn non-MDP", lambda: policies(st.just(3)), True),
    ("thetas shape ()", lambda: thetas(()), False),
    ("thetas shape (2, 0)", lambda: thetas((2, 0)), False),
    ("thetas shape '3'", lambda: thetas("3"), False),
    ("thetas max_abs = -1", lambda: thetas((2,), max_abs=-1), False),
    ("thetas drawn shape [2]", lambda: thetas(st.just([2])), True),
    ("problems kind = 'x'", lambda: problems(kind="x"), False),
    ("problems states = 0", lambda: problems(states=0), False),
    ("problems max_abs_theta = nan", lambda: problems(max_abs_theta=math.nan), False),
]


@pytest.mark.parametrize("what, build, at_draw", INVALID, ids=[row[0] for row in INVALID])
def test_invalid_arguments_raise_invalid_argument(what, build, at_draw):
    if at_draw:
        strategy = build()                      # accepted lazily, like hypothesis' own strategies
        with pytest.raises(InvalidArgument):
            _draw(strategy)
    else:
        with pytest.raises(InvalidArgument):
            build()                             # rejected before anything is drawn


def test_problems_are_problems():
    assert isinstance(_draw(problems(states=1, actions=2)), Problem)


def test_reprs_read_like_hypothesis_own():
    assert repr(mdps(states=2)) == "mdps(states=2)"
    assert repr(problems()) == "problems()"
    assert repr(thetas((2, 3), max_abs=1.0)) == "thetas(max_abs=1.0, shape=(2, 3))"
    assert repr(problems(horizon=st.integers(2, 4))) == "problems(horizon=integers(min_value=2, max_value=4))"
