r"""Linear-quadratic control with a linear Gaussian policy: the continuous model whose policy gradient is exact.

The model (state x in R^n, control u in R^m, time t = 0 .. H - 1, or t >= 0 for ``horizon: null``)::

    x_0 ~ N(mu0, Sigma0),   u_t ~ N(K x_t + k, diag(sigma^2)),  sigma = exp(log_std),
    x_{t+1} = A x_t + B u_t + w_t,   w_t ~ N(0, W),
    r_t = -(x_t^T Q x_t + u_t^T R u_t),   J(K, k, log_std) = E[sum_t gamma^t r_t].

Exact J and grad J (``lq_gradient``) come from two recursions. Backward, the policy's quadratic cost-to-go
C_t(x) = x^T P_t x + 2 p_t^T x + c_t (so V_t(x) = -C_t(x)), from C_H = 0, through the Q-cost's blocks
H_uu = R + gamma B^T P_{t+1} B, H_ux = gamma B^T P_{t+1} A, h_u = gamma B^T p_{t+1}. Forward, the state's mean
m_t and second moment M_t = E[x_t x_t^T] under the closed loop F = A + B K. The policy-gradient theorem with the
Q-function of time t held fixed then gives, per step (Fazel et al. 2018, Lemma 1, for the deterministic K; the
stochastic policy adds k and log_std)::

    dJ/dK       = -sum_t w_t 2 [(H_uu K + H_ux) M_t + (H_uu k + h_u) m_t^T]
    dJ/dk       = -sum_t w_t 2 [(H_uu K + H_ux) m_t + H_uu k + h_u]
    dJ/dlog_std = -sum_t w_t 2 diag(H_uu) sigma^2

with w_t = gamma^t. (w_t = 1 gives the exact mean of the restarted-discount estimator, ``weights="restart"``.)
For ``horizon: null`` (gamma < 1) the stationary P solves the discrete Lyapunov equation
P = gamma F^T P F + Q + K^T R K, and sum_t gamma^t M_t another one (``scipy.linalg.solve_discrete_lyapunov``);
both exist when the discounted closed loop is stable, rho(sqrt(gamma) F) < 1, which the model checks.

The parameter vector theta is [K (m x n, row-major), k (m), log_std (m)]; ``LQGradient.flat`` is grad J in
that order, ``LQProblem.parameter_names`` names each entry.

The file format (``"kind": "lq"``, schema ``verify/schemas/lq.schema.json``)::

    {"kind": "lq", "name": "...", "A": [[..]], "B": [[..]], "Q": [[..]], "R": [[..]], "W": [[..]],
     "initial_mean": [..], "initial_cov": [[..]], "gamma": 0.9, "horizon": 10 | null,
     "policy": {"type": "linear_gaussian", "K": [[..]], "k": [..], "log_std": [..]}}

>>> lq = load_lq_example("lq1d")
>>> res = lq_gradient(lq)
>>> round(res.J, 6), res.grad_log_std.shape
(-5.175671, (1,))
"""
from __future__ import annotations

import functools
import json
import math
import weakref
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np

from verify.errors import InvalidMDPError, UsageError
from verify.model.io import MAX_ABS_VALUE, numeric_array, require_memory, require_work

__all__ = ["LQ_EXAMPLE_NAMES", "LQ_SCHEMA_PATH", "LQGradient", "LQProblem", "LQValues", "is_lq_document",
           "load_lq_example", "lq_from_dict", "lq_gradient", "lq_objective", "lq_to_dict", "lq_values",
           "truncation_horizon"]

LQ_SCHEMA_PATH = Path(__file__).parents[1] / "schemas" / "lq.schema.json"
LQ_EXAMPLE_NAMES = ("lq1d", "lq2d", "lq1d_discounted", "lq2d_discounted")
_KEYS = {"kind", "name", "description", "A", "B", "Q", "R", "W", "initial_mean", "initial_cov", "gamma", "horizon",
         "policy"}
