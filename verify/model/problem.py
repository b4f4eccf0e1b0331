"""The MDP file format: one JSON object holding an MDP and the policy to differentiate.

    {"name": "...", "states": 3 | [names], "actions": 2 | [names], "initial": rho0[s],
     "transitions": P[s][a][s'] | {"sparse": [[s, a, s', p], ...]},
     "rewards": r[s][a] | r[s][a][s'] | {"sparse": [[s, a, r] | [s, a, s', r], ...]},
     "terminal": [index | name, ...], "gamma": 0.9, "horizon": 10 | null,
     "policy": {"type": "tabular_softmax", "theta": [[...]]}
             | {"type": "linear_softmax", "features": phi[s][a][k], "theta": [k values]}}

The format is published as a JSON Schema (``verify/schemas/mdp.schema.json``, ``mdp_schema()``). Reading a file
goes through one boundary, in this order, before anything is allocated from the declared sizes:
``verify.model.io`` (a regular file, bounded size, UTF-8, strict JSON: finite numbers, bounded integers and nesting,
no duplicate keys), ``validate_document`` (top-level keys, numeric arrays checked in bulk: rectangular, numbers
only — booleans are not numbers — finite, |x| <= ``verify.model.io.MAX_ABS_VALUE``; the rest against the schema), then
the size budget (``check_declared_sizes``), then ``TabularMDP``'s semantic checks (row sums, state names,
termination). Unknown keys are errors, not warnings: a misspelt ``"horizn"`` or ``"discount"`` would otherwise
silently change the problem that is checked (horizon null, gamma 1).
"""
from __future__ import annotations

import functools
import json
import operator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verify.errors import InvalidMDPError
from verify.model.io import describe_value as _short
from verify.model.io import numeric_array  # noqa: F401 - verify.problem.numeric_array, as documented
from verify.model.io import (
    MAX_ABS_VALUE,
    atomic_write,
    read_json_file,
    require_memory,
    require_work,
)
from verify.model.mdp import TabularMDP, dumps_rows, file_entries, within_horizon
from verify.model.policy import Policy, policy_from_dict

__all__ = [
    "SCHEMA_PATH",
    "Problem",
    "check_declared_sizes",
    "check_problem_budget",
    "load_problem",
    "mdp_schema",
    "numeric_array",
    "problem_from_dict",
    "problem_to_dict",
    "save_problem",
    "validate_document",
    "write_mdp_file",
]

SCHEMA_PATH = Path(__file__).parents[1] / "schemas" / "mdp.schema.json"
_KEYS = {"name", "states", "actions", "initial", "transitions", "rewards", "terminal", "gamma", "horizon", "policy",
         "description"}
_REQUIRED = ("initial", "transitions", "rewards")

@dataclass(frozen=True)
class Problem:
    """An MDP together with the policy whose gradient is checked."""

    mdp: TabularMDP
    policy: Policy

    def __post_init__(self) -> None:
        self.policy.check_compatible(self.mdp.n_states, self.mdp.n_actions)
        check_problem_budget(self.mdp)


# --- the boundary: schema, bulk numeric checks, size budget ------------------------------------------------------

