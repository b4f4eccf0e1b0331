"""``pgverify latex``: the derivation as a LaTeX document."""
from __future__ import annotations

from verify.cli._args import EXIT_OK, writable_output


def register(sub) -> None:
    p = sub.add_parser("latex", help="export the derivation as a standalone LaTeX document",
                       description="Write every derivation step (numbered as in the seed), its rule and side "
                                   "conditions, the added derivations and the errata as a LaTeX document.")
    p.add_argument("-o", "--output", required=True, help="the .tex file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=run_latex)


def run_latex(args) -> int:
    out = writable_output(args.output, args.force)
    from derive.latex import render_document
    from verify.report import errata_for_latex

    out.write_text(render_document(errata=errata_for_latex()))
    print(f"wrote {out}")
    return EXIT_OK
