"""docs/api.md runs as shown: every ``>>>`` example is executed by doctest (expected outputs written by hand)."""
import doctest
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_api_doc_examples_run_as_shown():
    result = doctest.testfile(str(DOC), module_relative=False, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted >= 15 and result.failed == 0, result


def test_import_verify_loads_nothing_numerical_and_every_public_name_resolves():
    import subprocess
    import sys

    code = ("import sys, verify; print(sorted(m for m in ('numpy', 'scipy', 'hypothesis', 'verify.exact') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", (out.stdout, out.stderr)
    import verify
    for name in verify.__all__:
        assert getattr(verify, name) is not None, name
    assert verify.check_estimator.__doc__ and verify.TabularMDP.__doc__ and verify.returns.__doc__
    try:
        verify.no_such_name
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("verify.no_such_name resolved")
