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
    valid: bool = False                             # a valid run: exit ``expect``, a result (JSON with --json)
    printed: tuple[str, ...] = ()                   # lines the user's code prints (to stderr, in its worker)

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


def _printed(name: str) -> tuple[str, ...]:
    """What an estimator of ``_ESTIMATORS`` prints: on stderr (its worker's stdout), beside pgverify's one line."""
    return ('{"passed": true}',) if name == "prints-then-raises" else ()


def user_code() -> list[Case]:
    mdp = {"mdp.json": json.dumps(BASE).encode()}
    cases = []
    for name, source in _ESTIMATORS.items():
        timeout = ("--estimator-timeout", "0.5") if name.startswith("sleeps") else ()
        for cmd in ("mc", "check"):
            cases.append(Case("user-code", f"{cmd} {name}", (cmd, "{d}/mdp.json", "--estimator", "{d}/est.py:f",
                                                              "--episodes", "200", *timeout),
                              {**mdp, "est.py": source.encode()}, printed=_printed(name)))
    return cases


# --- limits: runs that once hung or escaped their budgets; user code of `loss` and LQ (subprocess campaign) ------

def wide_mdp(n: int = 20_000) -> dict:
    """One state-action with ``n`` successors (S = n + 1, H = 3): once a n x (n + 1) array of exact moments."""
    S = n + 1
    trans = [[0, 0, s, 1.0 / n] for s in range(1, S)] + [[s, 0, s, 1.0] for s in range(1, S)]
    return {"states": S, "actions": 1, "initial": [1.0] + [0.0] * n, "transitions": {"sparse": trans},
            "rewards": {"sparse": [[s, 0, float(s % 7)] for s in range(S)]}, "terminal": list(range(1, S)),
            "horizon": 3}


def long_mdp() -> dict:
    """Two states, no terminal state, horizon 10^5: once padded N x H arrays beyond the memory limit."""
    return {"initial": [1, 0], "transitions": [[[0.5, 0.5], [0.1, 0.9]], [[0.5, 0.5], [0.9, 0.1]]],
            "rewards": [[1, 0], [0, 1]], "horizon": 100_000}


_ZERO = {"tabular": "np.zeros((episodes.n, *episodes.policy.theta.shape))",
         "lq": "np.zeros((episodes.N, episodes.problem.d))"}
_GOOD = {"tabular": "get_estimator('reward_to_go').per_episode(episodes)",
         "lq": "reward_to_go_estimator(episodes)"}
_IMPORTS = ("import asyncio, concurrent.futures, os, threading, time\nimport numpy as np\n"
            "from verify.checks.estimators import get_estimator\nfrom verify.checks.lq_mc import reward_to_go_estimator\n")
# name -> (exit status, body of f run before it returns, returns the good estimator?)
_VALID_ESTIMATORS = {
    "prints-with-json": (0, "print('{\"passed\": false}')", True),
    "leaves-a-thread": (1, "threading.Thread(target=time.sleep, args=(600,)).start()", False),
    "leaves-a-pool": (1, "concurrent.futures.ThreadPoolExecutor(2).submit(time.sleep, 600)", False),
    "forks-a-child": (1, "os.fork() == 0 and time.sleep(600)", False),
    "monkeypatches-numpy": (1, "np.mean = lambda *a, **k: 0.0; np.abs = lambda x: 0 * x; "
                               "np.allclose = lambda *a, **k: True", False),
}


def _valid_estimator_cases(family: str, kind: str, problem: tuple[str, ...], files: dict) -> list[Case]:
    cases = []
    for name, (code, body, good) in _VALID_ESTIMATORS.items():
        source = f"{_IMPORTS}def f(episodes):\n    {body}\n    return {_GOOD[kind] if good else _ZERO[kind]}\n"
        json_flag = ("--json",) if name == "prints-with-json" else ()
        cases.append(Case(family, f"mc {name}", ("mc", *problem, "--estimator", "{d}/est.py:f", "--episodes", "500",
                                                  *json_flag), {**files, "est.py": source.encode()}, expect=code,
                          valid=True))
    return cases


