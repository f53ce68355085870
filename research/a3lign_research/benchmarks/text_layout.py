"""What the paper's Eq. 2 layout costs per training step against the compact one (not a test).

One training step's text branch (every MAT sentence, C=7 x S=16, forward and backward through the
frozen CLIP text encoder, then DE_text) in the `paper` layout (77 positions) and the `compact`
one (T + 2 = 66), side by side in one run, at the embedded small CLIP's size and at ViT-B/32's
(random weights: timing does not depend on them). Median seconds per step to
reports/benchmarks/text_layout.json and README's `text-layout` block.

Example (about 2 minutes on 2 cores): python -m a3lign_research.benchmarks.text_layout
"""
from __future__ import annotations

import argparse

import torch

from a3lign_dfer.config.schema import load
from a3lign_dfer.config.training import TrainingParams
from a3lign_dfer.markdown_table import markdown_table
from a3lign_research import ROOT
from a3lign_research.benchmarks.common import embedded, vit_b32  # the two CLIPs the serving benchmark times
from a3lign_research.blocks import publish
from a3lign_research.paper.fidelity import step_seconds


def markdown(result: dict) -> str:
    lines = [f"One training step's text branch (C=7 x S={result['sentences']} sentences of T={result['tokens']} "
             f"MAT tokens, forward + backward), median seconds, {result['threads']} CPU threads "
             "(`python -m a3lign_research.benchmarks.text_layout`):", "",
             markdown_table(["CLIP size", "compact (T + 2 positions)", "paper, Eq. 2 (77 positions)", "paper / compact"],
                            ([name, f"{row['compact']:.3f} s", f"{row['paper']:.3f} s",
                              f"{row['paper'] / row['compact']:.2f}x"] for name, row in result["clips"].items()))]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args(argv)
    params = load(TrainingParams, ROOT / "params.yaml")
    result = {"threads": torch.get_num_threads(), "sentences": params.model.sentences, "tokens": params.model.tokens,
              "clips": {}}
    for name, make in (("embedded", embedded), ("vit_b32", vit_b32)):
        clip = make()
        # alternate the layouts so drift in the machine's load hits both alike
        times = {"compact": [], "paper": []}
        for _ in range(2):
            for layout in times:
                times[layout].append(step_seconds(clip, params, layout, steps=args.steps))
        result["clips"][name] = {layout: min(v) for layout, v in times.items()}
        print(name, result["clips"][name], flush=True)
    publish("text-layout", result)
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
