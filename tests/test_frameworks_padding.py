"""The JAX check_loss's default padding (pad_to="auto"): padded and unpadded losses agree to round-off, a loss
whose value depends on the padding is detected and left unpadded, biased losses are still caught, and the number
of traces (compilations) of the loss is bounded, whatever the spread of episode lengths. Skips only outside CI
when jax is missing."""
import os

import numpy as np
import pytest

try:
    import jax
    import jax.numpy as jnp
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("JAX is not installed (pip install 'pgverify[jax]'; CI installs it)", allow_module_level=True)

from examples.frameworks import jax_losses as gallery
from examples.frameworks.problem import two_step
from verify.errors import UsageError
from verify.frameworks._common import Batch, batch_arrays, observation_table
from verify.frameworks._padding import AUTO_PAD_MIN, Padding, padding_changes_loss
from verify.frameworks.jax import check_loss
from verify.model.mdp import TabularMDP
from verify.model.policy import TabularSoftmax
from verify.numerics.sampler import sample_episodes


def leaky(horizon: int = 60):
    """Two live states and a terminal one: every step ends the episode with probability 0.1 (lengths spread from
    1 to the horizon), action 0 switches state and action 1 stays; rewards differ by state and action."""
    P = np.zeros((3, 2, 3))
    for s in range(2):
        P[s, 0, 1 - s], P[s, 1, s] = 0.9, 0.9
        P[s, :, 2] = 0.1
    P[2, :, 2] = 1.0
    R = np.array([[1.0, -0.5], [0.25, 2.0], [0.0, 0.0]])
    return TabularMDP(initial=[1.0, 0.0, 0.0], transitions=P, rewards=R, terminal=[2], gamma=0.95, horizon=horizon,
                      name="leaky")


def matmul(params, obs):
    return obs @ params["theta"]


def episodes_of(mdp, n=12, seed=0):
    return sample_episodes(mdp, TabularSoftmax(np.zeros((mdp.n_states, mdp.n_actions))), n,
                           np.random.default_rng(seed))


def value_and_grad(loss, params, b):
    with jax.enable_x64(True):
        batch = Batch(*(jnp.asarray(x) for x in b[:-1]), gamma=b.gamma)
        value, g = jax.value_and_grad(loss)(params, batch)
        return float(value), np.asarray(g["theta"])


def test_padding_to_the_horizon_leaves_a_masked_loss_unchanged():
    mdp = leaky()
    eps = episodes_of(mdp)
    lengths = np.asarray(eps.lengths)
    assert lengths.min() < lengths.max() < mdp.horizon          # real padding on both sides
    table = observation_table(mdp, "one_hot")
    params = {"theta": np.random.default_rng(1).normal(size=(mdp.n_states, mdp.n_actions))}
    natural = value_and_grad(loss_tabular, params, batch_arrays(eps, table))
    padded = value_and_grad(loss_tabular, params, batch_arrays(eps, table, mdp.horizon))
    assert natural[0] == pytest.approx(padded[0], rel=1e-13, abs=1e-13)
    np.testing.assert_allclose(natural[1], padded[1], rtol=1e-12, atol=1e-13)
    assert np.abs(natural[1]).max() > 1e-3


def loss_tabular(params, batch):
    """REINFORCE with reward-to-go, summed over masked steps (independent of T)."""
    logp = jax.nn.log_softmax(matmul(params, batch.obs))
    logp_a = jnp.take_along_axis(logp, batch.actions[..., None], axis=-1)[..., 0]
    disc = batch.gamma ** jnp.arange(batch.rewards.shape[1])
    G = jnp.cumsum((disc * batch.rewards)[:, ::-1], axis=1)[:, ::-1]
    return -(logp_a * G * batch.mask).sum(1).mean()


def loss_mean_over_padded_time(params, batch):
    """The same terms averaged over all B x T entries, padding included: its value scales as 1/T."""
    logp = jax.nn.log_softmax(matmul(params, batch.obs))
    logp_a = jnp.take_along_axis(logp, batch.actions[..., None], axis=-1)[..., 0]
    disc = batch.gamma ** jnp.arange(batch.rewards.shape[1])
    G = jnp.cumsum((disc * batch.rewards)[:, ::-1], axis=1)[:, ::-1]
    return -(logp_a * G * batch.mask).mean()


