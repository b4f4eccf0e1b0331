"""PyTorch adapter: exact grad J through autograd against pgverify's own gradient and finite differences, the
gallery's verdicts, the Monte Carlo path, and bad input. Skips only outside CI when torch is missing."""
import os
import re

import numpy as np
import pytest

try:
    import torch
except ImportError:
    if os.environ.get("CI"):
        raise                      # CI installs the extra: a missing torch is a failure there
    pytest.skip("PyTorch is not installed (pip install 'pgverify[torch]'; CI installs it)", allow_module_level=True)

from hypothesis import given, settings

from examples.frameworks import torch_losses as gallery
from examples.frameworks.problem import two_step
from verify.model.builtin import builtin_examples
from verify.numerics.exact import gradient, objective
from verify.frameworks import LossError
from verify.frameworks._common import surrogate_policy
from verify.frameworks.torch import assert_loss_unbiased, check_loss, exact_gradient
from verify.model.mdp import TabularMDP
from verify.model.policy import LinearSoftmax, TabularSoftmax
from verify.testing.strategies import problems


class Tabular(torch.nn.Module):
    """pi(a|s) = softmax(theta[s]) on one-hot observations: the tabular softmax as a module."""

    def __init__(self, theta):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.tensor(np.array(theta), dtype=torch.float64))

    def forward(self, obs):
        return obs @ self.theta


class Linear(torch.nn.Module):
    """pi(a|s) proportional to exp(phi[s, a] . theta), observing phi[s] as [A, K]."""

    def __init__(self, theta):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.tensor(np.array(theta), dtype=torch.float64))

    def forward(self, obs):
        return obs @ self.theta


def two_layer(n_obs, n_actions, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_obs, 6), torch.nn.Tanh(), torch.nn.Linear(6, n_actions))


@pytest.mark.parametrize("example", ["chain", "gridworld", "discounted"])
def test_tabular_softmax_module_matches_the_exact_gradient(example):
    mdp = builtin_examples()[example].mdp
    theta = np.random.default_rng(1).normal(size=(mdp.n_states, mdp.n_actions))
    got = exact_gradient(Tabular(theta), mdp)
    want = gradient(mdp, TabularSoftmax(theta))
    np.testing.assert_allclose(got.grad["theta"], want.grad, rtol=0, atol=1e-10)
    assert got.J == pytest.approx(want.J, abs=1e-10)


@settings(max_examples=20, deadline=None)
@given(problems(kind="tabular_softmax"))
def test_tabular_module_matches_pgverify_on_generated_problems(problem):
    # Generated MDPs reach the edge cases: terminal initial states, gamma 0 and 1, horizon 1, |theta| = 30.
    got = exact_gradient(Tabular(problem.policy.theta), problem.mdp)
    want = gradient(problem.mdp, problem.policy)
    np.testing.assert_allclose(got.grad["theta"], want.grad, rtol=0, atol=1e-10)


def test_index_observations_and_a_categorical_output():
    # An embedding of the state index is the tabular softmax; a module may return a Categorical distribution.
    mdp = builtin_examples()["chain"].mdp
    theta = np.random.default_rng(5).normal(size=(mdp.n_states, mdp.n_actions))
    emb = torch.nn.Embedding(mdp.n_states, mdp.n_actions, dtype=torch.float64)
    with torch.no_grad():
        emb.weight.copy_(torch.tensor(theta))
    want = gradient(mdp, TabularSoftmax(theta)).grad
    got = exact_gradient(emb, mdp, observations="index")
    np.testing.assert_allclose(got.grad["weight"], want, rtol=0, atol=1e-10)
    got = exact_gradient(emb, mdp, observations="index",
                         logits=lambda module, obs: torch.distributions.Categorical(logits=module(obs)))
    np.testing.assert_allclose(got.grad["weight"], want, rtol=0, atol=1e-10)


