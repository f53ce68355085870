"""A3lign-DFER: MAT through the frozen CLIP text encoder, temporal encoders, cosine logits.

The module holds only the trainable parts (MAT, DE_text, DE_video, JAS); the frozen
CLIP is passed in where needed. Which encoders exist is recorded in a ModelSpec,
so a checkpoint rebuilds its exact architecture from meta.json alone.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from a3lign_dfer.config.model import TEXT_LAYOUTS
from a3lign_dfer.model.clip_backbone import FrozenCLIP
from a3lign_dfer.model.dynamic_encoder import DynamicEncoder

TEXT_ENCODERS = ("mean", "de_text", "jas")     # mean: the average of the S sentences (paper Table 3)
VIDEO_ENCODERS = ("mean", "de_video", "jas")


@dataclass(frozen=True)
class ModelSpec:
    classes: tuple[str, ...]
    sentences: int
    tokens: int
    text_width: int
    embed_dim: int
    frames: int
    heads: int
    mlp_ratio: int
    dropout: float
    temperature: float
    text_encoder: str = "de_text"
    video_encoder: str = "mean"
    de_text_layers: int = 0
    de_video_layers: int = 0
    jas_layers: int = 0
    text_layout: str = "compact"       # checkpoints from before the paper layout existed ran compact

    def __post_init__(self) -> None:
        if self.text_layout not in TEXT_LAYOUTS:
            raise ValueError(f"text_layout must be one of {TEXT_LAYOUTS}, got {self.text_layout!r}")
        if self.text_encoder not in TEXT_ENCODERS or self.video_encoder not in VIDEO_ENCODERS:
            raise ValueError(f"unknown encoders {self.text_encoder!r}/{self.video_encoder!r}")
        if (self.text_encoder == "jas") != (self.video_encoder == "jas"):
            raise ValueError("JAS is shared: text and video must both use it or neither")

    def evolve(self, **changes) -> "ModelSpec":
        return replace(self, **changes)


class A3lignDFER(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        c, s, t, w = len(spec.classes), spec.sentences, spec.tokens, spec.text_width
        self.mat = nn.Parameter(torch.zeros(c, s, t, w))
        max_len = max(spec.sentences, spec.frames)
        make = lambda depth: DynamicEncoder(spec.embed_dim, max_len, spec.heads, spec.mlp_ratio, spec.dropout, depth)  # noqa: E731
        self.de_text = make(spec.de_text_layers) if spec.text_encoder == "de_text" else None
        self.de_video = make(spec.de_video_layers) if spec.video_encoder == "de_video" else None
        self.jas = make(spec.jas_layers) if spec.text_encoder == "jas" else None

    # ---- construction helpers -------------------------------------------------
    def current_spec(self) -> ModelSpec:
        """The spec with the encoders' depths as they are now (they grow in training)."""
        depth = lambda enc: enc.depth if enc is not None else 0  # noqa: E731
        return self.spec.evolve(de_text_layers=depth(self.de_text), de_video_layers=depth(self.de_video),
                                jas_layers=depth(self.jas))

    def init_mat(self, clip: FrozenCLIP, init: str, init_text: str, seed: int) -> None:
        """Random tokens, or each class's description tokens followed by random tokens.

        The description is jittered by a tenth of the random init so the S sentences
        never start identical: identical sentences get identical gradients forever.
        """
        gen = torch.Generator().manual_seed(seed)
        std = clip.token_embeddings(torch.arange(100)).std().item()
        mat = torch.randn(self.mat.shape, generator=gen) * std
        if init == "text":
            for ci, name in enumerate(self.spec.classes):
                ids = clip.tokenizer(init_text.format(name), add_special_tokens=False)["input_ids"][: self.spec.tokens]
                mat[ci, :, : len(ids)] = clip.token_embeddings(torch.tensor(ids)).cpu() + 0.1 * mat[ci, :, : len(ids)]
        with torch.no_grad():
            self.mat.copy_(mat)

    def set_trainable(self, parts: set[str]) -> None:
        """Freeze everything except the named parts ('mat', 'de_text', 'de_video', 'jas')."""
        known = {"mat", "de_text", "de_video", "jas"}
        if not parts <= known:
            raise ValueError(f"unknown parts {parts - known}")
        self.mat.requires_grad_("mat" in parts)
        for name in known - {"mat"}:
            module = getattr(self, name)
            if module is not None:
                module.requires_grad_(name in parts)
            elif name in parts:
                raise ValueError(f"this model has no {name} to train")

    # ---- forward ---------------------------------------------------------------
    def text_features(self, clip: FrozenCLIP) -> torch.Tensor:
        """(C, S, D): every MAT sentence through the frozen text encoder in the spec's layout."""
        c, s, t, w = self.mat.shape
        return clip.encode_token_embeddings(sentence_inputs(clip, self.mat.reshape(c * s, t, w),
                                                            self.spec.text_layout)).view(c, s, -1)

    def class_vectors(self, text_features: torch.Tensor) -> torch.Tensor:
        """(C, S, D) sentence features -> (C, D); the sentence index is the time axis."""
        x = F.normalize(text_features, dim=-1)
        if self.spec.text_encoder == "mean":
            return x.mean(dim=1)
        return (self.jas if self.jas is not None else self.de_text)(x)

    def video_vectors(self, frame_features: torch.Tensor) -> torch.Tensor:
        """(B, F, D) cached CLIP frame features -> (B, D)."""
        x = F.normalize(frame_features, dim=-1)
        if self.spec.video_encoder == "mean":
            return x.mean(dim=1)
        return (self.jas if self.jas is not None else self.de_video)(x)

    def logits(self, video_vectors: torch.Tensor, class_vectors: torch.Tensor) -> torch.Tensor:
        cos = F.normalize(video_vectors, dim=-1) @ F.normalize(class_vectors, dim=-1).T
        return cos / self.spec.temperature

    def forward(self, frame_features: torch.Tensor, class_vectors: torch.Tensor) -> torch.Tensor:
        return self.logits(self.video_vectors(frame_features), class_vectors)


def sentence_inputs(clip: FrozenCLIP, rows: torch.Tensor, layout: str) -> torch.Tensor:
    """(N, T, W) MAT rows -> the token embeddings CLIP's text encoder reads, EOS last."""
    n, t, w = rows.shape
    token = lambda i: clip.token_embeddings(torch.tensor([i])).expand(n, 1, w)  # noqa: E731
    if layout == "compact":
        return torch.cat([token(clip.sos_id), rows, token(clip.eos_id)], dim=1)
    zeros = clip.context_length - 3 - t           # Eq. 2: Tkn_max = context - [SOS], [period], [EOS]
    if zeros < 0:
        raise ValueError(f"model.tokens={t} leaves no room for [SOS], [period] and [EOS] in CLIP's context of "
                         f"{clip.context_length} (paper layout: at most {clip.context_length - 3})")
    return torch.cat([token(clip.sos_id), rows, rows.new_zeros(n, zeros, w), token(clip.period_id),
                      token(clip.eos_id)], dim=1)
