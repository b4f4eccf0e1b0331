"""``pgverify fuzz``: search for a counterexample to a claim about the estimators."""
from __future__ import annotations

import sys

from verify.cli._args import (
    EXIT_FAIL,
    EXIT_OK,
    positive_int,
    print_json,
    seed_arg,
    writable_output,
)
from verify.errors import UsageError


def register(sub) -> None:
    p = sub.add_parser("fuzz", help="search for a small MDP that falsifies a claim about the estimators",
                       description="Search with Hypothesis for an MDP and policy on which CLAIM fails (decided "
                                   "exactly from the estimators' enumerated moments), shrink it, print it with "
                                   "the evidence and write it as an MDP file. Exit 0 when a counterexample is "
                                   "found and written, 1 when none turns up within --examples, 2 on bad usage.")
    p.add_argument("claim", metavar="CLAIM", nargs="?", help="the claim to falsify (see --list)")
    p.add_argument("--list", action="store_true", help="list the claims and exit")
    p.add_argument("--examples", type=positive_int, default=1000,
                   help="search budget: how many problems Hypothesis may try (default 1000)")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the search; the same seed gives the same "
                                                         "counterexample (default 0)")
    p.add_argument("-o", "--out", metavar="FILE|-",
                   help="where to write the counterexample (default counterexample-CLAIM.json in the current "
                        "directory, ':' in CLAIM written as '-'); - prints the MDP file to stdout and the "
                        "description to stderr")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.set_defaults(func=run_fuzz)


def run_fuzz(args) -> int:
    from verify.testing import fuzz

    if args.list:
        width = max(len(name) for name in fuzz.CLAIMS)
        for claim in fuzz.CLAIMS.values():
            print(f"{claim.name:<{width}}  {claim.statement}")
            if claim.note:
                print(f"{'':<{width}}    ({claim.note})")
        return EXIT_OK
    if args.claim is None:
        raise UsageError("name the CLAIM to falsify; pgverify fuzz --list shows the claims")
    claim = fuzz.get_claim(args.claim)
    to_stdout = args.out == "-"
    # Refuse an existing file before spending the search budget.
    out = None if to_stdout else writable_output(str(fuzz.default_output(claim)) if args.out is None else args.out,
                                                 args.force)
    with fuzz.scratch_hypothesis_storage():
        cx = fuzz.search(claim, examples=args.examples, seed=args.seed)
    if cx is None:
        print(f"claim {claim.name}: no counterexample in {args.examples} examples (seed {args.seed}). "
              "The claim survived this search; that is evidence, not a proof.")
        return EXIT_FAIL
    if to_stdout:
        print(fuzz.describe(cx), file=sys.stderr)
        print_json(fuzz.counterexample_to_dict(cx))
    else:
        fuzz.write_counterexample(cx, out, force=args.force)
        print(fuzz.describe(cx))
        print(f"wrote {out}   (try: pgverify gradient {out})")
    return EXIT_OK
