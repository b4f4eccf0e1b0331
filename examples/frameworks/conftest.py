"""pytest: import the gallery modules only when their framework is installed (always in CI)."""
import importlib.util
import os

_NEEDS = {"torch_losses.py": "torch", "jax_losses.py": "jax", "rlax_loss.py": "rlax", "tutorial.py": "torch",
          "torch_rollout.py": "torch", "jax_rollout.py": "jax"}
collect_ignore = [] if os.environ.get("CI") else [
    file for file, module in _NEEDS.items() if importlib.util.find_spec(module) is None]
