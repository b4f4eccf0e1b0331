"""What a newcomer's terminal shows: ``pgverify --version``, and output at 80 columns without broken table rows."""
import os
import re
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
    from verify.model.builtin import load_example
    from verify.numerics.exact import gradient

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
    from verify.frameworks.gym import _gymnasium
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
    from verify.model.builtin import builtin_examples
    from verify.checks.estimators import get_estimator
    from verify.checks.gradcheck import check_estimator

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


# --- sentences fold at spaces, a replay command stays whole --------------------------------------------------------

def _on_a_terminal(args, *, stdout_tty=True, stderr_tty=False, env=None):
    """(exit status, stdout, stderr) of ``pgverify ARGS`` with stdout and/or stderr on a pseudo-terminal."""
    import pty
    import select

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ends = {}
    for name, tty in (("stdout", stdout_tty), ("stderr", stderr_tty)):
        ends[name] = pty.openpty() if tty else None
    proc = subprocess.Popen([sys.executable, "-m", "verify", *args], cwd=repo, env=env,
                            stdout=ends["stdout"][1] if stdout_tty else subprocess.PIPE,
                            stderr=ends["stderr"][1] if stderr_tty else subprocess.PIPE)
    readers = {}
    for name in ("stdout", "stderr"):
        if ends[name]:
            os.close(ends[name][1])
            readers[ends[name][0]] = name
        else:
            readers[getattr(proc, name).fileno()] = name
    chunks = {"stdout": [], "stderr": []}
    while readers:
        ready, _, _ = select.select(list(readers), [], [], 300)
        assert ready, "no output for 300 s"
        for fd in ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:          # a pty whose other end closed
                chunk = b""
            if chunk:
                chunks[readers[fd]].append(chunk)
            else:
                del readers[fd]
    proc.wait(timeout=300)
    for name in ("stdout", "stderr"):
        if ends[name]:
            os.close(ends[name][0])
    text = {k: b"".join(v).decode("utf-8", "replace").replace("\r\n", "\n") for k, v in chunks.items()}
    return proc.returncode, text["stdout"], text["stderr"]


@pytest.mark.parametrize("args", [
    ("mc", "--example", "chain", "--estimator", "reward_to_go", "--episodes", "2000"),
    ("check", "--example", "bandit", "--estimator", "examples/user_reinforce.py:reinforce", "--episodes", "2000"),
])
def test_mc_and_check_estimator_fold_at_word_boundaries_on_a_terminal(args):
    """On an 80-column terminal every line fits (but the replay command, on a line of its own so that it can be
    copied) and the words are exactly those of the output to a pipe: folded at spaces, never inside a word
    ("enumer|ating"). A pipe gets one line per sentence, even with COLUMNS set (pytest's children have it)."""
    env = dict(os.environ, COLUMNS="80", NO_COLOR="1", TERM="dumb")
    code, narrow, err = _on_a_terminal(args, env=env)
    assert code == 0, err[-2000:]
    wide = subprocess.run([sys.executable, "-m", "verify", *args], capture_output=True, text=True, env=env,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), timeout=300)
    assert wide.returncode == 0, wide.stderr[-2000:]
    assert narrow.split() == wide.stdout.split()
    assert max(map(len, wide.stdout.splitlines())) > 80          # the pipe's lines are unfolded
    for line in narrow.splitlines():
        assert len(line) <= 80 or line.startswith("pgverify mc "), line
    assert "\npgverify mc " in narrow                           # the replay command whole, on its own line


def test_fold_keeps_indentation_and_long_words():
    from verify.cli._text import fold

    assert fold("  a " + "x" * 30, 10) == "  a\n    " + "x" * 30
    assert fold("short", 80) == "short" and fold("a b", None) == "a b"


# --- --covariance sample says why nothing was enumerated ----------------------------------------------------------

def test_sample_covariance_on_an_enumerable_mdp_does_not_claim_too_many_trajectories(tmp_path):
    """One state, three actions, horizon 5: 3^5 = 243 trajectories, enumerable; --covariance sample skips the
    enumeration by request, and the verdict line says so."""
    import json

    mdp = {"initial": [1], "transitions": [[[1], [1], [1]]], "rewards": [[0, 0.5, 1]], "gamma": 1, "horizon": 5}
    (tmp_path / "m.json").write_text(json.dumps(mdp))
    run = lambda *extra: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "verify", "mc", "m.json", "--estimator", "reward_to_go", "--episodes", "2000", *extra],
        capture_output=True, text=True, cwd=tmp_path, timeout=300, env=dict(os.environ, NO_COLOR="1"))
    exact = run()
    assert exact.returncode == 0 and "enumerating 243 trajectories" in exact.stdout, exact.stdout + exact.stderr
    sample = run("--covariance", "sample")
    assert sample.returncode in (0, 3), sample.stderr     # consistent, or undecided for want of power (exit 3)
    assert "too many trajectories" not in sample.stdout
    assert "trajectories not enumerated: the sample covariance was asked for" in sample.stdout


