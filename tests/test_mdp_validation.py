"""Every validation rule of the MDP file format, as one table: the error names the offending entry."""
import copy
import json
import subprocess
import sys

import pytest

from verify.errors import InvalidMDPError
from verify.problem import problem_from_dict

VALID = {
    "name": "tiny",
    "states": ["a", "b", "end"],
    "actions": 2,
    "initial": [1, 0, 0],
    "transitions": [[[0.5, 0.5, 0], [0, 0, 1]], [[0, 0.5, 0.5], [1, 0, 0]], [[0, 0, 1], [0, 0, 1]]],
    "rewards": [[0, 1], [2, 0], [0, 0]],
    "terminal": ["end"],
    "gamma": 0.9,
    "horizon": 3,
    "policy": {"type": "tabular_softmax", "theta": [[0, 0], [0, 0], [0, 0]]},
}


def _with(path, value):
    data = copy.deepcopy(VALID)
    *head, last = path
    node = data
    for key in head:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return data


_DELETE = object()
NAN = float("nan")

CASES = [
    # (id, path, new value, words the message must contain)
    ("row-sum", ("transitions", 1, 0), [0, 0.5, 0.4], ["transitions[1][0]", "sums to 0.9"]),
    ("negative-prob", ("transitions", 0, 0), [1.5, -0.5, 0], ["transitions[0][0][1]", "negative"]),
    ("nan-prob", ("transitions", 0, 0), [NAN, 0.5, 0.5], ["transitions[0][0][0]", "finite"]),
    ("inf-reward", ("rewards", 1), [float("inf"), 0], ["rewards[1][0]", "finite"]),
    ("initial-sum", ("initial",), [0.5, 0, 0], ["initial", "sums to 0.5"]),
    ("initial-shape", ("initial",), [1, 0], ["initial", "shape"]),
    ("transitions-shape", ("transitions",), [[[1.0]]], ["states lists 3 names", "transitions has 1 states"]),
    ("ragged", ("transitions", 2), [[0, 1]], ["transitions"]),
    ("rewards-shape", ("rewards",), [[0, 1, 2]], ["rewards", "shape"]),
    ("gamma-high", ("gamma",), 1.5, ["gamma", "[0, 1]"]),
    ("gamma-negative", ("gamma",), -0.1, ["gamma"]),
    ("gamma-nan", ("gamma",), NAN, ["gamma"]),
    ("gamma-string", ("gamma",), "0.9", ["gamma"]),
    ("horizon-zero", ("horizon",), 0, ["horizon", "positive integer"]),
    ("horizon-float", ("horizon",), 2.5, ["horizon", "positive integer"]),
    ("horizon-bool", ("horizon",), True, ["horizon"]),
    ("horizon-string", ("horizon",), "10", ["horizon"]),
    ("unknown-state", ("terminal",), ["nowhere"], ["terminal[0]", "unknown state 'nowhere'"]),
    ("state-index-range", ("terminal",), [7], ["terminal[0]", "7"]),
    ("unknown-policy", ("policy", "type"), "gaussian", ["policy.type", "gaussian", "tabular_softmax"]),
    ("policy-shape", ("policy", "theta"), [[0, 0]], ["policy is for 1 states"]),
    ("policy-nan", ("policy", "theta"), [[0, NAN], [0, 0], [0, 0]], ["policy.theta[0][1]", "finite"]),
    ("linear-missing", ("policy",), {"type": "linear_softmax", "theta": [1.0]}, ["features"]),
    ("linear-theta-shape", ("policy",), {"type": "linear_softmax", "features": [[[1], [0]]] * 3, "theta": [1, 2]},
     ["policy.theta", "shape"]),
    ("names-count", ("states",), ["a", "b"], ["states lists 2 names", "has 3 states"]),
    ("unknown-key", ("discount",), 0.9, ["unknown keys", "discount"]),
    ("missing-key", ("rewards",), _DELETE, ["missing", "rewards"]),
]


@pytest.mark.parametrize("path, value, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_entries_are_named(path, value, words):
    with pytest.raises(InvalidMDPError) as info:
        problem_from_dict(_with(path, value))
    for word in words:
        assert word in str(info.value)


def test_gamma_one_without_horizon_needs_certain_termination():
    # State 'a' can loop forever on action 0 but may reach 'end' — termination is certain only if every
    # reachable state can reach 'end'; add a state that never can.
    data = _with(("horizon",), None)
    data["gamma"] = 1.0
    problem_from_dict(data)  # every state can reach 'end': certain termination under full-support policies
    trap = copy.deepcopy(data)
    trap["transitions"][1] = [[0, 1, 0], [0, 1, 0]]   # 'b' traps forever
    with pytest.raises(InvalidMDPError, match="certain termination"):
        problem_from_dict(trap)
    trap["gamma"] = 0.99  # discounting makes the infinite sum finite
    problem_from_dict(trap)


def test_terminal_rows_are_ignored():
    data = _with(("transitions", 2), [[0, 0, 0], [7, 7, 7]])  # garbage in the terminal row
    mdp = problem_from_dict(data).mdp
    assert mdp.transitions[2].tolist() == [[0, 0, 1], [0, 0, 1]]


def test_arrays_are_read_only():
    mdp = problem_from_dict(VALID).mdp
    with pytest.raises(ValueError):
        mdp.transitions[0, 0, 0] = 0.3


@pytest.mark.parametrize("path, value, words", [c[1:] for c in CASES[:4]], ids=[c[0] for c in CASES[:4]])
def test_cli_prints_one_line_and_exits_2(tmp_path, path, value, words):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(_with(path, value)))
    proc = subprocess.run([sys.executable, "-m", "verify", "gradient", str(f)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert all(w in lines[0] for w in words)


@pytest.mark.parametrize("content, words", [("{not json", ["not valid JSON"]), ("[1, 2]", ["JSON object"])])
def test_cli_rejects_malformed_files(tmp_path, content, words):
    f = tmp_path / "bad.json"
    f.write_text(content)
    proc = subprocess.run([sys.executable, "-m", "verify", "gradient", str(f)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 2 and all(w in proc.stderr for w in words)


def test_published_schema_is_valid_and_accepts_the_examples():
    """The schema is a valid Draft 2020-12 schema; every built-in example satisfies it as published."""
    import jsonschema

    from verify.builtin import EXAMPLE_NAMES, EXAMPLES_DIR
    from verify.problem import mdp_schema

    schema = mdp_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for name in EXAMPLE_NAMES:
        validator.validate(json.loads((EXAMPLES_DIR / f"{name}.json").read_text()))


@pytest.mark.parametrize("key, value", [
    ("terminal", 0), ("terminal", {"goal": True}), ("initial", [True, False, False]), ("gamma", True),
    ("horizon", "10"), ("policy", {"type": "tabular_softmax", "features": [[[1]]]}), ("rewards", [[1e200, 0]]),
    ("discount", 0.9), ("states", [0, 1, 2]), ("policy", {"type": ["tabular_softmax"]}),
])
def test_published_schema_refuses_what_the_loader_refuses(key, value):
    """The schema alone (full jsonschema, no bulk shortcuts) refuses these; so does problem_from_dict."""
    import jsonschema

    from verify.problem import mdp_schema

    doc = _with((key,), value)
    assert not jsonschema.Draft202012Validator(mdp_schema()).is_valid(doc)
    with pytest.raises(InvalidMDPError):
        problem_from_dict(doc)
