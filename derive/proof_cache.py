"""A content-addressed cache of proved steps, shared by ``pgverify report``, ``latex`` and ``report --html``.

Grounding a step (``derive.grounding.ground_step``) is a pure function of the step (its two sides, rule and
number), the sizes, the method and its random points, and of the code that interprets them. Each verdict is
stored under

    key = sha256(fingerprint, kind, srepr(before), srepr(after), rule, number, sizes, method, points, seed, ...),
    fingerprint = sha256(pgverify version, Python and SymPy versions, the bytes of every .py and .json file of
                         the ``derive`` and ``verify`` packages),

so that any change to the expression, the rule or the grounding code is a different key: an entry is never stale,
only unused. Where it lives (first that applies):

    $PGVERIFY_CACHE_DIR/proofs/,  $XDG_CACHE_HOME/pgverify/proofs/,  ~/.cache/pgverify/proofs/

``pgverify cache clear`` empties it, ``pgverify cache info`` prints the directory and entry count, and
``PGVERIFY_NO_CACHE=1`` (or ``report``/``latex --no-cache``) turns it off for one run. Every entry is one JSON file
written atomically (a temporary file in the same directory, then ``os.replace``) and carries a checksum of its
payload and its own key: a truncated, edited or unreadable entry, an unwritable directory or any other fault reads
as a miss and the step is proved again. The cache never decides a verdict: it only replays one this exact code
reached for this exact step.

>>> key("example", 1, 2) == key("example", 1, 2) != key("example", 1, 3)
True
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

__all__ = ["ENV_DIR", "ENV_OFF", "cache_dir", "enabled", "fingerprint", "key", "get", "put", "clear", "info",
           "disabled", "expr_text", "memo"]

ENV_DIR = "PGVERIFY_CACHE_DIR"
ENV_OFF = "PGVERIFY_NO_CACHE"
_SUBDIR = "proofs"
_SUFFIX = ".json"
_FORMAT = 1

#: set by ``disabled()`` (the CLI's ``--no-cache``) in addition to the environment variable
_OFF = [False]


def cache_dir() -> Path:
    """The directory holding the entries (not created here)."""
    root = os.environ.get(ENV_DIR)
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"   # the XDG spec: absolute only
        root = str(base / "pgverify")
    return Path(root) / _SUBDIR


def enabled() -> bool:
    """False under ``PGVERIFY_NO_CACHE`` (any value but "", "0") or inside ``disabled()``."""
    return not _OFF[0] and os.environ.get(ENV_OFF, "") in ("", "0")


@contextlib.contextmanager
def disabled():
    """Within this block every lookup misses and nothing is written (``--no-cache``)."""
    before, _OFF[0] = _OFF[0], True
    try:
        yield
    finally:
        _OFF[0] = before


@functools.cache
def fingerprint() -> str:
    """sha256 of everything a cached verdict depends on besides its key's parts: versions and derive's code."""
    h = hashlib.sha256()
    import sympy

    h.update(f"format {_FORMAT}; python {sys.version_info[:2]}; sympy {sympy.__version__}".encode())
    # derive/ and its sibling verify/ (the numeric half, the built-in examples): any edit is a new fingerprint, and
    # pgverify's version is a literal of verify/__init__.py (importlib.metadata's lookup cost 20-26 ms a process)
    root = Path(__file__).resolve().parent.parent
    for package in ("derive", "verify"):
        for path in sorted((root / package).rglob("*")):
            if path.suffix in (".py", ".json") and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(root)).encode() + b"\0")
                h.update(path.read_bytes())
    return h.hexdigest()


def key(kind: str, *parts) -> str:
    """The entry name of ``parts`` (strings, numbers, tuples of them) of the given kind, under this code."""
    text = json.dumps([fingerprint(), kind, *[_plain(p) for p in parts]], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(p):
    if isinstance(p, (tuple, list)):
        return [_plain(q) for q in p]
    if p is None or isinstance(p, (bool, int, float, str)):
        return p
    raise TypeError(f"cache key parts must be plain values, got {type(p).__name__}")


def expr_text(e) -> str:
    """A canonical text of a SymPy expression for keys: class names, symbols with their assumptions, numbers,
    and the arguments of commutative operations sorted (so argument order cannot split or merge keys).

    Unlike ``srepr`` it does not order terms for printing (a third of a warm report's time).

    >>> from sympy import Symbol
    >>> a, b = Symbol("a", positive=True), Symbol("b")
    >>> expr_text(a + b) == expr_text(b + a) != expr_text(Symbol("a") + b)
    True
    """
    memo: dict = {}

    def walk(x) -> str:
        out = memo.get(x)
        if out is not None:
            return out
        cls = type(x).__name__
        if x.is_Symbol:
            facts = ",".join(f"{k}={v}" for k, v in sorted(x.assumptions0.items()))
            out = f"{cls}({x.name!r};{facts})"
        elif x.is_Atom or not x.args:
            out = f"{cls}({x})"
        else:
            parts = [walk(a) for a in x.args]
            if (x.is_Add or x.is_Mul) and x.is_commutative:
                parts.sort()
            out = f"{cls}({','.join(parts)})"
        memo[x] = out
        return out

    return walk(e)


def _checksum(k: str, payload) -> str:
    return hashlib.sha256((k + json.dumps(payload, sort_keys=True, separators=(",", ":"))).encode()).hexdigest()


def _path(k: str) -> Path:
    return cache_dir() / k[:2] / (k + _SUFFIX)


def get(k: str):
    """The payload stored under ``k``, or None (disabled, absent, unreadable, corrupted or not this key's)."""
    if not enabled():
        return None
    try:
        entry = json.loads(_path(k).read_text(encoding="utf-8"))
        if entry.get("key") == k and entry.get("check") == _checksum(k, entry["payload"]):
            return entry["payload"]
    except Exception:  # noqa: BLE001  (any fault is a miss: the step is proved again)
        pass
    return None


def put(k: str, payload) -> bool:
    """Store ``payload`` (plain JSON) under ``k`` atomically; False (and nothing raised) when it cannot."""
    if not enabled():
        return False
    tmp = None
    try:
        path = _path(k)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"key": k, "check": _checksum(k, payload), "payload": payload})
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=_SUFFIX, dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        return True
    except Exception:  # noqa: BLE001  (read-only or full disk: the run goes on uncached)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return False


