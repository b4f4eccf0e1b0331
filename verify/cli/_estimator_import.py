"""``--estimator MODULE:FUNCTION``: import a user's estimator function (the CLI's dynamic importer).

Lives on the CLI side because it edits ``sys.path`` and executes files: the library API
(``verify.gradcheck.check_estimator``) takes the function itself.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from verify.numerics.episodes import Episodes
from verify.errors import UsageError
from verify.checks.estimators import Estimator, get_estimator

__all__ = ["load_estimator"]


def _describe(obj) -> str:
    text = repr(obj)
    return f"{type(obj).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _import_module(module: str, spec: str):
    if module.endswith(".py") or "/" in module or os.sep in module:
        path = Path(module)
        if not path.is_file():
            raise UsageError(f"--estimator {spec}: no such file {module!r}")
        mod_name = f"_pgverify_user_{path.stem}_{abs(hash(str(path.resolve())))}"
        loader_spec = importlib.util.spec_from_file_location(mod_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise UsageError(f"--estimator {spec}: cannot load {module!r} as Python source")
        mod = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_name] = mod         # dataclasses and pickling look the module up by name
        try:
            loader_spec.loader.exec_module(mod)
        except Exception as exc:  # noqa: BLE001
            del sys.modules[mod_name]
            raise UsageError(f"--estimator {spec}: importing {module} raised {type(exc).__name__}: {exc}") from exc
        return mod
    # Like `python -m`, the current directory is importable (the installed `pgverify` script does not add it).
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            raise UsageError(f"--estimator {spec}: no module named {exc.name!r} (searched the current directory "
                             "and sys.path)") from None
        raise UsageError(f"--estimator {spec}: importing {module} raised ModuleNotFoundError: {exc}") from exc
    except Exception as exc:  # noqa: BLE001
        raise UsageError(f"--estimator {spec}: importing {module} raised {type(exc).__name__}: {exc}") from exc


def load_estimator(spec: str) -> Callable[[Episodes], np.ndarray] | Estimator:
    """The estimator named ``spec``: ``package.module:function``, ``path/to/file.py:function`` or a catalog name.

    A module is imported with the current directory on ``sys.path``; a file is executed as a fresh module.
    ``function`` may be dotted (``module:Class.method``).

    Raises:
      UsageError: malformed spec, unknown catalog name, the module cannot be imported (or raises while
        importing), the attribute is missing, or it is not callable.

    >>> load_estimator("verify.episodes:no_such_function")
    Traceback (most recent call last):
    ...
    verify.errors.UsageError: --estimator verify.episodes:no_such_function: module verify.episodes has no \
attribute 'no_such_function'
    """
    if ":" not in spec:
        return get_estimator(spec)
    module, _, attr = spec.rpartition(":")
    if not module or not attr:
        raise UsageError(f"--estimator {spec}: expected package.module:function or path/to/file.py:function")
    obj, owner = _import_module(module, spec), f"module {module}"
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"--estimator {spec}: {owner} has no attribute {part!r}")
        obj, owner = getattr(obj, part), part
    if not callable(obj):
        raise UsageError(f"--estimator {spec}: {attr} is {_describe(obj)}, not a function "
                         "episodes -> [N, *theta.shape]")
    return obj
