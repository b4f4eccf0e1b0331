"""Hostile-input campaign: every case of ``tests/hostile_cases.py`` as a real ``python -m verify`` subprocess under
an address-space cap (``resource.setrlimit(RLIMIT_AS)``, default 4 GiB) and a timeout (default 60 s), plus pairs of
concurrent writers of one output file without ``--force`` and SIGINT sent in the middle of long runs.

Prints one line per family and the totals: inputs, clean one-line errors, tracebacks, hangs, memory errors,
internal errors, other failures (wrong exit code, several lines, output on stdout), clobbered files (and "slow":
past the timeout on a loaded machine, clean on a retry with 5x the time; a hang must fail the retry too). A case is
"clean" when it exits as expected (2, or 130 for an interrupt) with exactly one line on stderr starting with
``pgverify`` and nothing on stdout; "clobbered" when a file it must keep changed or a temporary file was left.

    python benchmarks/hostile_fuzz.py                       # everything (several minutes on 2 cores)
    python benchmarks/hostile_fuzz.py --families sizes numbers --jobs 2
    python benchmarks/hostile_fuzz.py --quick               # every 7th case, 3 writer pairs, 2 interrupts
    python benchmarks/hostile_fuzz.py --pgverify /tmp/wheel-venv/bin/pgverify --jobs 1   # an installed wheel
    python benchmarks/hostile_fuzz.py --shard 2/3           # the second third of the cases (and no extras)

The families of ``tests/hostile_cases.py`` (``FAMILIES``, also run in process by ``tests/test_hostile.py``) and
``FUZZ_FAMILIES`` (subprocess only: valid runs that once hung or escaped their budgets, user code of ``loss`` and of
LQ estimators), plus the extras here: concurrent writers, SIGINTs, stdout on a full device (``/dev/full``).

With ``--pgverify PATH`` every run is that console script (e.g. of a wheel installed in a fresh virtual
environment), without this checkout on ``PYTHONPATH``; without it, ``python -m verify`` from this checkout.
A run past the timeout is re-run alone (nothing else of the campaign running) with 5x the time once the others are
done: a hang only if it still does not exit, "slow" if it then exits cleanly.

Exit status 0 when every run was clean, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from hostile_cases import (
    BASE,
    FAMILIES,
    FUZZ_FAMILIES,
    Case,
    judge,
    materialize,
    snapshot,
    stray_temporaries,
)

CLASSES = ("clean", "traceback", "hang", "memory-error", "internal-error", "other", "clobbered", "slow", "skipped")


def _limits(memory: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    return apply


ALL_FAMILIES = {**FAMILIES, **FUZZ_FAMILIES}
PGVERIFY: list[str] = [sys.executable, "-m", "verify"]     # or an installed console script (--pgverify)


def _env() -> dict:
    # One BLAS thread per child: the campaign runs several children at once on a shared machine.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if PGVERIFY[1:] == ["-m", "verify"]:
        env["PYTHONPATH"] = str(ROOT)
    else:
        env.pop("PYTHONPATH", None)
    return env


def retry_alone(case: Case, memory: int, timeout: float) -> tuple[str, str, float]:
    """A case that ran past ``timeout`` among the others, re-run alone with 5x the time: a hang if it still does
    not exit, "slow" if it then exits cleanly (a loaded machine, not a hang)."""
    kind, detail, seconds = _run_case(case, memory, 5 * timeout)
    if kind == "clean":
        return "slow", f"clean only on a retry alone, in {seconds:.0f} s", seconds
    return kind, detail, seconds


def _run_case(case: Case, memory: int, timeout: float) -> tuple[str, str, float]:
    with tempfile.TemporaryDirectory(prefix="pgv-hostile-") as tmp:
        directory = Path(tmp)
        argv = materialize(case, directory)
        if any("\0" in a for a in argv):
            return "skipped", "an argv cannot hold NUL in a subprocess (tested in process)", 0.0
        before = snapshot(case, directory)
        start = time.monotonic()
        try:
            proc = subprocess.run([*PGVERIFY, *argv], cwd=directory, capture_output=True,
                                  text=True, errors="replace", timeout=timeout, env=_env(),
                                  preexec_fn=_limits(memory), check=False)
        except subprocess.TimeoutExpired:
            return "hang", f"no exit within {timeout:g} s", time.monotonic() - start
        seconds = time.monotonic() - start
        if proc.returncode < 0:
            return "other", f"killed by signal {-proc.returncode}: {proc.stderr.strip()[-200:]!r}", seconds
        problem = judge(case, proc.returncode, proc.stdout, proc.stderr)
        if problem is None and snapshot(case, directory) != before:
            return "clobbered", "a file it had to keep changed", seconds
        if problem is None and stray_temporaries(directory):
            return "clobbered", f"temporary files left: {stray_temporaries(directory)}", seconds
        if problem is None:
            return "clean", proc.stderr.strip(), seconds
        kind = problem.split(":", 1)[0]
        return (kind if kind in CLASSES else "other"), problem, seconds


def writer_pair(command: list[str], memory: int, timeout: float) -> tuple[str, str]:
    """Two concurrent runs writing the same file without --force: clean iff exactly one wrote, one refused."""
    with tempfile.TemporaryDirectory(prefix="pgv-race-") as tmp:
        directory = Path(tmp)
        argv = [a.replace("{d}", tmp) for a in command]
        # stdout to /dev/null: a pipe nobody reads while the harness waits for the other writer fills (a report
        # prints more than a pipe holds) and blocks its writer for ever.
        procs = [subprocess.Popen([*PGVERIFY, *argv], cwd=directory, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True, env=_env(),
                                  preexec_fn=_limits(memory)) for _ in range(2)]  # noqa: PLW1509
        try:
            results = [(p.wait(timeout=timeout), None, p.communicate()[1]) for p in procs]
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            return "hang", "a writer did not finish"
        codes = sorted(code for code, _, _ in results)
        refused = [err for code, _, err in results if code == 2]
        if codes[0] in (0, 1) and codes[1] == 2 and len(refused) == 1 and "exists" in refused[0] \
                and len(refused[0].strip().splitlines()) == 1 and not stray_temporaries(directory):
            return "clean", refused[0].strip()
        if all(code in (0, 1) for code in codes):
            return "clobbered", "both writers succeeded: one silently replaced the other"
        return "other", f"exit codes {codes}: {[e.strip()[-200:] for _, _, e in results]}"


def interrupt(command: list[str], memory: int, after_cpu: float) -> tuple[str, str]:
    """SIGINT once the child used ``after_cpu`` s of CPU: clean iff exit 130, one line, no file left (the
    commands interrupted here write only at their end)."""
    with tempfile.TemporaryDirectory(prefix="pgv-int-") as tmp:
        directory = Path(tmp)
        (directory / "mdp.json").write_text(json.dumps(BASE))
        argv = [a.replace("{d}", tmp) for a in command]
        proc = subprocess.Popen([*PGVERIFY, *argv], cwd=directory, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=_env(),
                                preexec_fn=_limits(memory))  # noqa: PLW1509
        clock = os.sysconf("SC_CLK_TCK")
        while proc.poll() is None:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            if (int(fields[11]) + int(fields[12])) / clock >= after_cpu:
                break
            time.sleep(0.05)
        if proc.poll() is not None:
            return "other", "finished before the interrupt"
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            return "hang", "no exit within 60 s of SIGINT"
        left = sorted(p.name for p in directory.iterdir() if p.name != "mdp.json")
        if "Traceback" in err:
            return "traceback", err.strip().splitlines()[-1]
        if proc.returncode == 130 and len(err.strip().splitlines()) == 1 and not left:
            return "clean", err.strip()
        return ("clobbered" if left else "other"), f"exit {proc.returncode}, files {left}, stderr {err.strip()!r}"


def full_stdout(command: list[str], memory: int, timeout: float) -> tuple[str, str]:
    """stdout on a full device (``/dev/full``): clean iff exit 2 and one line naming the OS fault, not a bug."""
    with tempfile.TemporaryDirectory(prefix="pgv-full-") as tmp, open("/dev/full", "w") as full:
        (Path(tmp) / "mdp.json").write_text(json.dumps(BASE))
        argv = [a.replace("{d}", tmp) for a in command]
        try:
            proc = subprocess.run([*PGVERIFY, *argv], cwd=tmp, stdout=full, stderr=subprocess.PIPE, text=True,
                                  env=_env(), preexec_fn=_limits(memory), timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return "hang", f"no exit within {timeout:g} s"
    err = proc.stderr.strip()
    if "Traceback" in err:
        return "traceback", err.splitlines()[-1]
    if "internal error" in err:
        return "internal-error", err
    if proc.returncode == 2 and len(err.splitlines()) == 1 and "No space left on device" in err:
        return "clean", err
    return "other", f"exit {proc.returncode}, stderr {err[-300:]!r}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", choices=sorted(ALL_FAMILIES), default=sorted(ALL_FAMILIES))
    parser.add_argument("--memory", default="4G", help="address-space cap per run (default 4G)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per run before it counts as a hang")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    parser.add_argument("--pairs", type=int, default=15, help="concurrent-writer pairs per command (default 15)")
    parser.add_argument("--quick", action="store_true", help="every 7th case, 3 pairs, 2 interrupts")
    parser.add_argument("--verbose", action="store_true", help="print every case that is not clean")
    parser.add_argument("--pgverify", metavar="PATH", help="run this installed console script (e.g. a wheel's in a "
                                                           "fresh venv) instead of python -m verify from this checkout")
    parser.add_argument("--shard", metavar="K/N", help="run the K-th of N equal slices of the cases only (no extras)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from verify.io import parse_size

    if args.pgverify:
        PGVERIFY[:] = [args.pgverify]

    memory = parse_size(args.memory)
    cases = [c for fam in args.families for c in ALL_FAMILIES[fam]()]
    if args.quick:
        cases = cases[::7]
        args.pairs = min(args.pairs, 3)
    shard = None
    if args.shard:
        k, n = (int(x) for x in args.shard.split("/"))
        shard = (k, n)
        cases = cases[(k - 1) * len(cases) // n:k * len(cases) // n]
    start = time.monotonic()
    print(f"hostile_fuzz: {len(cases)} cases{f' (shard {args.shard})' if shard else ''}, memory cap {args.memory}, "
          f"timeout {args.timeout:g} s, {args.jobs} at a time, running {' '.join(PGVERIFY)}; load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda c: (c, *_run_case(c, memory, args.timeout)), cases))
    results = [(c, *retry_alone(c, memory, args.timeout)) if kind == "hang" else (c, kind, detail, seconds)
               for c, kind, detail, seconds in results]

    extra: list[tuple[str, str, str]] = []      # (family, class, detail)
    if shard is None:
        extra += run_extras(args, memory)
    _summarise(results, extra, start, args.verbose)
    bad = [c for c, k, _, _ in results if k not in ("clean", "skipped", "slow")] + [x for x in extra if x[1] != "clean"]
    return 0 if not bad else 1


def run_extras(args, memory: int) -> list[tuple[str, str, str]]:
    """Concurrent writers, SIGINTs in the middle of long runs, stdout on a full device."""
    extra: list[tuple[str, str, str]] = []
    writers = [["export-gym", "FrozenLake-v1", "-o", "{d}/same.json"], ["fuzz", "rtg-variance", "--examples", "30",
                                                                          "-o", "{d}/same.json"]]
    if not args.quick:
        writers.append(["report", "--quick", "--no-color", "--json", "{d}/same.json"])
    for command in writers:
        n = args.pairs if command[0] != "report" else min(args.pairs, 3)
        for _ in range(n):
            extra.append(("concurrent-writers", *writer_pair(command, memory, 600.0)))
    interrupts = [["mc", "{d}/mdp.json", "--estimator", "reward_to_go", "--episodes", "100000000", "--json"],
                  ["report", "--quick", "--no-color", "--json", "{d}/report.json"]]
    for command in interrupts if args.quick else interrupts * 3:
        extra.append(("sigint", *interrupt(command, memory, after_cpu=1.5)))
    if os.path.exists("/dev/full"):
        for command in (["gradient", "{d}/mdp.json"], ["mc", "{d}/mdp.json", "--estimator", "reward_to_go",
                                                        "--episodes", "500", "--json"], ["estimators"],
                        ["gradient", "{d}/mdp.json", "--json"], ["check", "{d}/mdp.json", "--episodes", "500"]):
            extra.append(("full-stdout", *full_stdout(command, memory, 600.0)))
    return extra


def _summarise(results, extra, start: float, verbose: bool) -> None:
    by_family: dict[str, Counter] = {}
    for case, kind, _, _ in results:
        by_family.setdefault(case.family, Counter())[kind] += 1
    for fam, kind, _ in extra:
        by_family.setdefault(fam, Counter())[kind] += 1
    width = max(map(len, by_family))
    for fam, counts in by_family.items():
        tried = sum(v for k, v in counts.items() if k != "skipped")
        rest = ", ".join(f"{counts[k]} {k}" for k in CLASSES[1:] if counts[k])
        print(f"  {fam:<{width}}  {tried:4d} runs, {counts['clean']:4d} clean{', ' + rest if rest else ''}")
    total = sum(by_family.values(), Counter())
    runs = sum(v for k, v in total.items() if k != "skipped")
    slowest = max(results, key=lambda r: r[3]) if results else None
    print(f"totals: {runs} inputs tried, {total['clean']} clean (one-line errors, or valid runs with the expected exit status), {total['traceback']} tracebacks, "
          f"{total['hang']} hangs, {total['memory-error']} memory errors, {total['internal-error']} internal errors, "
          f"{total['other']} other failures, {total['clobbered']} clobbered files"
          + (f"; {total['slow']} slow (past the timeout, clean on a retry with 5x the time)" if total["slow"] else "")
          + (f"; {total['skipped']} skipped (argv with NUL)" if total["skipped"] else ""))
    if slowest:
        print(f"slowest case: {slowest[0].id} {slowest[3]:.1f} s; wall time {time.monotonic() - start:.0f} s")
    bad = [(c.id, k, d) for c, k, d, _ in results if k not in ("clean", "skipped", "slow")] + \
          [(f, k, d) for f, k, d in extra if k != "clean"]
    for case, kind, detail, _ in results:
        if kind == "slow":
            print(f"  SLOW {case.id}: {detail}")
    for case_id, kind, detail in bad if verbose else bad[:20]:
        print(f"  NOT CLEAN {case_id}: {kind}: {detail[:300]}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
