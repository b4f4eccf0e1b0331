"""``pgverify report``: the whole verification on the built-in examples."""
from __future__ import annotations

import json
import sys

from verify.cli._args import (
    EXIT_FAIL,
    EXIT_OK,
    add_cache_argument,
    add_resolution_argument,
    cache_scope,
    resolution_kwargs,
    seed_arg,
    writable_output,
)
from verify.model.io import atomic_write


def register(sub) -> None:
    p = sub.add_parser("report", help="run the whole verification on the built-in examples",
                       description="Run every check (derivation, exact gradients, Monte Carlo estimators) on the "
                                   "built-in example MDPs and print a report. Exit 0 when every check passes.")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed for all sampling (default 0)")
    p.add_argument("--quick", action="store_true", help="fewer episodes and smaller grounding sizes")
    p.add_argument("--json", metavar="FILE|-", help="also write the report as JSON to FILE, or only JSON to stdout with -")
    p.add_argument("--plots", metavar="DIR", help="also write PNG figures (MC convergence per example, variance "
                                                  "comparison) into DIR; needs the 'plot' extra")
    p.add_argument("--html", metavar="FILE", help="also write the report as one self-contained HTML file (MathML "
                                                 "maths, tables, figures as inline SVG with the 'plot' extra)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file or plots")
    p.add_argument("--no-color", action="store_true", help="plain text output")
    add_resolution_argument(p)
    add_cache_argument(p)
    p.set_defaults(func=run_report)


def run_report(args) -> int:
    with cache_scope(args):
        return _run_report(args)


def _run_report(args) -> int:
    from verify.app.render import render_report
    from verify.app.report import build_report_with_progress

    to_stdout = args.json == "-"
    out = None if args.json in (None, "-") else writable_output(args.json, args.force)
    if args.plots is not None:
        from verify.app.plots import check_output_dir, require_matplotlib

        require_matplotlib()                               # fail before the long run, not after
        check_output_dir(args.plots, force=args.force)
    if args.html is not None:
        from verify.model.io import check_output_path

        check_output_path(args.html, force=args.force, what="--html file")    # before the long run, not after
    trace = 0
    # the HTML's figures need the traces too
    if args.plots is not None or (args.html is not None and _have_matplotlib()):
        from verify.app.plots import TRACE_POINTS as trace
    report = build_report_with_progress(args.seed, args.quick, show=sys.stderr.isatty() and not to_stdout,
                                        trace=trace, color=not args.no_color, **resolution_kwargs(args))
    # built only when written: a plain run has no use for it
    text = json.dumps(report.to_json(), indent=1, allow_nan=False) if to_stdout or out is not None else None
    if to_stdout:
        print(text)
    else:
        if out is not None:
            atomic_write(out, text + "\n", force=args.force, what="--json file")  # exclusive unless --force
        render_report(report, color=not args.no_color, reproduce=_reproduce)
    if args.plots is not None:
        from verify.app.plots import write_report_plots

        paths = write_report_plots(report, args.plots, force=args.force)
        print(f"wrote {len(paths)} figures to {args.plots}", file=sys.stderr if to_stdout else sys.stdout)
    if args.html is not None:
        from verify.app.html import render_html

        atomic_write(args.html, render_html(report), force=args.force, what="--html file")
        print(f"wrote {args.html}", file=sys.stderr if to_stdout else sys.stdout)
    return EXIT_OK if report.passed else EXIT_FAIL


def _have_matplotlib() -> bool:
    import importlib.util
    return importlib.util.find_spec("matplotlib") is not None


def _reproduce(example: str, result) -> str:
    """The ``pgverify mc`` command line that replays one estimator row of the report exactly."""
    return (f"pgverify mc --example {example} --estimator {result.estimator.name} --episodes {result.episodes} "
            f"--seed {result.seed} --alpha {result.alpha!r}")
