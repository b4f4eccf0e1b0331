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


def test_every_quoted_benchmark_output_is_the_section_of_the_record_it_names():
    module = _module()
    quoted = list(module.quoted_blocks())
    for doc, m in quoted:
        record = ROOT / m.group("record")
        assert record.is_file(), f"{doc.name} quotes {m.group('record')}, which is not in the repository"
        outputs = module.record_outputs(record)
        name = m.group("name")
        assert name in outputs, f"{doc.name} quotes section {name!r}, which {record.name} lacks"
        if m.group("body") != outputs[name]:
            raise AssertionError(f"{doc.name}: the block quoting {record.name}#{name} differs from the record "
                                 f"(python benchmarks/regenerate.py --splice {m.group('record')})")


def test_splice_rewrites_a_quoted_block_and_leaves_the_rest(tmp_path, monkeypatch):
    module = _module()
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    record = tmp_path / "benchmarks" / "results" / "r.md"
    record.write_text("# Benchmark record\n\n## sampler\n\nCommand: x\n\n```\nnew line 1\nnew line 2\n[stderr]\nnoise\n"
                      "```\n\n## other\n\n```\nz\n```\n")
    (tmp_path / "docs").mkdir()
    doc = tmp_path / "docs" / "a.md"
    doc.write_text("prose\n<!-- record: benchmarks/results/old.md#sampler -->\n```text\nold\n```\nmore prose\n")
    monkeypatch.setattr(module, "ROOT", tmp_path)
    assert module.splice(record) == ["docs/a.md"]
    assert doc.read_text() == ("prose\n<!-- record: benchmarks/results/r.md#sampler -->\n```text\nnew line 1\n"
                               "new line 2\n```\nmore prose\n")
    doc.write_text("<!-- record: benchmarks/results/r.md#missing -->\n```text\nx\n```\n")
    try:
        module.splice(record)
    except module.BadArguments as e:
        assert "missing" in str(e)
    else:
        raise AssertionError("a block quoting a section the record lacks was accepted")
