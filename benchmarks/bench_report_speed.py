"""CPU seconds of the commands that prove the derivation, with a cold and a warm proof cache (issue 28).

Run from the repository root: ``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_report_speed.py [--runs N]
[--quick-only]``. Each figure is the user + system CPU time of a fresh process (``resource.getrusage
(RUSAGE_CHILDREN)``, so imports count), the median of N runs (default 3), taken in N rounds that each run the
baseline and every command cold and warm once (a slow minute of a shared machine then falls on all of them alike;
the cold runs' range is printed too):

- cold: a new, empty cache directory for every run (``PGVERIFY_CACHE_DIR``), what a first run or ``--no-cache``
  costs;
- warm: the same directory filled by one run of the same command first (what every later run costs);
- ``latex`` after ``report``: the cache filled by ``report`` only (the steps ``latex`` shares with it).

The baseline, measured in the same run, is ``python -c "import numpy, sympy"``: the imports every one of these
commands pays before it proves anything; ``--previous DIR`` also times each command (cold) on an earlier source tree and prints the cold ratio to it. Targets (issue 28, idle machine): ``report --quick`` <= 2 CPU-s,
``report`` <= 5 CPU-s. The machine's load average before and after is printed: on a shared machine CPU seconds
grow with the load too (shared caches and cores), so compare ratios against the baseline of the same run.

Bytecode (``--bytecode``, as ``bench_startup.py``): ``cached`` (default) writes every module's ``.pyc`` into a
temporary ``PYTHONPYCACHEPREFIX`` in an untimed warm-up run of each command, as an installed package has them (pip
compiles them at install; an editable install writes them on its first run); ``environment`` keeps the environment's
setting (with ``PYTHONDONTWRITEBYTECODE=1``, as on the development machine, every run compiles pgverify's modules:
the very first run after an editable install).

Instructions (``--instructions``): each command once more, cold, under valgrind's callgrind (and on the
``--previous`` tree, the two side by side on the machine's cores), with ``PYTHONHASHSEED=0``: the instructions it
executes, counted, not timed. On a shared virtual machine whose CPU seconds move by a quarter between runs this
count moves by well under 1 %, so it shows a change of a few per cent that timing cannot; it leaves out what the
instructions cost (cache misses, page faults, the kernel's work), so the CPU seconds stay the targets' measure.
Needs ``valgrind`` on PATH (skipped with a note otherwise); about 100 times slower than a plain run.

The garbage collector (``--gc``): each command also runs cold ``--runs`` more times under pgverify's collector
thresholds (``verify.cli._process.GC_THRESHOLDS``) and as many under CPython's defaults, alternated, through one
wrapper that times the collector itself (``gc.callbacks``): the medians of the CPU seconds, of the CPU seconds
inside the collector and the collections per generation are printed for both. The collector's own time is the
steadier figure: the whole command's varies more between runs than the collector's share of it.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile


PYCACHE: str | None = None     # PYTHONPYCACHEPREFIX of the children (``--bytecode cached``), else None


def child_env(cache: str) -> dict[str, str]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PGVERIFY_CACHE_DIR": cache}
    env.pop("PGVERIFY_NO_CACHE", None)
    if PYCACHE is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = PYCACHE
    return env


def once(args: list[str], cache: str, tree: str | None = None, extra_env: dict | None = None) -> float:
    """CPU seconds of one fresh process running ``args`` with the proof cache ``cache``; ``tree``: import pgverify
    from that source tree instead (``--previous``); ``extra_env``: more environment variables (``--gc``)."""
    env = child_env(cache) | (extra_env or {})
    if tree:
        env["PYTHONPATH"] = tree
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(args, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tree)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def fresh() -> str:
    return tempfile.mkdtemp(prefix="pgverify-bench-cache-")


def fill(args: list[str], cache: str, tree: str | None = None) -> None:
    """One untimed run (the warm runs' cache, or the .pyc files)."""
    once(args, cache, tree)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick-only", action="store_true", help="report --quick and the baseline only")
    parser.add_argument("--previous", metavar="DIR",
                        help="also time the commands on an earlier source tree (e.g. `git archive main | tar -x -C "
                             "DIR`), imported through PYTHONPATH: the previous implementation in the same run")
    parser.add_argument("--gc", action="store_true",
                        help="also run each command cold under pgverify's and CPython's default collector thresholds, "
                             "alternated, and time the collector")
    parser.add_argument("--instructions", action="store_true",
                        help="also count each command's instructions (cold) under valgrind's callgrind, and the "
                             "previous tree's: a load-independent comparison")
    parser.add_argument("--bytecode", choices=("cached", "environment"), default="cached",
                        help="cached: .pyc files written by an untimed warm-up run (an installed package; default); "
                             "environment: as PYTHONDONTWRITEBYTECODE etc. say")
    args = parser.parse_args()
    global PYCACHE
    if args.bytecode == "cached":
        PYCACHE = tempfile.mkdtemp(prefix="pgverify-pycache-")
    out = tempfile.mkdtemp(prefix="pgverify-bench-out-")
    py = [sys.executable, "-m", "verify"]
    commands = {"report --quick": [*py, "report", "--quick", "--no-color"]}
    if not args.quick_only:
        commands |= {
            "report": [*py, "report", "--no-color"],
            "latex": [*py, "latex", "-o", os.path.join(out, "d.tex"), "--force"],
            "report --quick --html": [*py, "report", "--quick", "--no-color", "--force", "--html",
                                      os.path.join(out, "r.html")],
        }
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {os.cpu_count()} CPUs; "
          f"median of {args.runs} rounds; bytecode {args.bytecode}")
    if PYCACHE is not None:     # untimed: every module's .pyc written once, as an installed package has them
        for command in [[sys.executable, "-c", "import numpy, sympy"], *commands.values()]:
            fill(command, tempfile.mkdtemp(prefix="pgverify-bench-cache-"))
            if args.previous:
                fill(command, tempfile.mkdtemp(prefix="pgverify-bench-cache-"), os.path.abspath(args.previous))
    base_command = [sys.executable, "-c", "import numpy, sympy"]
    previous = os.path.abspath(args.previous) if args.previous else None
    caches = {name: fresh() for name in commands}
    for name, command in commands.items():      # untimed: the warm runs' caches, each filled by one run
        fill(command, caches[name])
    # Rounds: each runs the baseline and every command cold and warm (and on the previous tree) one after the other,
    # so a slow minute of the machine falls on all of them alike, not on one command's every run.
    times: dict = {"base": []}
    for _ in range(args.runs):
        times["base"].append(once(base_command, fresh()))
        for name, command in commands.items():
            if previous:
                times.setdefault((name, "previous"), []).append(once(command, fresh(), previous))
            times.setdefault((name, "cold"), []).append(once(command, fresh()))
            times.setdefault((name, "warm"), []).append(once(command, caches[name]))
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["base"]
    print(f"{'command':26s} {'cold CPU-s':>10s} {'warm CPU-s':>10s} {'cold/base':>9s} {'warm/base':>9s}  cold runs")
    print(f"{'import numpy, sympy':26s} {base:10.2f} {'':>10s} {1.0:9.2f}")
    measured = {}
    for name in commands:
        if previous:
            old = med[name, "previous"]
            print(f"{name + ' (previous)':26s} {old:10.2f} {'':>10s} {old / base:9.2f} {'':>9s}  "
                  f"{min(times[name, 'previous']):.2f}-{max(times[name, 'previous']):.2f}")
        cold, warm = med[name, "cold"], med[name, "warm"]
        measured[name] = cold, warm
        versus = f"  cold = {cold / old:.2f} x previous" if previous else ""
        print(f"{name:26s} {cold:10.2f} {warm:10.2f} {cold / base:9.2f} {warm / base:9.2f}  "
              f"{min(times[name, 'cold']):.2f}-{max(times[name, 'cold']):.2f}{versus}")
    if args.gc:
        print(f"the collector, cold, {args.runs} runs of each, alternated (medians; collections per generation):")
        print(f"{'command':26s} {'thresholds':16s} {'CPU-s':>6s} {'in gc':>6s}  collections")
        for name, command in commands.items():
            for label, (total, in_gc, counts) in gc_compare(command, args.runs).items():
                print(f"{name:26s} {label:16s} {total:6.2f} {in_gc:6.2f}  {counts}")
    if args.instructions:
        print_instructions(commands, previous)
    if not args.quick_only:
        cache = tempfile.mkdtemp(prefix="pgverify-bench-cache-")
        fill(commands["report"], cache)
        shared = statistics.median(once(commands["latex"], cache) for _ in range(args.runs))
        print(f"{'latex after report':26s} {'':>10s} {shared:10.2f} {'':>9s} {shared / base:9.2f}")
    after = os.getloadavg()
    print(f"load average after: {' '.join(f'{v:.2f}' for v in after)}")
    for name, goal in GOALS.items():
        if name in measured:
            cold, warm = measured[name]
            verdict = lambda x: "met" if x <= goal else "NOT met"    # noqa: E731
            print(f"goal: {name} <= {goal:g} CPU-s on an idle machine: cold {cold:.2f} ({verdict(cold)}), warm "
                  f"{warm:.2f} ({verdict(warm)}); load average {after[0]:.2f} at the end"
                  f"{'' if after[0] < 1.5 else ' (not idle: the verdicts are the loaded figures)'}")


