"""Every code block of README.md and docs/*.md is run, so the commands and outputs shown there cannot go stale.

Conventions for the documents (one test per block, named DOC:LINE):

- ```` ```console ````: a transcript. ``$ COMMAND`` lines (a trailing ``\\`` continues a command) run in bash; the
  lines up to the next ``$`` are the expected output (stdout, then stderr), compared like a doctest with ELLIPSIS
  (``...`` matches anything) and NORMALIZE_WHITESPACE; no lines = output not checked. ``# exit N`` at the end of
  a command is its expected exit status (default 0).
- ```` ```sh ```` or ```` ```bash ````: every line is a command that must exit 0 (or ``# exit N``).
- no language or ```` ```text ````: shown output, not run; a block without a language must not hold commands
  (``pgverify ...``, ``python ...``, ``$ ...``): those belong in a console or sh block.
- ```` ```python ````: executed; functions named ``test_*`` that it defines are called. A block of ``>>>`` lines
  is a doctest instead (ELLIPSIS, NORMALIZE_WHITESPACE); such blocks form one session per document.
- ```` ```json ````: must parse.
- An HTML comment right before a block changes it: ``<!-- test: file NAME -->`` writes the block to NAME instead
  of running it (later blocks of the same document use it), ``<!-- test: slow -->`` marks it slow (every
  runnable block of docs/*.md is: ``pytest -m "not slow"`` runs the README's),
  ``<!-- test: skip (REASON) -->`` skips it (the reason is required, e.g. a command CI runs elsewhere),
  ``<!-- test: needs torch -->`` (or ``jax``, ``torch jax``) declares the optional extras a block imports: it is
  skipped when one is missing, except under ``CI`` (set in CI, where the extras are installed), where it runs
  and a missing extra fails it. A block that imports torch or jax must declare it (a test checks).

Each document runs in its own temporary directory (``examples`` linked to the repository's, so
``examples.user_reinforce:...`` imports as from the repository root), with ``pgverify`` and ``python`` from this
interpreter (small scripts that ``exec`` it: a symbolic link would start a virtual environment's base
interpreter, without the environment's packages), the environment's ``bin`` directory next on ``PATH``,
``NO_COLOR=1`` and ``COLUMNS=80``: what a user sees in an 80-column terminal.
"""
from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\S*)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*test:\s*(\w+)\s*(.*?)\s*-->\s*$")
COMMAND = re.compile(r"^\s*(\$ |pgverify |python3? |pip |pytest\b)")
EXIT = re.compile(r"\s#\s*exit\s+(\d+)\b.*$")
# Optional extras a block may declare with `needs`: the module that proves it installed, the command that installs it.
EXTRAS = {"torch": ("torch", "pip install 'pgverify[torch]'"), "jax": ("jax", "pip install 'pgverify[jax]'")}
# What a runnable block's text shows it uses: torch (the walk-through runs the PyTorch gallery), jax (rlax needs it).
USES = {"torch": re.compile(r"\btorch\b|\bframeworks[./]tutorial\b"), "jax": re.compile(r"\b(jax|rlax)\b")}
TIMEOUT_S = 300


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int               # 1-based line of the opening fence
    lang: str
    text: str
    directive: str | None   # file, slow, skip, needs
    argument: str

    @property
    def id(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"


def parse_blocks(doc: Path) -> list[Block]:
    """The fenced code blocks of a Markdown document with the directive on the line before each."""
    lines = doc.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"{doc.name}:{i + 1}: unclosed code block"
        prev = lines[i - 1] if i > 0 else ""
        d = DIRECTIVE.match(prev)
        blocks.append(Block(doc, i + 1, m.group(1), "\n".join(lines[i + 1:end]) + "\n",
                            d.group(1) if d else None, d.group(2) if d else ""))
        i = end + 1
    return blocks


BLOCKS = [b for doc in DOCUMENTS for b in parse_blocks(doc)]


def _runs(block: Block) -> bool:
    return block.directive != "file" and block.lang in ("console", "sh", "bash", "shell", "python")


def _param(block: Block):
    # The quick subset (pytest -m "not slow") keeps the README's blocks; the docs' runnable blocks are slow.
    slow = block.directive == "slow" or (block.doc.name != "README.md" and _runs(block))
    marks = [pytest.mark.slow] if slow else []
    return pytest.param(block, id=block.id, marks=marks)


def parse_transcript(text: str) -> list[tuple[str, int, str | None]]:
    """(command, expected exit status, expected output or None) for each ``$`` command of a console block."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        assert line.startswith("$ "), f"console block: expected a '$ ' command, got {line!r}"
        command = line[2:]
        while command.endswith("\\"):
            i += 1
            command = command[:-1] + "\n" + lines[i]
        i += 1
        expected = []
        while i < len(lines) and not lines[i].startswith("$ "):
            expected.append(lines[i])
            i += 1
        m = EXIT.search(command)
        status = int(m.group(1)) if m else 0
        out.append((command, status, "\n".join(expected) + "\n" if expected else None))
    return out


class Workdirs:
    """One directory per document, with ``examples`` and bin/{python,pgverify} for this interpreter, where the
    document's blocks run in order: a block finds the files its document's earlier blocks made (a command's
    output file, not only ``file`` blocks). A block asked for out of order (alone, ``-k``, a random order) gets a
    fresh directory in which the earlier runnable blocks are replayed first (their results unchecked: each is
    checked by its own test)."""

    def __init__(self, factory, bindirs: dict):
        self.factory, self.bindirs, self.state = factory, bindirs, {}

    def prepared(self, block: Block) -> tuple[Path, Path]:
        doc, bindir = block.doc, self.bindirs[block.doc]
        cwd, done = self.state.get(doc, (None, None))
        if cwd is None or done >= block.line:
            cwd, done = self.factory.mktemp(doc.stem), 0
            (cwd / "examples").symlink_to(REPO / "examples")
        env = _environment(bindir)
        for earlier in BLOCKS:
            if earlier.doc == doc and done < earlier.line < block.line and _replayable(earlier):
                _write_files(doc, earlier.line, cwd)
                for command in _commands(earlier, cwd):
                    _run(command, cwd, env)
        self.state[doc] = (cwd, block.line)
        return cwd, bindir


def _replayable(block: Block) -> bool:
    import importlib.util

    if not _runs(block) or block.directive == "skip" or (block.lang == "python" and _is_doctest(block)):
        return False
    needs = block.argument.replace(",", " ").split() if block.directive == "needs" else []
    return all(importlib.util.find_spec(EXTRAS[n][0]) is not None for n in needs if n in EXTRAS)


def _commands(block: Block, cwd: Path) -> list[str]:
    """The shell commands a console, sh or (non-doctest) python block runs, in order."""
    if block.lang == "console":
        return [command for command, _, _ in parse_transcript(block.text)]
    if block.lang == "python":
        script = cwd / f"block_{block.line}.py"
        script.write_text(block.text + "\n\nfor _name, _f in list(globals().items()):\n"
                          "    if _name.startswith('test_') and callable(_f):\n        _f()\n")
        return [f'python "{script.name}"']
    return [c for c in (line.strip() for line in block.text.splitlines()) if c and not c.startswith("#")]


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
    """The documents' directories (``Workdirs``) and bin/{python,pgverify} for this interpreter."""
    dirs = {}
    for doc in DOCUMENTS:
        bindir = tmp_path_factory.mktemp("bin")
        # A script, not a symbolic link: python resolves a link to the base interpreter, outside the venv.
        (bindir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        (bindir / "python").chmod(0o755)
        (bindir / "pgverify").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m verify "$@"\n')
        (bindir / "pgverify").chmod(0o755)
        dirs[doc] = bindir
    return Workdirs(tmp_path_factory, dirs)


def _environment(bindir: Path) -> dict:
    env = dict(os.environ)
    # The environment's bin directory next: pytest, pip and other console scripts of this interpreter's venv.
    venv_bin = os.path.dirname(os.path.abspath(sys.executable))
    env.update(PATH=os.pathsep.join([str(bindir), venv_bin, env.get("PATH", "")]), NO_COLOR="1", COLUMNS="80",
               TERM="dumb",
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])]))
    env.pop("FORCE_COLOR", None)
    return env