def limits() -> list[Case]:
    """Valid inputs that once hung or escaped --max-memory / --max-work, and the faults found with them."""
    mdp = {"mdp.json": json.dumps(BASE).encode()}
    null = ("--horizon", "null")
    return [
        Case("limits", "mc-gamma-1-1e-7-null", ("mc", "{d}/mdp.json", "--estimator", "reward_to_go", "--episodes",
                                                "1000", *null, "--gamma", "0.9999999"), mdp),
        Case("limits", "gradient-gamma-1-1e-15-null", ("gradient", "{d}/mdp.json", *null, "--gamma",
                                                       "0.999999999999999"),
             {"mdp.json": json.dumps(_doc(terminal=[])).encode()}),
        Case("limits", "mc-gamma-0.9999-null", ("mc", "{d}/mdp.json", "--estimator", "reward_to_go", "--episodes",
                                                "1000", *null, "--gamma", "0.9999"), mdp, expect=3, valid=True),
        Case("limits", "gradient-horizon-10^5", ("gradient", "{d}/long.json"),
             {"long.json": json.dumps(long_mdp()).encode()}, expect=0, valid=True),
        Case("limits", "mc-horizon-10^5-300M", ("mc", "{d}/long.json", "--estimator", "reward_to_go", "--episodes",
                                                "20", "--max-memory", "300M"),
             {"long.json": json.dumps(long_mdp()).encode()}, expect=3, valid=True),
        Case("limits", "mc-horizon-10^5-work-10^5", ("mc", "{d}/long.json", "--estimator", "reward_to_go",
                                                     "--episodes", "20", "--max-work", "100000"),
             {"long.json": json.dumps(long_mdp()).encode()}),
        Case("limits", "check-20000-successors-300M", ("check", "{d}/wide.json", "--episodes", "2000",
                                                       "--max-memory", "300M"),
             {"wide.json": json.dumps(wide_mdp()).encode()}, expect=0, valid=True),
        Case("limits", "missing-pygame", ("mc", "--gym", "FrozenLake-v1", "--gym-kwargs", "render_mode=human",
                                          "--sampler", "gymnasium", "--estimator", "reward_to_go", "--episodes",
                                          "10")),
        *_valid_estimator_cases("limits", "tabular", ("{d}/mdp.json",), mdp),
    ]


def user_code_lq() -> list[Case]:
    """The user-code family on an LQ problem (its episodes pickled to the worker), and the valid runs."""
    cases = []
    for name, source in _ESTIMATORS.items():
        timeout = ("--estimator-timeout", "0.5") if name.startswith("sleeps") else ()
        for cmd in ("mc", "check"):
            cases.append(Case("user-code-lq", f"{cmd} {name}", (cmd, "--example", "lq1d", "--estimator",
                                                                 "{d}/est.py:f", "--episodes", "200", *timeout),
                              {"est.py": source.encode()}, printed=_printed(name)))
    return cases + _valid_estimator_cases("user-code-lq", "lq", ("--example", "lq1d"), {})


_TORCH_POLICY = ("import asyncio, concurrent.futures, os, sys, threading, time\nimport numpy as np\nimport torch\n"
                 "def policy(n_obs, n_actions):\n    torch.manual_seed(0)\n"
                 "    return torch.nn.Linear(n_obs, n_actions, bias=False).double()\n"
                 "def reinforce(policy, batch):\n"
                 "    logp = torch.distributions.Categorical(logits=policy(batch.obs)).log_prob(batch.actions)\n"
                 "    disc = batch.gamma ** torch.arange(batch.rewards.shape[1], dtype=torch.float64)\n"
                 "    G = (disc * batch.rewards).flip(1).cumsum(1).flip(1)\n"
                 "    return -(logp * G * batch.mask).sum(1).mean()\n")
