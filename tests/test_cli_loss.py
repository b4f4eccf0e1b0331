"""``pgverify loss``: the gallery's losses from the command line (PyTorch and JAX, rollouts and episodes), the
reproduce line re-run as printed, JSON, exit codes, the Monte Carlo cost and --max-work, and bad input (one line,
exit 2). Framework cases skip outside CI when the framework is missing."""
import importlib.util
import json
import os
import shlex

import numpy as np
import pytest

from verify.cli import main

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_JAX = importlib.util.find_spec("jax") is not None and importlib.util.find_spec("rlax") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH and not os.environ.get("CI"), reason="PyTorch is not installed")
needs_jax = pytest.mark.skipif(not HAS_JAX and not os.environ.get("CI"), reason="JAX is not installed")

T = "examples/frameworks/torch_rollout.py"
J = "examples/frameworks/jax_rollout.py"
MDP = "examples/frameworks/corridor.json"
TORCH_PPO = [f"{T}:ppo_loss_no_norm", MDP, "--policy", f"{T}:Agent", "--logits", f"{T}:actor_logits",
             "--framework", "torch", "--steps", "4", "--envs", "2"]


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(capsys, argv):
    code = main(["loss", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_corridor_file_is_the_gallery_mdp():
    from examples.frameworks.problem import corridor
    from verify.model.problem import load_problem

    a, b = load_problem(MDP).mdp, corridor()
    assert a.name == b.name and a.horizon == b.horizon and a.gamma == b.gamma
    for f in ("initial", "transitions", "expected_reward", "terminal"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


@needs_torch
def test_torch_rollout_unbiased_and_the_reproduce_line_reruns_as_printed(capsys):
    code, out, err = _run(capsys, [*TORCH_PPO, "--weighting", "visited"])
    assert code == 0 and "UNBIASED" in out and not err
    line = next(x for x in out.splitlines() if "reproduce: " in x).split("reproduce: ", 1)[1]
    argv = shlex.split(line)
    assert argv[:2] == ["pgverify", "loss"]
    code2, out2, _ = _run(capsys, argv[2:])
    assert code2 == 0 and out2 == out


@needs_torch
def test_torch_rollout_biased_exit_1_and_json(capsys):
    code, out, _ = _run(capsys, TORCH_PPO)
    assert code == 1 and "BIASED" in out and "cause: visited_weighting" in out
    code, out, _ = _run(capsys, [*TORCH_PPO, "--json"])
    data = json.loads(out)
    assert code == 1 and data["verdict"] == "biased" and data["causes"][0][0] == "visited_weighting"
    assert data["command"] == data["reproduce"] and data["command"].startswith("pgverify loss ")


@needs_torch
def test_torch_episode_mode(capsys):
    L = "examples/frameworks/torch_losses.py"
    code, out, _ = _run(capsys, [f"{L}:reinforce", MDP, "--policy", f"{L}:ActorCritic", "--logits", f"{L}:logits",
                                 "--framework", "torch", "--batch-size", "2"])
    assert code == 0 and "UNBIASED" in out and "--batch-size 2" in out


@needs_torch
def test_monte_carlo_cost_is_stated_and_bounded_by_max_work(capsys):
    argv = [f"{T}:ppo_loss_no_norm", MDP, "--policy", f"{T}:Agent", "--logits", f"{T}:actor_logits",
            "--framework", "torch", "--steps", "13", "--envs", "2", "--weighting", "visited"]
    code, out, err = _run(capsys, [*argv, "--max-work", "1000"])
    assert code == 2 and "max-work" in err and len(err.strip().splitlines()) == 1 and not out
    code, out, err = _run(capsys, [*argv, "--batches", "20"])
    assert "pgverify loss: Monte Carlo: 20 rollouts x 2 environments x 13 steps" in err
    assert "Monte Carlo" in out and code in (0, 1)


@needs_jax
def test_jax_purejaxrl_rollout(capsys):
    code, out, _ = _run(capsys, [f"{J}:ppo_loss_no_norm", MDP, "--policy", f"{J}:policy", "--framework", "jax",
                                 "--steps", "4", "--envs", "2", "--weighting", "visited"])
    assert code == 0 and "UNBIASED" in out and "--framework jax" in out


@pytest.mark.parametrize("argv, message", [
    (["no_colon", MDP, "--policy", f"{T}:Agent", "--framework", "torch"], "loss no_colon: expected"),
    ([f"{T}:no_such", MDP, "--policy", f"{T}:Agent", "--framework", "torch"], "has no attribute 'no_such'"),
    (["missing.py:f", MDP, "--policy", f"{T}:Agent", "--framework", "torch"], "no such file"),
    ([f"{T}:ppo_loss", MDP, "--policy", f"{T}:ppo_loss", "--framework", "torch"], "calling ppo_loss(5, 2) raised"),
    ([f"{T}:ppo_loss", MDP, "--policy", f"{T}:Agent", "--framework", "torch", "--entropy-coef", "0.1"],
     "--entropy-coef applies to rollouts"),
    ([f"{T}:ppo_loss", MDP, "--policy", f"{T}:Agent", "--framework", "mxnet"], "invalid choice"),
    ([f"{T}:ppo_loss", MDP, "--policy", f"{T}:Agent", "--framework", "torch", "--steps", "0"], "positive"),
    ([f"{T}:ppo_loss", MDP, "--policy", f"{T}:Agent", "--framework", "torch", "--steps", "4", "--time-limit",
      "2"], "time_limit applies to horizon-null"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, message):
    if not HAS_TORCH and "mxnet" not in argv and "no_colon" not in argv:
        pytest.skip("PyTorch is not installed")
    code, out, err = _run(capsys, argv)
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@needs_torch
def test_dropout_policy_is_refused_from_the_command_line(capsys):
    code, _, err = _run(capsys, [f"{T}:reinforce_visited", MDP, "--policy", f"{T}:DropoutActor", "--framework",
                                 "torch", "--steps", "4", "--envs", "2"])
    assert code == 2 and "policy.eval()" in err
