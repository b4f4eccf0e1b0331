"""The proof cache (derive.proof_cache): a replayed verdict is the one the same code reached for the same step;
a different step, rule, size or code is a miss; a corrupted, forged or unwritable cache is a miss, never a crash
and never a changed verdict; ``pgverify cache clear`` empties it. Also the LQ claims' polynomial-ring integrals
against the expand path they replaced.

The suite runs with the cache off (tests/conftest.py); each test here turns it on in its own tmp_path.
"""
import dataclasses
import json

import pytest

from derive import proof_cache
from derive.grounding import ground_step
from derive.seed import BASELINE, SOURCE


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.delenv(proof_cache.ENV_OFF, raising=False)
    monkeypatch.setenv(proof_cache.ENV_DIR, str(tmp_path / "c"))
    return tmp_path / "c" / "proofs"


def _entries(root):
    return sorted(root.glob("*/*.json"))


def _same(a, b):
    return (a.ok, a.method, a.points, a.message, a.sizes, a.number, a.rule) == \
        (b.ok, b.method, b.points, b.message, b.sizes, b.number, b.rule)


def test_second_grounding_is_replayed_with_the_same_verdict(cache):
    step = SOURCE.step(4)
    first = ground_step(step, (2, 2, 1), "auto")
    second = ground_step(step, (2, 2, 1), "auto")
    assert first.ok and not first.cached
    assert second.cached and _same(first, second)
    assert len(_entries(cache)) == 1


def test_other_sizes_method_or_points_are_other_keys(cache):
    step = SOURCE.step(4)
    ground_step(step, (2, 2, 1), "auto")
    for args in (((2, 2, 2), "auto"), ((2, 2, 1), "random"), ((2, 2, 1), "random", 2), ((2, 2, 1), "random", 1, 7)):
        assert not ground_step(step, *args).cached, args
    assert len(_entries(cache)) == 5


def test_a_different_fingerprint_recomputes(cache, monkeypatch):
    """The grounding code (or pgverify's version) changed: every old entry is unused, never replayed."""
    step = SOURCE.step(4)
    ground_step(step, (2, 2, 1), "auto")
    monkeypatch.setattr(proof_cache, "fingerprint", lambda: "another version of the code")
    again = ground_step(step, (2, 2, 1), "auto")
    assert not again.cached and again.ok
    assert len(_entries(cache)) == 2


def test_normalisation_flag_is_part_of_the_key(cache):
    """The same expressions and rule name, the rule's normalisation dropped: a miss, and the corruption fails."""
    real = BASELINE.step("B3")
    assert ground_step(real, (2, 2, 2), "auto").ok
    corrupt = dataclasses.replace(real, rule=dataclasses.replace(real.rule, needs_normalisation=False))
    g = ground_step(corrupt, (2, 2, 2), "auto")
    assert not g.cached and not g.ok


def test_corrupted_entries_are_misses(cache):
    step = SOURCE.step(4)
    ok = ground_step(step, (2, 2, 1), "auto")
    (path,) = _entries(cache)
    for text in ("", "{not json", json.dumps({"key": path.stem, "check": "0", "payload": {}}), "[]", "null"):
        path.write_text(text)
        g = ground_step(step, (2, 2, 1), "auto")
        assert not g.cached and _same(g, ok), text
    # a forged verdict (ok flipped, checksum left as it was) is not replayed either
    ground_step(step, (2, 2, 1), "auto")
    entry = json.loads(path.read_text())
    assert entry["payload"]["ok"] is True
    entry["payload"]["ok"] = False
    path.write_text(json.dumps(entry))
    g = ground_step(step, (2, 2, 1), "auto")
    assert g.ok and not g.cached


