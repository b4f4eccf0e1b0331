"""Modules imported on first attribute access, so that ``pgverify --help`` does not pay for scipy."""
from __future__ import annotations

import importlib


class LazyModule:
    """Stands for the module ``name`` and imports it when an attribute is first read.

    >>> stats = LazyModule("scipy.stats")
    >>> float(stats.norm.sf(0.0))
    0.5
    """

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"
