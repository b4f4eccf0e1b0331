"""LQ problems with a linear Gaussian policy: exact grad J against central differences of an independent J (the
forward moments, no value function), against PyTorch autodiff of a recursion written here, against a hand closed
form; validation; the sampler and the estimators' verdicts (tiny alpha: no seed lottery)."""
import json
import re
import math
import os

import numpy as np
import pytest

from verify.errors import InvalidMDPError
from verify.model.lq import (
    LQ_EXAMPLE_NAMES,
    LQ_SCHEMA_PATH,
    LQProblem,
    load_lq_example,
    lq_from_dict,
    lq_gradient,
    lq_objective,
    lq_to_dict,
    truncation_horizon,
)
from verify.checks.lq_mc import (
    LQ_ESTIMATORS,
    get_lq_estimator,
    run_lq_mc,
    sample_lq,
)
from verify.checks.stats import SampleMoments, consistency_test


def _torch():
    try:
        import torch
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("PyTorch is not installed (CI installs it)")
    return torch


def _central(f, th, eps):
    return np.array([(f(th + eps * e) - f(th - eps * e)) / (2 * eps) for e in np.eye(th.size)])


@pytest.mark.parametrize("name", ["lq2d", "lq2d_discounted"])
def test_gradient_matches_central_differences_of_the_forward_objective(name):
    lq = load_lq_example(name)
    g = lq_gradient(lq).flat
    J = lambda th: lq_objective(lq.with_theta(th))            # noqa: E731  forward moments only
    # Richardson extrapolation of central differences: O(eps^4) truncation, round-off ~1e-16 |J| / eps
    fd = (4 * _central(J, lq.theta, 1e-4) - _central(J, lq.theta, 2e-4)) / 3
    rel = np.abs(fd - g).max() / np.abs(g).max()
    assert rel <= 1e-8, (rel, fd, g)


@pytest.mark.parametrize("name", LQ_EXAMPLE_NAMES)
def test_backward_and_forward_objectives_agree(name):
    lq = load_lq_example(name)
    J = lq_gradient(lq).J
    assert abs(J - lq_objective(lq)) <= 1e-12 * abs(J)


def test_one_step_closed_form_by_hand():
    """H = 1, 1-D: J = -(q E x0^2 + r E u^2), E u^2 = K^2 M0 + 2 K k mu0 + k^2 + sigma^2."""
    q, r, K, k, s, mu0, v0 = 2.0, 0.5, -0.7, 0.3, 0.4, 1.5, 0.2
    lq = LQProblem(A=[[1.3]], B=[[0.8]], Q=[[q]], R=[[r]], W=[[0.1]], mu0=[mu0], Sigma0=[[v0]], K=[[K]], k=[k],
                   log_std=[math.log(s)], gamma=0.9, horizon=1)
    M0 = v0 + mu0 ** 2
    res = lq_gradient(lq)
    assert res.J == pytest.approx(-(q * M0 + r * (K * K * M0 + 2 * K * k * mu0 + k * k + s * s)), rel=1e-14)
    expected = [-r * (2 * K * M0 + 2 * k * mu0), -r * (2 * K * mu0 + 2 * k), -2 * r * s * s]
    np.testing.assert_allclose(res.flat, expected, rtol=1e-13)


def _torch_objective(torch, lq, K, k, log_std, H):
    """J by the state's mean and second moment, written independently of verify.model.lq, in torch."""
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float64)   # noqa: E731
    A, B, Q, R, W = map(t, (lq.A, lq.B, lq.Q, lq.R, lq.W))
    m = t(lq.mu0)
    M = t(lq.Sigma0) + torch.outer(m, m)
    S = torch.diag(torch.exp(2 * log_std))
    J = torch.zeros((), dtype=torch.float64)
    for step in range(H):
        mu_u = K @ m + k
        Euu = K @ M @ K.T + torch.outer(K @ m, k) + torch.outer(k, K @ m) + torch.outer(k, k) + S   # E[u u^T]
        J = J - lq.gamma ** step * (torch.trace(Q @ M) + torch.trace(R @ Euu))
        Exu = M @ K.T + torch.outer(m, k)                                                          # E[x u^T]
        M = A @ M @ A.T + A @ Exu @ B.T + B @ Exu.T @ A.T + B @ Euu @ B.T + W
        m = A @ m + B @ mu_u
    return J


