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

__all__ = ["SandboxedEstimator", "UserCodeError", "Worker", "enter_worker", "raised"]

_CLOSE_SECONDS = 2.0


class UserCodeError(Exception):
    """Base of the exceptions re-raised for an ``Exception`` the user's function raised in the worker (each under
    the user's own type name, so ``check_estimator`` reports "raised NAME: text" as for an in-process function)."""


def enter_worker(cwd: str, path: list[str]) -> None:  # pragma: no cover - runs in the child
    """The child's side of the sandbox, before any user code: its own process group, Ctrl-C left to the parent,
    stdout (Python's and the file descriptor's) on stderr, the parent's directory and import path."""
    os.setsid()                                     # its own process group: killed as one
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is the parent's to handle
    os.dup2(2, 1)                                   # fd 1 -> stderr: print() and C-level writes alike
    sys.stdout = sys.stderr
    os.chdir(cwd)
    sys.path[:] = path


def raised(exc: BaseException) -> tuple:
    """The message for what a call of user code raised: ("raised", type name, text, is an Exception)."""
    text = repr(exc.code) if isinstance(exc, SystemExit) else str(exc)
    return ("raised", type(exc).__name__, text, isinstance(exc, Exception))


def _serve(conn, spec: str, cwd: str, path: list[str]) -> None:  # pragma: no cover - runs in the child
    """The child's loop: import ``spec``, then answer ("call", arrays) / ("object", batch) messages until
    ("close",)."""
    enter_worker(cwd, path)
    from verify.cli._estimator_import import load_estimator

    conn.send(("started",))     # pgverify's own start-up is over: the time limit counts the user's code from here
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
            if message[0] == "object":              # a picklable batch (an LQ problem's LQEpisodes)
                batch = message[1]
                for array in vars(batch).values():
                    if isinstance(array, np.ndarray):
                        array.flags.writeable = False
            else:
                s_t, a_t, r_t, lengths, weights = message[1:]
                for array in (s_t, a_t, r_t, lengths, weights):
                    if array is not None:
                        array.flags.writeable = False       # the contract's read-only episodes, as in-process
                batch = Episodes(s_t, a_t, r_t, lengths, mdp, policy, weights)
            try:
                out = fn(batch)
                try:
                    reply = ("ok", np.asarray(out))
                except BaseException:  # noqa: BLE001 - not convertible: the parent's validation names it
                    reply = ("ok", out)
                conn.send(reply)
            except BaseException as exc:  # noqa: BLE001
                conn.send(raised(exc))
    conn.close()
    os._exit(0)             # no atexit handlers, no waiting for the user's threads


def _describe(exc: BaseException, spec: str) -> str:
    """The one line for an import that failed (``load_estimator``'s own UsageErrors already name the spec)."""
    if isinstance(exc, UsageError):
        return str(exc)
    if isinstance(exc, SystemExit):
        return f"--estimator {spec}: importing it called sys.exit({exc.code!r})"
    return f"--estimator {spec}: importing it raised {type(exc).__name__}: {exc}"


class Worker:
    """A spawned worker process running ``target(conn, *args)``, and the parent's end of its pipe.

    ``receive`` waits at most ``timeout`` seconds (then kills the worker: user code cannot swallow the limit); a
    worker that dies is reported with its exit status; ``close`` kills its whole process group.

    Args:
      label: how messages name the user's code (``--estimator est.py:f``, ``loss loss.py:f``).
      option: the option that sets ``timeout`` (named when it passes).
    """

    def __init__(self, target, args: tuple, *, label: str, timeout: float | None, option: str) -> None:
        self.label, self.timeout, self.option = label, timeout, option
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=target, args=(child, *args), daemon=True, name=f"pgverify {label}")
        self._proc.start()
        child.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, message) -> None:
        try:
            self._conn.send(message)
        except (BrokenPipeError, EOFError, OSError):
            raise self._died() from None

    def receive(self, what: str):
        if not self._conn.poll(self.timeout):
            self.close()
            raise UsageError(f"{what} took longer than {self.option} {self.timeout:g} s")
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
        return UsageError(f"{self.label} {how} during a call; the check did not run to completion")

    def user_error(self, reply) -> Exception:
        """The exception for a ("raised", ...) reply: ordinary exceptions under the user's type name (a
        ``UserCodeError``), a ``BaseException`` (``SystemExit`` included) as a ``UsageError`` naming it."""
        _, name, text, ordinary = reply
        if ordinary:
            return type(name, (UserCodeError,), {"__module__": "builtins"})(text)
        what = f"called sys.exit({text})" if name == "SystemExit" else f"raised {name}: {text}".rstrip(": ")
        return UsageError(f"{self.label} {what}; the check did not run to completion")

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


class SandboxedEstimator(Worker):
    """A callable ``episodes -> [N, *theta.shape]`` that runs ``spec`` in a worker process (see the module doc).

    Use as a context manager; the worker is killed (with its process group) on exit. Tabular ``Episodes`` are sent
    as arrays (the MDP and policy once); any other batch (an LQ problem's ``LQEpisodes``) is pickled whole.

    Args:
      spec: ``path/to/file.py:function`` or ``package.module:function``.
      timeout: seconds allowed for the import and for each call (None: no limit).
    """

    def __init__(self, spec: str, timeout: float | None = None) -> None:
        self.spec = spec
        super().__init__(_serve, (spec, os.getcwd(), list(sys.path)), label=f"--estimator {spec}", timeout=timeout,
                         option="--estimator-timeout")
        self._problem: tuple[Any, Any] | None = None
        try:
            self.timeout = None                     # the worker's interpreter and pgverify's imports: not the user's
            reply = self.receive("starting the estimator's worker process")
            self.timeout = timeout
            if reply[0] == "started":
                reply = self.receive(f"importing --estimator {spec}")
        except BaseException:
            self.close()
            raise
        if reply[0] == "error":
            self.close()
            raise UsageError(reply[1])
        self.__name__ = self.__qualname__ = spec.rpartition(":")[2] if reply[1] is None else reply[1]
        self.__doc__ = reply[2]

    def __call__(self, episodes) -> np.ndarray:
        if not isinstance(episodes, Episodes):
            self.send(("object", episodes))
        else:
            problem = (episodes.mdp, episodes.policy)
            if self._problem is None or self._problem[0] is not problem[0] or self._problem[1] is not problem[1]:
                self.send(("problem", *problem))
                self._problem = problem
            self.send(("call", np.asarray(episodes.s_t), np.asarray(episodes.a_t), np.asarray(episodes.r_t),
                       np.asarray(episodes.lengths), episodes.weights))
        reply = self.receive(f"one call of estimator {self.spec}")
        if reply[0] == "ok":
            return reply[1]
        raise self.user_error(reply)
