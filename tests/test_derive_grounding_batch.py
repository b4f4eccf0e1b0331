"""The batched grounding (derive.grounding_batch, derive.jet_batch) against the scalar jets it replaces.

Expected values come from the scalar interpreter (``derive.grounding`` with ``derive.jet.Jet``, Python's
arbitrary-precision integers) at the same random point, and the modular arithmetic from Python's own ``%``.
"""

import dataclasses
import random

import numpy as np
import pytest
from sympy import Add, Pow

from derive import grounding as G
from derive.grounding_batch import batch_model, line_value, step_vanishes, EVERY
from derive.jet import PRIME
from derive.jet_batch import JetBatch, mulmod, residues
from derive.notation import gamma, t, tp, H
from derive.seed import DERIVATIONS, REWARD_TO_GO, SOURCE

STEPS = [(d.name, s) for d in DERIVATIONS for s in d.steps]
EDGES = [0, 1, 2, 2**29 - 1, 2**31, 2**32 - 1, 2**32, 2**32 + 1, 2**60, PRIME - 2, PRIME - 1]


def test_mulmod_and_sums_match_python_integers():
    rng = random.Random(1)
    xs = EDGES + [rng.randrange(PRIME) for _ in range(300)]
    ys = list(reversed(EDGES)) + [rng.randrange(PRIME) for _ in range(300)]
    got = mulmod(residues(xs), residues(ys))
    assert [int(v) for v in got] == [a * b % PRIME for a, b in zip(xs, ys)]
    batch = JetBatch(residues(xs), residues(ys))
    total = batch.total()
    assert (int(total.v), int(total.d)) == (sum(xs) % PRIME, sum(ys) % PRIME)
    groups = np.array([i % 7 for i in range(len(xs))])
    per_group = batch.group_total(groups, 7)
    assert [int(v) for v in per_group.v] == [sum(xs[i::7]) % PRIME for i in range(7)]
    inv = JetBatch(residues(xs[1:]), residues(ys[1:])) ** -1
    assert [int(v) for v in inv.v] == [pow(a, PRIME - 2, PRIME) for a in xs[1:]]


def _model(sizes, step, seed):
    model = G.TabularModel(sizes, step.rule.needs_normalisation, random.Random(seed))
    model.same_old = step.rule.name in G.AT_THETA_OLD_RULES
    return model


def _components(j):
    return [None if c is None else int(c) % PRIME for c in (j.v, j.d)]


def _assert_sides_agree(step, sizes, seed=3):
    """Both sides of every binding, per trajectory: the batch's residues equal the scalar jets' (v and d)."""
    model = _model(sizes, step, seed)
    lhs, rhs, free, bindings, mode = G.step_layout(step, model.H)
    bm = batch_model(model)
    for b in bindings:
        env = {**b, **({v: EVERY for v in free} if mode == "every" else {})}
        if mode != "none":
            env["_traj"] = EVERY
        for side in (lhs, rhs):
            got = line_value(bm, side, env)
            trajs = model.trajectories if mode == "every" else model.trajectories[:1]
            for i, tr in enumerate(trajs):
                scalar_env = {**b, **{v: tr for v in free}, **({"_traj": tr} if mode != "none" else {})}
                want = G.ground(side, model, scalar_env)
                one = got if got.shape == () else got[i]
                assert _components(one) == _components(want), (step.number, b, i)


@pytest.mark.parametrize("name, step", STEPS, ids=[f"{n}-{s.number}" for n, s in STEPS])
def test_batch_equals_scalar_jets_at_2_2_2(name, step):
    _assert_sides_agree(step, (2, 2, 2))


@pytest.mark.parametrize("number", [5, 9, 13])
def test_batch_equals_scalar_jets_at_h3(number):
    # H = 3 with the tower property's conditional expectations and the Q/V tables
    _assert_sides_agree(SOURCE.step(number), (2, 2, 3))


