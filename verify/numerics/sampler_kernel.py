"""The sampler's optional compiled kernel (numba): the same episodes as the numpy path, bit for bit, faster.

``verify.numerics.sampler.compiled_kernel`` imports this module when a run may use it (numba installed: ``pip
install 'pgverify[fast]'``; ``PGVERIFY_NO_NUMBA`` unset; the run long enough or ``PGVERIFY_NUMBA`` set); nothing
imports it at start-up. It does what the vectorised path does, in the same order, one compiled loop per chunk
instead of about a dozen numpy passes per step:

- the uniforms come from the caller's ``numpy.random.Generator`` itself. For numpy's ``PCG64`` (what
  ``default_rng`` makes) the kernel runs PCG64 inlined, from the state ``bit_generator.state`` reports, and writes
  the state it ends in back: numpy's 128-bit LCG step and XSL-RR output, the same doubles as numpy's
  ``pcg64_next_double``, the buffered 32-bit half untouched (as doubles leave it). Any other bit generator: its
  own C function ``next_double`` through ``BitGenerator.ctypes`` (the function numpy's ``Generator.random`` calls
  once per element). Both under the bit generator's lock. So the k-th uniform is the k-th uniform numpy would
  have drawn, whatever the bit generator, and the stream left behind is where numpy would have left it;
- time-major, like the numpy path: at step t every running episode, in episode order, takes the next uniform
  and draws its table entry (alias: column ``int(u K)`` capped at K - 1, kept when the fractional part is below
  ``accept``; keys: the first key above s + u over all rows, capped at the row's last entry), then the episodes
  that ended leave the running list, which keeps its order. The arithmetic is the numpy path's (the same float
  operations in the same order, no fast-math), so every draw is the same;
- each step's entry is logged, either at (episode, t) in rows of cap entries (``STRIDE_MIN_FILL``: where
  episodes fill their rows, Taxi) or as time-major (episode, entry) pairs (short episodes, FrozenLake); a second
  loop writes the log into the estimators' step layout (``Steps``: longest episode first), s, a and r gathered
  from the entry, by streaming stores (``_stream``) into a block no earlier batch uses any longer
  (``_step_block``).

Measured per uniform (a compiled loop summing 10^7 of them, 2-core test machine): the inlined PCG64 1.3 ns, the
``ctypes`` call 5.1 ns (its state makes a trip through memory per call, and the call is opaque to the compiler),
numpy's bulk ``Generator.random`` 1.8 ns; numba's own ``np.random.Generator`` support reproduces the stream too
but cost 8.3 ns. Array indices are cast to unsigned (``U``): numba adds a negative-index wraparound to every
signed index, and dropping it took Taxi from 8.3 to 6.3 ns a step.

Compilation: on first use (~0.8 CPU-s after importing numba, 0.14 s), cached on disk by numba (``cache=True``)
next to this file, or where ``NUMBA_CACHE_DIR`` says, or in numba's per-user cache directory when this file's
directory is not writable (an installed package); when no location is writable the kernels compile without a
disk cache. Later processes load them in ~0.25 CPU-s. ``benchmarks/bench_sampler.py`` reports both.
"""
from __future__ import annotations

import ctypes
import platform
import sys
import threading

import numpy as np

try:
    import numba
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic, overload
except ImportError:     # imported without numba only by pytest's doctest collection; ``compiled_kernel`` says None
    numba = None

__all__ = ["PCG64_MULTIPLIER", "STRIDE_MAX_CAP", "STRIDE_MIN_FILL", "draw_log", "guess_fill", "layout", "longest_first",
           "longest_first_into", "pcg64_doubles", "reorder", "run_chunk", "steps_from_log"]

