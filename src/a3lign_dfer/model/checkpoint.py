"""The one hand-off format between stages, evaluation and export.

Weights go to safetensors; the architecture (ModelSpec), class order, CLIP name
and the training record go to meta.json, so a checkpoint is rebuilt from itself
and never from whatever params.yaml says today.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from a3lign_dfer.config.schema import json_ready
from a3lign_dfer.errors import ConfigError, MissingInput
from a3lign_dfer.model.a3lign import A3lignDFER, ModelSpec

WEIGHTS, META = "model.safetensors", "meta.json"


def save_checkpoint(model: A3lignDFER, out_dir: str | Path, **meta) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, out_dir / WEIGHTS)
    record = {"spec": dataclasses.asdict(model.current_spec()), **meta}
    (out_dir / META).write_text(json.dumps(json_ready(record), indent=2))


def load_checkpoint(ckpt_dir: str | Path, device: str = "cpu") -> tuple[A3lignDFER, dict]:
    ckpt_dir = Path(ckpt_dir)
    if not (ckpt_dir / META).exists():
        raise MissingInput(f"not a checkpoint (no {META}): {ckpt_dir}")
    meta = json.loads((ckpt_dir / META).read_text())
    spec = dict(meta["spec"])
    spec["classes"] = tuple(spec["classes"])
    model = A3lignDFER(ModelSpec(**spec))
    model.load_state_dict(load_file(ckpt_dir / WEIGHTS, device=device))
    return model.to(device), meta


def check_compatible(meta: dict, classes: tuple[str, ...], clip_model: str, where: Path) -> None:
    """Refuse to continue from a checkpoint built for other classes or another CLIP."""
    if tuple(meta["spec"]["classes"]) != tuple(classes):
        raise ConfigError(f"class set mismatch: {where} has {meta['spec']['classes']}, "
                         f"params data.classes is {list(classes)}; re-run from stage 1")
    if meta["clip_model"] != clip_model:
        raise ConfigError(f"{where} was trained on CLIP {meta['clip_model']!r}, params clip.model is "
                         f"{clip_model!r}; re-run from stage 1")
