"""Check the code people train with: PyTorch and JAX policies and losses against pgverify's exact gradient.

``verify.frameworks.torch`` and ``verify.frameworks.jax`` (extras ``torch`` and ``jax``) each provide

- ``exact_gradient``: exact J(theta) and grad J for every parameter of a network policy on a tabular MDP (J by
  dynamic programming or a linear solve written in the framework, differentiated by its autodiff);
- ``check_loss`` / ``assert_loss_unbiased``: sample batches from the policy, differentiate the user's loss and
  test E[-grad loss] against grad J (``verify.batchcheck``: exact where it can, else Monte Carlo over batches).

A loss is minimised: the check tests E[-grad loss]. Neither this package nor the core imports torch or jax;
only the two adapter modules do, when used. Errors are ``LossError`` (a ``verify.errors.UsageError``).
``verify.frameworks.gym`` imports gymnasium's toy-text environments as exact tabular MDPs (extra ``gym``).
"""
import importlib

__all__ = ["Batch", "ExactGradient", "LossError"]


def __getattr__(name: str):
    # resolved on first use: ``verify.frameworks.gym`` (imported by the CLI) must not load the batch checks
    if name in __all__:
        return getattr(importlib.import_module("verify.frameworks._common"), name)
    raise AttributeError(f"module 'verify.frameworks' has no attribute {name!r}")
