"""The drift check's result, typed: what `compare` found (Comparison) and what the drift command writes as
summary.json (DriftSummary). The monitor flow and the reports page read summary.json through from_json.

The JSON also holds what follows from the results (verdict, reasons, drifted share and columns, exit status)
for people and other tools; from_json recomputes those, so they cannot disagree with the results.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from a3lign_dfer.config.deploy import DriftConfig

from a3lign_dfer.config.schema import to_dict
from a3lign_dfer.monitoring import rules
from a3lign_dfer.monitoring.results import ClassMixDrift, ColumnDrift, EmbeddingDrift
from a3lign_dfer.monitoring.text import describe

EXIT_OK, EXIT_BAD_INPUT, EXIT_USAGE, EXIT_DRIFT = 0, 1, 2, 3


def kind_counts(kinds: Iterable[str]) -> dict[str, int]:
    """Clips per input kind ("video": through the face track; "frames": a dataset's aligned face crops)."""
    return dict(sorted(Counter(kinds).items()))


@dataclass(frozen=True)
class Comparison:
    """A batch's columns against the reference profile, under the thresholds saved with it."""

    columns: dict[str, ColumnDrift]      # input columns: embedding components, then crop statistics
    class_mix: ClassMixDrift
    confidence: ColumnDrift
    embedding: EmbeddingDrift
    thresholds: DriftConfig

    @property
    def alarms(self) -> rules.Alarms:
        return self.alarms_under(self.thresholds)

    def alarms_under(self, thresholds: DriftConfig) -> rules.Alarms:
        """The rules under other thresholds (the benchmark's threshold choice)."""
        return rules.alarms(self.columns, self.class_mix.score, self.embedding.score, thresholds)


@dataclass(frozen=True)
class DriftSummary:
    """One batch's drift check."""

    batch: str
    inputs: list[str]
    videos: int
    readable: int
    bad_files: list[dict[str, str]]      # {path, reason} per video that could not be read
    reference_split: str
    reference_clips: int
    deploy: str
    backend: str
    report_html: str
    report_json: str | None              # Evidently's results; None when no video could be read
    comparison: Comparison | None        # None when no video could be read
    kinds: dict[str, int] = field(default_factory=dict)             # the batch's readable clips per kind
    reference_kinds: dict[str, int] = field(default_factory=dict)   # the reference's (empty: an older profile)

    @property
    def drift(self) -> bool:
        return self.comparison is not None and self.comparison.alarms.drift

    @property
    def exit_code(self) -> int:
        return EXIT_DRIFT if self.drift else EXIT_BAD_INPUT if self.bad_files else EXIT_OK

    def to_dict(self) -> dict:
        text = describe(self)
        out = {"batch": self.batch, "inputs": self.inputs, "videos": self.videos, "readable": self.readable,
               "bad_files": self.bad_files, "kinds": self.kinds,
               "reference": {"split": self.reference_split, "clips": self.reference_clips,
                             "kinds": self.reference_kinds},
               "deploy": self.deploy, "backend": self.backend, "drift": self.drift,
               "reasons": list(text.reasons), "caveat": text.caveat}
        c = self.comparison
        if c is not None:
            a, t = c.alarms, c.thresholds
            out |= {"drifted_share": round(a.drifted_share, 4), "drifted_columns": list(a.drifted_columns),
                    "alarm_columns": list(a.beyond_chance),
                    "embedding": {"method": t.embedding.method, "score": c.embedding.score,
                                  "threshold": t.embedding.threshold, "drifted": a.embedding,
                                  "components": c.embedding.components},
                    "prediction": {"class_mix": asdict(c.class_mix), "confidence": asdict(c.confidence)},
                    "columns": {name: asdict(r) for name, r in c.columns.items()}, "thresholds": to_dict(t)}
        out["report"] = {"html": self.report_html} | ({"json": self.report_json} if self.report_json else {})
        out["exit_code"] = self.exit_code
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, raw: dict) -> "DriftSummary":
        comparison = None
        if "columns" in raw:
            prediction = raw["prediction"]
            comparison = Comparison(
                columns={name: ColumnDrift(**r) for name, r in raw["columns"].items()},
                class_mix=ClassMixDrift(**prediction["class_mix"]), confidence=ColumnDrift(**prediction["confidence"]),
                embedding=EmbeddingDrift(raw["embedding"]["score"], raw["embedding"]["components"]),
                thresholds=rules.thresholds_from_dict(raw["thresholds"]))
        return cls(batch=raw["batch"], inputs=raw["inputs"], videos=raw["videos"], readable=raw["readable"],
                   bad_files=raw["bad_files"], reference_split=raw["reference"]["split"],
                   reference_clips=raw["reference"]["clips"], deploy=raw["deploy"], backend=raw["backend"],
                   report_html=raw["report"]["html"], report_json=raw["report"].get("json"), comparison=comparison,
                   kinds=raw.get("kinds", {}), reference_kinds=raw["reference"].get("kinds", {}))

    @classmethod
    def from_json(cls, text: str) -> "DriftSummary":
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path: Path) -> "DriftSummary":
        return cls.from_json(Path(path).read_text())
