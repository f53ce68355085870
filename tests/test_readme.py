"""README's measured numbers are the ones on disk: every generated block (between `<!-- NAME:start -->` and
`<!-- NAME:end -->`) equals what its command renders from the report files it wrote, as committed (or, before
the commit, as in the workspace). So a committed hand-edited report fails here until the block is regenerated,
and `make repro` before `make test` (which rewrites stage times, and on another CPU the numbers) does not."""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from a3lign_dfer.evaluation.paper.experiments import readme_block as paper_block
from a3lign_dfer.evaluation.results_table import results_markdown
from a3lign_dfer.reporting.readme_blocks import markers

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def _benchmark(script: str, report: str):
    """The block's rendering from its benchmark's JSON; empty while the benchmark has not published one."""
    module = __import__(script)
    return lambda reports: module.markdown(json.loads((reports / report).read_text())) \
        if (reports / report).exists() else ""


# block name -> (the command that writes it, how it renders from a reports folder)
BLOCKS = {
    "results": ("python -m a3lign_dfer results", results_markdown),
    "serving": ("python benchmarks/serving.py", _benchmark("serving", "benchmarks/serving.json")),
    "service-load": ("python benchmarks/service_load.py", _benchmark("service_load", "benchmarks/service_load.json")),
    "video-cost": ("python benchmarks/video_cost.py", _benchmark("video_cost", "benchmarks/video_cost.json")),
    "numerics-cost": ("python benchmarks/numerics_cost.py", _benchmark("numerics_cost", "benchmarks/numerics_cost.json")),
    "drift": ("python benchmarks/drift.py", _benchmark("drift", "benchmarks/drift.json")),
    "scale": ("python benchmarks/scale.py", _benchmark("scale", "benchmarks/scale.json")),
    "text-layout": ("python benchmarks/text_layout.py", _benchmark("text_layout", "benchmarks/text_layout.json")),
    "folds-cost": ("python benchmarks/folds_cost.py", _benchmark("folds_cost", "benchmarks/folds_cost.json")),
    "dfew-real-size": ("python benchmarks/dfew_real_size.py", _benchmark("dfew_real_size", "benchmarks/dfew_real_size.json")),
    "int8": ("python benchmarks/int8.py", _benchmark("int8", "benchmarks/int8.json")),
    "timeline": ("python benchmarks/timeline.py", _benchmark("timeline", "benchmarks/timeline.json")),
    "setup-times": ("python benchmarks/setup_times.py", _benchmark("setup_times", "benchmarks/setup_times.json")),
    "paper": ("make paper (python -m a3lign_dfer paper)", paper_block),
}


def block(text: str, name: str) -> str:
    start, end = markers(name)
    return text.split(start, 1)[1].split(end, 1)[0].strip("\n")


def test_every_block_in_readme_is_known():
    assert set(re.findall(r"<!-- ([\w-]+):start -->", (ROOT / "README.md").read_text())) == set(BLOCKS)


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
    command, render = BLOCKS[name]
    readme = block((ROOT / "README.md").read_text(), name)
    assert readme == render(committed_reports) or readme == render(ROOT / "reports"), \
        f"README block {name!r} differs from the report files (committed and in the workspace): regenerate it " \
        f"with `{command}`"


def test_a_hand_edited_report_number_fails_the_check(tmp_path, committed_reports):
    reports = tmp_path / "reports"
    for name in ("face_crop.json", "pretrain_clip.json", "features.json", "seeds/summary.json", "eval/metrics.json",
                 "shuffle/metrics.json", *(p.relative_to(committed_reports)
                                           for p in committed_reports.glob("train/*/metrics.json"))):
        (reports / name).parent.mkdir(parents=True, exist_ok=True)
        (reports / name).write_text((committed_reports / name).read_text())
    assert block((ROOT / "README.md").read_text(), "results") == results_markdown(reports)   # the copy renders alike
    crop = json.loads((reports / "face_crop.json").read_text())
    crop["frames_per_second"] += 100
    (reports / "face_crop.json").write_text(json.dumps(crop))
    assert block((ROOT / "README.md").read_text(), "results") != results_markdown(reports)


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
    _, render = BLOCKS["drift"]
    report = tmp_path / "reports/benchmarks/drift.json"
    report.parent.mkdir(parents=True)
    record = json.loads((committed_reports / "benchmarks/drift.json").read_text())
    report.write_text(json.dumps(record))
    assert block((ROOT / "README.md").read_text(), "drift") == render(tmp_path / "reports")   # the copy renders alike
    edit(record)
    report.write_text(json.dumps(record))
    assert block((ROOT / "README.md").read_text(), "drift") != render(tmp_path / "reports")
