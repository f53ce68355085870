"""`drift`: a batch of videos against the reference profile in models/deploy, as an Evidently report.

The batch (videos, or frame folders of a dataset that ships aligned face crops) goes
through the serving path (monitoring.columns: decode, face crop, JPEG round trip,
sampling, the deployed graph), then Evidently compares its columns with the validation
clips' (profile.py); when the batch's kind of clip is not the reference's, the summary
says what differs by construction (monitoring.text):

* data drift per input column: each embedding component and crop statistic, K-S test;
* the embedding as a whole: Evidently's EmbeddingsDrift on the components (method and
  threshold from the profile, i.e. params.yaml `drift.embedding`); that metric also draws a
  t-SNE of both sets, which needs more than TSNE_PERPLEXITY clips together, so with fewer
  the same method scores the embedding alone and the report has no embedding panel;
* prediction drift: the predicted-class mix (total-variation distance, permutation
  p-value) and the confidence (K-S).

A column "drifted" (in the report and the share) at p < `column_p_value`. Whether the
batch drifted is monitoring.rules' verdict on these results under the profile's
thresholds (params.yaml `drift` at export). Out folder:
report.html (a verdict header above Evidently's report), report.json (Evidently's
results), summary.json (monitoring.summary.DriftSummary: verdict, reasons, drifted
columns, scores, bad files) and columns.csv (the batch's rows).

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
from a3lign_dfer.inference.video_input import InputError, PreprocessSpec, input_kind
from a3lign_dfer.monitoring.columns import video_columns
from a3lign_dfer.monitoring.profile import DriftProfile
from a3lign_dfer.monitoring.results import ClassMixDrift, ColumnDrift, EmbeddingDrift
# EXIT_DRIFT is the status callers compare with (tests, scripts).
from a3lign_dfer.monitoring.summary import EXIT_DRIFT, EXIT_USAGE, Comparison, DriftSummary, kind_counts  # noqa: F401
from a3lign_dfer.monitoring.text import describe

EMBEDDING = "clip_embedding"
TSNE_PERPLEXITY = 30               # Evidently's EmbeddingsDrift plot: reference + batch must exceed it


def embedding_method(cfg: EmbeddingDriftConfig):
    from evidently.metrics.embeddings import DistanceDriftMethod, MMDDriftMethod, ModelDriftMethod, RatioDriftMethod

    methods = {"model": ModelDriftMethod, "mmd": MMDDriftMethod, "ratio": RatioDriftMethod,
               "distance": DistanceDriftMethod}
    return methods[cfg.method](threshold=cfg.threshold)


def compare(batch: pd.DataFrame, profile: DriftProfile, name: str, metadata: dict):
    """The Evidently snapshot of `batch` against the reference, and the Comparison read from it: each result
    is found by the id of the metric that computed it (the preset's own per-column metrics are listed by
    Evidently's MetricContainer.list_metrics). Whether the batch drifted is for monitoring.rules to say."""
    os.environ.setdefault("DO_NOT_TRACK", "1")     # no Evidently usage telemetry
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift, ValueDrift
    from evidently.presets import DataDriftPreset

    cfg = profile.thresholds
    inputs = profile.embedding + profile.stats
    definition = DataDefinition(numerical_columns=inputs + ["confidence"], categorical_columns=["predicted"],
                                embeddings={EMBEDDING: profile.embedding})
    per_column = DataDriftPreset(columns=inputs, num_method="ks", threshold=cfg.column_p_value,
                                 drift_share=cfg.drifted_share)
    class_mix = ValueDrift(column="predicted", method="TVD", threshold=cfg.column_p_value)
    confidence = ValueDrift(column="confidence", method="ks", threshold=cfg.column_p_value)
    # DataDriftPreset ignores its embedding arguments, so the embedding test is asked for on its own.
    embedding = EmbeddingsDrift(embeddings_name=EMBEDDING, drift_method=embedding_method(cfg.embedding))
    plotted = len(batch) + len(profile.reference) > TSNE_PERPLEXITY
    report = Report([per_column, class_mix, confidence, *([embedding] if plotted else [])], include_tests=True)
    columns = inputs + ["predicted", "confidence"]
    current = Dataset.from_pandas(batch[columns].reset_index(drop=True), data_definition=definition)
    reference = Dataset.from_pandas(profile.reference[columns].reset_index(drop=True), data_definition=definition)
    with np.errstate(invalid="ignore", divide="ignore"):      # a constant column (detection rate 1) is no error
        snapshot = report.run(current, reference, metadata=metadata, tags=["a3lign-dfer", "drift"], name=name)

    def test(metric) -> dict:
        """A ValueDrift's p-value, method, threshold and verdict (its drift test failed)."""
        result = snapshot.metric_results[metric.metric_id]
        return {"score": float(result.value), "method": metric.method, "threshold": metric.threshold,
                "drifted": any(t.status == "FAIL" for t in result.tests)}

    def numeric(metric) -> ColumnDrift:
        return ColumnDrift(**test(metric), reference_mean=float(profile.reference[metric.column].mean()),
                           current_mean=float(batch[metric.column].mean()))

    by_column = {m.column: m for m in per_column.list_metrics(snapshot.context) if isinstance(m, ValueDrift)}
    return snapshot, Comparison(
        columns={c: numeric(by_column[c]) for c in inputs},
        class_mix=ClassMixDrift(**test(class_mix), reference=_shares(profile.reference["predicted"]),
                                current=_shares(batch["predicted"])),
        confidence=numeric(confidence),
        embedding=EmbeddingDrift(score=float(snapshot.metric_results[embedding.metric_id].value) if plotted else
                                 float(embedding_method(cfg.embedding)(batch[profile.embedding].reset_index(drop=True),
                                                                       profile.reference[profile.embedding]
                                                                       .reset_index(drop=True))[0]),
                                 components=len(profile.embedding)),
        thresholds=cfg)


def _shares(labels: pd.Series) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in labels.value_counts(normalize=True).sort_index().items()}