@pytest.mark.parametrize("name", ["lq2d", "lq2d_discounted", "lq1d"])
def test_gradient_matches_torch_autodiff_of_an_independent_recursion(name):
    torch = _torch()
    lq = load_lq_example(name)
    H = lq.horizon or truncation_horizon(lq, rtol=1e-18)
    K, k, s = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (lq.K, lq.k, lq.log_std))
    J = _torch_objective(torch, lq, K, k, s, H)
    J.backward()
    auto = np.concatenate([K.grad.numpy().ravel(), k.grad.numpy(), s.grad.numpy()])
    res = lq_gradient(lq)
    assert abs(J.item() - res.J) <= 1e-10 * abs(res.J)
    np.testing.assert_allclose(res.flat, auto, rtol=1e-9, atol=1e-12 * np.abs(auto).max())


def test_restart_weights_equal_the_undiscounted_per_step_terms():
    """gamma = 1: the restarted discount is the discount, so the two means coincide exactly."""
    lq = load_lq_example("lq2d").replace(gamma=1.0)
    np.testing.assert_allclose(lq_gradient(lq, weights="restart").flat, lq_gradient(lq).flat, rtol=1e-13)


# --- the file format and validation --------------------------------------------------------------------------------

def _doc(**changes):
    doc = json.loads(json.dumps(lq_to_dict(load_lq_example("lq2d"))))
    for key, value in changes.items():
        if value is None and key != "horizon":
            doc.pop(key)
        elif key.startswith("policy_"):
            doc["policy"][key[7:]] = value
        else:
            doc[key] = value
    return doc


