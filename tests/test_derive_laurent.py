"""derive.laurent's monomials as ints: the encoding round-trips and a product of monomials adds exponents."""

import random

from sympy import Symbol, expand

import pytest

from derive.grounding import TabularModel
from derive.laurent import MAX_EXPONENT, Atoms, Laurent, mono, mono_items


def test_monomial_encoding_round_trips_and_multiplies_by_adding_exponents():
    rng = random.Random(7)
    for _ in range(300):
        ids = sorted(rng.sample(range(400), rng.randint(0, 6)))
        a = [(k, rng.choice([-1, 1]) * rng.randint(1, MAX_EXPONENT - 1 if rng.random() < 0.1 else 9)) for k in ids]
        assert mono_items(mono(a)) == a
        ids_b = sorted(rng.sample(range(400), rng.randint(0, 6)))
        b = [(k, rng.choice([-3, -1, 1, 2])) for k in ids_b]
        want = {}
        for k, e in a + b:
            want[k] = want.get(k, 0) + e
        if all(abs(e) < MAX_EXPONENT for e in want.values()):
            assert mono_items(mono(a) + mono(b)) == sorted((k, e) for k, e in want.items() if e)


def test_laurent_products_quotients_and_derivatives_against_sympy():
    atoms = Atoms()
    names = [Symbol(f"x{i}", positive=True) for i in range(40)]
    dx0 = atoms.leaf(Symbol("dx0", real=True))
    xs = [atoms.leaf(s, dx0 if i == 0 else None) for i, s in enumerate(names)]
    p = (xs[0] + xs[39] ** 2) * (xs[0] ** -1 - xs[17] * xs[39] ** -3)
    want = expand((names[0] + names[39] ** 2) * (1 / names[0] - names[17] / names[39] ** 3))
    assert expand(p.to_expr(atoms) - want) == 0
    # d/dtheta with d x0 = dx0, the other atoms constant
    dp = p.derivative(atoms)
    want_d = expand(want.diff(names[0]) * Symbol("dx0", real=True))
    assert expand(dp.to_expr(atoms) - want_d) == 0
    assert (p - p).is_zero() and not (p - Laurent.const(1)).is_zero()


def test_exponents_beyond_the_encoding_are_refused():
    atoms = Atoms()
    x = atoms.leaf(Symbol("x", positive=True))
    with pytest.raises(OverflowError):
        x ** -MAX_EXPONENT
    # a symbolic model whose degree could reach the field width is refused (one trajectory, H = 10^4)
    with pytest.raises(ValueError, match="too large for the exact normal form"):
        TabularModel((1, 1, 10_000))
    TabularModel((1, 1, 10_000), rng=random.Random(0))   # the random method has no such limit


def test_substitution_matches_sympy_on_random_polynomials():
    """``substitute`` (terms grouped by the replaced atoms' powers) against SymPy's xreplace + expand, including
    negative powers of atoms replaced by monomials and positive powers of atoms replaced by sums."""
    rng = random.Random(11)
    syms = [Symbol(f"y{i}", positive=True) for i in range(6)]
    for _ in range(40):
        atoms = Atoms()
        ys = [atoms.leaf(s) for s in syms]
        p, want = Laurent(), 0
        for _ in range(rng.randint(1, 12)):
            exps = [rng.choice([-2, -1, 0, 0, 1, 2, 3]) for _ in syms]
            exps[3] = abs(exps[3])                      # y3 becomes a sum: only natural powers of it
            c = rng.randint(-5, 5)
            term, term_expr = Laurent.const(c), c
            for y, s, e in zip(ys, syms, exps):
                term, term_expr = term * y ** e, term_expr * s ** e
            p, want = p + term, want + term_expr
        values = {atoms.id(syms[0]): ys[1] * ys[2] ** -1 * 3, atoms.id(syms[3]): 1 - ys[4] - ys[5]}
        got = p.substitute(values).to_expr(atoms)
        want = expand(want.xreplace({syms[0]: 3 * syms[1] / syms[2], syms[3]: 1 - syms[4] - syms[5]}))
        assert expand(got - want) == 0, (got, want)
