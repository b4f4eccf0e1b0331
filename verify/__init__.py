"""pgverify's numerical half: exact policy gradients, Monte Carlo estimators, statistics, the tool.

The public API, imported lazily (nothing numerical loads until a name is first used, so ``import verify`` and
``pgverify --help`` stay fast):

- Check an estimator: ``check_estimator``, ``assert_estimator_unbiased`` and its ``Undecided`` (``verify.checks.gradcheck``,
  per episode);
  ``check_batch_estimator``, ``assert_batch_estimator_unbiased`` (``verify.checks.batchcheck``, batch statistics allowed;
  PyTorch and JAX losses: ``verify.frameworks``).
- Exact answers: ``gradient`` (J and grad J), ``value_tables`` (V_t, Q_t), ``enumerate_trajectories``,
  ``exact_moments`` (mean, covariance and bias of any estimator).
- The estimator catalog: ``ESTIMATORS``, ``get_estimator``, ``estimator_names``, ``Estimator`` and the
  composition ``from_weights`` (``verify.checks.estimators``); the array maths in ``verify.numerics.returns``.
- Problems: ``TabularMDP``, ``TabularSoftmax``, ``LinearSoftmax``, ``Policy``, ``Problem``, ``load_problem``,
  ``save_problem``, ``problem_from_dict``, ``problem_to_dict``, ``builtin_examples``; batches: ``Episodes``,
  ``sample_episodes``.
- Beyond the finite-horizon theorem (``verify.checks.theory``): ``fisher``, ``natural_gradient``, ``compatible_features``,
  ``averaged_advantage``, ``occupancy``, ``stationary_gradient``, ``performance_difference``, ``surrogate``,
  ``ppo_clip_surrogate``, ``trpo_bound``, ``gamma_less_update``, ``check_gradient_field``,
  ``sampled_natural_gradient``.
- Property tests: ``strategies`` (Hypothesis strategies of MDPs, policies and problems).
- Continuous actions: ``LQProblem``, ``load_lq_example``, ``lq_gradient`` (``verify.model.lq``: linear-quadratic
  control with a linear Gaussian policy, exact J and grad J; docs/continuous.md).

>>> import numpy as np
>>> import verify
>>> from verify import strategies
>>> chain = verify.builtin_examples()["chain"]
>>> def reinforce(episodes):                    # the total-return estimator, written by a user
...     R = verify.numerics.returns.discounted_returns(episodes.r_t, episodes.mdp.gamma, episodes.lengths)
...     return verify.numerics.episodes.score_sums(episodes, np.broadcast_to(R[:, None], episodes.r_t.shape))
>>> verify.check_estimator(reinforce, chain, episodes=2000).passed
True
>>> strategies.mdps(states=2)
mdps(states=2)
"""
from __future__ import annotations

import importlib

from verify import _startup  # noqa: F401 - first: Ctrl-C while pgverify starts is one line, not a traceback
from verify import _aliases

_aliases.install()      # the flat module paths (verify.numerics.exact, verify.checks.mc, ...) name the moved modules

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "InvalidMDPError": "verify.errors", "PGVerifyError": "verify.errors", "UsageError": "verify.errors",
    "TabularMDP": "verify.model.mdp",
    "LinearSoftmax": "verify.model.policy", "Policy": "verify.model.policy",
    "TabularSoftmax": "verify.model.policy",
    "Problem": "verify.model.problem", "load_problem": "verify.model.problem",
    "problem_from_dict": "verify.model.problem", "problem_to_dict": "verify.model.problem",
    "save_problem": "verify.model.problem",
    "builtin_examples": "verify.model.builtin",
    "Episodes": "verify.numerics.episodes",
    "sample_episodes": "verify.numerics.sampler",
    "enumerate_trajectories": "verify.numerics.exact", "gradient": "verify.numerics.exact",
    "value_tables": "verify.numerics.exact",
    "ESTIMATORS": "verify.checks.estimators", "Estimator": "verify.checks.estimators",
    "estimator_names": "verify.checks.estimators", "from_weights": "verify.checks.estimators",
    "get_estimator": "verify.checks.estimators",
    "exact_moments": "verify.checks.moments",
    "assert_estimator_unbiased": "verify.checks.gradcheck", "check_estimator": "verify.checks.gradcheck",
    "assert_batch_estimator_unbiased": "verify.checks.batchcheck",
    "check_batch_estimator": "verify.checks.batchcheck",
    "LQProblem": "verify.model.lq", "load_lq_example": "verify.model.lq", "lq_gradient": "verify.model.lq",
    **{name: "verify.checks.theory" for name in (
        "occupancy", "fisher", "natural_gradient", "averaged_advantage", "compatible_features",
        "performance_difference", "surrogate", "ppo_clip_surrogate", "trpo_bound", "stationary_gradient",
        "gamma_less_update", "check_gradient_field", "sampled_natural_gradient")},
    "Undecided": "verify.checks.gradcheck",
}
_SUBMODULES = ("episodes", "estimators", "exact", "mc", "moments", "returns", "sampler", "stats", "strategies",
               "theory")

__all__ = sorted([*_EXPORTS, *_SUBMODULES])


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES or f"verify.{name}" in _aliases.MOVED:     # a module by its flat path
        value = importlib.import_module(f"verify.{name}")
    else:
        raise AttributeError(f"module 'verify' has no attribute {name!r}")
    globals()[name] = value         # resolved once
    return value


def __dir__():
    return sorted([*globals(), *__all__])
