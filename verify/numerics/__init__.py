"""The numerics layer: arrays about trajectories — the return maths on plain arrays (``returns``), the episode batch
(``episodes``), exact J and grad J by enumeration, DP and linear solve (``exact``) and the Monte Carlo sampler
(``sampler``). Imports the model layer only; no verdicts, no printing."""
