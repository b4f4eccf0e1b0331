"""Regenerate every documented speed and memory figure in one run, on one machine, with the load at the time.

Runs each benchmark that a figure in ``README.md`` or ``docs/*.md`` comes from (the table "Which script produces
each documented figure" in ``benchmarks/README.md``) one after another, in fresh processes with one BLAS thread,
and writes one Markdown record: the machine (CPU model, cores, memory), the versions, the git revision, and per
benchmark its command, the load average before and after, its wall and CPU seconds, its exit status and its whole
output. The documents quote their figures from such a record and name it.

    python benchmarks/regenerate.py                      # all but the slow ones; record in benchmarks/results/DATE-HHMM.md
    python benchmarks/regenerate.py --slow               # also the 10^6-state scale run and the calibrations
    python benchmarks/regenerate.py --only report_speed startup
    python benchmarks/regenerate.py --list               # what would run, and the figures each feeds
    python benchmarks/regenerate.py --splice benchmarks/results/RECORD.md   # put its outputs into the documents

A document quotes a benchmark's output as a ``text`` block right after a marker naming the record and the section,
``<!-- record: benchmarks/results/RECORD.md#sampler -->``; ``--splice`` rewrites every such block (and its marker)
from a record, and ``tests/test_benchmarks_regenerate.py`` fails when a block differs from the section it names.

The record is written atomically and never over an existing file without ``--force``. Exit status: 0 when every
benchmark ran and exited 0, 1 when one failed (its output is in the record), 2 on bad arguments.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Bench:
    name: str
    argv: tuple[str, ...]       # after ``python``; paths relative to the repository root
    feeds: str                  # the documented figures it regenerates
    slow: bool = False          # minutes rather than seconds: only with --slow
    extras: tuple[str, ...] = ()    # modules it needs; skipped (and said so) without them


BENCHES = (
    Bench("report_speed", ("benchmarks/bench_report_speed.py", "--runs", "3", "--gc"),
          "README install-and-run and Performance: report / report --quick / latex, cold and warm proof cache, and "
          "cold with CPython's default collector thresholds"),
    Bench("report_instructions", ("benchmarks/bench_report_speed.py", "--quick-only", "--runs", "1", "--instructions"),
          "docs/performance.md \"Fewer instructions\": the instructions a cold report --quick executes (callgrind), "
          "comparable between records whatever the host's speed"),
    Bench("readme_timings", ("benchmarks/bench_readme_timings.py", "--runs", "1", "--docs"),
          "README install-and-run waits; docs/performance.md \"The README's timings\"; check --gym Taxi-v4; "
          "fuzz rtg-variance"),
    Bench("startup", ("benchmarks/bench_startup.py", "--repeats", "7"),
          "README Performance and docs/performance.md: --help, gradient FILE, estimators vs import numpy"),
    Bench("sampler", ("benchmarks/bench_sampler.py",),
          "README Performance and docs/performance.md: ns per step vs bisect and compiled loops"),
    Bench("gym_sampler", ("benchmarks/bench_gym_sampler.py",), "docs/performance.md: vs a gymnasium env.step loop",
          extras=("gymnasium",)),
    Bench("check", ("benchmarks/bench_check.py",), "docs/performance.md: check --gym Taxi-v4, shared per-chunk work",
          extras=("gymnasium",)),
    Bench("mc", ("benchmarks/bench_mc.py",), "README Performance and docs/performance.md: run_mc on Taxi-v4, stages",
          extras=("gymnasium",)),
    Bench("scale", ("benchmarks/bench_scale.py", "--sizes", "10000", "100000"),
          "README Performance and docs/performance.md: gridworlds 10^4 and 10^5, build, exact grad J, run_mc, peak"),
    Bench("scale_1e6", ("benchmarks/bench_scale.py", "--sizes", "1000000", "--allocator", "both"),
          "docs/performance.md: the 10^6-state gridworld, and the bounded commands' allocator settings at that size",
          slow=True),
    Bench("read", ("benchmarks/bench_read.py",), "docs/performance.md and docs/reliability.md: reading a 10^5 MDP file"),
    Bench("exact", ("benchmarks/bench_exact.py", "--quick", "--threads", "1"),
          "README Performance and docs/performance.md \"Exact gradients\"", extras=("gymnasium",)),
    Bench("fisher", ("benchmarks/bench_fisher.py",), "docs/performance.md \"The exact Fisher matrix\"",
          extras=("torch",)),
    Bench("lq", ("benchmarks/bench_lq.py",), "docs/continuous.md and docs/performance.md: exact LQ grad J vs autodiff",
          extras=("torch",)),
    Bench("grounding", ("benchmarks/bench_grounding.py",), "docs/derivation.md \"Cost\" and \"Grounding\""),
    Bench("frameworks", ("benchmarks/bench_frameworks.py",), "docs/frameworks.md: PyTorch check_loss vs numpy",
          extras=("torch", "gymnasium")),
    Bench("frameworks_jax", ("benchmarks/bench_frameworks.py", "--jax", "--torch", "--rounds", "3"),
          "docs/frameworks.md and README Performance: JAX and PyTorch check_loss, first call and steady state, "
          "compilations", extras=("jax", "torch", "gymnasium")),
    Bench("numpy_eval", ("benchmarks/bench_numpy_eval.py",),
          "docs/frameworks.md: the numpy tier (a loss's first JAX check) against XLA, per call and one-off",
          extras=("jax", "gymnasium")),
    Bench("frameworks_features", ("benchmarks/bench_frameworks.py", "--features", "--batches", "200"),
          "docs/frameworks.md: check_loss of a 32-parameter feature policy at 10^3 and 10^4 states",
          extras=("jax", "torch")),
    Bench("frameworks_scale", ("benchmarks/bench_frameworks.py", "--scale"),
          "docs/frameworks.md: the adapters' exact grad J at 10^3-10^5 states", extras=("torch", "jax")),
    Bench("limits", ("benchmarks/bench_limits.py",), "docs/reliability.md \"Budgets\""),
    Bench("calibration_sparse", ("benchmarks/calibration_sparse.py", "--problem", "frozenlake", "--seeds", "30"),
          "docs/verdicts.md sparse calibration (a 30-seed spot check, not the 1050-run tables)", slow=True,
          extras=("gymnasium",)),
)
BY_NAME = {b.name: b for b in BENCHES}

# Scripts that benchmarks/README.md names as the source of a documented figure but that this run leaves out, and why.
NOT_REGENERATED = {
    "bench_report.py": "superseded by bench_report_speed.py (the same commands, with the proof cache cold and warm)",
    "bench_report_sections.py": "instruction counts by section, before and after a change (--previous): needs valgrind "
                                "and an earlier tree; run by hand",
    "bench_report_quick.py": "superseded by bench_report_speed.py",
    "hostile_fuzz.py": "its figures are counts of outcomes, not speed; about 40 minutes (run it by hand)",
    "calibration_paired.py": "its figures are false-alarm counts; its wall times are quoted as history",
    "test_hostile.py": "a test file: its duration is pytest's own (pytest tests/test_hostile.py --durations=5)",
}


class BadArguments(Exception):
    """One line for the user; exit 2."""


def machine() -> list[str]:
    """The machine and software the figures belong to, one Markdown bullet each."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = "unknown"
    try:
        memory = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB"
    except (ValueError, OSError, AttributeError):
        pass
    versions = [f"Python {platform.python_version()}"]
    for module in ("numpy", "scipy", "sympy", "torch", "jax", "gymnasium", "numba"):
        try:    # the installed distribution's version: no need to import torch or jax into this process
            versions.append(f"{module} {importlib.metadata.version(module)}")
        except importlib.metadata.PackageNotFoundError:     # an extra that is absent is simply not listed
            continue
    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip() or "not a git checkout"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return [f"- CPU: {cpu}, {os.cpu_count()} logical cores, {memory} memory; {platform.platform()}",
            f"- {', '.join(versions)}",
            f"- revision {revision}{' with uncommitted changes' if dirty else ''}",
            "- every benchmark in a fresh process with OPENBLAS_NUM_THREADS=OMP_NUM_THREADS=MKL_NUM_THREADS=1 and an empty "
            "proof cache of its own (PGVERIFY_CACHE_DIR)"]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def missing_extras(bench: Bench) -> list[str]:
    import importlib.util
    return [m for m in bench.extras if importlib.util.find_spec(m) is None]


