"""The champion/challenger gate on given scores (pass, a UAR drop beyond the margin, one class dropping, no prod
yet, feedback below its minimum), its params and report contract, scoring on stand-in models, and the rollback's
choice of version on a real git repo with GTO tags. The release end to end is tests/test_loop.py."""
from __future__ import annotations

import contextlib
import json
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import PARAMS, ROOT, run_cli

from a3lign_dfer.config.params import load_params
from a3lign_dfer.errors import ConfigError
from a3lign_dfer.inference.video_input import InputError
from a3lign_dfer.registry.challenger import (
    FEEDBACK,
    TEST,
    SetScores,
    challenger_markdown,
    judge,
    reasons,
)
from a3lign_dfer.registry.rollback import (
    NoPreviousVersion,
    StageEvent,
    choose_previous,
    holders,
)
from a3lign_dfer.registry.scoring import Clip, feedback_clips, score
from a3lign_dfer.report_files import RELEASE_CHALLENGER, ModelScores

CLASSES = ("happy", "sad", "fear")
CFG = replace(PARAMS.release.challenger, max_uar_drop=0.05, max_class_recall_drop=0.3, min_feedback_clips=20)


def scores(*recall: float, war: float = 0.8) -> ModelScores:
    return ModelScores(war, sum(recall) / len(recall), dict(zip(CLASSES, recall)))


PROD = scores(0.9, 0.8, 0.6)


def comparison(candidate: ModelScores, prod: ModelScores | None = PROD, feedback: SetScores | None = None,
               version: str | None = "v0.1.0"):
    sets = [SetScores(TEST, 60, 0, candidate, prod if version else None)]
    sets.append(feedback or SetScores(FEEDBACK, 0, 0, None, None, "no labelled feedback (labels.csv not found)"))
    return judge(sets, CFG, "c" * 64, version, "p" * 64 if version else None)


def test_a_candidate_within_the_margins_passes():
    report = comparison(scores(0.88, 0.82, 0.45))             # UAR -0.0433, fear -0.15: both within the limits
    assert report.verdict == "passed" and reasons(report) == []
    test = report.sets[0]
    assert test.gated and test.failures == [] and test.prod == PROD
    page = challenger_markdown(report)
    assert "# Champion/challenger: passed" in page and "| metric | prod v0.1.0 | candidate | delta | limit | result |" \
        in page
    assert "| recall fear | 0.6000 | 0.4500 | -0.1500 | drop <= 0.3 | pass |" in page
    assert "## labelled feedback: 0 clip(s), not gated" in page and "no labelled feedback" in page
    assert comparison(PROD).verdict == "passed"                                    # equal to prod: no drop at all


def test_a_uar_drop_beyond_the_margin_is_refused_naming_it():
    report = comparison(scores(0.85, 0.75, 0.55))             # every class -0.05, UAR -0.05 exactly: the limit
    assert report.verdict == "passed"
    report = comparison(scores(0.84, 0.74, 0.54))             # UAR -0.06
    assert report.verdict == "refused"
    assert reasons(report) == ["test split: UAR 0.7067 is 0.0600 below prod's 0.7667 (max_uar_drop 0.05)"]
    assert "| UAR | 0.7667 | 0.7067 | -0.0600 | drop <= 0.05 | FAIL |" in challenger_markdown(report)


def test_one_class_dropping_beyond_its_limit_is_refused_even_when_uar_holds():
    report = comparison(scores(1.0, 1.0, 0.25))               # UAR up (0.75 vs 0.7667 is -0.0167), fear -0.35
    assert report.verdict == "refused"
    assert reasons(report) == [("test split: fear recall 0.2500 is 0.3500 below prod's 0.6000 "
                               "(max_class_recall_drop 0.3)")]
    page = challenger_markdown(report)
    assert "| recall fear | 0.6000 | 0.2500 | -0.3500 | drop <= 0.3 | FAIL |" in page
    assert "| recall happy | 0.9000 | 1.0000 | +0.1000 | drop <= 0.3 | pass |" in page
    assert "Refused: fear recall" in page


def test_with_no_version_in_prod_only_the_fixed_gate_applies():
    report = comparison(scores(0.1, 0.1, 0.1), version=None)  # however poor: the fixed gate judges it alone
    assert report.verdict == "no_prod" and report.prod_version is None
    assert not any(s.gated for s in report.sets) and reasons(report) == []
    page = challenger_markdown(report)
    assert "first release (no version in prod)" in page and "only the fixed gate applies" in page
    assert "| metric | candidate |" in page and "| UAR | 0.1000 |" in page


def test_feedback_below_its_minimum_is_reported_not_gated_and_gates_from_the_minimum():
    worse = scores(0.2, 0.2, 0.2)
    small = SetScores(FEEDBACK, CFG.min_feedback_clips - 1, 2, worse, PROD)
    report = comparison(PROD, feedback=small)
    feedback = report.sets[1]
    assert report.verdict == "passed" and not feedback.gated and feedback.failures == []
    assert f"fewer than min_feedback_clips ({CFG.min_feedback_clips})" in feedback.note
    page = challenger_markdown(report)
    assert f"## labelled feedback: {CFG.min_feedback_clips - 1} clip(s), 2 unreadable, not gated" in page
    assert "| UAR | 0.7667 | 0.2000 | -0.5667 | drop <= 0.05 | - |" in page       # shown, not judged
    report = comparison(PROD, feedback=replace(small, clips=CFG.min_feedback_clips))
    assert report.verdict == "refused" and report.sets[1].gated
    assert reasons(report)[0].startswith("labelled feedback: UAR 0.2000")


