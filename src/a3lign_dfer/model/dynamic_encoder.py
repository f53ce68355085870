"""Temporal transformer over a sequence of CLIP features (DE_text, DE_video, JAS).

Built to grow: every added layer starts as the identity (zeroed residual
outputs), so an encoder with fresh layers computes exactly the mean of its
inputs, the stage-1 video path, and growing a trained encoder does not change
what it computes until the new layers learn.

Positional embeddings are random (ViT-style, std 0.02) and centred over the
positions used. Centred, they carry order only, never an offset, so the fresh
encoder is still exactly the mean. Random, not zero: zero-initialised rows get
identical gradients through identity layers and stay identical, leaving the
encoder blind to order forever (measured: no shuffled-frame drop at all).
"""
from __future__ import annotations

import torch
from torch import nn


def _identity_layer(dim: int, heads: int, mlp_ratio: int, dropout: float) -> nn.TransformerEncoderLayer:
    layer = nn.TransformerEncoderLayer(
        d_model=dim,
        nhead=heads,
        dim_feedforward=mlp_ratio * dim,
        dropout=dropout,
        activation="gelu",
        batch_first=True,
        norm_first=True,
    )
    for proj in (layer.self_attn.out_proj, layer.linear2):
        nn.init.zeros_(proj.weight)
        nn.init.zeros_(proj.bias)
    return layer


class DynamicEncoder(nn.Module):
    def __init__(self, dim: int, max_len: int, heads: int, mlp_ratio: int, dropout: float, layers: int = 0):
        super().__init__()
        self.dim, self.heads, self.mlp_ratio, self.dropout = dim, heads, mlp_ratio, dropout
        self.pos = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        self.layers = nn.ModuleList()
        self.grow(layers)

    @property
    def depth(self) -> int:
        return len(self.layers)

    def grow(self, depth: int) -> None:
        if depth < self.depth:
            raise ValueError(f"cannot shrink a dynamic encoder from {self.depth} to {depth} layers")
        device = self.pos.device
        while self.depth < depth:
            self.layers.append(_identity_layer(self.dim, self.heads, self.mlp_ratio, self.dropout).to(device))

    def truncated(self, depth: int) -> "DynamicEncoder":
        """A new encoder made of this one's first `depth` layers (how JAS starts, paper 3.3)."""
        if depth > self.depth:
            raise ValueError(f"encoder has {self.depth} layers, asked for the first {depth}")
        out = DynamicEncoder(self.dim, self.pos.shape[0], self.heads, self.mlp_ratio, self.dropout)
        out.pos.data.copy_(self.pos.data)
        for layer in self.layers[:depth]:
            out.layers.append(_identity_layer(self.dim, self.heads, self.mlp_ratio, self.dropout))
            out.layers[-1].load_state_dict(layer.state_dict())
        return out.to(self.pos.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) sequence -> (B, D) vector."""
        if x.shape[1] > self.pos.shape[0]:
            raise ValueError(f"sequence length {x.shape[1]} exceeds the encoder's {self.pos.shape[0]} positions")
        pos = self.pos[: x.shape[1]]
        h = x + (pos - pos.mean(dim=0))
        for layer in self.layers:
            h = layer(h)
        return h.mean(dim=1)
