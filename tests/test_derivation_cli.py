"""``pgverify derivation FILE``: the docs' example passes, a broken copy fails with named rows, a malformed file
is one line with exit 2; the parser never runs code."""
from __future__ import annotations

import json

import pytest

from derive.userfile import DerivationFileError, parse_derivation
from verify.cli import main
from tests.test_readme import REPO, parse_blocks


def _docs_example() -> str:
    block = next(b for b in parse_blocks(REPO / "docs" / "derivation.md")
                 if b.directive == "file" and b.argument == "advantage.pgd")
    return block.text


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    path = tmp_path_factory.mktemp("derivation") / "advantage.pgd"
    path.write_text(_docs_example())
    return path


def test_docs_example_passes_and_exports(example, capsys):
    md, tex, js = (example.with_suffix(s) for s in (".md", ".tex", ".json"))
    code = main(["derivation", str(example), "--quick", "--markdown", str(md), "--latex", str(tex), "--json", str(js)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASSED: 18/18 rows passed" in out and "my_advantage → pg_q (PGQ3)" in out
    data = json.loads(js.read_text())
    assert data["passed"] and data["ends_at"] == "pg_q" and {r["kind"] for r in data["chain"]} == {
        "seam", "proves", "lemma"}
    assert "*Chain:* this derivation arrives at the result of `pg_q`" in md.read_text()
    assert r"\texttt{pg\_q}" in tex.read_text() and r"\tag{U7}" in tex.read_text()


def test_broken_copy_fails_naming_step_seam_and_line(example, tmp_path, capsys):
    text = _docs_example()
    broken = tmp_path / "broken.pgd"
    # drop gamma^t from the last line only: the step, the seam to pg_q, the claim and the numeric row fail
    last = "step U7 eglp: E(time_sum(gamma**t * score(t) * Q(t)))"
    assert last in text
    broken.write_text(text.replace(last, "step U7 eglp: E(time_sum(score(t) * Q(t)))"))
    assert main(["derivation", str(broken), "--quick"]) == 1
    captured = capsys.readouterr()
    err = captured.err
    assert "my_advantage (U7) replay: (U7) eglp: differs" in err
    assert "my_advantage → pg_q (PGQ3): seam my_advantage → pg_q (PGQ3) does not hold" in err
    assert "counterexample at (S, A, H) = (2, 2, 2)" in err
    assert "my_advantage (U7) numeric" in err and "two_state" in err
    assert "FAILED: 13/18 rows passed" in captured.out and "Traceback" not in err


@pytest.mark.parametrize("mutate,message", [
    (lambda s: s.replace("U2 distribute", "U2 distribut"), "unknown rule 'distribut' (did you mean distribute?)"),
    (lambda s: s.replace("score(t) * A(t)", "score(t) * Adv(t)"), "unknown name 'Adv'"),
    (lambda s: s.replace("step U1 advantage_definition:", "step U1:"), "a step reads 'step NUMBER RULE: expression'"),
    (lambda s: s.replace("start: E(", "start: E(__import__('os'), "), "unknown name '__import__'"),
    (lambda s: s.replace("start: E(time_sum(", "start: E(().__class__(", 1), "is not allowed here"),
    (lambda s: s.replace("name: my_advantage", "name: pg_q"), "is a built-in derivation's"),
    (lambda s: s.replace("name: my_advantage", ""), "'name: IDENTIFIER' is missing"),
    (lambda s: s + "step U8 eglp: E(time_sum(Q(t)\n", "unbalanced brackets"),
    (lambda s: s.replace("proves: grad_J", "proves: 3"), "proves must be GRAD_J or an equation"),
])
def test_malformed_file_is_one_line_exit_2(tmp_path, capsys, mutate, message):
    path = tmp_path / "bad.pgd"
    path.write_text(mutate(_docs_example()))
    assert main(["derivation", str(path), "--quick"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_parser_interprets_no_code():
    with pytest.raises(DerivationFileError, match="not allowed here"):
        parse_derivation("name: x\nstart: (lambda: 1)()\nstep 1 distribute: 1\n")
    with pytest.raises(DerivationFileError, match="is not allowed here"):
        parse_derivation("name: x\nstart: t.__class__\nstep 1 distribute: 1\n")
