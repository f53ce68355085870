"""A3lign-DFER's research wing: what measures, compares and publishes.

Paper experiments (`paper/`), seeds and folds, the results table, the benchmarks (`benchmarks/`, one module
each, sharing `a3lign_research.benchmarks.common`), the generated blocks of README and docs (`blocks.py`, their one table),
the browser checks and the real-face test videos. It imports the product `a3lign_dfer`; the product never
imports it (import-linter contracts in pyproject.toml).
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]      # the repository (research/a3lign_research/__init__.py)
