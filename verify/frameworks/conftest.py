"""pytest: collect the adapters' doctests only when their framework is installed (CI installs both extras, and
there a missing framework is an import failure, not a skip)."""
import importlib.util
import os

_NEEDS = {"torch.py": "torch", "jax.py": "jax", "gaussian.py": "torch"}   # module file -> the framework its doctest imports

collect_ignore = [] if os.environ.get("CI") else [
    name for name, framework in _NEEDS.items() if importlib.util.find_spec(framework) is None]
