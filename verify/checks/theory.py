r"""Beyond the finite-horizon theorem: occupancies, the Fisher matrix, the natural gradient, the surrogates PPO
and TRPO optimise, the performance-difference lemma, and the gamma^t-less update that is not a gradient.

Everything here is exact on tabular MDPs (dynamic programming over state occupancies, or one linear solve for
horizon null), never by enumerating trajectories; ``fisher_by_enumeration`` is the independent second method
the tests and ``benchmarks/bench_fisher.py`` compare with. Notation (finite horizon H; horizon null: t -> inf,
Q_t = Q, V_t = V):

    d_t(s)   = gamma^t Pr(s_t = s, the episode still running)        (the discounted occupancy at t)
    omega(s) = sum_t d_t(s)           = d_gamma(s) / (1 - gamma) for gamma < 1 and horizon null
    psi(s,a) = grad_theta log pi_theta(a|s)                           (the score)

- the stationary policy-gradient theorem (Sutton et al. 2000, Thm 1):
      grad J = sum_t sum_s d_t(s) sum_a pi(a|s) psi(s,a) Q_t(s,a) = 1/(1 - gamma) E_{s~d_gamma, a~pi}[psi Q];
- the Fisher matrix (Kakade 2001): F = sum_t gamma^t E[psi(s_t,a_t) psi(s_t,a_t)^T]
      = sum_s omega(s) sum_a pi(a|s) psi psi^T;  the natural direction F^+ grad J;
- compatible features (Sutton et al. 2000, Thm 2): the w minimising sum_t sum_s d_t(s) sum_a pi (psi^T w - Q_t)^2
  solves F w = grad J;
- Kakade (2001), Thm 1 for the tabular softmax: F^+ grad J = Abar(s, .) up to a constant per state, with
  Abar(s,a) = sum_t d_t(s) A_t(s,a) / omega(s) (the advantage, occupancy-averaged over t when H is finite);
- the performance-difference lemma (Kakade & Langford 2002, Lemma 6.1):
      J(theta') - J(theta) = sum_t gamma^t E_{tau~theta'}[A^theta_t(s_t,a_t)]
                           = 1/(1 - gamma) E_{s~d^theta', a~pi_theta'}[A^theta(s,a)]   (horizon null);
- the surrogate (Schulman et al. 2015): L_old(theta) = J(old) + sum_t sum_s d^old_t(s) sum_a pi_theta(a|s) A^old_t(s,a)
  = J(old) + sum_t gamma^t E_{tau~old}[pi_theta/pi_old A^old_t]; grad L = grad J at theta = old, and
  TRPO's bound J(theta) >= L_old(theta) - C max_s KL(pi_old(.|s) || pi_theta(.|s)), C = 4 eps gamma/(1 - gamma)^2,
  eps = max |A^old|; PPO's clipped surrogate (Schulman et al. 2017) has the same gradient at theta = old;
- the update most code uses, E[sum_t psi(s_t,a_t) sum_{t'>=t} gamma^{t'-t} r_{t'}] (no gamma^t), is not the gradient
  of any function (Nota & Thomas 2020): its Jacobian is not symmetric.

Terminal states never act (zero occupancy); unreachable states have zero occupancy, so their Fisher rows are
zero and F^+ leaves them at zero.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from verify.errors import UsageError
from verify.numerics.exact import _live_operator, _sps, enumerate_trajectories, gradient, value_tables
from verify.model.mdp import TabularMDP
from verify.model.policy import Policy, TabularSoftmax

__all__ = [
    "MAX_FISHER_PARAMETERS", "MAX_DENSE_FISHER", "Occupancy", "FisherMatrix", "NaturalGradient", "CompatibleFit",
    "PerformanceDifference", "Surrogate", "TRPOBound", "GradientFieldCheck",
    "occupancy", "fisher", "fisher_by_enumeration", "natural_gradient", "averaged_advantage",
    "compatible_features", "performance_difference", "surrogate", "ppo_clip_surrogate", "trpo_bound",
    "kl_per_state", "stationary_gradient", "gamma_less_update", "field_jacobian", "check_gradient_field",
    "sampled_natural_gradient",
]

MAX_FISHER_PARAMETERS = 10_000      # the size target: S A <= 10^4 parameters
MAX_DENSE_FISHER = 4_000            # F as a dense matrix (n^2 floats: 128 MB at 4000)
PPO_CLIP = 0.2                      # PPO's customary epsilon


# --- occupancies --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Occupancy:
    """d_t(s) = gamma^t Pr(s_t = s, running) per t ([H, S]; None for horizon null) and omega(s) = sum_t d_t(s) [S]."""

    d_t: np.ndarray | None
    omega: np.ndarray

    def distribution(self, gamma: float) -> np.ndarray:
        """d_gamma(s) = (1 - gamma) omega(s), the normalised discounted state distribution (gamma < 1)."""
        if not gamma < 1:
            raise UsageError("d_gamma = (1 - gamma) sum_t gamma^t Pr(s_t = s) needs gamma < 1")
        return (1 - gamma) * self.omega


def occupancy(mdp: TabularMDP, policy: Policy, *, discount: bool = True) -> Occupancy:
    """The (discounted) state occupancy by forward DP (finite horizon) or one linear solve (horizon null).

    d_0 = rho_0 on the live states, d_{t+1} = g P_pi^T d_t with g = gamma (``discount``) or 1; horizon null:
    omega = (I - g P_pi^T)^{-1} rho_0 (Sutton et al. 2000's d^pi / (1 - gamma)).

    Raises:
      UsageError: horizon null without discount and I - P_pi singular (an episode that never ends).
    """
    policy.check_compatible(mdp.n_states, mdp.n_actions)
    op = _live_operator(mdp)
    S, n = mdp.n_states, op.live.size
    g = mdp.gamma if discount else 1.0
    if n == 0:
        return Occupancy(None if mdp.horizon is None else np.zeros((mdp.horizon, S)), np.zeros(S))
    P_pi = op.policy_matrix(policy.probs[op.live])
    if mdp.horizon is None:
        identity = _sps().identity(n, format="csr") if op.is_sparse else np.eye(n)
        try:
            solve = op.factorize(identity - g * P_pi)
            w = solve(op.initial.astype(float), transpose=True)
        except Exception as err:        # scipy's singular-matrix errors differ dense/sparse
            raise UsageError(f"the occupancy sum_t Pr(s_t = s) is infinite: {err}") from None
        if not np.all(np.isfinite(w)):
            raise UsageError("the occupancy sum_t Pr(s_t = s) is infinite (an episode that never ends)")
        omega = np.zeros(S)
        omega[op.live] = w
        return Occupancy(None, omega)
    step = (g * P_pi).T
    d = np.zeros((mdp.horizon, S))
    cur = op.initial.astype(float)
    for t in range(mdp.horizon):
        d[t, op.live] = cur
        cur = step @ cur
    return Occupancy(d, d.sum(axis=0))


def _q_weights(mdp: TabularMDP, policy: Policy, occ: Occupancy, table: str = "Q") -> np.ndarray:
    """sum_t d_t(s) X_t(s, a) for X = Q or A (the occupancy-weighted value tables), [S, A]."""
    V, Q = value_tables(mdp, policy)
    X = Q if table == "Q" else Q - V[..., None]
    if mdp.horizon is None:
        return occ.omega[:, None] * X[0]
    return np.einsum("ts,tsa->sa", occ.d_t, X)


def averaged_advantage(mdp: TabularMDP, policy: Policy) -> np.ndarray:
    """Abar(s, a) = sum_t d_t(s) A_t(s, a) / omega(s), [S, A] (A itself for horizon null; 0 where omega = 0)."""
    occ = occupancy(mdp, policy)
    W = _q_weights(mdp, policy, occ, "A")
    out = np.zeros_like(W)
    seen = occ.omega > 0
    out[seen] = W[seen] / occ.omega[seen, None]
    return out


def stationary_gradient(mdp: TabularMDP, policy: Policy) -> np.ndarray:
    """grad J = sum_s omega(s) sum_a pi(a|s) psi(s,a) Q(s,a) = 1/(1 - gamma) E_{s~d_gamma, a~pi}[psi Q]
    (Sutton et al. 2000, Thm 1), from this module's occupancy and ``value_tables`` (any horizon: Q_t, d_t)."""
    occ = occupancy(mdp, policy)
    return policy.score_contract(policy.probs * _q_weights(mdp, policy, occ, "Q"))


# --- the Fisher matrix and the natural gradient -----------------------------------------------------------------------

def _n_params(policy: Policy) -> int:
    return int(policy.theta.size)


def _scores(policy: Policy) -> np.ndarray:
    """psi(s, a) for every pair, [S, A, K] (linear) -- the tabular case never forms it."""
    S, A = policy.probs.shape
    s, a = np.meshgrid(np.arange(S), np.arange(A), indexing="ij")
    return policy.score(s, a).reshape(S, A, -1)


@dataclass(frozen=True)
class FisherMatrix:
    """F(theta) = sum_t gamma^t E[psi psi^T]: block diagonal for the tabular softmax ([S, A, A] blocks
    omega(s) (diag pi_s - pi_s pi_s^T), never the n x n matrix), dense [K, K] otherwise."""

    shape: tuple[int, ...]            # theta's shape
    blocks: np.ndarray | None = None
    matrix: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def dense(self) -> np.ndarray:
        """F as an [n, n] matrix (theta flattened in C order).

        Raises:
          UsageError: n > MAX_DENSE_FISHER (use ``matvec`` / ``pinv_apply``).
        """
        if self.matrix is not None:
            return self.matrix
        if self.size > MAX_DENSE_FISHER:
            raise UsageError(f"a dense Fisher matrix of {self.size} parameters would need {self.size ** 2 * 8:.3g} "
                             "bytes; use matvec or pinv_apply (block diagonal)")
        S, A, _ = self.blocks.shape
        out = np.zeros((S, A, S, A))
        out[np.arange(S), :, np.arange(S), :] = self.blocks
        return out.reshape(S * A, S * A)

    def matvec(self, v) -> np.ndarray:
        """F v, shaped like theta."""
        v = np.asarray(v, dtype=float).reshape(self.shape)
        if self.matrix is not None:
            return (self.matrix @ v.ravel()).reshape(self.shape)
        return np.einsum("sab,sb->sa", self.blocks, v)

    def pinv_apply(self, g, rcond: float = 1e-10) -> np.ndarray:
        """F^+ g (Moore-Penrose, singular values below rcond * the largest of each block dropped)."""
        g = np.asarray(g, dtype=float).reshape(self.shape)
        if self.matrix is not None:
            return (np.linalg.pinv(self.matrix, rcond=rcond, hermitian=True) @ g.ravel()).reshape(self.shape)
        scale = np.abs(self.blocks).max() if self.blocks.size else 0.0
        # per block, but relative to the largest block: a state visited 1e-12 as often is a null direction
        w, U = np.linalg.eigh(self.blocks)
        keep = w > rcond * max(scale, np.finfo(float).tiny)
        inv = np.where(keep, 1.0 / np.where(keep, w, 1.0), 0.0)
        return np.einsum("sij,sj,skj,sk->si", U, inv, U, g)


def fisher(mdp: TabularMDP, policy: Policy) -> FisherMatrix:
    """The exact Fisher matrix F = sum_t gamma^t E[psi(s_t,a_t) psi(s_t,a_t)^T] = sum_s omega(s) E_{a~pi}[psi psi^T]
    (Kakade 2001; finite horizon or stationary) by one occupancy DP: O(H nnz(P) + S A^2), never by trajectories.

    Args:
      mdp: the MDP; policy: a tabular or linear softmax on it (at most MAX_FISHER_PARAMETERS parameters).

    Returns:
      FisherMatrix (tabular: blocks [S, A, A]; linear: matrix [K, K]).
    """
    n = _n_params(policy)
    if n > MAX_FISHER_PARAMETERS:
        raise UsageError(f"the exact Fisher matrix is offered up to {MAX_FISHER_PARAMETERS} parameters; "
                         f"this policy has {n}")
    omega = occupancy(mdp, policy).omega
    pi = policy.probs
    if isinstance(policy, TabularSoftmax):
        blocks = -pi[:, :, None] * pi[:, None, :]
        idx = np.arange(pi.shape[1])
        blocks[:, idx, idx] += pi
        return FisherMatrix(policy.theta.shape, blocks=omega[:, None, None] * blocks)
    psi = _scores(policy)
    M = np.einsum("s,sa,sak,sal->kl", omega, pi, psi, psi)
    return FisherMatrix(policy.theta.shape, matrix=M)


def fisher_by_enumeration(mdp: TabularMDP, policy: Policy) -> np.ndarray:
    """F = sum_tau p(tau) sum_t gamma^t psi_t psi_t^T over every trajectory: the second, independent method, [n, n]."""
    eps = enumerate_trajectories(mdp, policy)
    n = _n_params(policy)
    F = np.zeros((n, n))
    for t in range(eps.a_t.shape[1]):
        on = eps.lengths > t
        if not on.any():
            continue
        psi = policy.score(eps.s_t[on, t], eps.a_t[on, t]).reshape(-1, n)
        F += mdp.gamma ** t * (psi * eps.weights[on, None]).T @ psi
    return F


@dataclass(frozen=True)
class NaturalGradient:
    """F^+ grad J with its ingredients."""

    direction: np.ndarray
    grad: np.ndarray
    fisher: FisherMatrix

    def to_json(self) -> dict:
        return {"natural_gradient": self.direction.tolist(), "grad": self.grad.tolist()}


def natural_gradient(mdp: TabularMDP, policy: Policy, *, rcond: float = 1e-10) -> NaturalGradient:
    """The natural direction F^+ grad J (Kakade 2001), exact. For the tabular softmax this is the averaged
    advantage Abar(s, .) minus its mean over actions (Kakade's Theorem 1 up to F's null space).

    >>> from verify.model.builtin import load_example
    >>> p = load_example("bandit")
    >>> ng = natural_gradient(p.mdp, p.policy)
    >>> A = averaged_advantage(p.mdp, p.policy)
    >>> bool(np.allclose(ng.direction, A - A.mean(axis=1, keepdims=True)))
    True
    """
    F = fisher(mdp, policy)
    g = gradient(mdp, policy).grad
    return NaturalGradient(F.pinv_apply(g, rcond), g, F)


@dataclass(frozen=True)
class CompatibleFit:
    """The least-squares fit f_w = psi^T w of Q (weights d_t(s) pi(a|s)) and the theorem's two sides."""

    w: np.ndarray
    grad: np.ndarray      # grad J (DP)
    Fw: np.ndarray        # F w

    @property
    def max_abs_difference(self) -> float:
        return float(np.abs(self.Fw - self.grad).max()) if self.grad.size else 0.0


def compatible_features(mdp: TabularMDP, policy: Policy) -> CompatibleFit:
    """Sutton et al. (2000), Thm 2: the w minimising sum_t sum_s d_t(s) sum_a pi(a|s) (psi(s,a)^T w - Q_t(s,a))^2
    satisfies F w = grad J. The fit is an ordinary weighted least-squares solve on the design psi (numpy lstsq),
    so it shares nothing with ``fisher`` but the occupancy.

    Since sum_t d_t (f - Q_t)^2 = omega (f - Qbar)^2 + const with Qbar = sum_t d_t Q_t / omega, the design has one
    row per (s, a): [S A, n] (at most 4 10^6 entries).
    """
    n = _n_params(policy)
    S, A = policy.probs.shape
    if S * A * n > 4_000_000:
        raise UsageError(f"the compatible-features least squares would have {S * A} x {n} entries (limit 4e6)")
    occ = occupancy(mdp, policy)
    Wq = _q_weights(mdp, policy, occ, "Q")
    seen = occ.omega > 0
    Qbar = np.zeros_like(Wq)
    Qbar[seen] = Wq[seen] / occ.omega[seen, None]
    weight = np.sqrt(occ.omega[:, None] * policy.probs).reshape(-1)
    psi = _scores(policy).reshape(S * A, n)
    # singular values below 1e-10 of the largest are dropped: the minimum-norm w, not a 1e13 one along a
    # near-null direction whose round-off would break F w = grad J
    w, *_ = np.linalg.lstsq(weight[:, None] * psi, weight * Qbar.reshape(-1), rcond=1e-10)
    w = w.reshape(policy.theta.shape)
    return CompatibleFit(w, gradient(mdp, policy).grad, fisher(mdp, policy).matvec(w))


# --- the performance-difference lemma and the surrogates -------------------------------------------------------------

def _same_problem(mdp: TabularMDP, old: Policy, new: Policy) -> None:
    old.check_compatible(mdp.n_states, mdp.n_actions)
    new.check_compatible(mdp.n_states, mdp.n_actions)
    if old.theta.shape != new.theta.shape or type(old) is not type(new):
        raise UsageError("the two policies must be of one type and one parameter shape")


@dataclass(frozen=True)
class PerformanceDifference:
    """Both sides of J(new) - J(old) = sum_t gamma^t E_{tau~new}[A^old_t(s_t, a_t)]."""

    J_old: float
    J_new: float
    expected_advantage: float

    @property
    def difference(self) -> float:
        return self.J_new - self.J_old

    def to_json(self) -> dict:
        return {"J_old": self.J_old, "J_new": self.J_new, "difference": self.difference,
                "expected_advantage": self.expected_advantage}


def performance_difference(mdp: TabularMDP, old: Policy, new: Policy) -> PerformanceDifference:
    """Kakade & Langford (2002), Lemma 6.1, exact: the new policy's occupancy (DP or solve) against the old
    policy's advantage table, and J of both (``verify.numerics.exact.gradient``)."""
    _same_problem(mdp, old, new)
    occ_new = occupancy(mdp, new)
    V, Q = value_tables(mdp, old)
    A = Q - V[..., None]
    if mdp.horizon is None:
        rhs = float(np.sum(occ_new.omega[:, None] * new.probs * A[0]))
    else:
        rhs = float(np.einsum("ts,sa,tsa->", occ_new.d_t, new.probs, A))
    return PerformanceDifference(gradient(mdp, old, need_grad=False).J, gradient(mdp, new, need_grad=False).J, rhs)


@dataclass(frozen=True)
class Surrogate:
    """L_old(theta) and its gradient, J(theta) and its gradient, and the gap grad L - grad J."""

    L: float
    grad_L: np.ndarray
    J: float
    grad_J: np.ndarray

    @property
    def gap(self) -> np.ndarray:
        return self.grad_L - self.grad_J

    def to_json(self) -> dict:
        return {"L": self.L, "grad_L": self.grad_L.tolist(), "J": self.J, "grad_J": self.grad_J.tolist(),
                "gap": self.gap.tolist()}


def _old_tables(mdp: TabularMDP, old: Policy):
    """(d^old_t [T, S], A^old_t [T, S, A], J(old)) with T = 1 and d = omega for horizon null."""
    occ = occupancy(mdp, old)
    V, Q = value_tables(mdp, old)
    A = Q - V[..., None]
    d = occ.omega[None] if mdp.horizon is None else occ.d_t
    return d, A, float(mdp.initial @ V[0])


def surrogate(mdp: TabularMDP, old: Policy, policy: Policy) -> Surrogate:
    """The importance-sampled surrogate of Schulman et al. (2015), exact:

        L_old(theta) = J(old) + sum_t gamma^t E_{tau~old}[pi_theta(a_t|s_t) / pi_old(a_t|s_t) A^old_t(s_t, a_t)]
                     = J(old) + sum_t sum_s d^old_t(s) sum_a pi_theta(a|s) A^old_t(s, a),
        grad L       = sum_s sum_a [sum_t d^old_t(s) A^old_t(s, a)] pi_theta(a|s) psi_theta(s, a),

    so grad L(old) = grad J(old) (the policy-gradient theorem, advantage form); elsewhere ``gap`` is exact.
    """
    _same_problem(mdp, old, policy)
    d, A, J_old = _old_tables(mdp, old)
    WA = np.einsum("ts,tsa->sa", d, A)
    L = J_old + float(np.sum(WA * policy.probs))
    res = gradient(mdp, policy)
    return Surrogate(L, policy.score_contract(WA * policy.probs), res.J, res.grad)


def ppo_clip_surrogate(mdp: TabularMDP, old: Policy, policy: Policy, clip: float = PPO_CLIP) -> tuple[float, np.ndarray]:
    """PPO's clipped surrogate (Schulman et al. 2017) as an exact expectation under the old policy, and its gradient:

        L^CLIP(theta) = sum_t gamma^t E_{tau~old}[min(rho_t A_t, clip(rho_t, 1 - eps, 1 + eps) A_t)],
        rho_t = pi_theta(a_t|s_t) / pi_old(a_t|s_t),   A_t = A^old_t(s_t, a_t),

    grad = sum d^old_t pi_old A_t grad rho_t over the pairs whose unclipped term is the minimum (inside the clip
    range, or clipped to no advantage), grad rho = rho psi_theta. At theta = old, rho = 1: the clip is inactive
    and grad L^CLIP = grad J. (The value omits J(old), a constant.)

    Returns:
      (value, gradient shaped like theta).
    """
    if not 0 < clip < 1:
        raise UsageError(f"PPO's clip epsilon must lie in (0, 1), got {clip!r}")
    _same_problem(mdp, old, policy)
    d, A, _ = _old_tables(mdp, old)
    rho = policy.probs / old.probs
    clipped = np.clip(rho, 1 - clip, 1 + clip)
    unclipped = rho[None] * A
    value = float(np.einsum("ts,sa,tsa->", d, old.probs, np.minimum(unclipped, clipped[None] * A)))
    inside = (rho > 1 - clip) & (rho < 1 + clip)
    active = inside[None] | (unclipped < clipped[None] * A)
    W = np.einsum("ts,tsa->sa", d, np.where(active, A, 0.0)) * old.probs * rho
    return value, policy.score_contract(W)


def kl_per_state(old: Policy, policy: Policy) -> np.ndarray:
    """KL(pi_old(.|s) || pi_theta(.|s)) per state, [S]."""
    return np.sum(old.probs * (old.log_probs - policy.log_probs), axis=1)


@dataclass(frozen=True)
class TRPOBound:
    """J(theta) >= L_old(theta) - C max_s KL (Schulman et al. 2015, Thm 1): both sides and the constant."""

    J: float
    L: float
    C: float
    max_kl: float

    @property
    def bound(self) -> float:
        return self.L - self.C * self.max_kl

    @property
    def holds(self) -> bool:
        return self.J >= self.bound - 1e-12 * max(1.0, abs(self.J), abs(self.L))

    def to_json(self) -> dict:
        return {"J": self.J, "L": self.L, "C": self.C, "max_kl": self.max_kl, "bound": self.bound,
                "holds": self.holds}


def trpo_bound(mdp: TabularMDP, old: Policy, policy: Policy) -> TRPOBound:
    """Schulman et al. (2015), Theorem 1 with C = 4 eps gamma / (1 - gamma)^2, eps = max_{t,s,a} |A^old_t(s,a)|
    over the live states, and max_s KL(pi_old || pi_theta) over the live states.

    Stated for the discounted infinite horizon; for a finite horizon the same coupling argument sums
    fewer (non-negative) terms, so the bound holds a fortiori (and the tests check both).

    Raises:
      UsageError: gamma = 1 (C is infinite).
    """
    if not mdp.gamma < 1:
        raise UsageError("TRPO's bound has C = 4 eps gamma / (1 - gamma)^2: it needs gamma < 1")
    _same_problem(mdp, old, policy)
    live = _live_operator(mdp).live
    _, A, _ = _old_tables(mdp, old)
    eps = float(np.abs(A[:, live]).max()) if live.size else 0.0
    kl = float(kl_per_state(old, policy)[live].max()) if live.size else 0.0
    C = 4 * eps * mdp.gamma / (1 - mdp.gamma) ** 2
    return TRPOBound(gradient(mdp, policy, need_grad=False).J, surrogate(mdp, old, policy).L, C, max(kl, 0.0))


# --- the gamma^t-less update is not a gradient -------------------------------------------------------------------

def gamma_less_update(mdp: TabularMDP, policy: Policy) -> np.ndarray:
    """The exact expected update E[sum_t psi(s_t,a_t) sum_{t'>=t} gamma^{t'-t} r_{t'}] = sum_t sum_s Pr(s_t = s)
    sum_a pi psi Q_t (the catalog's ``rtg_restart_discount``): the undiscounted occupancy against the
    discounted Q (Nota & Thomas 2020). Shaped like theta.

    Raises:
      UsageError: horizon null and an episode that need not end (the update's mean is infinite).
    """
    occ = occupancy(mdp, policy, discount=False)
    return policy.score_contract(policy.probs * _q_weights(mdp, policy, occ, "Q"))


def field_jacobian(field: Callable[[TabularMDP, Policy], np.ndarray], mdp: TabularMDP, policy: Policy, *,
                   eps: float = 1e-5) -> np.ndarray:
    """d field_i / d theta_j by central differences of the exact field: [n, n], error O(eps^2)."""
    theta = policy.theta.ravel()
    n = theta.size
    J = np.empty((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = eps
        J[:, j] = (field(mdp, policy.with_theta(theta + e)).ravel()
                   - field(mdp, policy.with_theta(theta - e)).ravel()) / (2 * eps)
    return J


@dataclass(frozen=True)
class GradientFieldCheck:
    """Is the expected update a gradient field? Its Jacobian's asymmetry against the Hessian of J's.

    ``asymmetry`` = max |Ju - Ju^T| for the update u; ``control`` the same for grad J (a true gradient: its
    Jacobian, the Hessian, is symmetric, so its asymmetry measures the finite-difference error); ``bias`` =
    u - grad J. The update is "not a gradient" when its asymmetry exceeds ``FACTOR`` times the control's plus
    a round-off floor.
    """

    jacobian: np.ndarray
    hessian: np.ndarray
    update: np.ndarray
    grad: np.ndarray
    eps: float

    FACTOR = 1000.0

    @property
    def asymmetry(self) -> float:
        return float(np.abs(self.jacobian - self.jacobian.T).max()) if self.jacobian.size else 0.0

    @property
    def control(self) -> float:
        return float(np.abs(self.hessian - self.hessian.T).max()) if self.hessian.size else 0.0

    @property
    def threshold(self) -> float:
        scale = max(1.0, float(np.abs(self.hessian).max()) if self.hessian.size else 1.0)
        return self.FACTOR * self.control + 1e-7 * scale

    @property
    def is_gradient(self) -> bool | None:
        """False: the Jacobian is not symmetric (no function has this gradient); None: symmetric within the
        finite-difference error (undecided: a symmetric Jacobian on one theta proves nothing)."""
        return False if self.asymmetry > self.threshold else None

    @property
    def bias(self) -> np.ndarray:
        return self.update - self.grad

    def worst_pair(self) -> tuple[int, int]:
        D = np.abs(self.jacobian - self.jacobian.T)
        i, j = np.unravel_index(int(np.argmax(D)), D.shape)
        return int(i), int(j)

    def to_json(self) -> dict:
        i, j = self.worst_pair()
        return {"asymmetry_max_abs": self.asymmetry, "hessian_asymmetry_max_abs": self.control,
                "threshold": self.threshold, "is_gradient": self.is_gradient,
                "worst_pair": [i, j], "jacobian_ij": float(self.jacobian[i, j]),
                "jacobian_ji": float(self.jacobian[j, i]), "eps": self.eps,
                "update": self.update.ravel().tolist(), "grad": self.grad.ravel().tolist(),
                "bias": self.bias.ravel().tolist(), "bias_max_abs": float(np.abs(self.bias).max())}


def check_gradient_field(mdp: TabularMDP, policy: Policy, *, eps: float = 1e-4,
                         field: Callable[[TabularMDP, Policy], np.ndarray] = gamma_less_update) -> GradientFieldCheck:
    """The Jacobian of ``field`` (default the gamma^t-less update) and the Hessian of J, both by central
    differences of exact values (O(eps^2) error, measured by the Hessian's own asymmetry), and the update's exact
    bias against grad J (Nota & Thomas 2020, "Is the policy gradient a gradient?").

    >>> from verify.model.builtin import load_example
    >>> p = load_example("chain")
    >>> check_gradient_field(p.mdp, p.policy).is_gradient
    False
    """
    if _n_params(policy) > 400:
        raise UsageError(f"the Jacobian by central differences is offered up to 400 parameters, not "
                         f"{_n_params(policy)}")
    grad_field = lambda m, p: gradient(m, p).grad      # noqa: E731
    return GradientFieldCheck(field_jacobian(field, mdp, policy, eps=eps),
                              field_jacobian(grad_field, mdp, policy, eps=eps),
                              field(mdp, policy), gradient(mdp, policy).grad, eps)


# --- a sampled natural gradient (API only: its target is F^+ grad J, not grad J) --------------------------------

def sampled_natural_gradient(episodes, *, rcond: float = 1e-8) -> np.ndarray:
    """F_hat^+ g_hat from one batch: F_hat = mean_n sum_t gamma^t psi_t psi_t^T, g_hat = the reward-to-go estimate.

    A ratio of two sample means: consistent for F^+ grad J, not unbiased, and not an estimator of grad J, which is
    why it is not in the per-episode catalog (whose verdicts compare with grad J).
    """
    from verify.checks.estimators import get_estimator

    pol, mdp = episodes.policy, episodes.mdp
    n = _n_params(pol)
    if n > MAX_DENSE_FISHER:
        raise UsageError(f"a sampled Fisher matrix is offered up to {MAX_DENSE_FISHER} parameters")
    w = np.full(episodes.n, 1.0 / episodes.n) if episodes.weights is None else episodes.weights
    F = np.zeros((n, n))
    for t in range(episodes.a_t.shape[1]):
        on = episodes.lengths > t
        if on.any():
            psi = pol.score(episodes.s_t[on, t], episodes.a_t[on, t]).reshape(-1, n)
            F += mdp.gamma ** t * (psi * w[on, None]).T @ psi
    g = w @ get_estimator("reward_to_go")(episodes).reshape(episodes.n, n)
    return (np.linalg.pinv(F, rcond=rcond, hermitian=True) @ g).reshape(pol.theta.shape)
