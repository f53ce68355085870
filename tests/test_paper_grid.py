"""Figure 3's S x T grid as queued DVC experiments (research/a3lign_research/paper/mat_grid.py): a 2 x 1 grid queued and
run on the tiny pipeline, read back from the experiments' commits, drawn and tabled; a failing cell."""
import json
import sys
import time

import pytest
import yaml
from conftest import copy_repo, run_cmd
from matplotlib.image import imread

from a3lign_dfer.config.evaluation import GridConfig
from a3lign_research.seeds import stats
from a3lign_research.paper import mat_grid
from a3lign_research.paper.mat_grid import collect_grid, grid_heatmap, grid_markdown, queue_grid

GRID = GridConfig(sentences=(2, 4), tokens=(4,), seeds=(0,))


def made_up_result() -> dict:
    """A 2 x 2 grid over two seeds, as collect_grid returns it."""
    def cell(s, t, uars):
        return {"sentences": s, "tokens": t, "experiments": [],
                "uar": stats(uars), "war": stats(uars)}
    return {"sentences": [4, 16], "tokens": [16, 64], "seeds": [0, 1], "stage": "stage3", "val_clips": [240],
            "cells": [cell(4, 16, [0.30, 0.32]), cell(4, 64, [0.40, 0.40]), cell(16, 16, [0.35, 0.37]),
                      cell(16, 64, [0.50, 0.54])]}


def test_markdown_rows_are_tokens_largest_first_columns_sentences():
    md = grid_markdown(made_up_result()).splitlines()
    assert "Val UAR % at the end of BAP stage 3" in md[0] and "seeds 0, 1" in md[0] and "240 val clips" in md[0]
    assert md[2:] == ["| T \\ S | 4 | 16 |", "|---|---|---|",
                      "| 64 | 40.0 ± 0.0 | 52.0 ± 2.8 |", "| 16 | 31.0 ± 1.4 | 36.0 ± 1.4 |"]


def test_heatmap_is_written(tmp_path):
    png = grid_heatmap(made_up_result(), tmp_path / "fig" / "grid.png")
    assert png.is_file() and imread(png).shape[0] > 200


def test_queue_status_keeps_each_tasks_latest_state(monkeypatch, tmp_path):
    # `dvc queue status` can list a task twice while it moves on (seen: Running and Success); dates are
    # "07:00 AM" today and "Dec 01, 2026" before; a task without a name shows its date in that column.
    text = ("Task     Name              Created       Status\n"
            "9151467  grid-s4-t4-seed0  07:00 AM      Running\n"
            "b5f6f62  grid-s2-t4-seed0  Dec 01, 2026  Failed\n"
            "9151467  grid-s4-t4-seed0  07:00 AM      Success\n"
            "0a1b2c3                    07:01 AM      Queued\n"
            "\nWorker status: 0 active, 1 idle\n")
    monkeypatch.setattr(mat_grid, "_dvc", lambda repo, *args, check=True: text)
    tasks, worker = mat_grid._queue_status(tmp_path)
    assert tasks == {"9151467": ("grid-s4-t4-seed0", "Success"), "b5f6f62": ("grid-s2-t4-seed0", "Failed"),
                     "0a1b2c3": ("07:01", "Queued")}
    assert worker


def test_wait_rides_out_a_listing_that_misses_a_task_and_fails_one_that_stays_gone(monkeypatch, tmp_path, capsys):
    # Seen: a task moving from queued to running was missing from one `dvc queue status` listing.
    def listings(*statuses):
        seq = iter([({"aaaaaaa": ("grid-x", s)} if s else {}, True) for s in statuses])
        monkeypatch.setattr(mat_grid, "_queue_status", lambda repo: next(seq))

    listings("Queued", None, "Running", None, "Success")
    mat_grid._wait(tmp_path, {"aaaaaaa": "grid-x"}, 0, report_uar=False)
    assert "[grid] grid-x done (1/1)" in capsys.readouterr().out
    listings("Running", *[None] * mat_grid.MISSING_POLLS)
    with pytest.raises(RuntimeError, match="grid-x .* left the queue"):
        mat_grid._wait(tmp_path, {"aaaaaaa": "grid-x"}, 0, report_uar=False)


