"""`report-page`: reports/index.html, everything the pipeline wrote on one offline page."""
from __future__ import annotations

import sys
from pathlib import Path

from a3lign_dfer.commands import run_module

HELP = ("reports/index.html: metrics, figures, training curves, data, drift, deployment manifest, registry, "
        "on one offline page")


def add_arguments(p) -> None:
    p.add_argument("--reports", required=True, help="the reports folder the pipeline writes")
    p.add_argument("--deploy", required=True, help="the deployment artifact folder (its manifest.json)")
    p.add_argument("--curves", required=True, help="folder for the static training-curve PNGs")
    p.add_argument("--out", required=True, help="the page (links are relative to its folder)")


def run(args) -> None:
    from a3lign_dfer.reporting.page import build_page

    built = build_page(Path(args.reports), Path(args.deploy), Path(args.curves), Path(args.out))
    print(f"wrote {args.out}: {len(built['linked'])} linked files, {len(built['curves'])} curve figures")


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
