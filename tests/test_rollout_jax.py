"""JAX losses on rollouts: purejaxrl's PPO loss (first epoch) unchanged, rlax's time-major functions, the actor's
part judged, x64 scoped to the check, batch-coupled (recurrent) policies refused. Skips only outside CI when JAX
is missing."""
import os

import numpy as np
import pytest

try:
    import jax
    import jax.numpy as jnp
    import rlax  # noqa: F401 - the extra installs it
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("JAX is not installed (pip install 'pgverify[jax]'; CI installs it)", allow_module_level=True)

from examples.frameworks import jax_rollout as gallery
from examples.frameworks.problem import corridor
from verify.frameworks import LossError
from verify.frameworks.jax import check_loss, check_rollout_loss

ROLLOUT = dict(n_envs=2, n_steps=4)


@pytest.fixture(scope="module")
def setup():
    mdp = corridor()
    return mdp, gallery.init(mdp.n_states, mdp.n_actions)


def test_purejaxrl_ppo_first_epoch_is_unbiased_for_the_visited_weighting(setup):
    mdp, params = setup
    check = check_rollout_loss(gallery.actor, params, gallery.ppo_loss_no_norm, mdp, weighting="visited", **ROLLOUT)
    assert check.verdict == "unbiased", check.format()
    assert check.critic_part > 0 and not check.policy[[n.startswith("['critic']") for n in check.names]].any()


def test_purejaxrl_ppo_as_written_normalises_over_the_batch(setup):
    mdp, params = setup
    check = check_rollout_loss(gallery.actor, params, gallery.ppo_loss, mdp, weighting="visited", **ROLLOUT)
    assert check.verdict == "biased" and [c for c, _ in check.causes] == ["batch_statistic"]


def test_rlax_time_major_a2c(setup):
    mdp, params = setup
    check = check_rollout_loss(gallery.actor, params, gallery.rlax_a2c_loss, mdp, weighting="visited", **ROLLOUT)
    assert check.verdict == "unbiased", check.format()
    check = check_rollout_loss(gallery.actor, params, gallery.rlax_a2c_loss, mdp.replace(horizon=None),
                               weighting="visited", time_limit=3, **ROLLOUT)
    assert check.verdict == "unbiased", check.format()        # the truncation bootstrap is in the rewards
    check = check_rollout_loss(gallery.actor, params, gallery.rlax_a2c_loss, mdp, **ROLLOUT)
    assert check.verdict == "biased" and check.causes[0][0] == "visited_weighting"


def test_policy_params_by_leaf_path(setup):
    mdp, params = setup
    check = check_rollout_loss(gallery.actor, params, gallery.ppo_loss_no_norm, mdp, weighting="visited",
                               policy_params=["['actor']['out']"], **ROLLOUT)
    assert check.verdict == "unbiased" and check.policy.sum() == 8 * 2 + 2
    with pytest.raises(LossError, match="match no parameter"):
        check_rollout_loss(gallery.actor, params, gallery.ppo_loss_no_norm, mdp, policy_params=["pi"], **ROLLOUT)


def test_x64_is_scoped_to_the_check(setup):
    mdp, params = setup
    before = jax.config.jax_enable_x64
    check_rollout_loss(gallery.actor, params, gallery.ppo_loss_no_norm, mdp, weighting="visited", **ROLLOUT)
    check_loss(gallery.actor, params, lambda p, b: -(jax.nn.log_softmax(gallery.actor(p, b.obs))[..., 0]
                                                     * b.mask).sum(1).mean(), mdp, batch_size=2)
    assert jax.config.jax_enable_x64 == before
    assert jnp.zeros(1).dtype == (jnp.float64 if before else jnp.float32)


def test_batch_coupled_policy_is_refused(setup):
    mdp, params = setup

    def recurrent(p, obs):        # a running sum over the leading axis: the output depends on the other rows
        return jnp.cumsum(gallery.actor(p, obs), axis=0)
    with pytest.raises(LossError, match="depends on the other observations"):
        check_rollout_loss(recurrent, params, gallery.ppo_loss_no_norm, mdp, **ROLLOUT)


def test_non_finite_losses_are_counted(setup):
    mdp, params = setup

    def nan_when_s3(p, batch):
        loss = gallery.ppo_loss_no_norm(p, batch)
        return jnp.where((batch.obs[..., 3] > 0).any(), jnp.nan, loss)
    check = check_rollout_loss(gallery.actor, params, nan_when_s3, mdp, weighting="visited", **ROLLOUT)
    assert check.verdict == "undecided" and check.nan_batches > 0


def test_same_verdict_as_pytorch_on_the_same_numbers():
    torch = pytest.importorskip("torch")
    from examples.frameworks import torch_rollout as tg
    from verify.frameworks.torch import check_rollout_loss as torch_check

    mdp = corridor()
    lin = torch.nn.Linear(mdp.n_states, mdp.n_actions, bias=False, dtype=torch.float64)
    w = np.asarray(lin.weight.detach()).T.copy()

    def reinforce(p, batch):
        logp = jax.nn.log_softmax(batch.obs @ p["w"])
        logp_a = jnp.take_along_axis(logp, batch.actions[..., None], axis=-1)[..., 0]
        adv = batch.rewards + batch.gamma * batch.next_values - batch.values
        return -(batch.gamma ** batch.steps * logp_a * adv).mean()
    a = check_rollout_loss(lambda p, o: o @ p["w"], {"w": w}, reinforce, mdp, **ROLLOUT)
    b = torch_check(lin, tg.reinforce_discounted, mdp, **ROLLOUT)
    assert a.verdict == b.verdict == "unbiased"
    # torch's weight is [A, S], the JAX parameter [S, A]
    np.testing.assert_allclose(a.mean, b.mean.reshape(mdp.n_actions, mdp.n_states).T.ravel(), rtol=1e-10,
                               atol=1e-14)