GC_CHILD = """
import atexit, gc, json, os, sys, time
import verify.cli as cli
import verify.cli._process as process
if os.environ["BENCH_GC"] == "default":
    process.GC_THRESHOLDS = gc.get_threshold()
spent = [0.0, 0.0]
def watch(phase, info):
    if phase == "start":
        spent[1] = time.process_time()
    else:
        spent[0] += time.process_time() - spent[1]
gc.callbacks.append(watch)
def done():
    with open(os.environ["BENCH_GC_OUT"], "w") as f:
        json.dump({"in_gc": spent[0], "thresholds": process.GC_THRESHOLDS,
                   "collections": [s["collections"] for s in gc.get_stats()]}, f)
atexit.register(done)
sys.exit(cli.main())
"""


def gc_compare(command: list[str], runs: int) -> dict:
    """{thresholds label: (median CPU-s, median CPU-s in the collector, collections per generation)} of
    ``command`` (``python -m verify ...``) cold, under pgverify's thresholds and CPython's default, alternated."""
    import json

    out: dict = {"pgverify": [], "default": []}
    labels = {}
    for _ in range(runs):
        for which in out:
            result = os.path.join(tempfile.mkdtemp(prefix="pgverify-bench-gc-"), "gc.json")
            total = once([sys.executable, "-c", GC_CHILD, *command[3:]], fresh(),
                         extra_env={"BENCH_GC": which, "BENCH_GC_OUT": result})
            with open(result) as f:
                seen = json.load(f)
            labels[which] = str(tuple(seen["thresholds"]))
            out[which].append((total, seen["in_gc"], "/".join(map(str, seen["collections"]))))
    return {labels[w]: (statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows), rows[0][2])
            for w, rows in out.items()}


