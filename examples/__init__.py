"""Examples for users: a REINFORCE estimator written as tutorials do, checked with pgverify, and links
(``*.json``) to the built-in example MDPs, which ship inside the package (``verify/examples``; ``--example NAME``).

A package so that ``examples.user_reinforce:reinforce_buggy`` imports from the repository root (``pgverify mc
--example chain --estimator examples.user_reinforce:reinforce_buggy``) and pytest collects
``examples/test_user_reinforce.py`` under one name.
"""
