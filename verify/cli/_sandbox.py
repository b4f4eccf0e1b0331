"""``--estimator MODULE:FUNCTION`` in a worker process: the user's code cannot reach pgverify's own state.

The CLI runs a user's estimator in a child process (``multiprocessing`` "spawn": a fresh interpreter, so a module
that monkeypatches numpy patches the child's numpy, never the numbers pgverify judges with). The child

- imports the user's module itself (its top-level code runs there, not in pgverify's process);
- writes its standard output to standard error (a ``print`` cannot corrupt ``--json`` on stdout);
- leads its own process group, so a timeout or the end of the run kills it with every thread and child process
  it started (a leftover thread pool or a forked child cannot keep the command alive or hold its pipes);
- reports whatever the function raises, ``BaseException`` included (``SystemExit``, ``KeyboardInterrupt``,
  ``GeneratorExit``, ``asyncio.CancelledError``, a custom one): the parent raises a ``UsageError`` naming it
  (exit 2), or an exception of the same type name for ``Exception`` subclasses, so ``check_estimator`` reports
  it as "estimator X raised ValueError: ..." as for an in-process function;
- cannot swallow the timeout: the parent waits with a deadline and kills the child (``except Exception:`` in the
  user's code never sees it);
- cannot end the run by ``os._exit``: a child that dies mid-call is reported with its exit status.

The library API (``verify.check_estimator``) takes a function and calls it in the caller's process: a user who
calls it has chosen to run their code there.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from typing import Any

import numpy as np

from verify.episodes import Episodes
from verify.errors import UsageError

__all__ = ["SandboxedEstimator"]

_CLOSE_SECONDS = 2.0


def _serve(conn, spec: str, cwd: str, path: list[str]) -> None:  # pragma: no cover - runs in the child
    """The child's loop: import ``spec``, then answer ("call", arrays) messages until ("close",)."""
    os.setsid()                                     # its own process group: killed as one
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is the parent's to handle
    os.dup2(2, 1)                                   # fd 1 -> stderr: print() and C-level writes alike
    sys.stdout = sys.stderr
    os.chdir(cwd)
    sys.path[:] = path
    from verify.cli._estimator_import import load_estimator

    try:
        fn = load_estimator(spec)
        conn.send(("loaded", getattr(fn, "__name__", None), getattr(fn, "__doc__", None)))
    except BaseException as exc:  # noqa: BLE001 - the child reports everything and stays alive to be closed
        conn.send(("error", _describe(exc, spec)))
    else:
        mdp = policy = None
        while True:
            message = conn.recv()
            if message[0] == "close":
                break
            if message[0] == "problem":
                mdp, policy = message[1], message[2]
                continue
            s_t, a_t, r_t, lengths, weights = message[1:]
            for array in (s_t, a_t, r_t, lengths, weights):
                if array is not None:
                    array.flags.writeable = False       # the contract's read-only episodes, as in-process
            try:
                out = fn(Episodes(s_t, a_t, r_t, lengths, mdp, policy, weights))
                try:
                    reply = ("ok", np.asarray(out))
                except BaseException:  # noqa: BLE001 - not convertible: the parent's validation names it
                    reply = ("ok", out)
                conn.send(reply)
            except BaseException as exc:  # noqa: BLE001
                text = repr(exc.code) if isinstance(exc, SystemExit) else str(exc)
                conn.send(("raised", type(exc).__name__, text, isinstance(exc, Exception)))
    conn.close()
    os._exit(0)             # no atexit handlers, no waiting for the user's threads


def _describe(exc: BaseException, spec: str) -> str:
    """The one line for an import that failed (``load_estimator``'s own UsageErrors already name the spec)."""
    if isinstance(exc, UsageError):
        return str(exc)
    if isinstance(exc, SystemExit):
        return f"--estimator {spec}: importing it called sys.exit({exc.code!r})"
    return f"--estimator {spec}: importing it raised {type(exc).__name__}: {exc}"


class SandboxedEstimator:
    """A callable ``episodes -> [N, *theta.shape]`` that runs ``spec`` in a worker process (see the module doc).

    Use as a context manager; the worker is killed (with its process group) on exit.

    Args:
      spec: ``path/to/file.py:function`` or ``package.module:function``.
      timeout: seconds allowed for the import and for each call (None: no limit).
    """

    def __init__(self, spec: str, timeout: float | None = None) -> None:
        self.spec, self.timeout = spec, timeout
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, spec, os.getcwd(), list(sys.path)), daemon=True,
                                 name=f"pgverify estimator {spec}")
        self._proc.start()
        child.close()
        self._problem: tuple[Any, Any] | None = None
        try:
            reply = self._receive(f"importing --estimator {spec}")
        except BaseException:
            self.close()
            raise
        if reply[0] == "error":
            self.close()
            raise UsageError(reply[1])
        self.__name__ = self.__qualname__ = spec.rpartition(":")[2] if reply[1] is None else reply[1]
        self.__doc__ = reply[2]

    def __enter__(self) -> "SandboxedEstimator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __call__(self, episodes: Episodes) -> np.ndarray:
        problem = (episodes.mdp, episodes.policy)
        if self._problem is None or self._problem[0] is not problem[0] or self._problem[1] is not problem[1]:
            self._send(("problem", *problem))
            self._problem = problem
        self._send(("call", np.asarray(episodes.s_t), np.asarray(episodes.a_t), np.asarray(episodes.r_t),
                    np.asarray(episodes.lengths), episodes.weights))
        reply = self._receive(f"one call of estimator {self.spec}")
        if reply[0] == "ok":
            return reply[1]
        _, name, text, ordinary = reply
        if ordinary:        # re-raised under the user's type name: check_estimator reports "raised NAME: text"
            raise type(name, (Exception,), {"__module__": "builtins"})(text)
        what = f"called sys.exit({text})" if name == "SystemExit" else f"raised {name}: {text}".rstrip(": ")
        raise UsageError(f"--estimator {self.spec} {what}; the check did not run to completion")

    def _send(self, message) -> None:
        try:
            self._conn.send(message)
        except (BrokenPipeError, EOFError, OSError):
            raise self._died() from None

    def _receive(self, what: str):
        if not self._conn.poll(self.timeout):
            self.close()
            raise UsageError(f"{what} took longer than --estimator-timeout {self.timeout:g} s")
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            raise self._died() from None

    def _died(self) -> UsageError:
        self._proc.join(_CLOSE_SECONDS)
        code = self._proc.exitcode
        self.close()
        how = (f"was killed by signal {-code}" if code is not None and code < 0
               else f"ended its process (exit status {code})")
        return UsageError(f"--estimator {self.spec} {how} during a call; the check did not run to completion")

    def close(self) -> None:
        """End the worker and everything it started (idempotent)."""
        proc = self._proc
        if proc.pid is None:
            return
        if proc.is_alive():
            try:
                self._conn.send(("close",))
            except (OSError, EOFError, ValueError):
                pass
            proc.join(0.2)
        try:
            os.killpg(proc.pid, signal.SIGKILL)     # the group: user threads die with it, user children too
        except (ProcessLookupError, PermissionError):
            pass
        proc.join(_CLOSE_SECONDS)
        self._conn.close()
