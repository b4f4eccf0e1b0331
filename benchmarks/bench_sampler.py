"""pgverify's sampler against honest baselines: a per-step ``bisect`` loop and compiled (numba) loops.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_sampler.py            # 20 000 and 200 000 episodes, ~2 min
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_sampler.py --quick    # 20 000 episodes only

Run by hand; never part of pytest. All samplers draw the same distribution (checked first: mean returns within 5
standard errors) from the same joint table p(a, s' | s) = pi(a|s) P(s'|s, a) and record what an estimator needs
(s_t, a_t, r_t per step and the episode lengths):

- **pgverify**: ``verify.sampler.iter_episode_chunks`` (all episodes advance together; per-state alias tables),
  producing the ``Episodes`` batches the estimators read (its step list also holds each step's episode and time,
  in the longest-first layout the estimators use), twice: with its compiled kernel (``pip install
  'pgverify[fast]'``, forced with ``PGVERIFY_NUMBA=1``; by default a process loads it only for runs of at least
  ``KERNEL_MIN_STEPS`` steps) and on its numpy path (``PGVERIFY_NO_NUMBA=1``). Both give the same episodes bit
  for bit. The kernel's one-off costs (importing numba, compiling or reading numba's disk cache) are measured
  apart, in fresh interpreters, and are not in the per-step figures.
- **bisect loop**: what a good engineer writes in plain Python: per-state cumulative lists, uniforms drawn from
  numpy in blocks of 2^16, ``bisect.bisect_right`` per step, flat output lists. (The former baseline,
  ``rng.choice`` for every draw, was a strawman 17x slower than this; it is no longer measured.)
- **compiled** (``compiled_samplers``), if numba is installed (optional, never a dependency; without it these
  rows are skipped and the run says so): single-thread numba loops over episodes and steps with the same alias
  tables, logging s_t, a_t, r_t per chunk into preallocated arrays; one with numba's Mersenne Twister, one with
  numpy's PCG64 inlined (pgverify's generator, to tell the generator's share of the gap from the rest), one with
  xoshiro256+ inlined (the fastest written here: the yardstick of the goal line, which names it; also with
  streaming stores, as pgverify writes its step list: the goal takes the faster of the two), and the
  xoshiro256+ loop followed by a compiled pass that builds the step list pgverify returns (episode and time of
  each step, longest episode first): the best compiled loop with the same output. Their first call (JIT
  compilation) is not timed.
- **numpy's uniforms alone**: ``Generator.random`` for as many uniforms as pgverify draws, into a reused buffer:
  not a sampler, the floor under any sampler that keeps numpy's stream (a given ``--seed`` gives the same
  episodes in every version).

Times are CPU seconds of this process (``time.process_time``; wall time on a shared machine mostly measures the
neighbours), best of ``--repeats``, the candidates taking turns; reported per sampled step (ns/step) and as ratios
against the bisect loop and the best compiled loop measured in this run, at 20 000 and 200 000 episodes.
Problems: FrozenLake-v1 4x4 (slippery, H = 100) and Taxi-v4 (H = 200), uniform policy; imported from gymnasium
when it is installed, else FrozenLake is built from its documented rules and Taxi is skipped.
"""
from __future__ import annotations

import argparse
import bisect
import os
import sys
import time

if __name__ == "__main__":      # BLAS reads its thread count once, when numpy is first imported
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from verify.mdp import TabularMDP  # noqa: E402
from verify.policy import TabularSoftmax  # noqa: E402
from verify.sampler import chunk_size, iter_episode_chunks, joint_table  # noqa: E402

clock = time.process_time