_REQUIRED = ("A", "B", "Q", "R", "initial_mean", "policy")
_SYM_RTOL = 1e-12       # a matrix is symmetric when |M - M^T| <= this times max|M|
_PSD_RTOL = 1e-12       # eigenvalues above -this times the largest |eigenvalue| count as >= 0
MAX_STABLE_RADIUS = 1.0 - 1e-9   # rho(sqrt(gamma) F) must stay below this for horizon null


def _matrix(value, where: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    arr = numeric_array(value, where, (2,))
    if shape is not None and arr.shape != shape:
        raise InvalidMDPError(f"{where} has shape {list(arr.shape)}, expected {list(shape)}")
    return arr


def _vector(value, where: str, size: int) -> np.ndarray:
    arr = numeric_array(value, where, (1,))
    if arr.shape != (size,):
        raise InvalidMDPError(f"{where} has {arr.size} entries, expected {size}")
    return arr


def _symmetric_psd(M: np.ndarray, where: str, *, definite: bool = False) -> None:
    big = float(np.abs(M).max(initial=0.0))
    if np.abs(M - M.T).max(initial=0.0) > _SYM_RTOL * max(big, 1e-300):
        i, j = np.unravel_index(int(np.argmax(np.abs(M - M.T))), M.shape)
        raise InvalidMDPError(f"{where} is not symmetric: {where}[{i}][{j}] = {M[i, j]!r}, "
                              f"{where}[{j}][{i}] = {M[j, i]!r}")
    lam = np.linalg.eigvalsh(M) if M.size else np.zeros(0)
    low = float(lam.min(initial=0.0))
    if definite and low <= _PSD_RTOL * max(big, 1e-300):
        raise InvalidMDPError(f"{where} must be positive definite; its smallest eigenvalue is {low:.3g}")
    if low < -_PSD_RTOL * max(big, 1e-300):
        raise InvalidMDPError(f"{where} must be positive semi-definite (a covariance or a cost); its smallest "
                              f"eigenvalue is {low:.3g}")


@dataclass(frozen=True, eq=False)
class LQProblem:
    """An LQ problem with its linear Gaussian policy, validated on construction and read-only afterwards.

    Attributes:
      A [n, n], B [n, m]: dynamics; W [n, n]: process-noise covariance (PSD).
      Q [n, n] (PSD), R [m, m] (PSD): the reward is -(x^T Q x + u^T R u).
      mu0 [n], Sigma0 [n, n] (PSD): the initial state's distribution.
      K [m, n], k [m], log_std [m]: the policy N(K x + k, diag(exp(2 log_std))).
      gamma in [0, 1]; horizon: a positive int (number of actions), or None (infinite, gamma < 1).
    """

    A: np.ndarray
    B: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    W: np.ndarray
    mu0: np.ndarray
    Sigma0: np.ndarray
    K: np.ndarray
    k: np.ndarray
    log_std: np.ndarray
    gamma: float = 1.0
    horizon: int | None = 10
    name: str = "lq"
    kind: str = field(default="lq", init=False)

    def __post_init__(self) -> None:
        A = _as_float(self.A, "A", 2)
        n = A.shape[0]
        if A.shape != (n, n) or n == 0:
            raise InvalidMDPError(f"A must be a square matrix, got shape {list(A.shape)}")
        B = _as_float(self.B, "B", 2)
        if B.shape[0] != n or B.shape[1] == 0:
            raise InvalidMDPError(f"B has shape {list(B.shape)}, expected [{n}, m] (A is {n} x {n})")
        m = B.shape[1]
        shapes = {"Q": (n, n), "R": (m, m), "W": (n, n), "Sigma0": (n, n), "K": (m, n)}
        vals = {"A": A, "B": B}
        for key, shape in shapes.items():
            arr = _as_float(getattr(self, key), key, 2)
            if arr.shape != shape:
                raise InvalidMDPError(f"{key} has shape {list(arr.shape)}, expected {list(shape)}")
            vals[key] = arr
        for key, size in (("mu0", n), ("k", m), ("log_std", m)):
            arr = _as_float(getattr(self, key), key, 1)
            if arr.shape != (size,):
                raise InvalidMDPError(f"{key} has {arr.size} entries, expected {size}")
            vals[key] = arr
        horizon = self.horizon
        if horizon is not None:
            from verify.errors import positive_int
            horizon = positive_int(horizon, "horizon", InvalidMDPError, alternative="or null")
        _check_budget(n, m, horizon)        # before the O(n^3) checks below
        for key in ("Q", "R", "W", "Sigma0"):
            _symmetric_psd(vals[key], _FILE_NAMES.get(key, key))
        if np.abs(vals["log_std"]).max() > 50:
            raise InvalidMDPError(f"policy.log_std = {vals['log_std'].tolist()} is out of range (|log_std| <= 50: "
                                  "the covariance diag(exp(2 log_std)) must be positive definite and finite)")
        gamma = float(self.gamma)
        if not 0.0 <= gamma <= 1.0 or isinstance(self.gamma, bool):
            raise InvalidMDPError(f"gamma must be a number in [0, 1], got {self.gamma!r}")
        for key, arr in vals.items():
            arr.setflags(write=False)
            object.__setattr__(self, key, arr)
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "horizon", horizon)
        object.__setattr__(self, "name", str(self.name))
        if horizon is None:
            self._check_stable()

    # --- sizes and names -----------------------------------------------------------------------------------------

    @property
    def n(self) -> int:
        """State dimension."""
        return self.A.shape[0]

    @property
    def m(self) -> int:
        """Action dimension."""
        return self.B.shape[1]

    @property
    def d(self) -> int:
        """Number of policy parameters, m n + 2 m."""
        return self.m * self.n + 2 * self.m

    @property
    def sigma(self) -> np.ndarray:
        return np.exp(self.log_std)

    @property
    def theta(self) -> np.ndarray:
        """[K.ravel(), k, log_std], the flat parameter vector [d]."""
        return np.concatenate([self.K.ravel(), self.k, self.log_std])

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple([f"K[{i}, {j}]" for i in range(self.m) for j in range(self.n)]
                     + [f"k[{i}]" for i in range(self.m)] + [f"log_std[{i}]" for i in range(self.m)])

    def split(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(K-part [..., m, n], k-part [..., m], log_std-part [..., m]) of flat vectors [..., d]."""
        flat = np.asarray(flat)
        assert flat.shape[-1] == self.d, (flat.shape, self.d)
        mn = self.m * self.n
        lead = flat.shape[:-1]
        return (flat[..., :mn].reshape(*lead, self.m, self.n), flat[..., mn:mn + self.m], flat[..., mn + self.m:])

    def with_theta(self, theta) -> "LQProblem":
        """The same problem with the policy's flat parameters replaced."""
        K, k, s = self.split(np.asarray(theta, dtype=float))
        return self.replace(K=K, k=k, log_std=s)

    def replace(self, **changes) -> "LQProblem":
        """A validated copy with fields changed (``horizon``, ``gamma``, ``K`` ...)."""
        return replace(self, **changes)

    @property
    def closed_loop(self) -> np.ndarray:
        """F = A + B K."""
        return self.A + self.B @ self.K

    def discounted_radius(self) -> float:
        """rho(sqrt(gamma) F): below 1 exactly when sum_t gamma^t E|x_t|^2 is finite (for any noise)."""
        return float(math.sqrt(self.gamma) * np.abs(np.linalg.eigvals(self.closed_loop)).max())

    def _check_stable(self) -> None:
        if self.gamma >= 1.0:
            raise InvalidMDPError("horizon null needs gamma < 1 for an LQ problem (with gamma = 1 the quadratic "
                                  "cost never stops; give a finite horizon)")
        rho = self.discounted_radius()
        if not rho < MAX_STABLE_RADIUS:
            raise InvalidMDPError(f"the discounted closed loop is unstable: rho(sqrt(gamma) (A + B K)) = {rho:.6g} "
                                  ">= 1, so J is infinite for horizon null (stabilise K, lower gamma or give a "
                                  "finite horizon)")

    def __repr__(self) -> str:
        return (f"LQProblem(name={self.name!r}, n={self.n}, m={self.m}, gamma={self.gamma:g}, "
                f"horizon={self.horizon})")


def _check_budget(n: int, m: int, horizon: int | None) -> None:
    """Refuse, before any O(n^3) work, value tables [H + 1, n, n] or recursions H (n + m)^3 over the limits."""
    H = horizon if horizon is not None else 1
    require_memory(8.0 * (H + 1) * (n * n + 2 * m * n + n + 1), f"the LQ value tables (horizon {H}, state "
                   f"dimension {n})")
    require_work(float(H + 4) * (n + m) ** 3, f"the LQ recursions (horizon {H}, {n} states, {m} actions)")


_FILE_NAMES = {"Sigma0": "initial_cov", "mu0": "initial_mean", "K": "policy.K", "k": "policy.k",
               "log_std": "policy.log_std"}


def _as_float(value, key: str, ndim: int) -> np.ndarray:
    where = _FILE_NAMES.get(key, key)
    try:
        arr = np.array(value, dtype=float)
    except (TypeError, ValueError):
        raise InvalidMDPError(f"{where} must be {'a matrix' if ndim == 2 else 'a vector'} of numbers") from None
    if arr.ndim != ndim:
        raise InvalidMDPError(f"{where} must be {'a matrix' if ndim == 2 else 'a vector'} of numbers, got "
                              f"{arr.ndim} dimensions")
    bad = ~(np.abs(arr) <= MAX_ABS_VALUE)
    if bad.any():
        idx = "".join(f"[{i}]" for i in np.argwhere(bad)[0])
        raise InvalidMDPError(f"{where}{idx} is {arr[bad][0]} (must be finite, |x| <= {MAX_ABS_VALUE:g})")
    return arr


# --- the file format -----------------------------------------------------------------------------------------------

def is_lq_document(data) -> bool:
    """Whether a parsed MDP file declares ``"kind": "lq"`` (every other file is a tabular MDP)."""
    return isinstance(data, dict) and "kind" in data


@functools.cache
def lq_schema() -> dict:
    """The published JSON Schema of the LQ file (``verify/schemas/lq.schema.json``)."""
    return json.loads(LQ_SCHEMA_PATH.read_text(encoding="utf-8"))


def lq_from_dict(data: dict, *, default_name: str = "lq") -> LQProblem:
    """Validate a parsed ``"kind": "lq"`` file and build the LQProblem.

    >>> lq_from_dict({"kind": "lq", "A": [[1]], "B": [[1]], "Q": [[1]], "R": [[1]], "initial_mean": [0],
    ...               "policy": {"type": "linear_gaussian", "K": [[-0.5]]}}).horizon
    10
    >>> lq_from_dict({"kind": "lq", "A": [[1]], "B": [[1]], "Q": [[1]], "R": [[-1]], "initial_mean": [0],
    ...               "policy": {"type": "linear_gaussian", "K": [[-0.5]]}})
    Traceback (most recent call last):
    ...
    verify.errors.InvalidMDPError: R must be positive semi-definite (a covariance or a cost); its smallest eigenvalue is -1

    Raises:
      InvalidMDPError: one line naming the entry (unknown keys, shapes, symmetry, definiteness, stability).
    """
    if not isinstance(data, dict):
        raise InvalidMDPError(f"an MDP file must hold a JSON object, got {type(data).__name__}")
    if data.get("kind") != "lq":
        raise InvalidMDPError(f"kind is {data.get('kind')!r}; the only kind is 'lq' (a tabular MDP file has no "
                              "'kind' key)")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise InvalidMDPError(f"unknown keys {unknown} in an LQ file; known keys: {sorted(_KEYS)}")
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise InvalidMDPError(f"missing required keys {missing} in an LQ file")
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            raise InvalidMDPError(f"{key} must be a string")
    A = _matrix(data["A"], "A")
    n = A.shape[0]
    if A.shape != (n, n):
        raise InvalidMDPError(f"A must be a square matrix, got shape {list(A.shape)}")
    B = _matrix(data["B"], "B")
    m = B.shape[1]
    if B.shape[0] != n:
        raise InvalidMDPError(f"B has shape {list(B.shape)}, expected [{n}, m] (A is {n} x {n})")
    Q = _matrix(data["Q"], "Q", (n, n))
    R = _matrix(data["R"], "R", (m, m))
    W = _matrix(data["W"], "W", (n, n)) if "W" in data else np.zeros((n, n))
    mu0 = _vector(data["initial_mean"], "initial_mean", n)
    Sigma0 = _matrix(data["initial_cov"], "initial_cov", (n, n)) if "initial_cov" in data else np.zeros((n, n))
    policy = data["policy"]
    if not isinstance(policy, dict) or policy.get("type") != "linear_gaussian":
        raise InvalidMDPError('policy must be an object {"type": "linear_gaussian", "K": [[..]], "k": [..], '
                              '"log_std": [..]}')
    extra = sorted(set(policy) - {"type", "K", "k", "log_std"})
    if extra:
        raise InvalidMDPError(f"policy has unknown keys {extra}; known keys: ['K', 'k', 'log_std', 'type']")
    K = _matrix(policy["K"], "policy.K", (m, n)) if "K" in policy else np.zeros((m, n))
    k = _vector(policy["k"], "policy.k", m) if "k" in policy else np.zeros(m)
    log_std = _vector(policy["log_std"], "policy.log_std", m) if "log_std" in policy else np.zeros(m)
    gamma = data.get("gamma", 1.0)
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)):
        raise InvalidMDPError(f"gamma must be a number in [0, 1], got {gamma!r}")
    horizon = data.get("horizon", 10)
    return LQProblem(A=A, B=B, Q=Q, R=R, W=W, mu0=mu0, Sigma0=Sigma0, K=K, k=k, log_std=log_std, gamma=gamma,
                     horizon=horizon, name=data.get("name", default_name))


