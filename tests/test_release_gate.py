"""The champion/challenger gate and rollback end to end, on a copy of the session's tiny pipeline (conftest
`built_pipeline`): a first release to prod, a challenger equal to prod that passes (the release flow, its Prefect
artifact), a challenger crippled by a params change (only its stages re-run) that the gate refuses with prod
untouched, and a rollback of prod to the version before. The verdicts on given numbers and the rollback's choice
on GTO tags are tests/test_challenger.py; the fixed gate's thresholds are tests/test_flows.py's."""
from __future__ import annotations

import contextlib
import shutil

import pandas as pd
import yaml
from conftest import copy_repo, run_cli, run_cmd, stages_run
from test_flows import _set_release, _task_runs_and_artifacts

from a3lign_dfer.orchestration.dvc_runner import run_dvc
from a3lign_dfer.registry.versions import stages_held
from a3lign_dfer.report_files import EVALUATION, RELEASE_CHALLENGER

ARTIFACT = "a3lign-dfer"
# Margins for 9 test clips: one clip moves a class's recall by a third or more, so the UAR decides here.
CHALLENGER = {"max_uar_drop": 0.02, "max_class_recall_drop": 1.0, "min_feedback_clips": 3}
# The crippled challenger: stage 3 (the final model) trained at a learning rate of 50 (params: 0.01 and 0.1).
CRIPPLED_STAGE3_LR = {"mat": 50.0, "encoder": 50.0}
CRIPPLED_RERUNS = ["train_stage3", "evaluate", "shuffle_check", "export", "report_page"]


def _feedback_from_test_videos(repo, count: int = 4) -> None:
    """data/feedback as `feedback export` writes it (Contract 2): a few of the benchmark's test videos as labelled
    feedback held out (`test`), one training row the gate must not score, and one unreadable video."""
    raw = pd.read_parquet(repo / "data/raw/manifest.parquet")
    picked = raw[raw["split"] == "test"].head(count)
    videos = repo / "data/feedback/videos"
    videos.mkdir(parents=True)
    rows = []
    for row in picked.itertuples():
        shutil.copy(repo / "data/raw" / row.path, videos / f"{row.clip_id}.mp4")
        rows.append({"path": f"videos/{row.clip_id}.mp4", "label": row.label_name, "split": "test",
                     "clip_id": row.clip_id})
    (videos / "broken.mp4").write_text("not a video")
    rows.append({"path": "videos/broken.mp4", "label": "happy", "split": "test", "clip_id": "broken"})
    rows.append({"path": rows[0]["path"], "label": rows[0]["label"], "split": "train", "clip_id": "again"})
    pd.DataFrame(rows).to_csv(repo / "data/feedback/labels.csv", index=False)


def _commit(repo, message: str) -> None:
    run_cmd(["git", "commit", "-qam", message, "--allow-empty"], repo)


def _release_exit(repo, capsys, *argv: str) -> tuple[int, str]:
    """`release ARGV` in this process: its exit code and stderr (run_cli wants 0)."""
    from a3lign_dfer.cli import main

    capsys.readouterr()
    with contextlib.chdir(repo):
        code = main(["release", *argv])
    return code, capsys.readouterr().err


