"""Rollout losses in PyTorch as cleanrl writes them (``ppo.py``): separate actor and critic, GAE from the buffers.

``ppo_loss`` is cleanrl's PPO update for the first epoch of one iteration (theta = theta_old, ratio 1, one
minibatch = the whole rollout), with cleanrl's variable names and lines: the GAE loop over the time-major buffers
(``dones`` is cleanrl's buffer: the observation starts an episode; ``next_done``/``next_value`` after the last
step), the clipped surrogate, advantage normalisation, the value loss and the entropy bonus in one scalar.
``a2c_loss`` is an actor-critic on a shared trunk. ``DropoutActor`` is pytorch/examples' REINFORCE policy
(dropout, training mode).
"""
import torch
from torch.distributions import Categorical

from examples.frameworks.torch_losses import ActorCritic, logits


class Agent(torch.nn.Module):
    """cleanrl's ``Agent``: an actor and a critic that share nothing."""

    def __init__(self, n_obs: int, n_actions: int, hidden: int = 8, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.critic = torch.nn.Sequential(torch.nn.Linear(n_obs, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))
        self.actor = torch.nn.Sequential(torch.nn.Linear(n_obs, hidden), torch.nn.Tanh(),
                                         torch.nn.Linear(hidden, n_actions))

    def get_value(self, x):
        return self.critic(x)

    def get_action_and_value(self, x, action=None):
        logits = self.actor(x)
        probs = Categorical(logits=logits)
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action), probs.entropy(), self.critic(x)


def actor_logits(agent, obs):
    """The policy head pgverify samples from."""
    return agent.actor(obs)


def ppo_loss(agent, batch, gae_lambda=0.95, clip_coef=0.2, ent_coef=0.0, vf_coef=0.5, norm_adv=True):
    """cleanrl ppo.py, first epoch, one minibatch: the lines below are cleanrl's (buffers renamed from ``batch``)."""
    obs, actions, logprobs, rewards, dones, values = (batch.obs, batch.actions, batch.logprobs, batch.rewards,
                                                      batch.starts.double(), batch.values)
    next_value, next_done, gamma = batch.last_value, batch.last_done.double(), batch.gamma
    num_steps = rewards.shape[0]
    with torch.no_grad():
        advantages = torch.zeros_like(rewards)
        lastgaelam = 0
        for t in reversed(range(num_steps)):
            if t == num_steps - 1:
                nextnonterminal = 1.0 - next_done
                nextvalues = next_value
            else:
                nextnonterminal = 1.0 - dones[t + 1]
                nextvalues = values[t + 1]
            delta = rewards[t] + gamma * nextvalues * nextnonterminal - values[t]
            advantages[t] = lastgaelam = delta + gamma * gae_lambda * nextnonterminal * lastgaelam
        returns = advantages + values
    b_obs = obs.reshape((-1,) + obs.shape[2:])
    b_logprobs, b_actions = logprobs.reshape(-1), actions.reshape(-1)
    b_advantages, b_returns = advantages.reshape(-1), returns.reshape(-1)
    _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs, b_actions)
    logratio = newlogprob - b_logprobs
    ratio = logratio.exp()
    mb_advantages = b_advantages
    if norm_adv:
        mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)
    pg_loss1 = -mb_advantages * ratio
    pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    pg_loss = torch.max(pg_loss1, pg_loss2).mean()
    newvalue = newvalue.view(-1)
    v_loss = 0.5 * ((newvalue - b_returns) ** 2).mean()
    entropy_loss = entropy.mean()
    return pg_loss - ent_coef * entropy_loss + v_loss * vf_coef


def ppo_loss_no_norm(agent, batch):
    """The same loss without advantage normalisation (cleanrl's ``--norm-adv False``)."""
    return ppo_loss(agent, batch, norm_adv=False)


def ppo_loss_entropy(agent, batch):
    """The same, with cleanrl's entropy bonus ent_coef = 0.01 and no normalisation."""
    return ppo_loss(agent, batch, norm_adv=False, ent_coef=0.01)


# An actor-critic on a shared trunk (stable-baselines3's default for discrete actions): the episode gallery's.
SharedAC, shared_logits = ActorCritic, logits


def a2c_loss(model, batch, vf_coef=0.5):
    """A2C with one-step TD advantages from the recorded values, and a value loss on the shared trunk."""
    logits, v = model(batch.obs)
    logp = Categorical(logits=logits).log_prob(batch.actions)
    adv = batch.rewards + batch.gamma * batch.next_values - batch.values      # the bootstrap at truncation included
    target = (batch.rewards + batch.gamma * batch.next_values)
    return -(logp * adv).mean() + vf_coef * ((v - target) ** 2).mean()


class DropoutActor(torch.nn.Module):
    """pytorch/examples reinforce.py's Policy: Linear, Dropout(0.6), ReLU, Linear."""

    def __init__(self, n_obs: int, n_actions: int, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.affine1 = torch.nn.Linear(n_obs, 16)
        self.dropout = torch.nn.Dropout(p=0.6)
        self.affine2 = torch.nn.Linear(16, n_actions)

    def forward(self, x):
        return self.affine2(torch.relu(self.dropout(self.affine1(x))))


def reinforce_visited(policy, batch):
    """Per-step score times the exact one-step advantage, every visited step weighted 1."""
    logp = Categorical(logits=policy(batch.obs)).log_prob(batch.actions)
    return -(logp * (batch.rewards + batch.gamma * batch.next_values - batch.values)).mean()


def reinforce_discounted(policy, batch):
    """The policy-gradient theorem per visited step: gamma^k_t grad log pi(a_t|s_t) times the one-step advantage."""
    logp = Categorical(logits=policy(batch.obs)).log_prob(batch.actions)
    adv = batch.rewards + batch.gamma * batch.next_values - batch.values
    return -(batch.gamma ** batch.steps.double() * logp * adv).mean()     # float64: an int power is float32
