"""The training stages: one row each, read by training, evaluation, reports and the config checks (it is
configuration, a table with no code of the stages, so it lives with the params sections that check it).

BAP (paper 3.4) is the ladder stage1 -> stage2 -> stage2_text -> stage3, each starting
from the previous checkpoint; the two all-at-once rows are Table 4's ablations, trained
from scratch. A stage's seed is `train.seed * 100 + seed_offset`: the offset is fixed
per stage, so adding a stage re-seeds no other. dvc.yaml's `train_*` stages must match
this table (tests/test_stage_table.py). Adding a stage: a row here, a builder in
`training/bap.py`, its params section and its dvc.yaml entry.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainingStage:
    name: str                      # `train --stage <name>`, models/<name>, reports/train/<name>
    section: str                   # the params.yaml section it reads
    starts_from: str | None        # the stage whose checkpoint it continues (None: from scratch)
    trains: frozenset[str]         # parameter groups it trains (the rest is frozen)
    seed_offset: int
    title: str
    ladder: bool = True            # a BAP rung (Table 4's ladder) rather than an ablation


STAGES = (
    TrainingStage("stage1", "stage1", None, frozenset({"mat", "de_text"}), 0,
                  "stage 1: MAT + DE_text, frame-mean video (Average|2)"),
    TrainingStage("stage2", "stage2", "stage1", frozenset({"de_video"}), 1,
                  "stage 2: DE_video grown, MAT + DE_text frozen"),
    TrainingStage("stage2_text", "stage2_text", "stage2", frozenset({"mat", "de_text"}), 2,
                  "stage 2 text: DE_text grown with MAT, DE_video frozen (4|4)"),
    TrainingStage("stage3", "stage3", "stage2_text", frozenset({"mat", "jas"}), 3,
                  "stage 3: JAS grown, trained with MAT (4 (JAS)|4)"),
    TrainingStage("all_at_once_separate", "all_at_once", None, frozenset({"mat", "de_text", "de_video"}), 4,
                  "all at once: MAT + DE_text + DE_video from scratch (4|4)", ladder=False),
    TrainingStage("all_at_once_joint", "all_at_once", None, frozenset({"mat", "jas"}), 5,
                  "all at once: MAT + JAS from scratch (4 (Joint))", ladder=False),
)
BY_NAME = {stage.name: stage for stage in STAGES}
LADDER = tuple(stage.name for stage in STAGES if stage.ladder)
ABLATIONS = tuple(stage.name for stage in STAGES if not stage.ladder)
FINAL = LADDER[-1]                 # the model that is evaluated, exported and served


def stage(name: str) -> TrainingStage:
    if name not in BY_NAME:
        raise ValueError(f"unknown training stage {name!r}; known: {list(BY_NAME)}")
    return BY_NAME[name]
