"""``pgverify mc``, ``check`` and ``estimators`` end to end: real subprocesses for the exit codes and output, the
in-process ``main`` for the table of bad inputs (same parser, same error path, 2 s cheaper per case)."""
import json
import shlex
import subprocess
import sys

import pytest

from verify.builtin import EXAMPLES_DIR
from verify.cli import main
from verify.estimators import estimator_names

CHAIN = str(EXAMPLES_DIR / "chain.json")
DISCOUNTED = str(EXAMPLES_DIR / "discounted.json")
KEYS = {"estimator", "episodes", "seed", "mean", "stderr", "exact", "p_value", "verdict"}


def pgverify(*args):
    return subprocess.run([sys.executable, "-m", "verify", *args], capture_output=True, text=True, timeout=120)


def in_process(capsys, *args):
    """(exit code, stdout) of ``main`` in this process: for reruns, where the entry point is already covered."""
    code = main(list(args))
    return code, capsys.readouterr().out


def test_mc_json_exit_codes_and_determinism(capsys):
    ok = pgverify("mc", CHAIN, "--estimator", "reward_to_go", "--episodes", "3000", "--seed", "5", "--json")
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert KEYS <= data.keys()
    assert (data["estimator"], data["episodes"], data["seed"], data["verdict"]) == ("reward_to_go", 3000, 5,
                                                                                     "consistent")
    assert len(data["mean"]) == 4 and len(data["mean"][0]) == 2          # shaped like theta [S][A]
    code, again = in_process(capsys, "mc", CHAIN, "--estimator", "reward_to_go", "--episodes", "3000", "--seed", "5",
                             "--json")
    assert code == 0 and json.loads(again) == data
    code, other = in_process(capsys, "mc", CHAIN, "--estimator", "reward_to_go", "--episodes", "3000", "--seed", "6",
                             "--json")
    assert json.loads(other)["mean"] != data["mean"]


def test_mc_failure_names_component_numbers_and_the_replay_command(capsys):
    bad = pgverify("mc", CHAIN, "--estimator", "rtg_skip_current", "--seed", "3")
    assert bad.returncode == 1, bad.stderr
    out = bad.stdout
    for needle in ("verdict: BIASED, decided by the exact bias", "theta[", "sample mean", "exact", "standard error",
                   "p = "):
        assert needle in out, (needle, out)
    replay = next(line for line in out.splitlines() if line.startswith("reproduce: "))[len("reproduce: "):]
    assert "--seed 3" in replay and "--episodes 20000" in replay
    argv = shlex.split(replay)
    assert argv[0] == "pgverify"
    code, rerun = in_process(capsys, *argv[1:], "--json")
    assert code == 1
    data = json.loads(rerun)
    assert (data["verdict"], data["decided_by"], data["command"]) == ("biased", "exact", replay)
    assert f"{data['worst']['mean']:.6g}" in out and f"{data['worst']['exact']:.6g}" in out


def test_unknown_estimator_is_bad_usage_with_the_catalog_listed():
    res = pgverify("mc", CHAIN, "--estimator", "reinforce")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1
    assert "unknown estimator 'reinforce'" in res.stderr and "total_return, reward_to_go" in res.stderr


def test_check_passes_on_an_example_and_on_horizon_null(capsys):
    res = pgverify("check", CHAIN, "--episodes", "5000", "--json")
    assert res.returncode == 0, res.stdout[-2000:]
    data = json.loads(res.stdout)
    assert data["passed"] and data["gradients"]["passed"]
    rows = {r["estimator"]: r for r in data["estimators"]}
    assert list(rows) == list(estimator_names())
    assert all(rows[n]["verdict"] == "consistent" for n in ("total_return", "reward_to_go", "baseline_value"))
    assert rows["action_baseline"]["outcome"] == "caught"
    # discounted.json cannot be enumerated: the Monte Carlo tests decide, at alpha = 1e-6 (no seed lottery)
    code, text = in_process(capsys, "check", DISCOUNTED, "--episodes", "3000", "--no-color", "--alpha", "1e-6")
    assert code == 0 and "paired" in text and " checks passed, 0 failed" in text


def test_estimators_lists_the_catalog(capsys):
    code, out = in_process(capsys, "estimators", "--json")
    assert code == 0
    data = json.loads(out)
    assert [e["name"] for e in data] == list(estimator_names())
    assert {e["name"] for e in data if not e["unbiased"]} >= {"rtg_restart_discount", "batch_normalized"}
    code, table = in_process(capsys, "estimators", "--no-color")
    assert code == 0 and all(name in table for name in estimator_names())


@pytest.mark.parametrize("argv, message", [
    (["mc", CHAIN, "--estimator", "total_return", "--episodes", "0"], "must be a positive integer"),
    (["mc", CHAIN, "--estimator", "total_return", "--episodes", "1"], "at least 2, got 1"),
    (["mc", CHAIN, "--estimator", "total_return", "--alpha", "1.5"], "strictly between 0 and 1"),
    (["mc", CHAIN, "--estimator", "total_return", "--seed", "-1"], "seed must be non-negative"),
    (["mc", CHAIN], "the following arguments are required: --estimator"),
    (["mc", "missing.json", "--estimator", "total_return"], "cannot read MDP file 'missing.json'"),
    (["mc", DISCOUNTED, "--estimator", "total_return", "--covariance", "exact"], "needs trajectory enumeration"),
    (["mc", CHAIN, "--estimator", "total_return", "--covariance", "bogus"], "invalid choice: 'bogus'"),
    (["check", CHAIN, "--episodes", "x"], "'x' is not an integer"),
])
def test_bad_input_exits_2_with_one_clear_line(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:      # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err, err


def test_invalid_mdp_file_is_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"initial": [1], "transitions": [[[0.5]]], "rewards": [[1]], "horizon": 2}))
    assert main(["mc", str(bad), "--estimator", "total_return"]) == 2
    assert "sums to 0.5, not 1" in capsys.readouterr().err
