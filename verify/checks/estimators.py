r"""The REINFORCE estimator catalog: unbiased estimators of grad J and the biased pitfalls seen in real code.

Every estimator maps a batch of episodes to per-episode estimates g(tau_n), shape [N, *theta.shape]; the
Monte Carlo estimate of grad J is their mean. All of them are "per-step weights, then score sums",

    g(tau) = sum_t w_t(tau) grad log pi(a_t|s_t)        (``from_weights(weights)``),

and the catalog reads as compositions of weight functions (``Weights``: a batch to w at its valid steps, [M] in
``episodes.steps`` order; the maths is in ``verify.numerics.returns``). A pitfall is one transform changed:

| name                 | weights (w_t)                                                  | unbiased             |
|----------------------|----------------------------------------------------------------|----------------------|
| total_return         | total_return: R(tau) = sum_t' gamma^t' r_t'                    | yes (seed eqs. 14/15)|
| reward_to_go         | reward_to_go: G_t = sum_{t' >= t} gamma^t' r_t'                | yes (causality)      |
| baseline_constant    | minus(total_return, constant_baseline): R(tau) - J(theta)      | yes (EGLP)           |
| baseline_value       | minus(reward_to_go, state_value): G_t - gamma^t V_t(s_t)       | yes (b = b(s_t, t))  |
| q_value              | action_value: gamma^t Q_t(s_t, a_t)                            | yes (PG theorem)     |
| advantage            | minus(action_value, state_value): gamma^t (Q_t - V_t)          | yes                  |
| gae                  | discounted(gae(0.95, exact_values)): gamma^t A^GAE_t           | yes, every lambda    |
| rtg_restart_discount | reward_to_go(restart_discount=True): gamma^(t'-t)              | no, unless gamma = 1 |
| rtg_skip_current     | reward_to_go(include_current=False): G_t - gamma^t r_t         | no                   |
| action_baseline      | minus(reward_to_go, action_value): G_t - gamma^t Q_t(s_t, a_t) | no: E = 0            |
| score_wrong_time     | shifted_one_step(reward_to_go): G_{t-1} at step t              | no                   |
| batch_normalized     | batch_normalized: (G_t - mean G) / std G over the batch        | no (batch-dependent) |
| gae_stationary_value | discounted(gae(0.95, stationary_values)): V_0 at every t       | no, unless lambda = 1|
| gae_noisy_value      | discounted(gae(0.95, noisy_values)): V_t + a fixed error       | no, unless lambda = 1|
| gae_no_discount      | gae(0.95, exact_values): A^GAE_t without gamma^t               | no, unless gamma = 1 |
| ppo_surrogate        | ppo_clipped(minus(action_value, state_value)): rho_t = 1 here  | yes (at theta_old)   |

``rtg_restart_discount`` (and ``gae_no_discount``) drop the gamma^t weight: their means are not the gradient of
any function (Nota & Thomas 2020), which ``verify.checks.theory.check_gradient_field`` shows as an asymmetric Jacobian.

V_t and Q_t are the exact values with H - t actions left (finite horizon) or the stationary values (horizon
null), from ``verify.numerics.exact.value_tables``; they depend on t because the horizon is finite, which is why a
stationary V (here V_0, the value with the whole horizon left) makes GAE biased for lambda < 1. For lambda = 1
GAE telescopes to the restarted reward-to-go minus V(s_t), and the gamma^t weight turns it into G_t - gamma^t
V(s_t): a state baseline, unbiased with any V (``gae_estimator`` builds any variant).

``batch_normalized`` uses statistics of the whole batch, so its per-episode values are not independent and have
no per-episode mean. On an exact enumeration (``episodes.weights`` set) the statistics are the p(tau)-weighted
population ones, so its "exact mean" is the N -> infinity limit of the batch average. The batch is the
``Episodes`` object the estimator is given: ``verify.checks.mc.run_estimators`` gives one sampler chunk at a time
(``verify.numerics.sampler.chunk_size`` episodes, 23 239 on FrozenLake 4x4 with H = 100), so the statistics are over a
chunk's steps. The step list changes how a batch is computed on, not which episodes form it.

The weights are computed at the valid steps only (``episodes.steps``, not the padded [N, T] grid: a batch is
padded to its longest episode, ~10x the mean on FrozenLake), so the cost follows the number of steps taken; the
values are bit-for-bit those of the padded formulas (``tests/test_steps.py``).

The weight functions several estimators share (``total_return``, ``reward_to_go``, ``state_value``,
``action_value``, the GAE advantages, gamma^t) are computed once per batch and kept on it, read-only
(``verify.numerics.shared``): ``pgverify check`` evaluates the whole catalog on each chunk, and the exact
Q_t(s_t, a_t) at the steps, for one, feeds four estimators. The values are the same bits either way
(``tests/test_check_shared.py``).

References: as ``verify.returns`` (Williams 1992, https://doi.org/10.1007/BF00992696; Sutton et al. 2000;
Greensmith et al. 2004, https://www.jmlr.org/papers/v5/greensmith04a.html; Schulman et al. 2016,
https://arxiv.org/abs/1506.02438), each with its title there.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from verify.numerics import returns
from verify.numerics.episodes import Episodes, at_steps, discounted_returns, reward_to_go as padded_reward_to_go
from verify.numerics.episodes import step_reward_to_go, step_score_sums
from verify.errors import UsageError
from verify.numerics.exact import action_values_at, state_values, state_values_at
from verify.numerics.shared import shared

__all__ = ["ESTIMATORS", "Estimator", "GAE_LAMBDA", "NORMALIZE_EPS", "VALUE_NOISE", "Weights", "action_value",
           "batch_normalized", "constant_baseline", "discounted", "estimator_names", "exact_values", "from_weights",
           "gae", "gae_estimator", "get_estimator", "minus", "noisy_values", "ppo_clipped", "reward_to_go", "shifted_one_step",
           "state_value", "stationary_values", "total_return"]

NORMALIZE_EPS = 1e-8   # the customary epsilon of return normalisation
GAE_LAMBDA = 0.95      # the catalog's lambda, a common default (the unbiasedness claims hold for every lambda)
VALUE_NOISE = 0.1      # size of the fixed perturbation of ``noisy_values``, relative to max(|V|, |r|)

Weights = Callable[[Episodes], np.ndarray]
"""A batch -> per-step weights w, float [M] in ``episodes.steps`` order (or a scalar for every step)."""


@dataclass(frozen=True)
class Estimator:
    """One named gradient estimator.

    Attributes:
      name: catalog key.
      latex: the per-episode estimate g(tau) as a LaTeX formula.
      unbiased: whether E[g(tau)] = grad J(theta) for every MDP and policy.
      description: one sentence for people.
      per_episode: episodes -> [N, *theta.shape].
      batch_dependent: each episode's value depends on the whole batch (no per-episode exact mean).
    """

    name: str
    latex: str
    unbiased: bool
    description: str
    per_episode: Callable[[Episodes], np.ndarray]
    batch_dependent: bool = False

    @property
    def unicode(self) -> str:
        """The formula as one line of Unicode maths for the terminal (``latex`` stays the source, for JSON).

        The catalog's formulas come pre-rendered (``verify.checks._formulas``: ``pgverify estimators`` loads no
        SymPy); any other formula is rendered by ``derive.printing``, which the pre-rendered ones are tested against.
        """
        from verify.checks._formulas import UNICODE

        if self.latex in UNICODE:
            return UNICODE[self.latex]
        from derive.printing import latex_to_unicode
        return latex_to_unicode(self.latex)

    def __call__(self, episodes: Episodes) -> np.ndarray:
        return self.per_episode(episodes)


# --- composition ------------------------------------------------------------------------------------------------------

def _named(fn, name: str):
    fn.__name__ = fn.__qualname__ = name
    return fn


def from_weights(weights: Weights) -> Callable[[Episodes], np.ndarray]:
    r"""The score-function estimator of per-step weights: g(tau) = sum_t w_t grad log pi(a_t|s_t) (Williams 1992).

    Args:
      weights: a batch -> w at its valid steps, [M].

    Returns:
      episodes -> g, float [N, *theta.shape] (``verify.numerics.episodes.step_score_sums``).

    >>> from verify.model.builtin import builtin_examples
    >>> from verify.numerics.sampler import sample_episodes
    >>> chain = builtin_examples()["chain"]
    >>> eps = sample_episodes(chain.mdp, chain.policy, 5, np.random.default_rng(0))
    >>> rtg = from_weights(minus(reward_to_go, state_value))
    >>> rtg.__name__, bool((rtg(eps) == get_estimator("baseline_value")(eps)).all())
    ('from_weights(minus(reward_to_go, state_value))', True)
    """
    def per_episode(episodes: Episodes) -> np.ndarray:
        g = step_score_sums(episodes, np.broadcast_to(weights(episodes), episodes.steps.t.shape))
        if g.shape != (episodes.n, *episodes.policy.theta.shape):     # a check that survives python -O
            raise UsageError(f"from_weights({weights.__name__}): the score sums have shape {g.shape}, expected "
                             f"{(episodes.n, *episodes.policy.theta.shape)} = [N, *theta.shape] (the policy's "
                             "score_contract must return theta's shape)")
        return g
    per_episode.__doc__ = f"step_score_sums(episodes, {weights.__name__}(episodes))"
    per_episode.weights = weights        # lets mc take the rows-only form (episodes.step_score_rows) on big MDPs
    return _named(per_episode, f"from_weights({weights.__name__})")


def minus(weights: Weights, baseline: Weights) -> Weights:
    """w_t - b_t: subtract a baseline (unbiased iff E[grad log pi(a_t|s_t) b_t] = 0, e.g. b = b(s_t, t))."""
    return _named(lambda eps: weights(eps) - baseline(eps), f"minus({weights.__name__}, {baseline.__name__})")


def discounted(weights: Weights) -> Weights:
    """gamma^t w_t: the objective's discount from the episode's start (advantage estimators omit it at a cost)."""
    return _named(lambda eps: _gamma_t(eps) * weights(eps), f"discounted({weights.__name__})")


def _gamma_t(eps: Episodes) -> np.ndarray:
    """gamma^t at the valid steps, [M]: shared by every estimator of the batch (``verify.numerics.shared``)."""
    return shared(eps, "gamma^t", lambda e: e.discount_t.take(e.steps.t))


def shifted_one_step(weights: Weights) -> Weights:
    """w_{t-1} at step t, 0 at t = 0: the classic off-by-one ``logp[1:] * G[:-1]``."""
    def shifted(eps: Episodes) -> np.ndarray:
        w = weights(eps)
        out = np.zeros_like(w)
        out[1:] = w[:-1]            # steps are episode by episode: the previous entry is the same episode's t - 1
        out[eps.steps.t == 0] = 0.0
        return out
    return _named(shifted, f"shifted_one_step({weights.__name__})")


# --- weights ----------------------------------------------------------------------------------------------------------

def total_return(eps: Episodes) -> np.ndarray:
    """R(tau) = sum_t gamma^t r_t at every step of the episode (seed eq. 14); computed once per batch and shared
    (read-only) by every estimator that uses it (``verify.numerics.shared``), as are the other weights below."""
    return shared(eps, "total_return", lambda e: discounted_returns(e)[e.steps.n])


def reward_to_go(eps: Episodes, *, restart_discount: bool = False, include_current: bool = True) -> np.ndarray:
    """G_t = sum_{t' >= t} gamma^{t'} r_{t'} (``verify.numerics.returns.reward_to_go``; the flags give the pitfalls)."""
    return shared(eps, ("reward_to_go", restart_discount, include_current),
                  partial(step_reward_to_go, restart_discount=restart_discount, include_current=include_current))


def constant_baseline(eps: Episodes) -> float:
    """b = J(theta) = sum_s rho0(s) V_0(s), from the MDP, never from the batch (a batch mean correlates with g)."""
    V = state_values(eps.mdp, eps.policy)
    return float(eps.mdp.initial @ V[0])


def state_value(eps: Episodes) -> np.ndarray:
    """gamma^t V_t(s_t) (``verify.numerics.returns.state_baseline``): the state-value baseline (Greensmith et al. 2004)."""
    # V at the steps taken only (exact_values' numbers, without its [H, S] table on big MDPs), once per batch.
    return shared(eps, "state_value", lambda e: _gamma_t(e) * state_values_at(e.mdp, e.policy, e.steps.t, e.steps.s))


def action_value(eps: Episodes) -> np.ndarray:
    """gamma^t Q_t(s_t, a_t): the policy-gradient theorem's weight (Sutton et al. 2000); as a baseline, a pitfall."""
    def compute(e: Episodes) -> np.ndarray:
        st = e.steps
        # Q at the steps taken only (value_tables' numbers, without its [H, S, A] table).
        return _gamma_t(e) * action_values_at(e.mdp, e.policy, st.t, st.s, st.a)
    return shared(eps, "action_value", compute)


def exact_values(eps: Episodes) -> np.ndarray:
    """The exact time-indexed V_t(s), [H, S] (or [1, S] for horizon null); Q is not kept (big MDPs)."""
    return state_values(eps.mdp, eps.policy)


def stationary_values(eps: Episodes) -> np.ndarray:
    """V_0(s), the value with the whole horizon left, used at every t: [1, S] (exact for horizon null only)."""
    return exact_values(eps)[:1]


def noisy_values(eps: Episodes) -> np.ndarray:
    """V_t(s) plus a fixed perturbation (seeded by the table's shape), VALUE_NOISE of max(|V|, |r|) in size.

    A fixed function of (t, s), like a trained critic's error: the estimator stays a function of the episode, so
    it has exact moments.
    """
    def compute(e: Episodes) -> np.ndarray:
        V = exact_values(e)
        size = VALUE_NOISE * max(float(np.abs(V).max()), float(np.abs(e.mdp.successors.reward).max()))
        return V + size * np.random.default_rng(V.shape).standard_normal(V.shape)
    return shared(eps, "noisy_values", compute)


def gae(lam: float, values: Callable[[Episodes], np.ndarray] = exact_values) -> Weights:
    r"""GAE(lambda) advantages A_t = sum_{l >= 0} (gamma lambda)^l delta_{t+l} (Schulman et al. 2016), [M].

    delta_t = r_t + gamma V_{t+1}(s_{t+1}) - V_t(s_t) with the bootstrap 0 after an episode's last step
    (``verify.numerics.returns.gae_advantages``; ``discounted`` adds the gamma^t the objective needs).

    Args:
      lam: lambda in [0, 1].
      values: a batch -> the V table to use, [T', S].
    """
    if not 0.0 <= lam <= 1.0:
        raise UsageError(f"GAE lambda must lie in [0, 1], got {lam!r}")

    def compute(eps: Episodes) -> np.ndarray:
        st, gamma = eps.steps, eps.mdp.gamma
        delta = returns.step_td_errors(st.r, st.t, st.s, values(eps), gamma)
        return returns.step_discounted_cumsum(delta, gamma * lam, st.time_blocks)

    def advantages(eps: Episodes) -> np.ndarray:
        # gae and gae_no_discount read the same advantages: once per batch
        return shared(eps, ("gae", lam, values), compute)
    return _named(advantages, f"gae({lam:g}, {values.__name__})")


def batch_normalized(eps: Episodes) -> np.ndarray:
    """(G_t - mean G) / (std G + eps) over the batch's valid steps (p(tau)-weighted on an enumeration)."""
    # Padded on purpose: the batch statistics are numpy sums over the [N, T] grid, and summing the same values
    # in another order would move them (and the exact limit, see verify.checks.moments) by round-off.
    G_t = padded_reward_to_go(eps)
    # Statistics over every valid (n, t); an enumeration's weights make them the population statistics.
    w = eps.mask * (1.0 if eps.weights is None else eps.weights[:, None])
    total = w.sum()
    if total == 0:          # no step was taken: there is no score to weight
        return np.zeros(eps.steps.t.shape)
    mean = (w * G_t).sum() / total
    std = np.sqrt((w * (G_t - mean) ** 2).sum() / total)
    return at_steps(eps, (G_t - mean) / (std + NORMALIZE_EPS))


def ppo_clipped(weights: Weights, clip: float = 0.2, old_log_probs: Callable[[Episodes], np.ndarray] | None = None
                ) -> Weights:
    r"""The per-step weights of the gradient of PPO's clipped surrogate (Schulman et al. 2017):

        grad min(rho_t w_t, clip(rho_t, 1 - eps, 1 + eps) w_t) = [unclipped term active] rho_t w_t grad log pi(a_t|s_t),

    rho_t = pi_theta(a_t|s_t) / pi_old(a_t|s_t); active inside the clip range, or outside it where the unclipped
    term is the smaller. ``old_log_probs`` (a batch -> log pi_old [S, A]) defaults to the batch's own policy:
    theta = theta_old, where rho_t = 1 and the weights are ``weights`` unchanged.
    """
    def clipped(eps: Episodes) -> np.ndarray:
        w = weights(eps)
        if old_log_probs is None and clip > 0:
            return w        # rho_t = exp(0) = 1, inside (1 - eps, 1 + eps): every step active, rho_t w_t = w_t exactly
        st = eps.steps
        old = eps.policy.log_probs if old_log_probs is None else old_log_probs(eps)
        rho = np.exp(eps.policy.log_probs[st.s, st.a] - old[st.s, st.a])
        bounded = np.clip(rho, 1 - clip, 1 + clip)
        active = ((rho > 1 - clip) & (rho < 1 + clip)) | (rho * w < bounded * w)
        return np.where(active, rho * w, 0.0)
    return _named(clipped, f"ppo_clipped({weights.__name__}, {clip:g})")


# --- the catalog ------------------------------------------------------------------------------------------------------

_S = r"\nabla_\theta \log \pi_\theta(a_t \mid s_t)"
_G = r"\sum_{t' \ge t} \gamma^{t'} r_{t'}"
def _gae_latex(V_next: str, V_now: str) -> str:
    return (rf"\hat A_t = \sum_{{l \ge 0}} (\gamma\lambda)^l \delta_{{t+l}},\ "
            rf"\delta_t = r_t + \gamma {V_next} - {V_now}")


# name -> (the table, in words, delta's V terms in LaTeX)
_GAE_VALUES = {"exact": (exact_values, "the exact time-indexed V_t", ("V_{t+1}(s_{t+1})", "V_t(s_t)")),
               "stationary": (stationary_values, "one V for every t (V_0, the value with the whole horizon left)",
                              ("V_0(s_{t+1})", "V_0(s_t)")),
               "noisy": (noisy_values, "V_t plus a fixed perturbation (a critic's error)",
                         (r"\tilde V_{t+1}(s_{t+1})", r"\tilde V_t(s_t)"))}


def gae_estimator(lam: float = GAE_LAMBDA, *, values: str = "exact", discount: bool = True,
                  name: str | None = None) -> Estimator:
    r"""GAE(lambda) as a catalog estimator: sum_t [gamma^t] grad log pi(a_t|s_t) A^GAE_t (Schulman et al. 2016).

    Unbiased exactly when V is exact (every lambda) or lambda = 1 (any V), and the gamma^t weight is kept or
    gamma = 1.

    Args:
      lam: lambda in [0, 1].
      values: "exact", "stationary" or "noisy" (see ``exact_values``, ``stationary_values``, ``noisy_values``).
      discount: keep the gamma^t weight.
      name: the estimator's name (default "gae").

    >>> gae_estimator(1.0, values="noisy").unbiased, gae_estimator(0.5, discount=False).unbiased
    (True, False)
    """
    if values not in _GAE_VALUES:
        raise UsageError(f"unknown value table {values!r}; choose one of {', '.join(_GAE_VALUES)}")
    table, words, V_terms = _GAE_VALUES[values]
    weights = gae(lam, table)
    per_step = r"\hat A_t" if not discount else r"\gamma^t \hat A_t"
    return Estimator(
        name or "gae", rf"\sum_{{t \ge 0}} {_S}\, {per_step},\ {_gae_latex(*V_terms)},\ \lambda = {lam:g}",
        (values == "exact" or lam == 1.0) and discount,
        f"generalized advantage estimation, lambda = {lam:g}, with {words}"
        + ("" if discount else ", without the gamma^t weight"),
        from_weights(discounted(weights) if discount else weights))


ESTIMATORS: tuple[Estimator, ...] = (
    Estimator("total_return", rf"R(\tau) \sum_{{t \ge 0}} {_S}", True,
              "the source's eqs. (14)/(15): the whole discounted return R(tau) weights every step's score",
              from_weights(total_return)),
    Estimator("reward_to_go", rf"\sum_{{t \ge 0}} {_S} {_G}", True,
              "causality: the score of step t is weighted by the rewards from t on, still discounted from 0",
              from_weights(reward_to_go)),
    Estimator("baseline_constant", rf"\left(R(\tau) - b\right) \sum_{{t \ge 0}} {_S},\ b = J(\theta)", True,
              "total return minus a constant fixed before sampling (here the exact J), never the batch mean",
              from_weights(minus(total_return, constant_baseline))),
    Estimator("baseline_value", rf"\sum_{{t \ge 0}} {_S} \left({_G} - \gamma^t V_t(s_t)\right)", True,
              "reward-to-go minus the exact state value V_t(s_t) with the remaining horizon: a state baseline",
              from_weights(minus(reward_to_go, state_value))),
    Estimator("q_value", rf"\sum_{{t \ge 0}} \gamma^t {_S}\, Q_t(s_t, a_t)", True,
              "the policy-gradient theorem's form: the exact action value Q_t(s_t, a_t) (dynamic programming) "
              "weights each score",
              from_weights(action_value)),
    Estimator("advantage", rf"\sum_{{t \ge 0}} \gamma^t {_S} \left(Q_t(s_t, a_t) - V_t(s_t)\right)", True,
              "the exact advantage A_t = Q_t - V_t: the Q form with the state baseline V_t",
              from_weights(minus(action_value, state_value))),
    gae_estimator(GAE_LAMBDA),
    Estimator("ppo_surrogate",
              r"\sum_{t \ge 0} \gamma^t \nabla_\theta \min\left(\rho_t A_t, "
              r"\operatorname{clip}(\rho_t, 1 - \epsilon, 1 + \epsilon) A_t\right),\ \theta = \theta_{old},\ "
              r"\rho_t = \frac{\pi_\theta(a_t \mid s_t)}{\pi_{\theta_{old}}(a_t \mid s_t)}",
              True,
              "the gradient of PPO's clipped surrogate with the exact advantage A_t = Q_t - V_t, at theta = theta_old "
              "(first epoch, first minibatch): rho_t = 1, the clip is inactive, and it is the advantage form of "
              "grad J (Schulman et al. 2017)",
              from_weights(ppo_clipped(minus(action_value, state_value)))),
    Estimator("rtg_restart_discount", rf"\sum_{{t \ge 0}} {_S} \sum_{{t' \ge t}} \gamma^{{t'-t}} r_{{t'}}", False,
              "reward-to-go whose discount restarts at t (gamma^(t'-t)), the update most code uses: not the "
              "gradient of any function (its mean's Jacobian is not symmetric, Nota & Thomas 2020; "
              "verify.checks.theory.check_gradient_field); unbiased only when gamma = 1",
              from_weights(_named(partial(reward_to_go, restart_discount=True), "reward_to_go_restarted"))),
    Estimator("rtg_skip_current", rf"\sum_{{t \ge 0}} {_S} \sum_{{t' > t}} \gamma^{{t'}} r_{{t'}}", False,
              "reward-to-go that leaves out r_t, the reward the action a_t itself earns",
              from_weights(_named(partial(reward_to_go, include_current=False), "reward_to_go_after_t"))),
    Estimator("action_baseline", rf"\sum_{{t \ge 0}} {_S} \left({_G} - \gamma^t Q_t(s_t, a_t)\right)", False,
              "a baseline that depends on the action (the critic Q_t(s_t, a_t) instead of V_t(s_t)): the mean is 0, "
              "so the bias is -grad J",
              from_weights(minus(reward_to_go, action_value))),
    Estimator("score_wrong_time",
              r"\sum_{t \ge 1} \nabla_\theta \log \pi_\theta(a_t \mid s_t) \sum_{t' \ge t-1} \gamma^{t'} r_{t'}",
              False,
              "off by one in time (logp[1:] * G[:-1]): step t's score gets step t-1's reward-to-go, so step 0's "
              "term is lost",
              from_weights(shifted_one_step(reward_to_go))),
    Estimator("batch_normalized",
              rf"\sum_{{t \ge 0}} {_S} \frac{{G_t - \overline{{G}}}}{{\operatorname{{std}}(G) + \epsilon}}", False,
              "reward-to-go normalised by the mean and standard deviation over the batch's steps: rescales and "
              "shifts the gradient; each value depends on the whole batch",
              from_weights(batch_normalized), batch_dependent=True),
    gae_estimator(GAE_LAMBDA, values="stationary", name="gae_stationary_value"),
    gae_estimator(GAE_LAMBDA, values="noisy", name="gae_noisy_value"),
    gae_estimator(GAE_LAMBDA, discount=False, name="gae_no_discount"),
)

_BY_NAME = {e.name: e for e in ESTIMATORS}


def estimator_names() -> tuple[str, ...]:
    """The catalog's names, in catalog order (unbiased first)."""
    return tuple(_BY_NAME)


def get_estimator(name: str) -> Estimator:
    """The estimator called ``name``.

    Raises:
      UsageError: unknown name (the message lists the known ones).

    >>> get_estimator("reward_to_go").unbiased
    True
    >>> get_estimator("reinforce")
    Traceback (most recent call last):
    ...
    verify.errors.UsageError: unknown estimator 'reinforce'; known estimators: total_return, reward_to_go, \
baseline_constant, baseline_value, q_value, advantage, gae, ppo_surrogate, rtg_restart_discount, rtg_skip_current, \
action_baseline, score_wrong_time, batch_normalized, gae_stationary_value, gae_noisy_value, gae_no_discount
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UsageError(f"unknown estimator {name!r}; known estimators: {', '.join(_BY_NAME)}") from None
