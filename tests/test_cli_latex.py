"""``pgverify latex``: the document the CLI writes carries every erratum, compiles, and never overwrites silently."""
import os
import shutil
import subprocess
import sys

import pytest

from verify.errata import all_errata

# In CI pdflatex is installed by .ci/run, so a missing pdflatex there is a failure, not a skip.
NEED_PDFLATEX = pytest.mark.skipif(shutil.which("pdflatex") is None and not os.environ.get("CI"),
                                   reason="pdflatex not on PATH (CI installs texlive-latex-base)")


def _latex(*args, cwd):
    return subprocess.run([sys.executable, "-m", "verify", "latex", *args], capture_output=True, text=True, cwd=cwd)


@NEED_PDFLATEX
def test_cli_document_compiles_with_all_errata(tmp_path):
    proc = _latex("-o", "pg.tex", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    tex = (tmp_path / "pg.tex").read_text()
    for e in all_errata():
        assert e.id in tex
    assert "\\tag{15}" in tex
    run = subprocess.run(["pdflatex", "-halt-on-error", "-interaction=nonstopmode", "pg.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:]
    assert (tmp_path / "pg.pdf").stat().st_size > 1000


def test_cli_refuses_to_overwrite(tmp_path):
    target = tmp_path / "mine.tex"
    target.write_text("my notes")
    proc = _latex("-o", "mine.tex", cwd=tmp_path)
    assert proc.returncode == 2 and "--force" in proc.stderr and target.read_text() == "my notes"
    proc = _latex("-o", "mine.tex", "--force", cwd=tmp_path)
    assert proc.returncode == 0 and target.read_text().startswith("\\documentclass")


def test_cli_needs_an_output(tmp_path):
    proc = _latex(cwd=tmp_path)
    assert proc.returncode == 2 and "-o" in proc.stderr