def test_linear_softmax_module_matches_the_exact_gradient():
    problem = builtin_examples()["gridworld"]
    assert problem.policy.kind == "linear_softmax"
    phi = problem.policy.features                                         # [S, A, K]
    theta = np.random.default_rng(2).normal(size=phi.shape[2])
    got = exact_gradient(Linear(theta), problem.mdp, observations=phi)
    want = gradient(problem.mdp, LinearSoftmax(phi, theta)).grad
    np.testing.assert_allclose(got.grad["theta"], want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("example", ["chain", "discounted"])
def test_two_layer_network_matches_finite_differences(example):
    # Central differences of J computed by pgverify's numpy DP on the network's probabilities: no autograd, no
    # torch DP; error O(eps^2) + round-off / eps.
    mdp = builtin_examples()[example].mdp
    net = two_layer(mdp.n_states, mdp.n_actions).double()
    obs = torch.eye(mdp.n_states, dtype=torch.float64)
    params = list(net.parameters())

    def J():
        with torch.no_grad():
            return objective(mdp, surrogate_policy(torch.log_softmax(net(obs), -1).numpy()))
    got = exact_gradient(net, mdp)
    eps = 1e-6
    for (name, p), k in zip(net.named_parameters(), range(len(params))):
        fd = np.zeros(p.shape)
        for idx in np.ndindex(*p.shape):
            with torch.no_grad():
                p[idx] += eps
                up = J()
                p[idx] -= 2 * eps
                down = J()
                p[idx] += eps
            fd[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(got.grad[name], fd, rtol=0, atol=1e-8, err_msg=name)


def test_network_gradient_equals_the_chain_rule_through_pgverify_tabular_gradient():
    # The "fed the framework's probabilities" route: grad J = sum_{s,a} dJ/dlogit[s,a] dlogit/dparams, with
    # dJ/dlogit from pgverify's tabular gradient at theta = log pi.
    mdp = builtin_examples()["chain"].mdp
    net = two_layer(mdp.n_states, mdp.n_actions, seed=3).double()
    logits = net(torch.eye(mdp.n_states, dtype=torch.float64))
    tab = gradient(mdp, surrogate_policy(torch.log_softmax(logits, -1).detach().numpy())).grad
    want = torch.autograd.grad((logits * torch.as_tensor(tab)).sum(), list(net.parameters()))
    got = exact_gradient(net, mdp)
    for (name, _), w in zip(net.named_parameters(), want):
        np.testing.assert_allclose(got.grad[name], w.numpy(), rtol=0, atol=1e-10)


@pytest.fixture(scope="module")
def gallery_setup():
    mdp = two_step()
    return mdp, gallery.ActorCritic(mdp.n_states, mdp.n_actions)


@pytest.mark.parametrize("loss", gallery.LOSSES, ids=lambda f: f.__name__)
def test_gallery_verdicts(gallery_setup, loss):
    mdp, policy = gallery_setup
    check = check_loss(policy, loss, mdp, logits=gallery.logits, batch_size=2, second_batch_size=4)
    assert check.verdict == gallery.VERDICTS[loss.__name__], check.format()
    assert check.exact                                          # three trajectories: every verdict is exact
    if loss is gallery.restarted_discount:
        assert ("rtg_restart_discount", pytest.approx(1.0)) in check.matches
    if loss in (gallery.mean_over_timesteps, gallery.normalized_advantages):
        small, large = check.sizes                              # batch statistics: checked at B = 2 and 4
        assert large.nonproportional < small.nonproportional
    if loss is gallery.value_baseline_not_detached:
        i = check.names.index("v.bias[0]")                       # grad J does not depend on the value head
        assert check.grad[i] == 0 and abs(check.mean[i]) > 0.1


def test_result_as_json(gallery_setup):
    import json
    mdp, policy = gallery_setup
    check = check_loss(policy, gallery.restarted_discount, mdp, logits=gallery.logits, batch_size=2)
    data = json.loads(json.dumps(check.to_json()))
    assert data["verdict"] == "biased" and data["method"] == "exact: per-episode"
    assert len(data["grad"]) == len(data["mean"]) == len(data["names"]) == 59
    assert ["rtg_restart_discount", 1.0] in [[n, round(c, 9)] for n, c in data["matches"]]


def test_detached_baseline_and_sum_over_the_batch(gallery_setup):
    mdp, policy = gallery_setup

    def detached(policy, batch):
        _, V = policy(batch.obs)
        disc = batch.gamma ** torch.arange(batch.rewards.shape[1], dtype=V.dtype)
        adv = gallery._returns(batch) - disc * V.detach()
        return -(gallery._logp(policy, batch) * adv * batch.mask).sum(1).mean()

    assert_loss_unbiased(policy, detached, mdp, logits=gallery.logits, batch_size=2)

    def summed(policy, batch):
        return gallery.reinforce(policy, batch) * batch.rewards.shape[0]
    check = assert_loss_unbiased(policy, summed, mdp, logits=gallery.logits, batch_size=3, allow_proportional=True)
    assert check.verdict == "proportional" and check.c == pytest.approx(3.0, rel=1e-9)
    with pytest.raises(AssertionError, match="PROPORTIONAL"):
        assert_loss_unbiased(policy, summed, mdp, logits=gallery.logits, batch_size=3)


def test_monte_carlo_when_nothing_can_be_enumerated():
    mdp = builtin_examples()["discounted"].mdp                  # horizon null
    policy = Tabular(np.zeros((mdp.n_states, mdp.n_actions)))

    def reinforce(policy, batch):
        logp = torch.distributions.Categorical(logits=policy(batch.obs)).log_prob(batch.actions)
        disc = batch.gamma ** torch.arange(batch.rewards.shape[1], dtype=torch.float64)
        G = (disc * batch.rewards).flip(1).cumsum(1).flip(1)
        return -(logp * G * batch.mask).sum(1).mean()
    check = check_loss(policy, reinforce, mdp, batch_size=8, batches=600, alpha=1e-6, tolerance=0.3)
    assert (check.method, check.verdict) == ("monte carlo", "unbiased"), check.format()


# --- bad input: one error type, naming what was wrong ---------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    mdp = builtin_examples()["bandit"].mdp
    return mdp, Tabular(np.zeros((mdp.n_states, mdp.n_actions)))


def _logp(policy, batch):
    return torch.distributions.Categorical(logits=policy(batch.obs)).log_prob(batch.actions)


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
@pytest.mark.parametrize("loss, message", [
    (lambda p, b: -(_logp(p, b) * b.rewards), "not a scalar"),
    (lambda p, b: (_logp(p, b) * b.rewards).sum() * float("nan"), "must be finite"),
    (lambda p, b: -(_logp(p, b) * b.rewards).sum().detach(), "without grad"),
    (lambda p, b: float(-(_logp(p, b) * b.rewards).sum()), "not a tensor"),
    (lambda p, b: b.no_such_field, "raised AttributeError"),
])
def test_bad_losses(small, loss, message):
    mdp, policy = small
    with pytest.raises(LossError, match=message):
        check_loss(policy, loss, mdp, batch_size=2)


def test_a_loss_that_raises_is_chained(small):
    mdp, policy = small

    def broken(policy, batch):
        raise RuntimeError("boom")
    with pytest.raises(LossError, match="loss test_a_loss_that_raises_is_chained.<locals>.broken raised "
                                        "RuntimeError") as info:
        check_loss(policy, broken, mdp, batch_size=2)
    assert isinstance(info.value.__cause__, RuntimeError)


class Unnormalised(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1, 3))

    def forward(self, obs):
        return obs @ self.w * 0.5                   # "probabilities" 0.5 each: rows sum to 1.5


def test_bad_policies(small):
    mdp, policy = small
    with pytest.raises(LossError, match="sum to 1.5, not 1"):
        exact_gradient(Unnormalised(), mdp, output="probs")
    with pytest.raises(LossError, match=r"policy raised RuntimeError .* shape \(1, 1\)"):
        exact_gradient(torch.nn.Linear(5, 3), mdp)                      # expects 5 features, gets one-hot [1, 1]
    with pytest.raises(LossError, match=r"shape \(1, 2\).*2 actions, but the MDP has 3"):
        exact_gradient(torch.nn.Linear(1, 2), mdp)
    with pytest.raises(LossError, match=r"observations has shape \(4, 2\)"):
        exact_gradient(policy, mdp, observations=np.zeros((4, 2)))
    with pytest.raises(LossError, match="torch.nn.Module"):
        exact_gradient(lambda obs: obs, mdp)
    assert issubclass(LossError, ValueError) or issubclass(LossError, Exception)


# --- docs/frameworks.md runs as shown --------------------------------------------------------------------------

DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "frameworks.md")


