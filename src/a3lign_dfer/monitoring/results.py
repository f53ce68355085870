"""What one drift comparison found, test by test: plain data, read from Evidently by monitoring.drift.compare
and written to summary.json by monitoring.summary."""
from __future__ import annotations

from dataclasses import dataclass

EMBEDDING_PREFIX = "emb_"        # embedding components are emb_00, emb_01, ...; every other input is a crop statistic


def is_embedding_component(column: str) -> bool:
    return column.startswith(EMBEDDING_PREFIX)


@dataclass(frozen=True)
class ColumnDrift:
    """One column against the reference: its test's p-value and Evidently's verdict at `threshold`."""

    score: float                 # p-value
    method: str
    threshold: float
    drifted: bool
    reference_mean: float
    current_mean: float


@dataclass(frozen=True)
class ClassMixDrift:
    """The predicted-class mix against the reference: its test's p-value and the class shares of each side."""

    score: float                 # p-value
    method: str
    threshold: float
    drifted: bool
    reference: dict[str, float]
    current: dict[str, float]


@dataclass(frozen=True)
class EmbeddingDrift:
    """The embedding as a whole: the score of the profile's method (Evidently EmbeddingsDrift)."""

    score: float
    components: int
