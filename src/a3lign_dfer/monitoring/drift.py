"""`drift`: a batch of videos against the reference profile in models/deploy, as an Evidently report.

The batch goes through the serving path (monitoring.columns: decode, face crop,
JPEG round trip, sampling, the deployed graph), then Evidently compares its columns
with the validation clips' (profile.py):

* data drift per input column: each embedding component and crop statistic, K-S test;
* the embedding as a whole: Evidently's EmbeddingsDrift on the components (method and
  threshold from the profile, i.e. params.yaml `drift.embedding`);
* prediction drift: the predicted-class mix (total-variation distance, permutation
  p-value) and the confidence (K-S).

A column "drifted" (in the report and the share) at p < `column_p_value`. Drift is
flagged when more than `drifted_share` of the input columns drifted, or any one input
column's p-value is below `alarm_p_value` (many columns at 0.05 flag some by chance;
this is the Bonferroni-style bar for one column), or the embedding drifted, or the
class-mix p-value is below `class_mix_p_value`. Thresholds come from the profile
(params.yaml `drift` at export). Out folder:
report.html (a verdict header above Evidently's report), report.json (Evidently's
results), summary.json (verdict, reasons, drifted columns, scores, bad files) and
columns.csv (the batch's rows).

Exit status: 0 no drift, 3 drift flagged, 1 no drift flagged but some videos could not
be read (each named in the report; with none readable there is nothing to compare),
2 usage (no videos, a CSV without a `path` column, an artifact without a profile).

Example: python -m a3lign_dfer drift data/batches/night --deploy models/deploy --out reports/drift/night
"""
from __future__ import annotations

import html
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from a3lign_dfer.config.deploy import EmbeddingDriftConfig
from a3lign_dfer.inference.backends import load_backend
from a3lign_dfer.inference.predict_videos import expand
from a3lign_dfer.inference.video_input import InputError, PreprocessSpec
from a3lign_dfer.monitoring.columns import video_columns
from a3lign_dfer.monitoring.profile import DriftProfile

EXIT_OK, EXIT_BAD_INPUT, EXIT_USAGE, EXIT_DRIFT = 0, 1, 2, 3
EMBEDDING = "clip_embedding"


def embedding_method(cfg: EmbeddingDriftConfig):
    from evidently.metrics.embeddings import DistanceDriftMethod, MMDDriftMethod, ModelDriftMethod, RatioDriftMethod

    methods = {"model": ModelDriftMethod, "mmd": MMDDriftMethod, "ratio": RatioDriftMethod,
               "distance": DistanceDriftMethod}
    return methods[cfg.method](threshold=cfg.threshold)


def _column_results(snapshot) -> dict[str, dict]:
    """Per column of every ValueDrift in the report: its score, method and Evidently's drift verdict."""
    results = snapshot.dict()
    scores = {m["config"]["column"]: (m["value"], m["config"].get("method"))
              for m in results["metrics"] if m["config"]["type"].endswith("ValueDrift")}
    out = {}
    for test in results["tests"]:
        params = test["metric_config"]["params"]
        if params["type"].endswith("ValueDrift"):
            score, method = scores[params["column"]]
            out[params["column"]] = {"score": float(score), "method": method, "threshold": params["threshold"],
                                     "drifted": test["status"] == "FAIL"}
    return out


