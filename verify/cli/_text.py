"""Plain text at the terminal's width, and the progress of a Monte Carlo run on stderr.

``mc`` and ``check --estimator`` print sentences longer than a terminal line; a terminal wraps them mid-word
("enumer|ating"), so they are folded here at spaces instead, to the terminal's width (COLUMNS when set). Only a
terminal: a pipe or a file gets one line per sentence (for grep, logs and programs), even with COLUMNS set, which
GNU readline exports to every child of a process that loaded it (pytest's children see COLUMNS=80).
"""
from __future__ import annotations

import contextlib
import sys
import textwrap
from collections.abc import Callable, Iterator

__all__ = ["fold", "print_folded", "sampling_progress", "text_width"]

REPRODUCE = "reproduce: "


def text_width() -> int | None:
    """Columns to fold to on a terminal (its width, or COLUMNS when set); None (no folding) off a terminal."""
    import shutil

    if not sys.stdout.isatty():
        return None
    return max(shutil.get_terminal_size().columns, 20)


def fold(text: str, width: int | None) -> str:
    """Each line of ``text`` folded at spaces to ``width`` columns, continuation lines indented two more than the
    line; a word longer than the width stays whole. A replay command (after ``reproduce: ``) goes on a line of its
    own, never folded, so that it can be copied (a terminal's soft wrap keeps it one line).

    >>> print(fold("verdict: CONSISTENT, decided by the exact bias (enumerating 227 trajectories)", 40))
    verdict: CONSISTENT, decided by the
      exact bias (enumerating 227
      trajectories)
    >>> print(fold("seed 0; reproduce: pgverify mc --example chain --estimator reward_to_go", 30))
    seed 0; reproduce:
    pgverify mc --example chain --estimator reward_to_go
    """
    if width is None:
        return text
    out = []
    for line in text.splitlines():
        command = None
        if REPRODUCE in line and len(line) > width:
            line, command = line.split(REPRODUCE, 1)
            line += REPRODUCE.rstrip()
        indent = " " * (len(line) - len(line.lstrip(" ")))
        out.extend(textwrap.wrap(line, width, subsequent_indent=indent + "  ", break_long_words=False,
                                 break_on_hyphens=False, drop_whitespace=True) or [""])
        if command is not None:
            out.append(command)
    return "\n".join(out)


def print_folded(text: str) -> None:
    print(fold(text, text_width()))


Sampler = Callable[..., Iterator]


@contextlib.contextmanager
def sampling_progress(what: str, episodes: int, *, color: bool = True) -> Iterator[Callable[[Sampler], Sampler]]:
    """A transient progress display on stderr while a Monte Carlo run works: a spinner, the phase (exact values,
    sampling, testing), episodes sampled and the elapsed time. Only on a terminal (a pipe or a log file gets
    nothing), without colour for ``color=False`` or NO_COLOR.

    Yields ``track(sampler)``: the episode source to hand to ``verify.checks.mc`` (the same batches, counted as they
    come). Off a terminal ``track`` returns the sampler unchanged.
    """
    from rich.console import Console

    console = Console(stderr=True, no_color=not color, highlight=False, emoji=False)
    if not console.is_terminal or console.is_dumb_terminal:
        yield lambda sampler: sampler
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("episodes"), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"{what}: exact values", total=episodes)

        def track(sampler: Sampler) -> Sampler:
            def sample(mdp, policy, n, rng):
                progress.update(task, description=f"{what}: sampling")
                for batch in sampler(mdp, policy, n, rng):
                    yield batch
                    progress.advance(task, batch.n)
                progress.update(task, description=f"{what}: testing")
            return sample

        yield track
