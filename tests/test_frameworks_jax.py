"""JAX adapter: exact grad J through jax.grad against pgverify's own gradient and finite differences, the
gallery's verdicts, rlax as a client, and bad input. Skips only outside CI when jax or rlax is missing."""
import os

import numpy as np
import pytest

try:
    import jax
    import jax.numpy as jnp
    import rlax  # noqa: F401 - the extra installs it; the client test needs it
except ImportError:
    if os.environ.get("CI"):
        raise                      # CI installs the extra: a missing jax is a failure there
    pytest.skip("JAX/rlax are not installed (pip install 'pgverify[jax]'; CI installs them)", allow_module_level=True)

from examples.frameworks import jax_losses as gallery
from examples.frameworks import rlax_loss
from examples.frameworks.problem import fixed_length, two_step
from verify.model.builtin import builtin_examples
from verify.numerics.exact import gradient, objective
from verify.frameworks import LossError
from verify.frameworks._common import surrogate_policy
from verify.frameworks.jax import check_loss, exact_gradient
from verify.model.policy import LinearSoftmax, TabularSoftmax

pytestmark = pytest.mark.filterwarnings("ignore:Rlax softmax will be deprecated:PendingDeprecationWarning")


def matmul(params, obs):
    """Tabular softmax on one-hot observations (theta [S, A]) and linear softmax on features (theta [K])."""
    return obs @ params["theta"]


@pytest.mark.parametrize("example", ["chain", "discounted"])
def test_tabular_softmax_matches_the_exact_gradient(example):
    mdp = builtin_examples()[example].mdp
    theta = np.random.default_rng(1).normal(size=(mdp.n_states, mdp.n_actions))
    got = exact_gradient(matmul, {"theta": theta}, mdp)
    want = gradient(mdp, TabularSoftmax(theta))
    np.testing.assert_allclose(got.grad["['theta']"], want.grad, rtol=0, atol=1e-10)
    assert got.J == pytest.approx(want.J, abs=1e-10)


def test_linear_softmax_matches_the_exact_gradient():
    problem = builtin_examples()["gridworld"]
    phi = problem.policy.features
    theta = np.random.default_rng(2).normal(size=phi.shape[2])
    got = exact_gradient(matmul, {"theta": theta}, problem.mdp, observations=phi)
    want = gradient(problem.mdp, LinearSoftmax(phi, theta)).grad
    np.testing.assert_allclose(got.grad["['theta']"], want, rtol=0, atol=1e-10)


def test_two_layer_network_matches_finite_differences():
    # Central differences of J by pgverify's numpy DP on the network's probabilities (no jax.grad).
    mdp = builtin_examples()["chain"].mdp
    params = gallery.init(mdp.n_states, mdp.n_actions, hidden=5, seed=4)
    got = exact_gradient(gallery.logits, params, mdp)
    obs = np.eye(mdp.n_states)

    def J(p):
        with jax.enable_x64(True):      # the check scopes x64 to itself; finite differences need it too
            return objective(mdp, surrogate_policy(np.asarray(jax.nn.log_softmax(gallery.logits(p, obs)))))
    eps = 1e-6
    for layer in ("trunk", "pi"):
        for name in ("w", "b"):
            fd = np.zeros(params[layer][name].shape)
            for idx in np.ndindex(*fd.shape):
                up = {k: {n: v.copy() for n, v in d.items()} for k, d in params.items()}
                down = {k: {n: v.copy() for n, v in d.items()} for k, d in params.items()}
                up[layer][name][idx] += eps
                down[layer][name][idx] -= eps
                fd[idx] = (J(up) - J(down)) / (2 * eps)
            np.testing.assert_allclose(got.grad[f"['{layer}']['{name}']"], fd, rtol=0, atol=1e-8)
    assert not got.grad["['v']['w']"].any()           # the value head does not act


@pytest.fixture(scope="module")
def gallery_setup():
    mdp = two_step()
    return mdp, gallery.init(mdp.n_states, mdp.n_actions)


@pytest.mark.parametrize("loss", gallery.LOSSES, ids=lambda f: f.__name__)
def test_gallery_verdicts(gallery_setup, loss):
    mdp, params = gallery_setup
    # pad_to: static shapes, as JAX training loops pad (one compilation per batch size instead of one per length)
    check = check_loss(gallery.logits, params, loss, mdp, batch_size=2, second_batch_size=4, pad_to=mdp.horizon)
    assert check.verdict == gallery.VERDICTS[loss.__name__], check.format()
    assert check.exact
    if loss is gallery.restarted_discount:
        assert ("rtg_restart_discount", pytest.approx(1.0)) in check.matches
    if loss in (gallery.mean_over_timesteps, gallery.normalized_advantages):
        small, large = check.sizes
        assert large.nonproportional < small.nonproportional
    if loss is gallery.value_baseline_not_detached:
        i = check.names.index("['v']['b'][0]")
        assert check.grad[i] == 0 and abs(check.mean[i]) > 0.1


