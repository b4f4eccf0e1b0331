"""Messages that say what to do: the fix of a named pitfall, the forward-cumsum hint, an unnamed bias located by
component and horizon, and reproduce lines that re-run as printed."""
import shutil
from pathlib import Path

import numpy as np
import pytest

import verify
from verify.numerics.episodes import reward_to_go, score_sums
from verify.checks.gradcheck import check_estimator
from verify.checks.fixes import FIXES, KNOWN_BUGS
from verify.checks.estimators import ESTIMATORS

EXAMPLES = Path(verify.__file__).parent / "examples"


def restarted(episodes):
    return score_sums(episodes, reward_to_go(episodes, restart_discount=True))


def forward(episodes):
    """The reward-to-go's cumulative sum without the reversal."""
    x = episodes.discount_t[None, :] * episodes.r_t * episodes.mask
    return score_sums(episodes, np.cumsum(x, axis=1))


def drops_late_steps(episodes):
    """Reward-to-go REINFORCE that ignores the score from step t = 2 on: a bias no catalog pitfall has."""
    keep = episodes.mask & (np.arange(episodes.T)[None, :] < 2)
    return score_sums(episodes, reward_to_go(episodes) * keep)


def test_every_pitfall_has_a_one_line_fix():
    assert {e.name for e in ESTIMATORS if not e.unbiased} <= set(FIXES)
    assert {e.name for e in KNOWN_BUGS} <= set(FIXES)
    assert all("\n" not in fix for fix in FIXES.values())


def test_the_restarted_discount_says_multiply_by_gamma_t():
    text = check_estimator(restarted, "chain", episodes=300).format()
    assert "catalog pitfall rtg_restart_discount" in text and "fix: multiply the reward-to-go at step t by gamma^t" in text


def test_a_forward_cumsum_is_named_with_its_fix():
    check = check_estimator(forward, "chain", episodes=300)
    assert check.verdict == "biased" and "forward_cumsum" in check.matches
    assert "fix: reverse before and after the cumulative sum" in check.format()


def test_an_unnamed_bias_is_located_by_component_and_by_horizon():
    check = check_estimator(drops_late_steps, "chain", episodes=300)
    assert check.verdict == "biased" and not check.matches
    # Episodes of one or two steps are estimated exactly (nothing dropped); from horizon 3 on, the bias appears.
    profile = {h: (b, t) for h, b, t in check.bias_profile}
    assert profile[1][0] <= profile[1][1] and profile[2][0] <= profile[2][1] and profile[3][0] > profile[3][1]
    text = check.format()
    assert "it enters at step t = 2" in text and "the bias sits in" in text
    assert check.to_json()["bias_by_horizon"][2]["horizon"] == 3


def test_the_torch_reproduce_line_names_the_users_file_and_reruns(tmp_path):
    torch = pytest.importorskip("torch")
    from verify.frameworks.torch import check_loss

    path = tmp_path / "my_mdp.json"
    shutil.copy(EXAMPLES / "chain.json", path)

    def reinforce(policy, batch):
        logp = torch.distributions.Categorical(logits=policy(batch.obs)).log_prob(batch.actions)
        disc = batch.gamma ** torch.arange(batch.rewards.shape[1], dtype=torch.float64)
        G = (disc * batch.rewards).flip(1).cumsum(1).flip(1)
        return -(logp * G * batch.mask).sum(1).mean()

    torch.manual_seed(0)
    policy = torch.nn.Linear(4, 2, bias=False).double()
    check = check_loss(policy, reinforce, str(path), batch_size=2)
    assert repr(str(path)) in check.reproduce and "'chain'" not in check.reproduce
    again = eval(check.reproduce, {"check_loss": check_loss, "policy": policy, "reinforce": reinforce})  # noqa: S307
    assert again.verdict == check.verdict and np.array_equal(again.mean, check.mean)
