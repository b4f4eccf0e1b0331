"""``verify.app.html``: one self-contained, valid HTML5 file with every derivation step and erratum as MathML and the
figures inline as SVG. (The rendering in a real browser is checked by benchmarks/screenshot_report.py.)"""
import re

import html5lib
import pytest

from derive.seed import DERIVATIONS
from verify.app.errata import all_errata
from verify.app.html import render_html
from verify.app.report import Report, VarianceRow, continuous_rows, derivation_rows

MATHML = "{http://www.w3.org/1998/Math/MathML}"
XHTML = "{http://www.w3.org/1999/xhtml}"


@pytest.fixture(scope="module")
def report():
    r = Report(seed=0, quick=True)
    r.derivation = derivation_rows(((1, 2, 1),))          # the smallest grounding: the page, not the proof, is tested
    r.continuous = continuous_rows()
    r.errata = list(all_errata())
    r.variance = [VarianceRow("bandit", "total_return", 2.0, "exact"), VarianceRow("bandit", "reward_to_go", 1.5,
                                                                                   "exact")]
    return r


@pytest.fixture(scope="module")
def page(report):
    return render_html(report)


def _text(el) -> str:
    return "".join(el.itertext())


def test_html_is_valid_html5(page):
    # html5lib's strict parser raises on any parse error (unclosed or misnested elements, bad attributes, ...)
    html5lib.HTMLParser(strict=True).parse(page)
    assert page.startswith("<!DOCTYPE html>")


def test_every_step_is_a_mathml_display_with_its_number(page):
    tree = html5lib.parse(page)
    blocks = [m for m in tree.iter(f"{MATHML}math") if m.get("display") == "block"]
    tags = {_text(t) for m in blocks for t in m.iter(f"{MATHML}mtext")}
    for d in DERIVATIONS:
        for s in d.steps:
            assert f"({s.number})" in tags, (d.name, s.number)
            assert tree.find(f".//{XHTML}div[@id='eq-{s.number}']") is not None
    # the maths is MathML, not SymPy's names or LaTeX source
    maths = " ".join(_text(m) for m in tree.iter(f"{MATHML}math"))
    assert "∇" in maths and "π" in maths and "dpi_" not in maths and "\\nabla" not in maths


def test_errata_carry_mathml_and_their_checks(page, report):
    tree = html5lib.parse(page)
    for e in report.errata:
        div = tree.find(f".//{XHTML}div[@id='erratum-{e.id}']")
        assert div is not None, e.id
        assert "the evidence satisfies" in _text(div)
    rho = tree.find(f".//{XHTML}div[@id='erratum-rho0-omitted']")
    assert list(rho.iter(f"{MATHML}math")), "the seed's (9) and the evidence are MathML"


def test_self_contained_with_inline_svg_figures(page):
    assert "<svg" in page and "<img" not in page
    assert not re.search(r"<(script|link|iframe|object|embed)\b", page, re.I)
    # nothing is fetched: the only URLs are XML namespace names (xmlns) and SVG metadata, never src= or href=
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?(?!#)", page)     # url(#clip) inside the SVG is local


def test_without_figures_the_page_says_so(report):
    page = render_html(report, figures=False)
    assert "<svg" not in page and "Figures not requested" in page


def test_banner_counts_failed_and_undecided_checks(report):
    """The banner says what the terminal's last line says: an undecided check is neither passed nor hidden."""
    import dataclasses

    counts = {"checks": 10, "passed": 8, "failed": 1, "undecided": 1, "errata": 8}

    class Counted(Report):
        summary = property(lambda self: counts)

    page = render_html(Counted(**{f.name: getattr(report, f.name) for f in dataclasses.fields(Report)}),
                       figures=False)
    banner = re.search(r'<div class="summary[^"]*">(.*?)</div>', page, re.S).group(1)
    assert "8/10 checks passed, 1 failed, 1 undecided (not counted as passed), 8 errata" in banner, banner
    counts.update(failed=0, undecided=0, passed=10)
    page = render_html(Counted(**{f.name: getattr(report, f.name) for f in dataclasses.fields(Report)}),
                       figures=False)
    assert "10/10 checks passed, 8 errata" in page
