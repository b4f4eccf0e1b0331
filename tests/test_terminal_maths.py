"""The terminal shows Unicode maths from the same expressions: the continuous table, the errata (with hanging
indents), the estimator catalog (LaTeX stays in --json)."""
import json
import re

from rich.cells import cell_len
from rich.console import Console

from derive.printing import latex_to_unicode, to_unicode
from derive.seed import SOURCE
from verify.app import render
from verify.cli import main
from verify.app.errata import all_errata
from verify.app.report import Report, continuous_rows


def _printed(fn, report, width=100) -> str:
    console = Console(width=width, no_color=True, record=True, highlight=False)
    with console.capture() as cap:
        fn(console, report)
    return cap.get()


def test_continuous_table_is_unicode_with_every_header():
    report = Report(seed=0, quick=True)
    report.continuous = continuous_rows()
    text = _printed(render._derivation, report)
    assert "3 c₃ μ²" in text and "2 c₂ σ" in text and "−1/2" in text
    for ascii_maths in ("**", "c3*", "mu", "sigma", "x^1", "theta"):
        assert ascii_maths not in text, ascii_maths
    header = [ln for ln in text.splitlines() if "model" in ln][0]
    cells = [c.strip() for c in header.strip("┃ ").split("┃")]
    assert all(cells), header          # no column without a header


def test_errata_wrap_under_their_label():
    report = Report(seed=0, quick=True)
    report.errata = list(all_errata())
    text = _printed(render._errata, report, width=90)
    lines = text.splitlines()
    labelled = re.compile(r"^ {4}(kind|source|correction|evidence|check):")
    for i, line in enumerate(lines[1:], 1):
        if not line.strip() or line.startswith(("✓", "✗", "•")):
            continue
        # every line is a labelled row or a continuation indented to the text column (4 + 11 + 1 = 16)
        assert labelled.match(line) or line.startswith(" " * 16), (i, line)
    assert sum(1 for ln in lines if ln.startswith(" " * 16)) > 5          # the long sentences did wrap
    assert "dpi_" not in text and "rho0_" not in text and "R_tau" not in text


def test_estimators_show_unicode_and_keep_latex_in_json(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")                     # the terminal's width: formulas fold, no LaTeX
    assert main(["estimators", "--no-color"]) == 0
    out = capsys.readouterr().out
    assert "\\" not in out and max(cell_len(line) for line in out.splitlines()) <= 80
    monkeypatch.setenv("COLUMNS", "200")                    # wide enough: the formula on one line
    assert main(["estimators", "--no-color"]) == 0
    assert "Σₜ≥₀ ∇θ log πθ(aₜ|sₜ) Σₜ′≥ₜ γᵗ′ rₜ′" in capsys.readouterr().out
    assert main(["estimators", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    rtg = next(r for r in rows if r["name"] == "reward_to_go")
    assert rtg["latex"].startswith("\\sum") and rtg["unicode"] == latex_to_unicode(rtg["latex"])


def test_unicode_printer_reads_like_the_seed():
    assert to_unicode(SOURCE.step(15).after.rhs) == "E_τ∼p(·|θ)[Σₜ₌₀ᴴ⁻¹ R(τ) ∇θ log πθ(aₜ|sₜ)]"
    assert to_unicode(SOURCE.step(9).after) == "ρ₀(s₀) ∏ₜ₌₀ᴴ⁻¹ p(sₜ₊₁|sₜ, aₜ) πθ(aₜ|sₜ)"
    assert latex_to_unicode(r"\frac{G_t - \overline{G}}{\operatorname{std}(G) + \epsilon}") == "(Gₜ − G̅)/(std(G) + ε)"
