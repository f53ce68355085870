"""The drift monitor's thresholds, chosen on some synthetic batches and measured on others (not a test).

Against a deployment artifact (default models/deploy, from `dvc repro`) and the params that built it,
the synthetic generator makes batches of new identities: in distribution (the same settings) and shifted
(darker lighting, blur plus camera noise, smaller faces, another class mix). Each goes through the drift
command's column builder and Evidently comparison (monitoring.columns, monitoring.drift.compare).

Two disjoint sets of generator seeds:
  selection  in-distribution batches only: the thresholds are chosen on them (monitoring.calibration: per
             rule, one grid step less sensitive than the most sensitive value that flags none of them);
  held out   in-distribution and shifted batches: false alarms and detections are counted on them, under
             the artifact's thresholds (params.yaml `drift` at export) and under the chosen ones.
A choice that differs from the artifact's thresholds is reported here, never written into params.yaml.

Writes reports/benchmarks/drift.json and the README block `drift`.
Example (about 8 minutes on 2 cores: 60 batches of 32 clips): python -m a3lign_research.benchmarks.drift
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from a3lign_dfer.config.deploy import DEPLOY_DIR
from a3lign_dfer.config.params import load_params
from a3lign_dfer.inference.backends import load_backend
from a3lign_dfer.inference.predict_videos import expand
from a3lign_dfer.inference.video_input import PreprocessSpec
from a3lign_dfer.markdown_table import markdown_table
from a3lign_dfer.monitoring.batches import make_batch
from a3lign_dfer.monitoring.columns import video_columns
from a3lign_dfer.monitoring.drift import compare
from a3lign_dfer.monitoring.profile import DriftProfile
from a3lign_dfer.monitoring.rules import RULES, THRESHOLD_OF, thresholds_from_dict
from a3lign_research import ROOT, shown_path
from a3lign_research.blocks import publish
from a3lign_research.drift_calibration import choose_thresholds, chosen_thresholds, threshold

# A class mix far from the benchmark's DFEW-like one: surprise, disgust and fear dominate.
CLASS_MIX = [0.05, 0.05, 0.05, 0.05, 0.35, 0.15, 0.30]
SHIFTS = {                     # params `synthetic` knobs of each shifted kind
    "dark": {"light_gain": 0.4},
    "blur_noise": {"extra_blur": 3.0, "noise_gain": 2.0},
    "small_faces": {"face_scale": 0.6},
    "class_mix": {"class_weights": CLASS_MIX},
}
# Generator seeds: batch i of a (set, kind) has seed FIRST_SEED[set, kind] + i, so the sets never share one.
FIRST_SEED = {("selection", "clean"): 101, ("held_out", "clean"): 201, ("held_out", "dark"): 301,
              ("held_out", "blur_noise"): 401, ("held_out", "small_faces"): 501, ("held_out", "class_mix"): 601}
KINDS = {"clean": "in distribution (false alarms)", "dark": "dark", "blur_noise": "blur + noise",
         "small_faces": "smaller faces", "class_mix": "class mix"}
# Per rule: the batch statistic it reads, and which end of it is the in-distribution extreme.
STATISTIC = {"share": ("drifted_share", max), "columns": ("min_p", min), "embedding": ("embedding_score", max),
             "class_mix": ("class_mix_p", min)}


def artifact_identity(deploy: Path) -> dict:
    """What identifies the artifact measured: its path, the sha256 of its manifest (which hashes every file)
    and the checkpoint it was exported from."""
    manifest = deploy / "manifest.json"
    return {"path": shown_path(deploy),
            "manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
            "source_checkpoint": json.loads(manifest.read_text()).get("source_checkpoint")}


def seeds(batches: int) -> dict[str, dict[str, list[int]]]:
    out: dict[str, dict[str, list[int]]] = {}
    for (group, kind), first in FIRST_SEED.items():
        out.setdefault(group, {})[kind] = list(range(first, first + batches))
    return out


def row(group: str, kind: str, seed: int, comparison, videos: int, unreadable: int, seconds: float) -> dict:
    """One batch in the JSON: the statistic each rule reads, and the rules the artifact's thresholds fire."""
    lowest = min(comparison.columns, key=lambda c: comparison.columns[c].score)
    return {"set": group, "kind": kind, "seed": seed, "videos": videos, "unreadable": unreadable,
            "drifted_share": round(comparison.alarms.drifted_share, 4),
            "min_p": comparison.columns[lowest].score, "min_p_column": lowest,
            "embedding_score": comparison.embedding.score, "class_mix_p": comparison.class_mix.score,
            "fired": {"artifact": list(comparison.alarms.fired)}, "seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploy", default=str(ROOT / DEPLOY_DIR))
    parser.add_argument("--params", default=str(ROOT / "params.yaml"), help="the params that built the artifact")
    parser.add_argument("--batches", type=int, default=10, choices=range(1, 101), metavar="1..100",
                        help="batches per kind in each set")
    parser.add_argument("--identities", type=int, default=16)
    parser.add_argument("--clips-per-identity", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="processes that render and read videos (1: this "
                        "one; for batches this small, starting worker processes costs more than it saves)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    deploy = Path(args.deploy)
    identity = artifact_identity(deploy)                  # of the files loaded here, before any batch runs
    profile = DriftProfile.load(deploy)
    spec = PreprocessSpec.load(deploy / "preprocess.json")
    classes = json.loads((deploy / "labels.json").read_text())["classes"]
    run = load_backend(deploy, "onnxruntime")
    plan = seeds(args.batches)
    total = sum(len(s) for kinds in plan.values() for s in kinds.values())
    rows, comparisons = [], []

    def measure(group: str, kind: str, seed: int, tmp: Path) -> None:
        began = time.perf_counter()
        folder = tmp / f"{kind}_{seed}"
        synthetic = load_params(args.params, {"synthetic": {"workers": args.workers, **SHIFTS.get(kind, {})}})
        make_batch(folder, synthetic.synthetic, tuple(classes), seed, args.identities, args.clips_per_identity)
        table, bad = video_columns(expand([str(folder)]), run, spec, classes, profile.pca, args.workers,
                                   desc=folder.name)
        _, comparison = compare(table, profile, folder.name, {})
        r = row(group, kind, seed, comparison, len(table) + len(bad), len(bad), time.perf_counter() - began)
        rows.append(r)
        comparisons.append(comparison)
        print(f"[{len(rows)}/{total}] {group} {kind} seed {seed}: flagged by "
              f"{', '.join(r['fired']['artifact']) or 'nothing'} (share {r['drifted_share']:.2f}, min p "
              f"{r['min_p']:.2g} {r['min_p_column']}, embedding {r['embedding_score']:.2g}, class-mix p "
              f"{r['class_mix_p']:.2g}) in {r['seconds']:.0f} s", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        for seed in plan["selection"]["clean"]:
            measure("selection", "clean", seed, Path(tmp))
        choices = choose_thresholds(comparisons, profile.thresholds)     # the selection batches, and no other
        chosen = chosen_thresholds(choices, profile.thresholds)
        print(f"chosen on the selection set: {chosen}", flush=True)
        for kind, kind_seeds in plan["held_out"].items():
            for seed in kind_seeds:
                measure("held_out", kind, seed, Path(tmp))
    for comparison, r in zip(comparisons, rows):
        r["fired"]["chosen"] = list(comparison.alarms_under(chosen).fired)
    record = {"deploy": identity | {"reference_clips": len(profile.reference)},
              "batch": {"identities": args.identities, "clips_per_identity": args.clips_per_identity},
              "shifts": SHIFTS, "seeds": plan,
              "thresholds": profile.meta["thresholds"],
              "choice": {rule: asdict(choice) for rule, choice in choices.items()},
              "batches": rows, "minutes": round((time.perf_counter() - start) / 60, 1),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    publish("drift", record)
    print(markdown(record))
    return record


def _seed_range(values: list[int]) -> str:
    if len(values) > 1 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}–{values[-1]}"
    return ", ".join(map(str, values))


def _extreme(rows: list[dict], rule: str) -> str:
    key, pick = STATISTIC[rule]
    value = pick(r[key] for r in rows)
    return {"share": f"at most {value:.2f}", "columns": f"smallest p {value:.2g}", "embedding": f"at most {value:.2g}",
            "class_mix": f"smallest p {value:.2g}"}[rule]


def markdown(record: dict) -> str:
    """The README block: the artifact, the thresholds and how they were chosen, the held-out counts."""
    d, t = record["deploy"], record["thresholds"]
    artifact = thresholds_from_dict(t)
    batches = record["batches"]
    selection = [r for r in batches if r["set"] == "selection"]
    held_out = [r for r in batches if r["set"] == "held_out"]
    clean = [r for r in held_out if r["kind"] == "clean"]
    source = d["source_checkpoint"] or {}
    size = record["batch"]
    rule_names = {"share": f"share of the input columns drifted at p < {t['column_p_value']} (flag above)",
                  "columns": "any one input column's p (flag below)",
                  "embedding": f"embedding, {t['embedding']['method']} score (flag above)",
                  "class_mix": "predicted-class mix p (flag below; 0: never)"}
    lines = [f"Artifact `{d['path']}`: manifest.json sha256 `{d['manifest_sha256'][:16]}`, exported from "
             f"`{source.get('path')}` (sha256 `{str(source.get('sha256'))[:16]}`), {d['reference_clips']} reference "
             f"clips. Batches of {size['identities'] * size['clips_per_identity']} new clips ({size['identities']} "
             f"identities x {size['clips_per_identity']}); {len(batches)} batches in {record['minutes']:.0f} min "
             f"({record['machine']}).", "",
             f"Thresholds chosen on the selection set only: {len(selection)} in-distribution batches, seeds "
             f"{_seed_range(record['seeds']['selection']['clean'])}.", "",
             markdown_table(["rule", "params `drift` (the artifact's)", "in distribution, selection set",
                             "chosen on the selection set", "in distribution, held out"],
                            ([rule_names[rule], f"`{THRESHOLD_OF[rule]}` {threshold(artifact, rule):g}",
                              _extreme(selection, rule), f"{record['choice'][rule]['chosen']:g}", _extreme(clean, rule)]
                             for rule in RULES))]
    rows = []
    for kind, title in KINDS.items():
        of_kind = [r for r in held_out if r["kind"] == kind]
        flagged = {name: sum(bool(r["fired"][name]) for r in of_kind) for name in ("artifact", "chosen")}
        by_rule = " / ".join(str(sum(rule in r["fired"]["artifact"] for r in of_kind)) for rule in RULES)
        rows.append([title, _seed_range(record["seeds"]["held_out"][kind]), f"{flagged['artifact']} of {len(of_kind)}",
                     by_rule, f"{flagged['chosen']} of {len(of_kind)}"])
    lines += ["", "Held out (seeds the choice never saw): batches flagged, and by which rule under the artifact's "
              "thresholds.", "",
              markdown_table(["held-out batches", "seeds", "flagged (artifact's thresholds)",
                              "by share / columns / embedding / class mix", "flagged (chosen thresholds)"], rows)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
