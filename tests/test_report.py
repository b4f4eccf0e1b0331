"""``pgverify report`` end to end, as a user runs it (subprocess): exit codes, JSON keys, determinism, failures."""
import dataclasses
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from verify.checks.estimators import ESTIMATORS, get_estimator
from verify.app.render import render_report
from verify.app.report import build_report

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"version", "seed", "quick", "passed", "command", "summary", "derivation", "continuous", "errata", "gradients",
        "estimators", "variance", "theory", "timing"}


def _run(*args, code: str | None = None, cwd=ROOT):
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "verify", *args]
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def quick_json():
    proc = _run("report", "--quick", "--seed", "3", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def quick_text_and_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.json"
    proc = _run("report", "--quick", "--seed", "3", "--json", str(out), "--no-color")
    return proc, out


def test_json_has_the_documented_keys(quick_json):
    assert KEYS <= set(quick_json)
    assert quick_json["passed"] is True and quick_json["seed"] == 3
    assert quick_json["summary"]["failed"] == 0
    assert {"checks", "passed", "failed", "undecided", "errata"} <= set(quick_json["summary"])
    assert {"example", "estimator", "p_value", "verdict", "expected", "outcome", "passed"} <= set(quick_json["estimators"][0])
    assert {row["derivation"] for row in quick_json["derivation"]} == {
        "source", "eglp", "reward_to_go", "baseline", "pg_q", "pg_advantage", "pg_state", "pg_bellman",
        "performance_difference", "surrogate_gradient", "natural_gradient"}
    # issue 24: every new derivation's steps grounded, and the gamma^t-less update's asymmetric Jacobian by value
    assert all(r["passed"] for r in quick_json["derivation"] if r["derivation"] in ("pg_bellman", "surrogate_gradient", "performance_difference", "natural_gradient"))
    field = next(r for r in quick_json["theory"] if r["claim"] == "gamma_less_update_not_a_gradient")
    assert field["passed"] and field["is_gradient"] is False
    assert abs(field["jacobian_ij"] - field["jacobian_ji"]) == field["asymmetry_max_abs"] > field["threshold"]
    assert quick_json["derivation_numeric"] and all(r["ok"] for r in quick_json["derivation_numeric"])
    # the numeric half sees time and discount: a 2-state model with H = 3 and gamma < 1 in --quick
    assert {e["example"] for r in quick_json["derivation_numeric"] for e in r["evaluated"]} == {"bandit", "two_state"}
    assert {r["kind"] for r in quick_json["chain"]} == {"seam", "proves", "lemma"}
    assert all(r["passed"] for r in quick_json["chain"]) and "pg_q ← reward_to_go (RTG9)" in [
        r["link"] for r in quick_json["chain"]]
    assert quick_json["source"]["author"] == "Alexander Schindorfer" and "seed_text" not in quick_json["errata"][0]
    assert quick_json["side_conditions"]["assumed"] == len(quick_json["side_conditions"]["assumed_conditions"])
    # the seed's equations (2)..(15) are each reached by one step
    assert sorted(r["number"] for r in quick_json["derivation"] if r["derivation"] == "source") == list(range(1, 16))
    assert len(quick_json["errata"]) >= 6 and all(e["evidence"] for e in quick_json["errata"])


def test_text_report_and_same_json_for_same_seed(quick_json, quick_text_and_file):
    proc, out = quick_text_and_file
    assert proc.returncode == 0, proc.stderr
    for section in ("1. Derivation", "2. Errata", "3. Exact gradients", "4. Monte Carlo", "5. Variance"):
        assert section in proc.stdout
    assert "\x1b[" not in proc.stdout          # plain text when not a terminal / --no-color
    assert "PASSED" in proc.stdout and "pgverify report --seed 3 --quick" in proc.stdout
    again = json.loads(out.read_text())
    for doc in (again, quick_json):
        doc.pop("timing")
    assert again == quick_json


def test_json_file_is_not_overwritten(tmp_path):
    out = tmp_path / "mine.json"
    out.write_text("keep me")
    proc = _run("report", "--quick", "--json", str(out))
    assert proc.returncode == 2 and "--force" in proc.stderr and out.read_text() == "keep me"


@pytest.mark.parametrize("args", [["--seed", "-1"], ["--seed", "x"], ["--bogus"]])
def test_bad_usage_exits_2(args):
    proc = _run("report", *args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def _scaled(estimator, factor, name):
    """``estimator`` times ``factor``, registered as unbiased: a bias of (factor - 1) grad J, known in advance."""
    return dataclasses.replace(estimator, name=name, unbiased=True,
                               per_episode=lambda episodes: factor * estimator.per_episode(episodes))


@pytest.fixture(scope="module")
def broken_report():
    """The quick report with two broken catalog entries (through ``build_report``'s ``estimators``)."""
    broken = dataclasses.replace(get_estimator("rtg_skip_current"), name="broken_rtg", unbiased=True)
    scaled = _scaled(get_estimator("reward_to_go"), 1.05, "rtg_times_1.05")
    return build_report(seed=0, quick=True, estimators=(*ESTIMATORS, broken, scaled))


def test_a_broken_estimator_fails_the_report_and_is_named(broken_report):
    rows = {(ex, row.mc.estimator.name): row for ex, row in broken_report.estimators}
    assert not broken_report.passed
    console = Console(file=io.StringIO(), width=160, no_color=True)
    render_report(broken_report, console=console, reproduce=lambda ex, r: f"REPLAY {ex} {r.estimator.name}")
    text = console.file.getvalue()
    for ex in ("bandit", "chain", "gridworld"):
        # Enumerable: the exact bias decides and the label says so (not "false alarm", whatever the sample did).
        for name, factor in (("broken_rtg", None), ("rtg_times_1.05", 0.05)):
            row = rows[(ex, name)]
            assert row.status == "failed" and row.outcome.startswith("BIASED (exact bias "), (ex, name, row.outcome)
            if factor is not None:        # E[1.05 g] - grad J = 0.05 grad J, by linearity
                np.testing.assert_allclose(row.mc.moments.bias, factor * row.mc.moments.grad, atol=1e-12)
    # discounted.json (horizon null): nothing to enumerate; the paired test catches both (power: the difference
    # from reward-to-go is 0.05 g or the skipped reward, far above the 5000-episode detectable bias)
    for name in ("broken_rtg", "rtg_times_1.05"):
        row = rows[("discounted", name)]
        assert (row.status, row.outcome, row.mc.decided_by) == ("failed", "INCONSISTENT", "paired"), row.outcome
    assert "REPLAY chain broken_rtg" in text and "REPLAY discounted rtg_times_1.05" in text
    assert "sample mean" in text and "standard error" in text and "the miss:" in text
    assert broken_report.summary["failed"] >= 8
    assert not any(row.outcome.endswith("false alarm)") for ex, row in broken_report.estimators if ex != "discounted"
                   and row.mc.moments.biased)


def test_the_lq_section_is_in_the_report(quick_json, quick_text_and_file):
    rows = quick_json["lq"]
    sections = {r["section"] for r in rows}
    assert sections == {"derivation", "gradient", "estimator"} and all(r["status"] == "passed" for r in rows)
    assert {r["name"] for r in rows if r["section"] == "derivation"} >= {"trajectory_form", "reparameterisation"}
    assert "6. LQ control" in quick_text_and_file[0].stdout
