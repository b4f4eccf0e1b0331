r"""How the JAX adapter compiles: XLA options per kind of function, a persistent compilation cache, and a numpy
tier that does not compile at all.

A JAX ``check_loss`` on a small MDP is dominated by XLA compilations on its first call (the policy head, the
loss's vmapped ``value_and_grad``, the probes'). Three levers, none changing a verdict the check reaches (the
first two change no number; the third only round-off):

- **Compiler options** (``MAIN_COMPILE``, ``PROBE_COMPILE``): XLA's CPU backend with its legacy loop emitters
  instead of the fusion emitters (``xla_cpu_use_fusion_emitters``) and one LLVM code-generation split compiles the
  REINFORCE loss's vmapped ``value_and_grad`` in 0.15-0.19 CPU-s instead of 0.38-0.49 with the same run time
  (FrozenLake-v1's [16, 16, 100] chunks); functions that run a handful of times (the probes, the policy head)
  additionally skip XLA's backend optimisations (``PROBE_COMPILE``: 0.06 CPU-s for that same function, but 2.4
  times its run time, so the K batches do not use it). The options are XLA
  debug options; a jaxlib that does not know one is detected on the first compilation, and from then on every
  function is compiled with jax's defaults (``jit``).
- **A persistent cache** (``persistent_cache``): jax's own compilation cache (``jax_compilation_cache_dir``), in
  pgverify's cache directory (``cache_directory``: ``$PGVERIFY_CACHE_DIR/jax``, else
  ``$XDG_CACHE_HOME/pgverify/jax``, else ``~/.cache/pgverify/jax``, the rule of ``derive.proof_cache``), with every
  compilation written (``jax_persistent_cache_min_compile_time_secs`` = 0): the first check in a later process
  loads the executables instead of compiling them, as numba's ``cache=True`` does. Jax keys an entry by the
  lowered program, the compile options, the device and the jax/jaxlib versions, so an entry is never stale.

  The cache is scoped to pgverify's own calls: the settings are thread-local while a check runs and jax's cache
  object is reset when it ends, so the user's later compilations are neither read from nor written to it (another
  thread compiling during a check may read it, and write what takes jax's default 1 s to compile). It
  stays off when ``PGVERIFY_NO_CACHE`` is set (the test suite sets it), and when the user configured jax's cache
  themselves (``jax_compilation_cache_dir``/``JAX_COMPILATION_CACHE_DIR``, or ``jax_enable_compilation_cache``
  False): then jax's own settings apply unchanged. ``pgverify cache info|clear`` cover it. As jax warns, a
  compilation cache is trusted code: do not point ``PGVERIFY_CACHE_DIR`` at a directory others can write.

- **The numpy tier** (``numpy_tier``): within it, ``jit``'s functions are traced by ``jax.jit`` as usual
  (``Traced``: the same trace a compiled call of that signature later reuses) but their jaxprs run on numpy
  (``verify.frameworks._numpy_eval``: about a millisecond to prepare, against 0.2 CPU-s of lowering and
  compilation; a call 2-3x XLA's). ``check_loss`` uses it for a loss's first check in a process, which runs each
  program a few dozen times: compiling would cost more than the whole check. A jaxpr with a primitive the
  evaluator does not implement exactly, or an evaluation that fails (the evaluator's failure: the loss already
  ran when it was traced), is compiled as outside the tier.

One more cost is Python's, not XLA's: tracing and lowering leave tens of thousands of long-lived objects (jaxprs,
MLIR modules, jax's caches), which trips CPython's full collection, a pass over every object of the process
(~3*10^5 after importing jax, SciPy and numpy: 0.17-0.22 CPU-s, as much as the numpy check of
``benchmarks/bench_frameworks.py`` itself). ``frozen_heap`` moves the objects that existed before a check out of
the collector's sight while it runs (``gc.freeze``) and back afterwards (``gc.unfreeze``): the collector still runs
and still frees every cycle the check creates, it only does not re-scan the caller's heap, none of which the check
can make garbage. Left alone when the collector is disabled or the caller froze objects themselves.
"""
from __future__ import annotations

import contextlib
import gc
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

__all__ = ["MAIN_COMPILE", "PROBE_COMPILE", "cache_directory", "cache_info", "clear_cache", "count_compilations",
           "frozen_heap", "jit", "numpy_tier", "persistent_cache"]