def compare(batch: pd.DataFrame, profile: DriftProfile, name: str, metadata: dict):
    """The Evidently snapshot of `batch` against the reference and the summary read from it."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift, ValueDrift
    from evidently.presets import DataDriftPreset

    cfg = profile.thresholds
    inputs = profile.embedding + profile.stats
    definition = DataDefinition(numerical_columns=inputs + ["confidence"], categorical_columns=["predicted"],
                                embeddings={EMBEDDING: profile.embedding})
    method = embedding_method(cfg.embedding)
    report = Report([
        DataDriftPreset(columns=inputs, num_method="ks", threshold=cfg.column_p_value, drift_share=cfg.drifted_share),
        ValueDrift(column="predicted", method="TVD", threshold=cfg.column_p_value),
        ValueDrift(column="confidence", method="ks", threshold=cfg.column_p_value),
        EmbeddingsDrift(embeddings_name=EMBEDDING, drift_method=method),
    ], include_tests=True)
    columns = inputs + ["predicted", "confidence"]
    current = Dataset.from_pandas(batch[columns].reset_index(drop=True), data_definition=definition)
    reference = Dataset.from_pandas(profile.reference[columns].reset_index(drop=True), data_definition=definition)
    with np.errstate(invalid="ignore", divide="ignore"):      # a constant column (detection rate 1) is no error
        snapshot = report.run(current, reference, metadata=metadata, tags=["a3lign-dfer", "drift"], name=name)

    results = _column_results(snapshot)
    # The verdict of the embedding method itself (deterministic: its random states are fixed), on copies,
    # because the model method adds a column to what it is given.
    score, embedding_drifted, _ = method(batch[profile.embedding].reset_index(drop=True).copy(),
                                         profile.reference[profile.embedding].reset_index(drop=True).copy())
    drifted = [c for c in inputs if results[c]["drifted"]]
    share = len(drifted) / len(inputs)
    mix = {"reference": _shares(profile.reference["predicted"]), "current": _shares(batch["predicted"])}
    alarms = [c for c in inputs if results[c]["score"] < cfg.alarm_p_value]
    mix_p = results["predicted"]["score"]
    reasons = []
    if share > cfg.drifted_share:
        reasons.append(f"{len(drifted)} of {len(inputs)} input columns drifted at p < {cfg.column_p_value} "
                       f"({share:.0%} > {cfg.drifted_share:.0%})")
    if alarms:
        first = sorted(alarms, key=lambda c: (c not in profile.stats, results[c]["score"]))   # crop stats first
        named = ", ".join(f"{c} (p={results[c]['score']:.2g}, mean {profile.reference[c].mean():.4g} -> "
                          f"{batch[c].mean():.4g})" for c in first[:6])
        more = f" and {len(first) - 6} more" if len(first) > 6 else ""
        reasons.append(f"{len(alarms)} column(s) moved beyond chance (p < {cfg.alarm_p_value}): {named}{more}")
    if embedding_drifted:
        reasons.append(f"the embedding drifted ({cfg.embedding.method} score {score:.4g} > {cfg.embedding.threshold})")
    if mix_p < cfg.class_mix_p_value:
        reasons.append(f"the predicted-class mix drifted (TVD permutation p = {mix_p:.3g} < {cfg.class_mix_p_value})")
    summary = {
        "drift": bool(reasons), "reasons": reasons,
        "drifted_share": round(share, 4), "drifted_columns": drifted, "alarm_columns": alarms,
        "embedding": {"method": cfg.embedding.method, "score": float(score), "threshold": cfg.embedding.threshold,
                      "drifted": bool(embedding_drifted), "components": len(profile.embedding)},
        "prediction": {"class_mix": results["predicted"] | mix, "confidence": results["confidence"]
                       | {"reference_mean": float(profile.reference["confidence"].mean()),
                          "current_mean": float(batch["confidence"].mean())}},
        "columns": {c: results[c] | {"reference_mean": float(profile.reference[c].mean()),
                                     "current_mean": float(batch[c].mean())} for c in inputs},
        "thresholds": profile.meta["thresholds"],
    }
    return snapshot, summary


def _shares(labels: pd.Series) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in labels.value_counts(normalize=True).sort_index().items()}


def _header(summary: dict) -> str:
    """The verdict, reasons, drifted columns and bad files, above Evidently's own report."""
    e = html.escape
    verdict = ("<b style='color:#c00'>DRIFT</b>" if summary["drift"] else "<b style='color:#070'>no drift</b>"
               if summary.get("readable") else "<b style='color:#c00'>no readable video</b>")
    rows = [f"<h2>Drift report: {e(summary['batch'])}</h2>",
            f"<p>{verdict}: {summary['readable']} of {summary['videos']} videos compared with "
            f"{summary['reference']['clips']} validation clips of the deployed artifact.</p>"]
    if summary.get("reasons"):
        rows.append("<ul>" + "".join(f"<li>{e(r)}</li>" for r in summary["reasons"]) + "</ul>")
    if "columns" in summary:
        moved = sorted(summary["columns"].items(), key=lambda kv: kv[1]["score"])
        rows.append("<table border=1 cellpadding=3><tr><th>column</th><th>p-value</th><th>reference mean</th>"
                    "<th>batch mean</th><th>drifted</th></tr>" + "".join(
                        f"<tr><td>{e(c)}</td><td>{r['score']:.3g}</td><td>{r['reference_mean']:.4g}</td>"
                        f"<td>{r['current_mean']:.4g}</td><td>{'yes' if r['drifted'] else ''}</td></tr>"
                        for c, r in moved if r["drifted"]) + "</table>")
    if summary["bad_files"]:
        rows.append(f"<h3>{len(summary['bad_files'])} video(s) could not be read</h3><ul>" + "".join(
            f"<li><code>{e(b['path'])}</code>: {e(b['reason'])}</li>" for b in summary["bad_files"]) + "</ul>")
    return "<div style='font-family:sans-serif;margin:16px'>" + "\n".join(rows) + "</div>"


