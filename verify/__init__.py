"""pgverify's numerical half: exact policy gradients, Monte Carlo estimators, statistics, the tool.

The public API, imported lazily (nothing numerical loads until a name is first used, so ``import verify`` and
``pgverify --help`` stay fast):

- Check an estimator: ``check_estimator``, ``assert_estimator_unbiased`` and its ``Undecided`` (``verify.gradcheck``,
  per episode);
  ``check_batch_estimator``, ``assert_batch_estimator_unbiased`` (``verify.batchcheck``, batch statistics allowed;
  PyTorch and JAX losses: ``verify.frameworks``).
- Exact answers: ``gradient`` (J and grad J), ``value_tables`` (V_t, Q_t), ``enumerate_trajectories``,
  ``exact_moments`` (mean, covariance and bias of any estimator).
- The estimator catalog: ``ESTIMATORS``, ``get_estimator``, ``estimator_names``, ``Estimator`` and the
  composition ``from_weights`` (``verify.estimators``); the array maths in ``verify.returns``.
- Problems: ``TabularMDP``, ``TabularSoftmax``, ``LinearSoftmax``, ``Policy``, ``Problem``, ``load_problem``,
  ``save_problem``, ``problem_from_dict``, ``problem_to_dict``, ``builtin_examples``; batches: ``Episodes``,
  ``sample_episodes``.
- Property tests: ``strategies`` (Hypothesis strategies of MDPs, policies and problems).

>>> import numpy as np
>>> import verify
>>> from verify import strategies
>>> chain = verify.builtin_examples()["chain"]
>>> def reinforce(episodes):                    # the total-return estimator, written by a user
...     R = verify.returns.discounted_returns(episodes.r_t, episodes.mdp.gamma, episodes.lengths)
...     return verify.episodes.score_sums(episodes, np.broadcast_to(R[:, None], episodes.r_t.shape))
>>> verify.check_estimator(reinforce, chain, episodes=2000).passed
True
>>> strategies.mdps(states=2)
mdps(states=2)
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "InvalidMDPError": "verify.errors", "PGVerifyError": "verify.errors", "UsageError": "verify.errors",
    "TabularMDP": "verify.mdp",
    "LinearSoftmax": "verify.policy", "Policy": "verify.policy", "TabularSoftmax": "verify.policy",
    "Problem": "verify.problem", "load_problem": "verify.problem", "problem_from_dict": "verify.problem",
    "problem_to_dict": "verify.problem", "save_problem": "verify.problem",
    "builtin_examples": "verify.builtin",
    "Episodes": "verify.episodes",
    "sample_episodes": "verify.sampler",
    "enumerate_trajectories": "verify.exact", "gradient": "verify.exact", "value_tables": "verify.exact",
    "ESTIMATORS": "verify.estimators", "Estimator": "verify.estimators", "estimator_names": "verify.estimators",
    "from_weights": "verify.estimators", "get_estimator": "verify.estimators",
    "exact_moments": "verify.moments",
    "assert_estimator_unbiased": "verify.gradcheck", "check_estimator": "verify.gradcheck",
    "Undecided": "verify.gradcheck",
    "assert_batch_estimator_unbiased": "verify.batchcheck", "check_batch_estimator": "verify.batchcheck",
}
_SUBMODULES = ("episodes", "estimators", "exact", "mc", "moments", "returns", "sampler", "stats", "strategies")

__all__ = sorted([*_EXPORTS, *_SUBMODULES])


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"verify.{name}")
    else:
        raise AttributeError(f"module 'verify' has no attribute {name!r}")
    globals()[name] = value         # resolved once
    return value


def __dir__():
    return sorted([*globals(), *__all__])
