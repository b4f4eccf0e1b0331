"""How the ``pgverify`` process runs a command: the garbage collector's thresholds and deferred imports.

Both are the process's own business: ``verify.cli.main`` applies them for the command and puts the caller's state
back afterwards, so a program or test that calls ``main`` keeps its own collector and import system.
"""
from __future__ import annotations

import contextlib
import gc
import importlib.abc
import importlib.machinery
import importlib.util
import sys

__all__ = ["DEFERRED_MODULES", "GC_THRESHOLDS", "command_process"]

#: The cyclic garbage collector's thresholds while a command runs (CPython's default is (700, 10, 10)). The commands
#: build millions of SymPy, rich and result objects that live for the whole run (SymPy's caches keep many), so
#: every older-generation collection traverses them again and finds almost nothing to free. A first
#: ``report --quick`` spent 0.19-0.21 CPU-s in 397 + 36 + 3 collections with the defaults, 0.06-0.08 s here (423 +
#: 5 + 0) with the same peak memory (232 MB); the young generation keeps CPython's threshold, so short-lived cycles
#: go as soon as before (``benchmarks/bench_report_speed.py --gc`` times both).
GC_THRESHOLDS = (700, 100, 10)


#: numpy's submodules that SciPy's array-API layer imports and pgverify never uses. That layer clones numpy's
#: namespace (``from numpy import *``), which imports each of them: the Fortran wrapper generator (and, through it,
#: ``charset_normalizer``: 30-80 ms), ``numpy.testing`` (``unittest``, and ``importlib.metadata`` scanning every
#: installed distribution: 18-26 ms in a ``report --quick``), ``numpy.ma`` (6-8 ms) and ``numpy.polynomial`` (2 ms).
DEFERRED_MODULES = frozenset({"numpy.f2py", "numpy.testing", "numpy.ma", "numpy.polynomial"})


class _DeferModules(importlib.abc.MetaPathFinder):
    """Imports ``DEFERRED_MODULES`` lazily (``importlib.util.LazyLoader``): a module's code runs at its first
    attribute access, so a program that does use one gets the real module then."""

    def find_spec(self, name, path, target=None):
        if name not in DEFERRED_MODULES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


@contextlib.contextmanager
def command_process(thresholds=None):
    """The block runs with ``thresholds`` (default ``GC_THRESHOLDS``) and ``DEFERRED_MODULES`` deferred; both undone
    after it (a module already imported lazily stays so: it loads on first use)."""
    before = gc.get_threshold()
    finder = _DeferModules()
    gc.set_threshold(*(GC_THRESHOLDS if thresholds is None else thresholds))
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
