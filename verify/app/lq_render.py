"""The report's LQ table (rich). The plain text of LQ results is ``verify.checks.lq_text``'s.

Does not compute: every number comes from ``verify.model.lq`` / ``verify.checks.lq_mc`` result objects.
"""
from __future__ import annotations

__all__ = ["lq_report_table"]


def lq_report_table(rows):
    """The report's LQ section as a rich table: one row per check (derivation claim, exact gradient, estimator)."""
    from rich.markup import escape
    from rich.table import Table

    mark = {"passed": "✓", "failed": "✗", "undecided": "?"}
    table = Table(title=escape("6. LQ control with a Gaussian policy (continuous states and actions): the derivation "
                               "by exact Gaussian integrals, exact grad J, estimators"),
                  title_justify="left", title_style="bold")
    for col in ("section", "example", "check", "result", "detail"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r.section, r.example, escape(r.name), mark[r.status], escape(r.detail))
    return table