def test_models_with_other_classes_are_not_compared():
    report = judge([SetScores(TEST, 60, 0, PROD, None, "not compared: prod v0.1.0 has classes [...]")], CFG,
                   "c" * 64, "v0.1.0", "p" * 64, comparable=False)
    assert report.verdict == "not_comparable" and not report.sets[0].gated


def test_the_report_round_trips_through_its_contract(tmp_path):
    report = comparison(scores(1.0, 1.0, 0.25), feedback=SetScores(FEEDBACK, 3, 1, PROD, PROD))
    path = tmp_path / RELEASE_CHALLENGER.path
    RELEASE_CHALLENGER.write(path, report)
    assert RELEASE_CHALLENGER.read(tmp_path) == report
    raw = json.loads(path.read_text())
    assert raw["verdict"] == "refused" and "note" not in raw["sets"][0]           # None fields left out
    raw["sets"][0]["renamed"] = 1
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['renamed'\]"):
        RELEASE_CHALLENGER.read(tmp_path)


@pytest.mark.parametrize("override, message", [
    ({"challenger": {"max_uar_drop": -0.1}}, "release.challenger: max_uar_drop"),
    ({"challenger": {"min_feedback_clips": 0}}, "min_feedback_clips >= 1"),
    ({"promote_to_prod": "always"}, "release.promote_to_prod must be one of"),
    ({"challenger": {"max_drop": 0.1}}, r"unknown key\(s\) \['max_drop'\] in 'release.challenger'"),
])
def test_release_params_are_checked(override, message):
    assert PARAMS.release.promote_to_prod == "explicit"           # prod stays explicit unless params say so
    with pytest.raises(ConfigError, match=message):
        load_params(ROOT / "params.yaml", {"release": override})


# Scoring, with stand-in models: what matters here is that every model sees the same readable clips.
class StandIn:
    """A Predictor's interface as scoring uses it: a preprocessing spec and a backend (frames -> probabilities)."""

    def __init__(self, spec: str, answer):
        self.spec, self.answer, self.calls = spec, answer, []

    def run(self, frames: np.ndarray):
        self.calls.append(len(frames))
        probabilities = np.stack([np.eye(3)[self.answer(x)] for x in frames])
        return probabilities, probabilities, probabilities


def test_score_reads_each_clip_once_per_spec_and_skips_an_unreadable_one_for_every_model():
    clips = [Clip(Path(f"clip{i}"), i % 3) for i in range(7)]
    reads = []

    def read(clip, spec):
        reads.append((clip.source.name, spec))
        if clip.source.name == "clip4":
            raise InputError("clip4: no face found", "no_face")
        return np.full((2, 1), int(clip.source.name[-1]), np.float32)          # the clip's number as its frames

    truthful = StandIn("spec-a", lambda x: int(x[0, 0]) % 3)
    constant = StandIn("spec-a", lambda x: 0)
    other = StandIn("spec-b", lambda x: int(x[0, 0]) % 3)
    scored = score({"candidate": truthful, "prod": constant, "other": other}, clips, read, batch=3)
    assert scored.skipped == 1 and scored.labels.tolist() == [0, 1, 2, 0, 2, 0]
    # Each readable clip once per spec (candidate and prod share spec-a); clip4 fails at its first read.
    assert sorted(reads) == sorted([(f"clip{i}", s) for i in (0, 1, 2, 3, 5, 6) for s in ("spec-a", "spec-b")]
                                   + [("clip4", "spec-a")])
    assert truthful.calls == constant.calls == other.calls == [3, 2, 1]         # batches of 3, clip4 left out
    assert scored.predicted["candidate"].tolist() == scored.labels.tolist()
    assert scored.scores("candidate", CLASSES) == ModelScores(1.0, 1.0, {c: 1.0 for c in CLASSES})
    assert scored.scores("prod", CLASSES) == ModelScores(0.5, 1 / 3, {"happy": 1.0, "sad": 0.0, "fear": 0.0})


def test_feedback_clips_are_the_test_rows_and_none_is_no_error(tmp_path):
    assert feedback_clips(tmp_path / "absent", CLASSES).clips == []
    assert "not found" in feedback_clips(tmp_path / "absent", CLASSES).note
    (tmp_path / "labels.csv").write_text("path,label,split,clip_id\n")              # an empty export: header only
    empty = feedback_clips(tmp_path, CLASSES)
    assert empty.clips == [] and "has no test rows" in empty.note
    (tmp_path / "labels.csv").write_text("path,label,split,clip_id\nvideos/a.mp4,Sad,test,a\n"
                                         "videos/b.mp4,happy,train,b\nvideos/c.mp4,fear,test,c\n"
                                         "videos/d.mp4,contempt,test,d\n")
    found = feedback_clips(tmp_path, CLASSES)
    assert found.clips == [Clip(tmp_path / "videos/a.mp4", 1), Clip(tmp_path / "videos/c.mp4", 2)]
    assert found.note == "1 row(s) with a label outside the model's classes left out"