# PCG64's 128-bit LCG multiplier (O'Neill, "PCG: A family of simple fast space-efficient statistically good
# algorithms for random number generation", HMC-CS-2014-0905, 2014; numpy's pcg64.h, PCG_DEFAULT_MULTIPLIER_128).
PCG64_MULTIPLIER = 0x2360ED051FC65DA44385DF649FCCF645
_MASK64 = 2**64 - 1
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
# The strided log: each step's entry at (episode, t) in rows of cap entries, so that no (episode, entry) log and no
# scatter are needed, only one pass over the rows. It pays where episodes fill their rows (Taxi, 98 %: the layout
# 4.5 -> 3.3 ns a step); where they are short (FrozenLake, 8 % of its cap of 100) the rows spread the steps over
# twelve times the memory and the layout pass took 5-9 ns instead of 4.5. So it is used for caps up to
# STRIDE_MAX_CAP (a row within a 4 KiB page) once the run's earlier chunks filled at least STRIDE_MIN_FILL of
# their rows (the first chunk: as ``guess_fill`` expects); otherwise the time-major (episode, entry) log, which
# touches only the steps taken.
STRIDE_MAX_CAP = 1024
STRIDE_MIN_FILL = 0.25


def _jit(fn):
    """``numba.njit`` with numba's disk cache where numba finds a writable place for it, else without."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:        # numba: "cannot cache function ...: no locator available for file ..."
        return numba.njit(nogil=True)(fn)


# Array indices cast to unsigned: numba then skips the negative-index wraparound it adds to every signed index (a
# compare and a select per access; 0.5 ns a step of the layout pass on Taxi). Every index here is non-negative.
U = np.uintp


def _draw_log(fn, st, pcg, gen, K, accept, alias, keys, last, next_or_end, alive, rows, cap, left,
              log_e, log_k, running, lengths, often_ends, strided, use_alias):
    """Run the episodes of one chunk time-major from their first rows; log each step's table entry.

    Args:
      fn, st: the bit generator's ``next_double`` and state addresses (used when not ``pcg``).
      pcg, often_ends, strided, use_alias: compile-time flags (``_on``: None is off, True on), so that each
        setting compiles its own loop without the others' branches (Taxi's draw: 15 % faster than with run-time
        flags).
      pcg: draw from ``gen`` with the inlined PCG64 instead; gen: uint64 [4], PCG64's state and increment as
        (high, low) halves; its state is advanced in place.
      K: the alias width, 0 for the keys layout (``use_alias`` off); accept, alias / keys, last: the layout's
        arrays (the other two may be empty).
      next_or_end: ``JointTable.next_or_end``.
      alive, rows: the running episodes (ascending) and their first rows [m]; overwritten.
      cap: the step cap; left: the work left (steps), the loop stops once the steps taken exceed it.
      log_e, log_k: the log. Strided (``strided``; ``log_e`` empty): the entry of episode e's step t at
        ``log_k[e cap + t]``, n cap entries; else time-major, (episode, entry) pairs, at least cap m entries.
        running [cap]: running episodes per step; lengths [n]: each episode's length is written there.
      often_ends: episodes are short (their ends unpredictable): keep the running ones without a branch.

    Returns:
      (steps run T, episodes still running, steps taken, whether the work limit stopped the loop).
    """
    m = alive.size
    hi, lo, inc_hi, inc_lo = gen[0], gen[1], gen[2], gen[3]
    pos = 0
    taken = 0
    T = 0
    stopped = False
    for t in range(cap):
        if m == 0:
            break
        taken += m
        if taken > left:
            stopped = True
            break
        running[t] = m
        kept = 0
        for i in range(m):
            if _on(pcg):
                hi, lo = _pcg64_step(hi, lo, inc_hi, inc_lo)
                u = _pcg64_double(hi, lo)
            else:
                u = _next_double(fn, st)
            row = rows[U(i)]
            if _on(use_alias):
                u *= K
                j = int(u)
                if j > K - 1:            # u K can round up to K
                    j = K - 1
                u -= j                   # the fractional part: a second uniform
                k = row + j
                if not u < accept[U(k)]:
                    k = alias[U(k)]
            else:
                x = u + row
                lo_, hi_ = 0, keys.size  # bisect right: the number of keys <= x
                while lo_ < hi_:
                    mid = (lo_ + hi_) >> 1
                    if x < keys[U(mid)]:
                        hi_ = mid
                    else:
                        lo_ = mid + 1
                k = min(lo_, last[U(row)])
            e = alive[U(i)]
            if _on(strided):
                log_k[U(e * cap + t)] = k
            else:
                log_e[U(pos)] = e
                log_k[U(pos)] = k
                pos += 1
            nxt = next_or_end[U(k)]
            if _on(often_ends):          # no branch to mispredict: always written, kept only while running
                alive[U(kept)] = e
                rows[U(kept)] = nxt
                kept += nxt >= 0
                lengths[U(e)] = t + 1
            elif nxt >= 0:
                alive[U(kept)] = e
                rows[U(kept)] = nxt
                kept += 1
            else:
                lengths[U(e)] = t + 1
        m = kept
        T = t + 1
    gen[0], gen[1] = hi, lo
    if stopped:
        return T, m, taken, True
    for i in range(m):
        lengths[alive[i]] = T
    return T, m, taken, False


def _on(flag) -> bool:
    """Whether a compile-time flag is set: None is off, any other value on. Compiled, the flag's type decides
    (``_on_typed``), so each setting has its own loop with the other settings' branches removed."""
    return flag is not None


