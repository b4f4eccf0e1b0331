"""Figures (matplotlib, the optional extra ``plot``): Monte Carlo convergence and variance comparison.

- convergence: the running mean of each estimator's component with the largest |grad J|, with a 95% band
  (running mean +- 1.96 s_n / sqrt(n)), against the exact value: unbiased estimators close in on it,
  pitfalls settle elsewhere.
- variance: per-episode tr Cov[g] of the unbiased estimators relative to the total-return estimator.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from verify.errors import UsageError
from verify.estimators import ESTIMATORS
from verify.exact import gradient
from verify.problem import Problem
from verify.sampler import sample_episodes

__all__ = ["check_output_dir", "require_matplotlib", "convergence_figure", "running_mean_band", "variance_figure", "write_problem_plots", "write_report_plots"]


def require_matplotlib() -> None:
    """Raise UsageError (the CLI's exit 2) when the ``plot`` extra is missing; call before long work."""
    _pyplot()


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise UsageError("plots need matplotlib: pip install -e '.[plot]'") from None
    matplotlib.use("Agg")   # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def running_mean_band(g_n: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Running mean m_n = (1/n) sum_{i<=n} g_i and half-width z s_n / sqrt(n) of its confidence band.

    Args:
      g_n: per-episode values, shape [N].

    Returns:
      (m_n, half_width), each [N]; the half-width uses the running sample std (0 for n = 1).

    >>> m, h = running_mean_band(np.array([1.0, 3.0, 2.0]))
    >>> m.tolist(), round(float(h[-1]), 4)     # s_3 = 1, so 1.96 / sqrt(3)
    ([1.0, 2.0, 2.0], 1.1316)
    """
    n = np.arange(1, g_n.size + 1, dtype=float)
    m_n = np.cumsum(g_n) / n
    sq = np.cumsum(g_n ** 2) / n
    var = np.clip(sq - m_n ** 2, 0.0, None) * n / np.maximum(n - 1, 1)
    return m_n, z * np.sqrt(var / n)


def convergence_figure(problem: Problem, *, episodes: int, seed: int, estimators=ESTIMATORS):
    """One panel per estimator: running mean of the largest-|grad J| component vs the exact value."""
    plt = _pyplot()
    exact = gradient(problem.mdp, problem.policy).grad
    k = int(np.argmax(np.abs(exact)))
    batch = sample_episodes(problem.mdp, problem.policy, episodes, np.random.default_rng(seed))
    cols = 3
    rows = -(-len(estimators) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), sharex=True, squeeze=False)
    # ~300 log-spaced points per curve look the same as all N and draw far faster
    n = np.unique(np.geomspace(1, episodes, num=min(episodes, 300)).astype(int))
    for ax, est in zip(axes.ravel(), estimators):
        g_n = est.per_episode(batch).reshape(episodes, -1)[:, k]
        m_n, half = (x[n - 1] for x in running_mean_band(g_n))
        color = "tab:blue" if est.unbiased else "tab:red"
        ax.fill_between(n, m_n - half, m_n + half, color=color, alpha=0.25, linewidth=0)
        ax.plot(n, m_n, color=color, linewidth=1)
        ax.axhline(exact.ravel()[k], color="black", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.minorticks_off()   # log-scale minor ticks cost seconds in layout and add nothing here
        ax.set_title(f"{est.name} ({'unbiased' if est.unbiased else 'pitfall'})", fontsize=9)
        ymid, yspan = exact.ravel()[k], 4 * max(half[-1], 1e-3) + abs(m_n[-1] - exact.ravel()[k])
        ax.set_ylim(ymid - yspan, ymid + yspan)
    for ax in axes.ravel()[len(estimators):]:
        ax.set_visible(False)
    idx = ", ".join(str(int(i)) for i in np.unravel_index(k, exact.shape))
    fig.suptitle(f"{problem.mdp.name}: running mean of the estimate of ∂J/∂θ[{idx}] with 95% band; dashed = exact "
                 f"(seed {seed})", fontsize=10)
    fig.supxlabel("episodes")
    # fixed margins: tight_layout costs seconds on 9 log-scale panels
    fig.subplots_adjust(left=0.07, right=0.98, top=0.9, bottom=0.1, hspace=0.4, wspace=0.3)
    return fig


def variance_figure(rows) -> object:
    """Grouped bars of tr Cov[g] / tr Cov[total_return] per example (rows: verify.report.VarianceRow)."""
    plt = _pyplot()
    examples = list(dict.fromkeys(r.example for r in rows))
    names = list(dict.fromkeys(r.estimator for r in rows))
    value = {(r.example, r.estimator): r.variance for r in rows}
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(examples), 3.6))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        ratios = [value.get((ex, name), np.nan) / value.get((ex, "total_return"), np.nan) for ex in examples]
        ax.bar(np.arange(len(examples)) + (j - (len(names) - 1) / 2) * width, ratios, width, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(examples)), examples)
    ax.set_ylabel("tr Cov[g] / tr Cov[total_return]")
    sources = sorted({r.source for r in rows})
    ax.set_title(f"Per-episode variance of unbiased estimators ({' / '.join(sources)})", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def check_output_dir(out: str | Path, names: list[str] | None = None, *, force: bool = False) -> Path:
    """Raise UsageError unless ``out`` can take the figures: a directory (or creatable), no PNG overwritten
    without ``force``. ``names=None`` means any PNG already in ``out``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory")
    existing = [p.name for p in out.glob("*.png")] if names is None and out.is_dir() else \
        [n for n in names or [] if (out / n).exists()]
    if existing and not force:
        raise UsageError(f"{out / existing[0]} exists; pass --force to overwrite it")
    return out


def _output_dir(out: str | Path, names: list[str], force: bool) -> Path:
    out = check_output_dir(out, names, force=force)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def write_report_plots(report, problems: dict[str, Problem], out, *, episodes: int, force: bool = False) -> list[Path]:
    """convergence-<example>.png per example and variance.png, from a finished Report."""
    names = [f"convergence-{ex}.png" for ex in problems] + ["variance.png"]
    out = _output_dir(out, names, force)
    paths = [_save(convergence_figure(p, episodes=episodes, seed=report.seed), out / f"convergence-{ex}.png")
             for ex, p in problems.items()]
    return paths + [_save(variance_figure(report.variance), out / "variance.png")]


def write_problem_plots(problem: Problem, out, *, episodes: int, seed: int, force: bool = False) -> list[Path]:
    """convergence-<name>.png and variance-<name>.png for a user's MDP file."""
    from verify.mc import run_estimators
    from verify.report import variance_rows

    name = problem.mdp.name
    out = _output_dir(out, [f"convergence-{name}.png", f"variance-{name}.png"], force)
    runs = run_estimators(problem, [e for e in ESTIMATORS if e.unbiased], episodes=episodes, seed=seed)
    rows = variance_rows(name, runs)
    return [_save(convergence_figure(problem, episodes=episodes, seed=seed), out / f"convergence-{name}.png"),
            _save(variance_figure(rows), out / f"variance-{name}.png")]

