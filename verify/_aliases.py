"""The module paths of the flat layout (``verify.exact``, ``verify.mc``, ...) kept working after the move into layers.

``verify/`` was 29 flat modules; they now live in layer subpackages (``verify.model``, ``verify.numerics``,
``verify.checks``, ``verify.testing``, ``verify.app``, ``verify.frameworks``). Every old dotted path stays
importable: a finder on ``sys.meta_path`` answers for the old name by importing the new module and handing back
*the same module object* (no copy, no shim file), so ``import verify.mc as m``, ``from verify.exact import
gradient`` and ``monkeypatch.setattr("verify.mc.run_estimators", ...)`` all reach the one module. Nothing is
imported until an old path is used, so ``import verify`` stays cheap.

>>> import importlib
>>> importlib.import_module("verify.exact") is importlib.import_module("verify.numerics.exact")
True
>>> importlib.import_module("verify.exact").__name__      # the module keeps its own name and spec
'verify.numerics.exact'
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys

# old dotted path -> the module's home in the layered tree (the public paths are listed in ARCHITECTURE.md)
MOVED = {
    "verify.io": "verify.model.io",
    "verify.mdp": "verify.model.mdp",
    "verify.policy": "verify.model.policy",
    "verify.problem": "verify.model.problem",
    "verify.builtin": "verify.model.builtin",
    "verify.returns": "verify.numerics.returns",
    "verify.episodes": "verify.numerics.episodes",
    "verify.exact": "verify.numerics.exact",
    "verify.sampler": "verify.numerics.sampler",
    "verify.estimators": "verify.checks.estimators",
    "verify.moments": "verify.checks.moments",
    "verify.stats": "verify.checks.stats",
    "verify.trace": "verify.checks.trace",
    "verify.mc": "verify.checks.mc",
    "verify.gradcheck": "verify.checks.gradcheck",
    "verify.batchcheck": "verify.checks.batchcheck",
    "verify.strategies": "verify.testing.strategies",
    "verify.fuzz": "verify.testing.fuzz",
    "verify.gym": "verify.frameworks.gym",
    "verify.errata": "verify.app.errata",
    "verify.derivation_numeric": "verify.app.derivation_numeric",
    "verify.report": "verify.app.report",
    "verify.render": "verify.app.render",
    "verify.html": "verify.app.html",
    "verify.plots": "verify.app.plots",
    # continuous actions (linear-quadratic control), written beside the flat layout
    "verify.lq": "verify.model.lq",
    "verify.lq_mc": "verify.checks.lq_mc",
    "verify.lq_check": "verify.checks.lq_check",
    "verify.lq_render": "verify.app.lq_render",
    "verify.lq_report": "verify.app.lq_report",
    # beyond the finite-horizon theorem (the Fisher matrix, surrogates, the stationary theorem)
    "verify.theory": "verify.checks.theory",
    "verify.theory_report": "verify.app.theory_report",
}


def resolve(name: str) -> str:
    """The module's current dotted path: ``name`` itself unless it is an old (flat) path.

    >>> resolve("verify.mc"), resolve("verify.checks.mc"), resolve("numpy")
    ('verify.checks.mc', 'verify.checks.mc', 'numpy')
    """
    return MOVED.get(name, name)


class _AliasLoader(importlib.abc.Loader):
    """Loads an old path as the module at its new path (imported normally, under its own name)."""

    def __init__(self, target: str):
        self.target = target
        self._spec = None

    def create_module(self, spec):
        module = importlib.import_module(self.target)
        self._spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        # the import system stamped the alias spec on the module; give it back its own (reload, pickling and
        # tracebacks keep naming the real file)
        module.__spec__ = self._spec


class AliasFinder(importlib.abc.MetaPathFinder):
    """Finds the old flat paths of ``MOVED``; declines every other name."""

    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (idempotent, so reloading ``verify`` adds no second one)."""
    if not any(type(finder).__qualname__ == "AliasFinder" and type(finder).__module__ == __name__
               for finder in sys.meta_path):
        sys.meta_path.insert(0, AliasFinder())