def _flag(on: bool):
    """A compile-time flag for ``_on``: True or None."""
    return True if on else None


def _reorder(T, running, log_e, log_k, order, first, lengths, state, action, reward, next_state,
             k_out, n_out, t_out, s_out, a_out, r_out, final):
    """Write the time-major log into the ``Steps`` layout (episode ``order[j]`` from ``first[j]`` on).

    One scatter of the entries to their places (``k_out``), then one sequential pass over the layout that writes
    n, t, s, a, r (non-temporal stores, ``_stream``) and each episode's final state: five scattered arrays cost
    twice as much.
    """
    start = np.empty(order.size, dtype=np.intp)
    for j in range(order.size):
        start[order[j]] = first[j]
    pos = 0
    for t in range(T):
        for _ in range(running[t]):
            k_out[U(start[U(log_e[U(pos)])] + t)] = log_k[U(pos)]
            pos += 1
    for j in range(order.size):
        e = order[j]
        q = first[j]
        L = lengths[e]
        for t in range(L):
            i = U(q + t)
            k = U(k_out[i])
            _stream(n_out, i, e)
            _stream(t_out, i, t)
            _stream(s_out, i, state[k])
            _stream(a_out, i, action[k])
            _stream(r_out, i, reward[k])
        if L > 0:
            final[e] = next_state[k_out[q + L - 1]]
    _stream_fence()


def _layout(cap, log_k, order, first, lengths, state, action, reward, next_state, n_out, t_out, s_out, a_out,
            r_out, final):
    """Write the strided log (episode e's step t at ``log_k[e cap + t]``) into the ``Steps`` layout (episode
    ``order[j]`` from ``first[j]`` on): one pass over the log in episode order, each episode's steps copied as one
    run, by non-temporal stores (``_stream``). (Reading the log in layout order instead costs a cache miss per
    episode: 2-3x slower on FrozenLake.) Its
    inner loop repeats ``_reorder``'s on purpose: one helper for both, inlined or called, made FrozenLake's
    time-major path 1.3-1.9x slower (A/B runs, 200 000 episodes)."""
    start = np.empty(order.size, dtype=np.intp)
    for j in range(order.size):
        start[order[j]] = first[j]
    for e in range(lengths.size):
        q = start[e]
        L = lengths[e]
        b = e * cap
        for t in range(L):
            k = U(log_k[U(b + t)])
            i = U(q + t)
            _stream(n_out, i, e)
            _stream(t_out, i, t)
            _stream(s_out, i, state[k])
            _stream(a_out, i, action[k])
            _stream(r_out, i, reward[k])
        if L > 0:
            final[e] = next_state[log_k[b + L - 1]]
    _stream_fence()



def _longest_first(lengths, cap, order, first):
    """``episodes.longest_first`` by a counting sort (lengths are at most cap): episodes longest first, ties in
    episode order, into ``order``; where each one's steps start into ``first``. O(n + cap) instead of a sort and
    three numpy passes: 0.026 ms instead of 0.065 for 20 000 FrozenLake episodes (0.25 ns a step; small)."""
    count = np.zeros(cap + 1, dtype=np.intp)
    for e in range(lengths.size):
        count[U(lengths[U(e)])] += 1
    slot = np.empty(cap + 1, dtype=np.intp)
    step = np.empty(cap + 1, dtype=np.intp)
    j = 0
    q = 0
    for L in range(cap, -1, -1):
        slot[U(L)] = j
        step[U(L)] = q
        j += count[U(L)]
        q += count[U(L)] * L
    for e in range(lengths.size):
        L = U(lengths[U(e)])
        i = U(slot[L])
        order[i] = e
        first[i] = step[L]
        slot[L] += 1
        step[L] += L