# XLA debug options (``jax.jit(..., compiler_options=)``); the numbers in the module docstring
MAIN_COMPILE = {"xla_cpu_use_fusion_emitters": False, "xla_cpu_parallel_codegen_split_count": 1}
PROBE_COMPILE = {**MAIN_COMPILE, "xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}

ENV_DIR = "PGVERIFY_CACHE_DIR"      # the same variables as derive.proof_cache (which verify cannot import cheaply:
ENV_OFF = "PGVERIFY_NO_CACHE"       # ``derive`` loads SymPy); tests/test_frameworks_jax_compile.py checks they agree
_SUBDIR = "jax"
_CACHE_SUFFIX, _ATIME_SUFFIX, _TMP_PREFIX = "-cache", "-atime", ".tmp-"     # jax's LRUCache file names

# jax.monitoring's events: one per executable built or loaded (``_cached_compilation``), one per persistent-cache hit
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"

_OPTIONS_OK = [True]     # False once jaxlib rejected an option: every later function gets jax's defaults
_ACTIVE = [0]            # nesting depth of persistent_cache() scopes that switched the cache on
_FROZEN = [False]        # a frozen_heap() scope froze the heap (the outermost one unfreezes it)
_TIER = threading.local()   # .numpy: nesting depth of this thread's numpy_tier() scopes


def jit(fn, options: dict | None, **kwargs):
    """``jax.jit(fn, compiler_options=options, **kwargs)``, recompiled with jax's defaults when this jaxlib does not
    know one of the options (XLA reports it at the first compilation, before any user code has run)."""
    import jax

    state = {"fn": jax.jit(fn, compiler_options=options if _OPTIONS_OK[0] else None, **kwargs), "numpy": {}}
    static = frozenset(kwargs.get("static_argnums", ()))

    def call(*args):
        if getattr(_TIER, "numpy", 0):
            out = _numpy_call(state, static, args)
            if out is not None:
                return out
        try:
            return state["fn"](*args)
        except Exception as exc:  # noqa: BLE001 - only an unknown option is handled here; the rest propagates
            if not options or "No such compile option" not in str(exc):     # XLA's words
                raise
            _OPTIONS_OK[0] = False
            state["fn"] = jax.jit(fn, **kwargs)
            return state["fn"](*args)
    return call


@contextlib.contextmanager
def numpy_tier():
    """Within this block, functions made by ``jit`` run on numpy instead of XLA: each call traces the function
    (once per argument signature, as ``jax.jit`` does) and evaluates its jaxpr with
    ``verify.frameworks._numpy_eval``, so nothing is lowered or compiled; a jaxpr with a primitive that evaluator
    does not implement is compiled as outside the block. This thread only (module docstring: the numpy tier)."""
    _TIER.numpy = getattr(_TIER, "numpy", 0) + 1
    try:
        yield
    finally:
        _TIER.numpy -= 1


def _numpy_call(state: dict, static: frozenset, args: tuple):
    """``jit``'s call in the numpy tier: the outputs (the function's pytree of numpy arrays), or None when the
    jaxpr has an unsupported primitive (the caller compiles it). The trace is jax's own (``Traced``): a later
    compiled call of the same signature reuses it, and the user's tracing errors propagate exactly as from
    ``jax.jit``."""
    import jax

    from verify.frameworks._numpy_eval import Unsupported, numpy_program

    dynamic = [a for i, a in enumerate(args) if i not in static]
    leaves, tree = jax.tree_util.tree_flatten(dynamic)
    key = (tree, tuple(args[i] for i in sorted(static)),
           tuple((type(x), np.shape(x), getattr(x, "dtype", None)) for x in leaves))
    entry = state["numpy"].get(key)
    if entry is None:
        traced = state["fn"].trace(*args)
        try:
            entry = (numpy_program(traced.jaxpr), jax.tree_util.tree_structure(traced.out_info))
        except Unsupported:
            entry = False
        state["numpy"][key] = entry
    if entry is False:
        return None
    program, out_tree = entry
    try:
        out = program(*leaves)          # inf/nan silently, as XLA (the callers check finiteness)
    except Exception:  # noqa: BLE001 - the loss ran when it was traced: a failure here is the evaluator's, never
        state["numpy"][key] = False     # the user's, so it must not be reported as theirs; XLA evaluates it
        return None
    return jax.tree_util.tree_unflatten(out_tree, out)


def cache_directory() -> Path:
    """Where pgverify's JAX compilation cache lives (not created here): ``derive.proof_cache``'s root (the XDG
    spec: an absolute ``XDG_CACHE_HOME`` only), ``/jax`` instead of ``/proofs``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    home = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return Path(os.environ.get(ENV_DIR) or home / "pgverify") / _SUBDIR


def cache_enabled() -> bool:
    """False under ``PGVERIFY_NO_CACHE`` (any value but "", "0")."""
    return os.environ.get(ENV_OFF, "") in ("", "0")


def _user_configured(config, compilation_cache) -> bool:
    """Whether jax's compilation cache is the user's business: a directory set (the flag, its environment
    variable or ``set_cache_dir``), the cache switched off, or a cache object already initialised."""
    return (config.compilation_cache_dir.value is not None or not config.enable_compilation_cache.value
            or getattr(compilation_cache, "_cache", None) is not None)


def _atomic_cache(path: str):
    """jax's file cache (``jax._src.lru_cache.LRUCache``, no size limit) writing each entry atomically (a temporary
    file, then ``os.replace``): a process interrupted mid-write, or two processes writing the same entry, never
    leave a truncated executable for the next one to load. An entry jax could not read (it warns once and
    compiles) is replaced by the new one, not kept; a write that fails (a full disk, a read-only directory) only
    means nothing is stored."""
    from jax._src.lru_cache import LRUCache

    class AtomicCache(LRUCache):
        def put(self, key: str, value: bytes) -> None:
            if not key:
                return
            tmp = None
            try:
                fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=os.fspath(self.path))
                with os.fdopen(fd, "wb") as f:
                    f.write(value)
                os.replace(tmp, Path(os.fspath(self.path)) / f"{key}{_CACHE_SUFFIX}")
            except OSError:
                if tmp is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
    return AtomicCache(path, max_size=-1)


@contextlib.contextmanager
def persistent_cache():
    """Within this block (on this thread) jax reads and writes compiled executables in ``cache_directory()``
    unless the cache is off or the user configured jax's (module docstring)."""
    scope = _enter() if not _ACTIVE[0] and cache_enabled() else None
    if scope is None:
        yield
        return
    from jax._src import compilation_cache

    _ACTIVE[0] += 1
    try:
        with scope:
            yield
    finally:
        _ACTIVE[0] -= 1
        compilation_cache.reset_cache()        # the user's later compilations do not see pgverify's cache


