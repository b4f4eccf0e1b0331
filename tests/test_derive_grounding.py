"""Grounding: every step proved on symbolic tabular MDPs, and at random rational points."""

import dataclasses

import pytest
from sympy import Symbol, expand

from derive.grounding import Sizes, TabularModel, ground, ground_derivation, ground_step, ground_value
from derive.laurent import Atoms, Laurent, NotLaurent
from derive.notation import Density, Expectation, Grad, Integrate, Return, tau, theta
from derive.seed import BASELINE, DERIVATIONS, REWARD_TO_GO, SOURCE

ALL_STEPS = [(d.name, s) for d in DERIVATIONS for s in d.steps]


@pytest.mark.parametrize("name,step", ALL_STEPS, ids=[f"{n}-{s.number}" for n, s in ALL_STEPS])
def test_every_step_grounds_symbolically_at_2_2_2(name, step):
    result = ground_step(step, (2, 2, 2))
    assert result.ok, result.message
    assert result.method == "symbolic" and result.points == 0 and result.sizes == (2, 2, 2)


def test_seed_symbolic_at_3_2_3():
    results = ground_derivation(SOURCE, (3, 2, 3))
    assert all(r.ok for r in results), [r for r in results if not r.ok]


@pytest.mark.parametrize("number", ["RTG5", "B3"])
def test_tower_property_symbolic_at_2_2_2_needs_normalisation(number):
    d = REWARD_TO_GO if number.startswith("RTG") else BASELINE
    result = ground_step(d.step(number), (2, 2, 2))
    assert result.ok and "normalisation" in result.message
    # without sum_a pi = 1 and sum_s' P = 1 the tower property is false: the rule must ask for them
    unnormalised = dataclasses.replace(d.step(number), rule=dataclasses.replace(d.step(number).rule,
                                                                                needs_normalisation=False))
    assert not ground_step(unnormalised, (2, 2, 2)).ok


def test_every_step_at_random_points_3_2_3():
    # the H = 3 grounding the full report shows (a discount wrong only from t' = 2 shows here)
    results = [r for d in DERIVATIONS for r in ground_derivation(d, (3, 2, 3), "random", points=1)]
    assert all(r.ok and r.method == "random-modular" and r.points == 1 for r in results), \
        [r.message for r in results if not r.ok][:2]


def test_random_points_at_2_3_2_agree_with_symbolic():
    results = [r for d in DERIVATIONS for r in ground_derivation(d, (2, 3, 2), "random", points=2)]
    assert all(r.ok and r.points == 2 for r in results)


def test_trajectory_mass_is_one_when_normalised():
    # an independent fact the grounding must reproduce: sum_tau p(tau|theta) = sum_s rho0(s)
    value = ground_value(Integrate(Density(tau, theta), tau), (2, 2, 2))
    assert value == Symbol("rho0_0", positive=True) + Symbol("rho0_1", positive=True)


def test_gradient_of_objective_on_one_state_bandit():
    # J = rho0 sum_a pi_a r_a (S = 1, H = 1); by hand grad J = rho0 dpi_0 (r_000 - r_010)
    got = ground_value(Grad(Expectation(Return(tau), Density(tau, theta))), (1, 2, 1))
    rho, d = Symbol("rho0_0", positive=True), Symbol("dpi_00", real=True)
    r0, r1 = Symbol("r_000", real=True), Symbol("r_010", real=True)
    assert expand(got - rho * d * (r0 - r1)) == 0


def test_model_enumerates_all_trajectories():
    m = TabularModel((2, 3, 2))
    assert len(m.trajectories) == 2**3 * 3**2


def test_sizes_validated():
    with pytest.raises(ValueError):
        Sizes(0, 2, 2)
    with pytest.raises(ValueError):
        ground_step(SOURCE.step(1), (2, 2, 2), method="numeric")


def test_laurent_refuses_division_by_sum():
    atoms = Atoms()
    p = atoms.leaf(Symbol("p"))
    assert ((p * p) ** -1 * p).terms == (p ** -1).terms
    with pytest.raises(NotLaurent):
        (p + 1) ** -1
    with pytest.raises(NotLaurent):
        atoms.log(p + 1)
    assert (p - p).is_zero() and Laurent.const(0).is_zero()


def test_unbound_variable_is_an_error():
    with pytest.raises(ValueError):
        ground(Density(tau, theta), TabularModel((1, 1, 1)), {})
