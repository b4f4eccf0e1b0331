"""Gaussian-policy losses in PyTorch and JAX on LQ problems: a correct REINFORCE loss passes, the tanh loss without
the change of variables and the restarted discount are caught with their fixes named; bad policies are refused.
Skips only outside CI when the framework is missing."""
import os

import numpy as np
import pytest

from verify.frameworks import LossError


def _need(module: str):
    try:
        return __import__(module)
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{module} is not installed (CI installs it)")


def _rtg(torch, batch, restart=False):
    T = batch.rewards.shape[1]
    if restart:                                   # the bug: gamma^(t' - t)
        G, acc = torch.zeros_like(batch.rewards), torch.zeros(batch.rewards.shape[0], dtype=torch.float64)
        for t in reversed(range(T)):
            acc = batch.rewards[:, t] + batch.gamma * acc
            G[:, t] = acc
        return G
    disc = batch.gamma ** torch.arange(T, dtype=torch.float64)
    return (disc * batch.rewards).flip(1).cumsum(1).flip(1)


def _losses(torch):
    def reinforce(policy, batch):
        logp = policy(batch.obs).log_prob(batch.actions).sum(-1)
        return -(logp * _rtg(torch, batch)).sum(1).mean()

    def tanh_no_jacobian(policy, batch):          # the squashed action scored as if it were Gaussian
        a = torch.tanh(batch.actions)
        return -(policy(batch.obs).log_prob(a).sum(-1) * _rtg(torch, batch)).sum(1).mean()

    def tanh_with_jacobian(policy, batch):        # the fix: change of variables
        a = torch.tanh(batch.actions)
        u = torch.atanh(a)
        logp = policy(batch.obs).log_prob(u).sum(-1) - torch.log(1 - a ** 2).sum(-1)
        return -(logp * _rtg(torch, batch)).sum(1).mean()

    def restarted(policy, batch):
        logp = policy(batch.obs).log_prob(batch.actions).sum(-1)
        return -(logp * _rtg(torch, batch, restart=True)).sum(1).mean()

    return reinforce, tanh_no_jacobian, tanh_with_jacobian, restarted


@pytest.mark.parametrize("problem", ["lq2d"])
def test_torch_reinforce_passes_and_the_two_bugs_are_caught_with_fixes(problem):
    torch = _need("torch")
    from verify.frameworks.gaussian import check_gaussian_loss, linear_gaussian_policy

    reinforce, tanh_bad, tanh_fixed, restarted = _losses(torch)
    policy = linear_gaussian_policy(problem)
    ok = check_gaussian_loss(policy, reinforce, problem, batches=200)
    assert ok.verdict == "unbiased" and ok.passed, ok.format()
    assert check_gaussian_loss(policy, tanh_fixed, problem, batches=200).passed
    bad = check_gaussian_loss(policy, tanh_bad, problem, batches=200, alpha=1e-6)
    assert bad.verdict == "biased" and bad.matches[0][0] == "tanh_no_jacobian", bad.format()
    assert "TanhTransform" in bad.format() and "atanh" in bad.format()
    late = check_gaussian_loss(policy, restarted, problem, batches=200, alpha=1e-6)
    assert late.verdict == "biased" and late.matches[0][0] == "rtg_restart_discount", late.format()
    assert "gamma^t" in late.matches[0][1]


def test_torch_multivariate_normal_policy_and_batch_sum():
    torch = _need("torch")
    from verify.frameworks.gaussian import check_gaussian_loss
    from verify.model.lq import load_lq_example

    lq = load_lq_example("lq2d")

    class MVN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.K = torch.nn.Parameter(torch.tensor(lq.K))
            self.k = torch.nn.Parameter(torch.tensor(lq.k))
            self.log_std = torch.nn.Parameter(torch.tensor(lq.log_std))

        def forward(self, obs):
            return torch.distributions.MultivariateNormal(obs @ self.K.T + self.k,
                                                          scale_tril=torch.diag(self.log_std.exp()))

    def reinforce(policy, batch):
        return -(policy(batch.obs).log_prob(batch.actions) * _rtg(torch, batch)).sum(1).mean()

    def summed(policy, batch):                      # a batch sum: B x grad J, caught by the Monte Carlo test
        return -(policy(batch.obs).log_prob(batch.actions).sum(-1) * _rtg(torch, batch)).sum()

    assert check_gaussian_loss(MVN(), reinforce, lq, batches=100).passed
    from verify.frameworks.gaussian import linear_gaussian_policy

    # B = 4 on the short 1-D problem: p ~ 1e-35 at 1000 batches (seeds 0-2), far below alpha
    res = check_gaussian_loss(linear_gaussian_policy("lq1d"), summed, "lq1d", batch_size=4, batches=1000, alpha=1e-6)
    assert res.verdict == "biased" and res.identical_to is None and 2 < res.c < 8, res.format()


def test_torch_policy_that_is_not_linear_gaussian_is_refused():
    torch = _need("torch")
    from verify.frameworks.gaussian import check_gaussian_loss

    class Tanh(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)

        def forward(self, obs):
            return torch.distributions.Normal(torch.tanh(self.lin(obs)), torch.ones(2, dtype=obs.dtype))

    with pytest.raises(LossError, match="not affine"):
        check_gaussian_loss(Tanh(), lambda p, b: p(b.obs).mean.sum(), "lq2d", batches=10)


def test_jax_plain_log_density_passes_and_blocked_log_std_is_caught():
    _need("jax")
    import jax
    import jax.numpy as jnp

    from verify.frameworks.gaussian import check_gaussian_loss_jax
    from verify.model.lq import load_lq_example

    lq = load_lq_example("lq2d")

    def apply(params, obs):
        return obs @ params["K"].T + params["k"], params["log_std"]

    def reinforce(params, batch):
        mean, log_std = apply(params, batch.obs)
        logp = (-0.5 * ((batch.actions - mean) / jnp.exp(log_std)) ** 2 - log_std - 0.5 * jnp.log(2 * jnp.pi)).sum(-1)
        disc = batch.gamma ** jnp.arange(batch.rewards.shape[1])
        G = jnp.cumsum((disc * batch.rewards)[:, ::-1], axis=1)[:, ::-1]
        return -(logp * G).sum(1).mean()

    def blocked(params, batch):
        return reinforce({**params, "log_std": jax.lax.stop_gradient(params["log_std"])}, batch)

    params = {"K": lq.K, "k": lq.k, "log_std": lq.log_std}
    assert check_gaussian_loss_jax(apply, params, reinforce, lq, batches=100).passed
    res = check_gaussian_loss_jax(apply, params, blocked, lq, batches=100)
    assert res.verdict == "biased" and res.matches[0][0] == "log_std_blocked"
    from verify.model.lq import lq_gradient

    # ravel_pytree orders the keys K, k, log_std: theta's own order, so grad J in params is grad J in theta
    np.testing.assert_allclose(res.grad, lq_gradient(lq).flat, rtol=1e-12)