def print_instructions(commands: dict, previous: str | None) -> None:
    """Each command's instruction count, cold (``--instructions``), against the previous tree's when given."""
    import re
    import shutil

    if shutil.which("valgrind") is None:
        print("instructions: valgrind is not on PATH; skipped")
        return
    jobs = [(name, tree) for name in commands for tree in ([previous] if previous else []) + [None]]
    counts: dict = {}
    cores = os.cpu_count() or 1
    for start in range(0, len(jobs), cores):     # as many at once as there are cores
        running = []
        for name, tree in jobs[start:start + cores]:
            env = child_env(fresh()) | {"PYTHONHASHSEED": "0"}
            if tree:
                env["PYTHONPATH"] = tree
            log = os.path.join(tempfile.mkdtemp(prefix="pgverify-bench-cg-"), "callgrind")
            proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={log}.out",
                                     *commands[name]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    text=True, env=env, cwd=tree)
            running.append((name, tree, proc))
        for name, tree, proc in running:
            _, err = proc.communicate()
            found = re.findall(r"(?:Collected :|I\s+refs:)\s+([\d,]+)", err)
            counts[name, tree] = int(found[-1].replace(",", "")) if found else None
    print("instructions executed, cold (callgrind, PYTHONHASHSEED=0):")
    for name in commands:
        now = counts[name, None]
        old = counts.get((name, previous)) if previous else None
        versus = f"  = {now / old:.3f} x previous ({old / 1e9:.2f} G)" if now and old else ""
        print(f"  {name:26s} {'?' if now is None else f'{now / 1e9:.2f} G'}{versus}")


GOALS = {"report --quick": 2.0, "report": 5.0}    # issue 28's targets, CPU seconds, idle machine


if __name__ == "__main__":
    main()
