"""Each symbolic erratum's evidence recomputed independently of derive's code paths."""

import itertools
import random
from fractions import Fraction

from sympy import IndexedBase, Rational, Symbol, expand

from derive.errata import symbolic_errata

ERRATA = {e.id: e for e in symbolic_errata()}


def _normalised(rng, n):
    w = [Fraction(rng.randint(1, 100)) for _ in range(n)]
    return [v / sum(w) for v in w]


def test_ids_unique_and_fields_filled():
    assert len(ERRATA) == len(symbolic_errata()) >= 6
    for e in ERRATA.values():
        assert e.seed_text and e.correction and e.evidence
        assert e.check() == e.value  # the evidence is reproducible


def test_rho0_omitted_sums_to_number_of_states():
    # plain enumeration with random normalised numbers: sum_tau prod_t P pi = S, whatever rho0
    rng, S, A, H = random.Random(1), 2, 2, 2
    pi = {s: _normalised(rng, A) for s in range(S)}
    P = {(s, a): _normalised(rng, S) for s in range(S) for a in range(A)}
    total = Fraction(0)
    for states in itertools.product(range(S), repeat=H + 1):
        for actions in itertools.product(range(A), repeat=H):
            w = Fraction(1)
            for k in range(H):
                w *= pi[states[k]][actions[k]] * P[states[k], actions[k]][states[k + 1]]
            total += w
    assert total == S
    seed_mass, corrected = ERRATA["rho0-omitted"].value
    assert seed_mass == total
    assert corrected == Symbol("rho0_0", positive=True) + Symbol("rho0_1", positive=True)


def test_product_index_needs_state_after_last():
    assert ERRATA["product-index-range"].value == {IndexedBase("s")[3]}


def test_objective_over_policy():
    over_pi, grad = ERRATA["objective-distribution"].value
    assert over_pi == Symbol("R_tau")
    rho, d = Symbol("rho0_0", positive=True), Symbol("dpi_00", real=True)
    r0, r1 = Symbol("r_000", real=True), Symbol("r_010", real=True)
    assert expand(grad - rho * d * (r0 - r1)) == 0


def test_transition_reward_dependence_counts():
    # S * A * S = 8 entries each; p(tau) has no reward, R(tau) no transition
    assert ERRATA["transition-named-reward"].value == {
        "P in p(tau)": 8, "r in p(tau)": 0, "r in R(tau)": 8, "P in R(tau)": 0}


def test_undiscounted_reward_to_go_bias():
    # by hand (S=1, H=2): the difference is grad E[(1 - gamma) r_1] = (1 - gamma) rho0 dpi_0 (r_000 - r_010)
    g = Symbol("gamma", positive=True)
    rho, d = Symbol("rho0_0", positive=True), Symbol("dpi_00", real=True)
    r0, r1 = Symbol("r_000", real=True), Symbol("r_010", real=True)
    assert expand(ERRATA["reward-to-go-drops-discount"].value - (1 - g) * rho * d * (r0 - r1)) == 0


def test_exchange_regularity_values():
    assert ERRATA["exchange-regularity"].value == (Rational(1, 2), Rational(-1, 2))
