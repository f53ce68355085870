"""How this project reads the paper, checked on val: the Eq. 2 text layout, the loss, "all at once".

Each comparison runs its variants over `paper.seeds` and keeps or changes a default
by the val UAR of the final BAP stage (mean +- std); a difference inside the spread
is called equal and the paper's reading is kept. Test numbers are reported beside,
never used.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import replace

import torch

from a3lign_dfer.config.stage_table import ABLATIONS, FINAL, LADDER
from a3lign_dfer.config.training import TrainingParams
from a3lign_dfer.evaluation.report import split_report
from a3lign_dfer.model.a3lign import A3lignDFER
from a3lign_dfer.model.clip_backbone import FrozenCLIP
from a3lign_dfer.training import bap
from a3lign_research.paper.runs import Job, Workspace, spread

# The plain reading of "all at once" (paper 4.3): random MAT, plain cross-entropy, no clipping, constant lr.
PLAIN = {"model": {"init": "random"}, "train": {"class_weight": "none", "grad_clip": None, "lr_schedule": "constant"}}
# Each of our choices switched to the plain reading (the loss is plain cross-entropy in ours too, since val
# chose it): the switch that alone loses what the plain reading loses is the choice that removes the collapse.
SWITCHES = {"random MAT": {"model": {"init": "random"}}, "no clipping": {"train": {"grad_clip": None}},
            "constant lr": {"train": {"lr_schedule": "constant"}}}
CLIP_TEMPERATURE = 0.07     # CLIP's own initial temperature, against the 0.01 of the CLIP-based DFER peers


def _merged(*overrides: dict) -> dict:
    out: dict = {}
    for o in overrides:
        for section, values in o.items():
            out[section] = {**out.get(section, {}), **values}
    return out


def one_at_a_time(all_at_once_lr: dict[str, float]) -> dict[str, dict]:
    """All at once with ours, each switch alone, each pair of switches, and the plain reading (all of them);
    then the controls: the plain reading with clipping kept (is clipping enough?), and no clipping at a tenth
    of the lr or at CLIP's temperature (is it clipping, or the lr of 0.1 and the temperature of 0.01 that
    clipping tames?)."""
    pairs = {f"{a} + {b}": _merged(SWITCHES[a], SWITCHES[b]) for a, b in itertools.combinations(SWITCHES, 2)}
    tenth = {group: lr / 10 for group, lr in all_at_once_lr.items()}
    return {"ours": {}, **SWITCHES, **pairs, "plain": PLAIN,
            "plain, clipping kept": {"model": PLAIN["model"], "train": {k: v for k, v in PLAIN["train"].items()
                                                                      if k != "grad_clip"}},
            "no clipping, lr / 10": _merged(SWITCHES["no clipping"], {"all_at_once": {"lr": tenth}}),
            f"no clipping, temperature {CLIP_TEMPERATURE:g}": _merged(SWITCHES["no clipping"],
                                                                    {"model": {"temperature": CLIP_TEMPERATURE}})}


# The BAP ladder with the switches that cost all at once the most: does BAP itself need them?
BAP_SWITCHES = {"ours": {}, "no clipping": SWITCHES["no clipping"], "constant lr": SWITCHES["constant lr"]}


def reports(model: A3lignDFER, ws: Workspace, params: TrainingParams) -> dict:
    seeds = params.shuffle_check.seeds
    return {"val": split_report(model, ws.clip, ws.val, seeds), "test": split_report(model, ws.clip, ws.test, seeds)}


def ladder(ws: Workspace, params: TrainingParams) -> dict[str, dict]:
    """The BAP ladder in memory, as the dvc stages run it: every stage's val and test reports."""
    rows, previous = {}, None
    for name in LADDER:
        phases, _ = bap.train_stage(name, params, ws.clip, ws.train, ws.val, previous)
        previous = phases[-1].model
        rows[name] = reports(previous, ws, params)
    return rows


def all_at_once(ws: Workspace, params: TrainingParams) -> dict[str, dict]:
    """Table 4's two all-at-once rows, from scratch."""
    return {name: reports(bap.train_stage(name, params, ws.clip, ws.train, ws.val, None)[0][-1].model, ws, params)
            for name in ABLATIONS}


def jobs(seeds: tuple[int, ...], layout: str | None = None) -> dict[str, list[Job]]:
    """The comparisons' jobs; the loss comparison runs on `layout` (the layout val chose), so it comes
    second: None leaves it out."""
    def variant(recipe: str, name: str, overrides: dict) -> list[Job]:
        return [Job(f"fidelity:{recipe}", name, seed, overrides) for seed in seeds]

    out = {"layout": variant("ladder", "compact", {"model": {"text_layout": "compact"}})
           + variant("ladder", "paper", {"model": {"text_layout": "paper"}}),
           "all_at_once": variant("all_at_once", "ours", {}) + variant("all_at_once", "plain", PLAIN)}
    if layout is not None:
        out["loss"] = [job for weight in ("inverse", "none") for job in variant(
            "ladder", weight, {"model": {"text_layout": layout}, "train": {"class_weight": weight}})]
    return out


def one_at_a_time_jobs(seeds: tuple[int, ...], variants: dict[str, dict]) -> list[Job]:
    """All at once under each variant, then the BAP ladder under each of BAP_SWITCHES (variants "BAP: ...")."""
    return ([Job("fidelity:all_at_once", name, seed, overrides) for name, overrides in variants.items()
             for seed in seeds]
            + [Job("fidelity:ladder", f"BAP: {name}", seed, overrides) for name, overrides in BAP_SWITCHES.items()
               for seed in seeds])


def choose(results: list[dict], a: str, b: str) -> dict:
    """Val UAR of the final stage for variants a (the paper's reading) and b: b only where it is ahead by
    more than the larger of the two stds."""
    va, vb = spread(results, a, FINAL, "val"), spread(results, b, FINAL, "val")
    margin = max(va["std"], vb["std"])
    chosen = b if vb["mean"] - va["mean"] > margin else a
    return {"val_uar": {a: va, b: vb}, "difference": vb["mean"] - va["mean"], "margin": margin, "chosen": chosen,
            "within_spread": abs(vb["mean"] - va["mean"]) <= margin,
            "test_uar": {v: spread(results, v, FINAL, "test") for v in (a, b)}}


def step_seconds(clip: FrozenCLIP, params: TrainingParams, layout: str, steps: int = 3) -> float:
    """Seconds of one training step's text branch (forward + backward through CLIP's text encoder for
    every MAT sentence, then DE_text), median of `steps` after a warm-up."""
    params = replace(params, model=replace(params.model, text_layout=layout))
    model, _ = bap.stage1(params, clip, None)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        model.class_vectors(model.text_features(clip)).sum().backward()
        times.append(time.perf_counter() - start)
        model.zero_grad(set_to_none=True)
    return float(torch.tensor(times[1:]).median())
