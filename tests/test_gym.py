"""gymnasium toy-text environments imported as exact MDPs: dynamics, CLI, and the Monte Carlo check.

Expected models are derived independently of ``verify.frameworks.gym``: FrozenLake from its documented grid rules and map,
Taxi from its documented state encoding; gymnasium's own ``env.step`` is compared with the imported P by a
chi-square test. Statistical tests use fixed seeds; each states its false-alarm rate alpha.
"""
import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

gymnasium = pytest.importorskip("gymnasium")

from verify.cli import main  # noqa: E402
from verify.errors import UsageError  # noqa: E402
from verify.estimators import get_estimator  # noqa: E402
from verify.exact import gradient  # noqa: E402
from verify.gym import TIME_LIMIT, gym_problem, make_env, parse_gym_kwargs  # noqa: E402
from verify.frameworks.gym_sampler import sample_episodes_gymnasium  # noqa: E402
from verify.policy import TabularSoftmax  # noqa: E402
from verify.sampler import sample_episodes  # noqa: E402
from verify.stats import SampleMoments, consistency_test  # noqa: E402

MAPS = {"4x4": ["SFFF", "FHFH", "FFFH", "HFFG"],
        "8x8": ["SFFFFFFF", "FFFFFFFF", "FFFHFFFF", "FFFFFHFF", "FFFHFFFF", "FHHFFFHF", "FHFFHFHF", "FFFHFFFG"]}
MOVES = {0: (0, -1), 1: (1, 0), 2: (0, 1), 3: (-1, 0)}       # FrozenLake: left, down, right, up


