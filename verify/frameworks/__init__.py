"""Check the code people train with: PyTorch and JAX policies and losses against pgverify's exact gradient.

``verify.frameworks.torch`` and ``verify.frameworks.jax`` (extras ``torch`` and ``jax``) each provide

- ``exact_gradient``: exact J(theta) and grad J for every parameter of a network policy on a tabular MDP (J by
  dynamic programming or a linear solve written in the framework, differentiated by its autodiff);
- ``check_loss`` / ``assert_loss_unbiased``: sample batches from the policy, differentiate the user's loss and
  test E[-grad loss] against grad J (``verify.batchcheck``: exact where it can, else Monte Carlo over batches).

A loss is minimised: the check tests E[-grad loss]. Neither this package nor the core imports torch or jax;
only the two adapter modules do, when used. Errors are ``LossError`` (a ``verify.errors.UsageError``).
"""
from verify.frameworks._common import Batch, ExactGradient, LossError

__all__ = ["Batch", "ExactGradient", "LossError"]
