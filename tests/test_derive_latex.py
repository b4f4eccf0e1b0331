"""The LaTeX export compiles with pdflatex and carries every step and erratum."""

import shutil
import subprocess
from types import SimpleNamespace

import pytest

from derive.errata import symbolic_errata
from derive.latex import escape_text, render_document
from derive.seed import DERIVATIONS


def test_document_has_every_step_and_erratum():
    doc = render_document(errata=symbolic_errata())
    for d in DERIVATIONS:
        for s in d.steps:
            assert f"\\tag{{{s.number}}}" in doc
    for e in symbolic_errata():
        assert escape_text(e.id) in doc
    assert "\\usepackage{amsmath}" in doc and doc.rstrip().endswith("\\end{document}")


def test_escape_text_handles_specials_and_unicode():
    assert escape_text("a_b & c%") == r"a\_b \& c\%"
    assert "?" == escape_text("\u4e2d")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not on PATH (CI installs texlive-latex-base)")
def test_document_compiles(tmp_path):
    foreign = SimpleNamespace(id="rtg-variance", title="A verify-side erratum with $ & _ {}",
                              seed_text="“lower variance”", correction="Not a theorem: Var ≥ …",
                              evidence="Var[RTG] = 1.25 > Var[REINFORCE] = 1.0 (100% sure)")
    (tmp_path / "doc.tex").write_text(render_document(errata=[*symbolic_errata(), foreign]))
    proc = subprocess.run(["pdflatex", "-halt-on-error", "-interaction=nonstopmode", "doc.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0
