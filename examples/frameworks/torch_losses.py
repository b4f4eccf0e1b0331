"""The gallery in PyTorch: one policy network and six losses, written as a training loop writes them.

Each loss takes ``(policy, batch)`` (``verify.frameworks.Batch``: obs [B, T, S], actions/rewards/mask [B, T]) and
is minimised. ``VERDICTS`` is what ``verify.frameworks.torch.check_loss`` finds on ``problem.two_step()``; the
tests assert each one, and docs/frameworks.md says why. ``Tabular`` is the tabular softmax on index observations.
"""
import torch
from torch.distributions import Categorical


class ActorCritic(torch.nn.Module):
    """A shared trunk with a policy head (logits) and a value head."""

    def __init__(self, n_obs: int, n_actions: int, hidden: int = 8, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.trunk = torch.nn.Sequential(torch.nn.Linear(n_obs, hidden), torch.nn.Tanh())
        self.pi = torch.nn.Linear(hidden, n_actions)
        self.v = torch.nn.Linear(hidden, 1)

    def forward(self, obs):
        h = self.trunk(obs)
        return self.pi(h), self.v(h).squeeze(-1)


class Tabular(torch.nn.Module):
    """pi(a|s) = softmax(theta[s]) on index observations (``observations="index"``): pgverify's ``TabularSoftmax``
    as a module, for comparing the adapters' exact gradient with pgverify's own."""

    def __init__(self, theta):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.as_tensor(theta))

    def forward(self, obs):
        return self.theta[obs]


def logits(policy, obs):
    """The policy head: what pgverify samples from (``check_loss(..., logits=logits)``)."""
    return policy(obs)[0]


def _logp(policy, batch):
    return Categorical(logits=logits(policy, batch.obs)).log_prob(batch.actions)


def _returns(batch, restart=False):
    """G_t = sum_{t' >= t} gamma^t' r_t'  (restart: gamma^(t' - t), the discount restarted at t)."""
    G, acc = torch.zeros_like(batch.rewards), torch.zeros(batch.rewards.shape[0], dtype=batch.rewards.dtype)
    for t in reversed(range(batch.rewards.shape[1])):
        acc = batch.rewards[:, t] + batch.gamma * acc
        G[:, t] = acc
    if restart:
        return G
    return G * batch.gamma ** torch.arange(batch.rewards.shape[1], dtype=G.dtype)


def reinforce(policy, batch):
    """Correct: reward-to-go, summed over each episode's steps, averaged over episodes."""
    return -(_logp(policy, batch) * _returns(batch) * batch.mask).sum(1).mean()


def mean_over_timesteps(policy, batch):
    """A mean over all valid timesteps of the padded batch: divides by the batch's total length."""
    return -(_logp(policy, batch) * _returns(batch) * batch.mask).sum() / batch.mask.sum()


def normalized_advantages(policy, batch):
    """Advantages normalised by the batch's mean and standard deviation (over its valid steps)."""
    G, m = _returns(batch), batch.mask
    mean = (G * m).sum() / m.sum()
    std = (((G - mean) ** 2 * m).sum() / m.sum()).sqrt()
    adv = (G - mean) / (std + 1e-8)
    return -(_logp(policy, batch) * adv * m).sum(1).mean()


def value_baseline_not_detached(policy, batch):
    """A learned baseline from the shared value head, subtracted without .detach()."""
    _, V = policy(batch.obs)
    disc = batch.gamma ** torch.arange(batch.rewards.shape[1], dtype=V.dtype)
    adv = _returns(batch) - disc * V                      # should be V.detach()
    return -(_logp(policy, batch) * adv * batch.mask).sum(1).mean()


def restarted_discount(policy, batch):
    """Reward-to-go whose discount restarts at every step: sum_{t' >= t} gamma^(t' - t) r_t'."""
    return -(_logp(policy, batch) * _returns(batch, restart=True) * batch.mask).sum(1).mean()


def entropy_bonus(policy, batch, beta=0.1):
    """REINFORCE plus an entropy bonus (on purpose: it maximises J + beta * entropy, another objective)."""
    dist = Categorical(logits=logits(policy, batch.obs))
    return reinforce(policy, batch) - beta * (dist.entropy() * batch.mask).sum(1).mean()


LOSSES = (reinforce, mean_over_timesteps, normalized_advantages, value_baseline_not_detached, restarted_discount,
          entropy_bonus)
VERDICTS = {"reinforce": "unbiased", "mean_over_timesteps": "biased", "normalized_advantages": "biased",
            "value_baseline_not_detached": "biased", "restarted_discount": "biased", "entropy_bonus": "biased"}
