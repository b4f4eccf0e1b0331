"""Ctrl-C while ``pgverify`` starts: where in the start-up can SIGINT still print a traceback, and for how long?

Starts ``pgverify --version`` (an installed console script with ``--pgverify PATH``, else ``python -m verify``)
``--runs`` times, sends SIGINT after a delay drawn uniformly from [0, ``--window``] seconds, and classifies each end:

- ``killed``: ended by the signal, no output (before the interpreter installed its own handler: nothing printed);
- ``site``: a traceback from the interpreter's own start-up (``site``, the environment's ``.pth`` files), before
  the first line of pgverify runs: outside pgverify's control;
- ``launcher``: a traceback from the console script pip generated, before its ``from verify.cli import main`` (its
  template imports ``re`` first: ``enum``, ``functools``, ``re._compiler``...);
- ``pgverify``: a traceback from pgverify's code (a bug: ``verify/_startup.py`` should have caught it);
- ``clean``: exit 130 with one line, or the command finished first.

Also prints the interpreter's ``site`` import time (``-X importtime``), the window such a traceback can come from.

    python benchmarks/startup_sigint.py --pgverify /tmp/wheel-venv/bin/pgverify --runs 200 --window 0.3
"""
from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def classify(code: int, err: str, script: str | None) -> str:
    if "Traceback" in err:
        frames = re.findall(r'File "([^"]+)"', err)
        if any("/verify/" in f for f in frames):
            return "pgverify"
        return "launcher" if script and script in frames else "site"
    if code == -signal.SIGINT and not err.strip():
        return "killed"
    if code in (0, 130) and len(err.strip().splitlines()) <= 1:
        return "clean"
    return "other"


def site_import_seconds(command: list[str]) -> float:
    """Cumulative import time of ``site`` in one start-up of ``command --version`` (-X importtime's own figure)."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    err = subprocess.run([*command, "--version"], capture_output=True, text=True, env=env, check=False).stderr
    for line in err.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == "site":
            return int(parts[1]) / 1e6
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pgverify", metavar="PATH", help="an installed console script (default: python -m verify)")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--window", type=float, default=0.3, help="largest delay before SIGINT, seconds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    command = [args.pgverify] if args.pgverify else [sys.executable, "-m", "verify"]
    env = dict(os.environ)
    if not args.pgverify:
        env["PYTHONPATH"] = str(ROOT)
    rng = random.Random(args.seed)
    counts: Counter = Counter()
    before: list[float] = []
    print(f"load average {os.getloadavg()[0]:.1f}; {' '.join(command)} --version, SIGINT after U(0, {args.window}) s")
    for _ in range(args.runs):
        delay = rng.uniform(0, args.window)
        proc = subprocess.Popen([*command, "--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        kind = classify(proc.returncode, err, args.pgverify)
        counts[kind] += 1
        if kind in ("site", "launcher"):
            before.append(delay)
        if kind in ("pgverify", "other"):
            print(f"  {kind} at {delay:.3f} s: {err.strip()[-300:]!r}")
    sites = [site_import_seconds(command) for _ in range(5)]
    print(f"{args.runs} runs: " + ", ".join(f"{counts[k]} {k}" for k in ("clean", "killed", "site", "launcher",
                                                                          "pgverify", "other")))
    if before:
        print(f"tracebacks before pgverify's first line at delays {min(before):.3f}-{max(before):.3f} s")
    print(f"site import time (-X importtime, 5 start-ups): median {sorted(sites)[2] * 1e3:.0f} ms")
    return 1 if counts["pgverify"] or counts["other"] else 0


if __name__ == "__main__":
    sys.exit(main())