def lq_to_dict(lq: LQProblem) -> dict:
    """The file (as a dict) that ``lq_from_dict`` turns back into an equal problem."""
    return {"kind": "lq", "name": lq.name, "A": lq.A.tolist(), "B": lq.B.tolist(), "Q": lq.Q.tolist(),
            "R": lq.R.tolist(), "W": lq.W.tolist(), "initial_mean": lq.mu0.tolist(),
            "initial_cov": lq.Sigma0.tolist(), "gamma": lq.gamma, "horizon": lq.horizon,
            "policy": {"type": "linear_gaussian", "K": lq.K.tolist(), "k": lq.k.tolist(),
                       "log_std": lq.log_std.tolist()}}


def load_lq_example(name: str) -> LQProblem:
    """The built-in LQ example ``name`` (package data ``verify/examples/NAME.json``).

    Raises:
      UsageError: not one of ``LQ_EXAMPLE_NAMES``.
    """
    if name not in LQ_EXAMPLE_NAMES:
        raise UsageError(f"unknown LQ example {name!r}; the built-in LQ examples are {', '.join(LQ_EXAMPLE_NAMES)}")
    text = (resources.files("verify") / "examples" / f"{name}.json").read_text()
    return lq_from_dict(json.loads(text), default_name=name)


# --- exact values and gradients ------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class LQValues:
    """The policy's quadratic value functions V_t(x) = -(x^T P_t x + 2 p_t^T x + c_t), t = 0 .. H (V_H = 0).

    For horizon null the arrays hold one stationary entry (index 0); ``at(t)`` reads either.
    P [H + 1, n, n], p [H + 1, n], c [H + 1].
    """

    P: np.ndarray
    p: np.ndarray
    c: np.ndarray

    def at(self, t):
        """(P_t, p_t, c_t); t an int or an index array (clipped to the stationary entry for horizon null)."""
        t = np.minimum(t, len(self.c) - 1)
        return self.P[t], self.p[t], self.c[t]

    def value(self, t, x: np.ndarray) -> np.ndarray:
        """V_t(x) for states x [..., n] and times t broadcastable with x's leading shape."""
        P, p, c = self.at(np.asarray(t))
        return -(np.einsum("...i,...ij,...j->...", x, P, x) + 2 * np.einsum("...i,...i->...", p, x) + c)


