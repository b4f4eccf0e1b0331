"""Rollout losses in JAX as purejaxrl writes them (``ppo.py``): time-major transitions, GAE by a reverse scan.

``ppo_loss`` is purejaxrl's ``_calculate_gae`` and ``_loss_fn`` for the first epoch of one update (theta =
theta_old, one minibatch = the whole rollout), with purejaxrl's lines: ``done`` is the transition's flag
(terminated or truncated), ``last_val`` the value after the last step, the clipped surrogate with normalised
advantages, the clipped value loss and the entropy bonus in one scalar. ``network`` is an actor-critic with
separate actor and critic (purejaxrl's ``ActorCritic``); ``actor`` is its policy head. ``rlax_a2c_loss`` uses
rlax's time-major conventions (``rlax.td_lambda`` with a bootstrap value, ``rlax.policy_gradient_loss``).
"""
import jax
import jax.numpy as jnp
import numpy as np

CONFIG = {"GAMMA": 0.9, "GAE_LAMBDA": 0.95, "CLIP_EPS": 0.2, "VF_COEF": 0.5, "ENT_COEF": 0.0}


def init(n_obs: int, n_actions: int, hidden: int = 8, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    layer = lambda m, n: {"w": rng.uniform(-1, 1, size=(m, n)) / np.sqrt(m), "b": np.zeros(n)}  # noqa: E731
    return {"actor": {"h": layer(n_obs, hidden), "out": layer(hidden, n_actions)},
            "critic": {"h": layer(n_obs, hidden), "out": layer(hidden, 1)}}


def _mlp(p, x):
    return jnp.tanh(x @ p["h"]["w"] + p["h"]["b"]) @ p["out"]["w"] + p["out"]["b"]


def network(params, obs):
    """(logits, value): purejaxrl's ActorCritic returns (pi, value)."""
    return _mlp(params["actor"], obs), _mlp(params["critic"], obs)[..., 0]


def actor(params, obs):
    """The policy head pgverify samples from."""
    return network(params, obs)[0]


def _log_prob(logits, action):
    return jnp.take_along_axis(jax.nn.log_softmax(logits), action[..., None], axis=-1)[..., 0]


def _entropy(logits):
    logp = jax.nn.log_softmax(logits)
    return -(jnp.exp(logp) * logp).sum(-1)


def ppo_loss(params, batch, config=CONFIG, normalize=True):
    """purejaxrl ppo.py, first epoch: GAE over the time-major trajectory, then the loss (lines as purejaxrl's)."""
    traj_batch = batch          # time-major [T, B]: done, action, value, reward, log_prob, obs
    last_val = batch.last_value

    def _get_advantages(gae_and_next_value, transition):
        gae, next_value = gae_and_next_value
        done, value, reward = transition
        delta = reward + config["GAMMA"] * next_value * (1 - done) - value
        gae = delta + config["GAMMA"] * config["GAE_LAMBDA"] * (1 - done) * gae
        return (gae, value), gae

    _, advantages = jax.lax.scan(_get_advantages, (jnp.zeros_like(last_val), last_val),
                                 (traj_batch.dones, traj_batch.values, traj_batch.rewards), reverse=True, unroll=16)
    gae, targets = advantages, advantages + traj_batch.values
    gae, targets = jax.lax.stop_gradient(gae), jax.lax.stop_gradient(targets)

    logits, value = network(params, traj_batch.obs)
    log_prob = _log_prob(logits, traj_batch.actions)
    value_pred_clipped = traj_batch.values + (value - traj_batch.values).clip(-config["CLIP_EPS"], config["CLIP_EPS"])
    value_losses = jnp.square(value - targets)
    value_losses_clipped = jnp.square(value_pred_clipped - targets)
    value_loss = 0.5 * jnp.maximum(value_losses, value_losses_clipped).mean()
    ratio = jnp.exp(log_prob - traj_batch.logprobs)
    if normalize:
        gae = (gae - gae.mean()) / (gae.std() + 1e-8)
    loss_actor1 = ratio * gae
    loss_actor2 = jnp.clip(ratio, 1.0 - config["CLIP_EPS"], 1.0 + config["CLIP_EPS"]) * gae
    loss_actor = -jnp.minimum(loss_actor1, loss_actor2).mean()
    entropy = _entropy(logits).mean()
    return loss_actor + config["VF_COEF"] * value_loss - config["ENT_COEF"] * entropy


def ppo_loss_no_norm(params, batch):
    return ppo_loss(params, batch, normalize=False)


def rlax_a2c_loss(params, batch, lambda_=0.95):
    """rlax, time-major per environment: TD(lambda) returns bootstrapped at the cut, the policy-gradient loss."""
    import rlax

    logits, _ = network(params, batch.obs)                             # [T, B, A]
    v_t = batch.next_values                        # V(s_{t+1}); at truncation the final observation's value
    # a cut episode: its step's return is r + gamma V(final obs), and the sequence stops there (discount 0)
    r_t = batch.rewards + batch.gamma * batch.truncated * v_t
    discount_t = batch.gamma * (1.0 - batch.dones)
    returns = jax.vmap(lambda r, d, v: rlax.lambda_returns(r, d, v, lambda_), in_axes=1, out_axes=1)(r_t, discount_t,
                                                                                                     v_t)
    adv = jax.lax.stop_gradient(returns - batch.values)
    pg = jax.vmap(rlax.policy_gradient_loss, in_axes=(1, 1, 1, 1))(logits, batch.actions, adv,
                                                                   jnp.ones_like(batch.rewards))
    return pg.mean()


def policy(n_obs: int, n_actions: int):
    """``pgverify loss --policy``: the policy head and the parameters for an MDP of these sizes."""
    return actor, init(n_obs, n_actions)
