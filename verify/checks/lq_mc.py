r"""Monte Carlo on LQ problems: a vectorised sampler, the Gaussian score-function and pathwise estimators, named
pitfalls, and verdicts by the same rules as the tabular path (exact first, else ``stats.consistency_test``).

The score of the linear Gaussian policy u ~ N(K x + k, diag(sigma^2)) at a step, with eps = (u - K x - k) / sigma::

    d log pi / dK = (eps / sigma) x^T,   d log pi / dk = eps / sigma,   d log pi / dlog_std = eps^2 - 1.

Estimators (per episode g(tau), flat in theta = [K, k, log_std]; the batch mean is the Monte Carlo estimate):

- ``total_return``: sum_t score_t R(tau) (Williams 1992); ``reward_to_go``: sum_t score_t sum_{t' >= t} gamma^t' r_t';
  ``baseline_value``: reward-to-go minus gamma^t V_t(x_t), V the exact quadratic value (``lq.lq_values``);
- ``pathwise``: the reparameterised gradient d/dtheta sum_t gamma^t r_t with u_t = K x_t + k + sigma eps_t and
  the sampled noises (x_0, eps_t, w_t) held fixed, back-propagated through the known dynamics (an adjoint
  recursion); unbiased because the dynamics and rewards are differentiable (Kingma and Welling 2014).

Pitfalls, each with the exact mean where a closed form exists (then the verdict is exact):

- ``rtg_restart_discount``: gamma^{t' - t} instead of gamma^{t'} in the reward-to-go; exact mean
  ``lq_gradient(weights="restart")`` (the per-step terms of grad J without their gamma^t).
- ``log_std_blocked``: the log-std's gradient stopped (``log_std.detach()``, or a std that is not a parameter):
  exact mean grad J with the log_std entries 0.
- ``logp_mean_over_dims``: log-probabilities averaged, not summed, over the m action dimensions: exact mean
  grad J / m (a positive multiple; identical to ``reward_to_go`` when m = 1).
- ``tanh_no_jacobian``: the squashed action a = tanh(u) scored as if it were Gaussian, log N(tanh u; mu, sigma)
  (no change of variables: neither atanh nor the Jacobian log(1 - a^2)); no closed form, so the Monte Carlo test
  decides, and the bias is estimated precisely by pairing with ``baseline_value`` on the same episodes.
  (Omitting only the Jacobian term, log N(u; mu, sigma) without - sum log(1 - tanh^2 u), is harmless here: that
  term does not depend on theta for a given u. It matters in entropy-regularised objectives, not in REINFORCE.)

Horizon null is sampled truncated at ``lq.truncation_horizon`` steps, and every reference (grad J, the exact
means) is that of the truncated problem, computed exactly; the difference from the infinite-horizon grad J is
reported, never hidden.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from verify.errors import UsageError
from verify.model.io import require_memory, require_work
from verify.model.lq import LQProblem, lq_gradient, lq_values, truncation_horizon
from verify.numerics.returns import discount_t, discounted_returns, reward_to_go
from verify.numerics.shared import shared
from verify.checks.stats import SampleMoments, consistency_test, detectable_bias

__all__ = ["LQ_ESTIMATORS", "LQCheck", "LQEpisodes", "LQEstimator", "LQMcResult", "catalog_values", "get_lq_estimator",
           "identical_to",
           "exact_cross_check", "lq_check", "lq_episodes_for", "match_pitfalls", "run_lq_mc", "sample_lq", "score_sums"]

DEFAULT_EPISODES = 20_000
DEFAULT_ALPHA = 1e-3
DETECT_POWER = 0.999
REFERENCE = "baseline_value"     # the paired test's control (unbiased, lowest variance of the score estimators)
ZERO_RTOL = 1e-9                 # an exact bias below this times the problem's scale is round-off


@dataclass(frozen=True, eq=False)
class LQEpisodes:
    """A batch of N sampled LQ episodes of T steps (every episode has the same length).

    x_t [N, T + 1, n] states; u_t [N, T, m] Gaussian controls (what the plant receives); r_t [N, T] rewards
    -(x^T Q x + u^T R u), undiscounted; eps_t [N, T, m] = (u_t - K x_t - k) / sigma; w_t [N, T, n] process
    noises; problem: the LQProblem (its ``gamma``, ``K``, ``k``, ``sigma``). Arrays are read-only.
    """

    problem: LQProblem
    x_t: np.ndarray
    u_t: np.ndarray
    r_t: np.ndarray
    eps_t: np.ndarray
    w_t: np.ndarray

    @property
    def N(self) -> int:
        return self.r_t.shape[0]

    @property
    def T(self) -> int:
        return self.r_t.shape[1]

    @property
    def gamma(self) -> float:
        return self.problem.gamma

    def take(self, index) -> "LQEpisodes":
        """The episodes at ``index`` (a slice or index array) as a batch."""
        return LQEpisodes(self.problem, *(a[index] for a in (self.x_t, self.u_t, self.r_t, self.eps_t, self.w_t)))

    def flatten(self, g_K: np.ndarray, g_k: np.ndarray, g_log_std: np.ndarray) -> np.ndarray:
        """[N, d] from per-episode parts [N, m, n], [N, m], [N, m] (theta's order: K, k, log_std)."""
        return np.concatenate([g_K.reshape(len(g_K), -1), g_k, g_log_std], axis=1)


def sample_lq(lq: LQProblem, episodes: int, rng: np.random.Generator, *, horizon: int | None = None) -> LQEpisodes:
    """Sample ``episodes`` episodes of the closed loop at once (vectorised over episodes, a loop over time).

    Args:
      horizon: steps per episode; default the problem's, or ``truncation_horizon`` for horizon null.
    """
    T = horizon or lq.horizon or truncation_horizon(lq)
    n, m, N = lq.n, lq.m, int(episodes)
    require_memory(8.0 * N * (T + 1) * (2 * n + 2 * m + 1), f"sampling {N} LQ episodes of {T} steps")
    require_work(float(N) * T * (n + m) ** 2, f"sampling {N} LQ episodes of {T} steps")
    L0, LW = _sqrt_psd(lq.Sigma0), _sqrt_psd(lq.W)
    x = np.empty((N, T + 1, n))
    x[:, 0] = lq.mu0 + rng.standard_normal((N, n)) @ L0.T
    eps = rng.standard_normal((N, T, m))
    w = rng.standard_normal((N, T, n)) @ LW.T
    u = np.empty((N, T, m))
    sigma = lq.sigma
    for t in range(T):
        u[:, t] = x[:, t] @ lq.K.T + lq.k + sigma * eps[:, t]
        x[:, t + 1] = x[:, t] @ lq.A.T + u[:, t] @ lq.B.T + w[:, t]
    xs = x[:, :-1]
    r = -(np.einsum("nti,ij,ntj->nt", xs, lq.Q, xs) + np.einsum("nti,ij,ntj->nt", u, lq.R, u))
    for arr in (x, u, r, eps, w):
        arr.setflags(write=False)
    return LQEpisodes(lq, x, u, r, eps, w)


def _sqrt_psd(S: np.ndarray) -> np.ndarray:
    """L with L L^T = S for a symmetric PSD S (eigendecomposition: Cholesky refuses singular covariances)."""
    lam, U = np.linalg.eigh(S)
    return U * np.sqrt(np.clip(lam, 0.0, None))


# --- estimators ---------------------------------------------------------------------------------------------------

def score_sums(episodes: LQEpisodes, W_t: np.ndarray, *, eps_t: np.ndarray | None = None) -> np.ndarray:
    r"""sum_t W_t grad log pi(u_t|x_t) per episode, [N, d]; W_t [N, T] the per-step weights.

    ``eps_t`` replaces the standardised control (u - mu) / sigma in the score (a pitfall's wrong density).
    """
    lq, e = episodes.problem, episodes.eps_t if eps_t is None else eps_t
    assert W_t.shape == episodes.r_t.shape, (W_t.shape, episodes.r_t.shape)
    z = e / lq.sigma                                   # d log pi / d mean
    g_K = np.einsum("nt,ntm,ntj->nmj", W_t, z, episodes.x_t[:, :-1])
    g_k = np.einsum("nt,ntm->nm", W_t, z)
    g_s = np.einsum("nt,ntm->nm", W_t, e * e - 1.0)
    return episodes.flatten(g_K, g_k, g_s)


def _rtg(episodes: LQEpisodes) -> np.ndarray:
    return reward_to_go(episodes.r_t, episodes.gamma)


def total_return(episodes: LQEpisodes) -> np.ndarray:
    R = discounted_returns(episodes.r_t, episodes.gamma)
    return score_sums(episodes, np.repeat(R[:, None], episodes.T, axis=1))


def reward_to_go_estimator(episodes: LQEpisodes) -> np.ndarray:
    return score_sums(episodes, _rtg(episodes))


def baseline_value(episodes: LQEpisodes) -> np.ndarray:
    lq, T = episodes.problem, episodes.T
    values = lq_values(lq, T if lq.horizon is None else lq.horizon)
    t = np.broadcast_to(np.arange(T), episodes.r_t.shape)
    V = values.value(t, episodes.x_t[:, :-1])
    return score_sums(episodes, _rtg(episodes) - discount_t(episodes.gamma, T)[None, :] * V)


def pathwise(episodes: LQEpisodes) -> np.ndarray:
    r"""d/dtheta of sum_t gamma^t r_t along each sampled path, noises fixed: the adjoint a_t = dR/dx_t runs
    backwards, dR/du_t = -2 gamma^t R u_t + B^T a_{t+1}, a_t = -2 gamma^t Q x_t + A^T a_{t+1} + K^T dR/du_t."""
    lq = episodes.problem
    N, T = episodes.N, episodes.T
    disc = discount_t(episodes.gamma, T)
    a = np.zeros((N, lq.n))
    g_K, g_k, g_s = np.zeros((N, lq.m, lq.n)), np.zeros((N, lq.m)), np.zeros((N, lq.m))
    for t in range(T - 1, -1, -1):
        x, u = episodes.x_t[:, t], episodes.u_t[:, t]
        du = -2 * disc[t] * u @ lq.R + a @ lq.B
        g_K += du[:, :, None] * x[:, None, :]
        g_k += du
        g_s += du * lq.sigma * episodes.eps_t[:, t]
        a = -2 * disc[t] * x @ lq.Q + a @ lq.A + du @ lq.K
    return episodes.flatten(g_K, g_k, g_s)


def rtg_restart_discount(episodes: LQEpisodes) -> np.ndarray:
    return score_sums(episodes, reward_to_go(episodes.r_t, episodes.gamma, restart_discount=True))


def log_std_blocked(episodes: LQEpisodes) -> np.ndarray:
    g = reward_to_go_estimator(episodes)
    g[:, -episodes.problem.m:] = 0.0
    return g


def logp_mean_over_dims(episodes: LQEpisodes) -> np.ndarray:
    return reward_to_go_estimator(episodes) / episodes.problem.m


def tanh_no_jacobian(episodes: LQEpisodes) -> np.ndarray:
    lq = episodes.problem
    mean = episodes.u_t - lq.sigma * episodes.eps_t
    wrong = (np.tanh(episodes.u_t) - mean) / lq.sigma   # log N(tanh u; mu, sigma): the squashed action as if Gaussian
    return score_sums(episodes, _rtg(episodes), eps_t=wrong)


@dataclass(frozen=True)
class LQEstimator:
    """One estimator of the LQ catalog: ``fn(episodes) -> [N, d]``; ``exact_mean(lq, T)`` its exact E[g] when a
    closed form exists (pitfalls), else None; ``fix``: what repairs a pitfall."""

    name: str
    unbiased: bool
    description: str
    fn: Callable[[LQEpisodes], np.ndarray]
    exact_mean: Callable[[LQProblem, int], np.ndarray] | None = None
    fix: str = ""


def _grad_T(lq: LQProblem, T: int) -> np.ndarray:
    return lq_gradient(lq, horizon=T).flat


def _blocked_mean(lq: LQProblem, T: int) -> np.ndarray:
    g = _grad_T(lq, T)
    g[-lq.m:] = 0.0
    return g


LQ_ESTIMATORS: tuple[LQEstimator, ...] = (
    LQEstimator("total_return", True, "sum_t grad log pi(u_t|x_t) R(tau)", total_return),
    LQEstimator("reward_to_go", True, "sum_t grad log pi(u_t|x_t) sum_{t'>=t} gamma^t' r_t'",
                reward_to_go_estimator),
    LQEstimator("baseline_value", True, "reward-to-go minus gamma^t V_t(x_t), V the exact quadratic value",
                baseline_value),
    LQEstimator("pathwise", True, "reparameterised: d/dtheta sum_t gamma^t r_t through u = K x + k + sigma eps and "
                "the known dynamics, noises fixed", pathwise),
    LQEstimator("rtg_restart_discount", False, "reward-to-go whose discount restarts at t: gamma^(t'-t)",
                rtg_restart_discount, lambda lq, T: lq_gradient(lq, horizon=T, weights="restart").flat,
                "weight step t by gamma^t: sum_{t'>=t} gamma^t' r_t', not gamma^(t'-t)"),
    LQEstimator("log_std_blocked", False, "the log-std's gradient stopped (detached or not a parameter)",
                log_std_blocked, _blocked_mean,
                "let the gradient reach log_std: no .detach() / stop_gradient on it, and make it a parameter"),
    LQEstimator("logp_mean_over_dims", False, "log-probabilities averaged over the m action dimensions, not summed",
                logp_mean_over_dims, lambda lq, T: _grad_T(lq, T) / lq.m,
                "sum the log-density over action dimensions: Normal(mu, sigma).log_prob(u).sum(-1), or "
                "Independent(Normal(mu, sigma), 1) / MultivariateNormal"),
    LQEstimator("tanh_no_jacobian", False, "the squashed action tanh(u) scored as if Gaussian: log N(tanh u; mu, "
                "sigma), no change of variables", tanh_no_jacobian, None,
                "score the pre-squash sample: log N(u; mu, sigma) - sum log(1 - tanh(u)^2) with u = atanh(a) "
                "(torch: TransformedDistribution(Normal(mu, sigma), TanhTransform()).log_prob(a))"),
)


def get_lq_estimator(name: str) -> LQEstimator:
    for e in LQ_ESTIMATORS:
        if e.name == name:
            return e
    raise UsageError(f"unknown LQ estimator {name!r}; the LQ catalog is "
                     f"{', '.join(e.name for e in LQ_ESTIMATORS)}")


# --- verdicts -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class LQMcResult:
    """One estimator on one LQ sample, judged against the exact gradient.

    grad: exact grad J of the sampled (truncated for horizon null) problem [d]; grad_infinite: the untruncated
    one for horizon null (None otherwise). exact_mean: the estimator's exact E[g] when a closed form exists.
    test: the unpaired ``consistency_test`` of the sample mean against grad; paired: the test of
    E[g - g_ref] = 0 against ``REFERENCE`` on the same episodes (None for the reference itself);
    decided_by: "exact", "paired" or "unpaired" (the test that detects smaller biases).
    bias_estimate, bias_stderr: the paired mean of g - g_ref and its standard error (the bias, estimated).
    matches: pitfalls whose per-episode values or exact mean agree with this estimator's (when it is biased).
    identical_to: the catalog estimator a user's estimator equals on every episode (its exact mean then decides:
    grad J for an unbiased one, the closed form for a pitfall that has one).
    closed_form: with an exact mean, the test of the sample mean against it (the closed form must be what sampling
    sees: ``lq_check`` fails a row whose closed form the sample contradicts).
    """

    estimator: str
    problem: str
    episodes: int
    T: int
    seed: int
    alpha: float
    names: tuple[str, ...]
    grad: np.ndarray
    grad_infinite: np.ndarray | None
    exact_mean: np.ndarray | None
    scale: float
    test: object
    paired: object | None
    bias_estimate: np.ndarray
    bias_stderr: np.ndarray
    matches: tuple[tuple[str, str], ...] = ()
    identical_to: str | None = None
    closed_form: object | None = None

    @property
    def exact_bias(self) -> np.ndarray | None:
        return None if self.exact_mean is None else self.exact_mean - self.grad

    @property
    def exact_biased(self) -> bool | None:
        b = self.exact_bias
        return None if b is None else bool(np.abs(b).max() > ZERO_RTOL * self.scale)

    @property
    def decided_by(self) -> str:
        if self.exact_mean is not None:
            return "exact"
        if self.paired is None or self.paired.undecided:
            return "unpaired"
        return "paired" if self._detect(self.paired) <= self._detect(self.test) else "unpaired"

    @staticmethod
    def _detect(test) -> float:
        if test.undecided:
            return math.inf
        return float(detectable_bias(test, DETECT_POWER).max())

    @property
    def sampled(self):
        return self.paired if self.decided_by == "paired" else self.test

    @property
    def verdict(self) -> str:
        """"biased"/"consistent" by the exact mean when known, else the sampled test's "consistent",
        "inconsistent" or "undecided"."""
        if self.exact_mean is not None:
            return "biased" if self.exact_biased else "consistent"
        v = self.sampled.verdict
        # "consistent" states the smallest bias the run could see: with a component no test could look at (too
        # one-sided for a z-test) there is no such number, so the run is undecided
        return "undecided" if v == "consistent" and not math.isfinite(self.detectable) else v

    @property
    def passed(self) -> bool:
        return self.verdict == "consistent"

    @property
    def detectable(self) -> float:
        """The largest per-component bias the deciding sampled test detects with probability 0.999."""
        return self._detect(self.sampled)

    @property
    def worst(self) -> int:
        b = self.exact_bias
        if b is not None and self.exact_biased:
            return int(np.argmax(np.abs(b)))
        z = np.abs(self.sampled.z) if not self.sampled.undecided else np.abs(self.bias_estimate)
        return int(np.nanargmax(np.where(np.isfinite(z), z, 0.0)))

    def to_json(self) -> dict:
        arr = lambda a: None if a is None else np.asarray(a).tolist()  # noqa: E731
        fin = lambda x: None if not np.isfinite(x) else float(x)  # noqa: E731
        return {"estimator": self.estimator, "problem": self.problem, "episodes": self.episodes, "T": self.T,
                "seed": self.seed, "alpha": self.alpha, "names": list(self.names), "grad": arr(self.grad),
                "grad_infinite": arr(self.grad_infinite), "exact_mean": arr(self.exact_mean),
                "exact_bias": arr(self.exact_bias), "verdict": self.verdict, "decided_by": self.decided_by,
                "test": self.test.to_json(), "paired": None if self.paired is None else self.paired.to_json(),
                "bias_estimate": arr(self.bias_estimate), "bias_stderr": arr(self.bias_stderr),
                "detectable_bias": fin(self.detectable), "worst": self.names[self.worst],
                "matches": [{"pitfall": n, "fix": f} for n, f in self.matches], "identical_to": self.identical_to,
                "closed_form_test": None if self.closed_form is None else self.closed_form.to_json()}


def _scale(grad: np.ndarray, J: float) -> float:
    return max(float(np.abs(grad).max(initial=0.0)), abs(J), 1e-300)


def lq_episodes_for(lq: LQProblem) -> int:
    """Steps per sampled episode: the horizon, or the truncation for horizon null."""
    return lq.horizon or truncation_horizon(lq)


def _judge(name: str, G: np.ndarray, G_ref: np.ndarray | None, lq: LQProblem, T: int, exact_mean, *, episodes: int,
           seed: int, alpha: float, reference: tuple[np.ndarray, float]) -> LQMcResult:
    grad, J = reference
    scale = _scale(grad, J)
    test = consistency_test(SampleMoments.of(G), grad, alpha=alpha, scale=scale)
    paired = None
    D = G - G_ref if G_ref is not None else G - grad
    if G_ref is not None:
        paired = consistency_test(SampleMoments.of(D), np.zeros(lq.d), alpha=alpha, scale=scale)
    closed = None if exact_mean is None else consistency_test(SampleMoments.of(G), exact_mean, alpha=alpha,
                                                              scale=scale)
    return LQMcResult(name, lq.name, episodes, T, seed, alpha, lq.parameter_names, grad,
                      lq_gradient(lq).flat if lq.horizon is None else None, exact_mean, scale, test, paired,
                      D.mean(axis=0), D.std(axis=0, ddof=1) / math.sqrt(len(D)), closed_form=closed)


def _evaluate(fn, batch: LQEpisodes, lq: LQProblem, name: str) -> np.ndarray:
    out = np.asarray(fn(batch), dtype=float)
    if out.shape != (batch.N, lq.d):
        raise UsageError(f"estimator {name} returned shape {list(out.shape)}, expected [N, d] = "
                         f"[{batch.N}, {lq.d}] (one flat gradient estimate per episode: K, k, log_std)")
    if not np.all(np.isfinite(out)):
        raise UsageError(f"estimator {name} returned non-finite values")
    return out


def run_lq_mc(lq: LQProblem, estimator: str | LQEstimator | Callable, *, episodes: int = DEFAULT_EPISODES,
              seed: int = 0, alpha: float = DEFAULT_ALPHA, name: str | None = None,
              batch: LQEpisodes | None = None) -> LQMcResult:
    """Sample ``episodes`` episodes, evaluate one estimator and judge it (exact mean first, else the more
    powerful of the paired and the unpaired test); a biased estimator is matched against the pitfalls.

    Args:
      estimator: a catalog name, an ``LQEstimator``, or a function ``episodes -> [N, d]``.
      batch: reuse these episodes (``lq_check`` shares one sample across the catalog).
    """
    if not 0 < alpha < 1:
        raise UsageError(f"alpha must be in (0, 1), got {alpha!r}")
    if isinstance(estimator, str):
        estimator = get_lq_estimator(estimator)
    est = estimator if isinstance(estimator, LQEstimator) else LQEstimator(
        name or getattr(estimator, "__name__", "estimator"), True, "user estimator", estimator)
    T = lq_episodes_for(lq)
    if batch is None:
        if episodes < 2:
            raise UsageError(f"episodes must be at least 2, got {episodes}")
        batch = sample_lq(lq, episodes, np.random.default_rng(seed), horizon=T)
    in_catalog = any(est is e for e in LQ_ESTIMATORS)
    G = catalog_values(batch, est.name) if in_catalog else _evaluate(est.fn, batch, lq, est.name)
    G_ref = None if est.name == REFERENCE and est.fn is baseline_value else catalog_values(batch, REFERENCE)
    exact_mean = None if est.exact_mean is None else est.exact_mean(lq, T)
    ref = lq_gradient(lq, horizon=T)
    same = None
    if not in_catalog:     # a user's estimator: identical to a catalog one?
        catalog = {e.name: catalog_values(batch, e.name) for e in LQ_ESTIMATORS}
        same = identical_to(G, catalog, _scale(ref.flat, ref.J))
        if same is not None:
            e = get_lq_estimator(same)
            exact_mean = ref.flat if e.unbiased else None if e.exact_mean is None else e.exact_mean(lq, T)
    result = _judge(est.name, G, G_ref, lq, T, exact_mean, episodes=batch.N, seed=seed, alpha=alpha,
                    reference=(ref.flat, ref.J))
    if same is not None:
        from dataclasses import replace

        result = replace(result, identical_to=same)
    if result.verdict in ("biased", "inconsistent"):
        from dataclasses import replace

        result = replace(result, matches=match_pitfalls(
            G, _pitfall_values(batch, lq, T), result.scale, alpha, exclude=est.name, exact_mean=exact_mean,
            sampled=result.verdict == "inconsistent"))
    return result


def _pitfall_values(batch: LQEpisodes, lq: LQProblem, T: int) -> dict:
    """name -> (per-episode values [N, d], exact mean or None, fix) for every pitfall of the catalog."""
    return {e.name: (catalog_values(batch, e.name), None if e.exact_mean is None else e.exact_mean(lq, T), e.fix)
            for e in LQ_ESTIMATORS if not e.unbiased}


def catalog_values(batch: LQEpisodes, name: str) -> np.ndarray:
    """The catalog estimator ``name``'s per-episode values on ``batch`` [N, d], read-only, computed once per batch
    (``verify.numerics.shared``): ``lq_check`` judges eight estimators on one sample, and each judgement also needs
    the reference's values (the paired test) and, when biased, every pitfall's."""
    return shared(batch, ("lq catalog", name), lambda b: _evaluate(get_lq_estimator(name).fn, b, b.problem, name))


def identical_to(Y: np.ndarray, candidates: dict, scale: float) -> str | None:
    """The first candidate whose values equal Y row for row within round-off (ZERO_RTOL of the scale), or None.

    ``candidates``: name -> values [K, d] paired with Y's rows. Identity with a catalog estimator transfers its
    mean: grad J for the unbiased ones (the score-function identity, sampled in tests/test_lq.py), the closed form
    for the pitfalls that have one.
    """
    tol = ZERO_RTOL * max(scale, float(np.abs(Y).max(initial=0.0)))
    for name, P in candidates.items():
        if P.shape == Y.shape and np.abs(Y - P).max(initial=0.0) <= tol:
            return name
    return None


def match_pitfalls(Y: np.ndarray, candidates: dict, scale: float, alpha: float, *, exclude: str = "",
                   exact_mean: np.ndarray | None = None, sampled: bool = True) -> tuple[tuple[str, str], ...]:
    """The pitfalls that explain Y: (name, fix) pairs, the surest first.

    A pitfall matches when its values equal Y's row for row within round-off; or, with ``exact_mean`` (Y's exact
    E[g]), when its own exact mean equals it; or, only when ``sampled`` (Y was shown biased by a sampled test, so
    the pairing has the power to tell), when the paired test of E[Y - P] = 0 does not reject at ``alpha``.
    Y [K, d] and each candidate's values [K, d] are paired rows (episodes, or batch means on the same batches);
    ``candidates``: name -> (values, exact mean or None, fix).
    """
    exact, sampled_matches = [], []
    tol = ZERO_RTOL * max(scale, float(np.abs(Y).max(initial=0.0)))
    for name, (P, mean, fix) in candidates.items():
        if name == exclude:
            continue
        D = Y - P
        if np.abs(D).max() <= tol or (exact_mean is not None and mean is not None
                                      and np.abs(exact_mean - mean).max() <= ZERO_RTOL * scale):
            exact.append((name, fix))
        elif sampled and exact_mean is None:
            t = consistency_test(SampleMoments.of(D), np.zeros(D.shape[1]), alpha=alpha, scale=scale)
            if t.consistent:
                sampled_matches.append((name, fix))
    return tuple(exact + sampled_matches)


@dataclass(frozen=True, eq=False)
class LQCheck:
    """``pgverify check`` on an LQ problem: the exact gradient cross-check and every catalog estimator.

    fd_max_rel: max |Riccati grad J - central differences of the forward-moment J| / max|grad J| (an independent
    route: no value function); fd_tol its tolerance. rows: one LQMcResult per estimator.
    A row fails when an estimator the catalog calls unbiased is biased or inconsistent, or when the sample
    contradicts a pitfall's closed-form mean (the closed form would be wrong); a pitfall without a closed form
    passes when the sampled test catches it and is undecided otherwise, never passed.
    """

    problem: str
    J: float
    grad: np.ndarray
    fd_max_rel: float
    fd_tol: float
    rows: tuple[LQMcResult, ...]

    @property
    def gradients_agree(self) -> bool:
        return self.fd_max_rel <= self.fd_tol

    def status(self, r: LQMcResult) -> str:
        e = get_lq_estimator(r.estimator)
        if r.verdict == "undecided":
            return "undecided"
        if e.unbiased:
            return "passed" if r.verdict == "consistent" else "failed"
        if r.exact_mean is not None:    # a pitfall with a closed-form mean: the sample must not contradict it
            return "failed" if r.closed_form.verdict == "inconsistent" else "passed"
        return "passed" if r.verdict == "inconsistent" else "undecided"

    @property
    def passed(self) -> bool:
        return self.gradients_agree and all(self.status(r) != "failed" for r in self.rows)

    def to_json(self) -> dict:
        return {"problem": self.problem, "J": self.J, "grad": self.grad.tolist(), "fd_max_rel": self.fd_max_rel,
                "fd_tol": self.fd_tol, "gradients_agree": self.gradients_agree, "passed": self.passed,
                "rows": [{**r.to_json(), "status": self.status(r)} for r in self.rows]}


FD_EPS = 1e-5
FD_TOL = 1e-7


def fd_gradient(lq: LQProblem, *, eps: float = FD_EPS, directions: np.ndarray | None = None) -> np.ndarray:
    """Central differences of J computed by forward moment propagation (``lq.lq_objective``), per component or
    along the rows of ``directions``."""
    from verify.model.lq import lq_objective

    th = lq.theta
    E = np.eye(lq.d) if directions is None else directions
    return np.array([(lq_objective(lq.with_theta(th + eps * e)) - lq_objective(lq.with_theta(th - eps * e)))
                     / (2 * eps) for e in E])


def exact_cross_check(lq: LQProblem) -> tuple[float, np.ndarray, float]:
    """(J, grad J, max relative difference): the Riccati/Lyapunov grad J against central differences of J by
    forward moments (``lq.lq_objective``, no value function), per component up to 64 parameters, else along
    grad J and 8 random unit directions (seeded: deterministic)."""
    res = lq_gradient(lq)
    g = res.flat
    if lq.d <= 64:
        fd, exact = fd_gradient(lq), g
    else:
        rng = np.random.default_rng(0)
        D = np.vstack([g / max(np.linalg.norm(g), 1e-300), rng.standard_normal((8, lq.d))])
        D /= np.linalg.norm(D, axis=1, keepdims=True)
        fd, exact = fd_gradient(lq, directions=D), D @ g
    return res.J, g, float(np.abs(fd - exact).max() / _scale(g, res.J))


def lq_check(lq: LQProblem, *, episodes: int = DEFAULT_EPISODES, seed: int = 0,
             alpha: float = DEFAULT_ALPHA) -> LQCheck:
    """Exact grad J against central differences of an independent J, then the whole LQ catalog on one sample."""
    J, g, rel = exact_cross_check(lq)
    T = lq_episodes_for(lq)
    batch = sample_lq(lq, episodes, np.random.default_rng(seed), horizon=T)   # the sample `mc --seed` draws
    rows = tuple(run_lq_mc(lq, e, seed=seed, alpha=alpha, batch=batch) for e in LQ_ESTIMATORS)
    return LQCheck(lq.name, J, g, rel, FD_TOL, rows)