def _write_files(doc: Path, upto: int, cwd: Path) -> None:
    """Write every ``file`` block of ``doc`` up to line ``upto``, so any block also runs alone."""
    for b in BLOCKS:
        if b.doc == doc and b.line <= upto and b.directive == "file":
            (cwd / b.argument).write_text(b.text)


def _is_doctest(block: Block) -> bool:
    return block.text.lstrip().startswith(">>>")


def _run(command: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)


def _check_output(command: str, expected: str, got: str) -> None:
    checker = doctest.OutputChecker()
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    if not checker.check_output(expected, got, flags):
        example = doctest.Example(command, expected)
        pytest.fail(f"output of `{command}` differs from the document:\n"
                    + checker.output_difference(example, got, flags)[:4000], pytrace=False)


def test_documents_have_code_blocks():
    assert (REPO / "docs").is_dir()
    assert len(BLOCKS) >= 10, [b.id for b in BLOCKS]


def test_first_block_is_the_two_commands():
    first = parse_blocks(REPO / "README.md")[0]
    assert first.text.splitlines() == ["pip install -e . && pgverify report", "pip install -e '.[test]' && pytest"]


def test_documents_stand_alone():
    for doc in [*DOCUMENTS, REPO / "ARCHITECTURE.md"]:
        text = doc.read_text()
        assert "../shared" not in text, f"{doc.name} points outside the repository"
        assert not re.search(r"\bissue \d+\b", text), f"{doc.name} cites an issue number"
        commit = re.search(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b", text)
        assert commit is None, f"{doc.name} cites a commit hash: {commit.group()}"


def _skip_without_extras(block: Block) -> None:
    """Skip a ``needs`` block whose extras are missing, outside CI only: CI installs them, so there it must run."""
    import importlib.util

    names = block.argument.replace(",", " ").split()
    assert names and set(names) <= set(EXTRAS), f"{block.id}: needs one of {', '.join(EXTRAS)}, got {names}"
    missing = [n for n in names if importlib.util.find_spec(EXTRAS[n][0]) is None]
    if missing and not os.environ.get("CI"):
        pytest.skip(f"{block.id} needs {' and '.join(missing)} ({'; '.join(EXTRAS[n][1] for n in missing)}); "
                    "CI runs it")


def test_blocks_using_a_framework_declare_it():
    """A runnable block that uses torch or jax says so (``needs``), so a machine without the extra skips it rather
    than failing, and only those blocks are skipped."""
    for block in BLOCKS:
        if not _runs(block) or block.directive == "skip":
            continue
        used = {name for name, pattern in USES.items() if pattern.search(block.text)}
        declared = set(block.argument.replace(",", " ").split()) if block.directive == "needs" else set()
        assert used == declared, f"{block.id}: uses {sorted(used) or 'no extra'}, declares {sorted(declared) or 'none'}"


@pytest.mark.parametrize("block", [_param(b) for b in BLOCKS])
def test_code_block(block: Block, workdirs):
    if block.directive == "skip":
        assert block.argument, f"{block.id}: a skipped block must say why"
        pytest.skip(f"{block.id}: {block.argument}")
    if block.directive == "needs":
        _skip_without_extras(block)
    if block.directive == "file" or block.lang in ("text", "markdown", "md", "toml", "yaml"):
        return
    if _runs(block):
        cwd, bindir = workdirs.prepared(block)
        _write_files(block.doc, block.line, cwd)
        env = _environment(bindir)
    if block.lang == "json":
        import json

        json.loads(block.text)
    elif block.lang == "python" and _is_doctest(block):
        # One session per document, as ``python -m doctest`` reads it: later blocks use earlier names. The last
        # block's test runs them all; the others are only parsed.
        session = [b for b in BLOCKS if b.doc == block.doc and b.lang == "python" and _is_doctest(b)]
        doctest.DocTestParser().get_examples(block.text)
        if block is session[-1]:
            path = cwd / f"session_{block.doc.stem}.txt"
            path.write_text("\n".join(b.text for b in session))
            res = _run(f'python -m doctest -o ELLIPSIS -o NORMALIZE_WHITESPACE "{path.name}"', cwd, env)
            assert res.returncode == 0, f"{block.id}: doctest failed:\n{res.stdout[-4000:]}\n{res.stderr[-2000:]}"
    elif block.lang == "python":
        res = _run(_commands(block, cwd)[0], cwd, env)
        assert res.returncode == 0, f"{block.id}: python block failed:\n{res.stdout}\n{res.stderr[-4000:]}"
    elif block.lang == "console":
        for command, status, expected in parse_transcript(block.text):
            res = _run(command, cwd, env)
            assert res.returncode == status, (f"{block.id}: `{command}` exited {res.returncode}, the document says "
                                              f"{status}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
            if expected is not None:
                _check_output(command, expected, res.stdout + res.stderr)
    elif block.lang == "":
        commands = [line for line in block.text.splitlines() if COMMAND.match(line)]
        assert not commands, (f"{block.id}: a block without a language is shown output, not run; put commands "
                              f"in a console or sh block so the tests run them: {commands[0]!r}")
    elif block.lang in ("sh", "bash", "shell"):
        for command in _commands(block, cwd):
            m = EXIT.search(command)
            res = _run(command, cwd, env)
            assert res.returncode == (int(m.group(1)) if m else 0), \
                f"{block.id}: `{command}` exited {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    else:
        pytest.fail(f"{block.id}: unknown code block language {block.lang!r}; use console, sh, python, json or text")


def test_parse_transcript():
    got = parse_transcript("$ a --x \\\n  --y   # exit 1\nout 1\n...\n$ b\n")
    assert got == [("a --x \n  --y   # exit 1", 1, "out 1\n...\n"), ("b", 0, None)]


def test_reference_lists_every_option_of_every_command():
    """docs/reference.md's command table names every option the parser accepts, so it cannot fall behind."""
    import argparse

    from verify.cli import build_parser

    text = (REPO / "docs" / "reference.md").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, command in sub.choices.items():
        assert f"pgverify {name}" in text, f"docs/reference.md does not show `pgverify {name}`"
        for action in command._actions:
            longs = [o for o in action.option_strings if o.startswith("--") and o != "--help"]
            if longs and not any(o in text for o in longs):
                missing.append(f"{name} {longs[0]}")
    assert not missing, f"options missing from docs/reference.md: {', '.join(missing)}"
