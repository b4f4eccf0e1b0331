"""What a newcomer's terminal shows: ``pgverify --version``, and output at 80 columns without broken table rows."""
import os
import subprocess
import sys

import pytest

import verify


def _run(*args, columns=80):
    env = dict(os.environ, COLUMNS=str(columns), NO_COLOR="1", TERM="dumb")
    return subprocess.run([sys.executable, "-m", "verify", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_version():
    proc = _run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"pgverify {verify.__version__}"


def _assert_fits(text: str, columns: int) -> None:
    lines = text.splitlines()
    assert lines, "no output"
    for line in lines:
        assert len(line) <= columns, f"{len(line)} > {columns} columns: {line!r}"
        if line.startswith(("│", "┃")):      # a table row must close on the same line: not wrapped mid-row
            assert line.rstrip().endswith(("│", "┃")), f"broken table row: {line!r}"
    assert "\x1b[" not in text, "colour codes despite NO_COLOR"


@pytest.mark.parametrize("args", [("gradient", "--example", "chain"), ("gradient", "--example", "gridworld"),
                                  ("gradient", "--example", "discounted")])
def test_output_fits_80_columns(args):
    proc = _run(*args)
    assert proc.returncode == 0, proc.stderr
    _assert_fits(proc.stdout, 80)


def test_gradient_names_what_it_computed():
    """J with horizon, gamma and method; grad J labelled by state and action names (chain's exact values are
    checked against enumeration in tests/test_exact.py; here: the labels and that the table holds them)."""
    from verify.builtin import load_example
    from verify.exact import gradient

    chain = load_example("chain")
    exact = gradient(chain.mdp, chain.policy, "enumerate")
    out = _run("gradient", "--example", "chain").stdout
    assert "horizon 5, gamma 0.9" in out and "(method: dp)" in out and f"{exact.J:.6g}"[:8] in out
    row = next(line for line in out.splitlines() if line.startswith("│ s1"))
    assert [float(x) for x in row.strip("│ ").split("│")[1:]] == pytest.approx(exact.grad[1], rel=1e-7)
    assert "left" in out and "right" in out


def test_gradient_of_a_big_problem_shows_the_largest_entries():
    pytest.importorskip("gymnasium")
    proc = _run("gradient", "--gym", "Taxi-v4")
    assert proc.returncode == 0, proc.stderr
    assert "the 20 largest of 3000 entries" in proc.stdout and "..." not in proc.stdout
    _assert_fits(proc.stdout, 80)


def test_every_missing_extra_hint_has_one_form(monkeypatch):
    """Each optional dependency, when missing, is named with the command that installs it, in one form."""
    import re

    from verify.errors import UsageError
    from verify.gym import _gymnasium
    from verify.app.plots import require_matplotlib

    hint = re.compile(r"^[\w ]+ needs? \w+: pip install 'pgverify\[(plot|gym)\]'$")
    for module, call in (("matplotlib", require_matplotlib), ("gymnasium", _gymnasium)):
        monkeypatch.setitem(sys.modules, module, None)      # import now raises ImportError
        with pytest.raises(UsageError) as err:
            call()
        assert hint.match(str(err.value)), str(err.value)


def test_example_by_name_from_anywhere(tmp_path):
    """--example NAME works outside the repository; an unknown name or two problems is one line and exit 2."""
    env = dict(os.environ, NO_COLOR="1")
    run = lambda *a: subprocess.run([sys.executable, "-m", "verify", *a], capture_output=True, text=True,  # noqa: E731
                                    env=env, cwd=tmp_path, timeout=300)
    ok = run("gradient", "--example", "bandit", "--json")
    assert ok.returncode == 0, ok.stderr
    bad = run("gradient", "--example", "nope")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "bandit, chain, gridworld, discounted" in bad.stderr
    both = run("gradient", "x.json", "--example", "chain")
    assert both.returncode == 2 and both.stderr.count("\n") == 1


def test_api_reproduce_line_names_the_builtin_example():
    """The reproduce line of a check on a built-in example runs as printed, from any directory."""
    from verify.builtin import builtin_examples
    from verify.estimators import get_estimator
    from verify.gradcheck import check_estimator

    rtg = get_estimator("reward_to_go").per_episode
    first = check_estimator(rtg, builtin_examples()["bandit"], episodes=300, seed=3)
    assert "'bandit'" in first.reproduce
    again = check_estimator(rtg, "bandit", episodes=300, seed=3)
    np = pytest.importorskip("numpy")
    np.testing.assert_array_equal(first.mean, again.mean)


@pytest.mark.parametrize("args", [("check", "--example", "chain", "--episodes", "2000"), ("report", "--quick")])
def test_report_and_check_fit_80_columns(args):
    """A narrow terminal gets the compact estimator table (what happened: exact bias, p-value, outcome); every
    line fits and no table row breaks."""
    proc = _run(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _assert_fits(proc.stdout, 80)
    assert "outcome" in proc.stdout and "MC test" not in proc.stdout       # the compact table, not the wide one


def test_a_pipe_without_columns_gets_the_wide_table():
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.run([sys.executable, "-m", "verify", "check", "--example", "chain", "--episodes", "2000",
                           "--no-color"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "MC test" in proc.stdout and "detects" in proc.stdout
