"""Time to check a PyTorch loss on FrozenLake-v1 against the same check of the numpy catalog estimator.

    python benchmarks/bench_frameworks.py [--batch-size B] [--batches K] [--repeats R]

Run by hand; never part of pytest. Needs the extras ``torch`` and ``gym``. Both checks run
``verify.batchcheck.check_batches`` on FrozenLake-v1 at the default size (4x4, slippery, H = 100 from its time limit,
gamma = 1, uniform policy theta = 0): K batches of B episodes from pgverify's sampler, the paired Monte Carlo test
(H = 100 has too many trajectories to enumerate). They differ only in the estimate of each batch:

- **PyTorch** (``verify.frameworks.torch.check_loss``): a tabular-softmax ``nn.Module`` on one-hot observations and a
  REINFORCE loss written as a training loop writes it; per batch: the numpy batch -> torch tensors, the loss,
  ``torch.autograd.grad``; plus, once, grad J by DP through autograd and the d log pi / d params Jacobian.
- **numpy** (the baseline, ``verify.batchcheck.check_batch_estimator``): the catalog's ``reward_to_go`` estimator,
  averaged over the batch.

Times are CPU seconds of this process (``time.process_time``; wall time on a shared machine measures the
neighbours), best of ``--repeats``, the two measured alternately in one run; the ratio is PyTorch over numpy.
"""
from __future__ import annotations

import argparse
import os
import time

if __name__ == "__main__":
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from verify.batchcheck import check_batch_estimator  # noqa: E402
from verify.estimators import get_estimator  # noqa: E402
from verify.frameworks.torch import check_loss  # noqa: E402
from verify.gym import gym_problem  # noqa: E402


class Tabular(torch.nn.Module):
    def __init__(self, n_states: int, n_actions: int):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.zeros(n_states, n_actions))

    def forward(self, obs):
        return obs @ self.theta


def reinforce(policy, batch):
    logp = torch.distributions.Categorical(logits=policy(batch.obs)).log_prob(batch.actions)
    disc = batch.gamma ** torch.arange(batch.rewards.shape[1], dtype=batch.rewards.dtype)
    G = (disc * batch.rewards).flip(1).cumsum(1).flip(1)
    return -(logp * G * batch.mask).sum(1).mean()


def numpy_reward_to_go(episodes):
    return get_estimator("reward_to_go").per_episode(episodes).mean(axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    problem = gym_problem("FrozenLake-v1")
    mdp = problem.mdp
    policy = Tabular(mdp.n_states, mdp.n_actions)
    settings = dict(batch_size=args.batch_size, batches=args.batches, seed=0)
    best = {"torch": np.inf, "numpy": np.inf}
    verdicts = {}
    for _ in range(args.repeats):
        for label in ("torch", "numpy"):
            start = time.process_time()
            if label == "torch":
                check = check_loss(policy, reinforce, mdp, **settings)
            else:
                check = check_batch_estimator(numpy_reward_to_go, problem, **settings)
            best[label] = min(best[label], time.process_time() - start)
            verdicts[label] = (check.verdict, check.method, check.resolution)
    print(f"FrozenLake-v1 4x4, H = {mdp.horizon}, {args.batches} batches of {args.batch_size} episodes, "
          f"best of {args.repeats} (CPU seconds)")
    for label, name in (("torch", "PyTorch check_loss (REINFORCE loss, autograd)"),
                        ("numpy", "numpy check_batch_estimator (catalog reward_to_go)")):
        verdict, method, res = verdicts[label]
        print(f"  {name:52s} {best[label]:7.2f} s   verdict {verdict} ({method}, detects {res:.3g})")
    print(f"  ratio PyTorch / numpy: {best['torch'] / best['numpy']:.2f}x")
    res = verdicts["numpy"][2]
    if res > 0.1:
        # The detectable bias shrinks as 1/sqrt(K).
        print(f"  (undecided at this size: a verdict at the default tolerance 0.1 needs about "
              f"{int(np.ceil(args.batches * (res / 0.1) ** 2))} batches of {args.batch_size})")


if __name__ == "__main__":
    main()
