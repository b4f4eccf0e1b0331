"""The model layer: what a problem *is* — the tabular MDP, the policies and their one gradient primitive, the MDP file
format (``problem``), the boundary for user files (``io``) and the built-in examples. Imports only ``verify.errors``
and its own modules; no sampling, no estimators, no printing."""
