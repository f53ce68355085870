"""A DFEW user's path at real CLIP size, end to end (not a test: minutes of CPU).

A DFEW-layout tree of aligned synthetic face crops (a3lign_research.benchmarks.folds_cost's), `dvc repro` in a scratch
copy of this repository with clip.model a ViT-B/32-sized CLIP folder (transformers' CLIPConfig defaults,
projection 512, random weights saved with save_pretrained: the size of openai/clip-vit-base-patch32, which
cannot be downloaded here) and a few training epochs, then `drift` on a batch of the tree's frame folders
and on a batch of synthetic videos. Records whether export wrote the drift reference and what each drift
run wrote; JSON to reports/benchmarks/dfew_real_size.json and README's `dfew-real-size` block.

Example (about 5 minutes on 2 cores): python -m a3lign_research.benchmarks.dfew_real_size
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from a3lign_dfer.config.deploy import DEPLOY_DIR
from a3lign_dfer.markdown_table import markdown_table
from a3lign_dfer.orchestration.dvc_runner import run_dvc
from a3lign_research import ROOT
from a3lign_research.benchmarks.common import make_tree, run, scratch_repo
from a3lign_research.blocks import publish

# A few epochs of everything: the check is that each stage runs at this size, not what it learns.
SHORT_TRAINING = {"features": {"num_frames": 8, "augmented_views": 1},
                  "model": {"sentences": 2, "tokens": 4, "heads": 2, "de_text_layers": 1},
                  "stage1": {"epochs": 1}, "stage2": {"layers": [1, 2], "epochs": [1, 1]},   # two phases, as
                  "stage2_text": {"layers": [2], "epochs": [1]},                          # dvc.yaml's ladder
                  "stage3": {"init_layers": 1, "layers": [1, 2], "epochs": [1, 1]},      # names them
                  "all_at_once": {"epochs": 1, "layers": 2}, "shuffle_check": {"seeds": [0]},
                  "data": {"val_fraction": 0.25}}
VIDEO_LABELS = ("happy", "sad", "angry", "fear", "neutral", "surprise")


def vit_b32_folder(path: Path) -> int:
    """Saves the CLIP folder; returns its parameter count."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from a3lign_dfer.model.small_clip import CLIP_MEAN, CLIP_STD, save_clip
    from a3lign_dfer.model.tokenizer import build_clip_tokenizer

    torch.manual_seed(0)
    processor = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
                                   image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))
    model = CLIPModel(CLIPConfig(projection_dim=512))
    save_clip(model, build_clip_tokenizer(), processor, path)
    return sum(p.numel() for p in model.parameters())


def drift_run(repo: Path, batch: list[str], out: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "a3lign_dfer", "drift", *batch, "--out", str(out)], cwd=repo,
                          capture_output=True, text=True)
    summary = json.loads((out / "summary.json").read_text())
    return {"exit_code": done.returncode, "kinds": summary["kinds"], "reference_kinds": summary["reference"]["kinds"],
            "caveat": summary.get("caveat"), "drift": summary["drift"],
            "report_html_bytes": (out / "report.html").stat().st_size, "verdict": done.stdout.strip().splitlines()[-1]}


def _counts(kinds: dict[str, int]) -> str:
    return ", ".join(f"{kind}: {n}" for kind, n in kinds.items())


def markdown(r: dict) -> str:
    ref = r["drift_reference"]
    rows = [[name, _counts(d["kinds"]), d["exit_code"], "DRIFT" if d["drift"] else "no drift",
             f"{d['report_html_bytes']:,}", "yes" if d["caveat"] else "no"] for name, d in r["drift"].items()]
    return "\n".join([
        f"`dvc repro` on a DFEW-layout tree of {r['clips']} clips with a ViT-B/32-sized CLIP folder "
        f"({r['clip_parameters_m']:.0f}M parameters, random weights; a few epochs per stage): "
        f"{r['repro_s']:.0f} s for its {len(r['stages'])} stages"
        f"{', through export and report_page' if r['all_stages_ran'] else ' (it stopped before export)'}. "
        "Export's drift reference: "
        f"{ref['status']}, {ref['reference_clips']} val clips ({_counts(ref['reference_kinds'])}) "
        "(`python -m a3lign_research.benchmarks.dfew_real_size`).", "",
        markdown_table(["drift batch", "clips by kind", "exit code", "verdict", "report.html bytes", "caveat stated"],
                       rows), "",
        "A random-weight CLIP sees no expression, so the verdicts say nothing about drift: the check is that "
        "each batch kind gets its report, and that the video batch's states the aligned-crops caveat."])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips-per-class", type=int, default=5)
    args = parser.parse_args(argv)
    from a3lign_dfer.config.params import load_params
    from a3lign_dfer.data.synthetic import render_clip
    from a3lign_dfer.data.video_io import write_video

    with tempfile.TemporaryDirectory(prefix="dfew-real-size-") as tmp:
        tmp = Path(tmp)
        clip = tmp / "clip-vit-b32"
        parameters = vit_b32_folder(clip)
        clips = make_tree(tmp / "DFEW", args.clips_per_class, size=112, seed=0)
        repo = tmp / "repo"
        scratch_repo(repo, tmp / "DFEW", clip)
        params = yaml.safe_load((repo / "params.yaml").read_text())
        for section, values in SHORT_TRAINING.items():
            params[section].update(values)
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run(["git", "commit", "-qam", "short training"], repo)
        start = time.perf_counter()
        out = run_dvc(["repro"], repo).stdout
        repro_s = time.perf_counter() - start
        stages = [line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage '")]
        manifest = json.loads((repo / DEPLOY_DIR / "manifest.json").read_text())
        synthetic = load_params(ROOT / "params.yaml").synthetic
        (tmp / "videos").mkdir()
        for i, label in enumerate(VIDEO_LABELS):
            write_video(render_clip(synthetic, label, 1, i, 100 + i).frames, tmp / "videos" / f"{label}.mp4",
                        synthetic.fps)
        folders = [str(f) for f in sorted((tmp / "DFEW/Clip/clip_224x224").iterdir())[:20]]
        drift = {"frame folders": drift_run(repo, folders, tmp / "drift-frames"),
                 "videos": drift_run(repo, [str(tmp / "videos")], tmp / "drift-videos")}
    import torch

    result = {"clips": clips, "clip_parameters_m": parameters / 1e6, "repro_s": round(repro_s, 1),
              "stages": stages, "all_stages_ran": "report_page" in stages and "export" in stages,
              "drift_reference": manifest["drift_reference"], "drift": drift, "threads": torch.get_num_threads()}
    publish("dfew-real-size", result)
    print(markdown(result))


if __name__ == "__main__":
    main()
