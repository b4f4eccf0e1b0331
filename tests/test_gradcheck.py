"""verify.checks.gradcheck: a user's estimator against the exact gradient, through the public API and the CLI.

Expected values come from elsewhere: hand-derived biases of each pitfall on a one-state problem, exact moments of
the catalog's own entries (``moments.exact_moments``) and the catalog's ``unbiased`` flags. Statistical checks use
fixed seeds; their false-alarm bounds are stated where they run.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from verify.model.builtin import EXAMPLES_DIR, builtin_examples
from verify.cli import main
from verify.numerics.episodes import reward_to_go, score_sums
from verify.errors import UsageError
from verify.checks.estimators import ESTIMATORS, get_estimator
from verify.cli._estimator_import import load_estimator
from verify.checks.gradcheck import EstimatorCheck, EstimatorError, as_estimator, assert_estimator_unbiased, check_estimator
from verify.model.mdp import TabularMDP
from verify.checks.moments import exact_moments
from verify.model.policy import TabularSoftmax
from verify.model.problem import Problem
from verify.testing.strategies import problems

REPO = Path(__file__).resolve().parent.parent   # the repository: examples/ holds user_reinforce.py
EXAMPLES = builtin_examples()
CHAIN = EXAMPLES["chain"]
UNBIASED = [e for e in ESTIMATORS if e.unbiased]
# batch_normalized is left out: each of its values depends on the whole batch, so it has no per-episode mean and
# breaks the i.i.d. assumption of the test; the contract excludes it and the probe refuses it (tested below).
PITFALLS = [e for e in ESTIMATORS if not e.unbiased and not e.batch_dependent]


def as_user_function(estimator):
    """A catalog entry as a plain function, so nothing in gradcheck can special-case the ``Estimator`` type."""
    def user_fn(episodes):
        return estimator.per_episode(episodes)
    user_fn.__qualname__ = f"user_{estimator.name}"
    return user_fn


def my_reward_to_go(episodes):
    return score_sums(episodes, reward_to_go(episodes))


# --- the built-in estimators through the API ------------------------------------------------------------------------

# Enumerable examples: the verdict is exact (no false alarm possible). discounted.json (horizon null): the Monte
# Carlo test decides, at alpha = 1e-6 per check (a false alarm among them has probability <= 1e-5 per change of the
# random stream).
@pytest.mark.parametrize("estimator", UNBIASED, ids=lambda e: e.name)
@pytest.mark.parametrize("example", list(EXAMPLES))
def test_builtin_unbiased_estimators_pass(example, estimator):
    problem = EXAMPLES[example]
    # resolution 10: at 3000 episodes the sampled run on discounted resolves ~3x max |grad J|, not 10 %.
    check = assert_estimator_unbiased(as_user_function(estimator), problem, episodes=3000, seed=11, alpha=1e-6,
                                      resolution=10.0)
    assert check.verdict == "consistent"
    assert check.grad.shape == check.mean.shape == check.stderr.shape == problem.policy.theta.shape
    if problem.mdp.horizon is None:             # discounted.json: nothing to enumerate, Monte Carlo only
        assert check.exact_mean is None and check.exact_biased is None and check.test != "chi2"
    else:
        assert check.exact_biased is False and check.test == "chi2"
        assert np.abs(check.exact_bias).max() < 1e-12


@pytest.mark.parametrize("estimator", PITFALLS, ids=lambda e: e.name)
def test_each_pitfall_is_caught_on_the_chain_with_its_exact_bias(estimator):
    exact = exact_moments(estimator, CHAIN.mdp, CHAIN.policy)       # the catalog's own exact moments
    assert exact.biased                                             # chain.json: every pitfall is biased
    fn = as_user_function(estimator)
    check = check_estimator(fn, CHAIN, seed=3)                      # default 20000 episodes, alpha 1e-3
    assert check.verdict == "biased" and not check.passed           # exact: whatever the sample
    np.testing.assert_allclose(check.exact_bias, exact.bias, atol=1e-12)
    assert estimator.name in check.matches
    # Where the effect is twice the detectable one the Monte Carlo test alone rejects too: it misses with
    # probability < 1e-15 (non-centrality 4x the one that gives power 0.999).
    if check.effect > 2 * check.detectable:
        assert not check.consistent
    w = check.worst
    assert abs(check.exact_bias[w]) == pytest.approx(np.abs(exact.bias).max())
    with pytest.raises(AssertionError) as failure:
        assert_estimator_unbiased(fn, CHAIN, seed=3)
    message = str(failure.value)
    for needle in (f"user_{estimator.name}", "BIASED", check.component, f"exact grad J {check.grad[w]:.6g}",
                   f"exact bias {check.exact_bias[w]:+.3g}", f"sample mean {check.mean[w]:.6g}",
                   f"standard error {check.stderr[w]:.3g}", "p = ", "seed 3", "reproduce: check_estimator("):
        assert needle in message, (needle, message)


def one_state_problem(gamma=0.5):
    """One state, actions 'good' (reward 1) and 'bad' (0), horizon 2, uniform policy."""
    mdp = TabularMDP(initial=[1.0], transitions=[[[1.0], [1.0]]], rewards=[[1.0, 0.0]], gamma=gamma, horizon=2)
    return Problem(mdp, TabularSoftmax(np.zeros((1, 2))))


# With one state, a_0 and a_1 are independent; d = grad E[r] = pi_0 (e_0 - pi) = (1/4, -1/4) and
# grad J = (1 + gamma) d. Per pitfall, E[g]:
#   rtg_restart_discount  E[score_0 (r_0 + gamma r_1)] + E[score_1 r_1] = 2 d     -> bias (1 - gamma) d
#   rtg_skip_current      E[score_0 gamma r_1] + 0 = 0                            -> bias -(1 + gamma) d
#   action_baseline       E[score_t (G_t - gamma^t Q_t)] = 0                      -> bias -(1 + gamma) d
#   score_wrong_time      E[score_1 (r_0 + gamma r_1)] = gamma d                  -> bias -d
HAND_BIAS = {"rtg_restart_discount": lambda g: 1 - g, "rtg_skip_current": lambda g: -(1 + g),
             "action_baseline": lambda g: -(1 + g), "score_wrong_time": lambda g: -1.0}


@pytest.mark.parametrize("name", list(HAND_BIAS))
def test_exact_bias_matches_the_hand_derivation(name):
    gamma, d = 0.5, np.array([[0.25, -0.25]])
    check = check_estimator(as_user_function(get_estimator(name)), one_state_problem(gamma), episodes=500)
    np.testing.assert_allclose(check.grad, (1 + gamma) * d, atol=1e-15)
    np.testing.assert_allclose(check.exact_bias, HAND_BIAS[name](gamma) * d, atol=1e-15)
    assert check.verdict == "biased"


def test_a_bias_below_the_monte_carlo_limit_is_still_proved():
    # gamma = 0.99: restart bias (1 - gamma) d = 0.0025 per component, invisible in 200 episodes.
    check = check_estimator(as_user_function(get_estimator("rtg_restart_discount")), one_state_problem(0.99),
                            episodes=200, alpha=1e-6)
    assert check.consistent and check.effect < check.detectable      # the sample alone would pass it (alpha 1e-6)
    assert check.verdict == "biased" and "exact bias +0.0025" in check.format()


def test_batch_dependent_estimators_are_refused_by_the_contract_probe():
    with pytest.raises(EstimatorError, match="user_batch_normalized is not a per-episode function"):
        check_estimator(as_user_function(get_estimator("batch_normalized")), CHAIN, episodes=500)


# --- what users call and get back -----------------------------------------------------------------------------------

def test_result_is_frozen_deterministic_and_json_serialisable():
    a = check_estimator(my_reward_to_go, CHAIN, episodes=1000, seed=5)
    b = check_estimator(my_reward_to_go, CHAIN, episodes=1000, seed=5)
    c = check_estimator(my_reward_to_go, CHAIN, episodes=1000, seed=6)
    assert isinstance(a, EstimatorCheck)
    np.testing.assert_array_equal(a.mean, b.mean)
    assert a.p_value == b.p_value and not np.array_equal(a.mean, c.mean)
    with pytest.raises(AttributeError):
        a.seed = 1
    data = json.loads(json.dumps(a.to_json(), allow_nan=False))
    assert data["verdict"] == "consistent" and data["seed"] == 5 and len(data["exact_bias"]) == 4
    assert a.reproduce == "check_estimator(my_reward_to_go, 'chain', episodes=1000, seed=5, alpha=0.001)"


def test_problem_forms_mdp_with_default_uniform_policy_file_and_policy_override():
    mdp = CHAIN.mdp
    bare = check_estimator(my_reward_to_go, mdp, episodes=500)
    uniform = check_estimator(my_reward_to_go, Problem(mdp, TabularSoftmax(np.zeros((4, 2)))), episodes=500)
    np.testing.assert_array_equal(bare.grad, uniform.grad)
    from_file = check_estimator(my_reward_to_go, EXAMPLES_DIR / "chain.json", episodes=500)
    np.testing.assert_array_equal(from_file.grad, check_estimator(my_reward_to_go, CHAIN, episodes=500).grad)
    overridden = check_estimator(my_reward_to_go, CHAIN, policy=TabularSoftmax(np.zeros((4, 2))), episodes=500)
    np.testing.assert_array_equal(overridden.grad, bare.grad)


# Enumerable problems (horizon 1..4, |theta| up to 30): the verdict is exact, so no false alarms at all.
@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(problems())
def test_unbiased_user_function_passes_on_generated_problems(problem):
    check = assert_estimator_unbiased(my_reward_to_go, problem, episodes=300)
    assert check.exact_biased is False


# Horizon null: the Monte Carlo test decides. 25 problems at alpha = 1e-6: a false alarm anywhere has probability
# <= 25 * 1e-6. Tabular |theta| <= 1 and 3000 episodes keep every action in the sample (module docs). A problem whose
# estimates never vary (all rewards zero) cannot be decided: "undecided", never a pass, never a failure.
@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(problems(horizon=None, kind="tabular_softmax", actions=st.integers(2, 3), reward_kind="transition",
                gamma=st.floats(0.0, 0.9), max_abs_theta=1.0))
def test_unbiased_user_function_passes_monte_carlo_on_horizon_null(problem):
    check = check_estimator(my_reward_to_go, problem, episodes=3000, alpha=1e-6)
    assert check.exact_mean is None
    assert check.verdict == "consistent" or (check.verdict == "undecided" and check.mc.undecided_reason), \
        check.format()


def test_hypothesis_finds_and_shrinks_the_restarted_discount_bug():
    def restarted(episodes):
        return score_sums(episodes, reward_to_go(episodes, restart_discount=True))

    quiet = settings(database=None, derandomize=True, max_examples=200, phases=[Phase.generate, Phase.shrink],
                     suppress_health_check=list(HealthCheck))
    # episodes=2 keeps each call cheap: on enumerable problems the bias is proved exactly, whatever the sample.
    problem = find(problems(), lambda p: check_estimator(restarted, p, episodes=2).verdict == "biased",
                   settings=quiet)
    # The bug needs a discount (gamma < 1) and a second step with a reward after the first action.
    assert problem.mdp.gamma < 1 and problem.mdp.horizon >= 2


# --- contract violations: one clear error naming the function ---------------------------------------------------------

def _nan_at_last(episodes):
    out = my_reward_to_go(episodes)
    out[-1, 0, 0] = np.nan
    return out


def _mutates_rewards(episodes):
    episodes.r_t[:] = 0.0
    return my_reward_to_go(episodes)


def _noisy(episodes):
    return my_reward_to_go(episodes) + np.random.default_rng().normal(size=(episodes.n, 4, 2))


def _ignores_the_mask(episodes):
    T = episodes.T
    R = (episodes.r_t * episodes.discount_t).sum(axis=1)
    return np.einsum("n,nt...->n...", R, episodes.policy.score(episodes.s_t[:, :T], episodes.a_t))


def _raises(episodes):
    return 1 / 0


CONTRACT = {
    "batch mean instead of per episode": (lambda e: my_reward_to_go(e).mean(axis=0),
                                          r"returned shape \(4, 2\), expected an array of shape \(64, 4, 2\)"
                                          r".*not their mean"),
    "flattened": (lambda e: my_reward_to_go(e).reshape(e.n, -1), r"shape \(64, 8\).*reshape to \[N, \*theta.shape\]"),
    "one number per episode": (lambda e: np.zeros(e.n), r"returned shape \(64,\), expected"),
    "NaN": (_nan_at_last, r"returned nan for episode 63, theta\[0, 0\] \(1 non-finite entries\)"),
    "inf": (lambda e: np.full((e.n, 4, 2), np.inf), r"returned inf for episode 0.*must be finite"),
    "a list": (lambda e: my_reward_to_go(e).tolist(), r"returned list \[\[\[.*not an array"),
    "None": (lambda e: None, r"returned NoneType None, not an array"),
    "a scalar": (lambda e: 0.0, r"returned float 0.0, not an array"),
    "complex": (lambda e: my_reward_to_go(e) + 0j, r"dtype complex128; the contract asks for real numbers"),
    "an exception": (_raises, r"_raises raised ZeroDivisionError: division by zero \(on a batch of 64 episodes\)"),
    "mutating its input": (_mutates_rewards, r"raised ValueError: .*read-only.*copy them before modifying"),
    "internal randomness": (_noisy, r"_noisy is not a per-episode function: its estimate for episode 0 changed"),
    "padding counted": (_ignores_the_mask, r"_ignores_the_mask depends on padding: .*episodes.mask"),
    "not callable": (42, r"must be a function episodes -> \[N, \*theta.shape\], got int 42"),
}


@pytest.mark.parametrize("case", list(CONTRACT))
def test_contract_violations_are_clear_errors(case):
    fn, pattern = CONTRACT[case]
    with pytest.raises(EstimatorError, match=pattern) as err:
        check_estimator(fn, CHAIN, episodes=100)
    assert isinstance(err.value, UsageError)                    # the CLI's exit 2
    assert "\n" not in str(err.value)
    if callable(fn):
        assert fn.__qualname__ in str(err.value) or "<lambda>" in str(err.value)
    if case == "an exception":
        assert isinstance(err.value.__cause__, ZeroDivisionError)   # the user's traceback is kept


@pytest.mark.parametrize("kwargs, pattern", [
    ({"problem": "not a problem"}, "cannot read MDP file"),
    ({"problem": 3}, "needs a Problem, a TabularMDP"),
    ({"policy": "uniform"}, "policy must be a verify.policy.Policy"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"alpha": 1.5}, "alpha must lie strictly between 0 and 1"),
    ({"episodes": 1}, "at least 2"),
    ({"covariance": "diagonal"}, "unknown covariance"),
])
def test_bad_arguments_are_usage_errors(kwargs, pattern):
    kwargs = {"problem": CHAIN, **kwargs}
    with pytest.raises(UsageError, match=pattern):
        check_estimator(my_reward_to_go, kwargs.pop("problem"), **kwargs)


def test_as_estimator_keeps_catalog_entries_usable():
    est = as_estimator(get_estimator("reward_to_go"))
    assert est.name == "reward_to_go" and est.unbiased and not est.batch_dependent
    assert check_estimator(get_estimator("reward_to_go"), CHAIN, episodes=500).passed


# --- loading by name and the CLI -------------------------------------------------------------------------------------

BAD_MODULE = '''
import numpy as np

def wrong_shape(episodes):
    return np.zeros(3)

not_a_function = 3
'''


@pytest.mark.parametrize("spec, pattern", [
    ("nonexistent_pkg.mod:f", "no module named 'nonexistent_pkg'"),
    ("examples.user_reinforce:missing", "module examples.user_reinforce has no attribute 'missing'"),
    ("examples.user_reinforce:np.pi", "np.pi is float 3.14"),
    ("missing/file.py:f", "no such file 'missing/file.py'"),
    ("examples.user_reinforce:", "expected package.module:function"),
    ("reinforce", "unknown estimator 'reinforce'"),
])
def test_load_estimator_errors(monkeypatch, spec, pattern):
    monkeypatch.chdir(REPO)
    with pytest.raises(UsageError, match=pattern):
        load_estimator(spec)


def test_load_estimator_by_module_file_and_catalog_name(monkeypatch):
    monkeypatch.chdir(REPO)
    from examples.user_reinforce import reinforce_fixed
    assert load_estimator("examples.user_reinforce:reinforce_fixed") is reinforce_fixed
    from_file = load_estimator("examples/user_reinforce.py:reinforce_fixed")
    assert from_file.__name__ == "reinforce_fixed" and from_file is not reinforce_fixed
    assert load_estimator("reward_to_go") is get_estimator("reward_to_go")


def pgverify(*args):
    return subprocess.run([sys.executable, "-m", "verify", *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO)


def test_cli_mc_with_user_estimators_exit_codes():
    buggy = pgverify("mc", "examples/chain.json", "--estimator", "examples.user_reinforce:reinforce_buggy",
                     "--episodes", "4000")
    assert buggy.returncode == 1, buggy.stderr
    assert "BIASED" in buggy.stdout and "rtg_restart_discount" in buggy.stdout
    assert ("reproduce: pgverify mc examples/chain.json --estimator examples.user_reinforce:reinforce_buggy "
            "--episodes 4000 --seed 0 --alpha 0.001") in buggy.stdout
    fixed = pgverify("mc", "examples/chain.json", "--estimator", "examples.user_reinforce:reinforce_fixed",
                     "--episodes", "4000")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "unbiased here: its exact mean equals grad J" in fixed.stdout
    bad = pgverify("mc", "examples/chain.json", "--estimator", "examples.no_such_module:f")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == ("pgverify mc: error: --estimator examples.no_such_module:f: no module named "
                          "'examples.no_such_module' (searched the current directory and sys.path)\n")


def test_cli_bad_functions_exit_2_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    module = tmp_path / "bad_estimators.py"
    module.write_text(BAD_MODULE)
    for spec, needle in [(f"{module}:wrong_shape", "returned shape (3,), expected an array of shape (64, 4, 2)"),
                         (f"{module}:not_a_function", "not_a_function is int 3, not a function"),
                         ("examples.user_reinforce:nowhere", "has no attribute 'nowhere'")]:
        for command in ("mc", "check"):
            assert main([command, "examples/chain.json", "--estimator", spec, "--episodes", "500"]) == 2
            err = capsys.readouterr().err
            assert err.startswith(f"pgverify {command}: error: ") and err.count("\n") == 1 and needle in err, err
    assert main(["mc", "examples/chain.json", "--estimator", "examples.user_reinforce:reinforce_fixed",
                 "--sampler", "gymnasium"]) == 2
    assert "works with catalog estimators only" in capsys.readouterr().err


def test_cli_check_with_estimator_checks_only_it(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    args = ["check", "examples/chain.json", "--episodes", "2000", "--json", "--estimator"]
    assert main(args + ["examples/user_reinforce.py:reinforce_fixed"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] and data["gradients"]["passed"] and data["estimator"]["verdict"] == "consistent"
    assert main(args + ["examples.user_reinforce:reinforce_buggy"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert not data["passed"] and "rtg_restart_discount" in data["estimator"]["matches"]
    assert main(["check", "examples/chain.json", "--episodes", "2000", "--no-color", "--estimator",
                 "examples.user_reinforce:reinforce_buggy"]) == 1
    text = capsys.readouterr().out
    assert "agree within" in text and "BIASED" in text and "score_wrong_time" not in text   # no catalog table