def _entries():
    root = cache_dir()
    if not root.is_dir():
        return []
    return [p for p in root.glob("*/*" + _SUFFIX) if p.is_file()] + [p for p in root.glob("*/.tmp-*") if p.is_file()]


def clear() -> int:
    """Delete every entry (only this cache's files, never anything else in the directory); the number removed."""
    n = 0
    for p in _entries():
        with contextlib.suppress(OSError):
            p.unlink()
            n += 1
    root = cache_dir()
    if root.is_dir():
        for d in root.iterdir():
            with contextlib.suppress(OSError):
                if d.is_dir() and len(d.name) == 2:
                    d.rmdir()   # empty shard directories only
    return n


def info() -> dict:
    """{"directory", "entries", "bytes", "enabled"}: what ``pgverify cache info`` prints."""
    entries = [p for p in _entries() if not p.name.startswith(".tmp-")]
    size = 0
    for p in entries:
        with contextlib.suppress(OSError):
            size += p.stat().st_size
    return {"directory": str(cache_dir()), "entries": len(entries), "bytes": size, "enabled": enabled()}


def memo(kind: str, parts: tuple, compute, encode, decode):
    """``compute()``, or its value replayed from the cache under ``key(kind, *parts)``.

    ``encode`` turns the value into plain JSON and ``decode`` back; an entry ``decode`` cannot read (any exception)
    is a miss. Use only for values that are a function of ``parts`` and the fingerprinted code alone.
    """
    try:
        k = key(kind, *parts) if enabled() else None
    except Exception:  # noqa: BLE001  (the code cannot be fingerprinted, e.g. an unreadable file: compute, uncached)
        k = None
    if k is not None:
        hit = get(k)
        if hit is not None:
            try:
                return decode(hit)
            except Exception:  # noqa: BLE001  (an entry of the wrong shape is a miss)
                pass
    value = compute()
    if k is not None:
        try:
            put(k, encode(value))
        except Exception:  # noqa: BLE001  (a value that will not encode is simply not cached)
            pass
    return value