def _blocks(lang):
    """The fenced blocks opened with ```lang (lang "" for plain fences), in order."""
    blocks, current = [], None
    with open(DOC, encoding="utf-8") as f:
        for line in f:
            if line.startswith("```"):
                if current is None:
                    current = [] if line.strip() == "```" + lang else False
                else:
                    if current is not False:
                        blocks.append("".join(current))
                    current = None
            elif current:
                current.append(line)
            elif current == []:
                current.append(line)
    return blocks


# An exact UNBIASED report names its largest deviation, which is float round-off (~1e-17): which component holds it
# depends on the BLAS, the CPU and torch's version, so that line is compared by form, not by name.
ROUND_OFF_LINE = re.compile(r"^largest deviation: (?P<name>[\w.]+\[[\d, ]+\]): exact grad J (?P<exact>\S+), "
                            r"E\[-grad loss\] (?P<mean>\S+)$")


def test_docs_walk_through_shows_the_tutorials_output(capsys):
    from examples.frameworks import tutorial
    tutorial.main()
    out = capsys.readouterr().out.splitlines()
    shown = [b for b in _blocks("") if b.startswith(("reinforce on", "restarted_discount on", "normalized_advantages on"))]
    assert len(shown) == 3
    for block in shown:
        for line in block.strip().splitlines():
            doc = ROUND_OFF_LINE.match(line)
            if doc is None:
                assert line in out, line
                continue
            assert doc["exact"] == doc["mean"], f"the document's unbiased report shows a deviation: {line}"
            got = [m for m in map(ROUND_OFF_LINE.match, out) if m]
            assert len(got) == 1 and got[0]["exact"] == got[0]["mean"], [m.group() for m in got]


