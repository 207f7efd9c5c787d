"""Experiments built from ordinary runs: training dynamics over checkpoints (``curve``)."""