def test_round_trip_and_schema():
    import jsonschema

    schema = json.loads(LQ_SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    for name in LQ_EXAMPLE_NAMES:
        lq = load_lq_example(name)
        doc = lq_to_dict(lq)
        jsonschema.Draft202012Validator(schema).validate(doc)
        again = lq_from_dict(json.loads(json.dumps(doc)))
        assert lq_gradient(again).J == lq_gradient(lq).J


@pytest.mark.parametrize("changes, message", [
    (dict(Q=[[1.0, 0.5], [0.0, 0.1]]), "Q is not symmetric"),
    (dict(W=[[0.01, 0.0], [0.0, -0.01]]), "W must be positive semi-definite"),
    (dict(initial_cov=[[-1.0, 0.0], [0.0, 0.0]]), "initial_cov must be positive semi-definite"),
    (dict(B=[[1.0, 0.0, 0.0]]), "B has shape [1, 3], expected [2, m]"),
    (dict(policy_K=[[1.0, 0.0]]), "policy.K has shape [1, 2], expected [2, 2]"),
    (dict(policy_log_std=[0.0]), "policy.log_std has 1 entries, expected 2"),
    (dict(horizon=None, gamma=1.0), "horizon null needs gamma < 1"),
    (dict(horizon=None, gamma=0.9, policy_K=[[5.0, 5.0], [5.0, 5.0]]), "the discounted closed loop is unstable"),
    (dict(horizon=0), "horizon must be a positive integer"),
    (dict(gamma=True), "gamma must be a number in [0, 1]"),
    (dict(kind="tabular"), "the only kind is 'lq'"),
    (dict(discount=0.9), "unknown keys ['discount']"),
    (dict(A=[[1.0, float("nan")], [0.0, 1.0]]), "A[0][1] is nan"),
    (dict(R=[[1.0, True], [0.0, 1.0]]), "R[0][1] is a boolean"),
])
def test_invalid_files_raise_one_line(changes, message):
    with pytest.raises(InvalidMDPError) as info:
        lq_from_dict(_doc(**changes))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_loader_dispatches_on_kind(tmp_path):
    from verify.model.problem import load_problem

    path = tmp_path / "p.json"
    path.write_text(json.dumps(_doc()))
    assert isinstance(load_problem(path), LQProblem)
    path.write_text(json.dumps(_doc(Q=[[1.0, 2.0], [2.0, 1.0]])))       # indefinite
    with pytest.raises(InvalidMDPError, match=r"p\.json: Q must be positive semi-definite"):
        load_problem(path)


# --- sampling and estimators ---------------------------------------------------------------------------------------

def test_sampled_returns_are_consistent_with_exact_J():
    lq = load_lq_example("lq2d")
    ep = sample_lq(lq, 20000, np.random.default_rng(1))
    R = (ep.r_t * lq.gamma ** np.arange(ep.T)).sum(axis=1)
    z = (R.mean() - lq_gradient(lq).J) / (R.std(ddof=1) / math.sqrt(len(R)))
    assert abs(z) < 5.3, z        # two-sided 1e-7


@pytest.mark.parametrize("name", ["lq2d", "lq1d_discounted"])
def test_unbiased_estimators_pass_and_pitfalls_are_caught(name):
    lq = load_lq_example(name)
    T = lq.horizon or truncation_horizon(lq)
    batch = sample_lq(lq, 8000, np.random.default_rng(3), horizon=T)
    for e in LQ_ESTIMATORS:
        r = run_lq_mc(lq, e, alpha=1e-6, batch=batch)
        if e.unbiased:   # never rejected; "consistent" only with a finite detectable bias, else undecided
            assert r.verdict in ("consistent", "undecided"), (e.name, r.verdict)
            assert (r.verdict == "consistent") == bool(np.isfinite(r.detectable)), (e.name, r.verdict)
        elif e.exact_mean is not None:
            expected = "consistent" if (e.name == "logp_mean_over_dims" and lq.m == 1) else "biased"
            assert r.verdict == expected and r.decided_by == "exact", (e.name, r.verdict)
        else:
            assert r.verdict == "inconsistent", (e.name, r.test.p_value)


def test_restarted_discount_exact_mean_is_what_sampling_sees():
    """The closed-form mean of the restarted-discount estimator, checked by Monte Carlo (it could fail)."""
    lq = load_lq_example("lq1d_discounted")
    T = truncation_horizon(lq)
    e = get_lq_estimator("rtg_restart_discount")
    G = e.fn(sample_lq(lq, 20000, np.random.default_rng(5), horizon=T))
    claimed = e.exact_mean(lq, T)
    assert consistency_test(SampleMoments.of(G), claimed, alpha=1e-6).consistent
    assert not consistency_test(SampleMoments.of(G), lq_gradient(lq, horizon=T).flat, alpha=1e-6).consistent


def test_pathwise_per_episode_equals_finite_differences_of_the_path():
    """The adjoint recursion is the derivative of each episode's return with its noises fixed."""
    lq = load_lq_example("lq2d")
    ep = sample_lq(lq, 3, np.random.default_rng(0))
    g = get_lq_estimator("pathwise").fn(ep)

    def path_return(th):
        p = lq.with_theta(th)
        x, total = ep.x_t[:, 0], np.zeros(3)
        for t in range(ep.T):
            u = x @ p.K.T + p.k + p.sigma * ep.eps_t[:, t]
            total -= lq.gamma ** t * (np.einsum("ni,ij,nj->n", x, lq.Q, x) + np.einsum("ni,ij,nj->n", u, lq.R, u))
            x = x @ lq.A.T + u @ lq.B.T + ep.w_t[:, t]
        return total

    fd = np.stack([(path_return(lq.theta + 1e-6 * e) - path_return(lq.theta - 1e-6 * e)) / 2e-6
                   for e in np.eye(lq.d)], axis=1)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_biased_user_estimator_is_matched_to_its_pitfall_and_fix():
    from verify.checks.lq_mc import score_sums
    from verify.numerics.returns import reward_to_go

    def restarted(episodes):
        return score_sums(episodes, reward_to_go(episodes.r_t, episodes.gamma, restart_discount=True))

    lq = load_lq_example("lq1d_discounted")
    r = run_lq_mc(lq, restarted, episodes=4000, alpha=1e-6)
    # identical on every episode to the catalog pitfall, so its closed-form mean decides: exact, not sampled
    assert r.verdict == "biased" and r.decided_by == "exact" and r.identical_to == "rtg_restart_discount"
    assert r.matches and r.matches[0][0] == "rtg_restart_discount" and "gamma^t" in r.matches[0][1]
    assert r.test.verdict == "inconsistent"            # and the sampled test sees it too

    def restarted_twice(episodes):                     # not identical to any catalog estimator: sampled verdict
        return 2 * restarted(episodes)

    r2 = run_lq_mc(lq, restarted_twice, episodes=4000, alpha=1e-6)
    assert r2.identical_to is None and r2.decided_by != "exact" and r2.verdict == "inconsistent"


def test_cli_gradient_mc_check_on_lq_files(tmp_path, capsys):
    from verify.model.builtin import EXAMPLES_DIR
    from verify.cli import main

    path = str(EXAMPLES_DIR / "lq2d.json")
    assert main(["gradient", path, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(out["flat"], lq_gradient(load_lq_example("lq2d")).flat, rtol=1e-15)
    assert main(["mc", "--example", "lq1d", "--estimator", "reward_to_go", "--episodes", "2000"]) == 0
    assert "verdict: CONSISTENT" in capsys.readouterr().out
    assert main(["mc", "--example", "lq2d", "--estimator", "log_std_blocked", "--episodes", "500"]) == 1
    text = capsys.readouterr().out
    assert "verdict: BIASED, decided by the exact mean" in text and "reproduce: pgverify mc --example lq2d" in text
    assert main(["check", "--example", "lq1d", "--episodes", "2000", "--seed", "1"]) == 0
    # nothing fails; a sampled row may be undecided (a component too one-sided for a z-test: no power stated)
    assert re.search(r"\b\d passed, 0 failed, \d undecided", capsys.readouterr().out)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_doc(W=[[0.01, 0.0], [0.0, -1.0]])))
    assert main(["gradient", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "W must be positive semi-definite" in err
    assert main(["gradient", "--example", "lq2d", "--horizon", "null", "--gamma", "1"]) == 2
    assert "horizon null needs gamma < 1" in capsys.readouterr().err


@pytest.mark.parametrize("change", [
    {"kind": "LQ"}, {"extra": 1}, {"A": "1"}, {"gamma": 1.5}, {"horizon": 0},
    {"horizon": 1.0}, {"name": 3}, {"policy": {"type": "tabular_softmax"}}, {"policy": {"type": "linear_gaussian",
                                                                                          "bias": [0.0]}},
    {"initial_mean": []}, {"R": [[True, 0.0], [0.0, 1.0]]},
])
def test_what_the_published_schema_refuses_the_loader_refuses(change):
    import jsonschema

    doc = {**_doc(), **change}
    schema = json.loads(LQ_SCHEMA_PATH.read_text())
    assert not jsonschema.Draft202012Validator(schema).is_valid(doc) or change == {"horizon": 1.0}
    with pytest.raises(InvalidMDPError):
        lq_from_dict(doc)


def test_a_wrong_closed_form_fails_its_check_row():
    """A pitfall row with a closed-form mean is a real check: a wrong closed form (here, claiming the restarted
    discount's mean is grad J) is contradicted by the sample and the row fails."""
    from verify.checks.lq_mc import LQCheck, LQEstimator, rtg_restart_discount

    lq = load_lq_example("lq1d_discounted")
    # (scaled by 1 + 1e-6 so that it is not identical to the catalog estimator, whose true closed form it would
    # inherit)
    wrong = LQEstimator("rtg_restart_discount", False, "", lambda ep: rtg_restart_discount(ep) * (1 + 1e-6),
                        lambda p, T: lq_gradient(p, horizon=T).flat)
    right = get_lq_estimator("rtg_restart_discount")
    rows = [run_lq_mc(lq, e, episodes=4000, alpha=1e-6) for e in (wrong, right)]
    check = LQCheck(lq.name, 0.0, np.zeros(lq.d), 0.0, 1e-7, tuple(rows))
    assert [check.status(r) for r in rows] == ["failed", "passed"] and not check.passed


def test_sizes_are_refused_before_the_work():
    from verify.errors import UsageError

    n = 2000
    with pytest.raises(UsageError, match="memory limit"):
        LQProblem(A=np.eye(n), B=np.ones((n, 1)), Q=np.eye(n), R=np.eye(1), W=np.eye(n), mu0=np.zeros(n),
                  Sigma0=np.eye(n), K=np.zeros((1, n)), k=[0.0], log_std=[0.0], horizon=1000)
