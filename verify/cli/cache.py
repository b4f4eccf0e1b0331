"""``pgverify cache``: where the proof cache lives, and clearing it (``derive.proof_cache``)."""
from __future__ import annotations

from verify.cli._args import EXIT_OK


def register(sub) -> None:
    p = sub.add_parser("cache", help="show or clear the cache of proved derivation steps",
                       description="report, latex and report --html replay the verdicts of derivation steps this "
                                   "same pgverify code has proved before, keyed by a hash of each step's "
                                   "expressions, rule, sizes and of the grounding code (an entry is never stale). "
                                   "The cache lives in $PGVERIFY_CACHE_DIR/proofs, else "
                                   "$XDG_CACHE_HOME/pgverify/proofs, else ~/.cache/pgverify/proofs; "
                                   "PGVERIFY_NO_CACHE=1 or --no-cache (report, latex) turn it off for one run. "
                                   "The JAX adapter's compiled executables (jax's persistent compilation cache, "
                                   "unless you configured jax's own) live beside it in .../pgverify/jax; info and "
                                   "clear cover both.")
    p.add_argument("action", choices=("info", "clear"), help="info: the directory and the number of entries; "
                                                            "clear: delete every entry")
    p.set_defaults(func=run_cache)


def run_cache(args) -> int:
    from derive import proof_cache
    from verify.frameworks import _jax_compile

    if args.action == "clear":
        n = proof_cache.clear()
        print(f"removed {n} cached proof{'s' if n != 1 else ''} from {proof_cache.cache_dir()}")
        n = _jax_compile.clear_cache()
        print(f"removed {n} compiled JAX executable{'s' if n != 1 else ''} from {_jax_compile.cache_directory()}")
        return EXIT_OK
    info = proof_cache.info()
    state = "on" if info["enabled"] else f"off ({proof_cache.ENV_OFF} is set)"
    print(f"proof cache: {info['directory']}\n{info['entries']} entries, {info['bytes'] / 1024:.1f} KiB; {state}")
    jax = _jax_compile.cache_info()
    print(f"JAX compilation cache: {jax['directory']}\n{jax['entries']} executables, {jax['bytes'] / 1024:.1f} KiB; "
          + ("on" if jax["enabled"] else f"off ({_jax_compile.ENV_OFF} is set)"))
    return EXIT_OK