@functools.cache
def mdp_schema() -> dict:
    """The published JSON Schema of the MDP file (``verify/schemas/mdp.schema.json``)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@functools.cache
def _validator():
    import jsonschema

    base = jsonschema.Draft202012Validator
    # Strict JSON types: 1.0 is not an integer (the default checker accepts it), booleans are never numbers.
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _, x: isinstance(x, int) and not isinstance(x, bool))
    strict = jsonschema.validators.extend(base, type_checker=checker)
    return strict(mdp_schema())


_EXPECTED = {
    "name": "a string", "description": "a string",
    "states": "a positive integer or a non-empty list of distinct names",
    "actions": "a positive integer or a non-empty list of distinct names",
    "initial": "a list of numbers rho0[s]",
    "transitions": 'P[s][a][s\'] (nested lists of numbers) or {"sparse": [[s, a, s_next, p], ...]}',
    "rewards": 'r[s][a], r[s][a][s\'] or {"sparse": [[s, a, r] or [s, a, s_next, r], ...]}',
    "terminal": "a list of state indices or names",
    "gamma": "a number in [0, 1]",
    "horizon": "a positive integer or null",
    "policy": 'an object {"type": "tabular_softmax" | "linear_softmax", ...}',
}
def _location(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _schema_message(error) -> str:
    """One line for the most relevant jsonschema error, naming the entry."""
    import jsonschema

    err = jsonschema.exceptions.best_match([error]) if error.context else error
    path = list(err.absolute_path)
    where = _location(path) or "the file"
    if len(path) == 1 and path[0] in _EXPECTED and err.validator in ("type", "oneOf", "minimum", "maximum",
                                                                     "minItems", "enum", "const", "maxLength"):
        return f"{where} must be {_EXPECTED[path[0]]}, got {_short(err.instance)}"
    if err.validator == "type":
        return f"{where} must be {' or '.join(_as_list(err.validator_value))}, got {_short(err.instance)}"
    if err.validator in ("enum", "const"):
        known = err.validator_value if err.validator == "enum" else [err.validator_value]
        if path[-1:] == ["type"] and path[:1] == ["policy"]:
            return f"{where} {_short(err.instance)} is unknown; known types: {known}"
        return f"{where} is {_short(err.instance)}, expected one of {known}"
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        return f"{where} has unknown keys {extra}"
    if err.validator == "required":
        return f"{where} misses {err.message.split(' is a required')[0]}"
    if err.validator in ("minimum", "maximum"):
        return f"{where} = {err.instance!r} is out of range ({err.validator} {err.validator_value})"
    if err.validator == "uniqueItems":
        return f"{where} has duplicate names"
    if err.validator in ("minItems", "maxItems"):
        return f"{where} has {len(err.instance)} entries ({err.validator} {err.validator_value})"
    return f"{where}: {err.message.splitlines()[0][:200]}"


def _as_list(value) -> list[str]:
    names = {"integer": "an integer", "number": "a number", "string": "a string", "array": "a list",
             "object": "an object", "null": "null", "boolean": "a boolean"}
    return [names.get(v, v) for v in (value if isinstance(value, list) else [value])]


def _column_ok(column, refs: bool) -> bool:
    """Whether a column of sparse rows passes the per-row checks, decided in bulk (C-level type scan, numpy)."""
    kinds = set(map(type, column))
    if refs:
        if not kinds <= {int, str}:
            return False
        ints = column if kinds == {int} else [x for x in column if type(x) is int] if int in kinds else []
        return not ints or min(ints) >= 0
    if not kinds <= {int, float}:
        return False
    values = np.array(column, dtype=float)
    return bool(np.all(np.abs(values) <= MAX_ABS_VALUE))


def _rows_ok(rows: list, widths: tuple[int, ...]) -> bool:
    """Whether every sparse row is a list of an allowed width with index/name references and a bounded number.

    Decided in bulk: row types and lengths by C-level maps, then column by column (``itemgetter``); False sends the
    rows to the per-row loop of ``_sparse_entries``, which names the first offending row.
    """
    if set(map(type, rows)) != {list}:
        return False
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    present = np.unique(lengths)
    if not set(present.tolist()) <= set(widths):
        return False
    for w in present.tolist():
        picked = np.flatnonzero(lengths == w).tolist()
        group = rows if present.size == 1 else [rows[picked[0]]] if len(picked) == 1 \
            else operator.itemgetter(*picked)(rows)
        if not all(_column_ok(list(map(operator.itemgetter(j), group)), refs=j < w - 1) for j in range(w)):
            return False
    return True


def _sparse_entries(spec, where: str, widths: tuple[int, ...]) -> int:
    """Check the rows of ``{"sparse": [...]}`` (list, width, index/name types, numbers); their count.

    A bulk pass (``_rows_ok``) accepts valid rows; only when it cannot, the rows are checked one by one so that the
    error names the first offending row.
    """
    if not isinstance(spec, dict) or set(spec) != {"sparse"} or not isinstance(spec["sparse"], list):
        return 0                       # the schema names the problem
    rows = spec["sparse"]
    if not rows or _rows_ok(rows, widths):
        return len(rows)
    ref_types, num_types = (int, str), (int, float)
    for i, row in enumerate(rows):
        if type(row) is not list or len(row) not in widths:
            raise InvalidMDPError(f"{where}.sparse[{i}] is {_short(row)}, not a row of "
                                  f"{' or '.join(map(str, widths))} entries")
        *refs, x = row
        for j, ref in enumerate(refs):
            if type(ref) not in ref_types or type(ref) is int and ref < 0:
                raise InvalidMDPError(f"{where}.sparse[{i}][{j}] is {_short(ref)}, not an index or a name")
        if type(x) not in num_types:
            raise InvalidMDPError(f"{where}.sparse[{i}][{len(refs)}] is {_short(x)}, not a number")
        if not abs(x) <= MAX_ABS_VALUE:
            raise InvalidMDPError(f"{where}.sparse[{i}][{len(refs)}] is {x} (|x| above {MAX_ABS_VALUE:g})")
    return len(rows)


_MAX_INDEX = 999999999999999999       # the schema's bound on counts, indices and the horizon


def _number(x) -> bool:
    return type(x) in (int, float) and -MAX_ABS_VALUE <= x <= MAX_ABS_VALUE


def _ref(x) -> bool:
    return type(x) is str or type(x) is int and 0 <= x <= _MAX_INDEX


def _labels(x) -> bool:
    if type(x) is int:
        return 1 <= x <= _MAX_INDEX
    return type(x) is list and bool(x) and set(map(type, x)) == {str} and max(map(len, x)) <= 1000 \
        and len(set(x)) == len(x)


def _nested(x, depth: int) -> bool:
    if type(x) is not list or not x:
        return False
    return all(_number(v) for v in x) if depth == 1 else all(_nested(v, depth - 1) for v in x)


def _sparse_rows(x, widths: tuple[int, ...], min_items: int) -> bool:
    if type(x) is not dict or set(x) != {"sparse"} or type(x["sparse"]) is not list or len(x["sparse"]) < min_items:
        return False
    return all(type(r) is list and len(r) in widths and all(map(_ref, r[:-1])) and _number(r[-1])
               for r in x["sparse"])


def _fast_accepts(doc) -> bool:
    """True only for documents the published schema accepts (checked on the skeleton, without importing jsonschema).

    A sufficient test, not the authority: False means "ask jsonschema", which accepts or names the error, so a
    document this test misjudges as invalid costs only time. ``tests/test_mdp_validation.py`` checks, on one table
    of valid and invalid documents, that it never accepts what the schema refuses and accepts the valid ones.
    """
    if type(doc) is not dict or not set(doc) <= _KEYS or not all(k in doc for k in _REQUIRED):
        return False
    checks = {
        "name": lambda x: type(x) is str and len(x) <= 1000,
        "description": lambda x: type(x) is str,
        "states": _labels, "actions": _labels,
        "initial": lambda x: _nested(x, 1),
        "transitions": lambda x: _nested(x, 3) or _sparse_rows(x, (4,), 1),
        "rewards": lambda x: _nested(x, 2) or _nested(x, 3) or _sparse_rows(x, (3, 4), 0),
        "terminal": lambda x: type(x) is list and all(map(_ref, x)),
        "gamma": lambda x: _number(x) and 0 <= x <= 1,
        "horizon": lambda x: x is None or type(x) is int and 1 <= x <= _MAX_INDEX,
        "policy": _policy_shape,
    }
    return all(checks[key](value) for key, value in doc.items())


def _policy_shape(x) -> bool:
    if type(x) is not dict:
        return False
    if x.get("type") == "tabular_softmax":
        return set(x) <= {"type", "theta"} and ("theta" not in x or _nested(x["theta"], 2))
    if x.get("type") == "linear_softmax":
        return set(x) == {"type", "features", "theta"} and _nested(x["features"], 3) and _nested(x["theta"], 1)
    return False


def _stub_labels(data: dict, skeleton: dict) -> None:
    """Stand the long lists of names in for themselves once checked in bulk (jsonschema walks each name)."""
    for key in ("states", "actions"):
        if _labels(data.get(key)) and type(data[key]) is list:
            skeleton[key] = data[key][:1]
    terminal = data.get("terminal")
    if type(terminal) is list and terminal:
        kinds = set(map(type, terminal))
        ints = [x for x in terminal if type(x) is int] if int in kinds else []
        if kinds <= {int, str} and (not ints or 0 <= min(ints) and max(ints) <= _MAX_INDEX):
            skeleton["terminal"] = terminal[:1]


def validate_document(data) -> dict:
    """Check a parsed MDP file against the published schema; numeric arrays come back as float arrays.

    Dense arrays are checked in bulk by ``numeric_array``, sparse rows and lists of names by C-level passes
    (``_rows_ok``, ``_stub_labels``), then replaced in a small skeleton (the schema checks the same rules on them,
    but per element in Python: 1.6 s for a 10^5-state file). The skeleton passes ``_fast_accepts`` or, if that
    cannot tell, ``jsonschema``, which names the error (so jsonschema is not even imported for a valid file).

    Raises:
      InvalidMDPError: one line naming the entry.
    """
    if not isinstance(data, dict):
        raise InvalidMDPError(f"an MDP file must hold a JSON object, got {_short(data)}")
    unknown = set(data) - _KEYS
    if unknown:
        raise InvalidMDPError(f"unknown keys {sorted(unknown)}; known keys: {sorted(_KEYS)}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise InvalidMDPError(f"missing required keys {missing}")
    out, skeleton = dict(data), dict(data)
    stand_in = {1: [0.0], 2: [[0.0]], 3: [[[0.0]]]}
    for key, depths in (("initial", (1,)), ("transitions", (3,)), ("rewards", (2, 3))):
        if isinstance(data[key], list):
            out[key] = numeric_array(data[key], key, depths)
            skeleton[key] = stand_in[out[key].ndim]
        elif isinstance(data[key], dict) and key != "initial":
            _sparse_entries(data[key], key, (4,) if key == "transitions" else (3, 4))
            rows = data[key].get("sparse")
            if isinstance(rows, list) and rows:
                skeleton[key] = {"sparse": rows[:1]}
    policy = data.get("policy")
    if isinstance(policy, dict) and policy.get("type") in ("tabular_softmax", "linear_softmax"):
        linear = policy["type"] == "linear_softmax"
        out["policy"], skeleton["policy"] = dict(policy), dict(policy)
        for key, depths in (("theta", (1,) if linear else (2,)), ("features", (3,))):
            if isinstance(policy.get(key), list) and (linear or key == "theta"):
                out["policy"][key] = numeric_array(policy[key], f"policy.{key}", depths)
                skeleton["policy"][key] = stand_in[depths[0]]
    _stub_labels(data, skeleton)
    if _fast_accepts(skeleton):
        return out
    error = next(iter(sorted(_validator().iter_errors(skeleton), key=lambda e: list(e.absolute_path)[:1])), None)
    if error is not None:
        raise InvalidMDPError(_schema_message(error))
    return out


def _count(labels, arrays_size: int | None) -> int | None:
    if isinstance(labels, list):
        return len(labels)
    if isinstance(labels, int):
        return labels
    return arrays_size


def check_declared_sizes(doc: dict) -> None:
    """Refuse, before building the model, sizes whose arrays would not fit the memory limit.

    The model needs ``model_bytes``: about 8 bytes x (4 S A S) for dense input (P and r, given and kept), or ~160
    bytes per sparse entry at the peak of the build, plus ~100 bytes per state and 24 per state-action pair.

    Raises:
      InvalidMDPError: the declared counts disagree with the arrays; UsageError: over the memory limit.
    """
    P = doc["transitions"]
    dense = isinstance(P, np.ndarray)
    S = _count(doc.get("states"), P.shape[0] if dense else None)
    A = _count(doc.get("actions"), P.shape[1] if dense else None)
    if dense:
        for key, n, axis in (("states", S, 0), ("actions", A, 1)):
            if n != P.shape[axis]:
                shown = f"lists {n} names" if isinstance(doc.get(key), list) else f"is {n}"
                raise InvalidMDPError(f"{key} {shown} but transitions has {P.shape[axis]} {key}")
    if S is None or A is None:
        raise InvalidMDPError("sparse transitions need 'states' and 'actions' (counts or names)")
    nnz = P.size if dense else len(P["sparse"])
    require_memory(model_bytes(S, A, nnz, dense=dense),
                   f"the model (S = {S} states, A = {A} actions, {nnz} transition entries)")
    if isinstance(doc["initial"], np.ndarray) and doc["initial"].shape != (S,):
        raise InvalidMDPError(f"initial has shape {doc['initial'].shape}, expected ({S},)")


SPARSE_ENTRY_BYTES = 160.0


def model_bytes(S: int, A: int, nnz: int, *, dense: bool) -> float:
    """Peak memory of building the model: about 8 bytes x (4 S A S) for dense input (P and r, given and kept), or
    ~160 bytes per sparse entry (the successor lists kept, 32, and the sort and checks' temporaries; measured
    154-175 on the gridworlds of ``benchmarks/bench_scale.py``), plus ~100 bytes per state and 24 per state-action
    pair (names, CSR pointers)."""
    return 100.0 * S + 24.0 * S * A + (32.0 * S * A * S if dense else SPARSE_ENTRY_BYTES * nnz)



DP_ENTRY_BYTES = 80.0      # per transition among the live states: the CSR operator, P_pi, its transpose, the build
DP_PAIR_BYTES = 48.0       # per live state-action pair: rbar, the policy, the gradient's [n, A] sums


def dp_bytes(horizon: int, n: int, nnz: int, A: int, *, sparse: bool) -> float:
    """Peak memory of the exact gradient's dynamic programming on ``n`` live states with ``nnz`` transitions
    among them: the value table [H + 1, n] (sparse; dense operators also keep the occupancies, [H + 1, 2 n], and
    the [n A, n] operator), the operators and the [n, A] sums (``benchmarks/bench_scale.py`` compares it with
    the measured peak)."""
    if sparse:
        return 8.0 * (horizon + 1) * n + DP_ENTRY_BYTES * nnz + DP_PAIR_BYTES * n * A
    return 16.0 * (horizon + 1) * n + 8.0 * 3 * n * A * n + DP_PAIR_BYTES * n * A


def live_size(mdp: TabularMDP) -> tuple[int, int]:
    """(n, nnz): the states some episode can act in (``mdp.within_horizon``) and their transition entries."""
    states, _ = within_horizon(mdp)
    ip, A = mdp.successors.indptr, mdp.n_actions
    return int(states.size), int((ip[(states + 1) * A] - ip[states * A]).sum())


def check_problem_budget(mdp: TabularMDP) -> None:
    """Refuse a horizon whose dynamic programming (``dp_bytes``) or work H x nnz exceeds the limits.

    Every command that differentiates exactly runs DP for a finite horizon, so this is checked when the Problem
    is built (after --horizon overrides too), before any of it is allocated. The DP runs on the states reachable
    within the horizon (``verify.model.mdp.within_horizon``); at least SPARSE_STATES of them use sparse operators.
    """
    H = mdp.horizon
    if H is None:
        return
    n, nnz = live_size(mdp)
    require_memory(dp_bytes(H, n, nnz, mdp.n_actions, sparse=n >= SPARSE_STATES),
                   f"the dynamic-programming table (horizon {H} x {n} live state{'s' * (n != 1)})")
    require_work(float(H) * max(nnz, 1), f"dynamic programming over horizon {H} "
                 f"({nnz} transition entries per step)")


SPARSE_STATES = 150     # verify.numerics.exact.SPARSE_MIN_STATES (the DP's choice of operator at low density)


def problem_from_dict(data: dict, *, default_name: str = "mdp") -> Problem:
    """Validate a parsed MDP file and build the Problem.

    >>> p = problem_from_dict({"initial": [1], "transitions": [[[1.0], [1.0]]], "rewards": [[1, 0]],
    ...                        "horizon": 2})
    >>> p.mdp.n_actions, p.policy.probs.tolist()
    (2, [[0.5, 0.5]])

    Raises:
      InvalidMDPError: naming the offending entry; UsageError: sizes over the memory limit.
    """
    from verify.model.lq import is_lq_document       # "kind": "lq": a linear-quadratic problem (verify.model.lq), not tabular

    if is_lq_document(data):
        from verify.model.lq import lq_from_dict

        return lq_from_dict(data, default_name=default_name)
    doc = validate_document(data)
    check_declared_sizes(doc)
    terminal = doc.get("terminal")
    mdp = TabularMDP(
        initial=doc["initial"], transitions=doc["transitions"], rewards=doc["rewards"],
        terminal=terminal if terminal else None, gamma=doc.get("gamma", 1.0), horizon=doc.get("horizon"),
        states=doc.get("states"), actions=doc.get("actions"), name=doc.get("name", default_name))
    policy = policy_from_dict(doc.get("policy"), mdp.n_states, mdp.n_actions)
    return Problem(mdp, policy)


def load_problem(path: str | Path) -> Problem:
    """Read and validate an MDP file (see the module docstring for the order of the checks).

    Raises:
      UsageError: the file cannot be read, is not a regular file, or is over a size limit.
      InvalidMDPError: the file is not strict UTF-8 JSON or describes an invalid MDP.
    """
    path = Path(path)
    data = read_json_file(path, "MDP file")
    try:
        return problem_from_dict(data, default_name=path.stem)
    except InvalidMDPError as exc:
        raise InvalidMDPError(f"{path}: {exc}") from None


def problem_to_dict(problem: Problem) -> dict:
    """The MDP file (as a dict) that ``problem_from_dict`` turns back into an equal problem."""
    mdp = problem.mdp
    terminal = [int(i) for i in mdp.terminal.nonzero()[0]]
    return {
        "name": mdp.name,
        "states": list(mdp.states),
        "actions": list(mdp.actions),
        "initial": mdp.initial.tolist(),
        **file_entries(mdp),          # dense for small MDPs given dense, else the sparse rows
        "terminal": terminal,
        "gamma": mdp.gamma,
        "horizon": mdp.horizon,
        "policy": problem.policy.to_dict(),
    }


def save_problem(problem: Problem, path: str | Path, *, force: bool = False) -> Path:
    """Write the MDP file; refuses to overwrite an existing file unless ``force``.

    Raises:
      UsageError: the file exists (and not ``force``) or cannot be written.
    """
    return write_mdp_file(problem_to_dict(problem), path, force=force)


def write_mdp_file(data: dict, path: str | Path, *, force: bool = False) -> Path:
    """Write an MDP file given as a dict (e.g. ``problem_to_dict`` plus a description); never overwrites silently.

    Raises:
      UsageError: the file exists (and not ``force``) or cannot be written.
    """
    text = dumps_rows(data)            # one row per line (json's indent puts every number on its own line)
    return atomic_write(path, text, force=force, what="MDP file")
