"""When a batch counts as drifted: four rules over the per-column results and the thresholds (params `drift`).

Pure, so the drift command, the benchmark's threshold choice and the tests apply the very same rules, without
running Evidently. A batch drifted when any rule fires:
  share      more than `drifted_share` of the input columns drifted (Evidently's verdict at `column_p_value`);
  columns    any input column's p-value is below `alarm_p_value` (many columns at 0.05 flag some by chance;
             this is the bar for one column alone);
  embedding  the embedding method's score is above `embedding.threshold` (Evidently's own rule for every
             method without bootstrap);
  class_mix  the predicted-class mix's p-value is below `class_mix_p_value` (0: never).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from a3lign_dfer.config.deploy import DriftConfig
from a3lign_dfer.config.schema import build
from a3lign_dfer.monitoring.results import ColumnDrift

THRESHOLD_OF = {"share": "drifted_share", "columns": "alarm_p_value", "embedding": "embedding.threshold",
                "class_mix": "class_mix_p_value"}           # rule -> its threshold in params `drift`
RULES = tuple(THRESHOLD_OF)


@dataclass(frozen=True)
class Alarms:
    """What the rules found on one batch."""

    drifted_columns: tuple[str, ...]     # input columns Evidently found drifted, in input order
    drifted_share: float
    beyond_chance: tuple[str, ...]       # input columns with p < alarm_p_value, in input order
    share: bool
    embedding: bool
    class_mix: bool

    @property
    def fired(self) -> tuple[str, ...]:
        """The rules that fired, in RULES order."""
        return tuple(rule for rule, hit in zip(RULES, (self.share, bool(self.beyond_chance), self.embedding,
                                                       self.class_mix)) if hit)

    @property
    def drift(self) -> bool:
        return bool(self.fired)


def alarms(columns: Mapping[str, ColumnDrift], class_mix_p: float, embedding_score: float,
           thresholds: DriftConfig) -> Alarms:
    """The four rules on a batch's input columns, class-mix p-value and embedding score."""
    drifted = tuple(c for c, r in columns.items() if r.drifted)
    share = len(drifted) / len(columns)
    return Alarms(drifted_columns=drifted, drifted_share=share,
                  beyond_chance=tuple(c for c, r in columns.items() if r.score < thresholds.alarm_p_value),
                  share=share > thresholds.drifted_share,
                  embedding=embedding_score > thresholds.embedding.threshold,
                  class_mix=class_mix_p < thresholds.class_mix_p_value)


def thresholds_from_dict(raw: dict) -> DriftConfig:
    """DriftConfig from its JSON form (profile.json, summary.json)."""
    return build(DriftConfig, raw, source="drift thresholds")
