"""``--estimator FILE:FUNCTION`` runs in a worker process: what the user's code does there cannot leak out.

Real subprocesses with pipes, as a user's shell or CI runs them: a leftover thread or a forked child that held the
pipes would make ``subprocess.run`` wait for ever (the timeout turns that into a failure here).
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest


def _run(tmp_path, source: str, *extra: str, example: str = "chain", command: str = "mc",
         timeout: float = 120) -> subprocess.CompletedProcess:
    (tmp_path / "est.py").write_text(textwrap.dedent(source))
    return subprocess.run([sys.executable, "-m", "verify", command, "--example", example, "--estimator",
                           f"{tmp_path}/est.py:f", "--episodes", "500", *extra],
                          capture_output=True, text=True, timeout=timeout, cwd=tmp_path)


ZERO = "np.zeros((episodes.n, *episodes.policy.theta.shape))"


def test_a_print_in_the_estimator_cannot_corrupt_json(tmp_path):
    run = _run(tmp_path, f"""
        import numpy as np
        from verify.estimators import get_estimator
        def f(episodes):
            print("debugging output")
            return get_estimator("reward_to_go").per_episode(episodes)
        """, "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["passed"] is True           # stdout is one JSON document
    assert "debugging output" in run.stderr


@pytest.mark.parametrize("starts", ["threading.Thread(target=time.sleep, args=(600,)).start()",
                                    "concurrent.futures.ThreadPoolExecutor(2).submit(time.sleep, 600)",
                                    "os.fork() == 0 and time.sleep(600)"])
def test_threads_and_children_end_with_the_run(tmp_path, starts):
    run = _run(tmp_path, f"""
        import concurrent.futures, os, threading, time
        import numpy as np
        def f(episodes):
            {starts}
            return {ZERO}
        """, timeout=60)
    assert run.returncode == 1 and "BIASED" in run.stdout, run.stderr    # the zero estimator, judged and done


@pytest.mark.parametrize("example, zero, verdict", [("chain", "np.zeros((episodes.n, *episodes.policy.theta.shape))",
                                                      "BIASED"),
                                                     ("lq1d", "np.zeros((episodes.N, episodes.problem.d))",
                                                      "INCONSISTENT")])
def test_monkeypatching_numpy_in_the_estimator_cannot_change_the_verdict(tmp_path, example, zero, verdict):
    run = _run(tmp_path, f"""
        import numpy as np
        np.mean = lambda *a, **k: 0.0
        np.abs = lambda x: 0 * x
        np.allclose = lambda *a, **k: True
        def f(episodes):
            return {zero}
        """, example=example)
    assert run.returncode == 1 and verdict in run.stdout, (run.stdout, run.stderr)


# --- the same sandbox for an LQ problem's --estimator (its episodes pickled to the worker) ------------------------

def test_lq_a_print_cannot_corrupt_json_and_leftover_threads_and_children_end_with_the_run(tmp_path):
    run = _run(tmp_path, """
        import concurrent.futures, os, threading, time
        from verify.checks.lq_mc import reward_to_go_estimator
        def f(episodes):
            print("debugging output")
            threading.Thread(target=time.sleep, args=(600,)).start()
            concurrent.futures.ThreadPoolExecutor(2).submit(time.sleep, 600)
            os.fork() == 0 and time.sleep(600)
            return reward_to_go_estimator(episodes)
        """, "--json", example="lq1d", timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["verdict"] == "consistent"
    assert "debugging output" in run.stderr


@pytest.mark.parametrize("body, message", [
    ("raise GeneratorExit('bye')", "raised GeneratorExit: bye; the check did not run to completion"),
    ("import asyncio; raise asyncio.CancelledError()", "raised CancelledError; the check did not run to completion"),
    ("import os; os._exit(0)", "ended its process (exit status 0) during a call"),
    ("while True:\n                try:\n                    __import__('time').sleep(60)\n"
     "                except Exception:\n                    pass",
     "took longer than --estimator-timeout 3 s"),
])
def test_lq_base_exceptions_process_exits_and_timeouts_are_one_line_exit_2(tmp_path, body, message):
    run = _run(tmp_path, f"""
        def f(episodes):
            {body}
        """, "--estimator-timeout", "3", example="lq1d", command="check", timeout=60)
    assert run.returncode == 2 and run.stdout == "", (run.stdout, run.stderr)
    assert run.stderr.count("\n") == 1 and message in run.stderr, run.stderr


# --- `pgverify loss`: the loss, the policy and the framework in the worker, the verdict in pgverify's process -------

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH and not os.environ.get("CI"), reason="PyTorch is not installed")
TORCH_LOSS = """
    import asyncio, concurrent.futures, os, sys, threading, time
    import numpy as np
    import torch

    def policy(n_obs, n_actions):
        torch.manual_seed(0)
        return torch.nn.Linear(n_obs, n_actions, bias=False).double()

    def reinforce(policy, batch):
        logp = torch.distributions.Categorical(logits=policy(batch.obs)).log_prob(batch.actions)
        disc = batch.gamma ** torch.arange(batch.rewards.shape[1], dtype=torch.float64)
        G = (disc * batch.rewards).flip(1).cumsum(1).flip(1)
        return -(logp * G * batch.mask).sum(1).mean()
    """


def _run_loss(tmp_path, source: str, *extra: str, timeout: float = 180):
    (tmp_path / "loss.py").write_text(textwrap.dedent(TORCH_LOSS) + textwrap.dedent(source))
    return subprocess.run([sys.executable, "-m", "verify", "loss", f"{tmp_path}/loss.py:f", "--example", "chain",
                           "--policy", f"{tmp_path}/loss.py:policy", "--framework", "torch", "--batch-size", "4",
                           *extra], capture_output=True, text=True, timeout=timeout, cwd=tmp_path)


@needs_torch
def test_loss_a_print_cannot_corrupt_json_and_leftover_threads_and_children_end_with_the_run(tmp_path):
    run = _run_loss(tmp_path, """
        def f(policy, batch):
            print("debugging output")
            threading.Thread(target=time.sleep, args=(600,)).start()
            concurrent.futures.ThreadPoolExecutor(2).submit(time.sleep, 600)
            os.fork() == 0 and time.sleep(600)
            return reinforce(policy, batch)
        """, "--json", timeout=90)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["verdict"] == "unbiased"
    assert "debugging output" in run.stderr


@needs_torch
def test_loss_monkeypatching_numpy_cannot_change_the_verdict(tmp_path):
    # A loss whose gradient is zero, from a module that makes numpy say "all zero, all close": pgverify's process
    # judges with its own numpy and finds the bias.
    run = _run_loss(tmp_path, """
        np.mean = lambda *a, **k: 0.0
        np.abs = lambda x: 0 * x
        np.allclose = np.isclose = lambda *a, **k: True
        def f(policy, batch):
            return 0 * reinforce(policy, batch)
        """)
    assert run.returncode == 1 and "BIASED" in run.stdout, (run.stdout, run.stderr)


@needs_torch
@pytest.mark.parametrize("body, message", [
    ("raise GeneratorExit('bye')", "raised GeneratorExit: bye; the check did not run to completion"),
    ("os._exit(0)", "loss {d}/loss.py:f ended its process (exit status 0) during a call"),
    ("while True:\n                try:\n                    time.sleep(60)\n                except Exception:\n"
     "                    pass", "took longer than --loss-timeout 15 s"),
])
def test_loss_base_exceptions_process_exits_and_timeouts_are_one_line_exit_2(tmp_path, body, message):
    # The limit covers the policy's exact gradient too: generous, for a loaded machine (the loss sleeps for ever).
    timeout = ("--loss-timeout", "15") if "sleep" in body else ()
    run = _run_loss(tmp_path, f"""
        def f(policy, batch):
            {body}
        """, *timeout, timeout=120)
    assert run.returncode == 2 and run.stdout == "", (run.stdout, run.stderr)
    assert run.stderr.count("\n") == 1 and message.format(d=tmp_path) in run.stderr, run.stderr