# --- rlax, called unchanged -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def theta():
    return np.random.default_rng(1).normal(size=(2, 2))


def test_rlax_equal_lengths_and_no_discount_is_proportional_one_over_T(theta):
    # Every episode lasts H = 3 steps, so the padded batch has T = 3 and policy_gradient_loss's mean over time is
    # (1/3) sum_t; discounted_returns with gamma = 1 is the reward-to-go. E[-grad loss] = grad J / 3.
    check = check_loss(rlax_loss.apply, {"theta": theta}, rlax_loss.rlax_loss, fixed_length(1.0), batch_size=2)
    assert (check.verdict, check.method) == ("proportional", "exact: per-episode")
    assert check.c == pytest.approx(1 / 3, rel=1e-9)


def test_rlax_with_discount_is_a_third_of_the_restarted_discount(theta):
    # discounted_returns computes G_t = r_t + gamma G_{t+1}: the discount restarts at t.
    check = check_loss(rlax_loss.apply, {"theta": theta}, rlax_loss.rlax_loss, fixed_length(0.9), batch_size=2)
    assert check.verdict == "biased"
    assert ("rtg_restart_discount", pytest.approx(1 / 3)) in check.matches


def test_rlax_with_episodes_of_different_lengths_is_batch_dependent():
    # The mean over time divides by the batch's padded length: a batch-level statistic.
    mdp = two_step()
    check = check_loss(rlax_loss.apply, {"theta": np.zeros((3, 2))}, rlax_loss.rlax_loss, mdp, batch_size=2,
                       second_batch_size=3)
    assert (check.verdict, check.convention, check.method) == ("biased", None, "exact: every batch")


# --- bad input ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    mdp = builtin_examples()["bandit"].mdp
    return mdp, {"theta": np.zeros((mdp.n_states, mdp.n_actions))}


def _logp(params, batch):
    logp = jax.nn.log_softmax(matmul(params, batch.obs))
    return jnp.take_along_axis(logp, batch.actions[..., None], axis=-1)[..., 0]


@pytest.mark.parametrize("loss, message", [
    (lambda p, b: -(_logp(p, b) * b.rewards), "non-scalar"),
    (lambda p, b: (_logp(p, b) * b.rewards).sum() * jnp.nan, "must be finite"),
    (lambda p, b: float(-(_logp(p, b) * b.rewards).sum()), "raised"),
])
def test_bad_losses(small, loss, message):
    mdp, params = small
    with pytest.raises(LossError, match=message):
        check_loss(matmul, params, loss, mdp, batch_size=2, pad_to=mdp.horizon)


def test_bad_policies(small):
    mdp, params = small
    with pytest.raises(LossError, match="sum to 1.5, not 1"):
        exact_gradient(lambda p, o: 0.5 + 0 * matmul(p, o), params, mdp, output="probs")
    with pytest.raises(LossError, match="policy raised TypeError"):
        exact_gradient(matmul, {"theta": np.zeros((5, 3))}, mdp)        # expects 5 features, gets one-hot [1, 1]
    with pytest.raises(LossError, match=r"observations has shape \(4, 2\)"):
        exact_gradient(matmul, params, mdp, observations=np.zeros((4, 2)))



def test_monte_carlo_when_nothing_can_be_enumerated():
    from verify.numerics.sampler import default_max_steps
    mdp = builtin_examples()["discounted"].mdp                   # horizon null

    def reinforce(params, batch):
        logp = jax.nn.log_softmax(matmul(params, batch.obs))
        logp_a = jnp.take_along_axis(logp, batch.actions[..., None], axis=-1)[..., 0]
        disc = batch.gamma ** jnp.arange(batch.rewards.shape[1])
        G = jnp.cumsum((disc * batch.rewards)[:, ::-1], axis=1)[:, ::-1]
        return -(logp_a * G * batch.mask).sum(axis=1).mean()
    check = check_loss(matmul, {"theta": np.zeros((mdp.n_states, mdp.n_actions))}, reinforce, mdp, batch_size=8,
                       batches=600, alpha=1e-6, tolerance=0.3, pad_to=default_max_steps(mdp))
    assert (check.method, check.verdict) == ("monte carlo", "unbiased"), check.format()