def frozen_lake(horizon: int = 100) -> TabularMDP:
    """FrozenLake 4x4 from the documented rules (intended direction or either perpendicular one, 1/3 each)."""
    desc = ["SFFF", "FHFH", "FFFH", "HFFG"]
    S, A = 16, 4
    moves = [(0, -1), (1, 0), (0, 1), (-1, 0)]        # left, down, right, up (gymnasium's order)
    P = np.zeros((S, A, S))
    R = np.zeros((S, A, S))
    for s in range(S):
        row, col = divmod(s, 4)
        for a in range(A):
            for b in ((a - 1) % 4, a, (a + 1) % 4):
                nr = min(max(row + moves[b][0], 0), 3)
                nc = min(max(col + moves[b][1], 0), 3)
                P[s, a, nr * 4 + nc] += 1 / 3
                R[s, a, nr * 4 + nc] = float(desc[nr][nc] == "G")
    terminal = np.array([desc[s // 4][s % 4] in "HG" for s in range(S)])
    return TabularMDP(initial=np.eye(S)[0], transitions=P, rewards=R, terminal=terminal, gamma=1.0,
                      horizon=horizon, name="FrozenLake4x4")


def problems() -> list[TabularMDP]:
    try:
        from verify.gym import gym_problem
        return [gym_problem("FrozenLake-v1").mdp, gym_problem("Taxi-v4").mdp]
    except Exception as exc:  # noqa: BLE001  (gymnasium missing: the documented FrozenLake only)
        print(f"(gymnasium unavailable: {exc}; Taxi skipped)")
        return [frozen_lake()]


# --- the samplers -----------------------------------------------------------------------------------------------

def run_pgverify(mdp, policy, n, seed, kernel=True):
    """pgverify's sampler, with its compiled kernel (when numba is installed) or forced onto the numpy path."""
    os.environ["PGVERIFY_NUMBA" if kernel else "PGVERIFY_NO_NUMBA"] = "1"
    try:
        steps = 0
        for batch in iter_episode_chunks(mdp, policy, n, np.random.default_rng(seed)):
            steps += int(batch.lengths.sum())
        return steps
    finally:
        os.environ.pop("PGVERIFY_NUMBA" if kernel else "PGVERIFY_NO_NUMBA")


COMPILE_PROBE = """
import time, numpy as np
t0 = time.process_time()
from verify.sampler import compiled_kernel, sample_episodes
kernel = compiled_kernel(0)
t1 = time.process_time()
from verify.builtin import builtin_examples
ex = builtin_examples()["gridworld"]
t2 = time.process_time()
sample_episodes(ex.mdp, ex.policy, 10, np.random.default_rng(0))
t3 = time.process_time()
sample_episodes(ex.mdp, ex.policy, 10, np.random.default_rng(0))
t4 = time.process_time()
print(kernel is not None, t1 - t0, t3 - t2, t4 - t3)
"""


def compile_times() -> str:
    """The kernel's one-off costs, each in a fresh interpreter: importing numba and the kernel module, then the
    first sampled chunk with an empty numba cache (JIT compilation) and with the cache it left (a later process)."""
    import subprocess
    import tempfile
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    lines = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=root, PGVERIFY_NUMBA="1")
        env.pop("PGVERIFY_NO_NUMBA", None)
        for label in ("empty numba cache (JIT compilation)", "numba's disk cache (a later process)"):
            out = subprocess.run([sys.executable, "-c", COMPILE_PROBE], env=env, capture_output=True, text=True,
                                 check=True).stdout.split()
            if out[0] != "True":
                return "  compiled kernel: not available (numba not installed)"
            lines.append(f"  {label}: import numba + kernel module {float(out[1]):.2f} CPU-s, first 10 episodes "
                         f"{float(out[2]):.2f} CPU-s, the next 10 {float(out[3]) * 1e3:.1f} ms")
    return "\n".join(lines)


def bisect_tables(mdp, policy):
    """Per-state cumulative probabilities and (a, s', r, ends) of the joint table, as Python lists."""
    tab = joint_table(mdp, policy, alias=False)
    rows = []
    start = 0
    for s in range(mdp.n_states):
        k = int(tab.n_entries[s])
        sl = slice(start, start + k)
        cum = (tab.keys[sl] - s).tolist()
        rows.append((cum, tab.action[sl].tolist(), tab.next_state[sl].tolist(), tab.reward[sl].tolist(),
                     tab.ends[sl].tolist()))
        start += k
    init = np.cumsum(mdp.initial).tolist()
    return rows, init, mdp.terminal.tolist()


def run_bisect(mdp, policy, n, seed, tables):
    rows, init, terminal = tables
    rng = np.random.default_rng(seed)
    block = rng.random(1 << 16).tolist()
    i = 0
    H = mdp.horizon
    states, actions, rewards, lengths = [], [], [], []
    for _ in range(n):
        if i >= len(block) - H - 1:
            block, i = rng.random(1 << 16).tolist(), 0
        s = min(bisect.bisect_right(init, block[i]), len(init) - 1)
        i += 1
        t = 0
        while t < H and not terminal[s]:
            cum, act, nxt, rew, ends = rows[s]
            k = min(bisect.bisect_right(cum, block[i]), len(cum) - 1)
            i += 1
            states.append(s)
            actions.append(act[k])
            rewards.append(rew[k])
            t += 1
            if ends[k]:
                break
            s = nxt[k]
        lengths.append(t)
    return len(states)


def compiled_samplers() -> dict:
    """The compiled reference loops by name ({} without numba): one thread, one episode after another.

    Both draw with the same alias tables as pgverify and log exactly what pgverify's ``Steps`` holds besides the
    (episode, time) index: s_t, a_t, r_t per step and each episode's length, into arrays preallocated per chunk of
    ``verify.sampler.chunk_size`` episodes (pgverify's own memory bound; untouched pages of the preallocation cost
    nothing). The former reference preallocated N x H for the whole run (960 MB at 200 000 Taxi episodes) and
    measured its page faults at large N.

    - ``numba, MT19937``: numba's own ``np.random`` (Mersenne Twister), as the reference had it;
    - ``numba, PCG64 inlined``: numpy's PCG64 (``default_rng``'s), inlined as pgverify's kernel runs it, seeded as
      ``PCG64(seed)``: the loop on pgverify's generator, so that the ratio to the xoshiro256+ loop is the
      generator's share of the gap and the ratio of pgverify to it the rest (time-major order, the step list);
    - ``numba, xoshiro256+``: the generator inlined in the loop (Blackman & Vigna, "Scrambled linear pseudorandom
      number generators", ACM TOMS 47(4), 2021, https://doi.org/10.1145/3460772; doubles from the top 53 bits), the
      fastest compiled loop written here: the best compiled loop, the yardstick of the goal;
    - ``numba, xoshiro256+, streaming stores``: that loop writing its log by non-temporal stores, as pgverify's
      kernel writes its step list (on Taxi 0-9 % slower than ordinary stores, on FrozenLake within 5 % either way;
      the goal takes whichever loop is fastest in the run);
    - ``numba, xoshiro256+, + step list``: that loop, then a compiled pass writing its log into the step list
      pgverify returns (n, t, s, a, r, longest episode first; the five arrays carved from one allocation and
      written by streaming stores, as pgverify's kernel does): the best compiled loop with pgverify's output.
    """
    try:
        import numba
    except ImportError:
        return {}

    @numba.njit(inline="always")
    def plain_store(arr, i, value):
        arr[i] = value

    def compiled_loop(next_double, store=plain_store):
        """The per-episode loop drawing its uniforms with ``next_double`` (compiled into it), the generator's state
        in four uint64 locals (registers) rather than an array (memory): 2-9 % faster for xoshiro256+. Array
        indices are cast to unsigned (``U``), as in pgverify's kernel: numba adds a negative-index wraparound to
        every signed index. ``store`` writes the log: ordinary stores, or non-temporal ones (``_stream``, as
        pgverify's kernel writes its step list)."""
        U = np.uintp
        @numba.njit(cache=False)
        def loop(n, H, K, init_cum, accept, alias, action, next_state, reward, ends, terminal, state,
                 s_log, a_log, r_log, lengths):
            g0, g1, g2, g3 = state[0], state[1], state[2], state[3]
            m = 0
            for e in range(n):
                g0, g1, g2, g3, x = next_double(g0, g1, g2, g3)
                s = 0
                while s < init_cum.size - 1 and init_cum[U(s)] <= x:
                    s += 1
                t = 0
                while t < H and not terminal[U(s)]:
                    g0, g1, g2, g3, y = next_double(g0, g1, g2, g3)
                    y *= K
                    j = min(int(y), K - 1)
                    k = U(s * K + j)
                    if y - j >= accept[k]:
                        k = U(alias[k])
                    store(s_log, U(m), s)
                    store(a_log, U(m), action[k])
                    store(r_log, U(m), reward[k])
                    m += 1
                    t += 1
                    if ends[k]:
                        break
                    s = next_state[k]
                lengths[U(e)] = t
            state[0], state[1], state[2], state[3] = g0, g1, g2, g3
            return m
        return loop

    @numba.njit(inline="always")
    def mt19937(g0, g1, g2, g3):
        return g0, g1, g2, g3, np.random.random()     # numba's own generator; its state is global (``seed_mt``)

    @numba.njit(inline="always")
    def xoshiro256plus(g0, g1, g2, g3):
        r = g0 + g3
        t = g1 << np.uint64(17)
        g2 ^= g0
        g3 ^= g1
        g1 ^= g2
        g0 ^= g3
        g2 ^= t
        g3 = (g3 << np.uint64(45)) | (g3 >> np.uint64(19))
        return g0, g1, g2, g3, (r >> np.uint64(11)) * (1.0 / 9007199254740992.0)

    from verify.numerics.sampler_kernel import _pcg64_double, _pcg64_halves, _pcg64_step, _stream, _stream_fence

    @numba.njit(inline="always")
    def pcg64(g0, g1, g2, g3):
        # numpy's PCG64 (default_rng), inlined as pgverify's kernel runs it: (state high, low, increment high, low)
        g0, g1 = _pcg64_step(g0, g1, g2, g3)
        return g0, g1, g2, g3, _pcg64_double(g0, g1)

    @numba.njit(cache=False)
    def steps_layout(lengths, s_log, a_log, r_log, order, first, n_out, t_out, s_out, a_out, r_out):
        """The loop's episode-major log into pgverify's step list (longest episode first, with n and t)."""
        offset = np.empty(lengths.size, np.int64)
        acc = 0
        for e in range(lengths.size):
            offset[e] = acc
            acc += lengths[e]
        U = np.uintp
        for j in range(order.size):
            e, q, o = order[j], first[j], offset[order[j]]
            for t in range(lengths[e]):       # streaming stores, as pgverify's kernel writes its step list
                i, h = U(q + t), U(o + t)
                _stream(n_out, i, e)
                _stream(t_out, i, t)
                _stream(s_out, i, s_log[h])
                _stream(a_out, i, a_log[h])
                _stream(r_out, i, r_log[h])
        _stream_fence()

    def xoshiro_state(seed):
        return np.random.SeedSequence(seed).generate_state(4, np.uint64)

    def runner(loop, seeded, layout=False, initial=xoshiro_state):
        def run(mdp, policy, n, seed, tab):
            seeded(seed)
            state = initial(seed)
            H, chunk, steps = mdp.horizon, chunk_size(mdp), 0
            blocks = [np.empty(0), np.empty(0)]
            for start in range(0, n, chunk):
                c = min(chunk, n - start)
                s_log, a_log = np.empty(c * H, np.int64), np.empty(c * H, np.int64)
                r_log, lengths = np.empty(c * H), np.empty(c, np.int64)
                m = loop(c, H, tab.width, np.cumsum(mdp.initial), tab.accept, tab.alias, tab.action,
                         tab.next_state, tab.reward, tab.ends, mdp.terminal, state, s_log, a_log, r_log, lengths)
                if layout:
                    order = np.argsort(-lengths, kind="stable")
                    first = np.cumsum(lengths[order]) - lengths[order]
                    # one allocation, as pgverify's kernel makes, reused by every other chunk of the run (as
                    # pgverify reuses a block no batch refers to any longer: no fresh pages per chunk)
                    turn = (start // chunk) % 2
                    if blocks[turn].size < 5 * m:
                        blocks[turn] = np.empty(5 * m + 5 * m // 16)
                    block = blocks[turn][:5 * m]
                    ints = block[:4 * m].view(np.int64)
                    steps_layout(lengths, s_log, a_log, r_log, order, first, ints[:m], ints[m:2 * m],
                                 ints[2 * m:3 * m], ints[3 * m:], block[4 * m:])
                steps += m
            return steps
        return run

    @numba.njit
    def seed_mt(seed):
        np.random.seed(seed)

    return {"numba, MT19937": runner(compiled_loop(mt19937), seed_mt),
            "numba, PCG64 inlined": runner(compiled_loop(pcg64), lambda seed: None,
                                           initial=lambda seed: _pcg64_halves(np.random.PCG64(seed).state)),
            "numba, xoshiro256+": runner(compiled_loop(xoshiro256plus), lambda seed: None),
            "numba, xoshiro256+, streaming stores": runner(compiled_loop(xoshiro256plus, _stream), lambda seed: None),
            "numba, xoshiro256+, + step list": runner(compiled_loop(xoshiro256plus), lambda seed: None, layout=True)}


def mean_return_check(mdp, policy, tables) -> str:
    full = np.concatenate([b.r_t.sum(axis=1) for b in iter_episode_chunks(mdp, policy, 20_000,
                                                                            np.random.default_rng(9))])
    rows, init, terminal = tables
    rng = np.random.default_rng(10)
    totals = []
    for _ in range(4_000):
        s, total, t = min(bisect.bisect_right(init, rng.random()), len(init) - 1), 0.0, 0
        while t < mdp.horizon and not terminal[s]:
            cum, act, nxt, rew, ends = rows[s]
            k = min(bisect.bisect_right(cum, rng.random()), len(cum) - 1)
            total += rew[k]
            t += 1
            if ends[k]:
                break
            s = nxt[k]
        totals.append(total)
    loop = np.array(totals)
    z = (full.mean() - loop.mean()) / np.sqrt(full.var() / full.size + loop.var() / loop.size)
    return f"mean return pgverify {full.mean():.4f}, bisect loop {loop.mean():.4f} (z = {z:+.2f})"


def best_ns_per_step(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = clock()
        steps = fn()
        best = min(best, (clock() - t0) / max(steps, 1))
    return best * 1e9


def uniforms_only(steps: int, seed: int) -> int:
    """Only the uniforms pgverify draws (one per step, from numpy's default generator, into a reused buffer): the
    floor of any sampler on numpy's stream, however vectorised."""
    rng, buf, left = np.random.default_rng(seed), np.empty(1 << 16), steps
    while left > 0:
        rng.random(out=buf[:min(left, buf.size)])
        left -= buf.size
    return steps


def compare(mdp, sizes: list[int], n_slow: int, repeats: int, compiled: dict, goal: float) -> None:
    policy = TabularSoftmax(np.zeros((mdp.n_states, mdp.n_actions)))
    tables = bisect_tables(mdp, policy)
    tab = joint_table(mdp, policy, alias=True)
    print(f"\n{mdp.name}: S = {mdp.n_states}, A = {mdp.n_actions}, H = {mdp.horizon}, joint-table width "
          f"{tab.width}, chunks of {chunk_size(mdp)} episodes; bisect loop N = {n_slow}; best of {repeats}")
    print(f"  sanity: {mean_return_check(mdp, policy, tables)}")
    for run in compiled.values():
        run(mdp, policy, 10, 0, tab)                # JIT compilation, not timed
    run_pgverify(mdp, policy, 10, 0)                # the kernel's compilation (or cache load), reported apart
    slow = min(best_ns_per_step(lambda: run_bisect(mdp, policy, n_slow, r, tables), 1) for r in range(repeats))
    for n in sizes:
        ours = numpy_path = float("inf")
        comp = dict.fromkeys(compiled, float("inf"))
        for r in range(repeats):                    # take turns, so load affects all alike
            if compiled:
                ours = min(ours, best_ns_per_step(lambda: run_pgverify(mdp, policy, n, r), 1))
            numpy_path = min(numpy_path, best_ns_per_step(lambda: run_pgverify(mdp, policy, n, r, False), 1))
            for name, run in compiled.items():
                comp[name] = min(comp[name], best_ns_per_step(lambda: run(mdp, policy, n, r, tab), 1))
        steps = run_pgverify(mdp, policy, n, 0)
        floor = min(best_ns_per_step(lambda: uniforms_only(steps, r), 1) for r in range(repeats))
        best = min(comp.values(), default=None)
        best_name = min(comp, key=comp.get, default=None)
        print(f"  N = {n}:  {'sampler':54s} {'ns/step':>8s} {'vs bisect loop':>15s} {'vs best compiled':>17s}")
        if not compiled:
            ours = numpy_path
        rows = (([("pgverify, numba kernel", ours)] if compiled else []) + [("pgverify, numpy path", numpy_path)]
                + [(f"compiled loop ({k})", v) for k, v in comp.items()]
                + [("numpy's uniforms alone (floor)", floor)])
        for name, t in rows:
            print(f"  {'':10s}{name:54s} {t:8.1f} {slow / t:14.1f}x {'' if best is None else f'{t / best:16.2f}x'}")
        if best is None:
            print("  (numba not installed: no compiled baseline, no goal checked; pip install numba)")
        else:
            print(f"  {'':10s}goal: pgverify within {goal:g}x of the best compiled loop ({best_name}, logging s, a, "
                  f"r): {ours / best:.2f}x ({'met' if ours / best <= goal else 'NOT met'})")
            pcg, xo = comp.get("numba, PCG64 inlined"), comp.get("numba, xoshiro256+")
            if pcg is not None and xo is not None:
                print(f"  {'':10s}what separates them: the generator (the same loop on numpy's PCG64 / on xoshiro256+) "
                      f"{pcg / xo:.2f}x; the rest (pgverify / the PCG64 loop: time-major order, the step list) "
                      f"{ours / pcg:.2f}x")
            same = comp.get("numba, xoshiro256+, + step list")
            if same is not None:
                print(f"  {'':10s}against the best compiled loop building the same step list: {ours / same:.2f}x "
                      f"({'within' if ours / same <= goal else 'NOT within'} {goal:g}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 000 episodes only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--goal", type=float, default=1.5, help="the ratio to the best compiled loop aimed at")
    args = parser.parse_args()
    compiled = compiled_samplers()
    print(f"BLAS threads {os.environ.get('OPENBLAS_NUM_THREADS')}; numba "
          f"{'available' if compiled else 'not installed: the compiled baselines are skipped'}; python "
          f"{sys.version.split()[0]}; load average {os.getloadavg()[0]:.2f}")
    if compiled:
        print("pgverify's compiled kernel, one-off costs (fresh interpreters):")
        print(compile_times())
    for mdp in problems():
        compare(mdp, sizes=[20_000] if args.quick else [20_000, 200_000], n_slow=5_000,
                repeats=args.repeats, compiled=compiled, goal=args.goal)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
