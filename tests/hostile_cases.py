"""Hostile inputs for ``pgverify``, by family: malformed MDP files, special files, argument vectors, output paths,
user code. Shared by ``tests/test_hostile.py`` (in process, ``verify.cli.main``) and ``benchmarks/hostile_fuzz.py``
(subprocesses under a memory cap and a timeout).

Each ``Case`` is an argument vector plus the files it needs; ``materialize(case, dir)`` writes them and returns the
argv with ``{d}`` replaced by the directory. Every case expects exit 2 (bad usage or input) unless it says
otherwise (130 for an interrupt), with exactly one line on stderr and nothing on stdout; ``keep`` lists files that
must come out unchanged (no clobbering) and no temporary file may be left behind.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BASE = {
    "name": "chain",
    "states": ["s0", "s1", "goal"],
    "actions": ["left", "right"],
    "initial": [1, 0, 0],
    "transitions": [[[1.0, 0.0, 0.0], [0.2, 0.8, 0.0]], [[1.0, 0.0, 0.0], [0.0, 0.2, 0.8]],
                    [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]],
    "rewards": [[-0.1, 0.0], [-0.1, 1.0], [0.0, 0.0]],
    "terminal": ["goal"],
    "gamma": 0.9,
    "horizon": 4,
    "policy": {"type": "tabular_softmax", "theta": [[0.0, 0.5], [0.3, 0.0], [0.0, 0.0]]},
}
SPARSE_BASE = {
    "name": "sparse-chain", "states": 3, "actions": 2, "initial": [1, 0, 0],
    "transitions": {"sparse": [[0, 0, 0, 1.0], [0, 1, 0, 0.2], [0, 1, 1, 0.8], [1, 0, 0, 1.0], [1, 1, 1, 0.2],
                               [1, 1, 2, 0.8], [2, 0, 2, 1.0], [2, 1, 2, 1.0]]},
    "rewards": {"sparse": [[1, 1, 2, 1.0]]},
    "terminal": [2], "gamma": 0.9, "horizon": 4,
}
HOLE = "@@HOLE@@"


@dataclass(frozen=True)
class Case:
    family: str
    name: str
    argv: tuple[str, ...]
    files: dict = field(default_factory=dict)      # relative name -> bytes | "fifo" | "dir" | ("symlink", target)
    expect: int = 2
    keep: tuple[str, ...] = ()                      # files that must be unchanged afterwards

    @property
    def id(self) -> str:
        return f"{self.family}:{self.name}"


def materialize(case: Case, directory: Path) -> list[str]:
    """Create the case's files in ``directory``; the argv with ``{d}`` replaced by it."""
    for rel, content in case.files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content == "fifo":
            os.mkfifo(path)
        elif content == "dir":
            path.mkdir(exist_ok=True)
        elif isinstance(content, tuple) and content[0] == "symlink":
            os.symlink(content[1].replace("{d}", str(directory)), path)
        else:
            path.write_bytes(content)
    return [a.replace("{d}", str(directory)) for a in case.argv]


def snapshot(case: Case, directory: Path) -> dict[str, bytes | None]:
    return {rel: (directory / rel).read_bytes() if (directory / rel).is_file() else None for rel in case.keep}