@pytest.fixture(scope="module")
def grid_repo(built_pipeline, tmp_path_factory):
    """A copy of the session's tiny pipeline: the grid's experiments restore data, crops and features from
    its DVC cache and run only training."""
    return copy_repo(built_pipeline[0], tmp_path_factory.mktemp("paper_grid") / "repo")


def test_queue_grid_runs_each_cell_as_an_experiment(grid_repo, tmp_path, capsys):
    start = time.perf_counter()
    names = queue_grid(grid_repo, GRID, poll_s=5)
    seconds = time.perf_counter() - start
    assert names == ["grid-s2-t4-seed0", "grid-s4-t4-seed0"]
    out = capsys.readouterr().out
    assert [line.split()[1] for line in out.splitlines() if " done (" in line] == names   # a line per cell
    print(f"2 cells queued and run in {seconds:.0f} s")
    shown = json.loads(run_cmd([sys.executable, "-m", "dvc", "exp", "show", "--json", "--no-pager"], grid_repo))
    exps = {e["name"]: e for base in shown for e in base.get("experiments") or []}
    assert {n: exps[n]["executor"]["state"] for n in names} == {n: "success" for n in names}

    result = collect_grid(grid_repo, GRID)
    head = run_cmd(["git", "rev-parse", "HEAD"], grid_repo).strip()
    assert [(c["sentences"], c["tokens"]) for c in result["cells"]] == [(2, 4), (4, 4)]
    for cell in result["cells"]:
        (run,) = cell["experiments"]
        assert run["rev"] == run_cmd(["git", "rev-parse", f"refs/exps/{head[:2]}/{head[2:]}/{run['name']}"],
                                     grid_repo).strip()
        # The cell's numbers are its own experiment's stage-3 report ...
        metrics = json.loads(run_cmd(["git", "show", f"{run['rev']}:reports/train/stage3/metrics.json"], grid_repo))
        assert cell["uar"]["mean"] == metrics["val"]["uar"] and cell["war"]["mean"] == metrics["val"]["war"]
        assert cell["uar"]["std"] == 0.0 and metrics["train_seed"] == 0
        # ... of a run with the cell's S and T.
        params = yaml.safe_load(run_cmd(["git", "show", f"{run['rev']}:params.yaml"], grid_repo))
        assert (params["model"]["sentences"], params["model"]["tokens"]) == (cell["sentences"], cell["tokens"])
        lock = yaml.safe_load(run_cmd(["git", "show", f"{run['rev']}:dvc.lock"], grid_repo))
        assert lock["stages"]["train_stage3"]["params"]["params.yaml"]["model"]["sentences"] == cell["sentences"]
    assert yaml.safe_load((grid_repo / "params.yaml").read_text())["model"]["sentences"] == 4   # workspace as it was

    png = grid_heatmap(result, tmp_path / "grid.png")
    assert png.is_file() and imread(png).shape[0] > 200
    md = grid_markdown(result)
    assert "| T \\ S | 2 | 4 |" in md and "training seed 0" in md
    uar = [f"{100 * c['uar']['mean']:.1f}" for c in result["cells"]]
    assert f"| 4 | {uar[0]} | {uar[1]} |" in md


def test_a_failed_cell_is_named_with_its_log(grid_repo):
    # T = 1000 does not fit CLIP's 77-token context: train_stage1 fails in the experiment.
    with pytest.raises(RuntimeError, match=r"grid-s2-t1000-seed0 \(task [0-9a-f]{7}\) failed") as err:
        queue_grid(grid_repo, GridConfig(sentences=(2,), tokens=(1000,), seeds=(0,)), poll_s=5)
    assert "CLIP's context" in str(err.value)