def frozen_lake_by_hand(rows, slippery):
    """P, r [S, A, S], terminal, rho0 from the documented rules: slip to a - 1, a, a + 1 with 1/3 each."""
    n, m = len(rows), len(rows[0])
    S = n * m
    P, r = np.zeros((S, 4, S)), np.zeros((S, 4, S))
    cell = lambda s: rows[s // m][s % m]  # noqa: E731
    for s in range(S):
        for a in range(4):
            for b, p in ([((a - 1) % 4, 1 / 3), (a, 1 / 3), ((a + 1) % 4, 1 / 3)] if slippery else [(a, 1.0)]):
                i = min(max(s // m + MOVES[b][0], 0), n - 1)
                j = min(max(s % m + MOVES[b][1], 0), m - 1)
                P[s, a, i * m + j] += p
                r[s, a, i * m + j] = 1.0 if rows[i][j] == "G" else 0.0
    terminal = np.array([cell(s) in "HG" for s in range(S)])
    rho0 = np.array([cell(s) == "S" for s in range(S)], dtype=float)
    return P, r, terminal, rho0


@pytest.mark.parametrize("map_name", ["4x4", "8x8"])
@pytest.mark.parametrize("slippery", [True, False])
def test_frozen_lake_matches_the_documented_rules(map_name, slippery):
    mdp = gym_problem("FrozenLake-v1", {"map_name": map_name, "is_slippery": slippery}, horizon=50).mdp
    P, r, terminal, rho0 = frozen_lake_by_hand(MAPS[map_name], slippery)
    live = ~terminal
    np.testing.assert_array_equal(mdp.terminal, terminal)
    np.testing.assert_array_equal(mdp.initial, rho0)
    np.testing.assert_allclose(mdp.transitions[live], P[live], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(np.where(P[live] > 0, mdp.rewards[live], 0), np.where(P[live] > 0, r[live], 0))
    assert mdp.actions == ("left", "down", "right", "up") and (mdp.horizon, mdp.gamma) == (50, 1.0)


def test_every_entry_of_gymnasiums_table_is_represented():
    env = make_env("FrozenLake-v1", {"map_name": "8x8"})
    mdp = gym_problem("FrozenLake-v1", {"map_name": "8x8"}).mdp
    for s in np.flatnonzero(~mdp.terminal):
        for a in range(4):
            total = {}
            for p, s_next, reward, terminated in env.unwrapped.P[s][a]:
                total[s_next] = total.get(s_next, 0.0) + p
                assert mdp.rewards[s, a, s_next] == reward and mdp.terminal[s_next] == terminated
            assert {k: pytest.approx(v, abs=1e-15) for k, v in total.items()} == \
                {int(k): mdp.transitions[s, a, k] for k in np.flatnonzero(mdp.transitions[s, a])}


def test_env_step_frequencies_match_the_imported_transitions():
    """Pooled chi-square over every live (s, a) of slippery FrozenLake 4x4, alpha = 1e-3 (seeded)."""
    mdp = gym_problem("FrozenLake-v1").mdp
    env = make_env("FrozenLake-v1").unwrapped
    env.reset(seed=12345)
    n_draws, statistic, dof = 300, 0.0, 0
    for s in np.flatnonzero(~mdp.terminal):
        for a in range(4):
            counts = np.zeros(mdp.n_states)
            for _ in range(n_draws):
                env.s = int(s)
                s_next, reward, terminated, _, _ = env.step(a)
                counts[s_next] += 1
                assert reward == mdp.rewards[s, a, s_next] and terminated == mdp.terminal[s_next]
            support = mdp.transitions[s, a] > 0
            assert counts[~support].sum() == 0              # never a successor the model rules out
            expected = n_draws * mdp.transitions[s, a, support]
            statistic += float(((counts[support] - expected) ** 2 / expected).sum())
            dof += int(support.sum()) - 1
    assert dof > 50
    assert stats.chi2.sf(statistic, dof) > 1e-3


def taxi_encode(row, col, passenger, destination):
    return ((row * 5 + col) * 5 + passenger) * 4 + destination


def test_taxi_imports_deterministic_with_delivery_states_terminal():
    mdp = gym_problem("Taxi-v4").mdp
    corners = [(0, 0), (0, 4), (4, 0), (4, 3)]
    delivered = sorted(taxi_encode(*corners[d], d, d) for d in range(4))
    assert (mdp.n_states, mdp.n_actions, mdp.horizon) == (500, 6, 200)
    assert np.flatnonzero(mdp.terminal).tolist() == delivered
    live = ~mdp.terminal
    assert np.all((mdp.transitions[live] > 0).sum(axis=2) == 1)       # deterministic
    starts = [taxi_encode(i, j, p, d) for i in range(5) for j in range(5) for p in range(4) for d in range(4) if p != d]
    np.testing.assert_allclose(mdp.initial[starts], 1 / 300)
    assert mdp.initial.sum() == pytest.approx(1.0)
    # Drop-off at the destination with the passenger aboard: +20 and the episode ends.
    s = taxi_encode(*corners[2], 4, 2)
    assert mdp.transitions[s, 5, taxi_encode(4, 0, 2, 2)] == 1.0 and mdp.rewards[s, 5, taxi_encode(4, 0, 2, 2)] == 20


def test_rainy_taxi_imports_with_lateral_slips():
    mdp = gym_problem("Taxi-v4", {"is_rainy": True}).mdp
    live = ~mdp.terminal
    successors = (mdp.transitions[live] > 0).sum(axis=2)
    assert successors.max() == 3 and np.allclose(mdp.transitions[live].sum(axis=2), 1.0)


def test_cliff_walking_resets_to_start_rather_than_terminating():
    mdp = gym_problem("CliffWalking-v1", horizon=None).mdp
    start, goal = 36, 47                        # (3, 0) and (3, 11) on the 4 x 12 grid
    assert np.flatnonzero(mdp.terminal).tolist() == [goal]
    assert mdp.transitions[start, 1, start] == 1.0 and mdp.rewards[start, 1, start] == -100   # right: into the cliff
    assert mdp.transitions[35, 2, goal] == 1.0 and mdp.rewards[35, 2, goal] == -1             # down into the goal
    slippery = gym_problem("CliffWalking-v1", {"is_slippery": True}, horizon=100).mdp
    assert np.count_nonzero(slippery.transitions[24, 0]) == 3


@pytest.mark.parametrize("items, expected", [
    (["map_name=8x8", "is_slippery=false"], {"map_name": "8x8", "is_slippery": False}),
    (["is_slippery=False", "x=None", "n=3", "p=0.5"], {"is_slippery": False, "x": None, "n": 3, "p": 0.5}),
    (['desc=["SF", "FG"]', "name=a=b"], {"desc": ["SF", "FG"], "name": "a=b"}),
])
def test_gym_kwargs_parse_to_python_values(items, expected):
    assert parse_gym_kwargs(items) == expected


@pytest.mark.parametrize("items", [["noequals"], ["=1"], ["a=1", "a=2"], ["1x=2"]])
def test_malformed_gym_kwargs_are_usage_errors(items):
    with pytest.raises(UsageError, match="gym-kwargs"):
        parse_gym_kwargs(items)


def test_missing_gymnasium_asks_for_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)        # makes `import gymnasium` raise ImportError
    with pytest.raises(UsageError, match=r"pgverify\[gym\]"):
        make_env("FrozenLake-v1")


# --- CLI ----------------------------------------------------------------------------------------------------------

def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_gradient_gym_matches_the_library(capsys):
    code, out, _ = run(capsys, "gradient", "--gym", "FrozenLake-v1", "--gym-kwargs", "map_name=8x8",
                       "is_slippery=false", "--horizon", "30", "--gamma", "0.9", "--json")
    assert code == 0
    res = json.loads(out)
    problem = gym_problem("FrozenLake-v1", {"map_name": "8x8", "is_slippery": False}, horizon=30, gamma=0.9)
    exact = gradient(problem.mdp, problem.policy)
    assert res["J"] == exact.J and np.array_equal(res["grad"], exact.grad)


def test_cli_theta_file_sets_the_policy(tmp_path, capsys):
    theta = np.random.default_rng(1).normal(size=(16, 4))
    np.save(tmp_path / "theta.npy", theta)
    (tmp_path / "theta.json").write_text(json.dumps(theta.tolist()))
    results = [json.loads(run(capsys, "gradient", "--gym", "FrozenLake-v1", "--theta", str(tmp_path / name),
                              "--json")[1])["J"] for name in ("theta.npy", "theta.json")]
    problem = gym_problem("FrozenLake-v1", policy=TabularSoftmax(theta))
    assert results == [gradient(problem.mdp, problem.policy).J] * 2


def test_export_gym_round_trips_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "lake.json"
    gym_args = ["--gym-kwargs", "map_name=8x8", "reward_schedule=[1,-1,-0.01]", "--horizon", "20"]
    args = ["export-gym", "FrozenLake-v1", *gym_args, "-o", str(out)]
    assert run(capsys, *args)[0] == 0
    written = out.read_text()
    code, _, err = run(capsys, *args)
    assert code == 2 and "--force" in err and out.read_text() == written
    assert run(capsys, *args, "--force")[0] == 0
    from_file = subprocess.run([sys.executable, "-m", "verify", "gradient", str(out), "--json"],
                               capture_output=True, text=True, check=True)
    _, direct, _ = run(capsys, "gradient", "--gym", "FrozenLake-v1", *gym_args, "--json")
    assert json.loads(from_file.stdout)["J"] == pytest.approx(json.loads(direct)["J"], rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("argv, message", [
    (["gradient", "--gym", "NoSuchEnv-v0"], "NoSuchEnv"),
    (["gradient", "--gym", "FrozenLake-v1", "--gym-kwargs", "slipperiness=1"], "slipperiness"),
    (["gradient", "--gym", "FrozenLake-v1", "--gym-kwargs", "map_name=9x9"], "9x9"),
    (["gradient", "--gym", "FrozenLake-v1", "--gym-kwargs", "is_slippery"], "key=value"),
    (["gradient", "--gym", "CliffWalking-v1"], "--horizon"),
    (["gradient", "--gym", "CartPole-v1", "--horizon", "5"], "no tabular model"),
    (["gradient", "--gym", "Taxi-v4", "--gym-kwargs", "fickle_passenger=true"], "fickle"),
    (["gradient"], "--gym"),
    (["export-gym", "FrozenLake-v1", "--theta", "missing.npy", "-o", "{tmp}/x.json"], "missing.npy"),
])
def test_cli_bad_gym_input_exits_2_with_one_line(argv, message, tmp_path, capsys):
    code, out, err = run(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


# --- Monte Carlo: the exact gradient of the imported model against gymnasium's own episodes -------------------------
# A step cost of -0.01 (FrozenLake's reward_schedule) gives every episode a nonzero return: with the default sparse
# reward (2% of episodes reach the goal) score components of states never followed by the goal are exactly zero in
# the sample and Hotelling's test is not calibrated at a few thousand episodes. In 40 seeds of 4000 episodes the
# reward-to-go check below rejected 0 times at alpha = 1e-3 (3 at 0.05), and the wrong model 40 times.

LAKE = {"reward_schedule": [1, -1, -0.01]}
N_EPISODES = 4000


@pytest.fixture(scope="module")
def frozen_lake():
    theta = np.random.default_rng(5).normal(scale=0.5, size=(16, 4))
    return gym_problem("FrozenLake-v1", LAKE, horizon=TIME_LIMIT, policy=TabularSoftmax(theta))


@pytest.fixture(scope="module")
def gymnasium_episodes(frozen_lake):
    return sample_episodes_gymnasium(make_env("FrozenLake-v1", LAKE), frozen_lake.mdp, frozen_lake.policy,
                                     N_EPISODES, np.random.default_rng(2024))


def mc_check(episodes, exact_grad):
    """Hotelling test of the reward-to-go estimator's mean against exact_grad at alpha = 1e-3."""
    g = get_estimator("reward_to_go")(episodes)
    return consistency_test(SampleMoments.of(g), exact_grad, alpha=1e-3)


@pytest.mark.parametrize("sampler", ["pgverify", "gymnasium"])
def test_exact_gradient_passes_the_mc_check_with_both_samplers(frozen_lake, gymnasium_episodes, sampler):
    mdp, policy = frozen_lake.mdp, frozen_lake.policy
    if sampler == "gymnasium":
        episodes = gymnasium_episodes
    else:
        episodes = sample_episodes(mdp, policy, N_EPISODES, np.random.default_rng(2024))
    result = mc_check(episodes, gradient(mdp, policy).grad)
    assert result.consistent, (result.p_value, result.worst)


def test_mc_check_detects_the_wrong_model(frozen_lake, gymnasium_episodes):
    """Negative control: gymnasium's slippery episodes against the non-slippery model's exact gradient."""
    wrong = gym_problem("FrozenLake-v1", {**LAKE, "is_slippery": False}, policy=frozen_lake.policy).mdp
    assert not mc_check(gymnasium_episodes, gradient(wrong, frozen_lake.policy).grad).consistent


def test_gymnasium_sampler_is_reproducible_and_follows_the_model(frozen_lake, gymnasium_episodes):
    mdp, policy = frozen_lake.mdp, frozen_lake.policy
    a = gymnasium_episodes
    b = sample_episodes_gymnasium(make_env("FrozenLake-v1", LAKE), mdp, policy, N_EPISODES, np.random.default_rng(2024))
    assert np.array_equal(a.s_t, b.s_t) and np.array_equal(a.a_t, b.a_t)
    m = a.mask
    s, act, s_next = a.s_t[:, :-1][m], a.a_t[m], a.s_t[:, 1:][m]
    assert np.all(mdp.transitions[s, act, s_next] > 0)
    np.testing.assert_array_equal(a.r_t[m], mdp.rewards[s, act, s_next])
    ended = a.lengths < mdp.horizon
    assert np.all(mdp.terminal[a.s_t[np.arange(a.n), a.lengths]][ended])


def test_cli_mc_with_gymnasiums_sampler(frozen_lake, tmp_path, capsys):
    np.save(tmp_path / "theta.npy", frozen_lake.policy.theta)
    code, out, _ = run(capsys, "mc", "--gym", "FrozenLake-v1", "--gym-kwargs", "reward_schedule=[1,-1,-0.01]",
                       "--theta", str(tmp_path / "theta.npy"), "--estimator", "reward_to_go",
                       "--episodes", str(N_EPISODES), "--sampler", "gymnasium", "--json")
    result = json.loads(out)
    # No rejection: consistent, or undecided (exit 3) when the run cannot see 10 % of max |grad J| everywhere.
    assert (code, result["verdict"]) in ((0, "consistent"), (3, "undecided")) and result["test"] == "maxz"
    assert "--sampler gymnasium" in result["command"]
    assert result["exact"] == gradient(frozen_lake.mdp, frozen_lake.policy).grad.tolist()


def test_cli_mc_gymnasium_sampler_needs_gym(tmp_path, capsys):
    assert run(capsys, "export-gym", "FrozenLake-v1", "-o", str(tmp_path / "lake.json"))[0] == 0
    code, _, err = run(capsys, "mc", str(tmp_path / "lake.json"), "--estimator", "reward_to_go",
                       "--sampler", "gymnasium")
    assert code == 2 and "needs --gym" in err


def test_make_env_turns_only_rejected_ids_and_arguments_into_usage_errors(monkeypatch):
    import gymnasium

    def failing(exc):
        def make(*args, **kwargs):
            raise exc
        return make
    for exc in (TypeError("__init__() got an unexpected keyword argument 'x'"), KeyError("9x9"),
                gymnasium.error.NameNotFound("Environment `Nope` doesn't exist.")):
        monkeypatch.setattr(gymnasium, "make", failing(exc))
        with pytest.raises(UsageError, match="cannot make gymnasium environment"):
            make_env("Whatever-v0")
    # Anything else is not the user's input: it propagates as what it is.
    for exc in (MemoryError(), RuntimeError("a bug")):
        monkeypatch.setattr(gymnasium, "make", failing(exc))
        with pytest.raises(type(exc)):
            make_env("FrozenLake-v1")


def test_the_import_holds_successor_lists_not_dense_arrays():
    mdp = gym_problem("Taxi-v4").mdp
    assert not mdp.is_dense                    # nothing [S, A, S] was allocated by the import
    live = ~mdp.terminal
    assert mdp.successors.nnz <= 500 * 6 and mdp.transitions[live].sum(axis=2).min() == pytest.approx(1.0)
