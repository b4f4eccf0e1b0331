"""Plain text of the linear-quadratic checks (``verify.checks.lq_check``, ``pgverify gradient/mc/check`` on LQ
files): result objects in, lines out, no terminal library (the report's table is ``verify.app.lq_render``'s)."""
from __future__ import annotations

import numpy as np


def _g(x: float, spec: str = ".3g") -> str:
    return "inf" if not np.isfinite(x) else format(x, spec)


def _describe(t) -> str:
    from verify.checks.text import describe_test

    return describe_test(t)


def format_lq_gradient(lq, res) -> str:
    """J with the horizon, gamma and method, then grad J by parameter (K, k, log_std)."""
    horizon = "null (discounted, infinite)" if lq.horizon is None else str(lq.horizon)
    lines = [f"{lq.name}: LQ, state dimension {lq.n}, action dimension {lq.m}, horizon {horizon}, gamma {lq.gamma:g}",
             f"policy linear_gaussian: u ~ N(K x + k, diag(exp(2 log_std))), {lq.d} parameters",
             f"J(theta) = {res.J:.12g}   (method: {res.method})",
             "grad J(theta), by parameter:"]
    width = max(len(n) for n in res.names)
    lines += [f"  {name:<{width}}  {value:>16.10g}" for name, value in zip(res.names, res.flat)]
    return "\n".join(lines)


def format_lq_mc(r, command: str | None = None) -> str:
    """One estimator on one LQ sample: the verdict and what decided it, the worst component, both tests, power."""
    from verify.checks.lq_mc import REFERENCE, ZERO_RTOL

    lines = [f"{r.problem}: estimator {r.estimator}, {r.episodes} episodes of {r.T} steps, seed {r.seed}"]
    if r.grad_infinite is not None:
        lines.append(f"horizon null sampled truncated at T = {r.T}: the reference is the truncated problem's exact "
                     f"grad J (max |grad J_T - grad J_inf| = {np.abs(r.grad - r.grad_infinite).max():.2g})")
    w, name = r.worst, r.names[r.worst]
    if r.decided_by == "exact":
        b = r.exact_bias
        how = (f"its values equal the catalog estimator {r.identical_to}'s on every episode, whose exact mean is "
               "known" if r.identical_to else "the exact mean of the estimator (closed form)")
        lines.append(f"verdict: {r.verdict.upper()}, decided by {how}")
        lines.append(f"exact bias: max |E[g] - grad J| = {np.abs(b).max():.3g} at {name}: exact mean "
                     f"{r.exact_mean[w]:.6g}, grad J {r.grad[w]:.6g} (round-off allowance "
                     f"{ZERO_RTOL * r.scale:.2g})")
        lines.append(f"the sample against the closed-form mean: {_describe(r.closed_form)}")
    else:
        by = (f"the paired test against {REFERENCE} (same episodes)" if r.decided_by == "paired"
              else "the unpaired test")
        lines.append(f"verdict: {r.verdict.upper()}, decided by {by}; no closed form for this estimator's mean")
    t = r.test
    lines.append(f"Monte Carlo, unpaired (E[g] = grad J): {_describe(t)}")
    if not t.undecided:
        tw = int(np.argmax(np.where(np.isfinite(t.z), np.abs(t.z), 0.0)))
        lines.append(f"  largest |z|: {r.names[tw]}: sample mean {t.mean[tw]:.6g}, exact {t.exact[tw]:.6g}, "
                     f"standard error {t.stderr[tw]:.3g}")
    if r.paired is not None:
        lines.append(f"Monte Carlo, paired with {REFERENCE} (E[g - g_ref] = 0): {_describe(r.paired)}")
        lines.append(f"  estimated bias at {name}: {r.bias_estimate[w]:.4g} (standard error {r.bias_stderr[w]:.2g})")
    lines.append(f"power: the deciding sampled test detects, with probability 0.999, a bias of {_g(r.detectable)} "
                 f"in any one component" + (" (shown; the exact mean decides)" if r.decided_by == "exact" else ""))
    for pitfall, fix in r.matches:
        lines.append(f"matches the pitfall {pitfall}; fix: {fix}")
    if command:
        lines.append(f"reproduce: {command}")
    return "\n".join(lines)


def format_lq_check(c, reproduce=None) -> str:
    """The exact-gradient cross-check, then one line per catalog estimator (status, how decided, numbers)."""
    from verify.checks.lq_mc import get_lq_estimator

    mark = {"passed": "✓", "failed": "✗", "undecided": "?"}
    lines = [f"{c.problem}: J(theta) = {c.J:.10g}; Riccati/Lyapunov grad J vs central differences of the "
             f"forward-moment J: max relative difference {c.fd_max_rel:.1e} (tol {c.fd_tol:.0e}): "
             f"{'ok' if c.gradients_agree else 'FAILED'}"]
    width = max((len(r.estimator) for r in c.rows), default=0)   # no rows: `check --estimator` shows line 1 only
    for r in c.rows:
        e = get_lq_estimator(r.estimator)
        status = c.status(r)
        detail = (f"exact max|bias| {np.abs(r.exact_bias).max():.3g} (sample vs closed form p = "
                  f"{r.closed_form.p_value:.2g})" if r.exact_mean is not None
                  else f"p = {r.sampled.p_value:.3g} ({r.decided_by})")
        lines.append(f"{mark[status]} {r.estimator:<{width}}  {'unbiased' if e.unbiased else 'pitfall '}  "
                     f"{r.verdict:<12} {detail}; detects {_g(r.detectable)}")
        if status != "passed" and reproduce is not None:
            lines.append(f"    reproduce: {reproduce(r)}")
    failed = sum(c.status(r) == "failed" for r in c.rows)
    undecided = sum(c.status(r) == "undecided" for r in c.rows)
    lines.append(f"{len(c.rows) - failed - undecided} passed, {failed} failed, {undecided} undecided")
    return "\n".join(lines)