def _q_blocks(lq: LQProblem, P: np.ndarray, p: np.ndarray):
    """H_uu, H_ux, h_u of the Q-cost with next cost-to-go (P, p)."""
    g = lq.gamma
    BtP = lq.B.T @ P
    return lq.R + g * BtP @ lq.B, g * BtP @ lq.A, g * lq.B.T @ p


def _step_back(lq: LQProblem, P: np.ndarray, p: np.ndarray, c: float):
    """One Bellman step of the cost-to-go under the policy, in closed-loop form: from (P_{t+1}, p_{t+1}, c_{t+1}),

        P_t = Q + K^T R K + gamma F^T P F,   p_t = K^T R k + gamma F^T (p + P b),   b = B k,

    and the gradient's per-step factors G = H_uu K + H_ux = R K + gamma B^T P F, a = H_uu k + h_u =
    R k + gamma B^T (P b + p), diag(H_uu). Returns (P_t, p_t, c_t, G, a, diag H_uu): two n^3 products per step.
    """
    K, k, g, F, B = lq.K, lq.k, lq.gamma, lq.closed_loop, lq.B
    b = B @ k
    PF = P @ F
    Pb_p = P @ b + p
    BtP = B.T @ P
    P_t = lq.Q + K.T @ lq.R @ K + g * F.T @ PF
    P_t = 0.5 * (P_t + P_t.T)
    p_t = K.T @ lq.R @ k + g * F.T @ Pb_p
    G = lq.R @ K + g * BtP @ F
    a = lq.R @ k + g * B.T @ Pb_p
    huu = np.diag(lq.R) + g * np.einsum("ij,ji->i", BtP, B)
    Huu_kk = k @ lq.R @ k + g * b @ P @ b
    c_t = float(Huu_kk + 2 * g * p @ b + huu @ lq.sigma ** 2 + g * (np.sum(P * lq.W) + c))
    return P_t, p_t, c_t, G, a, huu


