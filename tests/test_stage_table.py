"""dvc.yaml's training stages are exactly the rows of config/stage_table.py."""
from __future__ import annotations

import shlex

import pytest
from conftest import PARAMS
from test_dvc_deps import dvc_stages

from a3lign_dfer.config.stage_table import ABLATIONS, FINAL, LADDER, STAGES, stage
from a3lign_dfer.config.training import TrainingParams
from a3lign_dfer.training import bap


def train_commands() -> dict[str, dict]:
    """The `--flag value` pairs of every dvc.yaml stage that runs the train command, by its --stage."""
    found = {}
    for name, body in dvc_stages().items():
        words = shlex.split(body["cmd"])
        if words[2] == "a3lign_dfer.commands.train":
            flags = dict(zip(words[3::2], words[4::2]))
            found[flags["--stage"]] = {"dvc_stage": name, "flags": flags, "deps": body["deps"],
                                       "params": body.get("params", [])}
    return found


def test_dvc_yaml_trains_exactly_the_table_each_from_its_predecessor():
    commands = train_commands()
    assert sorted(commands) == sorted(row.name for row in STAGES)
    for row in STAGES:
        c = commands[row.name]
        assert c["flags"]["--out"] == f"models/{row.name}" and c["flags"]["--live"] == f"reports/train/{row.name}"
        assert c["flags"].get("--init") == (f"models/{row.starts_from}" if row.starts_from else None)
        assert (f"models/{row.starts_from}" in c["deps"]) == bool(row.starts_from)
        assert row.section in c["params"]


def test_the_table_reads_as_the_paper():
    assert LADDER == ("stage1", "stage2", "stage2_text", "stage3") and FINAL == "stage3"
    assert ABLATIONS == ("all_at_once_separate", "all_at_once_joint")
    # Fixed seed offsets, one per stage: the committed models were trained with these.
    assert {row.name: row.seed_offset for row in STAGES} == {
        "stage1": 0, "stage2": 1, "stage2_text": 2, "stage3": 3, "all_at_once_separate": 4, "all_at_once_joint": 5}
    assert stage("stage2").trains == {"de_video"}                # BAP stage 2 freezes MAT and DE_text
    assert set(bap.BUILDERS) == {row.name for row in STAGES}
    with pytest.raises(ValueError, match="unknown training stage 'stage4'"):
        stage("stage4")


def test_lr_mat_is_required_exactly_where_the_table_trains_mat():
    from dataclasses import fields, replace

    view = {f.name: getattr(PARAMS, f.name) for f in fields(TrainingParams)}
    with pytest.raises(ValueError, match="stage2 freezes MAT"):
        TrainingParams(**view | {"stage2": replace(PARAMS.stage2, lr=replace(PARAMS.stage2.lr, mat=0.01))})
    with pytest.raises(ValueError, match="stage3 trains MAT: give stage3.lr.mat"):
        TrainingParams(**view | {"stage3": replace(PARAMS.stage3, lr=replace(PARAMS.stage3.lr, mat=None))})
