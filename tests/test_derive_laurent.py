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