def lq_values(lq: LQProblem, horizon: int | None | object = ...) -> LQValues:
    """Exact V_t of the policy (backward recursion; a Lyapunov equation for horizon null).

    Args:
      horizon: default the problem's; a finite int overrides it (the truncated problem).
    """
    H = lq.horizon if horizon is ... else horizon
    n = lq.n
    if H is None:
        from scipy.linalg import solve_discrete_lyapunov

        F, K, k, g = lq.closed_loop, lq.K, lq.k, lq.gamma
        P = solve_discrete_lyapunov(math.sqrt(g) * F.T, lq.Q + K.T @ lq.R @ K)
        P = 0.5 * (P + P.T)
        b = lq.B @ k
        p = np.linalg.solve(np.eye(n) - g * F.T, K.T @ lq.R @ k + g * F.T @ P @ b)
        Huu, _, hu = _q_blocks(lq, P, p)
        c = (k @ Huu @ k + 2 * hu @ k + np.diag(Huu) @ lq.sigma ** 2 + g * np.trace(P @ lq.W)) / (1 - g)
        return _frozen(LQValues(P[None], p[None], np.array([c])))
    return _backward(lq, H)[0]


def _backward(lq: LQProblem, H: int):
    """The finite-horizon value tables and, per step t, the gradient factors G_t [H, m, n], a_t [H, m] and
    diag(H_uu)_t [H, m] (``_step_back``), once per problem and horizon (read-only)."""
    return _memo(lq, ("backward", H), lambda: _backward_tables(lq, H))


