"""Time to check a PyTorch loss on FrozenLake-v1 against the same check of the numpy catalog estimator.

    python benchmarks/bench_frameworks.py [--batch-size B] [--batches K] [--repeats R]
    python benchmarks/bench_frameworks.py --exact [--repeats R]      # exact checks: JAX against PyTorch
    python benchmarks/bench_frameworks.py --jax [--torch] [--unpadded] [--rounds R]   # JAX check_loss vs numpy
    python benchmarks/bench_frameworks.py --scale [--sizes 1000 10000 100000]   # exact grad J at 10^3..10^5 states
    python benchmarks/bench_frameworks.py --features [--batches 200]   # check_loss, 32 parameters, 10^3..10^4 states

Run by hand; never part of pytest. Needs the extras ``torch`` and ``gym``. Both checks run
``verify.checks.batchcheck.check_batches`` on FrozenLake-v1 at the default size (4x4, slippery, H = 100 from its time limit,
gamma = 1, uniform policy theta = 0): K batches of B episodes from pgverify's sampler, the paired Monte Carlo test
(H = 100 has too many trajectories to enumerate). They differ only in the estimate of each batch:

- **PyTorch** (``verify.frameworks.torch.check_loss``): a tabular-softmax ``nn.Module`` on one-hot observations and a
  REINFORCE loss written as a training loop writes it; per batch: the numpy batch -> torch tensors, the loss,
  ``torch.autograd.grad``; plus, once, grad J by DP through autograd and the d log pi / d params Jacobian.
- **numpy** (the baseline, ``verify.checks.batchcheck.check_batch_estimator``): the catalog's ``reward_to_go`` estimator,
  averaged over the batch.

``--exact`` times the exact checks instead, JAX against PyTorch on the same numbers (the baseline is PyTorch):
the episode check of the gallery's REINFORCE loss on ``two_step`` (``check_loss``, exact per-episode) and the
rollout check of a per-step discounted REINFORCE loss on ``corridor`` (``check_rollout_loss``, 2 environments x 4
steps, 16 rollouts enumerated), a tabular softmax in both frameworks. It reports the first check of the process
(JAX compiles the loss's ``value_and_grad`` and its eager primitives; PyTorch warms up autograd) and the best of
the later ones (the training-loop case: a test suite or a CLI that checks a loss more than once).

``--jax`` times the JAX ``check_loss`` at its default settings (``pad_to="auto"``: every batch padded to the
horizon, the K batches evaluated in chunks by one vmapped program; a loss's first check in a process evaluates the
traced programs with numpy, ``numpy_first``, and later checks compile them with ``jax.jit``) against the numpy
check of the same K batches of B episodes on FrozenLake-v1, in fresh processes (``--jax-child``): per round
(``--rounds``), one process at the defaults, then two compiling from the first check (``numpy_first=False``) that
share a new, empty persistent compilation cache (``PGVERIFY_CACHE_DIR``; ``verify.frameworks._jax_compile``), so
the first of them measures a first compiled check with an empty cache and the second one that loads the executables
from the disk cache (as numba's ``cache=True``); each process also times the numpy check (the ratios are within one
process) and the best of ``--repeats`` later checks (steady state: compiled). It prints the XLA executables compiled
and loaded in the first check (counted by jax's monitoring events, ``count_compilations``), the loss's traces, and a
goal line (JAX <= 3x numpy, by default) computed from the ratios. The JAX processes do not import torch (it makes
jax's first check ~0.15 CPU-s slower); ``--torch`` adds the PyTorch ``check_loss`` in a process of its own.
``--unpadded`` adds ``pad_to=None`` (each batch padded to its longest episode: one trace per distinct length, the
old default). A ``PYTHONPATH`` set by the caller comes first in the children (another checkout's tree, for a
before/after in one session).

``--features`` times ``check_loss`` of a linear softmax on 8 random features per state (32 parameters) on the same
gridworlds at 10^3 and 10^4 states, JAX and PyTorch against the numpy check of the same policy
(``LinearSoftmax``, the catalog's ``reward_to_go``): d log pi / d params is [S A, 32], built by columns.

``--scale`` times the exact gradients of the adapters against pgverify's own (``verify.numerics.exact.gradient``,
method "dp") on the slippery gridworlds of ``scale_models.py`` (H = 200, 4 actions) at about 10^3, 10^4 and 10^5
states, a tabular softmax indexed by the state (``observations="index"``): PyTorch (autograd through the sparse DP,
a CSR product per step) and JAX (the same DP under one ``jax.jit``, first call with its compilation, then the best
of the later ones); all three agree to round-off, which the benchmark asserts.

Times are CPU seconds of this process (``time.process_time``; wall time on a shared machine measures the
neighbours), best of ``--repeats``, the two measured alternately in one run; the ratio is PyTorch over numpy.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

if __name__ == "__main__":
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

if "--jax-child" in sys.argv and "--torch-child" not in sys.argv:
    # a process timing JAX's first check does not import torch: with torch loaded the same first check costs about
    # 0.15 CPU-s more (five alternated pairs of processes, 0.37-0.50 s against 0.57-0.71 s), and a JAX user's
    # process does not load it
    torch = None
else:
    import torch  # noqa: E402

from verify.checks.batchcheck import check_batch_estimator  # noqa: E402
from verify.checks.estimators import get_estimator  # noqa: E402
from verify.frameworks.torch import check_loss, check_rollout_loss  # noqa: E402
from verify.frameworks.gym import gym_problem  # noqa: E402


class Tabular(torch.nn.Module if torch is not None else object):
    def __init__(self, n_states: int, n_actions: int):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.zeros(n_states, n_actions))

    def forward(self, obs):
        return obs @ self.theta


def reinforce(policy, batch):
    logp = torch.distributions.Categorical(logits=policy(batch.obs)).log_prob(batch.actions)
    disc = batch.gamma ** torch.arange(batch.rewards.shape[1], dtype=batch.rewards.dtype)
    G = (disc * batch.rewards).flip(1).cumsum(1).flip(1)
    return -(logp * G * batch.mask).sum(1).mean()


def numpy_reward_to_go(episodes):
    return get_estimator("reward_to_go").per_episode(episodes).mean(axis=0)


def exact_checks(repeats: int) -> None:
    """First and best-of-``repeats`` CPU seconds of exact checks in PyTorch and JAX, and their ratio."""
    import sys
    from pathlib import Path

    import jax
    import jax.numpy as jnp

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))     # the gallery's MDPs live in examples/
    from examples.frameworks.problem import corridor, two_step
    from verify.frameworks import jax as vjax

    def t_episode(policy, batch):
        return reinforce(policy, batch)

    def j_episode(params, batch):
        logp = jax.nn.log_softmax(batch.obs @ params["theta"])
        logp_a = jnp.take_along_axis(logp, batch.actions[..., None], axis=-1)[..., 0]
        disc = batch.gamma ** jnp.arange(batch.rewards.shape[1])
        G = jnp.cumsum((disc * batch.rewards)[:, ::-1], axis=1)[:, ::-1]
        return -(logp_a * G * batch.mask).sum(1).mean()

    def t_rollout(policy, batch):
        logp = torch.distributions.Categorical(logits=policy(batch.obs)).log_prob(batch.actions)
        adv = batch.rewards + batch.gamma * batch.next_values - batch.values
        return -(batch.gamma ** batch.steps.double() * logp * adv).mean()

    def j_rollout(params, batch):
        logp = jax.nn.log_softmax(batch.obs @ params["theta"])
        logp_a = jnp.take_along_axis(logp, batch.actions[..., None], axis=-1)[..., 0]
        adv = batch.rewards + batch.gamma * batch.next_values - batch.values
        return -(batch.gamma ** batch.steps * logp_a * adv).mean()

    def apply(params, obs):
        return obs @ params["theta"]

    cases = []
    for mdp, kind in ((two_step(), "episodes"), (corridor(), "rollouts")):
        policy = Tabular(mdp.n_states, mdp.n_actions)
        params = {"theta": np.zeros((mdp.n_states, mdp.n_actions))}
        if kind == "episodes":
            runs = {"torch": lambda: check_loss(policy, t_episode, mdp, batch_size=2),
                    "jax": lambda: vjax.check_loss(apply, params, j_episode, mdp, batch_size=2)}
        else:
            runs = {"torch": lambda: check_rollout_loss(policy, t_rollout, mdp, n_envs=2, n_steps=4),
                    "jax": lambda: vjax.check_rollout_loss(apply, params, j_rollout, mdp, n_envs=2, n_steps=4)}
        cases.append((f"{kind} on {mdp.name}", runs))
    print(f"exact checks, CPU seconds: the first of the process, then the best of {repeats} more")
    for label, runs in cases:
        first, best, verdict = {}, {}, {}
        for fw in ("torch", "jax"):
            t = time.process_time()
            verdict[fw] = runs[fw]().verdict
            first[fw] = time.process_time() - t
            best[fw] = np.inf
        for _ in range(repeats):
            for fw in ("torch", "jax"):
                t = time.process_time()
                runs[fw]()
                best[fw] = min(best[fw], time.process_time() - t)
        print(f"  {label:22s} PyTorch {first['torch']:6.2f} s first, {best['torch']:6.3f} s after  |  JAX "
              f"{first['jax']:6.2f} s first, {best['jax']:6.3f} s after  |  ratio JAX / PyTorch after: "
              f"{best['jax'] / best['torch']:.2f}x (verdicts {verdict['torch']}, {verdict['jax']})")


def jax_child(args) -> None:
    """One process of ``--jax``: the first numpy, JAX (and PyTorch) checks of the process, then the best of
    ``--repeats`` more, the JAX loss's traces and the XLA executables compiled and loaded from the persistent cache
    in its first check; one JSON line on stdout."""
    import json

    from bench_numpy_eval import j_reinforce as reinforce_loss      # this directory: the script's sys.path[0]

    from verify.frameworks import jax as vjax
    from verify.frameworks._jax_compile import count_compilations

    problem = gym_problem("FrozenLake-v1")
    mdp = problem.mdp
    traces = [0]

    def apply(params, obs):
        return obs @ params["theta"]

    def j_reinforce(params, batch):
        traces[0] += 1              # runs once per trace (compilation), never per call of the compiled loss
        return reinforce_loss(params, batch)

    params = {"theta": np.zeros((mdp.n_states, mdp.n_actions))}
    settings = dict(batch_size=args.batch_size, batches=args.batches, seed=0)
    runs = {"numpy": lambda: check_batch_estimator(numpy_reward_to_go, problem, **settings)}
    if args.torch_child:
        policy = Tabular(mdp.n_states, mdp.n_actions)
        runs["torch"] = lambda: check_loss(policy, reinforce, mdp, **settings)
    else:       # --compiled: the loss compiled from its first check (numpy_first=False) instead of numpy's tier
        runs["jax"] = lambda: vjax.check_loss(apply, params, j_reinforce, mdp, numpy_first=not args.compiled,
                                              **settings)
    if args.unpadded and not args.torch_child:
        runs["jax, pad_to=None"] = lambda: vjax.check_loss(apply, params, j_reinforce, mdp, pad_to=None,
                                                           numpy_first=not args.compiled, **settings)
    out = {}
    for label, run in runs.items():
        before = traces[0]
        with count_compilations() as counted:
            t = time.process_time()
            verdict = run().verdict
            first = time.process_time() - t
        out[label] = {"first": first, "verdict": verdict, "traces": traces[0] - before, **counted}
    for label in runs:
        out[label]["after"] = np.inf
    for _ in range(args.repeats):
        for label, run in runs.items():
            t = time.process_time()
            run()
            out[label]["after"] = min(out[label]["after"], time.process_time() - t)
    print(json.dumps(out))


def jax_check(args) -> None:
    """JAX ``check_loss`` by default against the numpy check, each in fresh processes timing the numpy check too:
    per round, one process at the defaults (a loss's first check runs on numpy, ``numpy_first``), then two compiling
    from the first check (``numpy_first=False``) sharing a new, empty persistent compilation cache
    (``PGVERIFY_CACHE_DIR``): the first check of a process with an empty cache, then with the cache it left."""
    import json
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    child = [sys.executable, str(Path(__file__).resolve()), "--jax-child", "--batch-size", str(args.batch_size),
             "--batches", str(args.batches), "--repeats", str(args.repeats)]
    child += ["--unpadded"] * args.unpadded
    rounds = []
    for _ in range(args.rounds):
        # the defaults' process has a cache directory of its own: its later checks compile and write theirs
        with tempfile.TemporaryDirectory(prefix="bench-jax-cache-") as own, \
                tempfile.TemporaryDirectory(prefix="bench-jax-cache-") as cache:
            # a PYTHONPATH given first (another checkout's tree, for before/after), else this checkout
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(root))
                                                               if p)}
            env.pop("PGVERIFY_NO_CACHE", None)
            runs = {"default": (child, own), "empty": ([*child, "--compiled"], cache),
                    "disk": ([*child, "--compiled"], cache)}
            if args.torch:          # PyTorch in a process of its own (after the JAX ones: not in the JAX processes)
                runs["torch"] = ([*child, "--torch-child"], own)
            one = {}
            for kind, (command, directory) in runs.items():
                done = subprocess.run(command, env={**env, "PGVERIFY_CACHE_DIR": directory}, capture_output=True,
                                      text=True, check=False)
                if done.returncode:
                    raise SystemExit(f"the --jax-child process ({kind}) failed:\n{done.stderr[-3000:]}")
                one[kind] = json.loads(done.stdout.strip().splitlines()[-1])
            rounds.append(one)

    def span(values, fmt):
        lo, hi = min(values), max(values)
        return format(lo, fmt) if format(lo, fmt) == format(hi, fmt) else f"{format(lo, fmt)}-{format(hi, fmt)}"

    def first(label, k):
        return [r[k][label]["first"] for r in rounds]

    def ratio(label, k):
        return [r[k][label]["first"] / r[k]["numpy"]["first"] for r in rounds]

    print(f"FrozenLake-v1 4x4, H = 100, {args.batches} batches of {args.batch_size} episodes, CPU seconds "
          f"(time.process_time: every thread, XLA's compiler threads included; imports excluded, the lazy imports and "
          f"jax's backend start-up included in the first check); {args.rounds} round(s), each fresh processes: the "
          f"defaults (a loss's first check on numpy), then two compiling from the first check (numpy_first=False) "
          f"sharing a new, empty persistent compilation cache (torch not imported in them"
          + ("; PyTorch in a process of its own" if args.torch else "") + "), each timing the numpy check too; "
          f"first: the first check of a process, after: the best of {args.repeats} more (compiled)")
    numpy_first = [p["numpy"]["first"] for r in rounds for k, p in r.items() if k != "torch"]
    numpy_after = [min(p["numpy"]["after"] for k, p in r.items() if k != "torch") for r in rounds]
    print(f"  numpy                  first {span(numpy_first, '.2f')} s, after {span(numpy_after, '.3f')} s, verdict "
          f"{rounds[0]['default']['numpy']['verdict']}")
    jax_labels = [label for label in rounds[0]["default"] if label.startswith("jax")]
    for label in jax_labels:
        after = [min(r[k][label]["after"] for k in ("default", "empty", "disk")) for r in rounds]
        for k, name in (("default", "numpy first"), ("empty", "compiled, empty cache"),
                        ("disk", "compiled, disk cache")):
            counts = rounds[0][k][label]
            print(f"  {label + ', ' + name:32s} first {span(first(label, k), '.2f')} s "
                  f"({span(ratio(label, k), '.1f')}x numpy's first), {counts['compiled']} XLA compilations, "
                  f"{counts['loaded']} executables loaded from the cache, loss traced {counts['traces']} times, "
                  f"verdict {counts['verdict']}")
        steady = [a / n for a, n in zip(after, numpy_after)]
        print(f"  {label + ', after':32s} {span(after, '.3f')} s ({span(steady, '.1f')}x numpy's after)")
        if label == "jax":
            steady_jax = steady
    if args.torch:
        after = [r["torch"]["torch"]["after"] for r in rounds]
        steady = [a / r["torch"]["numpy"]["after"] for a, r in zip(after, rounds)]
        print(f"  {'torch':32s} first {span(first('torch', 'torch'), '.2f')} s "
              f"({span(ratio('torch', 'torch'), '.1f')}x numpy's first), after {span(after, '.3f')} s "
              f"({span(steady, '.1f')}x), verdict {rounds[0]['torch']['torch']['verdict']}")

    def verdict(values):
        met = sum(v <= 3.0 for v in values)
        return ("met" if met == len(values) else "NOT met" if met == 0 else f"met in {met} of {len(values)} rounds") \
            + f" ({span(values, '.2f')}x)"
    print(f"  goal JAX check_loss <= 3x the numpy check, by default: first check: {verdict(ratio('jax', 'default'))}; "
          f"after: {verdict(steady_jax)}. Compiled from the first check: empty cache "
          f"{verdict(ratio('jax', 'empty'))}; disk cache {verdict(ratio('jax', 'disk'))}")


def scale(args) -> None:
    """Exact grad J of the PyTorch and JAX adapters against pgverify's own, on gridworlds of 10^3..10^5 states."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from scale_models import gridworld

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))     # the gallery's policies live in examples/
    from examples.frameworks.jax_losses import tabular as apply
    from examples.frameworks.torch_losses import Tabular as IndexedTabular

    from verify.frameworks import jax as vjax
    from verify.frameworks import torch as vtorch
    from verify.model.policy import TabularSoftmax
    from verify.numerics.exact import gradient

    print(f"exact grad J, gridworlds (H = 200, 4 actions), CPU seconds; JAX: first call (compilation), then the best "
          f"of {args.repeats} more; pgverify and PyTorch: best of {args.repeats}")
    for size in args.sizes:
        mdp = gridworld(size)
        theta = np.random.default_rng(0).normal(size=(mdp.n_states, mdp.n_actions)) * 0.1
        module = IndexedTabular(theta)
        runs = {"pgverify": lambda: gradient(mdp, TabularSoftmax(theta), "dp").grad,
                "torch": lambda: vtorch.exact_gradient(module, mdp, observations="index").grad["theta"],
                "jax": lambda: vjax.exact_gradient(apply, {"theta": theta}, mdp,
                                                   observations="index").grad["['theta']"]}
        first, best, grads = {}, {}, {}
        for label, run in runs.items():
            t = time.process_time()
            grads[label] = run()
            first[label] = time.process_time() - t
            best[label] = first[label] if label != "jax" else np.inf
        for _ in range(args.repeats):
            for label, run in runs.items():
                t = time.process_time()
                run()
                best[label] = min(best[label], time.process_time() - t)
        for label in ("torch", "jax"):
            np.testing.assert_allclose(grads[label], grads["pgverify"], rtol=0, atol=1e-12)
        base = best["pgverify"]
        print(f"  {mdp.n_states:6d} states: pgverify {base:6.3f} s | PyTorch {best['torch']:6.3f} s "
              f"({best['torch'] / base:4.1f}x) | JAX first {first['jax']:6.3f} s ({first['jax'] / base:5.1f}x), "
              f"after {best['jax']:6.3f} s ({best['jax'] / base:4.1f}x)")


