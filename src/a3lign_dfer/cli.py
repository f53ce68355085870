"""Thin command-line entry points; dvc.yaml stages (and Prefect flows) call these.

Every subcommand reads params.yaml through the typed config and takes its paths
as arguments, so dvc.yaml is the one place paths are named.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from a3lign_dfer.config import BACKENDS
from a3lign_dfer.registry.release import STAGES

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))


def cmd_prepare(args, params) -> None:
    from a3lign_dfer.data.importers import prepare_manifest

    prepare_manifest(params, Path(args.out))


def cmd_face_crop(args, params) -> None:
    from a3lign_dfer.data import manifest
    from a3lign_dfer.data.face_crop import crop_dataset

    classes = tuple(params.data.classes)
    raw = manifest.read(Path(args.raw) / "manifest.parquet", classes)
    out = Path(args.out)
    crops, rejects, metrics = crop_dataset(raw, Path(params.data.root), out, params.face_crop, classes)
    manifest.write(crops, out / "manifest.parquet")
    manifest.write_rejects(rejects, out / "rejects.csv")
    _write_json(Path(args.metrics), metrics)
    print(json.dumps(metrics, indent=2))


def cmd_validate(args, params) -> int:
    import pandas as pd

    from a3lign_dfer.data.validation import ValidationFailed, validate_crops

    path = Path(args.crops) / "manifest.parquet"
    if not path.exists():
        raise FileNotFoundError(f"manifest not found: {path}")
    # Read as stored, not through manifest.read: the suite, not a first raise, reports what is wrong.
    try:
        summary = validate_crops(pd.read_parquet(path), Path(args.crops), tuple(params.data.classes),
                                 params.validate, Path(args.out), source=str(path))
    except ValidationFailed as failed:
        _write_json(Path(args.metrics), failed.summary)
        print(failed, file=sys.stderr)
        return 1
    _write_json(Path(args.metrics), summary)
    print(json.dumps({k: summary[k] for k in ("success", "clips", "clips_per_split", "smallest_class")}, indent=2))
    print(f"Data Docs: {summary['data_docs']}")
    return 0


def cmd_pretrain_clip(args, params) -> None:
    import pandas as pd

    from a3lign_dfer.data import manifest
    from a3lign_dfer.training import pretrain_clip

    out = Path(args.out)
    if Path(params.clip.model) != out:
        metrics = pretrain_clip.skip(out, params.clip.model)
    else:
        raw = Path(args.raw)
        crops = manifest.read(Path(args.crops) / "manifest.parquet", tuple(params.data.classes))
        captions_path = raw / "captions.parquet"
        if not captions_path.exists():
            raise FileNotFoundError(f"{captions_path} missing: the small CLIP is pretrained on the synthetic "
                                    "benchmark's captions; for other data set clip.model to a pretrained CLIP")
        prompts = json.loads((raw / "class_prompts.json").read_text())
        metrics = pretrain_clip.pretrain_small_clip(crops, Path(args.crops), pd.read_parquet(captions_path), prompts,
                                                    params.pretrain_clip, params.data.seed, out, args.device)
    _write_json(Path(args.metrics), metrics)
    print(json.dumps(metrics, indent=2))


def cmd_features(args, params) -> None:
    from a3lign_dfer.data import manifest
    from a3lign_dfer.data.features import build_feature_cache
    from a3lign_dfer.model.clip_backbone import FrozenCLIP

    crops = manifest.read(Path(args.crops) / "manifest.parquet", tuple(params.data.classes))
    clip = FrozenCLIP.load(params.clip.model, args.device)
    metrics = build_feature_cache(crops, Path(args.crops), clip, params.features, params.data.seed, Path(args.out))
    _write_json(Path(args.metrics), metrics)
    print(json.dumps(metrics, indent=2))


def cmd_train(args, params) -> None:
    from a3lign_dfer.training.run_stage import run_stage

    summary = run_stage(args.stage, params, Path(args.features), Path(args.out), Path(args.live),
                       Path(args.init) if args.init else None, args.device)
    print(json.dumps({k: summary[k] for k in ("stage", "selected", "layers", "seconds")}, indent=2))
    print(json.dumps({k: summary["val"][k] for k in ("war", "uar", "per_class_recall")}
                     | {"shuffled_uar_drop": summary["val"]["shuffled"]["uar_drop"]}, indent=2))


def cmd_evaluate(args, params) -> None:
    from a3lign_dfer.evaluation.evaluate import evaluate_checkpoints

    result = evaluate_checkpoints([Path(c) for c in args.ladder], [Path(c) for c in args.all_at_once],
                                  Path(args.features), Path(args.out), args.device)
    print(json.dumps({k: result[k] for k in ("war", "uar", "table4")}, indent=2))


def cmd_shuffle_check(args, params) -> None:
    from a3lign_dfer.evaluation.shuffle_check import shuffle_check

    result = shuffle_check([Path(c) for c in args.ladder], [Path(c) for c in args.all_at_once], Path(args.features),
                           params.shuffle_check, Path(args.out), args.device)
    print(json.dumps({k: result[k] for k in ("uar", "shuffled", "table5")}, indent=2))


def cmd_export(args, params) -> None:
    from a3lign_dfer.export.bundle import export_deploy

    metrics = export_deploy(Path(args.checkpoint), Path(args.crops), Path(args.eval), Path(args.shuffle), params,
                            Path(args.out), Path(args.raw), Path(args.features))
    _write_json(Path(args.metrics), metrics)
    print(json.dumps(metrics, indent=2))


def cmd_predict(args, params) -> int:
    from a3lign_dfer.inference.predict_videos import predict_videos

    return predict_videos(args.videos, Path(args.deploy), args.backend, args.device, args.json, args.out)


def cmd_drift(args, params) -> int:
    from a3lign_dfer.monitoring.drift import run_drift

    out = Path(args.out) if args.out else Path("reports/drift") / Path(args.batch[0]).stem
    return run_drift(args.batch, Path(args.deploy), out, args.backend, args.device)


def cmd_serve(args, params) -> int:
    from a3lign_dfer.serving.app import serve
    from a3lign_dfer.serving.auth import AuthError, required_key

    cfg = params.serve
    host = args.host or cfg.host
    try:                                        # before loading anything: an exposed service without a key never starts
        api_key = required_key(host, Path(args.api_key_file) if args.api_key_file else None)
    except AuthError as err:
        print(f"error: {err}")
        return 1
    return serve(params, args.artifact, args.stage, host, args.port or cfg.port, args.backend or cfg.backend,
                 args.device, api_key)


def _overrides(pairs: list[str]) -> dict:
    """`section.key=value` pairs (values read as YAML: 0.4, [1, 0, 0]) as a nested params override."""
    import yaml

    out: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"error: --set needs key=value, got {pair!r}")
        *sections, last = key.split(".")
        node = out
        for section in sections:
            node = node.setdefault(section, {})
        node[last] = yaml.safe_load(value)
    return out


def cmd_make_batch(args, params) -> None:
    from a3lign_dfer.config import load_params
    from a3lign_dfer.monitoring.batches import make_batch

    params = load_params(args.params, _overrides(args.set))
    rows = make_batch(Path(args.out), params.synthetic, tuple(params.data.classes), args.seed, args.identities,
                      args.clips_per_identity)
    print(f"{len(rows)} videos in {Path(args.out) / 'videos'}")


def cmd_results(args, params) -> None:
    from a3lign_dfer.evaluation.results_table import update_readme

    update_readme(Path(args.readme), Path(args.reports))
    print(f"updated the results table in {args.readme}")


def cmd_seeds(args, params) -> None:
    from a3lign_dfer.evaluation.multi_seed import run_seeds

    summary = run_seeds(args.seeds, args.set, Path("."), Path(args.out), args.prefix)
    print((Path(args.out) / "summary.md").read_text())
    print(f"experiments: {summary['experiments']}")


def cmd_folds(args, params) -> None:
    from a3lign_dfer.evaluation.folds import run_folds

    summary = run_folds(args.folds, args.set, Path("."), Path(args.out), args.prefix)
    print((Path(args.out) / "summary.md").read_text())
    print(f"experiments: {summary['experiments']}")


def cmd_release(args, params) -> None:
    from a3lign_dfer.registry.release import release

    stages = ["staging", "prod"] if args.prod else ["staging"]
    result = release(Path("."), params.release, stages, "release command")
    print(result["gate"])
    print(f"{result['artifact']} {result['version']} (commit {result['commit'][:10]}): {result['stages']}")


def cmd_report_page(args, params) -> None:
    from a3lign_dfer.reporting.page import build_page

    built = build_page(Path(args.reports), Path(args.deploy), Path(args.curves), Path(args.out), params)
    print(f"wrote {args.out}: {len(built['linked'])} linked files, {len(built['curves'])} curve figures")
    if args.screenshot:
        from a3lign_dfer.reporting.browser import render

        rendered = render(Path(args.out), Path(args.screenshot))
        print(f"rendered in headless Chromium, screenshot {rendered.screenshot}")


def cmd_plots_template(args, params) -> None:
    from a3lign_dfer.reporting.plots_template import write_template

    print(f"wrote {write_template(Path(args.out))} (name it with `dvc config plots.html_template`, "
          "relative to .dvc/)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="a3lign_dfer", description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="write the canonical manifest (generates the synthetic benchmark)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("face-crop", help="detect, track and crop faces in every raw video")
    p.add_argument("--raw", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--metrics", required=True)
    p.set_defaults(func=cmd_face_crop)

    p = sub.add_parser("validate", help="Great Expectations suite on the crops manifest and crops on disk; "
                                         "fails (exit 1) on bad data, writes Data Docs")
    p.add_argument("--crops", required=True, help="face-crop folder (manifest.parquet, frames/)")
    p.add_argument("--out", required=True, help="Data Docs site folder")
    p.add_argument("--metrics", required=True, help="summary JSON: verdict, class counts, smallest class")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("pretrain-clip", help="pretrain the small embedded CLIP (skipped for a real CLIP)")
    p.add_argument("--crops", required=True)
    p.add_argument("--raw", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--metrics", required=True)
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_pretrain_clip)

    p = sub.add_parser("features", help="cache frozen CLIP image features of every frame")
    p.add_argument("--crops", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--metrics", required=True)
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("train", help="run one training stage (a BAP stage or an all-at-once ablation)")
    p.add_argument("--stage", required=True, help="stage1, stage2, stage2_text, stage3, all_at_once_separate "
                                                   "or all_at_once_joint")
    p.add_argument("--features", required=True)
    p.add_argument("--init", help="the checkpoint the stage starts from (stage2, stage2_text, stage3)")
    p.add_argument("--out", required=True)
    p.add_argument("--live", required=True, help="DVCLive directory for per-epoch metrics")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_train)

    for name, func, help_ in (("evaluate", cmd_evaluate, "test split: Table 4 rows, confusion matrix"),
                              ("shuffle-check", cmd_shuffle_check, "test split in shuffled frame order (Table 5)")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--features", required=True)
        p.add_argument("--ladder", nargs="+", required=True,
                       help="BAP checkpoints in ladder order (Table 4 rows); the last is the final model")
        p.add_argument("--all-at-once", nargs="*", default=[], help="all-at-once ablation checkpoints (Table 4 rows)")
        p.add_argument("--out", required=True)
        p.add_argument("--device", default=None)
        p.set_defaults(func=func)

    p = sub.add_parser("seeds", help="one DVC experiment per training seed; mean +- std to reports/seeds")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="params override for every seed (dvc exp run -S), e.g. --set stage3.lr.mat=0.003")
    p.add_argument("--out", default="reports/seeds")
    p.add_argument("--prefix", default="seed", help="experiment names are <prefix>-<seed>")
    p.set_defaults(func=cmd_seeds)

    p = sub.add_parser("folds", help="one DVC experiment per official fold (data.fold); per-fold and mean +- std "
                                     "WAR/UAR to reports/folds")
    p.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="params override for every fold (dvc exp run -S), e.g. --set train.seed=1")
    p.add_argument("--out", default="reports/folds")
    p.add_argument("--prefix", default="fold", help="experiment names are <prefix>-<fold>")
    p.set_defaults(func=cmd_folds)

    p = sub.add_parser("export", help="models/deploy: ONNX graph, parity check, Triton repo, TensorRT where possible")
    p.add_argument("--checkpoint", required=True, help="the final model's checkpoint")
    p.add_argument("--crops", required=True, help="face-crop folder (test clips for the parity check)")
    p.add_argument("--eval", required=True, help="evaluate's metrics.json (copied into the manifest)")
    p.add_argument("--shuffle", required=True, help="shuffle-check's metrics.json (copied into the manifest)")
    p.add_argument("--raw", required=True, help="the raw manifest's folder (validation videos for the drift reference)")
    p.add_argument("--features", required=True, help="feature cache (training clips: the drift PCA)")
    p.add_argument("--out", required=True)
    p.add_argument("--metrics", required=True)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("predict", help="label and class probabilities of video files, from models/deploy only")
    p.add_argument("videos", nargs="+", help="video files, folders of videos, or CSV files with a `path` column")
    p.add_argument("--deploy", default="models/deploy")
    p.add_argument("--backend", default="onnxruntime", choices=BACKENDS)
    p.add_argument("--json", action="store_true", help="one JSON object per video instead of text")
    p.add_argument("--out", help="also write the predictions table (CSV) here")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("drift", help="Evidently drift report of a batch of videos against the reference profile in "
                                     "models/deploy; exit 3 when drift is flagged, 1 when videos could not be read")
    p.add_argument("batch", nargs="+", help="a folder of videos, a CSV with a `path` column (a `predict --out` "
                                            "table works), or video files")
    p.add_argument("--deploy", default="models/deploy")
    p.add_argument("--out", help="report folder (default: reports/drift/<batch name>)")
    p.add_argument("--backend", default="onnxruntime", choices=BACKENDS)
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_drift)

    p = sub.add_parser("serve", help="HTTP service on a deployment artifact: POST /predict, /health, /metadata, "
                                     "/metrics, a browser page at / (README \"Serving\"); limits in params serve")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--artifact", help="a deployment folder (default models/deploy); refused unless every file "
                                          "matches its manifest.json sha256")
    where.add_argument("--stage", choices=STAGES, help="serve the registry's version in this stage (GTO tags of "
                                                       "serve.registry_repo, fetched with dvc artifacts get)")
    p.add_argument("--host", help="default serve.host (127.0.0.1); any other address needs an API key")
    p.add_argument("--port", type=int, help="default serve.port")
    p.add_argument("--backend", choices=BACKENDS, help="default serve.backend")
    p.add_argument("--api-key-file", metavar="PATH", help="a file holding the API key that /predict and /metadata "
                                                          "then need (default: the env var A3LIGN_API_KEY)")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("make-batch", help="a synthetic batch of new identities under a params override "
                                          "(drift monitor test data)")
    p.add_argument("out", help="batch folder (videos/ and the generator's manifest)")
    p.add_argument("--identities", type=int, default=8)
    p.add_argument("--clips-per-identity", type=int, default=None, help="default: synthetic.clips_per_identity")
    p.add_argument("--seed", type=int, default=100, help="generator seed; any value but data.seed draws new faces")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="params override, e.g. --set synthetic.light_gain=0.4")
    p.set_defaults(func=cmd_make_batch)

    p = sub.add_parser("release", help="quality gate on the built model; a pass registers a GTO version (staging)")
    p.add_argument("--prod", action="store_true", help="also assign prod")
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("report-page", help="reports/index.html: metrics, figures, training curves, data, drift, "
                                            "deployment manifest, registry, on one offline page")
    p.add_argument("--reports", required=True, help="the reports folder the pipeline writes")
    p.add_argument("--deploy", required=True, help="the deployment artifact folder (its manifest.json)")
    p.add_argument("--curves", required=True, help="folder for the static training-curve PNGs")
    p.add_argument("--out", required=True, help="the page (links are relative to its folder)")
    p.add_argument("--screenshot", help="also render the page in headless Chromium and save a screenshot here")
    p.set_defaults(func=cmd_report_page)

    p = sub.add_parser("plots-template", help="offline HTML template for `dvc plots show` (Vega scripts inlined)")
    p.add_argument("--out", default=".dvc/plots_offline.html")
    p.set_defaults(func=cmd_plots_template)

    p = sub.add_parser("results", help="rewrite the README results table from reports/")
    p.add_argument("--readme", default="README.md")
    p.add_argument("--reports", default="reports")
    p.set_defaults(func=cmd_results)
    return parser


def main(argv: list[str] | None = None) -> int:
    from a3lign_dfer.config import load_params

    args = build_parser().parse_args(argv)
    if hasattr(args, "device") and args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    # serving and monitoring need no params.yaml; make-batch loads it with its overrides
    params = None if args.command in ("predict", "drift", "make-batch") else load_params(args.params)
    return args.func(args, params) or 0


if __name__ == "__main__":
    sys.exit(main())
