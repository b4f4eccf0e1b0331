"""The library's choices and defaults that the parser shows, as literals, so that building the parser (every
``pgverify ... --help``) imports no numpy.

Each name is a copy of the constant of the same name in the module ``LIBRARY`` gives; ``tests/test_startup.py``
imports that module and compares, so a copy can never go stale unnoticed.
"""
from __future__ import annotations

METHODS = ("auto", "enumerate", "dp", "solve")
COVARIANCES = ("auto", "exact", "sample")
DEFAULT_EPISODES = 20_000
DEFAULT_ALPHA = 1e-3

# name -> the library module whose constant it copies
LIBRARY = {"METHODS": "verify.numerics.exact", "COVARIANCES": "verify.checks.mc",
           "DEFAULT_EPISODES": "verify.checks.mc", "DEFAULT_ALPHA": "verify.checks.mc"}