def _backward_tables(lq: LQProblem, H: int):
    n, m = lq.n, lq.m
    P = np.zeros((H + 1, n, n))
    p = np.zeros((H + 1, n))
    c = np.zeros(H + 1)
    G, a, huu = np.zeros((H, m, n)), np.zeros((H, m)), np.zeros((H, m))
    for t in range(H - 1, -1, -1):
        P[t], p[t], c[t], G[t], a[t], huu[t] = _step_back(lq, P[t + 1], p[t + 1], c[t + 1])
    for arr in (G, a, huu):
        arr.setflags(write=False)
    return _frozen(LQValues(P, p, c)), G, a, huu


def _frozen(values: LQValues) -> LQValues:
    for arr in (values.P, values.p, values.c):
        arr.setflags(write=False)
    return values


@dataclass(frozen=True, eq=False)
class LQGradient:
    """Exact J and grad J of an LQ problem: grad_K [m, n], grad_k [m], grad_log_std [m]; ``flat`` [d]."""

    J: float
    grad_K: np.ndarray
    grad_k: np.ndarray
    grad_log_std: np.ndarray
    method: str
    names: tuple[str, ...] = ()

    @property
    def flat(self) -> np.ndarray:
        return np.concatenate([self.grad_K.ravel(), self.grad_k, self.grad_log_std])

    def to_json(self) -> dict:
        return {"J": self.J, "grad": {"K": self.grad_K.tolist(), "k": self.grad_k.tolist(),
                                      "log_std": self.grad_log_std.tolist()},
                "flat": self.flat.tolist(), "names": list(self.names), "method": self.method}


