"""Precision is an input (``verify.checks.precision``): float32 round-off is never "proved biased", a float32 bug is
still caught, and a verdict limited by float32 says so and how to switch to float64.

Correctness of the float32 estimators is by construction (the float64 catalog estimator, or the same formula, cast
to float32); their float64 twins are unbiased exactly (tests/test_gradcheck.py)."""
import numpy as np
import pytest

from verify.model.builtin import builtin_examples
from verify.checks.estimators import get_estimator
from verify.checks.gradcheck import check_estimator
from verify.checks.precision import ROUNDOFF_FACTOR, Precision, effective_steps


def _f32(name):
    e = get_estimator(name)

    def fn(episodes):
        return e.per_episode(episodes).astype(np.float32)
    fn.__name__ = fn.__qualname__ = f"{name}_f32"
    return fn


def rtg_in_float32(episodes):
    """Reward-to-go REINFORCE computed in float32 throughout (discounts, sums, scores)."""
    r = episodes.r_t.astype(np.float32)
    T = r.shape[1]
    disc = np.float32(episodes.mdp.gamma) ** np.arange(T, dtype=np.float32)
    G = np.cumsum((disc * r * episodes.mask)[:, ::-1], axis=1, dtype=np.float32)[:, ::-1]
    score = episodes.policy.score(episodes.s_t[:, :T], episodes.a_t).astype(np.float32)
    return np.einsum("nt,nt...->n...", G * episodes.mask, score).astype(np.float32)


def restarted_in_float32(episodes):
    """The restarted discount gamma^(t'-t), in float32: a real bug in the precision users write."""
    r = episodes.r_t.astype(np.float32)
    g = np.float32(episodes.mdp.gamma)
    G = np.zeros_like(r)
    acc = np.zeros(r.shape[0], np.float32)
    for t in range(r.shape[1] - 1, -1, -1):
        acc = r[:, t] * episodes.mask[:, t] + g * acc
        G[:, t] = acc
    score = episodes.policy.score(episodes.s_t[:, :r.shape[1]], episodes.a_t).astype(np.float32)
    return np.einsum("nt,nt...->n...", G * episodes.mask, score).astype(np.float32)


CORRECT = [_f32("reward_to_go"), _f32("baseline_value"), _f32("gae"), rtg_in_float32]


@pytest.mark.parametrize("example", ["bandit", "chain", "gridworld", "discounted"])
@pytest.mark.parametrize("fn", CORRECT, ids=lambda f: f.__name__)
def test_correct_float32_numpy_estimators_are_never_biased(example, fn):
    check = check_estimator(fn, example, episodes=1000, alpha=1e-6)
    assert check.precision.dtype == "float32" and check.precision.limited
    # never "biased": exact and consistent where trajectories can be enumerated; sampled (discounted, horizon
    # null) it may lack the power for "consistent" at 1000 episodes, and is then undecided, never inconsistent
    assert check.verdict != "inconsistent", check.format()
    if check.mc.moments is not None:
        assert check.verdict == "consistent", check.format()
        m = check.mc.moments
        # The float64 tolerance would have called this round-off a bias on some of them (the symptom) ...
        assert np.abs(m.bias).max() <= check.precision.rtol * m.scale
        text = check.format()
        assert "to float32 round-off" in text and "float64" in text and "astype(np.float64)" in text


@pytest.mark.parametrize("example", ["chain", "gridworld"])
@pytest.mark.parametrize("fn", [_f32("rtg_restart_discount"), restarted_in_float32], ids=lambda f: f.__name__)
def test_float32_restarted_discount_is_still_caught_and_named(example, fn):
    check = check_estimator(fn, example, episodes=1000)
    assert check.verdict == "biased" and "rtg_restart_discount" in check.matches, check.format()
    m = check.mc.moments
    assert np.abs(m.bias).max() > 100 * check.precision.rtol * m.scale      # far above float32 round-off


def test_float64_keeps_its_own_tolerance():
    check = check_estimator(get_estimator("reward_to_go"), "chain", episodes=500)
    assert check.precision.dtype == "float64" and not check.precision.limited
    assert check.precision.rtol == 1e-9 and "precision:" not in check.format()


def test_the_tolerance_formula():
    chain = builtin_examples()["chain"]
    steps = effective_steps(chain.mdp, chain.policy)
    p = Precision("float32", "x", steps)
    assert p.rtol == pytest.approx(ROUNDOFF_FACTOR * 2.0 ** -23 * steps)
    assert Precision("float64", "x", steps).rtol == 1e-9
    assert Precision("float16", "x", 1.0).coarser(p).dtype == "float16"


# --- framework losses ------------------------------------------------------------------------------------------------