def test_an_unwritable_cache_neither_crashes_nor_changes_the_verdict(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.delenv(proof_cache.ENV_OFF, raising=False)
    monkeypatch.setenv(proof_cache.ENV_DIR, str(blocker))
    for _ in range(2):
        g = ground_step(SOURCE.step(4), (2, 2, 1), "auto")
        assert g.ok and not g.cached
    assert proof_cache.put(proof_cache.key("x"), {"a": 1}) is False


def test_disabled_reads_and_writes_nothing(cache, monkeypatch):
    step = SOURCE.step(4)
    with proof_cache.disabled():
        assert not ground_step(step, (2, 2, 1), "auto").cached
    assert _entries(cache) == []
    ground_step(step, (2, 2, 1), "auto")
    monkeypatch.setenv(proof_cache.ENV_OFF, "1")
    assert not ground_step(step, (2, 2, 1), "auto").cached


def test_clear_removes_the_entries_and_only_them(cache, capsys):
    from verify.cli import main

    ground_step(SOURCE.step(4), (2, 2, 1), "auto")
    ground_step(SOURCE.step(5), (2, 2, 1), "auto")
    mine = cache / "notes.txt"
    mine.write_text("a user's file")
    assert main(["cache", "info"]) == 0
    assert "2 entries" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "removed 2 cached proofs" in capsys.readouterr().out
    assert _entries(cache) == [] and mine.read_text() == "a user's file"
    assert not ground_step(SOURCE.step(4), (2, 2, 1), "auto").cached


def test_where_it_lives(tmp_path, monkeypatch):
    monkeypatch.delenv(proof_cache.ENV_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert proof_cache.cache_dir() == tmp_path / "pgverify" / "proofs"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")          # the XDG spec: ignored unless absolute
    assert proof_cache.cache_dir().parent.parent.name == ".cache"
    monkeypatch.setenv(proof_cache.ENV_DIR, str(tmp_path / "x"))
    assert proof_cache.cache_dir() == tmp_path / "x" / "proofs"


def test_expression_text_separates_what_grounding_separates():
    from sympy import Symbol

    from derive.notation import CondExpectation, Reward, t

    a, b = Symbol("a", positive=True), Symbol("a", real=True)
    assert proof_cache.expr_text(a) != proof_cache.expr_text(b)
    assert proof_cache.expr_text(CondExpectation(Reward(t), t, 1)) != proof_cache.expr_text(
        CondExpectation(Reward(t), t, 0))


def _corruptions():
    from tests.test_derive_corruption import CORRUPTIONS

    return [(desc, step) for desc, step, where, _ in CORRUPTIONS if where & {"grounding", "grounding-H3"}]


@pytest.mark.parametrize("desc,step", _corruptions(), ids=[c[0] for c in _corruptions()])
def test_corruptions_fail_with_a_warm_cache_as_without_one(desc, step, cache):
    """The real step is proved and cached first; its corrupted copy (same number and rule) must still fail, with
    the same verdict and message as with the cache off, and replay that failure."""
    sizes = (3, 2, 3) if "t' = 2" in desc else (2, 2, 2)
    method = "random" if sizes == (3, 2, 3) else "auto"
    with proof_cache.disabled():
        cold = ground_step(step, sizes, method)
    assert not cold.ok
    from derive.seed import DERIVATIONS

    real = [s for d in DERIVATIONS for s in d.steps if s.number == step.number]
    for s in real:
        ground_step(s, sizes, method)
    assert real, f"no real step ({step.number}) to cache first"
    warm = ground_step(step, sizes, method)
    assert not warm.cached and _same(warm, cold)
    again = ground_step(step, sizes, method)
    assert again.cached and _same(again, cold)


def test_lq_ring_integrals_equal_the_expand_path():
    from sympy import Rational, Symbol, expand, sqrt

    from derive.gaussian_lq import NORMALS, _expect_by_expand, _expect_in_ring, _trajectory, gamma

    _, _, r, scores = _trajectory()
    z = Symbol("z", real=True)
    cases = [(r[0] + gamma * r[1], NORMALS), (r[1] * scores["sigma"][1], NORMALS),
             ((1 + z) ** 4 * sqrt(Symbol("v", positive=True)) / 3, (z,)), (Rational(5, 7) * z ** 3, (z,))]
    for expr, normals in cases:
        fast = _expect_in_ring(expr, normals)
        assert fast is not None and expand(fast - _expect_by_expand(expr, normals)) == 0, expr
    assert _expect_in_ring(1 / (1 + z), (z,)) is None          # not a polynomial in z: the expand path decides


def test_code_that_cannot_be_fingerprinted_is_computed_uncached(cache, monkeypatch):
    def unreadable():
        raise PermissionError("a source file cannot be read")

    monkeypatch.setattr(proof_cache, "fingerprint", unreadable)
    g = ground_step(SOURCE.step(4), (2, 2, 1), "auto")
    assert g.ok and not g.cached
    assert proof_cache.memo("x", (), lambda: 41 + 1, lambda v: v, lambda v: v) == 42
    assert _entries(cache) == []
