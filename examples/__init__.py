"""The built-in example MDP files (``*.json``) and a user-style estimator checked with pgverify.

A package so that ``examples.user_reinforce:reinforce_buggy`` imports from the repository root (``pgverify mc
examples/chain.json --estimator examples.user_reinforce:reinforce_buggy``) and pytest collects
``examples/test_user_reinforce.py`` under one name.
"""
