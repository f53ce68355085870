"""Bidirectional Alignment training Paradigm (paper 3.4) as the rows of Table 4.

  stage1       Average|2    MAT + DE_text train; the video vector is the mean of frame features.
  stage2       2|2 -> 4|2   MAT + DE_text frozen (class vectors computed once); DE_video grows.
  stage2_text  4|4          DE_text grows to 4 and trains with MAT against the frozen DE_video.
  stage3       4 (JAS)|4    JAS = DE_video's first layers, shared by both streams, grown, with MAT.

The 4|4 row is in Table 4 but not in the paper's text, so what trains in it is our
reading: the text side (MAT + DE_text) re-aligns to the now order-aware video side,
the second direction of bidirectional alignment, mirroring stage 2. MAT carries
into stage 3; this DE_text does not, since JAS is built from DE_video (paper 3.3).

The two "All at once" rows train everything from scratch together, under the
same lr groups as BAP: `all_at_once_separate` (MAT + DE_text + DE_video, 4|4) and
`all_at_once_joint` (MAT + JAS, 4 (Joint)).
"""
from __future__ import annotations

from typing import Callable

import torch

from a3lign_dfer.config.stage_table import STAGES, stage
from a3lign_dfer.config.training import TrainingParams
from a3lign_dfer.data.feature_cache import FeatureSet
from a3lign_dfer.model.a3lign import A3lignDFER, ModelSpec
from a3lign_dfer.model.clip_backbone import FrozenCLIP
from a3lign_dfer.training.trainer import Phase, PhaseResult, StagePlan, fit


def initial_spec(params: TrainingParams, clip: FrozenCLIP, **encoders) -> ModelSpec:
    m = params.model
    return ModelSpec(
        classes=tuple(params.data.classes), sentences=m.sentences, tokens=m.tokens,
        text_width=clip.text_width, embed_dim=clip.embed_dim, frames=params.features.num_frames,
        heads=m.heads, mlp_ratio=m.mlp_ratio, dropout=m.dropout, temperature=m.temperature,
        text_layout=m.text_layout, **encoders,
    )


def rebuilt(model: A3lignDFER, spec: ModelSpec) -> A3lignDFER:
    """A model with a new architecture that keeps every weight the two share."""
    new = A3lignDFER(spec).to(model.mat.device)
    own = new.state_dict()
    new.load_state_dict({k: v for k, v in model.state_dict().items() if k in own}, strict=False)
    return new


def _phases(layers: tuple[int, ...], epochs: tuple[int, ...]) -> list[Phase]:
    return [Phase(e, d) for d, e in zip(layers, epochs)]


def _fresh(params: TrainingParams, clip: FrozenCLIP, **encoders) -> A3lignDFER:
    model = A3lignDFER(initial_spec(params, clip, **encoders))
    model.init_mat(clip, params.model.init, params.model.init_text, params.train.seed)
    return model


def stage1(params: TrainingParams, clip: FrozenCLIP, previous: A3lignDFER | None) -> tuple[A3lignDFER, StagePlan]:
    model = _fresh(params, clip, de_text_layers=params.model.de_text_layers)
    return model, StagePlan(stage("stage1").trains, params.stage1.lr, [Phase(params.stage1.epochs)])


def stage2(params: TrainingParams, clip: FrozenCLIP, previous: A3lignDFER) -> tuple[A3lignDFER, StagePlan]:
    if previous.spec.video_encoder != "mean":
        raise ValueError("stage 2 starts from a stage-1 checkpoint (video vector = mean of frames)")
    model = rebuilt(previous, previous.current_spec().evolve(video_encoder="de_video", de_video_layers=0))
    cfg = params.stage2
    return model, StagePlan(stage("stage2").trains, cfg.lr, _phases(cfg.layers, cfg.epochs), grows="de_video")


def stage2_text(params: TrainingParams, clip: FrozenCLIP, previous: A3lignDFER) -> tuple[A3lignDFER, StagePlan]:
    if previous.de_video is None or previous.de_text is None:
        raise ValueError("stage2_text grows DE_text against a trained DE_video: start it from a stage-2 checkpoint")
    cfg = params.stage2_text
    return rebuilt(previous, previous.current_spec()), StagePlan(stage("stage2_text").trains, cfg.lr,
                                                                  _phases(cfg.layers, cfg.epochs), grows="de_text")


def stage3(params: TrainingParams, clip: FrozenCLIP, previous: A3lignDFER) -> tuple[A3lignDFER, StagePlan]:
    cfg = params.stage3
    depth = previous.de_video.depth if previous.de_video is not None else 0
    if depth < cfg.init_layers:
        raise ValueError(f"stage 3 builds JAS from the first stage3.init_layers={cfg.init_layers} layers of DE_video, "
                         f"but the checkpoint it starts from has a DE_video of {depth} layer(s): start it from a "
                         "stage-2 (or stage2_text) checkpoint whose DE_video is at least that deep")
    jas = previous.de_video.truncated(cfg.init_layers)
    spec = previous.current_spec().evolve(text_encoder="jas", video_encoder="jas", de_text_layers=0,
                                          de_video_layers=0, jas_layers=jas.depth)
    model = rebuilt(previous, spec)
    model.jas.load_state_dict(jas.state_dict())
    return model, StagePlan(stage("stage3").trains, cfg.lr, _phases(cfg.layers, cfg.epochs), grows="jas")


def all_at_once_separate(params: TrainingParams, clip: FrozenCLIP, previous: None) -> tuple[A3lignDFER, StagePlan]:
    cfg = params.all_at_once
    model = _fresh(params, clip, video_encoder="de_video", de_text_layers=cfg.layers, de_video_layers=cfg.layers)
    return model, StagePlan(stage("all_at_once_separate").trains, cfg.lr, [Phase(cfg.epochs)])


def all_at_once_joint(params: TrainingParams, clip: FrozenCLIP, previous: None) -> tuple[A3lignDFER, StagePlan]:
    cfg = params.all_at_once
    model = _fresh(params, clip, text_encoder="jas", video_encoder="jas", jas_layers=cfg.layers)
    return model, StagePlan(stage("all_at_once_joint").trains, cfg.lr, [Phase(cfg.epochs)])


Builder = Callable[[TrainingParams, FrozenCLIP, "A3lignDFER | None"], tuple[A3lignDFER, StagePlan]]
BUILDERS: dict[str, Builder] = {row.name: globals()[row.name] for row in STAGES}   # one builder per table row


def train_stage(stage_name: str, params: TrainingParams, clip: FrozenCLIP, train: FeatureSet, val: FeatureSet,
                previous: A3lignDFER | None, log: Callable[[dict], None] = lambda row: None
                ) -> tuple[list[PhaseResult], StagePlan]:
    """One stage from its builder: the val-best model of each phase (the last is the stage's) and its plan."""
    seed = params.train.seed * 100 + stage(stage_name).seed_offset
    torch.manual_seed(seed)  # new layers and positions draw from it: same seed, same model
    model, plan = BUILDERS[stage_name](params, clip, previous)
    return fit(model.to(clip.device), clip, train, val, plan, params.train, seed, log), plan
