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


SPARSE = {
    "states": ["s0", "s1", "goal"], "actions": ["l", "r"], "initial": [1, 0, 0],
    "transitions": {"sparse": [["s0", "l", "s0", 1.0], ["s0", "r", "s1", 1.0], ["s1", "l", "s0", 1.0],
                               [1, 1, 2, 1.0]]},
    "rewards": {"sparse": [["s1", "r", 1.0], [0, 0, 0, -0.5]]}, "terminal": ["goal"], "horizon": 4,
}


def _sparse_with(key, value):
    doc = copy.deepcopy(SPARSE)
    doc[key] = value
    return doc


VALID_DOCS = [
    VALID, SPARSE, _with(("policy",), _DELETE), _with(("horizon",), None), _with(("states",), 3),
    _with(("policy",), {"type": "linear_softmax", "features": [[[1], [0]]] * 3, "theta": [0.5]}),
    _with(("rewards",), [[[0, 0, 0], [1, 1, 1]]] * 3), _with(("terminal",), [2, "end"]),
    _with(("description",), "x"), _sparse_with("rewards", {"sparse": []}), _with(("gamma",), 1),
]
INVALID_DOCS = [_with(c[1], c[2]) for c in CASES] + [_with((k,), v) for k, v in [
    ("terminal", 0), ("terminal", {"goal": True}), ("initial", [True, False, False]), ("gamma", True),
    ("horizon", "10"), ("horizon", 1.0), ("horizon", 10**18), ("states", [0, 1, 2]), ("states", ["a", "a", "b"]),
    ("states", []), ("states", 0), ("states", True), ("states", ["a" * 1001, "b", "c"]), ("name", 3),
    ("name", "n" * 1001), ("terminal", [-1]), ("terminal", [1.0]), ("terminal", [None]), ("initial", []),
    ("initial", [[1]]), ("transitions", []), ("transitions", [[[]]]), ("rewards", [[0, True]] * 3),
    ("rewards", [[1e101, 0]] * 3), ("policy", {"type": "tabular_softmax", "features": [[[1]]]}),
    ("policy", {"type": ["tabular_softmax"]}), ("policy", {}), ("policy", None), ("policy", "tabular_softmax"),
    ("policy", {"type": "linear_softmax", "features": [[[1]]], "theta": [1], "x": 1}),
    ("policy", {"type": "linear_softmax", "theta": [1]}), ("description", None),
]] + [_sparse_with(k, v) for k, v in [
    ("transitions", {"sparse": []}), ("transitions", {"sparse": [[0, 0, 0]]}),
    ("transitions", {"sparse": [[0, 0, 0, True]]}), ("transitions", {"sparse": [[0, 0, -1, 1.0]]}),
    ("transitions", {"sparse": [[0, 0.0, 0, 1.0]]}), ("transitions", {"sparse": [[0, 0, 0, "1"]]}),
    ("transitions", {"sparse": [[0, 0, 0, 1.0]], "extra": 1}), ("transitions", {"dense": []}),
    ("rewards", {"sparse": [[0, 0, 0, 0, 1.0]]}), ("rewards", {"sparse": [[0, 0]]}),
    ("rewards", {"sparse": [[0, None, 1.0]]}), ("rewards", {"sparse": [[0, 0, float("inf")]]}),
    ("rewards", {"sparse": [(0, 0, 1.0)]}),
]]


def test_fast_schema_path_agrees_with_the_schema():
    """The schema check without jsonschema accepts every valid document and nothing the schema refuses.

    The authority is the published schema under pgverify's strict types (``_validator``): on each document of one
    table, the fast path may only say "valid" when the schema does (when it says "ask", jsonschema decides).
    """
    from verify.problem import _fast_accepts, _validator

    validator = _validator()
    for doc in VALID_DOCS:
        assert validator.is_valid(doc), doc
        assert _fast_accepts(doc), doc
    refused = 0
    for doc in INVALID_DOCS:
        if _fast_accepts(doc):
            assert validator.is_valid(doc), doc     # e.g. a row sum: schema-valid, refused later by the model
        refused += not validator.is_valid(doc)
    assert refused >= 40


@pytest.mark.parametrize("row, words", [
    ([0, 0, 0, True], ["transitions.sparse[5][3]", "boolean"]),
    ([0, -1, 0, 1.0], ["transitions.sparse[5][1]", "not an index or a name"]),
    ([0, 0, 0, 1e101], ["transitions.sparse[5][3]", "above 1e+100"]),
    ([0, 0, 1.0], ["transitions.sparse[5]", "not a row of 4 entries"]),
    ([0, 0, 0.5, 1.0], ["transitions.sparse[5][2]", "not an index or a name"]),
])
def test_bulk_row_checks_name_the_first_offending_row(row, words):
    """Rows are checked in bulk; a failure still names the first offending row (the 6th of 9 here)."""
    rows = [[s, a, s, 1.0] for s in range(3) for a in range(2)]
    rows[5:5] = [row]
    doc = {"states": 3, "actions": 2, "initial": [1, 0, 0], "transitions": {"sparse": rows}, "rewards": [[0, 0]] * 3}
    with pytest.raises(InvalidMDPError) as err:
        problem_from_dict(doc)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_long_integers_are_read_as_floats_wherever_they_sit():
    """The per-integer hook is skipped unless a long digit run may be an integer; both paths read alike."""
    from verify.io import load_json_text

    digits = "1" * 25
    assert load_json_text(f'[{digits}, -{digits}]'.encode(), "f") == [float(digits), -float(digits)]
    assert load_json_text(f'[0.{digits}, 1e-{digits}, "{digits}", 7]'.encode(), "f") == [
        float(f"0.{digits}"), 0.0, digits, 7]
    assert type(load_json_text(b"[123456789012345678]", "f")[0]) is int
    assert load_json_text(b'{"a": "\\\\", "b": [["\\"[[["]]}', "f") == {"a": "\\", "b": [['"[[[']]}
    with pytest.raises(InvalidMDPError, match="nested more than 3 levels deep"):
        load_json_text(b'["]]]]", [[[[1]]]]]', "f", max_depth=3)


def test_valid_examples_are_read_without_importing_jsonschema():
    """Start-up: the built-in examples pass the fast schema path, so jsonschema (0.1 s of imports) is not loaded."""
    code = ("import sys\nfrom verify.builtin import EXAMPLE_NAMES, EXAMPLES_DIR\nfrom verify.problem import load_problem\n"
            "for n in EXAMPLE_NAMES:\n    load_problem(EXAMPLES_DIR / f'{n}.json')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'jsonschema'))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout
