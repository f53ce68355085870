"""The docs' measured numbers are the ones on disk: every generated block of README and docs/ (between
`<!-- NAME:start -->` and `<!-- NAME:end -->`, listed once in `a3lign_research.blocks.BLOCKS`) equals what its
command renders from the report files it wrote, as committed (or, before the commit, as in the workspace). So a
committed hand-edited report fails here until the block is regenerated, and `make repro` before `make test`
(which rewrites stage times, and on another CPU the numbers) does not."""
from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from a3lign_research.blocks import BLOCKS, read_block

ROOT = Path(__file__).parents[1]
PAGES = sorted({ROOT / "README.md", *(ROOT / "docs").rglob("*.md")})


def test_every_block_in_the_docs_is_in_the_table_once_on_its_page():
    found = [(name, page.relative_to(ROOT).as_posix()) for page in PAGES
             for name in re.findall(r"<!-- ([\w-]+):start -->", page.read_text())]
    assert sorted(found) == sorted((b.name, b.page) for b in BLOCKS.values())


@pytest.fixture(scope="module")
def committed_reports(tmp_path_factory) -> Path:
    """reports/ as committed at HEAD (the files the blocks were generated from, whatever ran since)."""
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD", "reports"], cwd=ROOT, capture_output=True,
                             check=True).stdout
    out = tmp_path_factory.mktemp("committed")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(out, filter="data")
    return out / "reports"


@pytest.mark.parametrize("name", BLOCKS)
def test_generated_block_matches_the_report_files(name, committed_reports):
    b = BLOCKS[name]
    shown = read_block((ROOT / b.page).read_text(), name)
    assert shown == b.render(committed_reports) or shown == b.render(ROOT / "reports"), \
        f"{b.page} block {name!r} differs from the report files (committed and in the workspace): regenerate it " \
        f"with `{b.command}` (or `python -m a3lign_research.blocks {name}` after a wording change)"


def test_a_hand_edited_report_number_fails_the_check(tmp_path, committed_reports):
    reports = tmp_path / "reports"
    for name in ("face_crop.json", "pretrain_clip.json", "features.json", "seeds/summary.json", "eval/metrics.json",
                 "shuffle/metrics.json", *(p.relative_to(committed_reports)
                                           for p in committed_reports.glob("train/*/metrics.json"))):
        (reports / name).parent.mkdir(parents=True, exist_ok=True)
        (reports / name).write_text((committed_reports / name).read_text())
    results = BLOCKS["results"]
    assert read_block((ROOT / results.page).read_text(), "results") == results.render(reports)   # the copy renders alike
    crop = json.loads((reports / "face_crop.json").read_text())
    crop["frames_per_second"] += 100
    (reports / "face_crop.json").write_text(json.dumps(crop))
    assert read_block((ROOT / results.page).read_text(), "results") != results.render(reports)


def _held_out_clean(record: dict) -> dict:
    return next(r for r in record["batches"] if r["set"] == "held_out" and r["kind"] == "clean")


def _flip_a_false_alarm(record: dict) -> None:
    row = _held_out_clean(record)
    row["fired"]["artifact"] = [] if row["fired"]["artifact"] else ["share"]


def _lower_the_smallest_selection_p(record: dict) -> None:
    min(filter(lambda r: r["set"] == "selection", record["batches"]), key=lambda r: r["min_p"])["min_p"] /= 10


def _change_a_chosen_threshold(record: dict) -> None:
    record["choice"]["share"]["chosen"] += 0.05


def _change_the_artifact(record: dict) -> None:
    record["deploy"]["manifest_sha256"] = "0" * 64


@pytest.mark.parametrize("edit", [_flip_a_false_alarm, _lower_the_smallest_selection_p, _change_a_chosen_threshold,
                                  _change_the_artifact])
def test_a_hand_edited_drift_number_fails_the_check(tmp_path, edit, committed_reports):
    drift = BLOCKS["drift"]
    report = tmp_path / "reports" / drift.report
    report.parent.mkdir(parents=True)
    record = json.loads((committed_reports / "benchmarks/drift.json").read_text())
    report.write_text(json.dumps(record))
    shown = read_block((ROOT / drift.page).read_text(), "drift")
    assert shown == drift.render(tmp_path / "reports")   # the copy renders alike
    edit(record)
    report.write_text(json.dumps(record))
    assert shown != drift.render(tmp_path / "reports")


