"""Figures (matplotlib, the optional extra ``plot``), drawn from the Monte Carlo runs the checks used.

- convergence: does each estimator's running mean converge to grad J? Top row: the whole vector, the relative
  error ||m_n - grad J|| / ||grad J|| against n, shaded up to 2 sqrt(tr Cov_n[g] / n) / ||grad J|| (twice the RMS
  error an unbiased mean of n episodes has): an unbiased estimator stays in its band, which shrinks like 1/sqrt(n);
  a biased one levels off at ||bias|| / ||grad J||. Below, small multiples: the components with the largest
  |grad J|, the running mean with its 95% band (m_n +- 1.96 s_n / sqrt(n)) against the exact value. Unbiased
  estimators on the left, pitfalls on the right.
- variance: per-episode tr Cov[g] of the unbiased estimators relative to the total-return estimator, linear axis
  from 0.

Every curve comes from ``McResult.trace`` (``run_estimators(..., trace=TRACE_POINTS)``): the same episodes the
tests judged, not a second sample.
"""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np

from verify.errors import UsageError
from verify.checks.estimators import ESTIMATORS
from verify.model.problem import Problem

__all__ = ["TRACE_POINTS", "check_output_dir", "convergence_figure", "figure_name", "require_matplotlib",
           "running_mean_band", "variance_figure", "write_problem_plots", "write_report_plots"]

TRACE_POINTS = 200      # checkpoints per curve: log-spaced, they look the same as all N and draw far faster
COMPONENTS = 3          # small multiples: the components with the largest |grad J|
# Bands from sample variances start at this many episodes: below it the variance of a few episodes is noise (zero
# for n = 1, so the dotted reference plunged to the bottom of the log axis near n = 1-3); the z-tests use the
# same count (verify.checks.stats.MIN_NONZERO).
BAND_MIN_EPISODES = 30
PLOT_HINT = "pip install 'pgverify[plot]'"


def require_matplotlib() -> None:
    """Raise UsageError (the CLI's exit 2) when the ``plot`` extra is missing; call before long work."""
    _pyplot()


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise UsageError(f"plots need matplotlib: {PLOT_HINT}") from None
    matplotlib.use("Agg")   # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def figure_name(kind: str, name: str) -> str:
    """A file name for a figure of the problem ``name``: anything but letters, digits, '.', '-' becomes '_'.

    >>> figure_name("convergence", "FrozenLake-v1(map_name=4x4)")
    'convergence-FrozenLake-v1_map_name_4x4.png'
    """
    from verify.model.io import (
        safe_filename,  # also no leading dots, and at most 80 characters (hash kept)
    )

    return f"{kind}-{safe_filename(name)}.png"


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


def _theta_text(problem: Problem | None) -> str:
    if problem is None:
        return ""
    theta = problem.policy.theta
    if theta.size <= 12:
        return "θ = " + np.array2string(theta, separator=", ", formatter={"float_kind": lambda v: f"{v:.3g}"},
                                        max_line_width=10_000).replace("\n", "")
    return f"θ of shape {list(theta.shape)}, max |θ| = {np.abs(theta).max():.3g}"


def _distinct(runs) -> list[tuple[str, object]]:
    """Runs whose traces coincide (e.g. total_return and reward_to_go at horizon 1) as one curve: (names, run)."""
    out: list[tuple[list[str], object]] = []
    for r in runs:
        same = next((o for o in out if np.array_equal(o[1].trace.mean, r.trace.mean)), None)
        if same is None:
            out.append(([r.estimator.name], r))
        else:
            same[0].append(r.estimator.name)
    return [("\n".join(textwrap.wrap(" = ".join(names), 24)), r) for names, r in out]


