"""The paper's experiments on a tiny cache: jobs on a real 2-worker cluster, the same numbers wherever
they run, the comparisons' rules and the files `paper` writes."""
import json

import pytest
import yaml

from a3lign_dfer.config.schema import read
from a3lign_research.blocks import BLOCKS, cpu_name
from a3lign_research.paper import ablation, fidelity, runs
from a3lign_research.paper.experiments import (Setup, figure3_orderings, run_collapse, run_fidelity, run_table2,
                                                    run_table3, verdict, write_index)
from a3lign_dfer.config.params import load_params
from conftest import ROOT, TINY_PIPELINE, write_toy_cache


def _setup(tmp_path, tiny_clip_dir, scale, seeds=(0, 1)):
    raw = read(ROOT / "params.yaml", {**TINY_PIPELINE, "clip": {"model": str(tiny_clip_dir)}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    params = load_params(tmp_path / "params.yaml")
    from a3lign_dfer.model.clip_backbone import FrozenCLIP

    write_toy_cache(tmp_path / "features", FrozenCLIP.load(str(tiny_clip_dir)).embed_dim,
                    {"train": 40, "val": 20, "test": 20})
    from dataclasses import replace

    paper = replace(params.paper, seeds=seeds)
    return Setup(paper, scale, str(tmp_path / "params.yaml"), str(tmp_path / "features"), "", str(tmp_path),
                 tmp_path / "reports/paper")


def test_a_job_gives_the_same_rows_in_this_process_and_on_a_worker(tmp_path, tiny_clip_dir, scale):
    setup = _setup(tmp_path, tiny_clip_dir, scale)
    job = setup.jobs([runs.Job("ablation:video_only", "jas", 1, ablation.SINGLE_TOKEN)])[0]
    remote = runs.run_jobs([job], scale, "test")[0]
    local = runs.run_job(job)
    assert remote["rows"] == local["rows"]
    report = local["rows"][ablation.ROW]
    assert set(report) == {"val", "test"} and report["test"]["num_samples"] == 20
    assert 0 <= report["val"]["uar"] <= 1 and "uar_drop" in report["val"]["shuffled"]


def test_fidelity_and_table3_write_their_tables(tmp_path, tiny_clip_dir, scale):
    setup = _setup(tmp_path, tiny_clip_dir, scale)
    result = run_fidelity(setup)
    on_disk = json.loads((setup.out / "fidelity.json").read_text())
    assert on_disk["layout"]["chosen"] == result["layout"]["chosen"] in ("paper", "compact")
    for name in ("layout", "loss"):
        choice = result[name]
        a, b = list(choice["val_uar"])
        # the paper's reading (a) stays unless b is ahead by more than the larger std
        ahead = choice["val_uar"][b]["mean"] - choice["val_uar"][a]["mean"] > choice["margin"]
        assert choice["chosen"] == (b if ahead else a)
        assert len(choice["val_uar"][a]["values"]) == 2
    assert set(result["all_at_once"]) == {"ours", "plain"}
    md = (setup.out / "fidelity.md").read_text()
    assert "Eq. 2 text layout" in md and "all_at_once_joint" in md

    collapse = run_collapse(setup)
    variants = list(collapse["rows"])
    assert variants == list(collapse["variants"]) and {"ours", "plain", "no clipping + constant lr",
                                                       "plain, clipping kept", "no clipping, lr / 10"} <= set(variants)
    assert collapse["variants"]["no clipping, lr / 10"]["all_at_once"]["lr"]["encoder"] == pytest.approx(
        load_params(setup.params_path).all_at_once.lr.encoder / 10)
    assert collapse["rows"]["ours"] == result["all_at_once"]["ours"]      # the same jobs: run once, same numbers
    assert list(collapse["bap"]) == ["BAP: ours", "BAP: no clipping", "BAP: constant lr"]
    assert all(set(row) == {"val", "test"} for row in collapse["bap"].values())
    collapse_md = (setup.out / "collapse.md").read_text()
    assert "Switches that alone lose beyond the spread" in collapse_md and "| BAP: no clipping |" in collapse_md
    lead = {row: 100 * (collapse["bap"]["BAP: constant lr"]["test"]["uar"]["mean"] -
                        collapse["rows"]["constant lr"][row]["test"]["uar"]["mean"]) for row in collapse["rows"]["ours"]}
    assert (f"constant lr: all_at_once_separate {lead['all_at_once_separate']:+.1f} (spread " in collapse_md and
            f"all_at_once_joint {lead['all_at_once_joint']:+.1f} (spread " in collapse_md)
    assert "The best all-at-once variant of each row (test UAR): all_at_once_separate: " in collapse_md

    table3 = run_table3(setup)
    assert set(table3["rows"]) == {"neither", "mat", "jas", "both", "both_random"}
    assert table3["rows"]["both_random"] != table3["rows"]["both"]        # MAT from random, not from the init text
    # MAT + JAS is the ladder the layout comparison trained with the chosen layout: the same numbers
    chosen = result["layout"]["chosen"]
    final = result["loss_rows"][result["loss"]["chosen"]]["stage3"]       # the ladder on the chosen layout and loss
    assert table3["rows"]["both"] == final and table3["setting"]["model"]["text_layout"] == chosen
    assert "| ✓ | ✓ |" in (setup.out / "table3.md").read_text()
    assert "| ✓ (random init) | ✓ |" in (setup.out / "table3.md").read_text()

    table2 = run_table2(setup)
    assert list(table2["rows"]) == ["zero_shot", "coop", "cocoop", "linear_probe", "a3lign"]
    assert table2["rows"]["a3lign"] == final
    assert "| CoCoOp |" in (setup.out / "table2.md").read_text()

    page = tmp_path / BLOCKS["paper"].page
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("# x\n<!-- paper:start -->\nSTALE-BLOCK\n<!-- paper:end -->\n")
    index = write_index(setup, tmp_path)
    claims = [line.strip("| ").split(" | ") for line in index.splitlines() if line.startswith("| Table")]
    # Table 2's three orderings, Table 3's four, BAP vs two all-at-once rows, the ladder's three steps, shuffle
    assert len(claims) == 3 + 4 + 2 + 3 + 1
    assert all(c[2] in VERDICTS and (c[4] in VERDICTS or c[3:] == ["-", "-"]) for c in claims), claims
    block = page.read_text()
    assert "](reports/paper/collapse.md)" in block and "](reports/paper/table2.md)" in block
    assert "STALE-BLOCK" not in block and f"Measured on {cpu_name()}" in block


VERDICTS = ("holds", "holds in the mean, within the spread", "does not hold")


def test_figure3_is_judged_on_its_best_cell_and_on_equal_parameters_with_more_sentences():
    def cell(s, t, uar):
        return {"sentences": s, "tokens": t, "uar": {"mean": uar, "std": 0.01}, "war": {"mean": uar, "std": 0.01}}

    grid = {"sentences": [4, 16], "tokens": [16, 64],
            "cells": [cell(4, 16, 0.70), cell(4, 64, 0.86), cell(16, 16, 0.80), cell(16, 64, 0.90)]}
    judged = {o.claim: o.cells() for o in figure3_orderings(grid)}
    assert len(judged) == 3 + 1                                    # the best cell over the other three; one equal pair
    equal = judged["Figure 3 (val): equal parameters, more sentences: S=16, T=16 above S=4, T=64"]
    assert equal == ["80.0 ± 1.0 vs 86.0 ± 1.0", "does not hold"] * 2


def test_an_ordering_holds_only_beyond_the_spread():
    assert verdict({"mean": 0.8, "std": 0.01}, {"mean": 0.7, "std": 0.02}) == "holds"
    assert verdict({"mean": 0.71, "std": 0.02}, {"mean": 0.7, "std": 0.01}) == "holds in the mean, within the spread"
    assert verdict({"mean": 0.7, "std": 0.0}, {"mean": 0.7, "std": 0.0}) == "does not hold"



def test_each_comparison_variant_sets_what_it_compares_and_equal_settings_are_one_job(tmp_path, tiny_clip_dir, scale):
    setup = _setup(tmp_path, tiny_clip_dir, scale, seeds=(0,))
    jobs = fidelity.jobs((0,), "paper")
    weights = {job.variant: runs.job_params(setup.jobs([job])[0]).train.class_weight for job in jobs["loss"]}
    assert weights == {"inverse": "inverse", "none": "none"}       # whatever params.yaml's default is
    layouts = {job.variant: runs.job_params(setup.jobs([job])[0]).model.text_layout for job in jobs["layout"]}
    assert layouts == {"compact": "compact", "paper": "paper"}
    # the paper layout at params.yaml's class weight is one of the loss variants: the same job, trained once
    default = runs.job_params(setup.jobs([jobs["layout"][1]])[0]).train.class_weight
    same = [job for job in jobs["loss"] if job.variant == default]
    assert runs.key(setup.jobs(same)[0]) == runs.key(setup.jobs([jobs["layout"][1]])[0])
    assert runs.key(setup.jobs(jobs["loss"])[0]) != runs.key(setup.jobs(jobs["loss"])[1])


def test_each_all_at_once_control_resolves_to_what_its_name_says(tmp_path, tiny_clip_dir, scale):
    setup = _setup(tmp_path, tiny_clip_dir, scale, seeds=(0,))
    ours = load_params(setup.params_path)
    lr = ours.all_at_once.lr
    variants = fidelity.one_at_a_time({"encoder": lr.encoder, "mat": lr.mat})
    resolved = {job.variant: runs.job_params(setup.jobs([job])[0])
                for job in fidelity.one_at_a_time_jobs((0,), variants)}
    kept = resolved["plain, clipping kept"]
    assert kept.train.grad_clip == ours.train.grad_clip and kept.model.init == "random"
    assert kept.train.lr_schedule == "constant" and resolved["plain"].train.grad_clip is None
    pair = resolved["random MAT + no clipping"]
    assert pair.model.init == "random" and pair.train.grad_clip is None and pair.train.lr_schedule == ours.train.lr_schedule
    tenth = resolved["no clipping, lr / 10"]
    assert tenth.all_at_once.lr.encoder == pytest.approx(lr.encoder / 10) and tenth.train.grad_clip is None
    assert resolved[f"no clipping, temperature {fidelity.CLIP_TEMPERATURE:g}"].model.temperature == 0.07
    assert resolved["BAP: constant lr"].train.lr_schedule == "constant"
