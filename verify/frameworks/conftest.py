"""pytest: collect the adapters' doctests only when their framework is installed (CI installs both extras, and
there a missing framework is an import failure, not a skip)."""
import importlib.util
import os

collect_ignore = [] if os.environ.get("CI") else [
    f"{name}.py" for name in ("torch", "jax") if importlib.util.find_spec(name) is None]