@contextlib.contextmanager
def frozen_heap():
    """Within this block, CPython's collector does not scan the objects that existed before it (``gc.freeze``;
    module docstring); they are handed back to it on exit (``gc.unfreeze``), oldest generation. Nothing happens when
    the collector is disabled, the caller has frozen objects (``gc.get_freeze_count()``) or an enclosing block (or
    another thread's) already froze the heap."""
    if _FROZEN[0] or not gc.isenabled() or gc.get_freeze_count():
        yield
        return
    _FROZEN[0] = True
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        _FROZEN[0] = False


def _enter() -> contextlib.ExitStack | None:
    """Switch jax's cache to ``cache_directory()`` (thread-local settings, returned to be exited; the cache object
    itself installed), or None when the user configured jax's cache or this jax has no such internals."""
    try:
        from jax._src import compilation_cache, config
        if _user_configured(config, compilation_cache):
            return None
        path = str(cache_directory())
        cache = _atomic_cache(path)
        with compilation_cache._cache_initialized_mutex:
            compilation_cache._cache = cache
            compilation_cache._cache_initialized = True
        scope = contextlib.ExitStack()
        scope.enter_context(config.compilation_cache_dir(path))
        scope.enter_context(config.persistent_cache_min_compile_time_secs(0.0))
        return scope
    except Exception:  # noqa: BLE001 - another jax, an unwritable directory: no persistent cache, nothing else changes
        return None


def _entries(root: Path) -> list[Path]:
    """jax's files in ``root`` (entries, access times, its lock file) and our temporary files; nothing else."""
    if not root.is_dir():
        return []
    return [p for p in root.iterdir() if p.is_file() and (p.name.endswith((_CACHE_SUFFIX, _ATIME_SUFFIX))
                                                          or p.name.startswith(_TMP_PREFIX) or p.name == ".lockfile")]


def cache_info() -> dict:
    """The directory, its number of entries (compiled executables) and bytes, and whether the cache is on."""
    files = _entries(cache_directory())
    return {"directory": str(cache_directory()), "entries": sum(p.name.endswith(_CACHE_SUFFIX) for p in files),
            "bytes": sum(p.stat().st_size for p in files), "enabled": cache_enabled()}


def clear_cache() -> int:
    """Delete the JAX compilation cache's files (only jax's files in ``cache_directory()``); the number of entries
    removed."""
    n = 0
    for p in _entries(cache_directory()):
        with contextlib.suppress(OSError):
            p.unlink()
            n += p.name.endswith(_CACHE_SUFFIX)
    return n


@contextlib.contextmanager
def count_compilations():
    """Within the block, count the XLA executables jax compiles (``"compiled"``) and those it loads from a
    persistent cache (``"loaded"``), from jax's own monitoring events (every thread; a jit cache hit in memory is
    neither). Yields the dict, filled in as they happen."""
    from jax import monitoring

    out = {"compiled": 0, "loaded": 0}

    def on_duration(event, _secs, **_kw):
        if event == BACKEND_COMPILE_EVENT:
            out["compiled"] += 1

    def on_event(event, **_kw):
        if event == CACHE_HIT_EVENT:       # recorded before the executable's own compile event: moved over
            out["loaded"] += 1
            out["compiled"] -= 1

    monitoring.register_event_duration_secs_listener(on_duration)
    monitoring.register_event_listener(on_event)
    try:
        yield out
    finally:
        monitoring.unregister_event_duration_listener(on_duration)
        monitoring.unregister_event_listener(on_event)