def stray_temporaries(directory: Path) -> list[str]:
    """Temporary files pgverify may create (atomic writes, probes) that must never be left behind."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob(".*") if p.is_file()
                  and (p.name.startswith(".pgverify-") or ".tmp" in p.name))


def _doc(**changes) -> dict:
    doc = json.loads(json.dumps(BASE))
    for key, value in changes.items():
        doc[key] = value
    return doc


def _with_raw(path: tuple, raw: str, base: dict | None = None) -> bytes:
    """BASE with the value at ``path`` replaced by the raw JSON text ``raw`` (which may be invalid JSON)."""
    doc = json.loads(json.dumps(base or BASE))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = HOLE
    return json.dumps(doc).replace(json.dumps(HOLE), raw).encode()


def _gradient(name: str, content: bytes, family: str, *extra: str) -> Case:
    return Case(family, name, ("gradient", "{d}/mdp.json", *extra), {"mdp.json": content})


# --- MDP file families --------------------------------------------------------------------------------------------

_NUMERIC_PATHS = [("initial", 0), ("transitions", 0, 1, 0), ("rewards", 1, 1), ("policy", "theta", 0, 1)]
_COUNT_PATHS = [("states",), ("actions",), ("horizon",)]


def big_integers() -> list[Case]:
    tokens = {"5000-digits": "9" * 5000, "400-digits": "-" + "9" * 400, "2^63": str(2**63), "2^64": str(2**64),
              "1e19": "10000000000000000000"}
    cases = []
    for path in _NUMERIC_PATHS + _COUNT_PATHS + [("gamma",), ("terminal", 0)]:
        for label, tok in tokens.items():
            if path[0] in ("initial", "transitions", "rewards", "policy") and label in ("2^63", "2^64", "1e19"):
                tok = "-" + tok       # a large negative probability / reward: still invalid (sign or size)
                if path[0] in ("rewards", "policy"):
                    continue          # -2^63 as a reward is a valid finite number below 1e100
            cases.append(_gradient(f"{'.'.join(map(str, path))}={label}", _with_raw(path, tok), "big-integers"))
    return cases


def non_utf8() -> list[Case]:
    valid = json.dumps(BASE).encode()
    rng = random.Random(18)
    cases = [
        _gradient("ff-prefix", b"\xff" + valid, "non-utf8"),
        _gradient("bad-continuation-in-name", valid.replace(b'"chain"', b'"ch\xc3\x28ain"'), "non-utf8"),
        _gradient("latin1-name", valid.replace(b'"chain"', b'"cha\xefne"'), "non-utf8"),
        _gradient("utf16", json.dumps(BASE).encode("utf-16"), "non-utf8"),
        _gradient("overlong-slash", valid.replace(b'"chain"', b'"\xc0\xafx"'), "non-utf8"),
        _gradient("encoded-surrogate", valid.replace(b'"chain"', b'"\xed\xa0\x80"'), "non-utf8"),
        _gradient("truncated-utf8", valid.replace(b'"chain"', b'"\xe2\x82"'), "non-utf8"),
        _gradient("nul-bytes", valid[:40] + b"\x00" * 8 + valid[40:], "non-utf8"),
        _gradient("truncated-json", valid[: len(valid) // 2], "non-utf8"),
        _gradient("empty-file", b"", "non-utf8"),
    ]
    for i in range(12):
        cases.append(_gradient(f"random-bytes-{i}", bytes(rng.randrange(256) for _ in range(rng.choice([1, 64, 4096]))),
                               "non-utf8"))
    for i in range(8):                   # flip one byte of a valid file to a random byte >= 0x80
        data = bytearray(valid)
        data[rng.randrange(len(data))] = rng.randrange(0x80, 0x100)
        cases.append(_gradient(f"flipped-byte-{i}", bytes(data), "non-utf8"))
    return cases


def nesting() -> list[Case]:
    cases = []
    for depth in (65, 1000, 100000):
        deep = "[" * depth + "]" * depth
        for key in ("description", "terminal", "initial", "name"):
            cases.append(_gradient(f"{key}-{depth}-levels", _with_raw((key,), deep), "nesting"))
        cases.append(_gradient(f"objects-{depth}-levels", _with_raw(("description",), '{"a":' * depth + "1" +
                                                                    "}" * depth), "nesting"))
    cases.append(_gradient("unbalanced-100000", _with_raw(("description",), "[" * 100000), "nesting"))
    return cases


_WRONG = {"NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity", "minus-one": "-1", "zero": "0",
          "1.5": "1.5", "true": "true", "false": "false", "null": "null", "empty-object": "{}", "empty-list": "[]",
          "string": '"x"', "goal-object": '{"goal": true}', "list-true": "[true]", "list-list-true": "[[true]]",
          "1e400": "1e400", "list-NaN": "[NaN]", "list-string": '["a"]', "list-object": "[{}]"}
_VALID = {("name", "string"), ("description", "string"), ("gamma", "zero"), ("horizon", "null"),
          ("terminal", "empty-list")}


def wrong_types() -> list[Case]:
    cases = []
    for key in ("name", "description", "states", "actions", "initial", "transitions", "rewards", "terminal",
                "gamma", "horizon", "policy"):
        for label, tok in _WRONG.items():
            if (key, label) not in _VALID:
                cases.append(_gradient(f"{key}={label}", _with_raw((key,), tok), "wrong-types"))
    for path in (("policy", "type"), ("policy", "theta"), ("policy", "theta", 0), ("transitions", 0),
                 ("transitions", 0, 0), ("rewards", 0), ("terminal", 0)):
        for label in ("NaN", "true", "null", "empty-object", "string", "list-true", "empty-list"):
            if path == ("terminal", 0) and label == "string":
                continue
            cases.append(_gradient(f"{'.'.join(map(str, path))}={label}", _with_raw(path, _WRONG[label]),
                                   "wrong-types"))
    return cases


def sizes() -> list[Case]:
    def sparse(**changes) -> bytes:
        doc = json.loads(json.dumps(SPARSE_BASE))
        doc.update(changes)
        return json.dumps(doc).encode()

    return [
        _gradient("states=10^9", json.dumps(_doc(states=10**9)).encode(), "sizes"),
        _gradient("states=1e9-float", _with_raw(("states",), "1e9"), "sizes"),
        _gradient("states=2^62", json.dumps(_doc(states=2**62)).encode(), "sizes"),
        _gradient("actions=10^17", json.dumps(_doc(actions=10**17)).encode(), "sizes"),
        _gradient("horizon=10^9", json.dumps(_doc(horizon=10**9)).encode(), "sizes"),
        _gradient("horizon=10^17", json.dumps(_doc(horizon=10**17)).encode(), "sizes"),
        _gradient("sparse-states=10^9", sparse(states=10**9, initial=[1, 0, 0]), "sizes"),
        _gradient("sparse-actions=10^12", sparse(actions=10**12), "sizes"),
        _gradient("sparse-no-states", sparse(states=None), "sizes"),
        Case("sizes", "mc-episodes=118059162071", ("mc", "{d}/mdp.json", "--estimator", "reward_to_go",
                                                    "--episodes", "118059162071"), {"mdp.json": json.dumps(BASE).encode()}),
        # gamma = 0.9999 with horizon null now runs (chunks fit the memory limit); 1 - 1e-15 needs a step cap of
        # 3 10^16 to keep the truncation bias below 1e-12, refused in a second (it once looped for ever).
        Case("sizes", "mc-gamma-1e-15-null", ("mc", "{d}/mdp.json", "--estimator", "reward_to_go", "--episodes",
                                               "1000", "--horizon", "null", "--gamma", "0.999999999999999"),
             {"mdp.json": json.dumps(BASE).encode()}),
        Case("sizes", "gradient-horizon-override", ("gradient", "{d}/mdp.json", "--horizon", "1000000000"),
             {"mdp.json": json.dumps(BASE).encode()}),
        Case("sizes", "max-memory-tiny", ("gradient", "{d}/mdp.json", "--max-memory", "1K"),
             {"mdp.json": json.dumps(BASE).encode()}),
        Case("sizes", "plot-episodes-10^12", ("plot", "{d}/mdp.json", "--out", "{d}/figs", "--episodes",
                                              "1000000000000"), {"mdp.json": json.dumps(BASE).encode()}),
    ]


def numbers() -> list[Case]:
    cases = []
    for label, tok in (("1e200", "1e200"), ("1e308", "1e308"), ("-1e308", "-1e308"), ("1e101", "1e101"),
                       ("1e400", "1e400"), ("-1e400", "-1e400")):
        for path in (("rewards", 1, 1), ("policy", "theta", 0, 0), ("transitions", 0, 1, 0), ("initial", 0)):
            cases.append(_gradient(f"{'.'.join(map(str, path))}={label}", _with_raw(path, tok), "numbers"))
        cases.append(Case("numbers", f"mc-rewards={label}", ("mc", "{d}/mdp.json", "--estimator", "reward_to_go",
                                                             "--episodes", "500"),
                          {"mdp.json": _with_raw(("rewards", 1, 1), tok)}))
        cases.append(Case("numbers", f"check-rewards={label}", ("check", "{d}/mdp.json", "--episodes", "500"),
                          {"mdp.json": _with_raw(("rewards", 1, 1), tok)}))
    cases.append(_gradient("gamma=1e308", _with_raw(("gamma",), "1e308"), "numbers"))
    return cases


def accepted_before() -> list[Case]:
    """Inputs an earlier version accepted silently (wrong answers, not errors)."""
    policy_features = {"type": "tabular_softmax", "theta": [[0, 0]] * 3, "features": [[[1], [0]]] * 3}
    return [
        _gradient("terminal=0", json.dumps(_doc(terminal=0)).encode(), "accepted-before"),
        _gradient("terminal=false", json.dumps(_doc(terminal=False)).encode(), "accepted-before"),
        _gradient("terminal={}", json.dumps(_doc(terminal={})).encode(), "accepted-before"),
        _gradient("terminal={goal:true}", json.dumps(_doc(terminal={"goal": True})).encode(), "accepted-before"),
        _gradient("initial-bools", json.dumps(_doc(initial=[True, False, False])).encode(), "accepted-before"),
        _gradient("transition-bool", _with_raw(("transitions", 0, 0, 0), "true"), "accepted-before"),
        _gradient("reward-bool", _with_raw(("rewards", 1, 1), "true"), "accepted-before"),
        _gradient("theta-bool", _with_raw(("policy", "theta", 0, 0), "false"), "accepted-before"),
        _gradient("tabular-with-features", json.dumps(_doc(policy=policy_features)).encode(), "accepted-before"),
        _gradient("duplicate-top-key", json.dumps(BASE).replace('"gamma": 0.9', '"gamma": 0.9, "gamma": 0.5')
                  .encode(), "accepted-before"),
        _gradient("duplicate-policy-key", json.dumps(BASE).replace('"type": "tabular_softmax"',
                                                                   '"type": "tabular_softmax", "type": "x"').encode(),
                  "accepted-before"),
        _gradient("unknown-key", json.dumps(_doc(discount=0.5)).encode(), "accepted-before"),
        _gradient("horizon=4.0", _with_raw(("horizon",), "4.0"), "accepted-before"),
        _gradient("states-numbers", json.dumps(_doc(states=[0, 1, 2])).encode(), "accepted-before"),
        _gradient("lone-surrogate-name", json.dumps(_doc(name="\ud800")).encode(), "accepted-before"),
        _gradient("lone-low-surrogate", _with_raw(("name",), '"a\\udc00b"'), "accepted-before"),
        _gradient("policy-null", json.dumps(_doc(policy=None)).encode(), "accepted-before"),
        _gradient("rewards-1e308", _with_raw(("rewards", 1, 1), "1e308"), "accepted-before"),
    ]


def _npy(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def special_files() -> list[Case]:
    mdp = {"mdp.json": json.dumps(BASE).encode()}
    theta = np.zeros((3, 2))
    cases = [Case("special-files", f"file={name}", ("gradient", path)) for name, path in
             (("dev-zero", "/dev/zero"), ("dev-urandom", "/dev/urandom"), ("dev-null", "/dev/null"),
              ("missing", "{d}/missing.json"), ("dir", "{d}"), ("empty-path", ""))]
    cases += [
        Case("special-files", "file=fifo", ("gradient", "{d}/fifo.json"), {"fifo.json": "fifo"}),
        Case("special-files", "file=dangling-link", ("gradient", "{d}/link.json"),
             {"link.json": ("symlink", "{d}/nowhere.json")}),
    ]
    thetas = {
        "dev-zero": ("/dev/zero", {}), "dev-urandom": ("/dev/urandom", {}), "fifo": ("{d}/t.npy", {"t.npy": "fifo"}),
        "complex": ("{d}/t.npy", {"t.npy": _npy(theta + 1j)}),
        "object-pickle": ("{d}/t.npy", {"t.npy": _npy(np.array([[None, 1]] * 3, dtype=object))}),
        "bool": ("{d}/t.npy", {"t.npy": _npy(theta > 0)}),
        "strings": ("{d}/t.npy", {"t.npy": _npy(np.array([["a", "b"]] * 3))}),
        "structured": ("{d}/t.npy", {"t.npy": _npy(np.zeros(3, dtype=[("a", "f8"), ("b", "f8")]))}),
        "shape": ("{d}/t.npy", {"t.npy": _npy(np.zeros(7))}),
        "nan": ("{d}/t.npy", {"t.npy": _npy(theta + np.nan)}),
        "huge": ("{d}/t.npy", {"t.npy": _npy(theta + 1e300)}),
        "truncated": ("{d}/t.npy", {"t.npy": _npy(theta)[:-9]}),
        "header-lies": ("{d}/t.npy", {"t.npy": _npy(theta).replace(b"(3, 2)", b"(300000000, 2)")}),
        "not-npy": ("{d}/t.npy", {"t.npy": b"hello"}),
        "json-bools": ("{d}/t.json", {"t.json": b"[[true, false], [0, 0], [0, 0]]"}),
        "json-nested": ("{d}/t.json", {"t.json": b"[" * 5000 + b"]" * 5000}),
        "json-scalar": ("{d}/t.json", {"t.json": b"3"}),
        "json-bad-policy": ("{d}/t.json", {"t.json": b'{"type": "gaussian"}'}),
    }
    for name, (path, files) in thetas.items():
        cases.append(Case("special-files", f"theta={name}", ("gradient", "{d}/mdp.json", "--theta", path),
                          {**mdp, **files}))
    return cases


def arguments() -> list[Case]:
    mdp = {"mdp.json": json.dumps(BASE).encode()}
    vectors = [
        (), ("bogus",), ("gradient",), ("gradient", "--bogus"), ("gradient", "{d}/mdp.json", "--gym", "FrozenLake-v1"),
        ("gradient", "{d}/mdp.json", "--method", "magic"), ("gradient", "{d}/mdp.json", "--horizon", "0"),
        ("gradient", "{d}/mdp.json", "--horizon", "-3"), ("gradient", "{d}/mdp.json", "--horizon", "1e3"),
        ("gradient", "{d}/mdp.json", "--horizon", "9" * 5000), ("gradient", "{d}/mdp.json", "--gamma", "2"),
        ("gradient", "{d}/mdp.json", "--gamma", "nan"), ("gradient", "{d}/mdp.json", "--gamma", "-inf"),
        ("gradient", "{d}/mdp.json", "--gym-kwargs", "a=1"), ("gradient", "{d}/mdp.json", "--method", "enumerate",
                                                               "--horizon", "null"),
        ("mc", "{d}/mdp.json"), ("mc", "{d}/mdp.json", "--estimator", "nope"),
        ("mc", "{d}/mdp.json", "--estimator", "reward_to_go", "--episodes", "0"),
        ("mc", "{d}/mdp.json", "--estimator", "reward_to_go", "--episodes", "-5"),
        ("mc", "{d}/mdp.json", "--estimator", "reward_to_go", "--episodes", "1e6"),
        ("mc", "{d}/mdp.json", "--estimator", "reward_to_go", "--episodes", "9" * 5000),
        ("mc", "{d}/mdp.json", "--estimator", "reward_to_go", "--alpha", "0"),
        ("mc", "{d}/mdp.json", "--estimator", "reward_to_go", "--alpha", "1"),
        ("mc", "{d}/mdp.json", "--estimator", "reward_to_go", "--alpha", "nan"),
        ("mc", "{d}/mdp.json", "--estimator", "reward_to_go", "--seed", "-1"),
        ("mc", "{d}/mdp.json", "--estimator", "reward_to_go", "--seed", "x"),
        ("mc", "{d}/mdp.json", "--estimator", "reward_to_go", "--covariance", "diagonal"),
        ("mc", "{d}/mdp.json", "--estimator", "reward_to_go", "--sampler", "gymnasium"),
        ("mc", "{d}/mdp.json", "--estimator", ":"), ("mc", "{d}/mdp.json", "--estimator", "nomodule_xyz:f"),
        ("mc", "{d}/mdp.json", "--estimator", "{d}/missing.py:f"), ("mc", "{d}/mdp.json", "--estimator", "os:nope"),
        ("mc", "{d}/mdp.json", "--estimator", "os:sep"),
        ("mc", "{d}/mdp.json", "--estimator", "reward_to_go", "--estimator-timeout", "-1"),
        ("mc", "{d}/mdp.json", "--estimator", "reward_to_go", "--max-memory", "lots"),
        ("mc", "{d}/mdp.json", "--estimator", "reward_to_go", "--max-work", "0"),
        ("check", "{d}/mdp.json", "--alpha", "2"), ("fuzz",), ("fuzz", "no-such-claim"),
        ("fuzz", "rtg-variance", "--examples", "0"), ("plot", "{d}/mdp.json"), ("latex",),
        ("export-gym",), ("export-gym", "NoSuchEnv-v0", "-o", "{d}/x.json"),
        ("gradient", "--gym", "NoSuchEnv-v0"), ("gradient", "--gym", "FrozenLake-v1", "--gym-kwargs", "noequals"),
        ("gradient", "--gym", "FrozenLake-v1", "--gym-kwargs", "map_name=9x9"),
        ("gradient", "--gym", "FrozenLake-v1", "--gym-kwargs", "bogus_kwarg=1"),
        ("gradient", "\udcff"), ("gradient", "{d}/mdp.json\x00x"),
    ]
    return [Case("arguments", " ".join(v)[:80] or "(none)", v, mdp) for v in vectors]


def output_paths() -> list[Case]:
    mdp = {"mdp.json": json.dumps(BASE).encode()}
    existing = {"out.tex": b"precious\n", "out.json": b"precious\n", "sub/": "dir"}
    keep = ("out.tex", "out.json")
    targets = {"empty": "", "dir": "{d}", "dir-slash": "{d}/sub/", "proc": "/proc/pgverify-out.file",
               "missing-parent": "{d}/nope/x.out", "file-as-parent": "{d}/mdp.json/x.out",
               "dev-null": "/dev/null", "long-name": "{d}/" + "n" * 300, "nul": "{d}/a\x00b",
               # a legal name whose temporary sibling (.NAME.XXXXXXXX.tmp.EXT) is too long: refused before the run
               "long-extension": "{d}/out." + "x" * 202}
    cases = []
    for label, target in targets.items():
        for force in ((), ("--force",)):
            if label == "dev-null" and not force:
                continue      # refused without --force as an existing file, with --force as not a regular file
            tag = f"{label}{' --force' if force else ''}"
            plot_ok = label in ("dir", "dir-slash", "missing-parent", "long-extension")   # plot --out: a directory
            cases += [] if plot_ok else [
                Case("output-paths", f"plot --out {tag}", ("plot", "{d}/mdp.json", "--out", target, *force,
                                                           "--episodes", "50"), {**mdp, **existing}, keep=keep)]
            cases += [
                Case("output-paths", f"latex {tag}", ("latex", "-o", target, *force), {**existing}, keep=keep),
                Case("output-paths", f"report --json {tag}", ("report", "--quick", "--json", target, *force),
                     {**existing}, keep=keep),
                Case("output-paths", f"export-gym {tag}", ("export-gym", "FrozenLake-v1", "-o", target, *force),
                     {**existing}, keep=keep),
                Case("output-paths", f"fuzz {tag}", ("fuzz", "rtg-variance", "--examples", "5", "-o", target, *force),
                     {**existing}, keep=keep),
            ]
    for cmd in (("latex", "-o", "{d}/out.tex"), ("report", "--quick", "--json", "{d}/out.json"),
                ("export-gym", "FrozenLake-v1", "-o", "{d}/out.json"),
                ("fuzz", "rtg-variance", "--examples", "5", "-o", "{d}/out.json")):
        cases.append(Case("output-paths", f"{cmd[0]} existing without --force", cmd, {**existing}, keep=keep))
    for option in ("--plots", "--html"):       # an empty name is an error, not "no output"
        cases.append(Case("output-paths", f"report {option} empty", ("report", "--quick", option, "")))
    cases.append(Case("output-paths", "latex onto dangling symlink", ("latex", "-o", "{d}/link.tex"),
                      {"link.tex": ("symlink", "{d}/nowhere.tex")}))
    cases.append(Case("output-paths", "plot --out onto dangling symlink",
                      ("plot", "{d}/mdp.json", "--out", "{d}/link", "--episodes", "50"),
                      {**mdp, "link": ("symlink", "{d}/nowhere")}))
    return cases


_ESTIMATORS = {
    "exit0-in-call": "import sys\ndef f(episodes):\n    sys.exit(0)\n",
    "exit0-at-import": "import sys\nsys.exit(0)\ndef f(episodes):\n    pass\n",
    "exit3-in-call": "import sys\ndef f(episodes):\n    sys.exit(3)\n",
    "exit-none": "def f(episodes):\n    raise SystemExit\n",
    "multiline-exception": "def f(episodes):\n    raise ValueError('line one\\nline two\\nline three')\n",
    "raises-at-import": "raise RuntimeError('broken\\nmodule')\n",
    "syntax-error": "def f(episodes)\n    return 0\n",
    "returns-nan": "import numpy as np\ndef f(episodes):\n    return np.full((episodes.n,) + episodes.policy.theta.shape,"
                   " np.nan)\n",
    "returns-huge": "import numpy as np\ndef f(episodes):\n    return np.full((episodes.n,) + episodes.policy.theta.shape,"
                    " 1e300)\n",
    "returns-string": "def f(episodes):\n    return 'gradient'\n",
    "returns-complex": "import numpy as np\ndef f(episodes):\n    return np.ones((episodes.n,) + "
                       "episodes.policy.theta.shape) * 1j\n",
    "recursion": "def f(episodes):\n    return f(episodes)\n",
    "not-callable": "f = 3\n",
    "sleeps": "import time\ndef f(episodes):\n    time.sleep(60)\n",
    "sleeps-at-import": "import time\ntime.sleep(60)\ndef f(episodes):\n    pass\n",
    # The timeout cannot be swallowed: the worker process is killed, no exception is raised in the user's code.
    "sleeps-swallowing-exceptions": "import time\ndef f(episodes):\n    while True:\n        try:\n"
                                    "            time.sleep(60)\n        except Exception:\n            pass\n",
    "raises-cancelled": "import asyncio\ndef f(episodes):\n    raise asyncio.CancelledError()\n",
    "raises-generator-exit": "def f(episodes):\n    raise GeneratorExit('bye')\n",
    "raises-base-exception": "class Mine(BaseException):\n    pass\ndef f(episodes):\n    raise Mine('mine')\n",
    "raises-keyboard-interrupt": "def f(episodes):\n    raise KeyboardInterrupt\n",
    "exits-process": "import os\ndef f(episodes):\n    os._exit(0)\n",
    "prints-then-raises": "def f(episodes):\n    print('{\"passed\": true}')\n    raise ValueError('after a print')\n",
}


def user_code() -> list[Case]:
    mdp = {"mdp.json": json.dumps(BASE).encode()}
    cases = []
    for name, source in _ESTIMATORS.items():
        timeout = ("--estimator-timeout", "0.5") if name.startswith("sleeps") else ()
        for cmd in ("mc", "check"):
            cases.append(Case("user-code", f"{cmd} {name}", (cmd, "{d}/mdp.json", "--estimator", "{d}/est.py:f",
                                                              "--episodes", "200", *timeout),
                              {**mdp, "est.py": source.encode()}))
    return cases


FAMILIES = {
    "big-integers": big_integers, "non-utf8": non_utf8, "nesting": nesting, "wrong-types": wrong_types,
    "sizes": sizes, "numbers": numbers, "accepted-before": accepted_before, "special-files": special_files,
    "arguments": arguments, "output-paths": output_paths, "user-code": user_code,
}


def all_cases() -> list[Case]:
    return [case for family in FAMILIES.values() for case in family()]


def judge(case: Case, code: int, stdout: str, stderr: str) -> str | None:
    """None when the run is what the case expects; else what went wrong (one word first: the class)."""
    lines = stderr.strip().splitlines()
    if "Traceback" in stderr:
        return "traceback: " + (lines[-1] if lines else "")
    if "MemoryError" in stderr:
        return "memory-error: " + lines[-1]
    if "internal error" in stderr:
        return "internal-error: " + lines[-1]
    if code != case.expect:
        return f"exit-code: {code} (expected {case.expect}); stderr {stderr.strip()[:200]!r}"
    if len(lines) != 1:
        return f"lines: {len(lines)} lines on stderr: {stderr.strip()[:300]!r}"
    if not lines[0].startswith("pgverify") or ("error" not in lines[0] and case.expect == 2):
        return f"message: {lines[0][:200]!r}"
    if stdout.strip():
        return f"stdout: {stdout.strip()[:200]!r}"
    return None
