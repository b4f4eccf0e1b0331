"""``pgverify latex``: replay and ground every step, then export the derivation as LaTeX or Markdown.

A failing step (or an erratum whose evidence no longer holds) is a row on stderr, never a traceback, and the
export is refused with exit 1 unless ``--allow-failing``; then the document is written with each failing step
marked, and the exit status is still 1.
"""
from __future__ import annotations

import sys

from verify.cli._args import EXIT_FAIL, EXIT_OK, add_cache_argument, cache_scope

FORMATS = ("latex", "markdown")


def register(sub) -> None:
    p = sub.add_parser("latex", help="verify the derivation, then export it as a LaTeX (or Markdown) document",
                       description="Replay every step of every derivation (the cited rule, applied to the line "
                                   "before, must give the line) and ground it as an exact identity on symbolic "
                                   "tabular MDPs, check the seams between derivations, then write the document: the "
                                   "steps numbered as in Schindorfer's derivation with "
                                   "their rules, side conditions and status, the continuous cases, the errata "
                                   "and a bibliography. A failing step refuses the export (exit 1) unless "
                                   "--allow-failing.")
    p.add_argument("-o", "--output", required=True, help="the file to write (.tex, or .md for Markdown)")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="latex (amsmath only; compiles with pdflatex) or markdown ($$ maths for a code-hosting "
                        "site); default: from the output's extension, else latex")
    p.add_argument("--quick", action="store_true",
                   help="ground at (S, A, H) = (2, 2, 2) only (default: the full report's sizes)")
    p.add_argument("--allow-failing", action="store_true",
                   help="write the document even if a step fails (marked in the document; exit status 1)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    add_cache_argument(p)
    p.set_defaults(func=run_latex)


def _format(args) -> str:
    if args.format:
        return args.format
    return "markdown" if str(args.output).lower().endswith((".md", ".markdown")) else "latex"


def run_latex(args) -> int:
    with cache_scope(args):
        return _run_latex(args)


def _run_latex(args) -> int:
    from verify.model.io import atomic_write, check_output_path

    check_output_path(args.output, force=args.force)        # before the verification's seconds, not after
    from derive.latex import failing_steps, render_document, render_markdown, verify_derivations
    from derive.seed import DERIVATIONS
    from verify.app.report import FULL_SIZES, QUICK_SIZES, errata_for_latex

    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    status = verify_derivations(DERIVATIONS, sizes, method="auto")     # the report's sizes and method
    from derive.chain import check_chain
    chain = check_chain(DERIVATIONS, sizes)                            # seams, claimed results, lemma uses
    errata = errata_for_latex()
    bad_steps = failing_steps(status) + [f"{r.label}: {r.message}" for r in chain if not r.ok]
    bad_errata = [f"erratum {e.id}: {e.verdict}" for e in errata if not e.passed]
    failures = bad_steps + bad_errata
    n_steps = len(status)
    for line in failures:
        print(f"✗ {line}", file=sys.stderr)
    if failures and not args.allow_failing:
        print(f"pgverify latex: {len(bad_steps)} of {n_steps} steps and {len(bad_errata)} of {len(errata)} errata "
              "failed; nothing written (pass --allow-failing to export the document with the failures marked)",
              file=sys.stderr)
        return EXIT_FAIL
    fmt = _format(args)
    text = (render_markdown(DERIVATIONS, errata, status, chain=chain) if fmt == "markdown"
            else render_document(DERIVATIONS, errata, status, chain=chain))
    out = atomic_write(args.output, text, force=args.force)
    grounded = ", ".join(str(tuple(s)) for s in sizes)
    verdict = (f"{n_steps} step{'s' * (n_steps != 1)} replayed and grounded at {grounded} ✓" if not failures
               else f"{len(failures)} failures marked")
    print(f"wrote {out} ({fmt}; {verdict})")
    return EXIT_FAIL if failures else EXIT_OK