def test_the_probe_tells_a_masked_loss_from_a_mean_over_padded_time():
    mdp = leaky()
    eps = episodes_of(mdp)
    table = observation_table(mdp, "one_hot")
    params = {"theta": np.zeros((mdp.n_states, mdp.n_actions))}     # uniform policy: rewards decide the value
    padding = Padding("auto", mdp.horizon)

    def value(loss):
        return lambda b: value_and_grad(loss, params, b)[0]
    assert not padding_changes_loss(value(loss_tabular), eps, table, padding, seed=0)
    assert padding_changes_loss(value(loss_mean_over_padded_time), eps, table, padding, seed=0)
    # at two given lengths (the JAX adapter's T and T + 1, both past every episode): the same answers
    T = padding.length(0)
    assert not padding_changes_loss(value(loss_tabular), eps, table, padding, seed=0, at=(T, T + 1))
    assert padding_changes_loss(value(loss_mean_over_padded_time), eps, table, padding, seed=0, at=(T, T + 1))
    with pytest.raises(ValueError, match="padding lengths"):
        padding_changes_loss(value(loss_tabular), eps, table, padding, seed=0, at=(T + 1, T))


def test_default_padding_keeps_the_verdicts_and_catches_a_biased_loss():
    mdp = two_step()
    params = gallery.init(mdp.n_states, mdp.n_actions)
    for loss in (gallery.restarted_discount,):       # reinforce: tests/test_frameworks_jax.py, at pad_to=H
        check = check_loss(gallery.logits, params, loss, mdp, batch_size=2, second_batch_size=4)
        assert check.verdict == gallery.VERDICTS[loss.__name__], check.format()
        assert "padded to the horizon" in check.extra["padding"]
    assert gallery.VERDICTS["restarted_discount"] == "biased"


def test_a_loss_that_depends_on_padding_is_checked_unpadded():
    mdp = two_step()
    params = {"theta": np.zeros((mdp.n_states, mdp.n_actions))}
    auto = check_loss(matmul, params, loss_mean_over_padded_time, mdp, batch_size=2, second_batch_size=4)
    unpadded = check_loss(matmul, params, loss_mean_over_padded_time, mdp, batch_size=2, second_batch_size=4,
                          pad_to=None)
    assert auto.extra["padding"] == "each batch padded to its longest episode"
    assert (auto.verdict, auto.c) == (unpadded.verdict, unpadded.c)
    np.testing.assert_array_equal(auto.mean, unpadded.mean)


def test_the_loss_is_traced_a_bounded_number_of_times():
    mdp = leaky()
    lengths = np.asarray(episodes_of(mdp, n=200).lengths)
    assert np.unique(lengths).size > 8          # unpadded, as many compilations as distinct batch lengths
    params = {"theta": np.zeros((mdp.n_states, mdp.n_actions))}
    counts = []
    for batches in (40, 400):
        traces = [0]

        def loss(params, batch):                # a new function per check: nothing compiled is reused
            traces[0] += 1                      # Python runs only while jax traces the loss
            return loss_tabular(params, batch)
        check = check_loss(matmul, params, loss, mdp, batch_size=8, batches=batches)
        assert check.method == "monte carlo" and check.convention == "mean"
        assert check.verdict in ("unbiased", "undecided")
        counts.append(traces[0])
    # the padding probe's natural length (forward), the precision jaxpr, the batches (one vmapped value_and_grad
    # at the padded length: the convention probe's batch and all K batches) and the convention probe's single
    # episodes: the same 4 traces for 40 batches and for 400
    assert counts == [4, 4], counts


