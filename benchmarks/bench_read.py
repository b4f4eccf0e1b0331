"""Reading a large sparse MDP file: strict parse + validation against plain ``json.loads`` and building the model.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_read.py                      # S = 10^5 (a 52 MB file), ~1 min
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_read.py --compare REV        # also a former revision

Run by hand; never part of pytest. The file is the slippery gridworld of ``benchmarks/scale_models.py`` (S states,
A = 4, ~12 S transition rows, state names, a tabular policy), written by ``verify.problem.save_problem`` into a
temporary directory. Each measurement runs in a fresh process whose ``verify`` is the tree measured (this
repository, or ``git archive REV verify`` for ``--compare``), timed in CPU seconds (``time.process_time``):

- json.loads: the standard library's parser on the same bytes, no hooks (the floor of any strict reader);
- parse: ``verify.io.load_json_text`` (UTF-8, nesting depth, duplicate keys, long integers, surrogates);
- validate: ``verify.problem.validate_document`` (bulk numeric and row checks, the schema);
- build: the rest of ``problem_from_dict`` (size budget, ``TabularMDP``, the policy) from the validated document;
- gradient: ``python -m verify gradient FILE`` end to end (CPU of the child, its peak RSS).

Goal (the performance work): parse + validate within ~2x of build.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

if __name__ == "__main__":
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import gc, json, sys, time
from verify.io import load_json_text, read_regular_file
from verify.problem import problem_from_dict, validate_document
import verify.problem as vp
raw = read_regular_file(sys.argv[1], "MDP file")
out = {}
t = time.process_time(); v = json.loads(raw); out["json.loads"] = time.process_time() - t
del v; gc.collect()
t = time.process_time(); data = load_json_text(raw, sys.argv[1]); out["parse"] = time.process_time() - t
t = time.process_time(); doc = validate_document(data); out["validate"] = time.process_time() - t
vp.validate_document = lambda _data: doc          # build alone: the checks above are not repeated
t = time.process_time(); problem_from_dict(data); out["build"] = time.process_time() - t
print(json.dumps(out))
"""

GRADIENT = r"""
import json, resource, subprocess, sys
proc = subprocess.run([sys.executable, "-m", "verify", "gradient", sys.argv[1]], capture_output=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"gradient": r.ru_utime + r.ru_stime, "gradient_rss_mb": r.ru_maxrss / 1024,
                  "gradient_exit": proc.returncode}))
"""


def make_file(S: int, path: Path) -> int:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    sys.path.insert(0, str(ROOT))
    import numpy as np
    from scale_models import gridworld

    from verify.policy import TabularSoftmax
    from verify.problem import Problem, save_problem

    mdp = gridworld(S)
    theta = 0.3 * np.random.default_rng(1).standard_normal((mdp.n_states, mdp.n_actions))
    save_problem(Problem(mdp, TabularSoftmax(theta)), path, force=True)
    return mdp.n_states


def measure(tree: Path, path: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    stages = json.loads(subprocess.run([sys.executable, "-c", CHILD, str(path)], env=env, cwd=tree, check=True,
                                       capture_output=True, text=True).stdout)
    # A wrapper process of its own, so that ru_maxrss of its children is this command's peak alone.
    stages.update(json.loads(subprocess.run([sys.executable, "-c", GRADIENT, str(path)], env=env, cwd=tree,
                                            check=True, capture_output=True, text=True).stdout))
    return stages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--states", type=int, default=100_000)
    ap.add_argument("--compare", metavar="REV", help="also measure the verify package of this git revision")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gridworld.json"
        S = make_file(args.states, path)
        trees = {}
        if args.compare:
            old = Path(tmp) / "old"
            old.mkdir()
            archive = subprocess.run(["git", "archive", args.compare, "verify"], cwd=ROOT, check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
            trees["REV"] = old
            print(f"REV = {args.compare}")
        trees["this tree"] = ROOT
        print(f"S = {S}: {path.stat().st_size / 1e6:.0f} MB, CPU seconds, each tree in fresh processes")
        print(f"{'tree':10s} {'json.loads':>10s} {'parse':>7s} {'validate':>8s} {'build':>7s} "
              f"{'(p+v)/json':>10s} {'(p+v)/build':>11s} {'gradient':>9s} {'peak RSS':>9s}")
        for name, tree in trees.items():
            r = measure(tree, path)
            pv = r["parse"] + r["validate"]
            rss = f"{r['gradient_rss_mb']:7.0f}MB"
            print(f"{name[:10]:10s} {r['json.loads']:10.2f} {r['parse']:7.2f} {r['validate']:8.2f} {r['build']:7.2f} "
                  f"{pv / r['json.loads']:9.2f}x {pv / r['build']:10.2f}x {r['gradient']:9.2f} {rss}"
                  + ("" if r["gradient_exit"] == 0 else f"  (gradient exit {r['gradient_exit']})"))
        goal = "met" if pv <= 2 * r["build"] else "NOT met"
        print(f"goal: parse + validate within ~2x of build: {pv / r['build']:.2f}x ({goal})")


if __name__ == "__main__":
    main()
