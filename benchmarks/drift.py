"""The drift monitor on synthetic batches, side by side (not a test): false alarms and detections.

Against a deployment artifact (default models/deploy, from `dvc repro`) and the
params that built it, it generates batches of new identities with the synthetic
generator: in-distribution ones (same settings, one per seed) and shifted ones
(darker lighting, blur plus camera noise, smaller faces, another class mix), runs
each through the drift monitor's column builder and Evidently comparison, and
records per batch: the verdict under the artifact's thresholds, the share of
drifted input columns at the column p-value, which columns moved, the class-mix
p-value, and the score of every Evidently embedding method (model, mmd, ratio,
distance) so thresholds can be compared on the same batches. Results go to
reports/benchmarks/drift.json and a table is printed.

Example (~10 minutes on 2 cores: 10 in-distribution seeds and 4 shifts, 48 clips each):
    python benchmarks/drift.py --deploy models/deploy --params params.yaml
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from a3lign_dfer.config.params import load_params
from a3lign_dfer.inference.backends import load_backend
from a3lign_dfer.inference.predict_videos import expand
from a3lign_dfer.inference.video_input import PreprocessSpec
from a3lign_dfer.monitoring.batches import make_batch
from a3lign_dfer.monitoring.columns import video_columns
from a3lign_dfer.monitoring.drift import compare
from a3lign_dfer.monitoring.profile import DriftProfile

ROOT = Path(__file__).resolve().parents[1]
# A class mix far from the benchmark's DFEW-like one: surprise, disgust and fear dominate.
CLASS_MIX = [0.05, 0.05, 0.05, 0.05, 0.35, 0.15, 0.30]
SHIFTS = {
    "dark": {"synthetic": {"light_gain": 0.4}},
    "blur_noise": {"synthetic": {"extra_blur": 3.0, "noise_gain": 2.0}},
    "small_faces": {"synthetic": {"face_scale": 0.6}},
    "class_mix": {"synthetic": {"class_weights": CLASS_MIX}},
}


def embedding_scores(table, profile) -> dict:
    from evidently.metrics.embeddings import DistanceDriftMethod, MMDDriftMethod, ModelDriftMethod, RatioDriftMethod

    out = {}
    for name, method in {"model": ModelDriftMethod(), "mmd": MMDDriftMethod(), "ratio": RatioDriftMethod(),
                         "distance": DistanceDriftMethod(),
                         "distance_bootstrap": DistanceDriftMethod(bootstrap=True)}.items():
        score, drifted, _ = method(table[profile.embedding].reset_index(drop=True).copy(),
                                   profile.reference[profile.embedding].reset_index(drop=True).copy())
        out[name] = {"score": round(float(score), 5), "drifted_at_default": bool(drifted)}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploy", default=str(ROOT / "models/deploy"))
    parser.add_argument("--params", default=str(ROOT / "params.yaml"), help="the params that built the artifact")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(101, 111)))
    parser.add_argument("--identities", type=int, default=16)
    parser.add_argument("--clips-per-identity", type=int, default=3)
    parser.add_argument("--shifts", nargs="*", default=list(SHIFTS))
    parser.add_argument("--out", default=str(ROOT / "reports/benchmarks/drift.json"))
    args = parser.parse_args(argv)

    deploy = Path(args.deploy)
    profile = DriftProfile.load(deploy)
    spec = PreprocessSpec.load(deploy / "preprocess.json")
    classes = json.loads((deploy / "labels.json").read_text())["classes"]
    run = load_backend(deploy, "onnxruntime")
    batches = [(f"clean_{s}", s, {}) for s in args.seeds] + [
        (name, 200 + i, SHIFTS[name]) for i, name in enumerate(args.shifts)]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, seed, override in batches:
            start = time.perf_counter()
            folder = Path(tmp) / name
            make_batch(folder, load_params(args.params, override).synthetic, tuple(classes), seed, args.identities,
                       args.clips_per_identity)
            table, bad = video_columns(expand([str(folder)]), run, spec, classes, profile.pca,
                                       spec.face_crop.workers, desc=name)
            _, summary = compare(table, profile, name, {})
            results[name] = {
                "seed": seed, "override": override, "videos": len(table) + len(bad), "unreadable": len(bad),
                "drift": summary["drift"], "reasons": summary["reasons"], "drifted_share": summary["drifted_share"],
                "drifted_columns": summary["drifted_columns"],
                "min_column_p": min(r["score"] for r in summary["columns"].values()),
                "column_p": {c: round(r["score"], 5) for c, r in summary["columns"].items()},
                "class_mix_p": summary["prediction"]["class_mix"]["score"],
                "class_mix": summary["prediction"]["class_mix"]["current"],
                "confidence_p": summary["prediction"]["confidence"]["score"],
                "embedding": embedding_scores(table, profile), "seconds": round(time.perf_counter() - start, 1)}
    record = {"deploy": str(deploy), "reference_clips": len(profile.reference),
              "thresholds": profile.meta["thresholds"], "batch_clips": args.identities * args.clips_per_identity,
              "batches": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"reference: {len(profile.reference)} val clips; batches of {record['batch_clips']} clips; "
          f"thresholds {profile.meta['thresholds']}")
    print("| batch | drift | drifted share | class-mix p | model | mmd | ratio | distance | columns moved |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        e = r["embedding"]
        print(f"| {name} | {'yes' if r['drift'] else 'no'} | {r['drifted_share']:.2f} | {r['class_mix_p']:.3f} | "
              f"{e['model']['score']:.3f} | {e['mmd']['score']:.4f} | {e['ratio']['score']:.3f} | "
              f"{e['distance']['score']:.4f} | {', '.join(r['drifted_columns'][:8])}"
              f"{' ...' if len(r['drifted_columns']) > 8 else ''} |")
    return record


if __name__ == "__main__":
    main()