def test_the_batches_built_together_equal_one_by_one(monkeypatch):
    """check_batches hands the adapter all K batches at once (``estimate.many``): its estimates must be the ones
    the batch-by-batch loop computes, bit for bit, whatever the spread of episode lengths."""
    from verify.checks import batchcheck
    from verify.numerics.sampler import sample_episodes

    P = np.zeros((3, 2, 3))
    for s in range(2):
        P[s, 0, 1 - s], P[s, 1, s], P[s, :, 2] = 0.8, 0.8, 0.2
    P[2, :, 2] = 1.0
    mdp = TabularMDP(initial=[1.0, 0.0, 0.0], transitions=P, rewards=[[1.0, -0.5], [0.25, 2.0], [0.0, 0.0]],
                     terminal=[2], gamma=0.9, horizon=40, name="leaky")
    real, compared = batchcheck._monte_carlo, []

    def spy(estimate, target, B, K, rng):
        state = rng.bit_generator.state
        Y, R = real(estimate, target, B, K, rng)
        rng.bit_generator.state = state          # the same episodes again, then the loop without ``many``
        eps = sample_episodes(target.problem.mdp, target.problem.policy, B * K, rng)
        loop = np.array([estimate(batchcheck._plain(eps.select(slice(k * B, (k + 1) * B)))) for k in range(K)])
        assert np.unique(eps.lengths.reshape(K, B).max(axis=1)).size > 3       # several padded lengths
        np.testing.assert_array_equal(Y, loop)
        compared.append(K)
        return Y, R
    monkeypatch.setattr(batchcheck, "_monte_carlo", spy)
    theta = np.random.default_rng(2).normal(size=(3, 2))
    for pad_to in (None, 40):
        check = check_loss(Tabular(theta), gallery.reinforce, mdp, batch_size=3, batches=40, pad_to=pad_to)
        assert check.method == "monte carlo"
    assert len(compared) >= 2 and set(compared) == {40}        # both paddings (and any second batch size)