# name -> (exit status, valid run?, body of the loss before it returns REINFORCE (or zero * it), module-level code)
_LOSSES = {
    "exit0-in-call": (2, False, "sys.exit(0)", ""),
    "exit0-at-import": (2, False, "", "sys.exit(0)"),
    "raises-cancelled": (2, False, "raise asyncio.CancelledError()", ""),
    "raises-generator-exit": (2, False, "raise GeneratorExit('bye')", ""),
    "raises-base-exception": (2, False, "raise Mine('mine')", "class Mine(BaseException):\n    pass"),
    "raises-keyboard-interrupt": (2, False, "raise KeyboardInterrupt", ""),
    "raises-value-error": (2, False, "raise ValueError('line one\\nline two')", ""),
    "exits-process": (2, False, "os._exit(0)", ""),
    "sleeps-swallowing-exceptions": (2, False, "while True:\n        try:\n            time.sleep(60)\n"
                                               "        except Exception:\n            pass", ""),
    "sleeps-at-import": (2, False, "", "time.sleep(60)"),
    "prints-with-json": (0, True, "print('{\"passed\": false}')", ""),
    "leaves-a-thread": (0, True, "threading.Thread(target=time.sleep, args=(600,)).start()", ""),
    "forks-a-child": (0, True, "os.fork() == 0 and time.sleep(600)", ""),
    "monkeypatches-numpy": (1, True, "", "np.mean = lambda *a, **k: 0.0\nnp.abs = lambda x: 0 * x\n"
                                         "np.allclose = lambda *a, **k: True\nnp.isclose = lambda *a, **k: True"),
}


def user_code_loss() -> list[Case]:
    """``pgverify loss`` (PyTorch) with losses that exit, raise BaseExceptions, end the process, hang, print, leave
    threads or children, or monkeypatch numpy."""
    mdp = {"mdp.json": json.dumps(BASE).encode()}
    cases = []
    for name, (code, valid, body, module) in _LOSSES.items():
        ret = "    return 0 * reinforce(policy, batch)\n" if name == "monkeypatches-numpy" else \
            "    return reinforce(policy, batch)\n"
        source = f"{_TORCH_POLICY}{module}\ndef f(policy, batch):\n    {body or 'pass'}\n{ret}"
        timeout = ("--loss-timeout", "5") if name.startswith("sleeps") else ()
        json_flag = ("--json",) if name == "prints-with-json" else ()
        cases.append(Case("user-code-loss", f"loss {name}", ("loss", "{d}/loss.py:f", "{d}/mdp.json", "--policy",
                                                             "{d}/loss.py:policy", "--framework", "torch",
                                                             "--batch-size", "4", *timeout, *json_flag),
                          {**mdp, "loss.py": source.encode()}, expect=code, valid=valid))
    return cases


FAMILIES = {
    "big-integers": big_integers, "non-utf8": non_utf8, "nesting": nesting, "wrong-types": wrong_types,
    "sizes": sizes, "numbers": numbers, "accepted-before": accepted_before, "special-files": special_files,
    "arguments": arguments, "output-paths": output_paths, "user-code": user_code,
}


# Real subprocesses only (benchmarks/hostile_fuzz.py): valid runs of seconds, worker start-ups, PyTorch imports.
FUZZ_FAMILIES = {"limits": limits, "user-code-lq": user_code_lq, "user-code-loss": user_code_loss}


def all_cases() -> list[Case]:
    return [case for family in FAMILIES.values() for case in family()]


def judge(case: Case, code: int, stdout: str, stderr: str) -> str | None:
    """None when the run is what the case expects; else what went wrong (one word first: the class)."""
    lines = [line for line in stderr.strip().splitlines() if line not in case.printed]
    if "Traceback" in stderr:
        return "traceback: " + (lines[-1] if lines else "")
    if "MemoryError" in stderr:
        return "memory-error: " + lines[-1]
    if "internal error" in stderr:
        return "internal-error: " + lines[-1]
    if code != case.expect:
        return f"exit-code: {code} (expected {case.expect}); stderr {stderr.strip()[:200]!r}"
    if case.valid:
        if "--json" in case.argv:
            try:
                json.loads(stdout)
            except ValueError:
                return f"stdout: not one JSON document: {stdout.strip()[:200]!r}"
        return None
    if len(lines) != 1:
        return f"lines: {len(lines)} lines on stderr: {stderr.strip()[:300]!r}"
    if not lines[0].startswith("pgverify") or ("error" not in lines[0] and case.expect == 2):
        return f"message: {lines[0][:200]!r}"
    if stdout.strip():
        return f"stdout: {stdout.strip()[:200]!r}"
    return None