# Rollback: the choice of version, on event lists and on a real git repo with GTO tags.
def events(*pairs: str) -> list[StageEvent]:
    return [StageEvent("unassign" if p.startswith("-") else "assign", p.lstrip("-")) for p in pairs]


def test_rollback_chooses_the_previous_holder_and_never_a_withdrawn_one():
    assert choose_previous(events("v1", "v2", "v3"), "m") == ("v3", "v2")
    assert choose_previous(events("v1", "v2", "v3", "-v3", "v2"), "m") == ("v2", "v1")   # after one rollback
    assert holders(events("v1", "v2", "v1")) == ["v2", "v1"]                         # v1 assigned again: latest
    assert choose_previous(events("v1", "v2", "v1"), "m") == ("v1", "v2")
    with pytest.raises(NoPreviousVersion, match="v1 is the only version holding prod .v2 withdrawn"):
        choose_previous(events("v1", "v2", "-v2", "v1"), "m")
    with pytest.raises(NoPreviousVersion, match="no version of m holds prod: nothing to roll back"):
        choose_previous([], "m")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def _next_second() -> None:
    """GTO orders a stage's tags by time in whole seconds: a test that tags faster than a person keeps them apart."""
    time.sleep(1.02 - time.time() % 1)


@pytest.fixture
def registry_repo(tmp_path):
    """A git repo with three commits, each registered (v0.1.0 ... v0.3.0) and assigned prod in turn."""
    from gto import api

    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.name", "test")
    _git(repo, "config", "user.email", "test@example.com")
    for i in (1, 2, 3):
        (repo / "model.txt").write_text(f"model {i}")
        _git(repo, "add", "model.txt")
        _git(repo, "commit", "-qm", f"model {i}")
        api.register(str(repo), "a3lign-dfer", ref="HEAD", version=f"v0.{i}.0")
        _next_second()
        api.assign(str(repo), "a3lign-dfer", "prod", version=f"v0.{i}.0")
    return repo


def _release_cli(repo: Path, capsys, *argv: str) -> tuple[int, str, str]:
    from a3lign_dfer.cli import main

    capsys.readouterr()
    with contextlib.chdir(repo):
        code = main(["--params", str(ROOT / "params.yaml"), "release", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_rollback_command_walks_prod_back_through_gto_history(registry_repo, capsys):
    from gto import api

    from a3lign_dfer.registry.rollback import stage_events
    from a3lign_dfer.registry.versions import stages_held

    repo = str(registry_repo)
    assert stages_held(repo, "a3lign-dfer") == {"prod": "v0.3.0"}
    out = run_cli(["--params", str(ROOT / "params.yaml"), "release", "--rollback"], registry_repo, capsys)
    assert out.strip() == "a3lign-dfer prod: v0.3.0 -> v0.2.0"
    assert stages_held(repo, "a3lign-dfer") == {"prod": "v0.2.0"}
    # GTO's own history records it: v0.3.0 unassigned, v0.2.0 assigned again, with the reason.
    history = [(e["event"], e["version"]) for e in api.history(repo, "a3lign-dfer", ascending=True)
               if e["stage"] == "prod"][-2:]
    assert sorted(history) == [("assignment", "v0.2.0"), ("unassignment", "v0.3.0")]
    assert "rollback: prod v0.3.0 -> v0.2.0" in _git(registry_repo, "tag", "-n1", "--list", "a3lign-dfer#prod*")

    assert _release_cli(registry_repo, capsys, "--rollback")[1].strip() == "a3lign-dfer prod: v0.2.0 -> v0.1.0"
    code, out, err = _release_cli(registry_repo, capsys, "--rollback")
    assert code == 2 and out == ""
    assert err.strip() == ("a3lign_dfer release: error: no previous prod version of a3lign-dfer to roll back to: "
                           "v0.1.0 is the only version holding prod (v0.2.0, v0.3.0 withdrawn by earlier rollbacks "
                           "or unassigned)")
    assert stages_held(repo, "a3lign-dfer") == {"prod": "v0.1.0"}
    # A withdrawn version comes back by a release that assigns it again (force: it held prod once).
    _next_second()
    api.assign(repo, "a3lign-dfer", "prod", version="v0.3.0", force=True)
    assert stages_held(repo, "a3lign-dfer") == {"prod": "v0.3.0"}
    assert holders(stage_events(repo, "a3lign-dfer")) == ["v0.1.0", "v0.3.0"]


def test_rollback_without_a_version_in_prod_says_so(tmp_path, capsys):
    repo = tmp_path / "empty"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-q", "--allow-empty", "-m", "x")
    code, _, err = _release_cli(repo, capsys, "--rollback")
    assert code == 2 and "no version of a3lign-dfer holds prod: nothing to roll back" in err