def _seed_numbers(summary: dict) -> dict[str, str]:
    """The numbers the prose of README and docs/results.md quotes, from the 5-seed summary."""
    from a3lign_research.seeds import plus_minus

    row = {r["stage"]: r for r in summary["table4"]}
    final = summary["final"]
    gap = {name: f"{100 * (final['uar']['mean'] - row[name]['uar']['mean']):.1f}"
           for name in ("all_at_once_separate", "all_at_once_joint")}
    return {"gap_separate": gap["all_at_once_separate"], "gap_joint": gap["all_at_once_joint"],
            "shuffled_drop": f"{100 * final['shuffled_uar_drop']['mean']:.1f}",
            "uar_separate": plus_minus(row["all_at_once_separate"]["uar"]),
            "uar_joint": plus_minus(row["all_at_once_joint"]["uar"]), "uar_final": plus_minus(final["uar"]),
            "war_separate": f"{100 * row['all_at_once_separate']['war']['mean']:.1f}",
            "war_joint": f"{100 * row['all_at_once_joint']['war']['mean']:.1f}",
            "war_final": f"{100 * final['war']['mean']:.1f}"}


# Prose that quotes the 5-seed tables, with the numbers as the summary gives them ({name}: _seed_numbers).
PROSE = {"README.md": ["the two all-at-once rows end {gap_separate} and {gap_joint} UAR points below the final model",
                       "shuffling the frames costs the final model {shuffled_drop} UAR points"],
         "docs/results.md": ["test UAR {uar_separate} (separate encoders, 4|4) and {uar_joint} (4 (Joint)) against "
                             "{uar_final}, gaps of {gap_separate} and {gap_joint} points",
                             "WAR is lower too ({war_separate} and {war_joint} against {war_final})"]}


@pytest.mark.parametrize("page", PROSE)
def test_prose_quotes_the_seed_tables(page, committed_reports):
    """Hand-written sentences that quote numbers say what the committed 5-seed summary says (a republish that
    moves them fails here until the prose follows)."""
    numbers = _seed_numbers(json.loads((committed_reports / "seeds/summary.json").read_text()))
    text = " ".join((ROOT / page).read_text().split())
    for sentence in PROSE[page]:
        assert sentence.format(**numbers) in text, f"{page}: expected {sentence.format(**numbers)!r}"


# Prose that reads the collapse report in words: each sentence with the findings (experiments.collapse_findings,
# bap_over_best) it states, as the committed reports/paper/collapse.json gives them.
COLLAPSE_PROSE = {"README.md": ["(without gradient clipping they do, and so does BAP)"],
                  "docs/results.md": ["gradient clipping is the one of our choices that keeps all at once from "
                                      "collapsing", "on the joint row, random-init MAT and the plain reading with clipping kept are "
                                      "above ours beyond the spread", "Neither a tenth of the lr nor CLIP's temperature rescues "
                                      "training without clipping. BAP needs clipping too", "BAP stays above the "
                                      "best all-at-once variant of each row beyond the spread"]}


def test_prose_on_the_collapse_says_what_its_findings_say(committed_reports):
    from a3lign_research.paper.experiments import bap_over_best, collapse_findings

    report = json.loads((committed_reports / "paper/collapse.json").read_text())
    found = collapse_findings(report)
    assert found["alone"] == ["no clipping"] and found["pairs"] == []
    assert found["sufficient"] == ["plain, clipping kept"] and found["recover"] == []
    assert found["bap_needs"] == ["BAP: no clipping"]
    assert {"random MAT (all_at_once_joint)", "plain, clipping kept (all_at_once_joint)"} <= set(found["beat_ours"])
    assert all(name.endswith("(all_at_once_joint)") for name in found["beat_ours"])
    assert all(line.endswith("above it: holds") for line in bap_over_best(report))
    for page, sentences in COLLAPSE_PROSE.items():
        text = " ".join((ROOT / page).read_text().split())
        assert all(sentence in text for sentence in sentences), page
