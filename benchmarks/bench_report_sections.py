"""Where a cold ``pgverify report --quick`` executes its instructions, section by section (callgrind).

    python benchmarks/bench_report_sections.py [--previous DIR]

Run by hand from the repository root; never part of pytest; needs ``valgrind`` (``callgrind_control``) on PATH.
A child process builds the quick report (``verify.app.report.build_report``) and renders it (``render_report``,
to a string) under valgrind's callgrind, with ``PYTHONHASHSEED=0`` and an empty proof cache; each section of
``build_report`` is wrapped so that the child asks callgrind for its count when the section returns
(``callgrind_control --dump``; a label holding parentheses or quotes is lost): the instructions between two dumps
are that section's. The big imports (numpy, SymPy, SciPy's sparse and special modules, rich, pgverify's report
modules) come first, each dumped on its own, so the sections' counts are their work (a command imports these
lazily, inside the first section that needs them).

Instructions, unlike CPU seconds on a shared virtual machine, do not move with the host's load (two runs of one
tree agree within 0.02 %); they leave out what an instruction costs (cache misses, page faults, the kernel), so
they tell where the work is and whether a change removed some, not the seconds it takes. ``--previous DIR``
runs an earlier source tree (``git archive REV | tar -x -C DIR``) at the same time on the other core and prints
both columns. ``bench_report_speed.py --instructions`` counts the whole command.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import io, os, subprocess, sys

def dump(label):
    subprocess.run(["callgrind_control", "--dump=" + label, str(os.getpid())], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)

dump("interpreter")
from verify.cli._process import command_process
with command_process():
    import numpy
    dump("import numpy")
    import sympy
    dump("import SymPy")
    import scipy.sparse, scipy.special
    dump("import SciPy: sparse, special")
    import rich.console, rich.table
    dump("import rich")
    import derive.seed
    import verify.app.lq_report, verify.app.render, verify.app.report as R, verify.app.theory_report
    import verify.checks.mc
    dump("import pgverify: the report modules")

    def wrapped(module, name, label):
        original = getattr(module, name)
        def section(*args, **kwargs):
            out = original(*args, **kwargs)
            dump(label(*args) if callable(label) else label)
            return out
        setattr(module, name, section)

    wrapped(R, "derivation_section", "derivation: replay, grounding, chain, numeric half")
    wrapped(R, "continuous_rows", "continuous rows")
    wrapped(R, "errata_for_latex", "errata")
    wrapped(verify.app.theory_report, "theory_rows", "theory")
    wrapped(verify.checks.mc, "run_check", lambda problem, *rest: "Monte Carlo: " + problem.mdp.name)
    wrapped(verify.app.lq_report, "lq_rows", "LQ: claims and Monte Carlo")
    report = R.build_report(quick=True)
    from rich.console import Console
    verify.app.render.render_report(report, console=Console(file=io.StringIO(), width=140, no_color=True,
                                                            highlight=False, emoji=False))
    dump("rendering")
"""


def sections(tree: Path, out: Path) -> subprocess.Popen:
    """Start the child on ``tree`` under callgrind, its dumps in ``out``."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(tree),
           "PGVERIFY_CACHE_DIR": tempfile.mkdtemp(prefix="pgverify-bench-cache-")}
    env.pop("PGVERIFY_NO_CACHE", None)
    return subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out / 'cg.out'}",
                             sys.executable, "-c", CHILD], cwd=tree, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def counts(out: Path) -> dict[str, int]:
    """{section label: instructions} from the dumps, in the order they were taken."""
    found = []
    for path in out.glob("cg.out.*"):
        text = path.read_text(errors="replace")
        label = re.search(r"^desc: Trigger: (?:dump )?(.*)$", text, re.MULTILINE)
        total = re.search(r"^(?:summary|totals): (\d+)", text, re.MULTILINE)
        if label and total:
            found.append((int(path.name.rsplit(".", 1)[1]), label.group(1).strip(), int(total.group(1))))
    return {label: n for _, label, n in sorted(found)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--previous", metavar="DIR", type=Path, help="an earlier source tree, measured alongside")
    args = parser.parse_args()
    missing = [tool for tool in ("valgrind", "callgrind_control") if shutil.which(tool) is None]
    if missing:
        print(f"error: {' and '.join(missing)} not on PATH", file=sys.stderr)
        return 2
    if args.previous is not None and not (args.previous / "verify" / "__init__.py").is_file():
        print(f"error: {args.previous} holds no pgverify source tree (verify/__init__.py)", file=sys.stderr)
        return 2
    trees = {"previous": args.previous.resolve()} if args.previous else {}
    trees["this tree"] = ROOT
    runs = {}
    for name, tree in trees.items():
        out = Path(tempfile.mkdtemp(prefix="pgverify-bench-sections-"))
        runs[name] = out, sections(tree, out)
    table = {}
    for name, (out, proc) in runs.items():
        _, err = proc.communicate()
        if proc.returncode != 0:
            print(f"error: the child on {trees[name]} exited {proc.returncode}: {err.strip()[-300:]}", file=sys.stderr)
            return 1
        table[name] = counts(out)
    labels = list(dict.fromkeys(label for column in table.values() for label in column))
    print("instructions of a cold report --quick by section (callgrind, PYTHONHASHSEED=0; G = 10^9)")
    print(f"{'section':52s}" + "".join(f"{name:>12s}" for name in table))
    for label in labels:
        print(f"{label:52s}" + "".join(f"{column[label] / 1e9:12.2f}" if label in column else f"{'-':>12s}"
                                       for column in table.values()))
    print(f"{'total':52s}" + "".join(f"{sum(column.values()) / 1e9:12.2f}" for column in table.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
