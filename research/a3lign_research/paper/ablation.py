"""Table 3: MAT on/off x JAS on/off, as the paper's text defines "off" (4.3, "Ablation Study of
Different Modules").

- MAT off: "a single learnable token": S = 1 sentence of T = 1 token per class, randomly
  initialised (the class description's first token is the same word for every class).
- JAS off: "the average method replaces JAS": the class vector is the mean of the sentence
  features and the video vector the mean of the frame features.
- JAS on without MAT: "dynamic processing is exclusively applied to the video": one sentence
  has no time axis, so only the video side gets the temporal encoder (DE_video, grown as in
  BAP stage 2).
- MAT + JAS: the full BAP ladder (fidelity.ladder), its final stage; and the same ladder with MAT
  randomly initialised instead of from the init text (Table 3's "MAT on" is text-initialised MAT).
The MAT-trained step of every row uses stage 1's epochs and lr.
"""
from __future__ import annotations

from a3lign_dfer.config.training import TrainingParams
from a3lign_dfer.model.a3lign import A3lignDFER
from a3lign_dfer.training import bap
from a3lign_dfer.training.trainer import Phase, StagePlan, fit
from a3lign_research.paper.fidelity import reports
from a3lign_research.paper.runs import Job, Workspace

ROW = "model"              # each recipe trains one Table 3 row
SINGLE_TOKEN = {"model": {"sentences": 1, "tokens": 1, "init": "random"}}


def _averaged(ws: Workspace, params: TrainingParams) -> A3lignDFER:
    """MAT trained with the mean on both sides (no temporal encoder anywhere)."""
    model = A3lignDFER(bap.initial_spec(params, ws.clip, text_encoder="mean"))
    model.init_mat(ws.clip, params.model.init, params.model.init_text, params.train.seed)
    plan = StagePlan({"mat"}, params.stage1.lr, [Phase(params.stage1.epochs)])
    return fit(model.to(ws.clip.device), ws.clip, ws.train, ws.val, plan, params.train, params.train.seed * 100,
               lambda row: None)[-1].model


def average(ws: Workspace, params: TrainingParams) -> dict[str, dict]:
    """Rows "neither" (with SINGLE_TOKEN) and "mat" (the params' S x T)."""
    return {ROW: reports(_averaged(ws, params), ws, params)}


def video_only(ws: Workspace, params: TrainingParams) -> dict[str, dict]:
    """Row "jas": the single token's class vectors, then DE_video grown against them (BAP stage 2)."""
    first = _averaged(ws, params)
    phases, _ = bap.train_stage("stage2", params, ws.clip, ws.train, ws.val, first)
    return {ROW: reports(phases[-1].model, ws, params)}


def jobs(seeds: tuple[int, ...], setting: dict) -> list[Job]:
    """The three rows beside MAT + JAS, and MAT + JAS with MAT randomly initialised (the whole BAP ladder), on
    `setting` (params overrides: the layout and loss val chose)."""
    single = {**setting, "model": {**setting.get("model", {}), **SINGLE_TOKEN["model"]}}
    random_mat = {**setting, "model": {**setting.get("model", {}), "init": "random"}}
    return ([Job("ablation:average", "neither", seed, single) for seed in seeds]
            + [Job("ablation:average", "mat", seed, setting) for seed in seeds]
            + [Job("ablation:video_only", "jas", seed, single) for seed in seeds]
            + [Job("fidelity:ladder", "both_random", seed, random_mat) for seed in seeds])