def run(bench: Bench, timeout: float) -> tuple[list[str], bool]:
    """Run one benchmark; its Markdown section and whether it succeeded."""
    lines = [f"## {bench.name}", "", f"Feeds: {bench.feeds}.", "",
             f"Command: `OPENBLAS_NUM_THREADS=1 python {' '.join(bench.argv)}`", ""]
    absent = missing_extras(bench)
    if absent:
        return lines + [f"Skipped: {', '.join(absent)} not installed.", ""], True
    # An empty proof cache of its own: a figure never depends on what earlier runs on this machine proved.
    proofs = tempfile.mkdtemp(prefix="pgverify-regenerate-cache-")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PGVERIFY_CACHE_DIR": proofs}
    env.pop("PGVERIFY_NO_CACHE", None)
    before_load, before = load(), resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, *bench.argv], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
        status, out = proc.returncode, proc.stdout + (f"\n[stderr]\n{proc.stderr}" if proc.stderr.strip() else "")
    except subprocess.TimeoutExpired as e:
        status = "timeout"
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    shutil.rmtree(proofs, ignore_errors=True)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines += [f"Load before {before_load}, after {load()}; wall {wall:.1f} s, CPU {cpu:.1f} s "
              f"(the benchmark and its children); exit status {status}.", "", "```", out.rstrip(), "```", ""]
    return lines, status == 0


