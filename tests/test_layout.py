"""The layered tree (ARCHITECTURE.md): the flat module paths of the old layout are aliases of the moved modules."""
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from verify import _aliases

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("old", sorted(_aliases.MOVED))
def test_every_flat_path_is_the_moved_module_itself(old):
    new = _aliases.MOVED[old]
    module = importlib.import_module(old)
    assert module is importlib.import_module(new), (old, new)
    assert module is sys.modules[old] is sys.modules[new]
    assert module.__name__ == new and module.__spec__.name == new, (module.__name__, module.__spec__.name)
    # attribute access through the package and `from verify import X` find the same object
    package, _, leaf = old.rpartition(".")
    assert getattr(importlib.import_module(package), leaf) is module
    assert Path(module.__file__).resolve() == ROOT.joinpath(*new.split(".")).with_suffix(".py")


def test_no_file_at_a_flat_path():
    """A file left at an old path would be shadowed by the alias (the finder answers first), i.e. dead code."""
    stale = [old for old in _aliases.MOVED if ROOT.joinpath(*old.split(".")).with_suffix(".py").exists()]
    assert not stale, stale


def test_monkeypatching_a_flat_path_patches_the_module(monkeypatch):
    import verify.checks.mc as mc
    sentinel = object()
    monkeypatch.setattr("verify.mc.DEFAULT_EPISODES", sentinel)
    assert mc.DEFAULT_EPISODES is sentinel


def test_aliases_in_a_fresh_interpreter_load_only_what_is_asked():
    code = ("import sys, verify.exact as e; import verify.numerics.exact as n; assert e is n; "
            "print(sorted(m for m in ('verify.checks.mc', 'verify.app.report', 'verify.mc') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "[]", (out.stdout, out.stderr[-2000:])


def test_unknown_module_under_verify_still_fails():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("verify.no_such_module")


# --- the layers, read from the files (ast): benchmarks/import_graph.py draws the same graph ----------------------

sys.path.insert(0, str(ROOT / "benchmarks"))
import import_graph  # noqa: E402

GRAPH = import_graph.build(ROOT)
PRESENTATION = ("verify.app", "verify.cli", "verify.__main__")


def _core_reaches_presentation(graph):
    """Arrows from a core module (every layer below the application) into the application, the CLI or derive's
    document builder, lazy imports inside functions included."""
    bad = []
    for e in graph.edges:
        if e.source.startswith("derive") or graph.layer(e.source) in ("app", "cli"):
            continue
        if e.target.startswith(PRESENTATION) or graph.layer(e.target) == "derive-documents":
            bad.append(f"{e.source} -> {e.target} (line {e.line}{', lazy' if e.lazy else ''})")
    return bad


def test_core_never_imports_the_application_the_cli_or_the_document_builder():
    assert not _core_reaches_presentation(GRAPH), _core_reaches_presentation(GRAPH)


def test_the_presentation_check_can_fail(tmp_path):
    """A lazy import inside a function, through an old flat path, is caught (the check is not vacuous)."""
    for package in ("verify", "verify/checks", "verify/app", "derive"):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "verify" / "_aliases.py").write_text('MOVED = {"verify.render": "verify.app.render"}\n')
    (tmp_path / "verify" / "app" / "render.py").write_text("X = 1\n")
    (tmp_path / "derive" / "latex.py").write_text("X = 1\n")
    (tmp_path / "verify" / "checks" / "gradcheck.py").write_text(
        "def format(check):\n    from verify.render import X\n    return X\n")
    (tmp_path / "verify" / "checks" / "mc.py").write_text("import derive.latex\n")
    bad = _core_reaches_presentation(import_graph.build(tmp_path))
    assert bad == ["verify.checks.gradcheck -> verify.app.render (line 2, lazy)",
                   "verify.checks.mc -> derive.latex (line 1)"], bad


def test_no_import_cycles_and_no_arrow_up():
    assert GRAPH.cycles() == [], GRAPH.cycles()
    up = [f"{e.source} -> {e.target} (line {e.line})" for e in GRAPH.upward()]
    assert up == [], up


def test_cycle_and_arrow_up_detection_can_fail(tmp_path):
    (tmp_path / "derive").mkdir()
    (tmp_path / "derive" / "__init__.py").write_text("")
    (tmp_path / "derive" / "steps.py").write_text("def f():\n    import derive.latex\n")
    (tmp_path / "derive" / "latex.py").write_text("from derive import steps\n")
    graph = import_graph.build(tmp_path)
    assert graph.cycles() == [["derive.latex", "derive.steps"]]
    assert [(e.source, e.target) for e in graph.upward()] == [("derive.steps", "derive.latex")]


def test_architecture_names_every_module_of_the_layers_and_only_real_files():
    import re

    text = (ROOT / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`((?:verify|derive)/[\w/]+\.py)`", text))
    missing_files = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing_files, f"ARCHITECTURE.md names files that do not exist: {missing_files}"
    layered = sorted(str(p.relative_to(ROOT)) for layer in ("model", "numerics", "checks", "testing", "app")
                     for p in (ROOT / "verify" / layer).glob("*.py") if p.name != "__init__.py")
    unnamed = [p for p in layered if p not in named]
    assert not unnamed, f"modules without a paragraph in ARCHITECTURE.md: {unnamed}"


def test_one_printer_home_per_node_class_and_medium():
    """Each notation node prints through its printer class in each medium (LaTeX, Unicode, MathML); no node
    carries a second LaTeX form of its own (a ``_latex`` method the printer would never call)."""
    import inspect

    from derive import notation
    from derive.printing import PGLatexPrinter, PGMathMLPrinter, PGUnicodePrinter

    nodes = [c for _, c in inspect.getmembers(notation, inspect.isclass)
             if issubclass(c, notation._Node) and c.__module__ == notation.__name__ and not c.__name__.startswith("_")]
    assert len(nodes) >= 19, [c.__name__ for c in nodes]
    own_latex = [c.__name__ for c in nodes if "_latex" in vars(c)]
    assert not own_latex, f"node classes with their own _latex (print them in PGLatexPrinter): {own_latex}"
    missing = [f"{printer.__name__}._print_{c.__name__}" for printer in (PGLatexPrinter, PGUnicodePrinter,
                                                                         PGMathMLPrinter)
               for c in nodes if not hasattr(printer, f"_print_{c.__name__}")]
    assert not missing, missing


def test_policy_is_an_abstract_base_class():
    import numpy as np

    from verify.model.policy import Policy, TabularSoftmax

    assert Policy.__abstractmethods__ == {"with_theta", "score_contract", "to_dict"}
    assert Policy.score_contract.__doc__ and "gradient primitive" in Policy.score_contract.__doc__

    class Incomplete(Policy):
        def to_dict(self):
            return {}

    try:
        Incomplete()
    except TypeError as exc:
        assert "score_contract" in str(exc)
    else:
        raise AssertionError("a Policy without score_contract was instantiated")
    assert isinstance(TabularSoftmax(np.zeros((1, 2))), Policy)
