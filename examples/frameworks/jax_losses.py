"""The gallery in JAX: one policy network and six losses, written as a training loop writes them.

``apply(params, obs) -> (logits, value)`` is a shared trunk with two heads; ``logits`` picks the policy head for
``verify.frameworks.jax.check_loss(logits, params, loss, ...)``. Each loss takes ``(params, batch)`` and is
minimised. ``VERDICTS`` is what pgverify finds on ``problem.two_step()`` (asserted by the tests; see
docs/frameworks.md for why). ``tabular`` is the tabular softmax on index observations.
"""
import jax
import jax.numpy as jnp
import numpy as np


def init(n_obs: int, n_actions: int, hidden: int = 8, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    layer = lambda m, n: rng.uniform(-1, 1, size=(m, n)) / np.sqrt(m)  # noqa: E731
    return {"trunk": {"w": layer(n_obs, hidden), "b": np.zeros(hidden)},
            "pi": {"w": layer(hidden, n_actions), "b": np.zeros(n_actions)},
            "v": {"w": layer(hidden, 1), "b": np.zeros(1)}}


def apply(params, obs):
    h = jnp.tanh(obs @ params["trunk"]["w"] + params["trunk"]["b"])
    return h @ params["pi"]["w"] + params["pi"]["b"], (h @ params["v"]["w"] + params["v"]["b"])[..., 0]


def tabular(params, obs):
    """pi(a|s) = softmax(theta[s]) on index observations (``observations="index"``): pgverify's ``TabularSoftmax``
    as a function of ``{"theta": [S, A]}``."""
    return params["theta"][obs]


def logits(params, obs):
    """The policy head: what pgverify samples from."""
    return apply(params, obs)[0]


def _logp(params, batch):
    logp = jax.nn.log_softmax(logits(params, batch.obs))
    return jnp.take_along_axis(logp, batch.actions[..., None], axis=-1)[..., 0]


def _returns(batch, restart=False):
    """G_t = sum_{t' >= t} gamma^t' r_t'  (restart: gamma^(t' - t), the discount restarted at t)."""
    def step(acc, r):
        acc = r + batch.gamma * acc
        return acc, acc
    _, G = jax.lax.scan(step, jnp.zeros(batch.rewards.shape[0]), batch.rewards.T, reverse=True)
    G = G.T
    return G if restart else G * batch.gamma ** jnp.arange(batch.rewards.shape[1])


def reinforce(params, batch):
    """Correct: reward-to-go, summed over each episode's steps, averaged over episodes."""
    return -(_logp(params, batch) * _returns(batch) * batch.mask).sum(1).mean()


def mean_over_timesteps(params, batch):
    """A mean over all valid timesteps of the padded batch: divides by the batch's total length."""
    return -(_logp(params, batch) * _returns(batch) * batch.mask).sum() / batch.mask.sum()


def normalized_advantages(params, batch):
    """Advantages normalised by the batch's mean and standard deviation (over its valid steps)."""
    G, m = _returns(batch), batch.mask
    mean = (G * m).sum() / m.sum()
    std = jnp.sqrt(((G - mean) ** 2 * m).sum() / m.sum())
    adv = (G - mean) / (std + 1e-8)
    return -(_logp(params, batch) * adv * m).sum(1).mean()


def value_baseline_not_detached(params, batch):
    """A learned baseline from the shared value head, subtracted without jax.lax.stop_gradient."""
    _, V = apply(params, batch.obs)
    adv = _returns(batch) - batch.gamma ** jnp.arange(batch.rewards.shape[1]) * V   # should be stop_gradient(V)
    return -(_logp(params, batch) * adv * batch.mask).sum(1).mean()


def restarted_discount(params, batch):
    """Reward-to-go whose discount restarts at every step: sum_{t' >= t} gamma^(t' - t) r_t'."""
    return -(_logp(params, batch) * _returns(batch, restart=True) * batch.mask).sum(1).mean()


def entropy_bonus(params, batch, beta=0.1):
    """REINFORCE plus an entropy bonus (on purpose: it maximises J + beta * entropy, another objective)."""
    logp = jax.nn.log_softmax(logits(params, batch.obs))
    entropy = -(jnp.exp(logp) * logp).sum(-1)
    return reinforce(params, batch) - beta * (entropy * batch.mask).sum(1).mean()


LOSSES = (reinforce, mean_over_timesteps, normalized_advantages, value_baseline_not_detached, restarted_discount,
          entropy_bonus)
VERDICTS = {"reinforce": "unbiased", "mean_over_timesteps": "biased", "normalized_advantages": "biased",
            "value_baseline_not_detached": "biased", "restarted_discount": "biased", "entropy_bonus": "biased"}
