r"""Rollouts as a vectorised training loop collects them, and the exact gradient such a loop estimates (numpy only).

A training loop does not see padded complete episodes. It steps B environments (a gymnasium vector env, a
``jax.vmap``-ed env) T times, with **auto-reset**: when an episode ends (``terminated``: a terminal state;
``truncated``: the time limit) the environment resets in the same step, and the next observation is the first
of a new episode. It records, per step, the observation, the action, the reward, the two flags, and what the
networks said at collection (log pi(a_t|s_t), V(s_t)); at the cut it needs the value of the last observation to
bootstrap. ``RolloutModel`` samples exactly that from a tabular MDP (and enumerates every rollout of one
environment when there are few), and ``RolloutModel.target`` is the exact expectation a correct loss has.

**The target (derived).** Let k_t be the number of steps the episode running at step t has taken (0 after a
reset) and A_k(s, a) = Q_k(s, a) - V_k(s) the exact advantage of the MDP's objective (time-indexed for a finite
horizon H, stationary for ``horizon: null``; with a ``time_limit`` on a ``horizon: null`` MDP the objective is
still the untruncated J, so truncation must bootstrap with V). The policy-gradient theorem written per visited
step gives the rollout's gradient, per environment and per step (losses average over the T B steps):

    g_roll = (1/T) sum_{t<T} E[ w(k_t) grad log pi(a_t|s_t) A_{k_t}(s_t, a_t) ],

with w(k) = gamma^k (``weighting="discounted"``: each visited step is the term of grad J = sum_k gamma^k E[grad
log pi(a_k|s_k) A_k(s_k, a_k)] it samples) or w(k) = 1 (``weighting="visited"``: what GAE-based losses, PPO and
A2C among them, compute; for gamma < 1 it is the gradient of no objective, Nota & Thomas 2020, "Is the policy
gradient a gradient?"). E[grad log pi A | s] = sum_a pi grad log pi A, so g_roll = sum_{k,s,a} occ(k, s) w(k)
pi(a|s) A_k(s, a) grad log pi(a|s) with occ(k, s) the rollout's mean occupancy of (k, s), computed by a forward
recursion over the auto-reset chain (``occupancy``).

- ``start="reset"`` (the first rollout of a run): every environment starts from a reset. Early episode steps
  are over-represented (an episode cut at T contributes only its first steps), so g_roll is *not* a multiple of
  grad J in general; it is what the procedure estimates, and the report gives its angle to grad J.
- ``start="stationary"`` (a loop in steady state): (s_0, k_0) is drawn from the stationary law of the
  auto-reset chain, occ(k, s) = p_k(s) / E[L] at every t, where p_k(s) = P(s_k = s, episode alive at k) from a
  reset and E[L] the expected episode length (renewal-reward theorem). Then, with discounted weighting,
  g_roll = grad J / E[L] exactly when the time limit is the horizon (every step of an episode is visited):
  the rollout is proportional to grad J.

The recorded values are pgverify's exact V_{k_t}(s_t) (so the check asks: is the loss right when its critic is
right? a learned critic's error is a separate question), and ``logprobs`` are log pi at collection, so a PPO
loss in its first epoch (theta = theta_old) has ratio 1 and its gradient is the score-function estimator.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from verify.errors import UsageError
from verify.numerics.exact import value_tables
from verify.frameworks._common import surrogate_policy
from verify.model.io import require_memory, require_work
from verify.model.mdp import TabularMDP

__all__ = ["DEFAULT_ROLLOUT_TOLERANCE", "PITFALLS", "ROLLOUT_PATHS", "Rollout", "RolloutBatch", "RolloutCheck",
           "RolloutModel", "RolloutSpec", "check_rollout_estimates", "rollout_arrays"]

ROLLOUT_PATHS = 4096             # rollouts of one environment enumerated at most (exact means)
EXACT_CALLS = 4096               # loss evaluations allowed for an exact mean
DEFAULT_ROLLOUT_TOLERANCE = 0.02
# 0.02, not batchcheck's 0.1: a loss whose mean is 1.02 x the target in one direction is a bug (a missing
# bootstrap or a dropped discount move it by 0.2-2 %); the exact route needs no tolerance at all.
BOOTSTRAP_RESAMPLES = 400
GAE_LAMBDAS = (0.0, 0.9, 0.95, 0.97, 0.99, 1.0)   # lambdas tried when naming a missing bootstrap (pitfall catalog)
PITFALLS = {
    "visited_weighting": "the discount gamma^k of the state weighting is dropped (every visited step weighted 1, "
                         "as GAE/PPO/A2C losses do): the gradient of no objective for gamma < 1 (Nota & Thomas 2020)",
    "no_bootstrap_at_cut": "no bootstrap value at the rollout's cut (the return of an episode still running at "
                           "step T stops there)",
    "no_bootstrap_at_truncation": "truncation treated as termination: no bootstrap value V(final observation) "
                                  "when the time limit cuts an episode",
    "entropy": "an entropy bonus in the same scalar (grad of J + beta H)",
    "value_loss": "a value loss in the same scalar, moving parameters the policy shares with the critic",
    "batch_statistic": "a batch statistic (advantage or return normalisation over the rollout): the batch's "
                       "gradient is not the mean of its environments' own",
}


@dataclass(frozen=True)
class RolloutSpec:
    """How the training loop collects: ``n_envs`` environments x ``n_steps`` steps, auto-reset.

    Attributes:
      n_envs: B. n_steps: T. time_major: tensors [T, B, ...] (rlax, purejaxrl, cleanrl's buffers) or [B, T, ...].
      start: "reset" (every environment starts from a reset) or "stationary" (mid-run steady state).
      time_limit: truncate episodes after this many steps (gymnasium ``TimeLimit``) on a ``horizon: null`` MDP;
        the objective stays the untruncated J. On a finite-horizon MDP the horizon is the time limit.
      weighting: "discounted" (grad J's gamma^k per visited step) or "visited" (weight 1: GAE-style losses).
    """

    n_envs: int = 4
    n_steps: int = 8
    time_major: bool = True
    start: str = "reset"
    time_limit: int | None = None
    weighting: str = "discounted"

    def __post_init__(self):
        for name in ("n_envs", "n_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise UsageError(f"{name} must be a positive integer, got {v!r}")
        if self.start not in ("reset", "stationary"):
            raise UsageError(f"start must be 'reset' or 'stationary', got {self.start!r}")
        if self.weighting not in ("discounted", "visited"):
            raise UsageError(f"weighting must be 'discounted' or 'visited', got {self.weighting!r}")
        if self.time_limit is not None and (isinstance(self.time_limit, bool) or self.time_limit < 1):
            raise UsageError(f"time_limit must be a positive integer or None, got {self.time_limit!r}")


    def check_mdp(self, mdp: TabularMDP) -> None:
        """Raise ``UsageError`` when the spec does not fit the MDP (before any work on the policy)."""
        if mdp.horizon is not None and self.time_limit is not None:
            raise UsageError(f"time_limit applies to horizon-null MDPs; {mdp.name} has horizon {mdp.horizon}, "
                             "which is its time limit")


@dataclass(frozen=True, eq=False)
class Rollout:
    """Rollouts of N environments, batch-major numpy arrays [N, T] (``weights`` [N]: probabilities when enumerated).

    s, a, r, terminated, truncated, next_s (the true successor s_{t+1}, before any reset), k (the episode's step
    count at t), last_s / last_k [N] (after the T-th step, reset applied).
    """

    s: np.ndarray
    a: np.ndarray
    r: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    next_s: np.ndarray
    k: np.ndarray
    last_s: np.ndarray
    last_k: np.ndarray
    weights: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.s.shape[0]

    def select(self, idx) -> "Rollout":
        return Rollout(*(getattr(self, f)[idx] for f in ("s", "a", "r", "terminated", "truncated", "next_s", "k",
                                                          "last_s", "last_k")), None)


class RolloutBatch(NamedTuple):
    """What a rollout loss receives (time-major [T, B, ...] unless the spec says batch-major [B, T, ...]).

    obs, actions, rewards, terminated, truncated: gymnasium's step outputs per step. dones: terminated | truncated
    (purejaxrl's ``done``, the transition's flag). starts: obs[t] is the first observation of an episode
    (cleanrl's ``dones`` buffer, the previous step's flag; True at t = 0 after the initial reset). logprobs:
    log pi(a_t|s_t) at collection. values: V(s_t) at collection. next_obs: the true s_{t+1} (gymnasium's
    ``final_observation`` where an episode ended). next_values: V(s_{t+1}), 0 where terminated (the bootstrap
    at truncation). last_obs [B, ...], last_value [B], last_done [B]: after the T-th step (cleanrl's ``next_obs``,
    ``next_value``, ``next_done``). steps: k_t, the steps the running episode has taken before t (gymnasium's
    ``RecordEpisodeStatistics`` counts them; gamma ** steps is grad J's state weighting). gamma: the discount.
    """

    obs: object
    actions: object
    rewards: object
    terminated: object
    truncated: object
    dones: object
    starts: object
    logprobs: object
    values: object
    next_obs: object
    next_values: object
    last_obs: object
    last_value: object
    last_done: object
    steps: object
    gamma: float


class RolloutModel:
    """A tabular MDP, the network's action probabilities (log pi [S, A]) and a ``RolloutSpec``: sampling,
    enumeration, exact values, the exact target and the catalog of rollout pitfalls."""

    def __init__(self, mdp: TabularMDP, logp: np.ndarray, spec: RolloutSpec):
        S, A = mdp.n_states, mdp.n_actions
        require_memory(8.0 * S * A * S * 2, f"the dense transition and reward tables [S={S}, A={A}, S]")
        spec.check_mdp(mdp)
        self.mdp, self.spec = mdp, spec
        self.policy = surrogate_policy(logp)
        self.pi = np.exp(np.maximum(logp, -700.0))
        self.pi /= self.pi.sum(axis=1, keepdims=True)
        self.logp = np.log(np.maximum(self.pi, 1e-300))
        self.P = np.asarray(mdp.transitions, dtype=float)
        R = np.asarray(mdp.rewards, dtype=float)
        self.R = R if R.ndim == 3 else np.repeat(R[:, :, None], S, axis=2)
        self.terminal = np.asarray(mdp.terminal, dtype=bool)
        self.rho0 = np.asarray(mdp.initial, dtype=float)
        self.gamma = float(mdp.gamma)
        self.kmax = mdp.horizon if mdp.horizon is not None else spec.time_limit   # None: no truncation
        V, Q = value_tables(mdp, self.policy)
        if mdp.horizon is not None:
            self.V = np.vstack([V, np.zeros((1, S))])       # V_H = 0: nothing is left after the horizon
            self.Q = np.asarray(Q)
        else:
            self.V, self.Q = np.asarray(V), np.asarray(Q)
        if spec.start == "stationary" and self.kmax is None and not mdp.terminates_surely:
            raise UsageError("start='stationary' needs episodes of finite expected length: a finite horizon, a "
                             "time_limit, or an MDP whose episodes terminate surely")
        self.kdim = self.kmax if self.kmax is not None else max(spec.n_steps, self._length_cap())

    # --- values -------------------------------------------------------------------------------------------------

    def values(self, k, s) -> np.ndarray:
        """V_k(s) (the stationary V for ``horizon: null``)."""
        return self.V[np.minimum(k, self.V.shape[0] - 1), s]

    def advantages(self, k, s, a) -> np.ndarray:
        return self.Q[np.minimum(k, self.Q.shape[0] - 1), s, a] - self.values(k, s)

    def weight(self, k) -> np.ndarray:
        return self.gamma ** np.asarray(k, dtype=float) if self.spec.weighting == "discounted" else \
            np.ones(np.shape(k))

    # --- the chain over (k, s) ----------------------------------------------------------------------------------

    def _length_cap(self) -> int:
        """For a stationary start without a time limit (episodes terminate surely): steps until the survival
        probability is below 1e-15."""
        p, k = self.rho0 * ~self.terminal, 0
        while p.sum() > 1e-15 and k < 100_000:
            p = self._advance(p)
            k += 1
        return k + 1

    def _advance(self, p: np.ndarray) -> np.ndarray:
        """Mass on non-terminal successors after one step (before any time limit)."""
        nxt = np.einsum("s,sa,sat->t", p, self.pi, self.P)
        return nxt * ~self.terminal

    def start_distribution(self) -> np.ndarray:
        """[kdim, S]: the law of (k_0, s_0)."""
        mu = np.zeros((self.kdim, self.mdp.n_states))
        if self.spec.start == "reset":
            mu[0] = self.rho0
            return mu
        p = self.rho0.copy()
        for k in range(self.kdim):
            mu[k] = p
            p = self._advance(p)
        return mu / mu.sum()         # p_k(s) / E[L]: the renewal-reward stationary law

    def expected_length(self) -> float:
        p, total = self.rho0.copy(), 0.0
        for _ in range(self.kdim):
            total += p.sum()
            p = self._advance(p)
        return total

    def _step_occ(self, m: np.ndarray) -> np.ndarray:
        nxt = np.zeros_like(m)
        flow = np.einsum("ks,sa,sat->kt", m, self.pi, self.P)          # mass entering s' from step count k
        live = flow * ~self.terminal
        reset = flow.sum() - live.sum()
        if self.kmax is not None:
            reset += live[self.kmax - 1].sum()
            live[self.kmax - 1] = 0.0
        nxt[1:] = live[:-1]
        reset += live[-1].sum()             # only when kdim is a cap (no time limit): mass that never got there
        nxt[0] += reset * self.rho0
        return nxt

    def occupancy(self) -> np.ndarray:
        """occ(k, s) = (1/T) sum_{t<T} P(k_t = k, s_t = s), [kdim, S]."""
        m = self.start_distribution()
        occ = np.zeros_like(m)
        for _ in range(self.spec.n_steps):
            occ += m
            m = self._step_occ(m)
        return occ / self.spec.n_steps

    def target_theta(self, weighting: str | None = None) -> np.ndarray:
        """g_roll in the surrogate's theta space: W[s, a] = sum_k occ(k, s) w(k) pi(a|s) A_k(s, a), [S, A]."""
        occ = self.occupancy()
        ks = np.arange(self.kdim)
        w = self.gamma ** ks if (weighting or self.spec.weighting) == "discounted" else np.ones(self.kdim)
        A = self.Q[np.minimum(ks, self.Q.shape[0] - 1)] - self.V[np.minimum(ks, self.V.shape[0] - 1)][:, :, None]
        return np.einsum("ks,k,sa,ksa->sa", occ, w, self.pi, A)

    def entropy_theta(self) -> np.ndarray:
        """grad of the mean entropy of pi at the visited states, (1/T) sum_t E[H(pi(.|s_t))], in theta space:
        grad H(s) = -sum_a pi(a|s) log pi(a|s) grad log pi(a|s)."""
        occ = self.occupancy().sum(axis=0)
        return occ[:, None] * (-self.pi * self.logp)

    # --- sampling and enumeration -------------------------------------------------------------------------------

    def sample(self, n: int, rng: np.random.Generator) -> Rollout:
        T, S = self.spec.n_steps, self.mdp.n_states
        require_memory(8.0 * n * T * 8, f"rollouts of {n} environments x {T} steps")
        mu = self.start_distribution().ravel()
        start = rng.choice(mu.size, size=n, p=mu / mu.sum())
        k, s = np.divmod(start, S)
        out = {f: np.zeros((n, T), dtype=np.int64) for f in ("s", "a", "next_s", "k")}
        r = np.zeros((n, T))
        term = np.zeros((n, T), dtype=bool)
        trunc = np.zeros((n, T), dtype=bool)
        cpi = np.cumsum(self.pi, axis=1)
        cP = np.cumsum(self.P, axis=2)
        c0 = np.cumsum(self.rho0)
        for t in range(T):
            a = np.minimum((rng.random(n)[:, None] > cpi[s]).sum(axis=1), self.mdp.n_actions - 1)
            s2 = np.minimum((rng.random(n)[:, None] > cP[s, a]).sum(axis=1), S - 1)
            out["s"][:, t], out["a"][:, t], out["next_s"][:, t], out["k"][:, t] = s, a, s2, k
            r[:, t] = self.R[s, a, s2]
            term[:, t] = self.terminal[s2]
            k = k + 1
            trunc[:, t] = ~term[:, t] & (self.kmax is not None) & (k >= (self.kmax or 0))
            done = term[:, t] | trunc[:, t]
            fresh = np.minimum((rng.random(n)[:, None] > c0).sum(axis=1), S - 1)
            s = np.where(done, fresh, s2)
            k = np.where(done, 0, k)
        return Rollout(out["s"], out["a"], r, term, trunc, out["next_s"], out["k"], s, k)

    def enumerate(self, limit: int = ROLLOUT_PATHS) -> Rollout | None:
        """Every rollout of one environment with its probability, or None when there are more than ``limit``."""
        T = self.spec.n_steps
        mu = self.start_distribution()
        ks, ss = np.nonzero(mu > 0)
        paths = [(mu[k, s], int(s), int(k), []) for k, s in zip(ks, ss)]
        if len(paths) > limit:
            return None
        resets = [(int(x), self.rho0[x]) for x in np.flatnonzero(self.rho0 > 0)]
        for _ in range(T):
            nxt = []
            for w, s, k, hist in paths:
                for a in np.flatnonzero(self.pi[s] > 0):
                    for s2 in np.flatnonzero(self.P[s, a] > 0):
                        p = w * self.pi[s, a] * self.P[s, a, s2]
                        term = bool(self.terminal[s2])
                        k2 = k + 1
                        trunc = (not term) and self.kmax is not None and k2 >= self.kmax
                        step = (s, int(a), float(self.R[s, a, s2]), term, trunc, int(s2), k)
                        if term or trunc:
                            nxt += [(p * q, x, 0, hist + [step]) for x, q in resets]
                        else:
                            nxt.append((p, int(s2), k2, hist + [step]))
                        if len(nxt) > limit:
                            return None
            paths = nxt
        cols = list(zip(*[list(zip(*h)) for _, _, _, h in paths]))
        s, a, r, term, trunc, s2, k = (np.array(c) for c in cols)
        return Rollout(s.astype(np.int64), a.astype(np.int64), r.astype(float), term.astype(bool),
                       trunc.astype(bool), s2.astype(np.int64), k.astype(np.int64),
                       np.array([p[1] for p in paths], dtype=np.int64), np.array([p[2] for p in paths], dtype=np.int64),
                       np.array([p[0] for p in paths]))

    # --- per-rollout estimators (the reference and the pitfalls), theta space ----------------------------------

    def _accumulate(self, ro: Rollout, psi: np.ndarray, w: np.ndarray) -> np.ndarray:
        """[N, S, A]: per environment (1/T) sum_t w_t psi_t e_{s_t, a_t}; times ``jac`` it is
        (1/T) sum_t w_t psi_t grad log pi(a_t|s_t) in the network's parameters."""
        N, T = ro.s.shape
        out = np.zeros((N, self.mdp.n_states, self.mdp.n_actions))
        np.add.at(out, (np.repeat(np.arange(N), T), ro.s.ravel(), ro.a.ravel()), (w * psi).ravel() / T)
        return out

    def _td_values(self, ro: Rollout, bootstrap_truncation: bool = True) -> tuple[np.ndarray, np.ndarray]:
        v = self.values(ro.k, ro.s)
        nv = np.where(ro.terminated, 0.0, self.values(ro.k + 1, ro.next_s))
        if not bootstrap_truncation:
            nv = np.where(ro.truncated, 0.0, nv)
        return v, nv

    def gae(self, ro: Rollout, lam: float, *, bootstrap_truncation: bool = True,
            bootstrap_cut: bool = True) -> np.ndarray:
        """GAE(lambda) advantages with the exact V, [N, T] (Schulman et al. 2016): delta_t = r_t + gamma V(s_{t+1})
        (0 when terminated; V(final observation) when truncated) - V(s_t), A_t = delta_t + gamma lambda A_{t+1}
        within an episode; at the cut, V(s_T) bootstraps. With the exact V every lambda has E[A_t | s_t, a_t] =
        A(s_t, a_t); the two switches are the pitfalls."""
        v, nv = self._td_values(ro, bootstrap_truncation)
        done = ro.terminated | ro.truncated
        delta = ro.r + self.gamma * nv - v
        if not bootstrap_cut:
            # the last step of a running episode: no V(s_T), its return stops at the cut
            delta[:, -1] = np.where(done[:, -1], delta[:, -1], ro.r[:, -1] - v[:, -1])
        adv = np.zeros_like(delta)
        acc = np.zeros(ro.n)
        for t in reversed(range(delta.shape[1])):
            acc = delta[:, t] + self.gamma * lam * np.where(done[:, t], 0.0, acc)
            adv[:, t] = acc
        return adv

    def reference(self, ro: Rollout) -> np.ndarray:
        """The unbiased estimator of g_roll on each environment's rollout, [N, S, A]: TD(0) advantages with
        the exact V (E[r + gamma V(s') - V(s) | s, a] = A(s, a))."""
        return self._accumulate(ro, self.gae(ro, 0.0), self.weight(ro.k))

    def pitfall_variants(self, ro: Rollout):
        """(name, detail, per-environment estimate [N, S, A]) of every catalog pitfall that differs from the
        correct estimator here: a missing bootstrap (at truncation, at the cut) for GAE's usual lambdas, and the
        dropped gamma^k, alone and combined."""
        weightings = [("", self.weight(ro.k))]
        if self.gamma != 1.0 and self.spec.weighting == "discounted":
            weightings.append(("visited_weighting", np.ones(ro.k.shape)))
        for wname, w in weightings:
            if wname:
                yield wname, "", self._accumulate(ro, self.gae(ro, 0.0), w)
            for lam in GAE_LAMBDAS:
                variants = [("no_bootstrap_at_cut", dict(bootstrap_cut=False))]
                if self.spec.time_limit is not None:      # a finite horizon is the objective's: V_H = 0
                    variants.append(("no_bootstrap_at_truncation", dict(bootstrap_truncation=False)))
                for name, kw in variants:
                    detail = f"lambda = {lam:g}" + (", with the discount dropped from the state weighting"
                                                   if wname else "")
                    yield name, detail, self._accumulate(ro, self.gae(ro, lam, **kw), w)


def rollout_arrays(ro: Rollout, model: RolloutModel, table: np.ndarray) -> RolloutBatch:
    """The numpy ``RolloutBatch`` of rollouts ``ro`` (batch-major internally; transposed for time-major)."""
    obs = table[ro.s]
    starts = np.zeros_like(ro.terminated)
    starts[:, 0] = True
    starts[:, 1:] = ro.terminated[:, :-1] | ro.truncated[:, :-1]
    _, nv = model._td_values(ro)
    fields = dict(obs=obs, actions=ro.a, rewards=ro.r, terminated=ro.terminated, truncated=ro.truncated,
                  dones=ro.terminated | ro.truncated, starts=starts, logprobs=model.logp[ro.s, ro.a],
                  values=model.values(ro.k, ro.s), next_obs=table[ro.next_s], next_values=nv)
    if model.spec.time_major:
        fields = {k: np.swapaxes(v, 0, 1) for k, v in fields.items()}
    steps = np.swapaxes(ro.k, 0, 1) if model.spec.time_major else ro.k
    return RolloutBatch(**fields, last_obs=table[ro.last_s], last_value=model.values(ro.last_k, ro.last_s),
                        last_done=ro.terminated[:, -1] | ro.truncated[:, -1], steps=steps, gamma=model.gamma)


# --- the check ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class RolloutCheck:
    """The verdict on a loss fed rollouts (``verify.frameworks.torch.check_rollout_loss`` and the JAX twin).

    Attributes:
      loss, problem, spec: names and the rollout. verdict: "unbiased", "proportional" (``c``), "biased" or
        "undecided" (never a pass). objective: "J" or "J + beta H" when ``entropy_coef`` was given.
      method: "exact: per-environment", "exact: every batch" or "monte carlo".
      names, policy: parameter names and the mask of the policy's parameters (the judged part).
      target: g_roll (+ beta grad H); mean: E[-grad loss] (judged on the policy's parameters); stderr (Monte Carlo).
      grad_J: exact grad J (the angle of the rollout target to it is reported).
      c: the scale (proportional). relative_bias, angle, nonproportional (with ``nonprop_ci``: 95 % bootstrap
        interval, Monte Carlo): geometry against the target on the policy's parameters.
      causes: (pitfall, evidence) pairs naming why the mean differs. critic_part: |E[-grad loss]| on parameters
        that do not move pi (the value loss's contribution, not judged). entropy: (beta fitted, |beta grad H|).
      nan_batches, batches_total: loss evaluations that were not finite (skipped, counted) and all of them.
    """

    loss: str
    problem: str
    spec: RolloutSpec
    verdict: str
    objective: str
    method: str
    names: tuple[str, ...]
    policy: np.ndarray
    target: np.ndarray
    mean: np.ndarray
    grad_J: np.ndarray
    stderr: np.ndarray | None = None
    c: float | None = None
    relative_bias: float = 0.0
    angle: float = 0.0
    nonproportional: float = 0.0
    nonprop_ci: tuple[float, float] | None = None
    scale_c: float = 1.0
    p_unbiased: float | None = None
    resolution: float | None = None
    tolerance: float = DEFAULT_ROLLOUT_TOLERANCE
    alpha: float = 1e-3
    batches: int = 0
    seed: int = 0
    causes: tuple[tuple[str, str], ...] = ()
    critic_part: float = 0.0
    entropy: tuple[float, float] | None = None
    nan_batches: int = 0
    batches_total: int = 0
    n_paths: int | None = None
    convention: str | None = None
    expected_length: float = math.nan
    target_angle_to_grad_J: float = math.nan
    reason: str = ""
    reproduce: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict == "unbiased"

    def format(self) -> str:
        """The report: verdict and how it was reached, the target, the worst component, the parts, the causes."""
        sp = self.spec
        layout = (f"{sp.n_envs} envs x {sp.n_steps} steps, "
                  + ("time-major [T, B]" if sp.time_major else "batch-major [B, T]"))
        how = {"exact: per-environment": f"exact: per-environment ({self.convention} over environments), "
                                         f"enumerating {self.n_paths} rollouts of one environment",
               "exact: every batch": f"exact: every batch of {sp.n_envs} of {self.n_paths} rollouts enumerated",
               "monte carlo": f"Monte Carlo: {self.batches} rollouts of {sp.n_envs} environments, paired with the "
                              "exact-advantage estimator"}[self.method]
        obj = "grad J_roll" if self.objective == "J" else f"grad (J_roll + {self.objective.split('+')[1].strip()})"
        head = {"unbiased": f"UNBIASED: E[-grad loss] = {obj} on the policy's parameters",
                "proportional": f"PROPORTIONAL: E[-grad loss] = c {obj} with c = {self.c:.6g} > 0 (a learning-rate "
                                "change)" if self.c else "PROPORTIONAL",
                "biased": f"BIASED: E[-grad loss] is not a positive multiple of {obj}",
                "undecided": "UNDECIDED"}[self.verdict]
        lines = [f"{self.loss} on {self.problem}, rollouts of {layout} ({sp.start} start, {sp.weighting} "
                 f"weighting): {head} ({how})"]
        if self.reason:
            lines.append(f"why undecided: {self.reason}" if self.verdict == "undecided" else self.reason)
        weight = "gamma^k_t " if sp.weighting == "discounted" else ""
        lines.append(f"target: g_roll = (1/T) sum_t E[{weight}grad log pi(a_t|s_t) A(s_t, a_t)] (exact, by the "
                     f"rollout's occupancy); its angle to grad J {self.target_angle_to_grad_J:.3g} deg"
                     + (f"; expected episode length {self.expected_length:.4g}"
                        if np.isfinite(self.expected_length) else ""))
        idx = np.flatnonzero(self.policy)
        if idx.size and np.isfinite(self.mean).all():
            ref = self.target * (self.c if self.verdict == "proportional" and self.c else 1.0)
            w = idx[int(np.argmax(np.abs(self.mean[idx] - ref[idx])))]
            se = "" if self.stderr is None else f" (standard error {self.stderr[w]:.3g})"
            lines.append(f"{'worst component' if self.verdict != 'unbiased' else 'largest deviation'}: "
                         f"{self.names[w]}: target {self.target[w]:.6g}, E[-grad loss] {self.mean[w]:.6g}{se}")
        if self.verdict in ("biased", "proportional") or (self.verdict == "undecided" and self.nonprop_ci):
            ci = "" if self.nonprop_ci is None else \
                f" (95% interval {self.nonprop_ci[0]:.3g} to {self.nonprop_ci[1]:.3g})"
            lines.append(f"angle to target {self.angle:.3g} deg, relative bias {self.relative_bias:.3g}, best scale "
                         f"c = {self.scale_c:.4g}, non-proportional part {self.nonproportional:.3g} of |E|{ci}")
        if self.p_unbiased is not None:
            lines.append(f"test (max |z|, Bonferroni, alpha = {self.alpha:g}): unbiased p = {self.p_unbiased:.3g}; "
                         f"this run detects a relative bias of {self.resolution:.3g} with probability 0.999 "
                         f"(tolerance {self.tolerance:g}: a dropped bootstrap or discount moves the mean by 0.2-2%)")
        n_critic = int((~self.policy).sum())
        if n_critic:
            lines.append(f"critic-only parameters ({n_critic}; they do not move pi, not judged): |E[-grad loss]| = "
                         f"{self.critic_part:.3g} (the value loss's contribution)")
        if self.entropy is not None:
            lines.append(f"entropy: E[-grad loss] contains beta grad H with beta = {self.entropy[0]:.4g} "
                         f"(|beta grad H| = {self.entropy[1]:.3g})")
        for name, evidence in self.causes:
            lines.append(f"cause: {name}: {PITFALLS.get(name, '')}" + (f" ({evidence})" if evidence else ""))
        if self.nan_batches:
            lines.append(f"non-finite loss on {self.nan_batches} of {self.batches_total} evaluations (skipped, "
                         "counted)")
        lines.append(f"seed {self.seed}; reproduce: {self.reproduce}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        def fin(x):
            return None if x is None or not np.isfinite(x) else float(x)
        sp = self.spec
        return {"loss": self.loss, "problem": self.problem, "verdict": self.verdict, "passed": self.passed,
                "objective": self.objective, "method": self.method,
                "rollout": {"n_envs": sp.n_envs, "n_steps": sp.n_steps, "time_major": sp.time_major,
                            "start": sp.start, "time_limit": sp.time_limit, "weighting": sp.weighting},
                "c": fin(self.c), "scale_c": fin(self.scale_c), "relative_bias": fin(self.relative_bias),
                "angle_deg": fin(self.angle), "nonproportional": fin(self.nonproportional),
                "nonproportional_ci95": None if self.nonprop_ci is None else [fin(x) for x in self.nonprop_ci],
                "p_unbiased": self.p_unbiased, "resolution": fin(self.resolution), "tolerance": self.tolerance,
                "alpha": self.alpha, "batches": self.batches, "seed": self.seed,
                "causes": [[n, e] for n, e in self.causes], "critic_part": fin(self.critic_part),
                "entropy_beta": None if self.entropy is None else fin(self.entropy[0]),
                "nan_evaluations": self.nan_batches, "evaluations": self.batches_total,
                "target_angle_to_grad_J_deg": fin(self.target_angle_to_grad_J),
                "names": [n for n, p in zip(self.names, self.policy) if p],
                "target": [fin(x) for x in self.target[self.policy]],
                "mean": [fin(x) for x in self.mean[self.policy]],
                "reason": self.reason, "reproduce": self.reproduce}


def return_scale(model: RolloutModel, jac: np.ndarray, grad_J: np.ndarray) -> float:
    """The exact verdict's round-off scale: the returns' size times the largest d log pi / d param."""
    r = float(np.abs(model.R).max(initial=0.0))
    H = model.kmax or model.spec.n_steps
    return max(float(np.abs(grad_J).max(initial=0.0)), r * H * float(np.abs(jac).max(initial=0.0)))


def policy_mask(names: tuple[str, ...], policy_params) -> np.ndarray | None:
    """The judged components: parameters whose name starts with one of ``policy_params``; None: the engine's
    default (every parameter that moves pi)."""
    if policy_params is None:
        return None
    prefixes = (policy_params,) if isinstance(policy_params, str) else tuple(policy_params)
    mask = np.array([any(n.startswith(p) for p in prefixes) for n in names])
    if not mask.any():
        from verify.frameworks._common import LossError

        shown = ", ".join(dict.fromkeys(n.split("[")[0] for n in names))
        raise LossError(f"policy_params {prefixes!r} match no parameter (names: {shown})")
    return mask


def _geometry(mean, grad):
    gn, mn = float(np.linalg.norm(grad)), float(np.linalg.norm(mean))
    if gn == 0:
        return (math.inf if mn > 0 else 0.0), math.nan, math.nan, math.nan
    c = float(mean @ grad) / gn ** 2
    angle = _angle(mean, grad)
    nonprop = float(np.linalg.norm(mean - c * grad)) / mn if mn > 0 else 0.0
    return float(np.linalg.norm(mean - grad)) / gn, angle, c, nonprop


def _angle(x, y) -> float:
    """The angle between x and y in degrees, by atan2 (acos loses half the digits near 0)."""
    ny = float(np.linalg.norm(y))
    if ny == 0 or not np.any(x):
        return math.nan
    along = float(x @ y) / ny
    return math.degrees(math.atan2(float(np.linalg.norm(x - along * y / ny)), along))


def check_rollout_estimates(estimate: Callable[[Rollout], np.ndarray], model: RolloutModel, jac: np.ndarray,
                            grad_J: np.ndarray, names: tuple[str, ...], *, loss: str, seed: int = 0,
                            batches: int = 1000, alpha: float = 1e-3,
                            tolerance: float = DEFAULT_ROLLOUT_TOLERANCE, entropy_coef: float | None = None,
                            policy_mask: np.ndarray | None = None, scale: float = 1.0,
                            reproduce: str = "", on_monte_carlo: Callable[[str], None] | None = None
                            ) -> RolloutCheck:
    """The engine: E[-grad loss] on rollouts (exact where it can, else Monte Carlo) against g_roll.

    Args:
      estimate: a ``Rollout`` of B environments -> -grad loss in parameter space [d] (non-finite: counted, skipped).
      model: the rollout model. jac: d log pi(a|s) / d params [S A, d]. grad_J: exact grad J [d]. names: [d].
      on_monte_carlo: called with the Monte Carlo run's cost (steps, loss evaluations, estimated seconds from the
        probe's own calls) before it starts, so a command can say what it is about to spend.
      entropy_coef: beta, to judge against grad (J_roll + beta H). policy_mask: the judged parameters (default:
        those that move pi, i.e. a non-zero column of ``jac``). scale: round-off scale of the exact verdict.
    """
    from verify.checks.batchcheck import _mc_verdict, exact_verdict     # the one engine's tests and exact comparison

    spec = model.spec
    B, T = spec.n_envs, spec.n_steps
    d = jac.shape[1]
    mask = np.abs(jac).max(axis=0) > 0 if policy_mask is None else np.asarray(policy_mask, dtype=bool)
    pull = lambda W: W.reshape(-1) @ jac  # noqa: E731
    g = pull(model.target_theta())
    gH = pull(model.entropy_theta())
    target = g + (entropy_coef or 0.0) * gH
    objective = "J" if entropy_coef is None else f"J + {entropy_coef:g} H"
    counts = {"nan": 0, "total": 0, "seconds": 0.0}

    def call(ro: Rollout) -> np.ndarray | None:
        import time

        counts["total"] += 1
        t0 = time.perf_counter()
        out = np.asarray(estimate(ro), dtype=float)
        counts["seconds"] += time.perf_counter() - t0
        if not np.isfinite(out).all():
            counts["nan"] += 1
            return None
        return out

    # Probe: deterministic? per-environment (mean or sum)?
    rng = np.random.default_rng([seed, 29])
    probe = model.sample(max(B, 2), rng)
    full, again = call(probe), call(probe)
    tol = 1e-9 * max(scale, float(np.abs(full).max(initial=0.0)) if full is not None else 0.0, 1e-300)
    if full is not None and again is not None and np.abs(full - again).max(initial=0.0) > tol:
        raise UsageError(f"loss {loss} gives different gradients on the same rollout (max difference "
                         f"{np.abs(full - again).max():.3g}): the policy or the loss is random (dropout in training "
                         "mode? call policy.eval()); pgverify refuses to pin one random draw")
    convention = None
    if full is not None:
        singles = [call(probe.select([i])) for i in range(probe.n)]
        if all(x is not None for x in singles):
            singles = np.array(singles)
            tol2 = 1e-9 * max(scale, float(np.abs(singles).max(initial=0.0)) * probe.n)
            if np.abs(full - singles.mean(axis=0)).max() <= tol2:
                convention = "mean"
            elif np.abs(full - singles.sum(axis=0)).max() <= tol2:
                convention = "sum"
    enum = model.enumerate()
    mean = stderr = None
    method, p_unb, resolution, reason, nonprop_ci, n_paths = "", None, None, "", None, None
    if enum is not None:
        n_paths = enum.n
    if enum is not None and convention is not None:
        vals = [call(enum.select([i])) for i in range(enum.n)]
        bad = [i for i, v in enumerate(vals) if v is None]
        method = "exact: per-environment"
        if bad:
            reason = (f"the loss is not finite on {len(bad)} of {enum.n} rollouts of probability "
                      f"{enum.weights[bad].sum():.3g}: its expectation is undefined")
        else:
            mean = sum(w * v for w, v in zip(enum.weights, vals)) * (B if convention == "sum" else 1)
    elif enum is not None and enum.n ** B <= EXACT_CALLS:
        import itertools

        method = "exact: every batch"
        total, badp = 0.0, 0.0
        for idx in itertools.product(range(enum.n), repeat=B):
            p = float(np.prod(enum.weights[list(idx)]))
            v = call(enum.select(list(idx)))
            if v is None:
                badp += p
            else:
                total = total + p * v
        if counts["nan"]:
            reason = (f"the loss is not finite on batches of total probability {badp:.3g}: its expectation is "
                      "undefined")
        else:
            mean = total
    else:
        method = "monte carlo"
        work = float(batches) * B * T * max(d, 1)
        require_work(work, f"the Monte Carlo check ({batches} rollouts x {B} environments x {T} steps x {d} "
                           "parameters)")
        if on_monte_carlo is not None:
            per_call = counts["seconds"] / max(counts["total"], 1)
            on_monte_carlo(f"Monte Carlo: {batches} rollouts x {B} environments x {T} steps = {batches * B * T} "
                           f"steps, {batches} loss evaluations with backward passes (work {work:.2g} of the "
                           f"--max-work budget; about {batches * per_call:.2g} s at the probe's pace)")
        mc_rng = np.random.default_rng(seed)
        ro = model.sample(batches * B, mc_rng)
        ref = model.reference(ro).reshape(batches, B, -1).mean(axis=1)
        R = ref @ jac + (entropy_coef or 0.0) * gH[None, :]
        Y, keep = [], []
        for kk in range(batches):
            v = call(ro.select(slice(kk * B, (kk + 1) * B)))
            if v is not None:
                Y.append(v)
                keep.append(kk)
        if len(Y) < 2:
            reason = f"the loss was non-finite on {batches - len(Y)} of {batches} rollouts"
        else:
            Y, R = np.array(Y)[:, mask], R[keep][:, mask]
            tgt = target[mask]

            class _T:           # the view of batchcheck's Target that its Monte Carlo test reads
                grad, d = tgt, tgt.size
            mc = _mc_verdict(Y, R, _T, alpha, tolerance)
            mean = np.zeros(d)
            mean[mask] = mc["mean"]
            stderr = np.zeros(d)
            stderr[mask] = mc["stderr"]
            p_unb, resolution = mc["p_unbiased"], mc["resolution"]
            reason = mc.get("reason", "")
            boot = np.random.default_rng([seed, 2929])
            npb = []
            for _ in range(BOOTSTRAP_RESAMPLES):
                pick = boot.integers(0, len(Y), len(Y))
                npb.append(_geometry(Y[pick].mean(axis=0), tgt)[3])
            nonprop_ci = (float(np.nanpercentile(npb, 2.5)), float(np.nanpercentile(npb, 97.5)))
            mc_verdict = mc["verdict"]
    gm = grad_J[mask]
    common = dict(loss=loss, problem=model.mdp.name, spec=spec, objective=objective, method=method, names=names,
                  policy=mask, target=target, grad_J=grad_J, tolerance=tolerance, alpha=alpha,
                  batches=batches if method == "monte carlo" else 0, seed=seed, n_paths=n_paths,
                  convention=convention, expected_length=model.expected_length(),
                  target_angle_to_grad_J=_angle(g[mask], gm), reproduce=reproduce)
    if mean is None:
        return RolloutCheck(verdict="undecided", mean=np.full(d, np.nan), reason=reason, nan_batches=counts["nan"],
                            batches_total=counts["total"], **common)
    rel, ang, c_best, nonprop = _geometry(mean[mask], target[mask])
    critic = float(np.linalg.norm(mean[~mask]))
    causes, entropy = [], None
    if method.startswith("exact"):
        verdict, c = exact_verdict(mean[mask], target[mask], scale)
    else:
        verdict, c = mc_verdict, mc.get("c")
        if verdict == "proportional" and nonprop_ci is not None and nonprop_ci[1] > tolerance:
            verdict = "undecided"
            reason = (f"the non-proportional part's 95% upper bound {nonprop_ci[1]:.3g} exceeds the tolerance "
                      f"{tolerance:g}; use more batches")
    if verdict not in ("unbiased", "proportional"):
        causes, entropy = _name_causes(mean, mask, g, gH, model, jac, enum if method.startswith("exact") else None,
                                       scale, convention, entropy_coef, critic, exact_verdict)
    return RolloutCheck(verdict=verdict, mean=mean, stderr=stderr, c=c if verdict == "proportional" else None,
                        relative_bias=rel, angle=ang, nonproportional=nonprop, nonprop_ci=nonprop_ci,
                        scale_c=c_best, p_unbiased=p_unb, resolution=resolution, causes=tuple(causes),
                        critic_part=critic, entropy=entropy, nan_batches=counts["nan"],
                        batches_total=counts["total"], reason=reason, **common)


def _name_causes(mean, mask, g, gH, model, jac, enum, scale, convention, entropy_coef, critic, exact_verdict):
    """The catalog pitfalls that explain a biased mean: exactly (a pitfall's exact mean is a positive multiple of
    E[-grad loss], alone or with an entropy term) or, failing that, from the probe and the critic's gradient."""
    m = mean[mask]
    causes, entropy = [], None
    candidates = [("", "", g)]
    if enum is not None:
        for name, detail, per in model.pitfall_variants(enum):
            candidates.append((name, detail, np.einsum("n,nsa->sa", enum.weights, per).reshape(-1) @ jac))
    exact = enum is not None
    # How many independent directions E[-grad loss] can take here: sum_a pi grad log pi = 0 leaves at most
    # (visited states) x (A - 1). A fit of k vectors says something only with more dimensions than k.
    visited = np.flatnonzero(model.occupancy().sum(axis=0) > 0)
    rows = (visited[:, None] * model.mdp.n_actions + np.arange(model.mdp.n_actions)).ravel()
    rank = int(np.linalg.matrix_rank(jac[rows][:, mask])) if rows.size else 0
    if exact and rank > 1:
        for name, detail, vec in candidates[1:]:
            kind, c = exact_verdict(m, vec[mask], scale)
            if kind in ("unbiased", "proportional"):
                causes.append((name, f"E[-grad loss] = {c:.4g} x this pitfall's exact mean"
                                     + (f"; {detail}" if detail else "")))
                return causes, entropy
    if entropy_coef is None and rank > 2 and np.linalg.norm(gH[mask]) > 0:
        for name, detail, vec in candidates:
            # m = c v + e grad H by least squares; exact residual (or 1 % of |m| for a Monte Carlo mean)
            X = np.stack([vec[mask], gH[mask]], axis=1)
            coef, *_ = np.linalg.lstsq(X, m, rcond=None)
            resid = m - X @ coef
            tol = 1e-9 * max(scale, float(np.abs(m).max(initial=0.0)))
            if coef[0] > 0 and np.abs(resid).max() <= (tol if exact else 0.01 * np.linalg.norm(m)):
                beta = float(coef[1] / coef[0])
                entropy = (beta, float(np.linalg.norm(coef[1] * gH[mask])))
                causes.append(("entropy", f"beta = {beta:.4g}; pass entropy_coef={beta:.4g} to judge "
                                          "grad (J + beta H)" + (f", together with {name}" if name else "")))
                if name:
                    causes.append((name, "exact, with the entropy term" + (f"; {detail}" if detail else "")))
                return causes, entropy
    if convention is None:
        causes.append(("batch_statistic", "found by the probe; the likely cause of the bias"))
    elif critic > 0:
        causes.append(("value_loss", f"likely: critic-only parameters get |E[-grad loss]| = {critic:.3g}, and "
                                     "parameters shared with the critic get the value loss's gradient too"))
    return causes, entropy
