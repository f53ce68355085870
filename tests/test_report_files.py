"""Every report contract reads the committed report back byte for byte and refuses another shape."""
from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

import pytest
from conftest import PARAMS, ROOT
from test_dvc_deps import dvc_stages

from a3lign_dfer.config.deploy import DEPLOY_DIR
from a3lign_dfer.config.model import EMBEDDED_CLIP
from a3lign_dfer.config.stage_table import STAGES
from a3lign_dfer.report_files import FACE_CROP, FILES, parse, to_json, training

REPORTS = ROOT / "reports"
CONTRACTS = [*FILES, *(training(row.name) for row in STAGES)]
IDS = [c.path for c in CONTRACTS]


@pytest.mark.parametrize("contract", CONTRACTS, ids=IDS)
def test_the_committed_report_round_trips(contract, tmp_path):
    text = (REPORTS / contract.path).read_text()
    report = contract.read(REPORTS)
    assert isinstance(report, contract.schema) and to_json(report) == json.loads(text)
    contract.write(tmp_path / "again.json", report)
    assert (tmp_path / "again.json").read_text() == json.dumps(json.loads(text), indent=2)


@pytest.mark.parametrize("contract", CONTRACTS, ids=IDS)
def test_an_unknown_or_missing_key_is_refused(contract):
    raw = json.loads((REPORTS / contract.path).read_text())
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['renamed_key'\]"):
        parse(contract.schema, json.dumps(raw | {"renamed_key": 1}), contract.path)
    required = next(f.name for f in dataclasses.fields(contract.schema) if f.default is dataclasses.MISSING)
    with pytest.raises(ValueError, match=rf"{contract.path}: missing key\(s\) \['{required}'\]"):
        parse(contract.schema, json.dumps({k: v for k, v in raw.items() if k != required}), contract.path)


def test_a_writer_with_a_renamed_key_fails_in_the_stage(tmp_path):
    raw = json.loads((REPORTS / FACE_CROP.path).read_text())
    raw["fps"] = raw.pop("frames_per_second")
    with pytest.raises(ValueError, match=r"face_crop writing face_crop.json: unknown key\(s\) \['fps'\]"):
        FACE_CROP.write(tmp_path / "face_crop.json", raw)
    assert not (tmp_path / "face_crop.json").exists()


def test_dvc_yaml_writes_each_report_where_its_contract_reads_it():
    stages = dvc_stages()
    for contract in CONTRACTS:
        body = stages.get(contract.writer) or next(s for s in stages.values()     # a training stage by its --stage
                                                   if f" {contract.writer.split()[-1]} " in f"{s['cmd']} ")
        written = [next(iter(m)) if isinstance(m, dict) else m for m in body.get("metrics", []) + body.get("outs", [])]
        assert f"reports/{contract.path}" in written or any(f"reports/{contract.path}".startswith(f"{w}/")
                                                            for w in written), (contract.writer, contract.path)


def test_dvc_yaml_writes_the_folders_the_code_knows_by_name():
    """models/deploy is export's output (predict, timeline, serve and drift read it by default); the small CLIP
    is pretrain_clip's, which params clip.model names by default (predict warns of a model on it)."""
    stages = dvc_stages()
    out = {name: dict(zip(*[iter(shlex.split(stages[name]["cmd"])[3:])] * 2))["--out"]
           for name in ("export", "pretrain_clip")}
    assert out == {"export": str(DEPLOY_DIR), "pretrain_clip": str(EMBEDDED_CLIP)}
    assert Path(PARAMS.clip.model) == EMBEDDED_CLIP