def test_the_batches_evaluated_together_equal_one_by_one():
    mdp = leaky(horizon=30)
    params = {"theta": np.random.default_rng(3).normal(size=(mdp.n_states, mdp.n_actions))}
    settings = dict(batch_size=5, batches=30, seed=4)
    together = check_loss(matmul, params, loss_tabular, mdp, **settings)
    alone = check_loss(matmul, params, loss_tabular, mdp, jit=False, **settings)     # eager, batch by batch
    assert together.method == alone.method == "monte carlo"
    np.testing.assert_allclose(together.mean, alone.mean, rtol=1e-12, atol=1e-15)
    assert together.verdict == alone.verdict


@pytest.mark.parametrize("source", ["sampler", "arbitrary past the end"])
def test_plain_batches_are_the_batches_one_at_a_time(source):
    from verify.checks.batchcheck import _plain
    from verify.frameworks._padding import batch_groups, plain_batches
    from verify.numerics.episodes import Episodes, StepEpisodes

    mdp = leaky()
    B, K = 3, 12
    eps = episodes_of(mdp, n=B * K, seed=5)
    assert isinstance(eps, StepEpisodes)        # the sampler's own: plain_batches hands them back as they are
    # arbitrary values past each episode's end (the sampler writes the final state and zeros there; other
    # sources need not): a batch one at a time keeps them up to its longest episode only
    rng = np.random.default_rng(6)
    past = np.arange(eps.s_t.shape[1])[None, :] > eps.lengths[:, None]
    eps = eps if source == "sampler" else Episodes(np.where(past, rng.integers(0, mdp.n_states, eps.s_t.shape), eps.s_t),
                   np.where(past[:, 1:], rng.integers(0, mdp.n_actions, eps.a_t.shape), eps.a_t),
                   np.where(past[:, 1:], rng.normal(size=eps.r_t.shape), eps.r_t), eps.lengths, eps.mdp, eps.policy)
    table = observation_table(mdp, "one_hot")
    plain = plain_batches(eps, B)
    for pad_to in ("auto", None, 64):
        groups = batch_groups(Padding(pad_to, mdp.horizon), plain, B)
        assert sorted(np.concatenate(list(groups.values())).tolist()) == list(range(K))
        for T, ks in groups.items():
            for k in ks:
                rows = slice(k * B, (k + 1) * B)
                one = _plain(eps.select(rows))
                assert T == (int(one.lengths.max()) if pad_to is None else Padding(pad_to, mdp.horizon).length(1))
                want, got = batch_arrays(one, table, T), batch_arrays(plain.select(rows), table, T)
                for field, a, b in zip(Batch._fields, want, got):
                    np.testing.assert_array_equal(a, b, err_msg=field)


def test_padding_rules():
    assert Padding("auto", 100).length(3) == 100 and Padding("auto", 100).static
    assert Padding(None, 100).length(3) is None
    assert Padding(7, None).length(3) == 7
    grow = Padding("auto", None)
    assert not grow.static
    assert [grow.length(n) for n in (1, 9, 3, 40)] == [AUTO_PAD_MIN, 16, 16, 64]   # powers of two, only growing
    assert Padding("auto", 5000).length(3000) == 4096 and Padding("auto", 5000).length(4500) == 5000
    for bad in ("static", 0, -1, 2.5, True):
        with pytest.raises(UsageError, match="pad_to must be"):
            Padding(bad, 10)


def test_a_loss_vmap_cannot_batch_is_evaluated_batch_by_batch(monkeypatch):
    import verify.frameworks.jax as vjax

    mdp = leaky(horizon=30)
    params = {"theta": np.random.default_rng(3).normal(size=(mdp.n_states, mdp.n_actions))}
    settings = dict(batch_size=5, batches=30, seed=4)
    together = check_loss(matmul, params, loss_tabular, mdp, **settings)
    tried = []

    def unbatchable(loss_fn, n_batches):
        def fail(*args):
            tried.append(n_batches)
            raise NotImplementedError("no batching rule")       # what vmap raises for such a primitive
        return fail
    monkeypatch.setattr(vjax, "_compiled_many", unbatchable)
    alone = check_loss(matmul, params, loss_tabular, mdp, **settings)
    assert len(tried) == 1                      # tried once, then batch by batch
    np.testing.assert_allclose(alone.mean, together.mean, rtol=1e-12, atol=1e-15)
    assert alone.verdict == together.verdict
