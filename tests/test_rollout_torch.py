"""PyTorch losses on rollouts: cleanrl's PPO loss (first epoch) unchanged, actor-critic parts, entropy as a
verdict, the pitfalls named, dropout / batch norm / recurrent policies refused, non-finite losses counted.
Skips only outside CI when torch is missing."""
import os

import numpy as np
import pytest

try:
    import torch
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("PyTorch is not installed (pip install 'pgverify[torch]'; CI installs it)", allow_module_level=True)

from examples.frameworks import torch_rollout as gallery
from examples.frameworks.problem import corridor
from verify.frameworks import LossError
from verify.frameworks.torch import check_loss, check_rollout_loss, exact_gradient

ROLLOUT = dict(n_envs=2, n_steps=4)          # 16 rollouts of one environment: every verdict below is exact


@pytest.fixture(scope="module")
def mdp():
    return corridor()


@pytest.fixture(scope="module")
def agent(mdp):
    return gallery.Agent(mdp.n_states, mdp.n_actions)


def test_cleanrl_ppo_first_epoch_is_unbiased_for_the_visited_weighting(mdp, agent):
    check = check_rollout_loss(agent, gallery.ppo_loss_no_norm, mdp, logits=gallery.actor_logits,
                               weighting="visited", **ROLLOUT)
    assert check.verdict == "unbiased" and check.method == "exact: per-environment", check.format()
    # the critic's own parameters get the value loss's gradient: reported, not judged
    assert check.critic_part > 0 and not check.policy[[n.startswith("critic") for n in check.names]].any()


def test_cleanrl_ppo_against_grad_J_names_the_dropped_discount(mdp, agent):
    check = check_rollout_loss(agent, gallery.ppo_loss_no_norm, mdp, logits=gallery.actor_logits, **ROLLOUT)
    assert check.verdict == "biased" and check.causes[0][0] == "visited_weighting", check.format()


def test_cleanrl_ppo_with_advantage_normalisation_is_a_batch_statistic(mdp, agent):
    check = check_rollout_loss(agent, gallery.ppo_loss, mdp, logits=gallery.actor_logits, weighting="visited",
                               **ROLLOUT)
    assert check.verdict == "biased" and check.method == "exact: every batch"
    assert [c for c, _ in check.causes] == ["batch_statistic"]


def test_cleanrl_ppo_drops_the_bootstrap_at_truncation(mdp, agent):
    check = check_rollout_loss(agent, gallery.ppo_loss_no_norm, mdp.replace(horizon=None),
                               logits=gallery.actor_logits, weighting="visited", time_limit=3, **ROLLOUT)
    assert check.verdict == "biased"
    assert check.causes[0][0] == "no_bootstrap_at_truncation" and "lambda = 0.95" in check.causes[0][1]


def test_entropy_bonus_is_a_verdict_with_its_coefficient(mdp, agent):
    check = check_rollout_loss(agent, gallery.ppo_loss_entropy, mdp, logits=gallery.actor_logits,
                               weighting="visited", **ROLLOUT)
    assert check.verdict == "biased" and check.causes[0][0] == "entropy"
    assert check.entropy[0] == pytest.approx(0.01, rel=1e-6)
    check = check_rollout_loss(agent, gallery.ppo_loss_entropy, mdp, logits=gallery.actor_logits,
                               weighting="visited", entropy_coef=0.01, **ROLLOUT)
    assert check.verdict == "unbiased" and "grad (J_roll + 0.01 H)" in check.format()


def test_shared_trunk_value_loss_biases_the_policy_part(mdp):
    model = gallery.SharedAC(mdp.n_states, mdp.n_actions)
    check = check_rollout_loss(model, gallery.a2c_loss, mdp, logits=gallery.shared_logits, weighting="visited",
                               **ROLLOUT)
    assert check.verdict == "biased" and check.causes[0][0] == "value_loss"
    # judged on the policy head alone, the same loss is unbiased: the bias lives in the shared trunk
    check = check_rollout_loss(model, gallery.a2c_loss, mdp, logits=gallery.shared_logits, weighting="visited",
                               policy_params=["pi."], **ROLLOUT)
    assert check.verdict == "unbiased", check.format()


def test_discounted_per_step_loss_is_unbiased_and_stationary_start_is_grad_J(mdp):
    policy = torch.nn.Linear(mdp.n_states, mdp.n_actions)
    check = check_rollout_loss(policy, gallery.reinforce_discounted, mdp, start="stationary", **ROLLOUT)
    assert check.verdict == "unbiased"
    # steady state: g_roll = grad J / E[L], so the loss's mean is a positive multiple of grad J itself
    grad = np.concatenate([g.ravel() for g in exact_gradient(policy, mdp).grad.values()])
    np.testing.assert_allclose(check.mean, grad / check.expected_length, rtol=1e-9, atol=1e-12)


def test_batch_major_layout(mdp):
    def batch_major(policy, batch):
        assert batch.actions.shape[1] == 4 and batch.obs.shape[1:] == (4, 5)     # [B, T]; B = 1 in the probe
        return gallery.reinforce_discounted(policy, batch)
    check = check_rollout_loss(torch.nn.Linear(5, 2), batch_major, mdp, time_major=False, **ROLLOUT)
    assert check.verdict == "unbiased"


def test_dropout_in_training_mode_is_refused_and_eval_is_checked(mdp):
    actor = gallery.DropoutActor(mdp.n_states, mdp.n_actions)
    with pytest.raises(LossError, match=r"Dropout\(p=0.6\) in training mode.*policy.eval\(\)"):
        check_rollout_loss(actor, gallery.reinforce_visited, mdp, **ROLLOUT)
    with pytest.raises(LossError, match="training mode"):
        check_loss(actor, gallery.reinforce_visited, mdp)
    check = check_rollout_loss(actor.eval(), gallery.reinforce_visited, mdp, weighting="visited", **ROLLOUT)
    assert check.verdict == "unbiased"


def test_recurrent_and_batch_norm_policies_are_refused(mdp):
    class GRUPolicy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(5, 4)
            self.head = torch.nn.Linear(4, 2)

        def forward(self, obs):
            return self.head(self.gru(obs)[0])
    with pytest.raises(LossError, match="recurrent.*GRU"):
        check_rollout_loss(GRUPolicy(), gallery.reinforce_visited, mdp, **ROLLOUT)
    bn = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    with pytest.raises(LossError, match="BatchNorm1d in training mode"):
        check_rollout_loss(bn, gallery.reinforce_visited, mdp, **ROLLOUT)


def test_non_finite_losses_are_counted_not_fatal(mdp):
    def nan_sometimes(policy, batch):
        loss = gallery.reinforce_visited(policy, batch)
        return loss * float("nan") if bool((batch.obs[..., 3] > 0).any()) else loss
    check = check_rollout_loss(torch.nn.Linear(5, 2), nan_sometimes, mdp, weighting="visited", **ROLLOUT)
    assert check.verdict == "undecided" and check.nan_batches > 0
    assert f"non-finite loss on {check.nan_batches} of" in check.format()


def test_reproduce_and_json(mdp, agent):
    check = check_rollout_loss(agent, gallery.ppo_loss_no_norm, mdp, logits=gallery.actor_logits,
                               weighting="visited", **ROLLOUT)
    assert "check_rollout_loss(policy, ppo_loss_no_norm, 'corridor', n_envs=2, n_steps=4" in check.reproduce
    data = check.to_json()
    assert data["verdict"] == "unbiased" and data["rollout"]["weighting"] == "visited"
    assert len(data["names"]) == len(data["target"]) == int(check.policy.sum())
