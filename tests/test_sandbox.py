"""``--estimator FILE:FUNCTION`` runs in a worker process: what the user's code does there cannot leak out.

Real subprocesses with pipes, as a user's shell or CI runs them: a leftover thread or a forked child that held the
pipes would make ``subprocess.run`` wait for ever (the timeout turns that into a failure here).
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest


def _run(tmp_path, source: str, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
    (tmp_path / "est.py").write_text(textwrap.dedent(source))
    return subprocess.run([sys.executable, "-m", "verify", "mc", "--example", "chain", "--estimator",
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


def test_monkeypatching_numpy_in_the_estimator_cannot_change_the_verdict(tmp_path):
    run = _run(tmp_path, f"""
        import numpy as np
        np.mean = lambda *a, **k: 0.0
        np.abs = lambda x: 0 * x
        np.allclose = lambda *a, **k: True
        def f(episodes):
            return {ZERO}
        """)
    assert run.returncode == 1 and "BIASED" in run.stdout, run.stderr
