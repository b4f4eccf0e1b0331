"""``pgverify report`` end to end, as a user runs it (subprocess): exit codes, JSON keys, determinism, failures."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"version", "seed", "quick", "passed", "command", "summary", "derivation", "continuous", "errata", "gradients",
        "estimators", "variance", "timing"}


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
    assert {"example", "estimator", "p_value", "verdict", "expected", "outcome", "passed"} <= set(quick_json["estimators"][0])
    assert {row["derivation"] for row in quick_json["derivation"]} == {"seed", "reward_to_go", "baseline"}
    # the seed's equations (2)..(15) are each reached by one step
    assert sorted(r["number"] for r in quick_json["derivation"] if r["derivation"] == "seed") == list(range(1, 16))
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


BROKEN = """
import dataclasses, sys
import verify.report as report
from verify.estimators import ESTIMATORS, get_estimator
# A pitfall registered as unbiased: the report must fail and name it.
broken = dataclasses.replace(get_estimator("rtg_skip_current"), name="broken_rtg", unbiased=True)
report.REPORT_ESTIMATORS = (*ESTIMATORS, broken)
from verify.cli import main
sys.exit(main(["report", "--quick", "--no-color"]))
"""


def test_a_broken_estimator_fails_the_report_and_is_named():
    proc = _run(code=BROKEN)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr
    assert "FAILED" in proc.stdout
    failure_lines = [line for line in proc.stdout.splitlines() if "broken_rtg" in line and "FALSE ALARM" in line]
    assert failure_lines, proc.stdout[-3000:]
    # the failure says which component, both values, the standard error, the p-value and how to replay it
    assert "sample mean" in proc.stdout and "exact" in proc.stdout and "standard error" in proc.stdout
    assert "--estimator broken_rtg" in proc.stdout and "--seed 0" in proc.stdout