def _off_by_one_exponent(step):
    """gamma^e -> gamma^(e + 1) in the step's result (a discount shifted by one)."""
    pows = [p for p in step.after.atoms(Pow) if p.base == gamma]
    return dataclasses.replace(step, after=step.after.xreplace({p: gamma ** (p.exp + 1) for p in pows}))


def _dropped_term(step):
    """The longest non-index sum in the step's result with its first term dropped."""
    adds = [a for a in step.after.atoms(Add) if not a.free_symbols <= {t, tp, H}]
    if not adds:
        return None
    add = max(adds, key=lambda a: len(str(a)))
    return dataclasses.replace(step, after=step.after.xreplace({add: Add(*add.args[1:])}))


@pytest.mark.parametrize("number", ["RTG1", "RTG3"])
def test_off_by_one_discount_is_refuted_by_the_batch(number):
    wrong = _off_by_one_exponent(REWARD_TO_GO.step(number))
    model = G.shared_model((3, 2, 3), wrong.rule.needs_normalisation, "random")
    assert not step_vanishes(model, *G.step_layout(wrong, model.H))
    result = G.ground_step(wrong, (3, 2, 3), "random")
    assert not result.ok and f"({number})" in result.message


def test_dropped_term_is_refuted_by_the_batch_as_by_the_scalar_jets():
    wrong_steps = [w for w in (_dropped_term(s) for _, s in STEPS if not s.is_equation) if w is not None]
    assert len(wrong_steps) >= 20
    refuted = set()
    for wrong in wrong_steps:
        model = _model((2, 2, 2), wrong, 5)
        batch = step_vanishes(model, *G.step_layout(wrong, model.H))
        assert batch == all(res.is_zero() for res in G._residuals(wrong, model)), wrong.number
        if not batch:
            refuted.add(wrong.number)
    # a reward, a value or a whole expectation dropped from a sum changes it (terms that are 0 by the EGLP
    # lemma, as in the tower-property and condition-on-state steps, may be dropped without harm)
    assert {"RTG3", "B1", "PGA2", "BE3", "PD5", "PD9"} <= refuted, refuted


def test_every_step_proved_by_the_batch_at_3_2_3():
    # the full report's size: every step vanishes on the batch itself (no scalar fallback hides a failure)
    for _, step in STEPS:
        model = G.shared_model((3, 2, 3), step.rule.needs_normalisation, "random", 0, 0,
                               step.rule.name in G.AT_THETA_OLD_RULES)
        assert step_vanishes(model, *G.step_layout(step, model.H)), step.number


def test_numeric_lines_from_the_batch_are_the_scalar_interpreters_floats():
    # the numeric half (verify.app.derivation_numeric) on floats and gradient vectors: the batch does NumJet's
    # operations in NumJet's order and sums in trajectory order, so every line it evaluates has the same bits
    from derive.grounding_batch import first_context_value
    from derive.jet_batch import FloatJetBatch
    from verify.app import derivation_numeric as DN
    from verify.model.builtin import builtin_examples

    DN._numeric_lines({}, None, True)       # builds DN.NumericModel
    problem = builtin_examples()["chain"]   # 227 trajectories of positive probability, H = 5, gamma = 0.9
    batched, scalar, plain = (DN.NumericModel(problem.mdp, problem.policy) for _ in range(3))
    spliced = 0
    for _, number, e in DN.expectation_lines():
        want = G.ground(e, scalar, {"_traj": scalar.trajectories[0]}).v
        # a replaced action of probability 0 (the chain's terminal states) leaves the listed trajectories: without
        # the scalar interpreter for those entries the batch declines, with it the line is the scalar's
        try:
            first_context_value(plain, e, FloatJetBatch)
        except Exception:  # noqa: BLE001
            spliced += 1
        got = first_context_value(batched, e, FloatJetBatch, G.ground).v[0]
        assert np.array_equal(np.broadcast_to(got, np.shape(want)), want), number
    assert spliced >= 5
