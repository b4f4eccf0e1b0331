r"""What to do about a named bug: one line per catalog pitfall, and known bugs beyond the catalog.

When a check proves a bias and a pitfall's exact mean equals the user's (``gradcheck``, ``batchcheck``), naming
the pitfall says what is wrong; ``FIXES`` says what to change. ``KNOWN_BUGS`` are mistakes seen in real code that
the catalog does not list (it lists what the derivation's steps explain), matched the same way:

- ``forward_cumsum``: ``np.cumsum(disc * r)`` without reversing, so step t is weighted by sum_{t' <= t} gamma^t' r_t'
  (the rewards *before* t) instead of the reward-to-go; the reversal ``[:, ::-1]`` on both sides is missing.
"""
from __future__ import annotations

import numpy as np

from verify.numerics.episodes import Episodes, at_steps
from verify.checks.estimators import Estimator, from_weights

__all__ = ["FIXES", "KNOWN_BUGS", "fix_for", "forward_cumsum", "match_lines"]

FIXES = {
    "rtg_restart_discount": "multiply the reward-to-go at step t by gamma^t: G_t = sum_{t' >= t} gamma^t' r_t' "
                            "(= gamma^t times the restarted sum), not sum gamma^(t'-t) r_t'",
    "rtg_skip_current": "start the reward-to-go at t' = t (include the reward of the step itself), not at t + 1",
    "action_baseline": "use a baseline that does not depend on the action a_t, e.g. V(s_t), never Q(s_t, a_t)",
    "score_wrong_time": "pair log pi(a_t|s_t) with the return of the same step t (an off-by-one shifted them: "
                        "logp[1:] * G[:-1])",
    "batch_normalized": "normalising returns over the batch biases the gradient by O(1/B) (c != 1 and a tilt): "
                        "use a state-value baseline, or a larger batch if the bias is acceptable",
    "gae_stationary_value": "with a finite horizon give the critic the time left (V_t(s), not one V(s)), or use "
                            "lambda = 1",
    "gae_noisy_value": "a critic's error biases GAE(lambda < 1): fit V better or use lambda = 1 (unbiased with "
                       "any V, at higher variance)",
    "gae_no_discount": "weight the advantage of step t by gamma^t (without it the gradient is of another "
                       "objective, the undiscounted state distribution's)",
    "forward_cumsum": "reverse before and after the cumulative sum: G = cumsum((disc * r)[:, ::-1], axis=1)"
                      "[:, ::-1] (a forward cumsum sums the rewards before t, not after it)",
}


def fix_for(name: str) -> str | None:
    """The one-line fix for a named bug (catalog pitfall or ``KNOWN_BUGS`` entry), or None."""
    return FIXES.get(name)


def _forward_cumsum(eps: Episodes) -> np.ndarray:
    """w_t = sum_{t' <= t} gamma^t' r_t': a forward cumulative sum where the reward-to-go needs a reversed one."""
    x = eps.discount_t[None, :] * eps.r_t * eps.mask
    return at_steps(eps, np.cumsum(x, axis=1))


forward_cumsum = Estimator(
    "forward_cumsum", r"\sum_{t \ge 0} \nabla_\theta \log \pi_\theta(a_t \mid s_t) \sum_{t' \le t} \gamma^{t'} "
    r"r_{t'}", False, "the returns summed forwards (cumsum without the reversal): rewards before t, not after",
    from_weights(_forward_cumsum))

KNOWN_BUGS: tuple[Estimator, ...] = (forward_cumsum,)


def match_lines(matches, scales=None) -> list[str]:
    """One line per catalog pitfall (or ``KNOWN_BUGS`` entry) with the same exact mean (or ``scales[i]`` times
    it), each followed by its fix."""
    from verify.checks.estimators import get_estimator

    known = {e.name: e for e in KNOWN_BUGS}
    lines = []
    for i, name in enumerate(matches):
        e = known.get(name) or get_estimator(name)
        c = None if scales is None else scales[i]
        same = ("same exact mean as" if c is None else "the same exact mean as" if abs(c - 1) < 1e-9
                else f"{c:.4g} times the exact mean of")
        lines.append(f"{same} {'the known bug' if name in known else 'the catalog pitfall'} {name}: {e.description}")
        if fix_for(name):
            lines.append(f"  fix: {fix_for(name)}")
    return lines