def test_a_worse_challenger_is_refused_an_equal_one_passes_and_rollback_restores_prod(built_pipeline,
                                                                                        prefect_backend, tmp_path,
                                                                                        capsys):
    from flows.release import release

    built, _, _ = built_pipeline
    repo = copy_repo(built, tmp_path / "repo")
    assert run_cmd(["git", "tag", "--list"], repo).split() == []          # the registry's versions are this test's
    reports = repo / "reports"
    evaluation = EVALUATION.read(reports)
    # The fixed gate open (its thresholds are test_flows'), so the comparison with prod alone decides.
    _set_release(repo, min_test_uar=0.0, min_shuffled_uar_drop=-1.0, challenger=CHALLENGER, promote_to_prod="explicit")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    if "extra_sources" in params["data"]:     # the gate reads the feedback; training on it (a re-run) is not tested here
        params["data"]["extra_sources"] = []
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _feedback_from_test_videos(repo)
    run_dvc(["repro"], repo)                  # where the feedback is a stage's dependency, the build records it
    _commit(repo, "release: the fixed gate open, test margins; labelled feedback")

    # v1, a first release: no prod to compare with, only the fixed gate; the candidate is still scored.
    out = run_cli(["release", "--prod"], repo, capsys)
    assert "Champion/challenger: no_prod" in out
    assert stages_held(str(repo), ARTIFACT) == {"staging": "v0.1.0", "prod": "v0.1.0"}
    first = RELEASE_CHALLENGER.read(reports)
    test, feedback = first.sets
    assert first.verdict == "no_prod" and first.prod_version is None and not test.gated and test.prod is None
    # The test split from the stored crops is evaluate's test split, through the ONNX graph instead of PyTorch on
    # cached (fp16) features: at most a near-tie apart.
    assert test.clips == evaluation.num_test_clips and test.skipped == 0
    assert abs(test.candidate.war - evaluation.war) <= 1 / evaluation.num_test_clips + 1e-9
    assert feedback.clips == 4 and feedback.skipped == 1 and feedback.candidate is not None
    assert "first release" in (reports / "release/challenger.md").read_text()

    # v2, a challenger equal to prod (the same model, a new commit), by the release flow; after_gate promotes it.
    _set_release(repo, promote_to_prod="after_gate")
    _commit(repo, "release: promote after the gates")
    state = release(str(repo), return_state=True)
    assert state.is_completed(), state.message
    assert state.result()["version"] == "v0.2.0"
    assert stages_held(str(repo), ARTIFACT) == {"staging": "v0.2.0", "prod": "v0.2.0"}
    equal = RELEASE_CHALLENGER.read(reports)
    assert equal.verdict == "passed" and equal.prod_version == "v0.1.0"
    assert equal.prod_sha256 == equal.candidate_sha256 == first.candidate_sha256
    for s in equal.sets:                                  # identical inputs, identical model: identical numbers
        assert s.gated and s.failures == [] and s.candidate == s.prod
    assert equal.sets[0].candidate == test.candidate and equal.sets[1].candidate == feedback.candidate
    _, artifacts = _task_runs_and_artifacts(state)
    table = artifacts["release-challenger"]
    assert "# Champion/challenger: passed" in table and "| metric | prod v0.1.0 | candidate | delta | limit |" in table
    assert f"| UAR | {test.candidate.uar:.4f} | {test.candidate.uar:.4f} | +0.0000 | drop <= 0.02 | pass |" in table
    assert "## labelled feedback: 4 clip(s), 1 unreadable, gated" in table

    # A crippled challenger: a params change re-runs only the final stage and what follows it.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["stage3"]["lr"] = CRIPPLED_STAGE3_LR
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert sorted(stages_run(run_dvc(["repro"], repo).stdout)) == sorted(CRIPPLED_RERUNS)
    _commit(repo, "stage3 at a crippling learning rate")
    tags = run_cmd(["git", "tag", "--list"], repo).split()

    state = release(str(repo), return_state=True)
    assert state.is_failed() and "champion/challenger gate refused the candidate against prod v0.2.0" in state.message
    worse = RELEASE_CHALLENGER.read(reports)
    measured = worse.sets[0]
    assert worse.verdict == "refused" and measured.gated and measured.prod == test.candidate
    assert measured.candidate.uar < measured.prod.uar - CHALLENGER["max_uar_drop"]     # really worse, measured
    assert measured.failures[0].startswith(f"UAR {measured.candidate.uar:.4f} is ")
    _, artifacts = _task_runs_and_artifacts(state)
    assert "# Champion/challenger: REFUSED" in artifacts["release-challenger"]
    assert "| UAR |" in artifacts["release-challenger"] and "| FAIL |" in artifacts["release-challenger"]
    assert "Refused: UAR" in (reports / "release/challenger.md").read_text()
    # The command refuses it alike, in one line with exit 2; nothing was registered, prod is untouched.
    code, err = _release_exit(repo, capsys)
    assert code == 2 and err.startswith("a3lign_dfer release: error: champion/challenger gate refused")
    assert "test split: UAR" in err and "reports/release/challenger.md" in err
    assert run_cmd(["git", "tag", "--list"], repo).split() == tags
    assert stages_held(str(repo), ARTIFACT) == {"staging": "v0.2.0", "prod": "v0.2.0"}

    # Rollback: prod back to the version before (v0.2.0 withdrawn); once more, nothing is left to go back to.
    assert run_cli(["release", "--rollback"], repo, capsys).strip() == f"{ARTIFACT} prod: v0.2.0 -> v0.1.0"
    assert stages_held(str(repo), ARTIFACT)["prod"] == "v0.1.0"
    code, err = _release_exit(repo, capsys, "--rollback")
    assert code == 2 and "no previous prod version of a3lign-dfer" in err