def features(args) -> None:
    """``check_loss`` of a linear softmax on 8 random features per state (d = 32 parameters) at 10^3..10^4 states:
    JAX and PyTorch (first check of the process) against the numpy check of the same policy (``LinearSoftmax``)."""
    import sys
    from pathlib import Path

    import jax
    import jax.numpy as jnp

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from scale_models import gridworld

    from verify.frameworks import jax as vjax
    from verify.model.policy import LinearSoftmax
    from verify.model.problem import Problem

    K = 8

    def j_loss(params, batch):
        logp = jax.nn.log_softmax(batch.obs @ params["W"])
        logp_a = jnp.take_along_axis(logp, batch.actions[..., None], axis=-1)[..., 0]
        G = jnp.cumsum(batch.rewards[:, ::-1], axis=1)[:, ::-1]
        return -(logp_a * G * batch.mask).sum(1).mean()

    class Linear(torch.nn.Module):
        def __init__(self, W):
            super().__init__()
            self.W = torch.nn.Parameter(torch.as_tensor(W))

        def forward(self, obs):
            return obs @ self.W

    def t_loss(policy, batch):
        logp = torch.log_softmax(policy(batch.obs), -1).gather(-1, batch.actions[..., None])[..., 0]
        G = batch.rewards.flip(1).cumsum(1).flip(1)
        return -(logp * G * batch.mask).sum(1).mean()

    print(f"check_loss of a linear softmax on {K} features per state (d = {4 * K}), gridworlds (H = 200, 4 actions), "
          f"{args.batches} batches of {args.batch_size}, CPU seconds of one check per size in one process (the first "
          "size pays the frameworks' one-time start-up)")
    for size in args.sizes:
        mdp = gridworld(size)
        rng = np.random.default_rng(0)
        phi, W = rng.normal(size=(mdp.n_states, K)), rng.normal(size=(K, 4)) * 0.1
        linear = LinearSoftmax(np.einsum("sk,ab->sakb", phi, np.eye(4)).reshape(mdp.n_states, 4, 4 * K), W.ravel())
        settings = dict(batch_size=args.batch_size, batches=args.batches, seed=0)
        runs = {"numpy": lambda: check_batch_estimator(numpy_reward_to_go, Problem(mdp, linear), **settings),
                "jax": lambda: vjax.check_loss(lambda p, o: o @ p["W"], {"W": W}, j_loss, mdp, observations=phi,
                                               **settings),
                "torch": lambda: check_loss(Linear(W), t_loss, mdp, observations=phi, **settings)}
        took, verdicts = {}, {}
        for label, run in runs.items():
            t = time.process_time()
            verdicts[label] = run().verdict
            took[label] = time.process_time() - t
        print(f"  {mdp.n_states:6d} states: numpy {took['numpy']:6.2f} s | JAX {took['jax']:6.2f} s "
              f"({took['jax'] / took['numpy']:4.1f}x) | PyTorch {took['torch']:6.2f} s "
              f"({took['torch'] / took['numpy']:4.1f}x); verdicts {verdicts['numpy']}, {verdicts['jax']}, "
              f"{verdicts['torch']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--exact", action="store_true", help="time exact checks: JAX against PyTorch")
    parser.add_argument("--jax", action="store_true", help="time the JAX check_loss (defaults) against numpy")
    parser.add_argument("--unpadded", action="store_true", help="with --jax: also pad_to=None (the old default)")
    parser.add_argument("--torch", action="store_true", help="with --jax: also the PyTorch check_loss, first call")
    parser.add_argument("--rounds", type=int, default=2,
                        help="with --jax: rounds of processes (the default; compiled: empty, disk cache)")
    parser.add_argument("--jax-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--torch-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--compiled", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scale", action="store_true", help="time exact grad J of the adapters at 10^3..10^5 states")
    parser.add_argument("--features", action="store_true",
                        help="check_loss of a linear softmax on features at 10^3..10^4 states (with --sizes)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    args = parser.parse_args()
    if args.sizes is None:
        args.sizes = [1000, 10000] if args.features else [1000, 10000, 100000]
    if args.features:
        features(args)
        return
    if args.exact:
        exact_checks(args.repeats)
        return
    if args.jax_child:
        jax_child(args)
        return
    if args.jax:
        jax_check(args)
        return
    if args.scale:
        scale(args)
        return
    problem = gym_problem("FrozenLake-v1")
    mdp = problem.mdp
    policy = Tabular(mdp.n_states, mdp.n_actions)
    settings = dict(batch_size=args.batch_size, batches=args.batches, seed=0)
    best = {"torch": np.inf, "numpy": np.inf}
    verdicts = {}
    for _ in range(args.repeats):
        for label in ("torch", "numpy"):
            start = time.process_time()
            if label == "torch":
                check = check_loss(policy, reinforce, mdp, **settings)
            else:
                check = check_batch_estimator(numpy_reward_to_go, problem, **settings)
            best[label] = min(best[label], time.process_time() - start)
            verdicts[label] = (check.verdict, check.method, check.resolution)
    print(f"FrozenLake-v1 4x4, H = {mdp.horizon}, {args.batches} batches of {args.batch_size} episodes, "
          f"best of {args.repeats} (CPU seconds)")
    for label, name in (("torch", "PyTorch check_loss (REINFORCE loss, autograd)"),
                        ("numpy", "numpy check_batch_estimator (catalog reward_to_go)")):
        verdict, method, res = verdicts[label]
        print(f"  {name:52s} {best[label]:7.2f} s   verdict {verdict} ({method}, detects {res:.3g})")
    print(f"  ratio PyTorch / numpy: {best['torch'] / best['numpy']:.2f}x")
    res = verdicts["numpy"][2]
    if res > 0.1:
        # The detectable bias shrinks as 1/sqrt(K).
        print(f"  (undecided at this size: a verdict at the default tolerance 0.1 needs about "
              f"{int(np.ceil(args.batches * (res / 0.1) ** 2))} batches of {args.batch_size})")


if __name__ == "__main__":
    main()
