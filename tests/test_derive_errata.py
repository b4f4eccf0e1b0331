"""Each symbolic erratum's evidence recomputed independently of derive's code paths."""

import itertools
import random
from fractions import Fraction

from sympy import IndexedBase, Rational, Symbol, expand

from derive.errata import (
    exchange_regularity, objective_distribution, product_index_range, reward_to_go_drops_discount, rho0_omitted,
    symbolic_errata,
)

ERRATA = {e.id: e for e in symbolic_errata()}


def _normalised(rng, n):
    w = [Fraction(rng.randint(1, 100)) for _ in range(n)]
    return [v / sum(w) for v in w]


def test_ids_unique_and_fields_filled():
    assert len(ERRATA) == len(symbolic_errata()) >= 6
    for e in ERRATA.values():
        assert e.source_text and e.correction and e.evidence
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


# --- errata are checks: a predicate on the computed evidence, sentences generated from it ---------------------------

def test_every_default_erratum_holds_and_prints_the_seeds_notation():
    for e in symbolic_errata():
        assert e.holds and e.passed, e.id
        for text in (e.source_text, e.correction, e.evidence, e.title):
            for name in ("dpi_", "rho0_", "R_tau", "**", "_{", "['s"):
                assert name not in str(text), (e.id, name, str(text))


def test_rho0_with_one_state_does_not_show_the_slip():
    # with S = 1 the seed's (9) sums to 1 over trajectories: the conclusion "not 1" no longer holds
    e = rho0_omitted((1, 2, 2))
    assert e.value[0] == 1 and not e.holds
    assert "gives 1 = 1" in str(e.evidence) and "(S, A, H) = (1, 2, 2)" in str(e.evidence)
    assert "≠" in str(rho0_omitted((3, 1, 1)).evidence) and rho0_omitted((3, 1, 1)).value[0] == 3


def test_objective_with_one_action_has_zero_gradient():
    # one action: the policy is constant, so the true gradient is 0 too and nothing distinguishes the objectives
    e = objective_distribution((1, 1, 1))
    assert e.value[1] == 0 and not e.holds and "which is 0 too" in str(e.evidence)


def test_undiscounted_reward_to_go_with_one_step_is_unbiased():
    # H = 1: gamma^0 = 1, so dropping the discount changes nothing
    e = reward_to_go_drops_discount((1, 2, 1))
    assert e.value == 0 and not e.holds and "it is 0 at this size" in str(e.evidence)
    assert "vanishes only at γ = 1" in str(reward_to_go_drops_discount().evidence)


def test_exchange_regularity_sentence_follows_the_values():
    e = exchange_regularity(2)   # f(x) = x^2: grad E = 2 theta / 3, E[f grad log p] = -theta / 3
    assert e.holds and "≠" in str(e.evidence) and "(2)" in str(e.evidence)
    assert product_index_range(0).value == {IndexedBase("s")[1]}


def test_a_failing_erratum_fails_the_report():
    from verify.app.report import Report

    report = Report(seed=0, quick=True)
    report.errata = [rho0_omitted()]
    assert report.passed
    report.errata = [rho0_omitted((1, 2, 2))]
    assert not report.passed
    assert report.to_json()["errata"][0]["holds"] is False


def test_errata_quote_the_source_verbatim_and_are_classed():
    import re

    from derive.errata import KINDS, source_document
    from verify.app.errata import all_errata

    norm = lambda s: re.sub(r"\s+", " ", s)  # noqa: E731  (the source wraps lines with double spaces)
    text = norm(source_document())
    assert "Alexander Schindorfer" in text and "January 21, 2026" in text
    errata = all_errata()
    for e in errata:
        assert e.kind in KINDS and e.quotes, e.id
        for q in e.quotes:
            assert norm(q) in text, (e.id, q)
        if e.kind != "slip":   # only slips are called slips
            assert "slip" not in " ".join(map(str, (e.title, e.source_text, e.correction, e.evidence))).lower(), e.id
    kinds = {e.id: e.kind for e in errata}
    # the standard E_{tau ~ pi_theta} is not a slip; restarting the discount is never written by the source
    assert kinds["reward-to-go-discount-origin"] == "warning" and kinds["objective-distribution"] == "slip"
    assert "not an error" in str(next(e for e in errata if e.id == "objective-distribution").correction)
    # the source writes the reward-to-go up to T, never H - 1
    for e in errata:
        if "reward-to-go" in e.id:
            assert "ᴴ⁻¹ rₜ′" not in str(e.source_text), e.id


def test_source_text_is_package_data_not_a_shared_path():
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    for path in [*repo.glob("derive/**/*.py"), *repo.glob("verify/**/*.py"), repo / "README.md",
                 *repo.glob("docs/*.md"), repo / "pyproject.toml"]:
        assert "/work/shared" not in path.read_text() and "../shared" not in path.read_text(), path