if numba is not None:
    @intrinsic
    def _next_double(typingctx, fn_address, state_address):
        """``bitgen->next_double(bitgen->state)``: one uniform in [0, 1) from a numpy bit generator's C interface."""
        sig = types.float64(types.uintp, types.uintp)

        def codegen(context, builder, signature, args):
            void_p = ir.IntType(8).as_pointer()
            fn_type = ir.FunctionType(ir.DoubleType(), [void_p])
            fn = builder.inttoptr(args[0], fn_type.as_pointer())
            return builder.call(fn, [builder.inttoptr(args[1], void_p)])

        return sig, codegen

    @intrinsic
    def _mulhi(typingctx, a, b):
        """The high 64 bits of the 128-bit product of two uint64 (one ``mul`` on x86-64)."""
        sig = types.uint64(types.uint64, types.uint64)

        def codegen(context, builder, signature, args):
            i128 = ir.IntType(128)
            p = builder.mul(builder.zext(args[0], i128), builder.zext(args[1], i128))
            return builder.trunc(builder.lshr(p, ir.Constant(i128, 64)), ir.IntType(64))

        return sig, codegen

    @intrinsic
    def _stream(typingctx, arr, index, value):
        """``arr[index] = value`` as a non-temporal store (LLVM's ``!nontemporal``: ``movnti`` on x86-64).

        The step list is written once, sequentially, into memory no cache holds (Taxi: 27 MB a chunk): an ordinary
        store first reads each line it fills (read-for-ownership), a streaming store does not. The layout pass took
        2.3-2.9 ns a step for its 40 bytes with ordinary stores, 1.0-1.3 with these (Taxi, 3 432 episodes a chunk).
        """
        sig = types.void(arr, index, value)

        def codegen(context, builder, signature, args):
            array_type = signature.args[0]
            array = context.make_array(array_type)(context, builder, args[0])
            ptr = builder.gep(array.data, [args[1]])
            store = builder.store(context.cast(builder, args[2], signature.args[2], array_type.dtype), ptr)
            store.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def _stream_fence(typingctx):
        """``sfence`` on x86 (streaming stores are weakly ordered: fenced before the arrays are handed over), nothing
        elsewhere (LLVM lowers ``!nontemporal`` to ordered stores, or ignores it)."""
        sig = types.void()

        def codegen(context, builder, signature, args):
            if _X86:
                fence = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                       "llvm.x86.sse.sfence")
                builder.call(fence, [])
            return context.get_dummy_value()

        return sig, codegen

    @overload(_on)
    def _on_typed(flag):
        on = not isinstance(flag, (types.NoneType, types.Omitted))
        return lambda flag: on

    _M_HI, _M_LO = np.uint64(PCG64_MULTIPLIER >> 64), np.uint64(PCG64_MULTIPLIER & _MASK64)

    @numba.njit(inline="always")
    def _pcg64_step(hi, lo, inc_hi, inc_lo):
        """PCG64's LCG step on (high, low) halves: state <- state M + inc mod 2^128."""
        low = lo * _M_LO + inc_lo
        high = _mulhi(lo, _M_LO) + hi * _M_LO + lo * _M_HI + inc_hi + np.uint64(low < inc_lo)
        return high, low

    @numba.njit(inline="always")
    def _pcg64_double(hi, lo):
        """numpy's ``pcg64_next_double`` of the stepped state: the XSL-RR output's top 53 bits over 2^53."""
        x = hi ^ lo
        rot = hi >> np.uint64(58)
        out = (x >> rot) | (x << ((np.uint64(64) - rot) & np.uint64(63)))
        return np.float64(out >> np.uint64(11)) * (1.0 / 9007199254740992.0)

    def _pcg64_doubles(gen, out):
        """``out.size`` uniforms from ``gen`` (as ``_draw_log`` draws them), for the tests."""
        hi, lo, inc_hi, inc_lo = gen[0], gen[1], gen[2], gen[3]
        for i in range(out.size):
            hi, lo = _pcg64_step(hi, lo, inc_hi, inc_lo)
            out[i] = _pcg64_double(hi, lo)
        gen[0], gen[1] = hi, lo

    draw_log = _jit(_draw_log)
    reorder = _jit(_reorder)
    layout = _jit(_layout)
    longest_first_into = _jit(_longest_first)
    pcg64_doubles = _jit(_pcg64_doubles)

