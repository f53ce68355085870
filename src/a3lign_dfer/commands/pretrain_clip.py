"""`pretrain-clip`: the small embedded CLIP, pretrained on the benchmark's captions (skipped for a real CLIP)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from a3lign_dfer.commands import run_module

HELP = "pretrain the small embedded CLIP (skipped for a real CLIP)"


def add_arguments(p) -> None:
    p.add_argument("--crops", required=True)
    p.add_argument("--raw", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--metrics", required=True)
    p.add_argument("--device", default=None)


def run(args) -> None:
    import pandas as pd

    from a3lign_dfer.config.model import PretrainClipParams
    from a3lign_dfer.config.schema import load
    from a3lign_dfer.data import manifest
    from a3lign_dfer.errors import MissingInput
    from a3lign_dfer.report_files import PRETRAIN_CLIP
    from a3lign_dfer.training import pretrain_clip

    params = load(PretrainClipParams, args.params)
    out = Path(args.out)
    if Path(params.clip.model) != out:
        metrics = pretrain_clip.skip(out, params.clip.model)
    else:
        raw = Path(args.raw)
        crops = manifest.read(Path(args.crops) / "manifest.parquet", tuple(params.data.classes))
        captions_path = raw / "captions.parquet"
        if not captions_path.exists():
            raise MissingInput(f"{captions_path} missing: the embedded small CLIP (clip.model: {out}) is pretrained "
                               "on the synthetic benchmark's captions; for other data set clip.model to a pretrained "
                               "CLIP (a hub name or a save_pretrained folder)")
        prompts = json.loads((raw / "class_prompts.json").read_text())
        metrics = pretrain_clip.pretrain_small_clip(crops, Path(args.crops), pd.read_parquet(captions_path), prompts,
                                                    params.pretrain_clip, params.data.seed, out, args.device)
    PRETRAIN_CLIP.write(Path(args.metrics), metrics)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
