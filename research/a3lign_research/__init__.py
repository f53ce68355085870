"""A3lign-DFER's research wing: what measures, compares and publishes.

Paper experiments (`paper/`), seeds and folds, the results table, the benchmarks (`benchmarks/`, one module
each, sharing `a3lign_research.benchmarks.common`), the generated blocks of README and docs (`blocks.py`, their one table),
the browser checks and the real-face test videos. It imports the product `a3lign_dfer`; the product never
imports it (import-linter contracts in pyproject.toml).
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]      # the repository (research/a3lign_research/__init__.py)


def shown_path(path: Path) -> str:
    """A path as a published report shows it: relative to the repository when inside it, so no block names the
    folder of the machine that measured it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