def _initial_moments(lq: LQProblem):
    return lq.mu0.copy(), lq.Sigma0 + np.outer(lq.mu0, lq.mu0)


# Exact results per problem object: a check judges eight estimators on one problem and each judgement asks for the
# same grad J (and the backward tables behind it). LQProblem is frozen and compared by identity, so a result never
# goes stale; keyed weakly, it goes with the problem. The cached arrays are read-only.
_EXACT: "weakref.WeakKeyDictionary[LQProblem, dict]" = weakref.WeakKeyDictionary()


def _memo(lq: LQProblem, key: tuple, compute):
    memo = _EXACT.setdefault(lq, {})
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def lq_gradient(lq: LQProblem, *, horizon: int | None | object = ..., weights: str = "discount") -> LQGradient:
    """Exact J and grad J by the backward (value) and forward (state moments) recursions of the module docstring.

    Args:
      horizon: default the problem's; an int evaluates the problem truncated after that many actions.
      weights: "discount" (w_t = gamma^t: grad J) or "restart" (w_t = 1: the exact mean of the score-function
        estimator whose reward-to-go discount restarts at every t; finite horizons only).

    Returns:
      LQGradient (``J`` is J(theta) in either case), computed once per problem, horizon and weights; its arrays
      are read-only.
    """
    H = lq.horizon if horizon is ... else horizon
    if weights not in ("discount", "restart"):
        raise UsageError(f"weights must be 'discount' or 'restart', got {weights!r}")
    return _memo(lq, ("gradient", H, weights), lambda: _read_only(_lq_gradient(lq, H, weights)))


def _read_only(res: LQGradient) -> LQGradient:
    for arr in (res.grad_K, res.grad_k, res.grad_log_std):
        arr.setflags(write=False)
    return res


