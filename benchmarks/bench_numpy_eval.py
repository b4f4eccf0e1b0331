"""The numpy evaluator of jaxprs (``verify.frameworks._numpy_eval``) against XLA on the benchmark's REINFORCE loss.

FrozenLake-v1 (16 states x 4 actions, one-hot observations), ``j_reinforce`` of ``bench_frameworks.py`` (reward-to-go
by a reversed ``jnp.cumsum``), vmapped ``value_and_grad`` with the raveled gradient as ``check_loss``'s
``_compiled_many`` builds it, on C = 16 stacked batches of B = 16 episodes padded to T steps (episodes sampled from
the uniform policy, those of at most T steps). Per T it prints, in CPU seconds (``time.process_time``; run it with
OPENBLAS_NUM_THREADS=1): the trace (``jax.make_jaxpr``, which both paths need), the one-off preparation of the
numpy program against XLA's lowering and compilation of the same function (``MAIN_COMPILE``, as check_loss; a new
function per T so nothing comes from jax's caches; the persistent cache is off outside a check), and the best of
``--repeats`` calls of each after that (numpy again after XLA's calls), with the ratios numpy / XLA; and the
same loss traced once with T symbolic (``jax.export.symbolic_shape``), prepared per T (``symbolic_program``). It also checks that both give the same numbers.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_numpy_eval.py --lengths 8 32 100 --repeats 7 [--keep-heap]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def j_reinforce(params, batch):
    """bench_frameworks.py's REINFORCE loss: reward-to-go by a reversed ``jnp.cumsum``, summed over each episode's
    steps, averaged over episodes."""
    import jax
    import jax.numpy as jnp

    logp = jax.nn.log_softmax(batch.obs @ params["theta"])
    logp_a = jnp.take_along_axis(logp, batch.actions[..., None], axis=-1)[..., 0]
    disc = batch.gamma ** jnp.arange(batch.rewards.shape[1])
    G = jnp.cumsum((disc * batch.rewards)[:, ::-1], axis=1)[:, ::-1]
    return -(logp_a * G * batch.mask).sum(1).mean()


def symbolic_batch(batch, leading: int):
    """``batch``'s ShapeDtypeStructs with its time axis (the one after ``leading`` batch axes) symbolic: T."""
    import jax

    from verify.frameworks._common import Batch

    (T,) = jax.export.symbolic_shape("T")

    def sds(x):
        x = np.asarray(x)
        shape = list(x.shape)
        if x.ndim > leading + 1 or (x.ndim == leading + 1 and x is not batch.lengths):
            shape[leading + 1] = T
        return jax.ShapeDtypeStruct(tuple(shape), x.dtype)
    return Batch(*[sds(x) for x in batch[:-1]], gamma=batch.gamma)