def _header(summary: DriftSummary) -> str:
    """The verdict, reasons, drifted columns and bad files, above Evidently's own report."""
    e, text = html.escape, describe(summary)
    rows = [f"<h2>Drift report: {e(summary.batch)}</h2>",
            f"<p><b style='color:{'#c00' if text.alert else '#070'}'>{e(text.verdict)}</b>: {e(text.compared)}.</p>"]
    if text.caveat:
        rows.append(f"<p><b>Caveat</b>: {e(text.caveat)}.</p>")
    if text.reasons:
        rows.append("<ul>" + "".join(f"<li>{e(r)}</li>" for r in text.reasons) + "</ul>")
    if text.drifted_table:
        rows.append("<table border=1 cellpadding=3><tr><th>drifted column</th><th>p-value</th>"
                    "<th>reference mean</th><th>batch mean</th></tr>" + "".join(
                        "<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>"
                        for row in text.drifted_table) + "</table>")
    if text.unreadable:
        rows.append(f"<h3>{len(text.unreadable)} video(s) could not be read</h3><ul>" + "".join(
            f"<li><code>{e(path)}</code>: {e(reason)}</li>" for path, reason in text.unreadable) + "</ul>")
    return "<div style='font-family:sans-serif;margin:16px'>" + "\n".join(rows) + "</div>"


def check_batch(inputs: list[str], deploy_dir: Path, out_dir: Path, backend: str = "onnxruntime",
                device: str = "cpu") -> DriftSummary:
    """The drift check of the videos in `inputs` (folders, files, CSVs with `path`), its files written to out_dir.
    Raises FileNotFoundError (an artifact without a profile) or InputError (no videos, a bad CSV)."""
    deploy_dir, out_dir = Path(deploy_dir), Path(out_dir)
    profile = DriftProfile.load(deploy_dir)
    paths = expand(inputs)
    if not paths:
        raise InputError(f"no videos in {' '.join(inputs)}", "bad_list")
    spec = PreprocessSpec.load(deploy_dir / "preprocess.json")
    classes = json.loads((deploy_dir / "labels.json").read_text())["classes"]
    table, bad = video_columns(paths, load_backend(deploy_dir, backend, device), spec, classes, profile.pca,
                               spec.face_crop.workers, desc="drift")
    name = Path(inputs[0]).stem if len(inputs) == 1 else out_dir.name
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "columns.csv", index=False)
    snapshot, comparison = None, None
    if not table.empty:
        snapshot, comparison = compare(table, profile, name, {"batch": name, "videos": len(paths),
                                                              "bad_files": json.dumps(bad)})
        snapshot.save_json(str(out_dir / "report.json"))
    summary = DriftSummary(
        batch=name, inputs=list(inputs), videos=len(paths), readable=len(table), bad_files=bad,
        reference_split=profile.meta["reference"]["split"], reference_clips=len(profile.reference),
        deploy=str(deploy_dir), backend=backend, report_html=str(out_dir / "report.html"),
        report_json=str(out_dir / "report.json") if snapshot is not None else None, comparison=comparison,
        kinds=kind_counts(map(input_kind, table["path"])), reference_kinds=profile.meta["reference"].get("kinds", {}))
    page = "<!DOCTYPE html><html><body></body></html>" if snapshot is None else snapshot.get_html_str(as_iframe=False)
    (out_dir / "report.html").write_text(page.replace("<body>", f"<body>\n{_header(summary)}", 1))
    (out_dir / "summary.json").write_text(summary.to_json())
    return summary


def run_drift(inputs: list[str], deploy_dir: Path, out_dir: Path, backend: str = "onnxruntime",
              device: str = "cpu") -> int:
    """The `drift` command: check_batch, its unreadable files and verdict printed; the exit status."""
    try:
        summary = check_batch(inputs, deploy_dir, out_dir, backend, device)
    except (FileNotFoundError, InputError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    text = describe(summary)
    for _, reason in text.unreadable:
        print(f"error: {reason}", file=sys.stderr)
    print(text.line)
    return summary.exit_code