def _lq_gradient(lq: LQProblem, H: int | None, weights: str) -> LQGradient:
    if H is None:
        values = lq_values(lq, None)
    else:
        values, G_t, a_t, huu_t = _backward(lq, H)
    K, k, g, s2 = lq.K, lq.k, lq.gamma, lq.sigma ** 2
    F, b = lq.closed_loop, lq.B @ k
    N = lq.B @ np.diag(s2) @ lq.B.T + lq.W
    m_t, M_t = _initial_moments(lq)
    P0, p0, c0 = values.at(0)
    J = -float(np.trace(P0 @ M_t) + 2 * p0 @ m_t + c0)
    if H is None:
        if weights == "restart":
            raise UsageError("the restarted-discount mean is computed for finite horizons only (truncate first)")
        from scipy.linalg import solve_discrete_lyapunov

        P, p = values.P[0], values.p[0]
        n = lq.n
        mbar = np.linalg.solve(np.eye(n) - g * F, m_t + g * b / (1 - g))
        cross = np.outer(F @ mbar, b)
        Mbar = solve_discrete_lyapunov(math.sqrt(g) * F, M_t + g * (cross + cross.T + (np.outer(b, b) + N) / (1 - g)))
        Huu, Hux, hu = _q_blocks(lq, P, p)
        G = Huu @ K + Hux
        gK = 2 * (G @ Mbar + np.outer(Huu @ k + hu, mbar))
        gk = 2 * (G @ mbar + (Huu @ k + hu) / (1 - g))
        gs = 2 * np.diag(Huu) * s2 / (1 - g)
        return LQGradient(J, -gK, -gk, -gs, "lyapunov", lq.parameter_names)
    gK, gk, gs = np.zeros_like(K), np.zeros_like(k), np.zeros_like(k)
    w = 1.0
    for t in range(H):
        G, a = G_t[t], a_t[t]
        gK += w * 2 * (G @ M_t + np.outer(a, m_t))
        gk += w * 2 * (G @ m_t + a)
        gs += w * 2 * huu_t[t] * s2
        Fm = F @ m_t
        M_t = F @ M_t @ F.T + np.outer(Fm, b) + np.outer(b, Fm) + np.outer(b, b) + N
        m_t = Fm + b
        if weights == "discount":
            w *= g
    return LQGradient(J, -gK, -gk, -gs, "riccati" if weights == "discount" else "riccati-restart",
                      lq.parameter_names)


def lq_objective(lq: LQProblem, *, horizon: int | None | object = ...) -> float:
    """J(theta) by forward propagation of the state's moments alone (no value function): an independent route.

    E[r_t] = -(tr((Q + K^T R K) M_t) + 2 k^T R K m_t + k^T R k + tr(R diag(sigma^2))).
    """
    H = lq.horizon if horizon is ... else horizon
    if H is None:
        H = truncation_horizon(lq, rtol=1e-15)
    K, k, R, s2 = lq.K, lq.k, lq.R, lq.sigma ** 2
    F, b = lq.closed_loop, lq.B @ k
    N = lq.B @ np.diag(s2) @ lq.B.T + lq.W
    Qk = lq.Q + K.T @ R @ K
    m_t, M_t = _initial_moments(lq)
    J, w = 0.0, 1.0
    const = k @ R @ k + np.diag(R) @ s2
    for _ in range(H):
        J -= w * (np.trace(Qk @ M_t) + 2 * k @ R @ K @ m_t + const)
        Fm = F @ m_t
        M_t = F @ M_t @ F.T + np.outer(Fm, b) + np.outer(b, Fm) + np.outer(b, b) + N
        m_t = Fm + b
        w *= lq.gamma
    return float(J)


def truncation_horizon(lq: LQProblem, *, rtol: float = 1e-6, max_steps: int = 100_000) -> int:
    """The smallest T with (gamma rho(F)^2)^T <= rtol and gamma^T <= rtol: where sampling cuts horizon null.

    The per-step discounted second moment decays like (gamma rho(F)^2)^t (and the noise's share like gamma^t), so
    the terms beyond T are below about ``rtol`` of the first ones; callers compare with the exact truncated gradient,
    so the cut is a stated reference, never a hidden bias.
    """
    rate = max(lq.discounted_radius() ** 2, lq.gamma)
    if rate <= 0:
        return 1
    if rate >= 1:
        raise UsageError("horizon null needs a stable discounted closed loop to truncate")
    return int(min(max_steps, max(1, math.ceil(math.log(rtol) / math.log(rate)))))