def best_of(fn, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[8, 32, 100], help="padded lengths T")
    parser.add_argument("--repeats", type=int, default=7, help="calls timed per path (best of)")
    parser.add_argument("--batches", type=int, default=16, help="C, batches per call")
    parser.add_argument("--batch-size", type=int, default=16, help="B, episodes per batch")
    parser.add_argument("--keep-heap", action="store_true",
                        help="glibc only: mallopt(M_MMAP_THRESHOLD=64 MiB, M_TRIM_THRESHOLD=256 MiB) first, so numpy's "
                             "temporaries reuse the heap instead of fresh mmapped pages (page faults: about half of "
                             "a call's CPU time at T >= 32 without it)")
    args = parser.parse_args(argv)
    if args.keep_heap:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 << 20)      # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 << 20)     # M_TRIM_THRESHOLD

    import jax

    from verify.frameworks._common import Batch, batch_arrays
    from verify.frameworks._jax_compile import MAIN_COMPILE
    from verify.frameworks._numpy_eval import numpy_program
    from verify.frameworks.gym import gym_problem
    # what check_loss compiles: the vmapped value_and_grad of a loss, gradient raveled
    from verify.frameworks.jax import _batched_value_and_grad
    from verify.model.policy import TabularSoftmax
    from verify.numerics.sampler import sample_episodes

    jax.config.update("jax_enable_x64", True)
    mdp = gym_problem("FrozenLake-v1").mdp
    table = np.eye(mdp.n_states)
    uniform = TabularSoftmax(np.zeros((mdp.n_states, mdp.n_actions)))
    params = {"theta": np.random.default_rng(0).normal(size=(mdp.n_states, mdp.n_actions))}

    symbolic = {}
    print(f"FrozenLake-v1, C={args.batches} batches of B={args.batch_size} episodes, CPU seconds "
          f"(best of {args.repeats} calls)")
    for T in args.lengths:
        rng = np.random.default_rng(T)
        n = args.batches * args.batch_size
        eps = sample_episodes(mdp, uniform, 8 * n, rng)
        short = np.flatnonzero(eps.lengths <= T)[:n]          # episodes that fit in T steps (most are short)
        assert short.size == n, f"too few episodes of at most {T} steps"
        bs = [batch_arrays(eps.select(short[c::args.batches]), table, T) for c in range(args.batches)]
        batch = Batch(*[np.stack(f) for f in zip(*[b[:-1] for b in bs])], gamma=bs[0].gamma)
        flat = jax.tree_util.tree_leaves((params, batch))

        t = time.process_time()
        closed = jax.make_jaxpr(_batched_value_and_grad(j_reinforce))(params, batch)
        trace = time.process_time() - t
        t = time.process_time()
        run = numpy_program(closed)
        prepare = time.process_time() - t

        jitted = jax.jit(_batched_value_and_grad(j_reinforce), compiler_options=MAIN_COMPILE)
        t = time.process_time()
        lowered = jitted.lower(params, batch)
        lower = time.process_time() - t
        t = time.process_time()
        compiled = lowered.compile()
        compile_ = time.process_time() - t

        got = run(*flat)
        want = [np.asarray(w) for w in compiled(params, batch)]
        err = max(float(np.max(np.abs(g - w))) / max(float(np.max(np.abs(w))), 1e-300) for g, w in zip(got, want))
        numpy_call = best_of(lambda: run(*flat), args.repeats)
        xla_call = best_of(lambda: jax.block_until_ready(compiled(params, batch)), args.repeats)
        numpy_again = best_of(lambda: run(*flat), args.repeats)   # after XLA has run: its threads' CPU time counts
        if not symbolic:
            t = time.process_time()
            symbolic["closed"] = jax.make_jaxpr(_batched_value_and_grad(j_reinforce))(params, symbolic_batch(batch, 1))
            symbolic["trace"] = time.process_time() - t
        t = time.process_time()
        run_T = numpy_program(symbolic["closed"], {"T": T})
        prepare_T = time.process_time() - t
        got_T = run_T(*flat)
        err = max([err] + [float(np.max(np.abs(g - w))) / max(float(np.max(np.abs(w))), 1e-300)
                           for g, w in zip(got_T, want)])
        symbolic_call = best_of(lambda: run_T(*flat), args.repeats)
        print(f"  T={T:3d}: trace {trace:.4f} | one-off: numpy_program {prepare:.4f} vs XLA lower {lower:.4f} + "
              f"compile {compile_:.4f} ({prepare / (lower + compile_):.3f}x) | per call: numpy {numpy_call:.4f} vs "
              f"XLA {xla_call:.4f} ({numpy_call / xla_call:.2f}x; numpy again after XLA {numpy_again:.4f}) | eqns {len(closed.jaxpr.eqns)} | "
              f"max rel. difference {err:.1e}")
        print(f"         T symbolic: one trace {symbolic['trace']:.4f} for every T, prepared for T={T} in "
              f"{prepare_T:.4f}, a call {symbolic_call:.4f} ({symbolic_call / xla_call:.2f}x XLA's), "
              f"eqns {len(symbolic['closed'].jaxpr.eqns)}")


if __name__ == "__main__":
    main()
