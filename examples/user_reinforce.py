r"""REINFORCE as tutorials write it: a loop over episodes, returns, score sums. One classic bug can be switched on.

For each episode the gradient estimate is

    g(tau) = sum_t grad log pi(a_t|s_t) * gamma^t G_t,    G_t = sum_{t' >= t} gamma^(t'-t) r_t'  (reward-to-go),

an unbiased estimate of grad J for J = E[sum_t gamma^t r_t]. The classic bug drops the gamma^t in front: the
discount restarts at every step, which is not the gradient of any objective and biased whenever gamma < 1.

Both functions follow pgverify's estimator contract (``verify.checks.gradcheck``): they take a batch of episodes and
return one gradient estimate per episode, shape [N, *theta.shape]. ``test_user_reinforce.py`` checks them.

>>> from verify.model.builtin import builtin_examples
>>> from verify.numerics.sampler import sample_episodes
>>> import numpy as np
>>> chain = builtin_examples()["chain"]
>>> episodes = sample_episodes(chain.mdp, chain.policy, 5, np.random.default_rng(0))
>>> reinforce_fixed(episodes).shape                         # N = 5 episodes, theta is [4 states, 2 actions]
(5, 4, 2)
"""
import numpy as np


def reinforce(episodes, *, restart_discount: bool = False) -> np.ndarray:
    """Per-episode REINFORCE gradients with reward-to-go; ``restart_discount=True`` is the bug."""
    gamma = episodes.mdp.gamma
    policy = episodes.policy
    grads = np.zeros((episodes.n, *policy.theta.shape))
    for n in range(episodes.n):
        T = episodes.lengths[n]                 # steps after T are padding
        states, actions = episodes.s_t[n, :T], episodes.a_t[n, :T]
        rewards = episodes.r_t[n, :T]

        # Discounted reward-to-go, accumulated backwards: G_t = r_t + gamma G_{t+1}.
        returns = np.zeros(T)
        G = 0.0
        for t in reversed(range(T)):
            G = rewards[t] + gamma * G
            returns[t] = G
        if not restart_discount:
            returns = returns * gamma ** np.arange(T)     # step t's rewards count gamma^t in J

        scores = policy.score(states, actions)            # grad log pi(a_t|s_t), [T, *theta.shape]
        grads[n] = np.tensordot(returns, scores, axes=1)
    return grads


def reinforce_fixed(episodes) -> np.ndarray:
    """REINFORCE with reward-to-go, discounted from t = 0 (unbiased)."""
    return reinforce(episodes)


def reinforce_buggy(episodes) -> np.ndarray:
    """REINFORCE with reward-to-go whose discount restarts at each step (biased unless gamma = 1)."""
    return reinforce(episodes, restart_discount=True)