def run_drift(inputs: list[str], deploy_dir: Path, out_dir: Path, backend: str = "onnxruntime",
              device: str = "cpu") -> int:
    os.environ.setdefault("DO_NOT_TRACK", "1")     # no Evidently usage telemetry
    deploy_dir, out_dir = Path(deploy_dir), Path(out_dir)
    try:
        profile = DriftProfile.load(deploy_dir)
        paths = expand(inputs)
    except (FileNotFoundError, InputError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    if not paths:
        print(f"error: no videos in {' '.join(inputs)}", file=sys.stderr)
        return EXIT_USAGE
    spec = PreprocessSpec.load(deploy_dir / "preprocess.json")
    classes = json.loads((deploy_dir / "labels.json").read_text())["classes"]
    table, bad = video_columns(paths, load_backend(deploy_dir, backend, device), spec, classes, profile.pca,
                               spec.face_crop.workers, desc="drift")
    for b in bad:
        print(f"error: {b['reason']}", file=sys.stderr)
    name = Path(inputs[0]).stem if len(inputs) == 1 else out_dir.name
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {"batch": name, "inputs": inputs, "videos": len(paths), "readable": len(table), "bad_files": bad,
               "reference": {"split": profile.meta["reference"]["split"], "clips": len(profile.reference)},
               "deploy": str(deploy_dir), "backend": backend}
    table.to_csv(out_dir / "columns.csv", index=False)
    if table.empty:
        summary |= {"drift": False, "reasons": ["no readable video: nothing to compare"]}
        (out_dir / "report.html").write_text(f"<!DOCTYPE html><html><body>{_header(summary)}</body></html>")
    else:
        snapshot, result = compare(table, profile, name, {"batch": name, "videos": len(paths),
                                                          "bad_files": json.dumps(bad)})
        summary |= result
        snapshot.save_json(str(out_dir / "report.json"))
        page = snapshot.get_html_str(as_iframe=False)
        (out_dir / "report.html").write_text(page.replace("<body>", f"<body>\n{_header(summary)}", 1))
    summary["report"] = {"html": str(out_dir / "report.html")} | (
        {"json": str(out_dir / "report.json")} if (out_dir / "report.json").exists() else {})
    summary["exit_code"] = EXIT_DRIFT if summary["drift"] else EXIT_BAD_INPUT if bad else EXIT_OK
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    print(verdict_line(summary))
    return summary["exit_code"]


def verdict_line(summary: dict) -> str:
    if summary["drift"]:
        return f"DRIFT in {summary['batch']}: " + "; ".join(summary["reasons"]) + f" -> {summary['report']['html']}"
    return (f"no drift in {summary['batch']} ({summary['readable']} of {summary['videos']} videos, "
            f"{len(summary.get('drifted_columns', []))} columns moved) -> {summary['report']['html']}")


def _json_default(value):
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {value!r}")
