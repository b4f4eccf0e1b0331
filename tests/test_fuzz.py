"""``pgverify fuzz`` end to end (subprocess), and the claims' verdicts checked by an independent enumeration.

The independent enumeration below is a plain recursive walk over trajectories written for this file: it shares
no code with ``verify.exact``, ``verify.estimators`` or ``verify.moments``.
"""
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given

from verify import fuzz
from verify.estimators import ESTIMATORS
from verify.problem import load_problem
from verify.strategies import problems


def pgverify(*args, cwd):
    return subprocess.run([sys.executable, "-m", "verify", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def run_main(argv, cwd):
    """The CLI in-process (a subprocess costs ~2 s of imports): (exit code, stdout, stderr)."""
    from contextlib import redirect_stderr, redirect_stdout
    from io import StringIO

    from verify.cli import main

    out, err = StringIO(), StringIO()
    with pytest.MonkeyPatch.context() as mp, redirect_stdout(out), redirect_stderr(err):
        mp.chdir(cwd)
        try:
            code = main(argv)
        except SystemExit as exc:            # argparse's own errors
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def walk(problem):
    """Every trajectory as (p(tau), [score_t], [gamma^t r_t]), by recursion; score_t flattened."""
    mdp, pol = problem.mdp, problem.policy
    pi = pol.probs
    S, A = pi.shape

    def score(s, a):
        if pol.kind == "tabular_softmax":
            g = np.zeros((S, A))
            g[s] -= pi[s]
            g[s, a] += 1.0
            return g.ravel()
        return pol.features[s, a] - pi[s] @ pol.features[s]

    out = []

    def grow(s, t, p, scores, rewards):
        if t == mdp.horizon or mdp.terminal[s]:
            out.append((p, scores, rewards))
            return
        for a in range(A):
            for s2 in range(S):
                q = pi[s, a] * mdp.transitions[s, a, s2]
                if q > 0:
                    grow(s2, t + 1, p * q, scores + [score(s, a)], rewards + [mdp.gamma ** t * mdp.rewards[s, a, s2]])

    for s0 in np.flatnonzero(mdp.initial > 0):
        grow(s0, 0, mdp.initial[s0], [], [])
    return out


def total_variances(problem):
    """tr Cov of the total-return and of the reward-to-go estimator, from ``walk``."""
    dim = problem.policy.theta.size
    p, g_total, g_rtg = [], [], []
    for prob, scores, rewards in walk(problem):
        p.append(prob)
        g_total.append(sum((sc * sum(rewards) for sc in scores), np.zeros(dim)))
        g_rtg.append(sum((sc * sum(rewards[t:]) for t, sc in enumerate(scores)), np.zeros(dim)))
    p = np.array(p)

    def tr_cov(g):
        g = np.array(g)
        return float(p @ ((g - p @ g) ** 2).sum(axis=1))

    return tr_cov(g_total), tr_cov(g_rtg)


def evidence(stdout, key):
    return float(re.search(rf"{re.escape(key)}\s+= (\S+)", stdout).group(1))


def test_rtg_variance_counterexample_is_found_written_and_real(tmp_path):
    # In-process (a quick seed, ~4 s); exit 0 through a real process is checked by the determinism test.
    code, stdout, _ = run_main(["fuzz", "rtg-variance", "--seed", "2"], tmp_path)
    assert code == 0
    out = tmp_path / "counterexample-rtg-variance.json"          # the documented default
    assert out.exists() and str(out.name) in stdout
    problem = load_problem(out)
    v_total, v_rtg = total_variances(problem)
    assert v_rtg > v_total * (1 + 1e-6)                             # the claim really fails there
    assert evidence(stdout, "total variance of total_return") == pytest.approx(v_total, rel=1e-5)
    assert evidence(stdout, "total variance of reward_to_go") == pytest.approx(v_rtg, rel=1e-5)
    # The file is an ordinary MDP file: `pgverify gradient` accepts it, and its J matches the enumeration.
    grad = pgverify("gradient", out.name, "--json", cwd=tmp_path)
    assert grad.returncode == 0, grad.stderr
    J = sum(p * sum(r) for p, _, r in walk(problem))
    assert json.loads(grad.stdout)["J"] == pytest.approx(J, abs=1e-12)


def test_existing_output_needs_force_and_search_is_deterministic(tmp_path):
    target = tmp_path / "cx.json"
    target.write_text("precious\n")
    refused = run_main(["fuzz", "unbiased:rtg_skip_current", "--out", "cx.json"], tmp_path)
    assert refused[0] == 2 and "--force" in refused[2]
    assert target.read_text() == "precious\n"
    code, first, _ = run_main(["fuzz", "unbiased:rtg_skip_current", "--out", "cx.json", "--force", "--seed", "3"],
                              tmp_path)
    assert code == 0
    # Same seed in another process (another hash seed, no shared state): the same counterexample.
    again = pgverify("fuzz", "unbiased:rtg_skip_current", "--out", "-", "--seed", "3", cwd=tmp_path)
    assert again.returncode == 0
    assert json.loads(again.stdout) == json.loads(target.read_text())
    assert again.stderr.strip() == first.strip().rsplit("\n", 1)[0].strip()


def test_no_counterexample_within_budget_exits_1(tmp_path):
    code, stdout, _ = run_main(["fuzz", "unbiased:reward_to_go", "--examples", "25"], tmp_path)
    assert code == 1
    assert "no counterexample in 25 examples" in stdout
    assert list(tmp_path.iterdir()) == []


USAGE = [
    (["fuzz"], "--list"),
    (["fuzz", "rtg-variance", "--examples", "0"], "positive integer"),
    (["fuzz", "rtg-variance", "--seed", "-1"], "non-negative"),
    (["fuzz", "rtg-variance", "--out", "missing-dir/cx.json"], "does not exist"),
    (["fuzz", "no-such-claim"], "known claims: rtg-variance, value-baseline-variance"),
]


@pytest.mark.parametrize("argv, message", USAGE, ids=[" ".join(row[0]) for row in USAGE])
def test_bad_usage_exits_2_with_one_line(argv, message, tmp_path):
    # In-process; the exit status through a real process is checked below.
    code, _, err = run_main(argv, tmp_path)
    assert code == 2 and message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_unknown_claim_exits_2_in_a_subprocess(tmp_path):
    res = pgverify("fuzz", "no-such-claim", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "unknown claim 'no-such-claim'" in res.stderr


def test_list_names_every_claim(tmp_path):
    code, stdout, _ = run_main(["fuzz", "--list"], tmp_path)
    assert code == 0
    listed = {line.split()[0] for line in stdout.splitlines() if line and not line.startswith(" ")}
    assert listed == set(fuzz.CLAIMS)
    assert {"rtg-variance", "value-baseline-variance"} <= listed
    assert {f"unbiased:{e.name}" for e in ESTIMATORS if not e.unbiased} <= listed


def test_value_baseline_counterexample_is_real():
    cx = fuzz.search(fuzz.get_claim("value-baseline-variance"), examples=300, seed=0)
    assert cx is not None and not cx.verdict.holds
    ev = cx.verdict.evidence
    assert ev["total variance of baseline_value"] > ev["total variance of reward_to_go"]


def _bandit_twice(rewards, theta):
    from verify.mdp import TabularMDP
    from verify.policy import TabularSoftmax
    from verify.problem import Problem

    mdp = TabularMDP(initial=[1], transitions=[[[1.0]] * len(rewards)], rewards=[rewards], horizon=2)
    return Problem(mdp, TabularSoftmax([theta]))


def _counterexample_seed0():
    """A counterexample an earlier version of the search reported, typed in by hand."""
    from verify.mdp import TabularMDP
    from verify.policy import TabularSoftmax
    from verify.problem import Problem

    mdp = TabularMDP(initial=[1, 0], transitions=[[[1, 0], [1 / 3, 2 / 3]], [[1, 0], [1, 0]]],
                     rewards=[[[0, 0], [0.5, -1]], [[0, 0], [0, 0]]], terminal=[1], gamma=1.0, horizon=2)
    return Problem(mdp, TabularSoftmax(np.zeros((2, 2))))


@pytest.mark.parametrize("problem", [
    _counterexample_seed0(),                     # +1/2 now, often -1 next: past rewards cancel later ones
    _bandit_twice([1.0, 0.0], [0.0, 0.0]),       # rewards of one sign: reward-to-go helps here
    _bandit_twice([0.5, -0.5], [3.0, 0.0]),      # rewards of both signs, a skewed policy
], ids=["two-states", "one-sign", "skewed (today's seed-0 find)"])
def test_rtg_verdict_agrees_with_the_independent_walk(problem):
    claim = fuzz.get_claim("rtg-variance")
    verdict = claim.check(problem.mdp, problem.policy)
    v_total, v_rtg = total_variances(problem)
    assert verdict.evidence["total variance of total_return"] == pytest.approx(v_total, rel=1e-9)
    assert verdict.evidence["total variance of reward_to_go"] == pytest.approx(v_rtg, rel=1e-9)
    assert verdict.holds == (v_rtg <= v_total)
    assert abs(v_rtg - v_total) > 1e-6 * v_total           # no case sits on the tolerance


def test_counterexample_by_hand_in_exact_arithmetic():
    # The two-state counterexample, worked with fractions: 7 trajectories, score of a at state 0 = +-u with
    # u = (1/2, -1/2), |u|^2 = 1/2. Total return: g = -2u (p 1/36), u (p 1/18), u (p 1/3), else 0.
    # Reward-to-go: -u/2 (p 1/12), -3u/2 (p 1/36), 3u/2 (p 1/18), u (p 1/3), else 0. Both have mean u/3.
    from fractions import Fraction as F

    def tr_cov(cases):            # cases: (p, c) with g = c u
        mean = sum(p * c for p, c in cases)
        return sum(p * c * c for p, c in cases) * F(1, 2) - mean * mean * F(1, 2)

    v_total = tr_cov([(F(1, 36), -2), (F(1, 18), 1), (F(1, 3), 1)])
    v_rtg = tr_cov([(F(1, 12), F(-1, 2)), (F(1, 36), F(-3, 2)), (F(1, 18), F(3, 2)), (F(1, 3), 1)])
    assert (v_total, v_rtg) == (F(7, 36), F(31, 144))
    verdict = fuzz.get_claim("rtg-variance").check(_counterexample_seed0().mdp, _counterexample_seed0().policy)
    assert not verdict.holds
    assert verdict.evidence["total variance of total_return"] == pytest.approx(float(v_total), rel=1e-12)
    assert verdict.evidence["total variance of reward_to_go"] == pytest.approx(float(v_rtg), rel=1e-12)


def test_two_state_counterexample_by_hand():
    # A two-state counterexample an earlier search reported: start in state 1, every action leads to state 0,
    # H = 2, uniform policy over 3 actions; action 2 earns x = +1/2 in state 1 and y = -1 in state 0.
    # Scores u_a = e_a - 1/3 (|u_a|^2 = 2/3) live in separate state blocks, x and y are independent:
    # E[x] = 1/6, E[x^2] = 1/12, E[y] = -1/3, E[y^2] = 1/3, E[(x + y)^2] = 11/36, |grad J|^2 = 5/54.
    #   total return:  E|g|^2 = (2/3 + 2/3) 11/36 = 11/27        -> variance 11/27 - 5/54 = 17/54
    #   reward-to-go:  E|g|^2 = (2/3) 11/36 + (2/3) 1/3 = 23/54  -> variance 23/54 - 5/54 = 1/3
    # The earned +1/2 shrinks |x + y| on the state-0 score, since E[x^2] + 2 E[x] E[y] = -1/36 < 0.
    from verify.mdp import TabularMDP
    from verify.policy import TabularSoftmax
    from verify.problem import Problem

    mdp = TabularMDP(initial=[0, 1], transitions=[[[1, 0]] * 3, [[1, 0]] * 3],
                     rewards=[[0, 0, -1], [0, 0, 0.5]], gamma=1.0, horizon=2)
    problem = Problem(mdp, TabularSoftmax(np.zeros((2, 3))))
    assert total_variances(problem) == pytest.approx((17 / 54, 1 / 3), rel=1e-12)
    verdict = fuzz.get_claim("rtg-variance").check(mdp, problem.policy)
    assert not verdict.holds
    assert verdict.evidence["variance ratio reward_to_go / total_return"] == pytest.approx(18 / 17, rel=1e-12)


@given(problems(reward_kind="zero") | problems(actions=1))
def test_variance_claims_hold_where_every_estimate_is_zero(problem):
    # Zero rewards or a single action: every estimator is identically 0, so float noise must not count.
    for name in ("rtg-variance", "value-baseline-variance", "constant-baseline-variance"):
        assert fuzz.get_claim(name).check(problem.mdp, problem.policy).holds


def test_pruning_unreachable_states_keeps_the_moments():
    from verify.mdp import TabularMDP
    from verify.policy import LinearSoftmax
    from verify.problem import Problem

    # State 2 is unreachable (nothing leads there); state 1 is reached only through state 0.
    mdp = TabularMDP(initial=[1, 0, 0], transitions=[[[0.5, 0.5, 0], [1, 0, 0]], [[1, 0, 0], [0, 1, 0]],
                                                     [[0, 0, 1], [0, 1, 0]]],
                     rewards=[[1, -1], [0.5, 0], [3, 3]], gamma=0.9, horizon=3)
    phi = np.arange(12, dtype=float).reshape(3, 2, 2) % 3
    problem = Problem(mdp, LinearSoftmax(phi, [0.3, -0.2]))
    small = fuzz.without_unreachable_states(problem)
    assert small.mdp.n_states == 2 and small.mdp.states == ("0", "1")
    v_big, v_small = total_variances(problem), total_variances(small)
    assert v_small == pytest.approx(v_big, rel=1e-12)
    assert fuzz.without_unreachable_states(small) is None


def test_constant_harvesting_off_or_a_loud_failure(monkeypatch):
    # The search switches off Hypothesis' harvesting of local constants through an internal; if that internal
    # moves, it must refuse to search (a different result in every process would be silent).
    from hypothesis.internal.conjecture import providers
    harvest = providers._get_local_constants
    with fuzz.without_local_constants():
        assert providers._get_local_constants is not harvest
    assert providers._get_local_constants is harvest
    monkeypatch.delattr(providers, "_get_local_constants")
    with pytest.raises(RuntimeError, match="harvests local constants"):
        with fuzz.without_local_constants():
            pass