torch = pytest.importorskip("torch") if True else None


class _Tabular(torch.nn.Module):
    def __init__(self, S, A):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.zeros(S, A, dtype=torch.float64))

    def forward(self, obs):
        return obs @ self.theta


def torch_reinforce_default_dtype(policy, batch):
    """The usual PyTorch loss: gamma ** torch.arange(T) is float32 (torch's default dtype)."""
    logp = torch.distributions.Categorical(logits=policy(batch.obs)).log_prob(batch.actions)
    disc = batch.gamma ** torch.arange(batch.rewards.shape[1])
    G = (disc * batch.rewards).flip(1).cumsum(1).flip(1)
    return -(logp * G * batch.mask).sum(1).mean()


def torch_restarted_default_dtype(policy, batch):
    logp = torch.distributions.Categorical(logits=policy(batch.obs)).log_prob(batch.actions)
    r = (batch.rewards * batch.mask).float()
    G = torch.zeros_like(r)
    acc = torch.zeros(r.shape[0])
    for t in reversed(range(r.shape[1])):
        acc = r[:, t] + batch.gamma * acc
        G[:, t] = acc
    return -(logp * G * batch.mask).sum(1).mean()


@pytest.mark.parametrize("example", ["bandit", "chain"])
def test_torch_float32_discount_is_unbiased_and_says_float32(example):
    from verify.frameworks.torch import assert_loss_unbiased

    mdp = builtin_examples()[example].mdp
    check = assert_loss_unbiased(_Tabular(mdp.n_states, mdp.n_actions), torch_reinforce_default_dtype, mdp,
                                 batch_size=4)
    assert check.exact and check.precision.dtype == "float32" and check.precision.framework == "torch"
    text = check.format()
    assert "torch.set_default_dtype(torch.float64)" in text and "get_default_dtype() = float32" in text


def test_torch_float32_restarted_discount_is_still_biased():
    from verify.frameworks.torch import check_loss

    mdp = builtin_examples()["chain"].mdp
    check = check_loss(_Tabular(mdp.n_states, mdp.n_actions), torch_restarted_default_dtype, mdp, batch_size=4)
    assert check.verdict == "biased" and check.precision.dtype == "float32", check.format()
    assert ("rtg_restart_discount", pytest.approx(1.0, rel=1e-4)) in check.matches


def test_torch_float64_loss_keeps_float64_tolerance():
    from verify.frameworks.torch import check_loss

    def reinforce64(policy, batch):
        logp = torch.distributions.Categorical(logits=policy(batch.obs)).log_prob(batch.actions)
        disc = batch.gamma ** torch.arange(batch.rewards.shape[1], dtype=torch.float64)
        G = (disc * batch.rewards).flip(1).cumsum(1).flip(1)
        return -(logp * G * batch.mask).sum(1).mean()

    mdp = builtin_examples()["chain"].mdp
    check = check_loss(_Tabular(mdp.n_states, mdp.n_actions), reinforce64, mdp, batch_size=4)
    assert check.verdict == "unbiased" and check.precision.dtype == "float64" and "precision" not in check.format()


def test_jax_float32_loss_is_unbiased_and_float32_restart_biased():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from verify.frameworks.jax import check_loss

    def apply(params, obs):
        return obs @ params["w"]

    def loss(params, batch, restart=False):
        logp = jax.nn.log_softmax(apply(params, batch.obs)).astype(jnp.float32)
        logp_a = jnp.take_along_axis(logp, batch.actions[..., None], axis=-1)[..., 0]
        r = (batch.rewards * batch.mask).astype(jnp.float32)
        g = jnp.float32(batch.gamma)
        if restart:
            def step(acc, r_t):
                acc = r_t + g * acc
                return acc, acc
            _, G = jax.lax.scan(step, jnp.zeros(r.shape[0], jnp.float32), r.T[::-1])
            G = G[::-1].T
        else:
            disc = g ** jnp.arange(r.shape[1], dtype=jnp.float32)
            G = jnp.cumsum((disc * r)[:, ::-1], axis=1)[:, ::-1]
        return -(logp_a * G * batch.mask).sum(axis=1).mean()

    from examples.frameworks.problem import two_step

    mdp = two_step()                 # three trajectories: exact verdicts, few compilations
    params = {"w": jnp.zeros((mdp.n_states, mdp.n_actions))}
    ok = check_loss(apply, params, loss, mdp, batch_size=4)
    assert ok.verdict == "unbiased" and ok.precision.dtype == "float32", ok.format()
    assert "float64" in ok.format()
    bad = check_loss(apply, params, lambda p, b: loss(p, b, restart=True), mdp, batch_size=4, name="restart32")
    assert bad.verdict == "biased", bad.format()
