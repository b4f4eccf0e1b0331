"""What the ``pgverify`` process sets before any module loads: Ctrl-C handling and how memory is reused.

Imported first by ``verify/__init__.py``; acts only in the ``pgverify`` process itself (the console script or
``python -m verify``), never in a program that imports the library (both settings are process-wide and cannot be
undone, so a caller's process is not ours to change).

- A Ctrl-C while the modules load is one line and exit 130, not a traceback from an import. ``verify.cli.main``
  puts Python's own handler back once the command's modules are loaded (from there a KeyboardInterrupt is caught
  and reported).
- The commands whose arrays are bounded (``BOUNDED_COMMANDS``), and those on a small problem once it is loaded
  (``fit_memory_to``), reuse freed memory rather than hand it back to the kernel and fault it in again, and use no
  transparent huge pages (``reuse_memory``).
"""
import os
import sys

# The C module, not ``signal``: importing ``signal`` builds its enums (~1 ms, longer on a loaded machine), and a
# Ctrl-C in that window was a traceback from this very line (1 start-up in 100 measured, benchmarks/startup_sigint.py).
import _signal


def interrupted_at_start_up(signum, frame) -> None:
    os.write(2, b"pgverify: interrupted (Ctrl-C)\n")
    os._exit(130)


def _command_argv() -> list[str] | None:
    """The arguments of the ``pgverify`` command this process runs (after the program's name), or None when the
    process runs anything else (a program or test importing the library)."""
    argv = getattr(sys, "argv", None) or [""]
    if argv[0] == "-m":
        # ``python -m verify``: while the package is imported (before ``__main__`` runs) argv is only ["-m"]; the
        # interpreter's own arguments say which module it is about to run, and with which arguments.
        orig = list(getattr(sys, "orig_argv", ()))
        return next((orig[i + 2:] for i, (flag, module) in enumerate(zip(orig, orig[1:]))
                     if flag == "-m" and module in ("verify", "verify.__main__")), None)
    path = os.path.normpath(argv[0]) if argv[0] else ""
    if os.path.basename(path) == "pgverify" or path.endswith(os.path.join("verify", "__main__.py")):
        return list(argv[1:])
    return None


#: glibc's ``mallopt`` parameters (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Blocks up to this size come from the heap; larger ones are mapped and unmapped as before. 32 MiB is the most
#: glibc's own adaptive threshold grows to; fixing it there from the start means the first large arrays already
#: reuse the heap instead of being mapped and unmapped.
MMAP_THRESHOLD = 32 * 2**20
#: Free memory at the top of the heap is handed back to the kernel only above this (glibc: 128 KiB, adaptive).
TRIM_THRESHOLD = 2**30
#: The commands whose arrays are bounded (the built-in examples and the derivation's symbolic MDPs: at most tens of
#: MB at a time, allocated and freed thousands of times): they run with ``reuse_memory`` from the start. The
#: commands on a user's problem decide once the problem is loaded (``SMALL_PAIRS``).
BOUNDED_COMMANDS = frozenset({"report", "latex", "derivation"})
#: A command on a user's tabular problem of at most this many state-action pairs runs with ``reuse_memory`` too
#: (``verify.cli._args.load_problem_from_args``); a larger one keeps the defaults: at 10^6 states (4 10^6 pairs) the
#: same settings made building the model 1.1-1.4x, the exact gradient 1.0-1.4x and the estimator's moments
#: 1.8-2.9x as slow (huge pages spare TLB misses on arrays of hundreds of MB), at 10^5 states they were a wash, at
#: 10^4 states and on Taxi (3 000 pairs) a gain (``benchmarks/bench_scale.py --allocator both``, docs/performance.md
#: "Fresh pages").
SMALL_PAIRS = 10**5
#: The command this process runs (its arguments after the program's name), or None: a program importing the library.
COMMAND_ARGV = _command_argv()
_USER_HUGEPAGE = "NUMPY_MADVISE_HUGEPAGE" in os.environ        # before this module sets it


def reuse_memory() -> bool:
    """Memory freed is reused, not handed back to the kernel and faulted in again; no transparent huge pages.

    Why: in a virtual machine a fresh page costs a fault and the kernel zeroing it, and numpy asks for huge pages
    on every array of 4 MiB or more, which the kernel zeroes whole (2 MiB) on first touch however little of it
    the array uses. The bounded commands allocate and free arrays of a few MB thousands of times; under glibc's
    adaptive thresholds (each such block mapped and unmapped, or trimmed) and numpy's huge pages, a cold
    ``pgverify report`` spent 1.1-1.6 of its 5-7 CPU-s in the kernel (16 % of its samples in ``clear_page_erms``);
    with both settings here 0.34-0.46 s, about the same peak memory (577 -> 582 MiB) and more, cheaper faults
    (150 000 of 4 KiB against 120 000). ``benchmarks/bench_report_speed.py --previous`` measures the commands
    against a tree before.

    Before numpy is imported this sets ``NUMPY_MADVISE_HUGEPAGE=0``, which numpy reads then; after, numpy's own
    switch, which its import sets from that variable (``_set_madvise_hugepage``: private, so skipped if a numpy
    lacks it). A value the user gave the variable wins, as does glibc's malloc tuned by the user (``GLIBC_TUNABLES``,
    ``MALLOC_*_``). Returns whether glibc's thresholds were set (False off glibc: other C libraries keep their own
    policy).
    """
    if not _USER_HUGEPAGE:
        numpy = sys.modules.get("numpy")
        if numpy is None:
            os.environ["NUMPY_MADVISE_HUGEPAGE"] = "0"
        else:
            switch = getattr(numpy_multiarray(numpy), "_set_madvise_hugepage", None)
            if switch is not None:
                switch(False)
    if not sys.platform.startswith("linux") or "malloc" in os.environ.get("GLIBC_TUNABLES", "") \
            or any(name.startswith("MALLOC_") and name.endswith("_") for name in os.environ):
        return False
    import ctypes
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version           # glibc only (musl's mallopt accepts and ignores)
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def numpy_multiarray(numpy):
    """numpy's ``multiarray`` module, home of its huge-page switch (``numpy._core`` in numpy 2, ``numpy.core`` in
    numpy 1), or None."""
    core = getattr(numpy, "_core", None) or getattr(numpy, "core", None)
    return getattr(core, "multiarray", None)


def fit_memory_to(pairs: int) -> bool:
    """In the ``pgverify`` process, ``reuse_memory`` for a problem of at most ``SMALL_PAIRS`` state-action pairs;
    returns whether it applied (never in a program importing the library)."""
    if COMMAND_ARGV is None or pairs > SMALL_PAIRS:
        return False
    reuse_memory()
    return True


if COMMAND_ARGV is not None:
    if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
        _signal.signal(_signal.SIGINT, interrupted_at_start_up)
    if COMMAND_ARGV[:1] and COMMAND_ARGV[0] in BOUNDED_COMMANDS:      # the parser requires the command first
        reuse_memory()