_EMPTY_F, _EMPTY_I = np.zeros(0), np.zeros(0, dtype=np.intp)


SCRATCH_KEEP = 64 * 2**20      # scratch blocks up to this size (virtual; only touched pages are resident) are kept
_KEPT = threading.local()       # for the next run on this thread


def _scratch(workspace: dict, size: int, dtype, count: int = 3) -> tuple[np.ndarray, ...]:
    """``count`` scratch arrays of ``size`` entries (the log's episodes and entries, the entries in layout order;
    or the strided log alone).

    Reused from chunk to chunk (``workspace``, one run) and, up to ``SCRATCH_KEEP``, from run to run on a thread:
    a fresh page costs a fault on first touch (~1.2 us per 4 KiB page on the 2-core test machine, ~2.5 ns a
    step for these 12 bytes), which a reused block has already paid.
    """
    dtype = np.dtype(dtype)
    nbytes = count * size * dtype.itemsize
    block = workspace.get("scratch")
    if block is None or block.nbytes < nbytes:
        block = getattr(_KEPT, "block", None)
        if block is None or block.nbytes < nbytes:
            block = np.empty(nbytes, dtype=np.uint8)
        workspace["scratch"] = block
        _KEPT.block = block if block.nbytes <= SCRATCH_KEEP else None
    return tuple(block[i * size * dtype.itemsize:(i + 1) * size * dtype.itemsize].view(dtype) for i in range(count))