def write_atomic(path: Path, text: str, force: bool) -> None:
    """pgverify's own atomic write (``verify.model.io.atomic_write``: exclusive without ``force``); its refusal
    becomes this script's one-line error."""
    from verify.errors import UsageError
    from verify.model.io import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(path, text, force=force, what="benchmark record")
    except UsageError as e:
        raise BadArguments(str(e)) from None


MARKER = re.compile(r"^<!-- record: (?P<record>\S+?)#(?P<name>\w+) -->\n```text\n(?P<body>.*?)^```$",
                    re.MULTILINE | re.DOTALL)
DOCUMENTS = ("README.md", "docs/*.md")


def record_outputs(path: Path) -> dict[str, str]:
    """Each benchmark section's output in a record (stdout only: a ``[stderr]`` tail is left out), by name."""
    text = path.read_text()
    out = {}
    for section in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        name = section.split("\n", 1)[0].strip()
        block = re.search(r"^```\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
        if block:
            out[name] = block.group(1).split("\n[stderr]\n", 1)[0].rstrip() + "\n"
    return out


def quoted_blocks():
    """(document, match) for every record marker and the ``text`` block after it."""
    for pattern in DOCUMENTS:
        for doc in sorted(ROOT.glob(pattern)):
            for m in MARKER.finditer(doc.read_text()):
                yield doc, m


def splice(record: Path) -> list[str]:
    """Rewrite every quoted block from ``record``; the documents changed. A block naming a section the record
    lacks is an error (nothing is written)."""
    outputs = record_outputs(record)
    try:
        rel = record.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        raise BadArguments(f"{record} is outside the repository: documents may only quote a committed record") from None
    changed, texts = [], {}
    for doc, m in quoted_blocks():
        if m.group("name") not in outputs:
            raise BadArguments(f"{doc.relative_to(ROOT)} quotes section {m.group('name')!r}, which {rel} lacks")
        texts.setdefault(doc, doc.read_text())

    def replace(m: re.Match) -> str:
        return f"<!-- record: {rel}#{m.group('name')} -->\n```text\n{outputs[m.group('name')]}```"
    for doc, text in texts.items():
        new = MARKER.sub(replace, text)
        if new != text:
            write_atomic(doc, new, force=True)
            changed.append(str(doc.relative_to(ROOT)))
    return changed


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", metavar="NAME", help=f"just these ({', '.join(BY_NAME)})")
    p.add_argument("--slow", action="store_true", help="also the benchmarks that take minutes")
    p.add_argument("--list", action="store_true", help="print what would run and the figures each feeds, then exit")
    p.add_argument("--out", type=Path, help="the record (default benchmarks/results/DATE-HHMM.md, UTC)")
    p.add_argument("--force", action="store_true", help="replace an existing record")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per benchmark (default 1800)")
    p.add_argument("--splice", type=Path, metavar="RECORD",
                   help="rewrite the documents' quoted outputs from RECORD (no benchmark runs)")
    args = p.parse_args(argv)
    unknown = sorted(set(args.only or ()) - set(BY_NAME))
    if unknown:
        raise BadArguments(f"unknown benchmark {', '.join(unknown)}: choose from {', '.join(BY_NAME)}")
    if not args.timeout > 0:
        raise BadArguments(f"--timeout must be positive, got {args.timeout}")
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(argv)
        chosen = [BY_NAME[n] for n in args.only] if args.only else [b for b in BENCHES if args.slow or not b.slow]
        if args.splice:
            if not args.splice.is_file():
                raise BadArguments(f"no record {args.splice}")
            changed = splice(args.splice)
            print(f"rewrote {', '.join(changed)}" if changed else "every quoted block already matches")
            return 0
        if args.list:
            for b in chosen:
                print(f"{b.name:20} python {' '.join(b.argv)}\n{'':20} feeds: {b.feeds}")
            return 0
        stamp = datetime.datetime.now(datetime.timezone.utc)
        out = args.out or ROOT / "benchmarks" / "results" / f"{stamp:%Y-%m-%d-%H%M}.md"
        if out.exists() and not args.force:     # before minutes of work, not after
            raise BadArguments(f"{out} exists: pass --force to replace it")
    except BadArguments as e:
        print(f"regenerate.py: {e}", file=sys.stderr)
        return 2
    lines = [f"# Benchmark record, {stamp:%Y-%m-%d %H:%M} UTC", "", *machine(), f"- load at start {load()}", ""]
    ok = True
    for b in chosen:
        print(f"[{time.strftime('%H:%M:%S')}] {b.name} (load {load()})", flush=True)
        section, success = run(b, args.timeout)
        lines += section
        ok &= success
    lines += [f"Load at the end {load()}.", ""]
    try:
        write_atomic(out, "\n".join(lines), args.force)
    except BadArguments as e:
        print(f"regenerate.py: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}; {'every benchmark exited 0' if ok else 'a benchmark failed: see its section'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