def convergence_figure(runs, *, problem: Problem | None = None):
    """Relative error of the whole vector and the components of largest |grad J|, from the runs' traces.

    Args:
      runs: ``verify.checks.mc.McResult`` of one problem and one sample, each with a ``trace``.
      problem: for the title's θ (optional).
    """
    plt = _pyplot()
    runs = [r for r in runs if r.trace is not None and len(r.trace.n)]
    if not runs:
        raise UsageError("no convergence traces: run the estimators with trace > 0")
    first = runs[0]
    grad = np.asarray(first.test.exact, dtype=float)
    flat = grad.ravel()
    comps = [int(c) for c in first.trace.components[:COMPONENTS]]
    groups = [("unbiased estimators", [r for r in runs if r.estimator.unbiased]),
              ("pitfalls (biased on some MDPs)", [r for r in runs if not r.estimator.unbiased])]
    groups = [(label, _distinct(group)) for label, group in groups if group]
    rows = 1 + len(comps)
    fig, axes = plt.subplots(rows, len(groups), figsize=(6.2 * len(groups), 2.5 * rows + 1.6), squeeze=False,
                             sharex=True)
    colors = plt.get_cmap("tab10").colors
    scale = float(np.linalg.norm(flat)) or 1.0
    # legend rows (3 entries each) times the longest entry's lines, for the bottom margin
    legend_lines = max(-(-len(g) // 3) * max(n.count("\n") + 1 for n, _ in g) for _, g in groups)
    for col, (label, group) in enumerate(groups):
        ax = axes[0, col]
        lows = []
        for i, (names, r) in enumerate(group):
            err, band, _ = r.trace.relative_error(grad)
            c = colors[i % len(colors)]
            ax.plot(r.trace.n, err, color=c, linewidth=1.2, label=names)
            # no band where the sample has no spread yet (or never: a constant estimator), nor before its variance means
            # anything
            shown = (band > 0) & (r.trace.n >= BAND_MIN_EPISODES)
            ax.plot(r.trace.n[shown], band[shown], color=c, linewidth=0.8, linestyle=":", alpha=0.8)
            lows += [v for v in (err[-1], band[-1]) if v > 0]
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(max(min(lows, default=1.0) / 3, 1e-6), None)
        ax.set_title(label, fontsize=10)
        ax.set_ylabel("‖m_n − ∇J‖ / ‖∇J‖" if scale != 1.0 or np.any(flat) else "‖m_n − ∇J‖", fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        for row, k in enumerate(comps, start=1):
            ax = axes[row, col]
            exact = flat[k]
            spans = []
            for i, (_, r) in enumerate(group):
                j = list(r.trace.components).index(k)
                m = r.trace.mean.reshape(len(r.trace.n), -1)[:, k]
                half = 1.96 * np.sqrt(r.trace.var[:, j] / r.trace.n)
                c = colors[i % len(colors)]
                banded = r.trace.n >= BAND_MIN_EPISODES
                ax.fill_between(r.trace.n[banded], (m - half)[banded], (m + half)[banded], color=c, alpha=0.1,
                                linewidth=0)
                ax.plot(r.trace.n, m, color=c, linewidth=1)
                spans.append(abs(m[-1] - exact) + 4 * half[-1])
            ax.axhline(exact, color="black", linestyle="--", linewidth=1)
            span = max(max(spans), 1e-3 * scale, 1e-12)
            ax.set_ylim(exact - span, exact + span)
            name = first.name_of(np.unravel_index(k, grad.shape))
            ax.set_ylabel("∂J/∂" + name.replace(" (", "\n("), fontsize=8)
            ax.grid(True, which="major", alpha=0.3)
        axes[-1, col].set_xlabel("episodes n (log scale)")
        for ax in axes[:, col]:
            ax.minorticks_off()   # log-scale minor ticks cost seconds in layout and add nothing here
        handles, names = axes[0, col].get_legend_handles_labels()
        fig.legend(handles, names, loc="lower center", ncol=3, fontsize=8, frameon=False,
                   bbox_to_anchor=((col + 0.5) / len(groups), 0.0))
    title = (f"{first.problem}: does the running Monte Carlo mean m_n converge to the exact ∇J? "
             f"({first.episodes} episodes, seed {first.seed})")
    sub = (f"{_theta_text(problem)}; ‖∇J‖ = {scale:.3g}. Top: relative error of the whole vector (solid) and "
           f"2·sqrt(tr Cov[g]/n)/‖∇J‖ (dotted), which an unbiased mean stays near and below. Below: the "
           f"{len(comps)} components with the largest |∇J|, running mean with 95% band; dashed = exact ∇J. Bands "
           f"from n = {BAND_MIN_EPISODES} episodes (fewer give no usable variance).")
    width = int(fig.get_figwidth() * 15)
    fig.suptitle("\n".join([title, *textwrap.wrap(sub, width)]), fontsize=9)
    # fixed margins: tight_layout costs seconds on log-scale panels; the legends sit in the bottom margin
    fig.subplots_adjust(left=0.09, right=0.98, top=1 - 0.95 / fig.get_figheight(),
                        bottom=(0.55 + 0.2 * legend_lines) / fig.get_figheight(), hspace=0.25, wspace=0.28)
    return fig


def variance_figure(rows):
    """Grouped bars of tr Cov[g] / tr Cov[total_return] per example (rows: verify.app.report.VarianceRow); linear
    axis from 0, the legend beside the plot."""
    plt = _pyplot()
    examples = list(dict.fromkeys(r.example for r in rows))
    names = list(dict.fromkeys(r.estimator for r in rows))
    value = {(r.example, r.estimator): r.variance for r in rows}
    fig, ax = plt.subplots(figsize=(3.6 + 1.4 * len(examples), 3.8))
    width = 0.8 / len(names)
    top = 1.0
    for j, name in enumerate(names):
        ratios = np.array([value.get((ex, name), np.nan) / d if (d := value.get((ex, "total_return"), np.nan))
                           else np.nan for ex in examples])      # no variance at all (e.g. no step taken): no bar
        top = max(top, float(np.nanmax(ratios, initial=0.0)))
        ax.bar(np.arange(len(examples)) + (j - (len(names) - 1) / 2) * width, ratios, width, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_ylim(0, 1.1 * top)
    ax.set_xticks(np.arange(len(examples)), examples)
    ax.set_ylabel("tr Cov[g] / tr Cov[total_return]")
    sources = sorted({r.source for r in rows})
    ax.set_title(f"Per-episode variance of the unbiased estimators\nrelative to total_return "
                 f"({' / '.join(sources)}; below 1 = less variance)", fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def check_output_dir(out: str | Path, names: list[str] | None = None, *, force: bool = False) -> Path:
    """Raise UsageError unless ``out`` can take the figures: a directory (or creatable), no PNG overwritten
    without ``force``. ``names=None`` means any PNG already in ``out``."""
    if str(out) == "" or "\0" in str(out):
        raise UsageError(f"output directory {str(out)!r}: give a directory name")
    out = Path(out)
    if any(len(part.encode("utf-8", "surrogateescape")) > 255 for part in out.parts):
        raise UsageError(f"output directory {str(out)[:60]!r}...: a name is longer than 255 bytes")
    if os.path.lexists(out) and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory")
    if not out.is_dir():        # to be created: the nearest existing ancestor must be a writable directory
        from verify.model.io import check_output_path

        first = next((p for p in out.absolute().parents if os.path.lexists(p)), Path("/"))
        if not first.is_dir():
            raise UsageError(f"cannot create output directory {out}: {first} is not a directory")
        try:
            check_output_path(first / ".pgverify-plots-probe", force=True, what="output directory")
        except UsageError:
            raise UsageError(f"cannot create output directory {out}: {first} is not writable") from None
    existing = [p.name for p in out.glob("*.png")] if names is None and out.is_dir() else \
        [n for n in names or [] if (out / n).exists()]
    if existing and not force:
        raise UsageError(f"{out / existing[0]} exists; pass --force to overwrite it")
    return out


def _output_dir(out: str | Path, names: list[str], force: bool) -> Path:
    out = check_output_dir(out, names, force=force)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output directory {out}: {exc.strerror or exc}") from None
    return out


def _save(fig, path: Path) -> Path:
    from verify.model.io import atomic_write_with

    try:    # a temporary file renamed into place: never a half-written PNG (existence was checked before the run)
        return atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"), force=True,
                                 what="figure")
    finally:
        _pyplot().close(fig)


def write_report_plots(report, out, *, force: bool = False) -> list[Path]:
    """convergence-<example>.png per example and variance.png, from a Report built with ``trace`` > 0."""
    from verify.model.builtin import EXAMPLE_NAMES, load_example

    examples = list(dict.fromkeys(ex for ex, _ in report.estimators))
    names = [figure_name("convergence", ex) for ex in examples] + ["variance.png"]
    out = _output_dir(out, names, force)
    paths = []
    for ex, name in zip(examples, names):
        runs = [row.mc for e, row in report.estimators if e == ex]
        problem = load_example(ex) if ex in EXAMPLE_NAMES else None
        paths.append(_save(convergence_figure(runs, problem=problem), out / name))
    return paths + [_save(variance_figure(report.variance), out / "variance.png")]


def write_problem_plots(problem: Problem, out, *, episodes: int, seed: int, force: bool = False) -> list[Path]:
    """convergence-<name>.png and variance-<name>.png for one problem, from one run of the whole catalog."""
    from verify.checks.mc import run_estimators
    from verify.app.report import variance_rows

    name = problem.mdp.name
    files = [figure_name("convergence", name), figure_name("variance", name)]
    out = _output_dir(out, files, force)
    runs = run_estimators(problem, ESTIMATORS, episodes=episodes, seed=seed, trace=TRACE_POINTS)
    return [_save(convergence_figure(runs, problem=problem), out / files[0]),
            _save(variance_figure(variance_rows(name, runs)), out / files[1])]
