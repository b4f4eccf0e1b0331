"""``pgverify latex``: verifies before export, refuses a failing derivation, writes LaTeX or Markdown, never
overwrites silently, and the LaTeX it writes compiles."""
import os
import shutil
import subprocess
import sys

import pytest

import derive.seed
import verify.app.report
from derive import rules as R
from derive.notation import Density, Grad, TestFn, theta, x
from derive.steps import Derivation, Step
from verify.cli import main

# In CI pdflatex is installed by .ci/run, so a missing pdflatex there is a failure, not a skip.
NEED_PDFLATEX = pytest.mark.skipif(shutil.which("pdflatex") is None and not os.environ.get("CI"),
                                   reason="pdflatex not on PATH (CI installs texlive-latex-base)")

_f, _p = TestFn(x), Density(x, theta)
GOOD = Derivation("good", "The product rule alone", (Step(3, Grad(_p * _f), R.PRODUCT_RULE,
                                                          _f * Grad(_p) + _p * Grad(_f)),))
BROKEN = Derivation("broken", "A broken copy", (Step(3, Grad(_p * _f), R.PRODUCT_RULE, _f * Grad(_p)),))


def _latex(*args, cwd):
    return subprocess.run([sys.executable, "-m", "verify", "latex", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture
def small(monkeypatch):
    """Export a one-step derivation and no errata (the real ones are exported by the slow test below)."""
    monkeypatch.setattr(verify.app.report, "errata_for_latex", lambda: ())

    def use(*derivations):
        monkeypatch.setattr(derive.seed, "DERIVATIONS", derivations)
    return use


def test_failing_step_refuses_export_with_a_row_not_a_traceback(tmp_path, small, capsys):
    small(GOOD, BROKEN)
    out = tmp_path / "pg.tex"
    assert main(["latex", "-o", str(out), "--quick"]) == 1
    err = capsys.readouterr().err
    assert "✗ broken (3): replay failed" in err and "Traceback" not in err
    assert "1 of 2 steps" in err and "--allow-failing" in err and not out.exists()
    # --allow-failing writes it, with the failure marked in the document, and still exits 1
    assert main(["latex", "-o", str(out), "--quick", "--allow-failing"]) == 1
    tex = out.read_text()
    assert "\\textbf{FAILED}: replay failed" in tex and "Some steps FAILED" in tex


def test_passing_export_says_what_was_verified(tmp_path, small, capsys):
    small(GOOD)
    out = tmp_path / "pg.tex"
    assert main(["latex", "-o", str(out), "--quick"]) == 0
    assert "1 step replayed and grounded at (2, 2, 2) ✓" in capsys.readouterr().out
    tex = out.read_text()
    assert "Every step was replayed" in tex and "$(2, 2, 2)$ 1/1 $\\checkmark$" in tex


def test_markdown_export(tmp_path, small):
    small(GOOD)
    out = tmp_path / "pg.md"
    assert main(["latex", "-o", str(out), "--quick"]) == 0      # the format follows the extension
    md = out.read_text()
    assert md.startswith("# The policy gradient") and "$$\n" in md and "\\qquad (3)\n$$" in md
    assert "\\documentclass" not in md
    other = tmp_path / "pg.txt"
    assert main(["latex", "-o", str(other), "--quick", "--format", "markdown"]) == 0
    assert other.read_text().startswith("# The policy gradient")


def test_cli_refuses_to_overwrite(tmp_path):
    target = tmp_path / "mine.tex"
    target.write_text("my notes")
    proc = _latex("-o", "mine.tex", cwd=tmp_path)
    assert proc.returncode == 2 and "--force" in proc.stderr and target.read_text() == "my notes"


def test_cli_needs_an_output(tmp_path):
    proc = _latex(cwd=tmp_path)
    assert proc.returncode == 2 and "-o" in proc.stderr


@NEED_PDFLATEX
def test_cli_document_compiles_with_all_errata(tmp_path):
    from verify.app.errata import all_errata

    proc = _latex("-o", "pg.tex", "--quick", "--allow-failing", cwd=tmp_path)
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr
    tex = (tmp_path / "pg.tex").read_text()
    for e in all_errata():
        assert e.id in tex
    assert "\\tag{15}" in tex
    run = subprocess.run(["pdflatex", "-halt-on-error", "-interaction=nonstopmode", "pg.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:]
    assert (tmp_path / "pg.pdf").stat().st_size > 1000
    overfull = [ln for ln in (tmp_path / "pg.log").read_text(errors="replace").splitlines() if "Overfull" in ln]
    assert not overfull, overfull[:3]
