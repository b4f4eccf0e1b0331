"""The checks layer: estimators and their verdicts — the estimator catalog, exact moments, the statistics, the Monte
Carlo runs and traces, and the user-facing checks (``gradcheck`` per episode, ``batchcheck`` per batch). Imports the
model and numerics layers; returns result objects and never prints."""
