"""Bidirectional Alignment training Paradigm (paper 3.4, Table 4) as three stage runs.

  1. MAT + DE_text train; the video vector is the mean of frame features.
  2. MAT + DE_text frozen (class vectors computed once); DE_video grows layer by layer.
  3. JAS = DE_video's first layers, shared by both streams, grown and trained with MAT.

`all_at_once` (the ablation) trains MAT + a full-depth JAS from scratch in stage 1
(params all_at_once); stages 2 and 3 then hand the checkpoint on.
"""
from __future__ import annotations

from a3lign_dfer.config import Params
from a3lign_dfer.model.a3lign import A3lignDFER, ModelSpec
from a3lign_dfer.model.clip_backbone import FrozenCLIP
from a3lign_dfer.training.trainer import Phase, StagePlan


def initial_spec(params: Params, clip: FrozenCLIP, joint: bool) -> ModelSpec:
    m = params.model
    return ModelSpec(
        classes=tuple(params.data.classes), sentences=m.sentences, tokens=m.tokens,
        text_width=clip.text_width, embed_dim=clip.embed_dim, frames=params.features.num_frames,
        heads=m.heads, mlp_ratio=m.mlp_ratio, dropout=m.dropout, temperature=m.temperature,
        text_encoder="jas" if joint else "de_text", video_encoder="jas" if joint else "mean",
        de_text_layers=0 if joint else m.de_text_layers,
    )


def rebuilt(model: A3lignDFER, spec: ModelSpec) -> A3lignDFER:
    """A model with a new architecture that keeps every weight the two share."""
    new = A3lignDFER(spec).to(model.mat.device)
    own = new.state_dict()
    new.load_state_dict({k: v for k, v in model.state_dict().items() if k in own}, strict=False)
    return new


def _grow(name: str):
    return lambda model, depth: getattr(model, name).grow(depth)


def stage1(params: Params, clip: FrozenCLIP) -> tuple[A3lignDFER, StagePlan]:
    joint = params.train.schedule == "all_at_once"
    model = A3lignDFER(initial_spec(params, clip, joint))
    model.init_mat(clip, params.model.init, params.model.init_text, params.base.seed)
    if joint:
        cfg = params.all_at_once
        plan = StagePlan({"mat", "jas"}, cfg.lr, [Phase(cfg.epochs, cfg.layers)], _grow("jas"))
    else:
        plan = StagePlan({"mat", "de_text"}, params.stage1.lr, [Phase(params.stage1.epochs)])
    return model, plan


def stage2(params: Params, previous: A3lignDFER) -> tuple[A3lignDFER, StagePlan]:
    model = rebuilt(previous, previous.current_spec().evolve(video_encoder="de_video", de_video_layers=0))
    phases = [Phase(e, d) for d, e in zip(params.stage2.layers, params.stage2.epochs)]
    return model, StagePlan({"de_video"}, params.stage2.lr, phases, _grow("de_video"))


def stage3(params: Params, previous: A3lignDFER) -> tuple[A3lignDFER, StagePlan]:
    if previous.de_video is None:
        raise ValueError("stage 3 builds JAS from DE_video: start it from a stage-2 checkpoint")
    jas = previous.de_video.truncated(params.stage3.init_layers)
    spec = previous.current_spec().evolve(text_encoder="jas", video_encoder="jas", de_text_layers=0,
                                          de_video_layers=0, jas_layers=jas.depth)
    model = rebuilt(previous, spec)
    model.jas.load_state_dict(jas.state_dict())
    phases = [Phase(e, d) for d, e in zip(params.stage3.layers, params.stage3.epochs)]
    return model, StagePlan({"mat", "jas"}, params.stage3.lr, phases, _grow("jas"))
