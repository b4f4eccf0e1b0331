"""Exact J(theta) and grad J(theta) for tabular MDPs, three independent ways plus finite differences.

- ``enumerate``: every trajectory with its probability p(tau|theta), return R(tau) and score; then
  J = sum_tau p R and grad J = sum_tau p R sum_t grad log pi(a_t|s_t)   (seed eq. 14).
- ``dp``: backward V_t and forward state distributions d_t, then the policy-gradient theorem
  grad J = sum_t gamma^t sum_{s,a} d_t(s) pi(a|s) Q_t(s,a) grad log pi(a|s);  O(H S^2 + S^2 A) dense,
  O(H nnz(P)) with scipy.sparse transitions (chosen automatically for large, sparse MDPs such as Taxi).
- ``solve`` (horizon null): V = (I - gamma P_pi)^{-1} r_pi and the discounted occupancy from one LU factorization.
- ``finite_difference_gradient``: central differences of J, a check that shares no gradient code.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from verify.numerics.backward import backward_pass, horizon_values, kernel_bytes, value_kernel, within_horizon
from verify.numerics.episodes import Episodes, discounted_returns, score_total
from verify.errors import NumericalError, UsageError
from verify.model.io import require_memory, require_work
from verify.model.mdp import DENSE_MAX_ENTRIES, TabularMDP, _gather_ranges, reachable_csr
from verify.model.policy import Policy
from verify.model.problem import dp_bytes, live_size

if TYPE_CHECKING:                  # scipy loads on first use (start-up time)
    import scipy.sparse as sps

__all__ = ["GradientResult", "METHODS", "MAX_TRAJECTORIES", "action_values_at", "count_trajectories",
           "enumerate_trajectories", "directional_derivatives", "expected_length", "finite_difference_gradient", "gradient", "gradient_bytes", "objective",
           "state_values", "state_values_at", "value_tables"]

METHODS = ("auto", "enumerate", "dp", "solve")
MAX_TRAJECTORIES = 2_000_000
DP_CHUNK_BYTES = 64 * 2**20    # working set of one block of time steps in the sparse DP's gradient sum


def _sps():
    """scipy.sparse, imported on first use (start-up of commands that never need it stays at numpy's)."""
    import scipy.sparse
    import scipy.sparse.linalg  # noqa: F401  (splu)
    return scipy.sparse


@dataclass(frozen=True)
class GradientResult:
    """J(theta), grad J(theta) (shaped like theta) and the method that computed them."""

    J: float
    grad: np.ndarray
    method: str

    def to_json(self) -> dict:
        return {"J": float(self.J), "grad": self.grad.tolist(), "method": self.method}


def enumerate_trajectories(mdp: TabularMDP, policy: Policy, *, max_trajectories: int = MAX_TRAJECTORIES) -> Episodes:
    """All trajectories of positive environment probability, as an Episodes batch weighted by p(tau|theta).

    p(tau|theta) = rho0(s_0) prod_{t<len} pi(a_t|s_t) P(s_{t+1}|s_t, a_t); the weights sum to one.
    Branches are grown breadth-first and pruned where rho0 or P is zero, so deterministic MDPs stay cheap.

    Raises:
      UsageError: horizon is null, or more than ``max_trajectories`` would be needed.

    >>> from verify.policy import TabularSoftmax
    >>> mdp = TabularMDP(initial=[1], transitions=[[[1.0], [1.0]]], rewards=[[1.0, 0.0]], horizon=2)
    >>> eps = enumerate_trajectories(mdp, TabularSoftmax(np.zeros((1, 2))))
    >>> eps.n, float(eps.weights.sum())
    (4, 1.0)
    """
    if mdp.horizon is None:
        raise UsageError("trajectory enumeration needs a finite horizon (this MDP has horizon null); "
                         "use --method solve")
    # Counted first (H sparse products of integers): a hopeless enumeration costs nothing.
    if count_trajectories(mdp, limit=max_trajectories) > max_trajectories:
        raise UsageError(f"enumeration needs more than {max_trajectories} trajectories at horizon {mdp.horizon}; "
                         "use --method dp")
    succ, pi, term, A = mdp.successors, policy.probs, mdp.terminal, mdp.n_actions
    s0 = np.flatnonzero(mdp.initial > 0)
    s_cols: list[np.ndarray] = [s0]      # one column per time step, each [M]
    a_cols: list[np.ndarray] = []
    r_cols: list[np.ndarray] = []
    prob = mdp.initial[s0].astype(float)
    length = np.zeros(s0.size, dtype=np.int64)
    alive = ~term[s0]
    for _ in range(mdp.horizon):
        if not alive.any():
            break
        done, i_alive = np.flatnonzero(~alive), np.flatnonzero(alive)
        # Children of each alive trajectory: every (a, s') with P[s, a, s'] > 0, in (a, s') order.
        pairs = (s_cols[-1][i_alive][:, None] * A + np.arange(A)).ravel()
        entry = _gather_ranges(succ.indptr, pairs)
        per_pair = succ.indptr[pairs + 1] - succ.indptr[pairs]
        parent = np.repeat(np.arange(i_alive.size), per_pair.reshape(-1, A).sum(axis=1))
        a, s_next = np.repeat(pairs % A, per_pair), succ.next_state[entry]
        if done.size + parent.size > max_trajectories:
            raise UsageError(f"enumeration needs more than {max_trajectories} trajectories at horizon {mdp.horizon}; "
                             "use --method dp")
        order = np.concatenate([done, i_alive[parent]])
        s_cols = [col[order] for col in s_cols]
        a_cols = [col[order] for col in a_cols]
        r_cols = [col[order] for col in r_cols]
        s = s_cols[-1][done.size:]
        pad = np.zeros(done.size)
        a_cols.append(np.concatenate([pad.astype(np.int64), a]))
        r_cols.append(np.concatenate([pad, succ.reward[entry]]))
        s_cols.append(np.concatenate([s_cols[-1][:done.size], s_next]))
        prob = prob[order] * np.concatenate([pad + 1.0, pi[s, a] * succ.prob[entry]])
        length = length[order] + np.concatenate([pad, np.ones(parent.size)]).astype(np.int64)
        alive = np.concatenate([np.zeros(done.size, dtype=bool), ~term[s_next]])

    M = prob.size
    as_matrix = lambda cols, dtype: (np.stack(cols, axis=1) if cols else np.zeros((M, 0))).astype(dtype)  # noqa: E731
    return Episodes(as_matrix(s_cols, np.int64), as_matrix(a_cols, np.int64), as_matrix(r_cols, float),
                    length, mdp, policy, prob)


def count_trajectories(mdp: TabularMDP, *, limit: float = np.inf) -> float:
    """How many trajectories ``enumerate_trajectories`` would list (a float; inf when astronomically many).

    c_0(s) = 1 and c_k(s) = 1 for terminal s, else sum over a and s' with P[s, a, s'] > 0 of c_{k-1}(s'); the
    count is sum over s with rho0(s) > 0 of c_H(s). Stops early once the count exceeds ``limit`` (it only grows
    with k). O(H nnz(P)) work, no trajectory is built.

    >>> coin = TabularMDP(initial=[1, 0], transitions=[[[0.5, 0.5]], [[0, 1]]], rewards=[[1], [0]], terminal=[1],
    ...                   horizon=3)
    >>> count_trajectories(coin)         # end at t = 1, 2 or 3, or still running at 3
    4.0
    """
    if mdp.horizon is None:
        return np.inf
    succ = mdp.successors
    state, nxt = succ.state, succ.next_state
    start = mdp.initial > 0
    c = np.ones(mdp.n_states)
    total = float(c[start].sum())
    for _ in range(mdp.horizon):
        previous = c
        c = np.bincount(state, weights=c[nxt], minlength=mdp.n_states)
        c[mdp.terminal] = 1.0
        total = float(c[start].sum())
        if total > limit or np.array_equal(c, previous):     # a fixed point stays fixed
            break
    return total


def _by_enumeration(mdp: TabularMDP, policy: Policy) -> GradientResult:
    eps = enumerate_trajectories(mdp, policy)
    R = discounted_returns(eps)
    grad = score_total(eps, np.broadcast_to((eps.weights * R)[:, None], eps.a_t.shape))
    return GradientResult(float(eps.weights @ R), grad, "enumerate")


# --- transition operators on the live states (dense or scipy.sparse, built once per MDP) ---------------------------

# Below ~150 live states the dense operator wins (one BLAS product per step against scipy.sparse's per-call
# overhead; measured with one BLAS thread: FrozenLake 8x8, 53 live states, 0.33 ms dense vs 1.5 ms sparse;
# gridworlds: equal at 141 live states, sparse 2.4x faster at 283 and 46x at 969; benchmarks/bench_exact.py).
# Above, sparse rows (a few successors per action) win, and single-threaded scipy.sparse also escapes BLAS
# thread oversubscription on a busy machine.
SPARSE_MIN_STATES = 150
SPARSE_MAX_DENSITY = 0.1    # fraction of nonzero P[s, a, s'] among live states

_OPERATORS: "weakref.WeakKeyDictionary[TabularMDP, dict]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True, eq=False)
class _LiveOperator:
    """The MDP restricted to its live states: non-terminal and reachable from rho0 through non-terminal states.

    Only live states ever act, so J and grad J need P only among them (entering a terminal state ends the
    episode, so terminal columns drop out). Dropping unreachable states also keeps I - gamma P_pi nonsingular
    when gamma = 1 and an unreachable loop never terminates.

    Attributes:
      live: indices of the live states in the MDP, [n].
      P: P[s, a, s'] for live s, s' as an [n A, n] ndarray or scipy.sparse CSR array (both support ``@``).
      rbar: expected reward sum_{s'} P[s, a, s'] r[s, a, s'] (over all s', terminal ones included), [n, A].
      initial: rho0 on the live states, [n].
    """

    live: np.ndarray
    P: np.ndarray | sps.csr_array
    rbar: np.ndarray
    initial: np.ndarray

    @property
    def is_sparse(self) -> bool:
        return not isinstance(self.P, np.ndarray)

    def policy_matrix(self, pi: np.ndarray):
        """P_pi[s, s'] = sum_a pi(a|s) P[s, a, s'] for pi [n, A]; [n, n], sparse iff ``P`` is."""
        n, A = pi.shape
        if isinstance(self.P, np.ndarray):
            P = self.P.reshape(n, A, n)
            out = pi[:, :1] * P[:, 0]
            for a in range(1, A):
                out += pi[:, a:a + 1] * P[:, a]
            return out
        Pi = _sps().csr_array((pi.ravel(), np.arange(n * A), np.arange(0, n * A + 1, A)), shape=(n, n * A))
        return (Pi @ self.P).tocsr()

    def propagator(self, P_pi, scale: float):
        """scale * [[P_pi, 0], [0, P_pi^T]]: one product per step advances V_k and d_t together (half the calls)."""
        n = P_pi.shape[0]
        if not isinstance(P_pi, np.ndarray):
            # Assembled from the CSR arrays directly: sps.block_diag costs more than the whole DP loop on Taxi.
            top, bottom = (scale * P_pi).tocsr(), (scale * P_pi).T.tocsr()
            return _sps().csr_array((np.concatenate([top.data, bottom.data]),
                                  np.concatenate([top.indices, bottom.indices + n]),
                                  np.concatenate([top.indptr, bottom.indptr[1:] + top.indptr[-1]])),
                                 shape=(2 * n, 2 * n))
        B = np.zeros((2 * n, 2 * n))
        B[:n, :n], B[n:, n:] = scale * P_pi, scale * P_pi.T
        return B

    def weighted_next_value(self, D: np.ndarray, V: np.ndarray) -> np.ndarray:
        """C[s, a] = sum_t D[t, s] sum_{s'} P[s, a, s'] V[t, s'] for D, V [T, n]; returns [n, A]."""
        n = self.live.size
        if self.is_sparse:
            # Blocks of time steps: P @ V.T for all T at once would be [n A, T] (640 MB at n = 10^5, A = 4, T = 200).
            T = V.shape[0]
            step = max(1, min(T, DP_CHUNK_BYTES // (8 * max(self.P.shape[0], 1))))
            C = np.zeros((n, self.P.shape[0] // max(n, 1)))
            for t0 in range(0, T, step):
                PV = (self.P @ V[t0:t0 + step].T).reshape(n, -1, min(step, T - t0))           # [n, A, block]
                C += np.matmul(PV, np.ascontiguousarray(D[t0:t0 + step].T)[:, :, None])[..., 0]
            return C
        M = D.T @ V                                            # [n, n]: cheaper than P @ V.T by a factor A
        return np.matmul(self.P.reshape(n, -1, n), M[:, :, None])[..., 0]

    def factorize(self, A_mat):
        """solve(b, transpose) for the square system A_mat, factorized once (LU, sparse or dense)."""
        if not isinstance(A_mat, np.ndarray):
            lu = _sps().linalg.splu(A_mat.tocsc())
            return lambda b, transpose=False: lu.solve(b, trans="T" if transpose else "N")
        if A_mat.shape[0] < SPARSE_MIN_STATES:
            # numpy's own LAPACK solve (getrf + getrs, as lu_factor + lu_solve) per right-hand side: refactorising
            # a system this small costs well under a millisecond, importing scipy.linalg about 0.1 CPU-s
            return lambda b, transpose=False: np.linalg.solve(A_mat.T if transpose else A_mat, b)
        import scipy.linalg
        lu = scipy.linalg.lu_factor(A_mat, check_finite=False)
        return lambda b, transpose=False: scipy.linalg.lu_solve(lu, b, trans=int(transpose), check_finite=False)


def _live_operator(mdp: TabularMDP, sparse: bool | None = None, *, in_horizon: bool = False) -> _LiveOperator:
    """The cached live-state operator of ``mdp``; ``sparse`` None picks scipy.sparse when it pays.

    ``in_horizon``: live states reachable within H - 1 actions only (``backward.within_horizon``): the others
    never act. The DP's J and grad J are the same (a state first reachable after k actions has occupancy exactly
    0 before t = k, and its values with more than H - k actions left, which may differ, are only ever multiplied
    by that 0), at a fraction of the cost when the horizon is short against the MDP's diameter.
    """
    key = (sparse, True) if in_horizon and mdp.horizon is not None else sparse
    cache = _OPERATORS.setdefault(mdp, {})
    if key in cache:
        return cache[key]
    succ = mdp.successors
    alive = ~mdp.terminal
    if key != sparse:
        live_mask = np.zeros(mdp.n_states, dtype=bool)
        live_mask[within_horizon(mdp)[0]] = True
    else:
        # Terminal states only loop to themselves, so a search through every edge never passes one.
        live_mask = reachable_csr(succ.state_indptr, succ.next_state, (mdp.initial > 0) & alive) & alive
    live = np.flatnonzero(live_mask)
    n, A = live.size, mdp.n_actions
    position = np.full(mdp.n_states, -1, dtype=np.intp)
    position[live] = np.arange(n)
    # Entries among live states, still in (s, a, s') order since ``position`` is increasing; only the live rows'
    # entries are read (the horizon's live states can be a fifth of a big MDP's).
    pairs = (live[:, None] * A + np.arange(A)).ravel()
    entry = _gather_ranges(succ.indptr, pairs)
    rows = np.repeat(np.arange(n * A), succ.indptr[pairs + 1] - succ.indptr[pairs])
    cols = position[succ.next_state[entry]]
    inside = np.flatnonzero(cols >= 0)
    rows, cols, prob = rows[inside], cols[inside], succ.prob[entry[inside]]
    del entry, inside
    use_sparse = sparse
    if use_sparse is None:
        use_sparse = (n >= SPARSE_MIN_STATES and rows.size <= SPARSE_MAX_DENSITY * n * A * n) \
            or n * A * n > DENSE_MAX_ENTRIES
    if use_sparse:
        indptr = np.zeros(n * A + 1, dtype=np.intp)
        np.cumsum(np.bincount(rows, minlength=n * A), out=indptr[1:])
        P = _sps().csr_array((prob, cols, indptr), shape=(n * A, n))
    else:
        if n * A * n > DENSE_MAX_ENTRIES:
            raise UsageError(f"a dense transition operator on {n} live states would have {n * A * n:.3g} entries; "
                             "use the sparse one")
        P = np.zeros((n * A, n))
        P[rows, cols] = prob
    op = _LiveOperator(live, P, mdp.expected_reward[live], mdp.initial[live])
    cache[key] = op
    return op


def _nnz(op: _LiveOperator) -> int:
    return int(op.P.nnz if op.is_sparse else np.count_nonzero(op.P))


def gradient_bytes(mdp: TabularMDP) -> float:
    """The memory ``gradient(mdp, policy)`` checks against the limit before it runs (``model.problem.dp_bytes``
    for dynamic programming, on the states reachable within the horizon; ``check_problem_budget`` checks the same
    when a Problem is built). 0 for horizon null (the LU factorization's fill-in is not estimated)."""
    if mdp.horizon is None:
        return 0.0
    n, nnz = live_size(mdp)
    return dp_bytes(mdp.horizon, n, nnz, mdp.n_actions, sparse=n >= SPARSE_MIN_STATES)


def _full_gradient(policy: Policy, op: _LiveOperator, W_live: np.ndarray) -> np.ndarray:
    """score_contract of W (zero outside the live states), given W on the live states."""
    W = np.zeros(policy.probs.shape)
    W[op.live] = W_live
    return policy.score_contract(W)


def _by_dp(mdp: TabularMDP, policy: Policy, need_grad: bool = True, sparse: bool | None = None) -> GradientResult:
    op = _live_operator(mdp, sparse, in_horizon=True)
    H, g, n = mdp.horizon, mdp.gamma, op.live.size
    if n == 0:
        return GradientResult(0.0, np.zeros_like(policy.theta), "dp")
    pi = policy.probs[op.live]
    P_pi = op.policy_matrix(pi)
    r_pi = (pi * op.rbar).sum(axis=1)
    if not need_grad:
        V = np.zeros(n)
        for _ in range(H):
            V = r_pi + g * (P_pi @ V)
        return GradientResult(float(op.initial @ V), np.zeros_like(policy.theta), "dp")
    # [H + 1, 2 n] (or [H + 1, n] sparse) before it is allocated: horizon 10^9 is a UsageError, not a MemoryError
    require_memory(dp_bytes(H, n, _nnz(op), mdp.n_actions, sparse=op.is_sparse),
                   f"the dynamic-programming table (horizon {H} x {n} live state{'s' * (n != 1)})")
    require_work(float(H) * max(mdp.successors.nnz, 1), f"dynamic programming over horizon {H}")
    if op.is_sparse:
        return _by_dp_sparse(mdp, policy, op, pi, P_pi, r_pi)
    # X[k] = [V_k, d_k]: V_k = r_pi + g P_pi V_{k-1} is the value with k actions left, d_t = g P_pi^T d_{t-1} the
    # probability of acting in s at time t (episode still running), discounted by gamma^t.
    B = op.propagator(P_pi, g)
    b = np.concatenate([r_pi, np.zeros(n)])
    X = np.empty((H + 1, 2 * n))
    X[0, :n], X[0, n:] = 0.0, op.initial
    for k in range(1, H + 1):
        np.add(b, B @ X[k - 1], out=X[k])
    V, D = X[:, :n], X[:H, n:]
    # Policy-gradient theorem, summed over t: Q_t = rbar + g P V_{H-1-t}, W = pi * sum_t d_t Q_t.
    W = pi * (op.rbar * D.sum(axis=0)[:, None] + g * op.weighted_next_value(D, V[H - 1::-1]))
    return GradientResult(float(op.initial @ V[H]), _full_gradient(policy, op, W), "dp")


def _by_dp_sparse(mdp: TabularMDP, policy: Policy, op: _LiveOperator, pi: np.ndarray, P_pi, r_pi: np.ndarray):
    """The DP of ``_by_dp`` with sparse operators and half its memory: V_k stored [H + 1, n], d_t streamed.

    grad J's weights W = pi * sum_t d_t (rbar + g P V_{H-1-t}) accumulate while d_t advances, one product with P
    and one with P_pi^T per step (at n = 10^5, H = 200: 160 MB for V instead of 320 MB for [V, d]).
    """
    H, g, n = mdp.horizon, mdp.gamma, op.live.size
    V = np.empty((H + 1, n))
    V[0] = 0.0
    for k in range(1, H + 1):
        np.add(r_pi, g * (P_pi @ V[k - 1]), out=V[k])
    step = (g * P_pi).T.tocsr()
    d = op.initial.astype(float)
    occupancy = np.zeros(n)
    C = np.zeros(op.rbar.shape)
    for t in range(H):
        PV = (op.P @ V[H - 1 - t]).reshape(C.shape)
        PV *= d[:, None]
        C += PV
        occupancy += d
        d = step @ d
    W = pi * (op.rbar * occupancy[:, None] + g * C)
    return GradientResult(float(op.initial @ V[H]), _full_gradient(policy, op, W), "dp")


def _by_solve(mdp: TabularMDP, policy: Policy, need_grad: bool = True, sparse: bool | None = None) -> GradientResult:
    op = _live_operator(mdp, sparse)
    g, n = mdp.gamma, op.live.size
    if n == 0:
        return GradientResult(0.0, np.zeros_like(policy.theta), "solve")
    pi = policy.probs[op.live]
    identity = (_sps().csr_array((np.ones(n), np.arange(n), np.arange(n + 1)), shape=(n, n)) if op.is_sparse
                else np.eye(n))
    solve = op.factorize(identity - g * op.policy_matrix(pi))   # one LU serves V and the occupancy
    _check_conditioning(solve(np.ones(n)), g)
    V = solve((pi * op.rbar).sum(axis=1))
    J = float(op.initial @ V)
    if not need_grad:
        return GradientResult(J, np.zeros_like(policy.theta), "solve")
    Q = op.rbar + g * (op.P @ V).reshape(n, -1)
    occupancy = solve(op.initial, transpose=True)              # sum_t gamma^t P(s_t = s)
    return GradientResult(J, _full_gradient(policy, op, occupancy[:, None] * pi * Q), "solve")


SOLVE_RTOL = 1e-6    # the relative error the linear solve must be able to promise (else NumericalError)


def _check_conditioning(steps: np.ndarray, gamma: float) -> None:
    """Refuse a solve of (I - gamma P_pi) x = b whose rounding error could exceed ``SOLVE_RTOL``.

    ``steps`` = (I - gamma P_pi)^{-1} 1 is the expected discounted number of actions from each live state (P_pi
    is substochastic and the inverse non-negative), so ||(I - gamma P_pi)^{-1}||_inf = max(steps) and the
    condition number kappa_inf <= (1 + gamma) max(steps); LU with partial pivoting promises a relative error of
    about kappa eps (Higham 2002, ch. 9). At gamma = 1 - 1e-15 on an MDP that never terminates kappa is ~2e15:
    the solve was 10 % wrong, silently.
    """
    kappa = (1.0 + gamma) * float(np.max(steps)) if steps.size else 1.0
    bound = kappa * np.finfo(float).eps
    if not bound <= SOLVE_RTOL:         # also refuses nan/inf
        raise NumericalError(f"the linear solve for horizon null is ill-conditioned (condition number about "
                             f"{kappa:.2g} at gamma {gamma!r}): its rounding error could reach {bound:.2g} of the "
                             f"answer, more than {SOLVE_RTOL:g}; give the MDP a finite horizon or a smaller gamma")


def _finite(result: GradientResult) -> GradientResult:
    """NumericalError instead of an infinite or NaN J or grad J (e.g. rewards near 1e308 summed over steps)."""
    if not (np.isfinite(result.J) and np.all(np.isfinite(result.grad))):
        raise NumericalError(f"J or grad J overflowed float64 (method {result.method}, J = {result.J!r}); "
                             "rescale the rewards")
    return result


def gradient(mdp: TabularMDP, policy: Policy, method: str = "auto", *, need_grad: bool = True,
             sparse: bool | None = None) -> GradientResult:
    """Exact J(theta) and grad_theta J(theta).

    Args:
      mdp: the MDP.
      policy: a policy acting on the MDP's states and actions.
      method: "enumerate", "dp" (finite horizon), "solve" (horizon null) or "auto" (dp, or solve when the
        horizon is null).
      sparse: dp/solve with scipy.sparse transitions (True), dense (False), or decide by size and density
        (None: sparse from SPARSE_MIN_STATES live states at density <= SPARSE_MAX_DENSITY). Results agree to
        rounding; the operator is built once per MDP and cached.

    Returns:
      GradientResult with ``grad`` shaped like ``policy.theta``.

    Raises:
      UsageError: unknown method, or a method that does not fit the horizon.
      NumericalError: J or grad J not finite in float64, or a horizon-null solve too ill-conditioned to promise
        a relative error of ``SOLVE_RTOL``.

    >>> from verify.policy import TabularSoftmax
    >>> bandit = TabularMDP(initial=[1], transitions=[[[1.0], [1.0]]], rewards=[[1.0, 0.0]], horizon=1)
    >>> res = gradient(bandit, TabularSoftmax(np.zeros((1, 2))))
    >>> res.J, res.grad.tolist()     # J = sum_a pi_a q_a, dJ/dtheta_a = pi_a (q_a - J)
    (0.5, [[0.25, -0.25]])
    """
    policy.check_compatible(mdp.n_states, mdp.n_actions)
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "auto":
        method = "solve" if mdp.horizon is None else "dp"
    if method == "enumerate":
        return _finite(_by_enumeration(mdp, policy))
    if method == "dp":
        if mdp.horizon is None:
            raise UsageError("method dp needs a finite horizon (this MDP has horizon null); use --method solve")
        return _finite(_by_dp(mdp, policy, need_grad, sparse))
    if mdp.horizon is not None:
        raise UsageError(f"method solve is for horizon null (this MDP has horizon {mdp.horizon}); use --method dp")
    return _finite(_by_solve(mdp, policy, need_grad, sparse))


def finite_difference_gradient(mdp: TabularMDP, policy: Policy, *, eps: float = 1e-5) -> np.ndarray:
    """Central differences (J(theta + eps e_i) - J(theta - eps e_i)) / 2 eps of the exact J; error O(eps^2)."""
    theta = policy.theta.ravel()
    grad = np.empty(theta.size)
    for i in range(theta.size):
        step = np.zeros(theta.size)
        step[i] = eps
        grad[i] = (objective(mdp, policy.with_theta(theta + step))
                   - objective(mdp, policy.with_theta(theta - step))) / (2 * eps)
    return grad.reshape(policy.theta.shape)


def directional_derivatives(mdp: TabularMDP, policy: Policy, directions: np.ndarray, *,
                            eps: float = 1e-5) -> np.ndarray:
    """Central differences of the exact J along directions v: (J(theta + eps v) - J(theta - eps v)) / 2 eps.

    The result approximates grad J . v.
    Two evaluations of J per direction whatever theta's size, where ``finite_difference_gradient`` needs two per
    component (Taxi: 3000 components; S = 10^5: 4 10^5). Error O(eps^2 |v|^3) like the per-component version.

    Args:
      directions: [k, theta.size].

    Returns:
      [k].
    """
    theta = policy.theta.ravel()
    V = np.asarray(directions, dtype=float).reshape(-1, theta.size)
    return np.array([(objective(mdp, policy.with_theta(theta + eps * v)) -
                      objective(mdp, policy.with_theta(theta - eps * v))) / (2 * eps) for v in V])


def objective(mdp: TabularMDP, policy: Policy) -> float:
    """J(theta) by dynamic programming (finite horizon) or a linear solve (horizon null)."""
    return gradient(mdp, policy, method="auto", need_grad=False).J


# --- value tables: V_t(s), Q_t(s, a) for estimators' baselines and critics ------------------------------------------

_VALUES: "weakref.WeakKeyDictionary[TabularMDP, weakref.WeakKeyDictionary]" = weakref.WeakKeyDictionary()


def value_tables(mdp: TabularMDP, policy: Policy) -> tuple[np.ndarray, np.ndarray]:
    r"""Exact V_t(s) and Q_t(s, a): expected sum_{k >= 0} gamma^k r_{t+k} from s_t = s (and a_t = a).

    Backward induction (Bellman 1957) with H - t actions left:

        Q_t(s, a) = rbar(s, a) + gamma sum_{s' non-terminal} P(s'|s, a) V_{t+1}(s'),
        V_t(s) = sum_a pi(a|s) Q_t(s, a),   V_H = 0,

    so grad J = E[sum_t gamma^t grad log pi(a_t|s_t) Q_t(s_t, a_t)] (the policy-gradient theorem, Sutton et al.
    2000). Horizon null: the stationary V = (I - gamma P_pi)^{-1} r_pi on the live states (zero elsewhere: never
    visited) and Q from it, one row serving every t. Terminal states have value 0. Cached per (mdp, policy), by
    weak reference like the transition operators, since every batch of a run needs the same tables.

    Args:
      mdp: the MDP.
      policy: a policy on its states and actions.

    Returns:
      (V, Q): read-only arrays [H, S] and [H, S, A] (finite horizon) or [1, S] and [1, S, A] (horizon null).

    >>> from verify.policy import TabularSoftmax
    >>> bandit = TabularMDP(initial=[1], transitions=[[[1.0], [1.0]]], rewards=[[1.0, 0.0]], horizon=2)
    >>> V, Q = value_tables(bandit, TabularSoftmax(np.zeros((1, 2))))
    >>> V.tolist(), Q[:, 0].tolist()
    ([[1.0], [0.5]], [[1.5, 0.5], [1.0, 0.0]])
    """
    per_policy = _VALUES.setdefault(mdp, weakref.WeakKeyDictionary())
    hit = per_policy.get(policy)
    if hit is None or hit[1] is None:
        per_policy[policy] = hit = _backward(mdp, policy, keep_q=True)
    return hit


KEEP_Q_MAX_PAIRS = 4096     # state_values keeps Q [H, S, A] too up to this many (s, a) pairs (it is computed anyway)
KEPT_Q_MAX_ENTRIES = 2**20  # action_values_at computes that table for its gather only up to 8 MB
#: ``action_values_at`` reads a small kept Q table (False: always the successor expansion, the path big MDPs take;
#: tests compare the two bit for bit)
GATHER_KEPT_Q = True


def state_values(mdp: TabularMDP, policy: Policy) -> np.ndarray:
    """V of ``value_tables`` alone, [H, S] (or [1, S]): the same numbers without keeping Q [H, S, A]
    (S = 10^5, A = 4, H = 200: 640 MB), for the state baselines. Cached with ``value_tables``.

    >>> from verify.policy import TabularSoftmax
    >>> bandit = TabularMDP(initial=[1], transitions=[[[1.0], [1.0]]], rewards=[[1.0, 0.0]], horizon=2)
    >>> state_values(bandit, TabularSoftmax(np.zeros((1, 2)))).tolist()
    [[1.0], [0.5]]
    """
    per_policy = _VALUES.setdefault(mdp, weakref.WeakKeyDictionary())
    hit = per_policy.get(policy)
    if hit is None:
        per_policy[policy] = hit = _backward(mdp, policy, keep_q=mdp.n_states * mdp.n_actions <= KEEP_Q_MAX_PAIRS)
    return hit[0]


def action_values_at(mdp: TabularMDP, policy: Policy, t: np.ndarray, s: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Q_t(s, a) of ``value_tables`` at the given (t, s, a) only, [M]: no [H, S, A] table (640 MB at S = 10^5).

    Q_t(s, a) = rbar(s, a) + gamma sum_{s' non-terminal} P(s'|s, a) V_{t+1}(s') from ``state_values`` (V_H = 0;
    the stationary V for horizon null), summed over the pair's successors in the same order as ``value_tables``
    does, so the numbers are its bits (``tests/test_exact_sparse.py``). With a finite horizon, V_{t+1} comes from
    ``backward.horizon_values`` (V on the states reachable within the horizon only: the same bits) whenever every
    (t, s) is one an episode can act in, as sampled steps always are.

    Args:
      t, s, a: int arrays of one shape [M] (times, non-terminal states, actions).
    """
    succ, A = mdp.successors, mdp.n_actions
    t, s, a = (np.asarray(x, dtype=np.intp).reshape(-1) for x in (t, s, a))
    Q = _kept_q(mdp, policy) if GATHER_KEPT_Q else None
    if Q is not None and (mdp.horizon is None or t.size == 0 or int(t.max()) < mdp.horizon):
        # The kept table's Q_t(s, a) is this same sum in the same order: one gather instead of the expansion below
        # (Taxi's 4 10^6 sampled steps: 0.12 -> 0.02 CPU-s)
        flat = s * A + a if mdp.horizon is None else (t * mdp.n_states + s) * A + a
        return Q.reshape(-1).take(flat)
    value = _value_lookup(mdp, policy, t, s)
    # Each distinct (t, s, a) once (only (s, a) for horizon null, where Q is stationary): a pair with 20 000
    # successors visited by 2 000 steps would otherwise expand to 4 10^7 entries. Blocks of distinct keys bound
    # the expansion to ACTION_VALUE_BLOCK successor entries at a time.
    pair = s * A + a
    key = pair if mdp.horizon is None else t * (mdp.n_states * A) + pair
    space = mdp.n_states * A * (1 if mdp.horizon is None else mdp.horizon)
    keys, inverse = _unique_inverse(key, space)
    k_pair = keys % (mdp.n_states * A)
    k_t = keys // (mdp.n_states * A)
    width = succ.indptr[k_pair + 1] - succ.indptr[k_pair]
    ends = np.cumsum(width)
    out = np.empty(keys.size)
    start = 0
    while start < keys.size:
        stop = max(start + 1, int(np.searchsorted(ends, ends[start] - width[start] + ACTION_VALUE_BLOCK, "right")))
        out[start:stop] = _action_values(mdp, value, k_t[start:stop], k_pair[start:stop])
        start = stop
    return out[inverse.reshape(-1)]


def _kept_q(mdp: TabularMDP, policy: Policy) -> np.ndarray | None:
    """The Q table ``value_tables`` holds for (mdp, policy), or the one ``state_values`` keeps anyway (S A <= 4096),
    computing it then when it is small; None otherwise (big MDPs: the table is what ``action_values_at`` avoids)."""
    hit = _VALUES.get(mdp, {}).get(policy)
    if hit is not None and hit[1] is not None:
        return hit[1]
    H = 1 if mdp.horizon is None else mdp.horizon
    if mdp.n_states * mdp.n_actions <= KEEP_Q_MAX_PAIRS and H * mdp.n_states * mdp.n_actions <= KEPT_Q_MAX_ENTRIES:
        state_values(mdp, policy)
        return _VALUES[mdp][policy][1]
    return None


def _unique_inverse(key: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(key, return_inverse=True)`` for keys in 0..space-1: by marking a table when it is small next to
    the keys (O(M + space) instead of a sort: Taxi's 4 10^6 sampled steps in 0.02 s instead of 0.1 s)."""
    if space > max(4 * key.size, 2**16):
        return np.unique(key, return_inverse=True)
    seen = np.zeros(space, dtype=bool)
    seen[key] = True
    keys = np.flatnonzero(seen)
    index = np.empty(space, dtype=np.intp)
    index[keys] = np.arange(keys.size)
    return keys, index.take(key)


def state_values_at(mdp: TabularMDP, policy: Policy, t: np.ndarray, s: np.ndarray) -> np.ndarray:
    """V_t(s) of ``state_values`` at the given (t, s) only, shaped like ``t``: the same bits, and with a finite
    horizon no [H, S] table when every (t, s) is one an episode can act in (``backward.horizon_values``: [H, n] on
    the n states reachable within the horizon; the 10^6-state gridworld of the benchmarks reaches 2 10^5).

    Args:
      t, s: int arrays of one shape (times, states).
    """
    t, s = np.asarray(t, dtype=np.intp), np.asarray(s, dtype=np.intp)
    return _value_lookup(mdp, policy, t.reshape(-1), s.reshape(-1))(t.reshape(-1), s.reshape(-1)).reshape(t.shape)


def _value_lookup(mdp: TabularMDP, policy: Policy, t: np.ndarray, s: np.ndarray):
    """(t, s) -> V_t(s) (0 for t >= H and for terminal s), valid at the queried (t, s) and their successors at t + 1:
    ``horizon_values`` when it covers them, else ``state_values``' table."""
    if mdp.horizon is not None:
        hv = horizon_values(mdp, policy)
        if hv.covers(t, s):
            return hv.at
    V = state_values(mdp, policy)
    if mdp.horizon is None:
        return lambda t_, s_: V[0].take(s_)

    def at(t_: np.ndarray, s_: np.ndarray) -> np.ndarray:
        inside = t_ < V.shape[0]
        out = np.zeros(t_.shape)
        out[inside] = V.reshape(-1).take(t_[inside] * V.shape[1] + s_[inside])
        return out
    return at


ACTION_VALUE_BLOCK = 2**22     # successor entries expanded at once by action_values_at (~100 MB of temporaries)


def _action_values(mdp: TabularMDP, value, t: np.ndarray, pair: np.ndarray) -> np.ndarray:
    """Q_t at distinct (t, pair) keys, summed over each pair's successors in ``value_tables``' order."""
    succ = mdp.successors
    entry = _gather_ranges(succ.indptr, pair)
    nxt = succ.next_state[entry]
    step = np.repeat(np.arange(pair.size), succ.indptr[pair + 1] - succ.indptr[pair])
    v_next = value(t.take(step) + 1, nxt)
    prob_alive = np.where(mdp.terminal[nxt], 0.0, succ.prob[entry])
    total = np.bincount(step, weights=prob_alive * v_next, minlength=pair.size)
    return mdp.expected_reward.reshape(-1).take(pair) + mdp.gamma * total


def _backward(mdp: TabularMDP, policy: Policy, keep_q: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(V, Q) of ``value_tables``, Q None unless ``keep_q`` (V is the same either way: each Q_t is computed).

    On the non-terminal states by ``backward.value_kernel`` (one sparse product per step, the successor lists'
    summation order); terminal states have value 0 and Q = rbar there (0: their self-loops pay nothing).
    """
    pi, g = policy.probs, mdp.gamma
    S, A = mdp.n_states, mdp.n_actions
    rbar = mdp.expected_reward
    H = 1 if mdp.horizon is None else mdp.horizon
    require_memory(8.0 * H * (S + (S * A if keep_q else 0)) + kernel_bytes(mdp.successors.nnz, S, A, S),
                   f"the value tables (horizon {H} x {S} states)")
    kernel = value_kernel(mdp)
    alive = kernel.states
    pi_alive = np.ascontiguousarray(pi[alive])
    if mdp.horizon is None:
        op = _live_operator(mdp)
        V = np.zeros((1, mdp.n_states))
        if op.live.size:
            identity = _sps().identity(op.live.size, format="csr") if op.is_sparse else np.eye(op.live.size)
            solve = op.factorize(identity - g * op.policy_matrix(pi[op.live]))
            V[0, op.live] = solve((pi[op.live] * op.rbar).sum(axis=1))
        Q = None
        if keep_q:
            Q = (rbar + 0.0)[None]
            Q[0, alive] = kernel.q_values(V[0, alive])
    else:
        Q = np.zeros((H, S, A)) if keep_q else None
        V = np.zeros((H, S))
        backward_pass(kernel, pi_alive, H, V, Q, columns=alive)
        if keep_q:
            Q[:, mdp.terminal] = rbar[mdp.terminal]     # old Q_t = rbar + g * 0 there (terminal rows pay 0)
    for arr in (V, Q):
        if arr is not None:
            arr.setflags(write=False)
    return V, Q


def expected_length(mdp: TabularMDP, policy: Policy) -> float:
    """The largest expected number of actions from a live state, max_s E[length | s_0 = s] (horizon null).

    The value of reward 1 per action: x = (I - P_pi)^{-1} 1 on the live states (finite: the MDP terminates surely
    from every live state when gamma = 1, and this is only asked then). 0 when no state is live.

    >>> from verify.policy import TabularSoftmax
    >>> coin = TabularMDP(initial=[1, 0], transitions=[[[0.5, 0.5]], [[0, 1]]], rewards=[[1], [0]], terminal=[1])
    >>> expected_length(coin, TabularSoftmax(np.zeros((2, 1))))
    2.0
    """
    op = _live_operator(mdp)
    n = op.live.size
    if n == 0:
        return 0.0
    identity = _sps().identity(n, format="csr") if op.is_sparse else np.eye(n)
    solve = op.factorize(identity - op.policy_matrix(policy.probs[op.live]))
    return float(solve(np.ones(n)).max())
