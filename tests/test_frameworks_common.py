"""The framework-free layer of verify.frameworks: the batch layout (gymnasium conventions), observations, policy
outputs. Needs neither torch nor jax."""
import os

import numpy as np
import pytest

from verify.episodes import Episodes
from verify.errors import UsageError
from verify.frameworks import LossError
from verify.frameworks._common import batch_arrays, observation_table, policy_log_probs
from verify.mdp import TabularMDP
from verify.policy import TabularSoftmax


@pytest.fixture()
def episodes():
    # State 0 -> "stop" ends in terminal state 2; "go" -> state 1; horizon 2. Episode 0: stop (terminated at t=0);
    # episode 1: go, go (truncated by the horizon at t=1).
    mdp = TabularMDP(initial=[1, 0, 0], transitions=[[[0, 0, 1], [0, 1, 0]], [[0, 0, 1], [0, 1, 0]], [[0, 0, 1]] * 2],
                     rewards=[[1.0, 0.0], [2.0, 0.5], [0.0, 0.0]], terminal=[2], horizon=2)
    return Episodes(np.array([[0, 2, 2], [0, 1, 1]]), np.array([[0, 0], [1, 1]]), np.array([[1.0, 0.0], [0.0, 0.5]]),
                    np.array([1, 2]), mdp, TabularSoftmax(np.zeros((3, 2))))


def test_batch_layout(episodes):
    b = batch_arrays(episodes, observation_table(episodes.mdp, "index"))
    assert b.obs.tolist() == [[0, 2], [0, 1]]                 # padding repeats the final state
    assert b.next_obs.tolist() == [[2, 2], [1, 1]]
    assert b.mask.tolist() == [[1.0, 0.0], [1.0, 1.0]]
    assert b.terminated.tolist() == [[True, False], [False, False]]
    assert b.truncated.tolist() == [[False, False], [False, True]]
    assert b.lengths.tolist() == [1, 2] and b.gamma == 1.0


def test_pad_to_adds_padding_and_refuses_less_than_the_longest(episodes):
    b = batch_arrays(episodes.select([0]), observation_table(episodes.mdp, "one_hot"))
    assert b.actions.shape == (1, 1)                            # padded to its own longest episode
    b = batch_arrays(episodes.select([0]), observation_table(episodes.mdp, "one_hot"), pad_to=3)
    assert b.actions.shape == (1, 3) and b.obs.shape == (1, 3, 3)
    assert b.mask.tolist() == [[1.0, 0.0, 0.0]] and b.rewards.tolist() == [[1.0, 0.0, 0.0]]
    assert b.obs[0, 2].tolist() == [0.0, 0.0, 1.0]              # the final (terminal) state
    with pytest.raises(UsageError, match="pad_to=1 is shorter than an episode of 2 steps"):
        batch_arrays(episodes, observation_table(episodes.mdp, "one_hot"), pad_to=1)


def test_policy_outputs_are_validated():
    assert np.allclose(np.exp(policy_log_probs(np.zeros((2, 3)), "logits", 2, 3)), 1 / 3)
    with pytest.raises(LossError, match="state 1 sum to 0.9"):
        policy_log_probs(np.array([[0.5, 0.5], [0.4, 0.5]]), "probs", 2, 2)
    with pytest.raises(LossError, match=r"shape \(2, 3\).*3 actions, but the MDP has 2"):
        policy_log_probs(np.zeros((2, 3)), "logits", 2, 2)
    with pytest.raises(LossError, match="non-finite logits for state 0"):
        policy_log_probs(np.array([[np.nan, 0.0]]), "logits", 1, 2)
    with pytest.raises(LossError, match=r"observations has shape \(2,\)"):
        observation_table(TabularMDP(initial=[1], transitions=[[[1.0]]], rewards=[[0.0]], horizon=1), np.zeros(2))


def test_the_jacobian_is_refused_before_it_is_built():
    from verify.frameworks._common import require_jacobian_memory
    from verify.model.io import Limits, limits_scope

    # S A = 40 000 rows (a 10^4-state tabular softmax, d = 40 000): 8 (m d + m^2) bytes = 25.6 GB, by hand
    with limits_scope(Limits(max_memory=2 ** 31)):
        with pytest.raises(UsageError, match=r"Jacobian .*S A = 40000, d = 40000.* needs 23\.8 GiB"):
            require_jacobian_memory(10_000, 4, 40_000, "JAX")
        # few parameters on as many states: forward mode, 8 (m d + d^2) = 129 MB
        require_jacobian_memory(10_000, 4, 400, "JAX")


@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_a_few_features_on_many_states_get_their_jacobian(framework):
    """A linear softmax pi = softmax(phi(s) W) with d = K A << S A: the Jacobian fits where the old [S A, S A]
    basis did not, and equals the closed form d log pi(a|s) / d W[k, b] = phi_k(s) (1[a = b] - pi(b|s))."""
    from verify.model.io import Limits, limits_scope

    if not os.environ.get("CI"):            # CI installs both extras: a missing one fails there
        pytest.importorskip(framework)
    rng = np.random.default_rng(0)
    S, A, K = 600, 3, 4
    phi, W = rng.normal(size=(S, K)), rng.normal(size=(K, A)) * 0.3
    logits = phi @ W
    pi = np.exp(logits - logits.max(1, keepdims=True))
    pi /= pi.sum(1, keepdims=True)
    want = np.einsum("sk,ab->sakb", phi, np.eye(A))[:] - np.einsum("sk,sb->skb", phi, pi)[:, None]
    want = want.reshape(S * A, K * A)
    # old: 8 m (m + d) = 26 MB; now 8 (m d + d^2) = 0.17 MB
    with limits_scope(Limits(max_memory=2 ** 20)):
        if framework == "jax":
            import jax
            from verify.frameworks.jax import _Policy, _head

            with jax.enable_x64(True):
                pol = _Policy(lambda p, obs: obs @ p["W"], {"W": W}, "logits")
                jac = np.asarray(_head()(pol.params, jax.numpy.asarray(phi), pol.apply, pol.output)[3])
        else:
            import torch
            from verify.frameworks.torch import _jacobian

            Wt = torch.tensor(W, requires_grad=True)
            jac = _jacobian(torch.log_softmax(torch.tensor(phi) @ Wt, dim=1), [Wt])      # by columns (d < S A)
            with pytest.MonkeyPatch.context() as mp:          # by rows: several blocks of identity rows
                mp.setattr("verify.frameworks.torch._jacobian_columns", lambda *args: None)
                mp.setattr("verify.frameworks.torch.JAC_BLOCK_BYTES", 8 * (S * A + K * A) * 7)
                by_rows = _jacobian(torch.log_softmax(torch.tensor(phi) @ Wt, dim=1), [Wt])
            np.testing.assert_allclose(by_rows, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(jac, want, rtol=1e-10, atol=1e-12)
