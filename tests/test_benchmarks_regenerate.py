"""benchmarks/regenerate.py: it covers every script the documents quote a figure from, and refuses bad input."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "regenerate.py"


def _module():
    spec = importlib.util.spec_from_file_location("regenerate", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("regenerate", module)    # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _figure_sources() -> set[str]:
    """The scripts named in benchmarks/README.md's table "Which script produces each documented figure"."""
    text = (ROOT / "benchmarks" / "README.md").read_text()
    table = text.split("## Which script produces each documented figure", 1)[1]
    scripts = set()
    for row in (line for line in table.splitlines() if line.startswith("|")):
        last = row.rstrip("|").rsplit("|", 1)[-1]
        scripts |= set(re.findall(r"`?(\w+\.py)", last))
    return scripts


def test_every_script_a_figure_comes_from_is_regenerated_or_says_why_not():
    module = _module()
    run = {b.argv[0].split("/")[-1] for b in module.BENCHES}
    sources = _figure_sources()
    assert len(sources) >= 10, sources      # the table was found and read
    unaccounted = sorted(sources - run - set(module.NOT_REGENERATED))
    assert not unaccounted, f"documented figures from scripts regenerate.py neither runs nor excuses: {unaccounted}"
    for bench in module.BENCHES:
        assert (ROOT / bench.argv[0]).is_file(), bench.argv[0]


def test_bad_arguments_get_one_line_and_exit_2(tmp_path):
    bad = subprocess.run([sys.executable, str(SCRIPT), "--only", "no_such_bench"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no_such_bench" in bad.stderr, bad.stderr
    existing = tmp_path / "record.md"
    existing.write_text("keep me")
    refused = subprocess.run([sys.executable, str(SCRIPT), "--only", "grounding", "--out", str(existing)],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--force" in refused.stderr, refused.stderr
    assert existing.read_text() == "keep me"
