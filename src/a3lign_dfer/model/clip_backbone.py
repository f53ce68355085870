"""The frozen CLIP both streams run through.

Deliberately not an nn.Module: CLIP never trains here, so keeping it outside the
A3lign module keeps its weights out of checkpoints, optimizers and `.train()`.
A hub name and a local folder (the embedded small CLIP) load the same way.
"""
from __future__ import annotations

import torch
from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel
from transformers.masking_utils import create_causal_mask

from a3lign_dfer.errors import MissingInput
from a3lign_dfer.model.image_spec import ImageSpec


class FrozenCLIP:
    def __init__(self, model: CLIPModel, tokenizer, image_spec: ImageSpec):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.image_spec = image_spec
        text_config = model.config.text_config
        self.sos_id = tokenizer.bos_token_id
        self.eos_id = tokenizer.eos_token_id
        period = tokenizer(".", add_special_tokens=False)["input_ids"]
        if len(period) != 1:
            raise ValueError(f"the CLIP tokenizer splits '.' into {period}: the paper layout needs one period token")
        self.period_id = period[0]
        self.context_length = text_config.max_position_embeddings
        self.text_width = text_config.hidden_size
        self.embed_dim = model.config.projection_dim

    @classmethod
    def load(cls, name_or_path: str, device: str | torch.device = "cpu") -> "FrozenCLIP":
        try:
            model = CLIPModel.from_pretrained(name_or_path)
            tokenizer = AutoTokenizer.from_pretrained(name_or_path)
            processor = CLIPImageProcessor.from_pretrained(name_or_path)
        except OSError as err:
            raise MissingInput(f"could not load CLIP from {name_or_path!r} (params clip.model): use a local folder "
                               "written with save_pretrained, or a hub name with network or cache access") from err
        size = processor.crop_size["height"]
        spec = ImageSpec(size=size, mean=tuple(processor.image_mean), std=tuple(processor.image_std))
        return cls(model.to(device), tokenizer, spec)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def token_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.text_model.embeddings.token_embedding(ids.to(self.device))

    def encode_token_embeddings(self, embeds: torch.Tensor) -> torch.Tensor:
        """Text features for sequences given as token embeddings, pooled at the last position.

        Callers put [EOS] last. Under CLIP's causal mask nothing after EOS can reach
        it, so a sequence that ends at EOS equals the same sequence padded after EOS.
        """
        if embeds.shape[1] > self.context_length:
            raise ValueError(f"sequence of {embeds.shape[1]} tokens exceeds CLIP's context {self.context_length}")
        text = self.model.text_model
        hidden = text.embeddings(inputs_embeds=embeds)
        mask = create_causal_mask(config=text.config, inputs_embeds=hidden, attention_mask=None, past_key_values=None)
        hidden = text.encoder(inputs_embeds=hidden, attention_mask=mask, is_causal=True).last_hidden_state
        hidden = text.final_layer_norm(hidden)
        return self.model.text_projection(hidden[:, -1])

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, return_tensors="pt").to(self.device)
        return self.model.get_text_features(**batch).pooler_output

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        return self.image_spec.normalize(frames.to(self.device))

    @torch.no_grad()
    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model.get_image_features(pixel_values=self.preprocess(frames)).pooler_output
