"""A real library as the client: rlax's policy-gradient loss fed by rlax's discounted returns, called unchanged.

``rlax.policy_gradient_loss(logits_t, a_t, adv_t, w_t)`` works on one sequence and returns
-mean_t(w_t log pi(a_t|s_t) adv_t); ``rlax.discounted_returns(r_t, discount_t, v_t)`` computes
G_t = r_t + discount_t G_{t+1}. The training loop below vmaps both over the batch and averages.
"""
import jax
import jax.numpy as jnp
import rlax


def apply(params, obs):
    """A linear softmax policy on one-hot observations (the tabular softmax): theta [S, A]."""
    return obs @ params["theta"]


def rlax_loss(params, batch):
    logits_t = apply(params, batch.obs)                                   # [B, T, A]
    discount_t = batch.gamma * jnp.ones_like(batch.rewards)
    returns = jax.vmap(rlax.discounted_returns)(batch.rewards, discount_t, jnp.zeros(batch.rewards.shape[0]))
    per_episode = jax.vmap(rlax.policy_gradient_loss)(logits_t, batch.actions, returns, batch.mask)
    return per_episode.mean()
