"""Choosing the drift thresholds on in-distribution batches (a3lign_research.benchmarks.drift's selection set).

A threshold bounds false alarms, so it is chosen on batches without drift only; detection is measured on
other batches. Per rule, a grid of values from the most to the least sensitive: the choice is one grid
step less sensitive than the most sensitive value that flags none of the selection batches, a margin for
batches not seen (the least sensitive value when every value flags one). Each rule is chosen on its own:
whether a rule fires does not depend on the other rules' thresholds.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import reduce

from a3lign_dfer.config.deploy import DriftConfig
from a3lign_dfer.monitoring.rules import RULES, THRESHOLD_OF
from a3lign_dfer.monitoring.summary import Comparison

# Most sensitive first (class_mix 0: never). The embedding's grid is per method: its score is MMD^2, a ROC AUC,
# a share of components or a distance.
GRIDS = {
    "share": (0.1, 0.15, 0.2, 0.3, 0.4, 0.5),
    "columns": (1e-2, 1e-3, 1e-4, 1e-5, 1e-6),
    "embedding": {"mmd": (0.005, 0.01, 0.02, 0.05, 0.1, 0.2), "model": (0.55, 0.6, 0.65, 0.7, 0.8, 0.9),
                  "ratio": (0.1, 0.2, 0.3, 0.4, 0.5), "distance": (0.1, 0.2, 0.3, 0.4, 0.5)},
    "class_mix": (0.05, 0.01, 1e-3, 1e-4, 0.0),
}


@dataclass(frozen=True)
class RuleChoice:
    grid: tuple[float, ...]
    quiet_from: float | None     # the most sensitive value that flags no selection batch (None: every value does)
    chosen: float


def threshold(cfg: DriftConfig, rule: str) -> float:
    return reduce(getattr, THRESHOLD_OF[rule].split("."), cfg)


def with_threshold(cfg: DriftConfig, rule: str, value: float) -> DriftConfig:
    head, _, tail = THRESHOLD_OF[rule].partition(".")
    return replace(cfg, **{head: replace(getattr(cfg, head), **{tail: value}) if tail else value})


def grid(cfg: DriftConfig, rule: str) -> tuple[float, ...]:
    return GRIDS[rule][cfg.embedding.method] if rule == "embedding" else GRIDS[rule]


def choose_thresholds(clean: Sequence[Comparison], current: DriftConfig) -> dict[str, RuleChoice]:
    """Per rule, the choice on the in-distribution batches `clean` (see the module's docstring)."""
    choices = {}
    for rule in RULES:
        values = grid(current, rule)
        quiet = [i for i, v in enumerate(values)
                 if not any(rule in c.alarms_under(with_threshold(current, rule, v)).fired for c in clean)]
        chosen = values[min(quiet[0] + 1, len(values) - 1)] if quiet else values[-1]
        choices[rule] = RuleChoice(values, values[quiet[0]] if quiet else None, chosen)
    return choices


def chosen_thresholds(choices: dict[str, RuleChoice], current: DriftConfig) -> DriftConfig:
    return reduce(lambda cfg, rule: with_threshold(cfg, rule, choices[rule].chosen), choices, current)
