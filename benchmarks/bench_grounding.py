"""Time the grounding of every derivation, and the identity-check options (run by hand).

    python benchmarks/bench_grounding.py            # both parts
    python benchmarks/bench_grounding.py pipelines  # part 1 only

Part 1, whole pipelines: every step of every derivation in ``derive.seed.DERIVATIONS`` grounded
at (2, 2, 2) and (3, 2, 3) by

  symbolic  the exact Laurent normal form of ``derive.laurent`` for every step (the baseline,
            measured in the same run; at (3, 2, 3) only the source's steps: the tower-property and
            Q-value steps there take minutes and gigabytes, since every trajectory's polynomial is
            multiplied by its futures'),
  auto      what the report runs: symbolic where no normalisation is needed and the model has at
            most 64 trajectories, else jets,
  random    first-order jets at one random point mod 2^61 - 1, every trajectory at once in numpy
            (``derive.grounding_batch``, what the report runs),
  scalar    the same jets one trajectory at a time (``derive.jet``, ``grounding.BATCH = False``: the
            reference implementation the batch replaced, measured in the same run; "batch x" is its
            time over the batch's).

Part 2, the identity check alone: for steps whose two sides are already grounded as Laurent
polynomials, the cost of deciding lhs == rhs by (a) comparing the Laurent dictionaries,
(b) SymPy ``expand(lhs - rhs) == 0``, (c) SymEngine's ``expand`` and (d) python-flint's
``fmpq_mpoly`` (exponents shifted to clear the negative powers), each including its conversion
from the Laurent form.  (c) and (d) are measured only if installed (``pip install symengine
python-flint``); neither is a dependency.

Times are CPU seconds of this process (``time.process_time``: the development machine is shared,
so wall time mostly measures the neighbours), and each ratio is against the baseline of its part
measured in the same run.
"""

import os
import sys
import time

os.environ["PGVERIFY_NO_CACHE"] = "1"     # grounding is what is measured: never replay verdicts from the proof cache

from sympy import expand

from derive import grounding as G, grounding_batch
from derive.grounding import TabularModel, _value, ground_step, shared_model
from derive.laurent import mono_items
from derive.seed import DERIVATIONS

STEPS = [(d.name, s) for d in DERIVATIONS for s in d.steps]


def cpu(fn):
    start = time.process_time()
    out = fn()
    return time.process_time() - start, out


def pipelines():
    print("Part 1: grounding every step of every derivation (CPU seconds)")
    print(f"{'sizes':>10} {'method':>9} {'steps':>5} {'ok':>5} {'cpu s':>8} {'ratio':>7}  note")
    base = None
    configs = [((2, 2, 2), "symbolic", None), ((2, 2, 2), "auto", None), ((2, 2, 2), "scalar", None),
               ((2, 2, 2), "random", None), ((3, 2, 3), "symbolic", "the source's (1)-(15) only"),
               ((3, 2, 3), "auto", None), ((3, 2, 3), "scalar", None), ((3, 2, 3), "random", None)]
    scalar = {}
    for sizes, method, note in configs:
        steps = [s for name, s in STEPS if not note or name == "source"]
        G._MODELS.clear()    # every configuration starts cold: no lines or closures from the previous one
        G._COMPILED.clear()
        grounding_batch._COMPILED.clear()
        G.BATCH = method != "scalar"
        secs, results = cpu(lambda: [ground_step(s, sizes, "random" if method == "scalar" else method)
                                     for s in steps])
        G.BATCH = True
        base = base or secs
        if method == "scalar":
            scalar[sizes] = secs
        elif method == "random":
            note = f"batch x {scalar[sizes] / secs:.1f}"
        print(f"{str(sizes):>10} {method:>9} {len(steps):>5} {str(all(r.ok for r in results)):>5} "
              f"{secs:8.2f} {secs / base:7.2f}  {note or ''}")


def _flint_equal(a, b) -> bool:
    import flint

    atoms = sorted({k for p in (a, b) for m in p.terms for k, _ in mono_items(m)})
    index = {k: i for i, k in enumerate(atoms)}
    shift = [0] * len(atoms)
    for p in (a, b):
        for m in p.terms:
            for k, e in mono_items(m):
                shift[index[k]] = min(shift[index[k]], e)
    ctx = flint.fmpq_mpoly_ctx.get(("x", max(1, len(atoms))), "lex")

    def poly(p):
        terms = {}
        for m, c in p.terms.items():
            exps = [-s for s in shift]
            for k, e in mono_items(m):
                exps[index[k]] += e
            terms[tuple(exps)] = flint.fmpq(int(c.numerator), int(c.denominator))
        return ctx.from_dict(terms) if terms else ctx.from_dict({})
    return poly(a) == poly(b)


def identity_checks():
    print("\nPart 2: deciding lhs == rhs once both sides are grounded, (2, 2, 2), no normalisation (CPU seconds)")
    picks = [s for name, s in STEPS if s.number in (14, 15, "RTG2", "RTG4", "PGA2", "PGS2")]
    sides = []
    for s in picks:
        model = shared_model((2, 2, 2), False, "symbolic")
        lhs, rhs = (s.after.lhs, s.after.rhs) if s.is_equation else (s.before, s.after)
        sides.append((model, _value(model, lhs, {}), _value(model, rhs, {})))
    backends = [("laurent dict", lambda m, a, b: (a - b).is_zero()),
                ("sympy expand", lambda m, a, b: expand(a.to_expr(m.atoms) - b.to_expr(m.atoms)) == 0)]
    try:
        import symengine
        backends.append(("symengine", lambda m, a, b: symengine.expand(
            symengine.sympify(a.to_expr(m.atoms)) - symengine.sympify(b.to_expr(m.atoms))) == 0))
    except ImportError:
        print("  symengine not installed: skipped")
    try:
        import flint  # noqa: F401
        backends.append(("flint fmpq_mpoly", lambda m, a, b: _flint_equal(a, b)))
    except ImportError:
        print("  python-flint not installed: skipped")
    terms = sum(len(a.terms) + len(b.terms) for _, a, b in sides)
    print(f"  {len(picks)} steps, {terms} Laurent terms in all")
    base = None
    for name, fn in backends:
        secs, oks = cpu(lambda: [fn(m, a, b) for m, a, b in sides])
        base = base or secs
        print(f"  {name:>17}: {secs:8.4f} s  ratio {secs / base:8.1f}  all equal: {all(oks)}")
    G._MODELS.clear()
    G._COMPILED.clear()
    build, _ = cpu(lambda: [ground_step(s, (2, 2, 2), "symbolic") for s in picks])
    print(f"  (building the Laurent forms of these steps from scratch: {build:.2f} s)")


def main(argv):
    if len(argv) < 2 or argv[1] == "pipelines":
        pipelines()
    if len(argv) < 2 or argv[1] == "checks":
        identity_checks()


if __name__ == "__main__":
    TabularModel  # noqa: B018  (imported for readers: the model every option grounds on)
    main(sys.argv)
