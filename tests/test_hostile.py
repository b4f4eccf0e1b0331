"""Hostile input, in process: every case of ``hostile_cases`` gets exit 2 (130 for an interrupt) and exactly one line
on stderr naming the problem — no traceback, no internal error, nothing on stdout, no file clobbered, no temporary
file left behind. A Hypothesis search adds random JSON values at random places of a valid MDP file.

The same families run as subprocesses under a memory cap in ``benchmarks/hostile_fuzz.py``.
"""
from __future__ import annotations

import json

import pytest
from hostile_cases import (
    BASE,
    FAMILIES,
    Case,
    all_cases,
    judge,
    materialize,
    snapshot,
    stray_temporaries,
)
from hypothesis import given
from hypothesis import strategies as st

from verify.cli import main

CASES = all_cases()


def test_every_family_is_populated():
    counts = {family: sum(c.family == family for c in CASES) for family in FAMILIES}
    assert all(n >= 5 for n in counts.values()), counts
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


def run_case(case: Case, directory, capsys) -> str | None:
    argv = materialize(case, directory)
    before = snapshot(case, directory)
    code = main(argv)
    out, err = capsys.readouterr()
    problem = judge(case, code, out, err)
    if problem is None and snapshot(case, directory) != before:
        problem = f"clobbered: {[k for k, v in snapshot(case, directory).items() if v != before[k]]}"
    if problem is None and stray_temporaries(directory):
        problem = f"temporary files left: {stray_temporaries(directory)}"
    return problem


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_gets_one_clean_line(case, tmp_path, capsys):
    problem = run_case(case, tmp_path, capsys)
    assert problem is None, f"{case.id}: {problem}"


def test_judge_can_fail():
    """The judge is not vacuous: each way of failing the promise is caught."""
    case = Case("x", "y", ())
    assert judge(case, 2, "", "pgverify gradient: error: f.json: horizon must be ...\n") is None
    assert judge(case, 2, "", "Traceback (most recent call last):\n  ...\nValueError: x\n").startswith("traceback")
    assert judge(case, 2, "", "pgverify mc: error: internal error KeyError: 'a'\n").startswith("internal-error")
    assert judge(case, 0, "", "").startswith("exit-code")
    assert judge(case, 2, "", "pgverify mc: error: a\nsecond line\n").startswith("lines")
    assert judge(case, 2, "partial output", "pgverify mc: error: a\n").startswith("stdout")
    assert judge(case, 2, "", "usage: pgverify ...\n").startswith("message")


def test_messages_name_the_entry(tmp_path, capsys):
    """Spot checks that the one line names the offending entry and the limit, not just 'invalid'."""
    expectations = {
        "big-integers:states=5000-digits": "states must be a positive integer",
        "non-utf8:ff-prefix": "byte 0xff at offset 0",
        "nesting:description-1000-levels": "nested more than 64 levels",
        "wrong-types:terminal=zero": "terminal must be a list of state indices or names, got an integer 0",
        "accepted-before:terminal={goal:true}": "terminal must be a list",
        "accepted-before:initial-bools": "initial[0] is a boolean true, not a number",
        "accepted-before:duplicate-top-key": "duplicate key 'gamma'",
        "accepted-before:tabular-with-features": "policy has unknown keys ['features']",
        "numbers:rewards.1.1=1e200": "rewards[1][1] is 1e+200",
        # 16 bytes x (H + 1) x n = 16 x (10^9 + 1) x 2 B = 29.8 GiB for the DP table [H + 1, 2 n] on the n = 2
        # states that act (of S = 3; dense operators below 150 states)
        "sizes:horizon=10^9": "needs 29.8 GiB, more than the memory limit 2.0 GiB (raise it with --max-memory)",
        "sizes:mc-episodes=118059162071": "more than the work limit",
        "special-files:file=dev-urandom": "is a character device, not a regular file",
        "special-files:file=fifo": "is a FIFO/pipe, not a regular file",
        "special-files:theta=complex": "complex",
        "user-code:mc exit0-in-call": "called sys.exit(0)",
        "user-code:mc sleeps": "took longer than --estimator-timeout 0.5 s",
        "user-code:mc multiline-exception": "line one / line two / line three",
        "output-paths:latex proc": "cannot write output file '/proc/pgverify-out.file'",
    }
    by_id = {c.id: c for c in CASES}
    for case_id, words in expectations.items():
        directory = tmp_path / case_id.replace("/", "_").replace(":", "_").replace(" ", "_")
        directory.mkdir()
        case = by_id[case_id]
        main(materialize(case, directory))
        err = capsys.readouterr().err
        assert words in err, f"{case_id}: {err!r} lacks {words!r}"


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


_ALL_PATHS = [p for p in _paths(BASE) if p]


@given(path=st.sampled_from(_ALL_PATHS), value=_json_values)
def test_random_values_anywhere_never_crash(tmp_path_factory, path, value):
    """Any JSON value anywhere: a result (exit 0/1) or one clean line (exit 2); never a traceback."""
    import contextlib
    import io

    doc = json.loads(json.dumps(BASE))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    f = tmp_path_factory.mktemp("h") / "mdp.json"
    f.write_text(json.dumps(doc))          # NaN/Infinity written as such: the reader must refuse them
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["gradient", str(f)])
    lines = err.getvalue().strip().splitlines()
    assert code in (0, 2), (path, value, code, err.getvalue())
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("pgverify gradient: error:"), (path, value, lines)
        assert "internal error" not in lines[0], lines[0]
    else:
        assert not lines, lines


def test_degenerate_but_valid_requests_give_results(tmp_path, capsys):
    """Valid requests that used to crash: all initial mass on a terminal state (plot divided by a zero variance),
    a test level above the target power (the detectable-effect root search had no sign change)."""
    pytest.importorskip("matplotlib")
    doc = json.loads(json.dumps(BASE))
    doc["initial"] = [0, 0, 1]
    f = tmp_path / "ends-at-once.json"
    f.write_text(json.dumps(doc))
    assert main(["plot", str(f), "--out", str(tmp_path / "figs"), "--episodes", "100"]) == 0
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["convergence-chain.png", "variance-chain.png"]
    g = tmp_path / "chain.json"
    g.write_text(json.dumps(BASE))
    assert main(["mc", str(g), "--estimator", "reward_to_go", "--alpha", "0.9999", "--episodes", "300"]) in (0, 1)
    assert "error" not in capsys.readouterr().err
