"""``pgverify derivation FILE``: check a derivation you wrote (replay, grounding, the chain, the numeric half)
and export it as LaTeX or Markdown.  The file format is ``derive.userfile``'s (docs/derivation.md)."""
from __future__ import annotations

import json
import sys

from verify.cli._args import EXIT_FAIL, EXIT_OK, writable_output


def register(sub) -> None:
    p = sub.add_parser(
        "derivation", help="check your own derivation file (steps, rules, what it starts from and proves)",
        description="Read a derivation written in pgverify's notation (name, starts_from/ends_at, proves, start, "
                    "and 'step NUMBER RULE: expression' lines; see docs/derivation.md, 'Check your own derivation'), then replay every step "
                    "(the cited rule, applied to the line before, must give the line), ground it as an identity on "
                    "tabular MDPs, check its seam with the built-in result it starts from or ends at, its claimed "
                    "result and its uses of lemmas, and evaluate its lines claimed equal to grad J on examples. "
                    "Exit 0 when every check passes, 1 when one fails, 2 for a malformed file.")
    p.add_argument("file", help="the derivation file")
    p.add_argument("--quick", action="store_true",
                   help="ground at (S, A, H) = (2, 2, 2) and evaluate on the quick examples only")
    p.add_argument("--json", metavar="FILE|-", help="also write the result as JSON to FILE, or only JSON to stdout with -")
    p.add_argument("--latex", metavar="FILE", help="also write the derivation as a LaTeX document (with each "
                                                   "step's status)")
    p.add_argument("--markdown", metavar="FILE", help="also write the derivation as Markdown ($$ maths)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.set_defaults(func=run_derivation)


def run_derivation(args) -> int:
    from derive.userfile import DerivationFileError, load_derivation
    from verify.app.derivation_check import check_derivation
    from verify.errors import UsageError
    from verify.model.io import atomic_write, check_output_path

    to_stdout = args.json == "-"
    out = None if args.json in (None, "-") else writable_output(args.json, args.force)
    for path, what in ((args.latex, "--latex file"), (args.markdown, "--markdown file")):
        if path:
            check_output_path(path, force=args.force, what=what)
    try:
        derivation = load_derivation(args.file)
    except DerivationFileError as err:
        raise UsageError(str(err)) from None
    result = check_derivation(derivation, quick=args.quick)
    text = json.dumps(result.to_json(), indent=1, allow_nan=False)
    if to_stdout:
        print(text)
    else:
        if out is not None:
            atomic_write(out, text + "\n", force=args.force, what="--json file")
        _print(result)
    if args.latex or args.markdown:
        _export(result, args)
    return EXIT_OK if result.passed else EXIT_FAIL


def _print(result) -> None:
    from derive.chain import chain_description

    d, s = result.derivation, result.section
    print(f"{d.name}: {d.title} ({chain_description(d)})")
    for r in s.steps:
        ok = r.replay_ok and all(g.ok for g in r.grounding)
        print(f"  {'✓' if ok else '✗'} ({r.number}) {r.rule}: replay {'✓' if r.replay_ok else '✗'}, grounded at "
              + ", ".join(f"{tuple(g.sizes)} {'✓' if g.ok else '✗'}" for g in r.grounding))
    for r in s.chain:
        print(f"  {'✓' if r.ok else '✗'} {r.kind}: {r.label}: {r.message}")
    for r in s.numeric:
        mark = "?" if r.ok is None else ("✓" if r.ok else "✗")
        print(f"  {mark} numeric ({r.number}): {r.message}")
    failures = result.failures
    for line in failures:
        print(f"✗ {line}", file=sys.stderr)
    rows = len(s.steps) + len(s.chain) + len(s.numeric)
    print(("PASSED" if not failures else "FAILED") + f": {rows - len(failures)}/{rows} rows passed"
          + (f"; {len(failures)} failures" if failures else ""))


def _export(result, args) -> None:
    from derive.latex import render_document, render_markdown
    from verify.app.derivation_check import step_status
    from verify.model.io import atomic_write

    status = step_status(result.section.steps)
    chain = result.section.chain
    if args.latex:
        atomic_write(args.latex, render_document([result.derivation], (), status, continuous=False, chain=chain),
                     force=args.force, what="--latex file")
        print(f"wrote {args.latex}", file=sys.stderr if args.json == "-" else sys.stdout)
    if args.markdown:
        atomic_write(args.markdown, render_markdown([result.derivation], (), status, chain=chain),
                     force=args.force, what="--markdown file")
        print(f"wrote {args.markdown}", file=sys.stderr if args.json == "-" else sys.stdout)