# --- --help points at sections that exist --------------------------------------------------------------------------

def _help_texts():
    import argparse

    from verify.cli import build_parser

    parser = build_parser()
    parsers = [parser, *next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices.values()]
    for p in parsers:
        yield p.prog, " ".join(filter(None, [p.description, p.epilog]))
        for action in p._actions:
            if action.help:
                yield f"{p.prog} {'/'.join(action.option_strings) or action.dest}", action.help


def test_help_points_only_at_documents_and_sections_that_exist():
    """Every document --help names exists in the repository, and every section it names ("docs/x.md, 'Title'") is
    a heading of that document; a bare "README" without a section is refused (the README is long)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    reference = re.compile(r"\b(README(?:\.md)?|docs/[\w-]+\.md)(?:, '([^']+)')?")
    seen = 0
    for where, text in _help_texts():
        for m in reference.finditer(" ".join(text.split())):
            doc, section = m.group(1), m.group(2)
            assert doc != "README" and section, f"{where}: point at a document and a section, not {m.group()!r}"
            path = os.path.join(repo, doc)
            assert os.path.isfile(path), f"{where}: {doc} does not exist"
            headings = [line.lstrip("#").strip() for line in open(path, encoding="utf-8") if line.startswith("#")]
            assert section in headings, f"{where}: {doc} has no section {section!r}"
            seen += 1
    assert seen >= 3


# --- mc's progress on stderr: a terminal only ------------------------------------------------------------------------

def _mc_with_stderr_on_a_terminal(*extra):
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="100")
    env.pop("NO_COLOR", None)
    return _on_a_terminal(("mc", "--example", "bandit", "--estimator", "reward_to_go", "--episodes", "3000", *extra),
                          stdout_tty=False, stderr_tty=True, env=env)


def test_mc_shows_progress_on_a_terminal_and_nothing_on_a_pipe():
    code, out, err = _mc_with_stderr_on_a_terminal()
    assert code == 0 and "verdict: CONSISTENT" in out
    assert "bandit, reward_to_go" in err and "episodes" in err, err[-500:]
    plain_code, _, plain = _mc_with_stderr_on_a_terminal("--no-color")
    assert plain_code == 0 and "bandit, reward_to_go" in plain
    colour = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-8]|9[0-7])[;m]")       # SGR foreground colours
    assert colour.search(err) and not colour.search(plain), plain[-300:]
    piped = _run("mc", "--example", "bandit", "--estimator", "reward_to_go", "--episodes", "3000")
    assert piped.returncode == 0 and piped.stderr == ""


# --- the report's tables at 80 columns -------------------------------------------------------------------------------

def _report_console(width):
    from rich.console import Console

    return Console(width=width, no_color=True, highlight=False, record=True, file=open(os.devnull, "w"))


def test_continuous_table_folds_uniform_instead_of_cutting_it():
    """The continuous-case table at 80 columns: every model's words appear whole (rich's default cuts a word wider
    than its column to "Uniform(…")."""
    from verify.app.render import _derivation
    from verify.app.report import continuous_rows

    class Only:                      # the derivation section with its continuous table alone
        derivation, derivation_numeric, chain = [], [], []
        continuous = continuous_rows()

    console = _report_console(80)
    _derivation(console, Only)          # (_derivation prints at the console's width)
    text = console.export_text()
    assert "…" not in text
    for row in Only.continuous:
        for word in row.model.split():
            assert word in text, word


@pytest.mark.parametrize("width", [80, 160])
def test_the_footnote_explains_the_columns_the_table_shows(width, monkeypatch):
    """The compact table (narrow terminals) has no effect or detects column, so its footnote does not explain
    them; the wide one explains both."""
    from verify.model.builtin import load_example
    from verify.checks.mc import run_check
    from verify.app.render import render_check

    check = run_check(load_example("bandit"), episodes=500, seed=0)
    monkeypatch.setenv("COLUMNS", str(width))          # a stated width (a pipe without one gets the wide table)
    console = _report_console(width)
    render_check(check, console=console)
    text = " ".join(console.export_text().split())
    wide = width >= 140
    assert ("detects: median" in text) == wide and ("effect (bias / per-episode std)" in text) == wide
    assert "exact max|bias|" in text and "p-value" in text and "undecided" in text