def _arrays(size: int, dtypes, workspace: dict | None = None) -> list[np.ndarray]:
    """Arrays of ``size`` entries of each dtype, carved from one allocation (``_step_block``'s with ``workspace``).

    One block rather than five: numpy asks the kernel for transparent huge pages on blocks of 4 MiB and more, and
    on the 2-core test machine a first touch costs ~1.2 us per 4 KiB page, ~13 ns a step for the step list's 40
    bytes when each array is smaller than that (FrozenLake's 20 000 episodes: 1.2 MB each).
    """
    dtypes = [np.dtype(d) for d in dtypes]
    offsets = np.cumsum([0] + [-(-size * d.itemsize // 8) * 8 for d in dtypes])
    nbytes = int(offsets[-1])
    block = np.empty(nbytes, dtype=np.uint8) if workspace is None else _step_block(workspace, nbytes)
    return [block[int(o):int(o) + size * d.itemsize].view(d) for o, d in zip(offsets, dtypes)]


_POOL_PROBE = [np.empty(0, dtype=np.uint8)]
_UNSHARED = sys.getrefcount(_POOL_PROBE[0])     # the count of a pool entry nothing else refers to (the same call)
STEP_BLOCKS_KEPT = 2        # the batch its caller still holds while the next is written, and that next one
STEP_BLOCK_KEEP = SCRATCH_KEEP // STEP_BLOCKS_KEPT     # blocks up to this size are kept for the thread's next run


def _step_block(workspace: dict, nbytes: int) -> np.ndarray:
    """A block of at least ``nbytes`` for a chunk's step list: an earlier block that no batch uses any longer (its
    reference count says that no array views it), else a new one.

    Every step-list array is a view of its block (numpy's ``base``), and so is every view of those, so a block no
    array refers to is free to overwrite; one a caller still holds is never reused. A new block's pages are
    zeroed by the system on first touch (Taxi: 29 MB a chunk, 0.7-1.5 ns a step); ``for batch in
    iter_episode_chunks(...)`` holds one batch while the next is written, so two blocks serve a whole run. Blocks
    up to ``STEP_BLOCK_KEEP`` stay with the thread for its next run, as the scratch log does (``SCRATCH_KEEP``:
    at most 64 MiB in all); larger ones only within the run (``workspace``).
    """
    kept = _KEPT.__dict__.setdefault("step_blocks", [])
    own = workspace.setdefault("step blocks", [])
    for pool in (kept, own):
        for i in range(len(pool)):
            if pool[i].nbytes >= nbytes and sys.getrefcount(pool[i]) == _UNSHARED:
                return pool[i]
    # Headroom: a chunk's steps vary from chunk to chunk (Taxi: by ~1 %), and a block too small for the next
    # chunk would be replaced (its pages zeroed again). Untouched pages cost nothing.
    block = np.empty(nbytes + nbytes // 16, dtype=np.uint8)
    pool = kept if block.nbytes <= STEP_BLOCK_KEEP else own
    for i in range(len(pool)):
        if sys.getrefcount(pool[i]) == _UNSHARED:     # free but too small: replaced
            pool[i] = block
            return block
    if len(pool) < STEP_BLOCKS_KEPT:
        pool.append(block)
    return block


def _index_dtype(table, n: int):
    """int32 for the log when table entries and episodes fit (half the memory traffic), else intp."""
    return np.int32 if max(table.next_or_end.size, n) < 2**31 else np.intp


def _pcg64_halves(state: dict) -> np.ndarray:
    """PCG64's ``bit_generator.state`` as uint64 [state high, state low, increment high, increment low]."""
    x, inc = state["state"]["state"], state["state"]["inc"]
    return np.array([x >> 64, x & _MASK64, inc >> 64, inc & _MASK64], dtype=np.uint64)


GUESS_ROWS = 4096      # rows ``guess_fill`` looks at, at most


def guess_fill(table, cap: int) -> float:
    """A rough guess of the fraction of their cap the episodes run, for the first chunk's choice of log (speed only:
    later chunks use the fill the earlier ones measured): with q the chance that a step ends the episode, averaged
    over up to ``GUESS_ROWS`` rows that have entries, a capped geometric length, (1 - (1 - q)^cap) / (q cap).

    Taxi (uniform policy, H = 200): q = 0.0037, guess 0.71, measured 0.99; FrozenLake (H = 100): q = 0.23, guess
    0.04, measured 0.08: both on the right side of ``STRIDE_MIN_FILL``. For Taxi the first chunk's layout pass
    is then the strided one (about 1.5 instead of 4.5 ns a step).
    """
    rows = np.flatnonzero(table.n_entries > 0)
    if rows.size == 0:
        return 1.0
    rows = rows[::max(1, rows.size // GUESS_ROWS)]
    if table.width:        # alias: column j kept with probability accept, else its alias
        k = (rows[:, None] * table.width + np.arange(table.width)).ravel()
        accept = table.accept[k]
        ends = accept * table.ends[k] + (1.0 - accept) * table.ends[table.alias[k]]
        q = float(ends.mean())
    else:
        p = table.probabilities()
        q = float(np.bincount(table.state, p * table.ends, minlength=table.n_entries.size)[rows].mean())
    if q <= 0.0:
        return 1.0
    return float(-np.expm1(cap * np.log1p(-q)) / (q * cap)) if q < 1.0 else 1.0 / cap


def run_chunk(table, alive: np.ndarray, rows: np.ndarray, n: int, cap: int, left: float,
              rng: np.random.Generator, workspace: dict) -> tuple:
    """Sample one chunk's steps with the compiled kernels, consuming ``rng`` exactly as the numpy path does.

    The uniforms: for numpy's ``PCG64`` (``default_rng``'s) the kernel runs PCG64 itself, inlined, from the state
    ``bit_generator.state`` reports, and writes the state it ends in back (the 128-bit LCG step and the XSL-RR
    output of numpy's ``pcg64_next_double``; the buffered 32-bit half, ``has_uint32``/``uinteger``, which doubles
    never touch, is kept): the same doubles, without a function call and a trip through memory per uniform.
    Any other bit generator is called through ``BitGenerator.ctypes``. Both under the bit generator's lock.

    Args:
      table: the ``JointTable``; alive, rows: the episodes not terminal at s_0 and their first rows;
      n: episodes in the chunk; cap: the step cap; left: the work left; rng: the generator (advanced in place);
      workspace: scratch arrays kept from one chunk to the next (a dict, empty at first).

    Returns:
      ``(stopped, taken, still_running, lengths, log)``: ``stopped`` says the work limit ended the loop (nothing
      else is valid then); ``log`` is what ``steps_from_log`` needs. None, with ``rng`` untouched, when the log's
      address space cannot be had.
    """
    m = alive.size
    alive = np.array(alive, dtype=np.intp)
    rows = np.array(rows, dtype=np.intp)
    index = _index_dtype(table, n)
    if cap <= STRIDE_MAX_CAP and "fill" not in workspace:
        workspace["fill"] = guess_fill(table, cap)
    strided = cap <= STRIDE_MAX_CAP and workspace["fill"] >= STRIDE_MIN_FILL
    # Time-major: m cap entries each (untouched pages cost nothing, and the chunk budget counts cap steps per
    # episode); strided: n cap (see STRIDE_MIN_FILL). An explicit chunk with a long cap can ask for more address
    # space than the system grants: then the numpy path (nothing is drawn before this point, so it draws the same).
    try:
        if strided:
            log_e, (log_k,), k_out = np.zeros(0, dtype=index), _scratch(workspace, n * cap, index, 1), None
        else:
            log_e, log_k, k_out = _scratch(workspace, m * cap, index)
    except MemoryError:
        return None
    running = np.zeros(cap, dtype=np.intp)
    lengths = np.zeros(n, dtype=np.intp)
    if table.width:
        arrays = (table.accept, table.alias, _EMPTY_F, _EMPTY_I)
    else:
        arrays = (_EMPTY_F, _EMPTY_I, table.keys, table.last)
    bitgen = rng.bit_generator
    with bitgen.lock:
        pcg = type(bitgen) is np.random.PCG64
        if pcg:
            state = bitgen.state
            gen, fn, address = _pcg64_halves(state), 0, 0
        else:
            iface = bitgen.ctypes
            gen = np.zeros(4, dtype=np.uint64)
            fn, address = ctypes.cast(iface.next_double, ctypes.c_void_p).value, iface.state_address
        T, still, taken, stopped = draw_log(fn, address, _flag(pcg), gen, table.width, *arrays, table.next_or_end,
                                            alive, rows, cap, float(left), log_e, log_k, running, lengths,
                                            _flag(not strided), _flag(strided), _flag(table.width > 0))
        if pcg:
            state["state"]["state"] = int(gen[0]) << 64 | int(gen[1])
            bitgen.state = state
    workspace["fill"] = lengths.sum() / max(n * cap, 1)
    return stopped, taken, still, lengths, (T, running, log_e, log_k, k_out, cap, workspace)


def longest_first(lengths: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """``verify.numerics.episodes.longest_first`` for lengths of at most ``cap``, compiled: the same (order, first)."""
    order = np.empty(lengths.size, dtype=np.intp)
    first = np.empty(lengths.size, dtype=np.intp)
    longest_first_into(np.asarray(lengths, dtype=np.intp), int(cap), order, first)
    return order, first


def steps_from_log(table, log: tuple, lengths: np.ndarray, order: np.ndarray, first: np.ndarray,
                   final: np.ndarray) -> tuple:
    """(n, t, s, a, r) in the ``Steps`` layout (``longest_first``'s ``order``, ``first``) from ``run_chunk``'s log;
    ``final`` gets each episode's last s'."""
    T, running, log_e, log_k, k_out, cap, workspace = log
    M = int(lengths.sum())
    n_out, t_out, s_out, a_out, r_out = _arrays(M, (np.intp, np.intp, table.state.dtype, table.action.dtype,
                                                    table.reward.dtype), workspace)
    if k_out is None:
        layout(cap, log_k, order, first, lengths, table.state, table.action, table.reward, table.next_state,
               n_out, t_out, s_out, a_out, r_out, final)
    else:
        reorder(T, running, log_e, log_k, order, first, lengths, table.state, table.action, table.reward,
                table.next_state, k_out, n_out, t_out, s_out, a_out, r_out, final)
    return n_out, t_out, s_out, a_out, r_out
