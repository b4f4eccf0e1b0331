"""pgverify's numerical half: exact policy gradients, Monte Carlo estimators, statistics, the tool."""
from verify.errors import InvalidMDPError, PGVerifyError, UsageError
from verify.mdp import TabularMDP
from verify.problem import Problem, load_problem, problem_from_dict, problem_to_dict, save_problem
from verify.policy import LinearSoftmax, Policy, TabularSoftmax

__version__ = "0.1.0"

__all__ = [
    "InvalidMDPError",
    "LinearSoftmax",
    "PGVerifyError",
    "Policy",
    "TabularMDP",
    "Problem",
    "TabularSoftmax",
    "UsageError",
    "load_problem",
    "problem_from_dict",
    "problem_to_dict",
    "save_problem",
]
