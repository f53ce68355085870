"""A small randomly initialised CLIP with the real CLIP tokenizer.

It exists so the embedded default can run offline; once saved with
save_pretrained it is loaded exactly like a hub CLIP (FrozenCLIP.load).
"""
from __future__ import annotations

from pathlib import Path

from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

from a3lign_dfer.config.model import PretrainClipConfig
from a3lign_dfer.model.tokenizer import build_clip_tokenizer

# OpenAI CLIP's pixel statistics, kept so a small CLIP preprocesses like a real one.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def build_small_clip(cfg: PretrainClipConfig, seed: int = 0):
    import torch

    tokenizer = build_clip_tokenizer()
    common = dict(
        hidden_size=cfg.width,
        intermediate_size=4 * cfg.width,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
    )
    config = CLIPConfig(
        text_config=dict(
            **common,
            vocab_size=len(tokenizer),
            max_position_embeddings=tokenizer.model_max_length,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(**common, image_size=cfg.image_size, patch_size=cfg.patch_size),
        projection_dim=cfg.projection_dim,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config)
    processor = CLIPImageProcessor(
        size={"shortest_edge": cfg.image_size},
        crop_size={"height": cfg.image_size, "width": cfg.image_size},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )
    return model, tokenizer, processor


def save_clip(model: CLIPModel, tokenizer, processor, out_dir: str | Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
