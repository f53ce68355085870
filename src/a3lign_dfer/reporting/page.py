"""One reports page, `reports/index.html`: every report the pipeline writes, on one offline page.

It shows the test metrics (WAR, UAR, the shuffled-frame drop, ONNX parity, Table 4
with its shuffled column, per-class recall), the evaluation
figures, the per-epoch curves of every training stage (static PNGs, see curves.py),
the data reports (face crop, the Great Expectations Data Docs, small-CLIP
pretraining, feature cache), the drift reports under `reports/drift/`, the
deployment manifest and the model registry's versions and stages (GTO), and links
every file it summarises.

The page is one self-contained HTML file: inline CSS, relative links to files
beside it, no script or font from the network, so it opens from disk on an offline
machine. It holds no timestamp or absolute path: the same inputs give the same
bytes. The registry section is what `gto show` says when the page is built (the
tags are not a DVC dependency): `gto show` gives the current state.

Example: python -m a3lign_dfer report-page --reports reports --deploy models/deploy \
    --curves reports/curves --out reports/index.html
"""
from __future__ import annotations

import html
import json
import os
from pathlib import Path

from a3lign_dfer.config import Params
from a3lign_dfer.reporting.curves import BAP_STAGES, SERIES, render_curves

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0; color: #1d2330;
       background: #f5f6f8; }
header { background: #1f3a5f; color: white; padding: 18px 32px 12px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 2px 0; color: #d8e1ee; }
header code { background: rgba(255,255,255,0.15); color: #ffffff; }
nav { margin-top: 10px; }
nav a { color: #ffffff; margin-right: 14px; font-size: 14px; }
main { padding: 8px 32px 40px; max-width: 1240px; }
section { background: white; border-radius: 6px; padding: 12px 20px 16px; margin: 16px 0;
          box-shadow: 0 1px 2px rgba(0,0,0,0.08); }
h2 { font-size: 19px; margin: 6px 0 10px; color: #1f3a5f; }
h3 { font-size: 15px; margin: 14px 0 6px; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 14px; }
th, td { border-bottom: 1px solid #e1e4ea; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #eef1f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #dfe3ea; border-radius: 6px; padding: 10px 16px; min-width: 170px; }
.card .value { font-size: 26px; font-weight: 600; }
.card .label { font-size: 13px; color: #586174; }
.pass { color: #18794e; font-weight: 600; }
.fail { color: #c4302b; font-weight: 600; }
.missing { color: #8a6d00; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
figure { margin: 6px 0; }
figure img { max-width: 100%; border: 1px solid #e1e4ea; }
figcaption { font-size: 13px; color: #424b5c; margin-top: 4px; }
.files { font-size: 13px; color: #424b5c; }
code { font-size: 13px; background: #f0f2f5; padding: 0 3px; }
#broken-images { display: none; background: #fdecea; color: #8a1f11; padding: 8px 32px; }
"""

# Any image that failed to load is named in a banner (and counted on <body>, for the browser test).
CHECK_IMAGES = """<script>
window.addEventListener("load", function () {
  var broken = Array.prototype.filter.call(document.images, function (img) { return !img.naturalWidth; });
  document.body.setAttribute("data-broken-images", String(broken.length));
  if (broken.length) {
    var banner = document.getElementById("broken-images");
    banner.textContent = broken.length + " figure(s) did not load: " +
      broken.map(function (img) { return img.getAttribute("src"); }).join(", ");
    banner.style.display = "block";
  }
});
</script>"""

SECTIONS = (("metrics", "Test metrics"), ("figures", "Evaluation figures"), ("curves", "Training curves"),
            ("data", "Data"), ("drift", "Drift"), ("deployment", "Deployment"), ("registry", "Registry"),
            ("more", "More reports"))


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _e(value) -> str:
    return html.escape(str(value))


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


class Page:
    """The page being written: links are relative to the folder the page is in."""

    def __init__(self, out: Path):
        self.base = out.parent
        self.linked: list[Path] = []

    def href(self, target: Path) -> str:
        return Path(os.path.relpath(target, self.base)).as_posix()

    def link(self, target: Path, label: str | None = None) -> str:
        label = _e(label or target.name)
        if not target.exists():
            return f'<span class="missing" title="not built yet">{label} (not built yet)</span>'
        self.linked.append(target)
        return f'<a href="{_e(self.href(target))}">{label}</a>'

    def figure(self, target: Path, caption: str, width: int | None = None) -> str:
        if not target.is_file():
            return f'<p class="missing">{_e(caption)}: {_e(target.name)} not built yet</p>'
        self.linked.append(target)
        src = _e(self.href(target))
        size = f' width="{width}"' if width else ""
        return (f'<figure><a href="{src}"><img src="{src}" alt="{_e(caption)}"{size}></a>'
                f'<figcaption>{_e(caption)}</figcaption></figure>')


def _table(header: list[str] | None, rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    head = "<tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _card(value: str, label: str, css: str = "") -> str:
    return f'<div class="card"><div class="value {css}">{value}</div><div class="label">{label}</div></div>'


def metrics_section(page: Page, reports: Path) -> str:
    evaluation = _load(reports / "eval/metrics.json")
    shuffle = _load(reports / "shuffle/metrics.json")
    export = _load(reports / "export.json")
    if evaluation is None:
        return "<p class='missing'>No test evaluation yet: the evaluate stage writes reports/eval/metrics.json.</p>"
    drop = shuffle["shuffled"]["uar_drop"] if shuffle else None
    cards = [_card(_pct(evaluation["war"]), "test WAR % (final model)"),
             _card(_pct(evaluation["uar"]), f"test UAR % (chance {_pct(evaluation['chance_uar'])})"),
             _card(_pct(drop), "shuffled-frame UAR drop (points)")]
    parity = (export or {}).get("parity")
    if parity:
        css = "pass" if parity["passed"] else "fail"
        cards.append(_card("passed" if parity["passed"] else "FAILED",
                           f"ONNX vs PyTorch parity: max |Δlogit| {parity['max_abs_logit_difference']:.2g}, "
                           f"top-1 agreement {_pct(parity['top1_agreement'])}%", css))
    # The release gate's thresholds are not shown: they are params of the release, and a page that
    # read them would be out of date (and block the release) whenever they change.
    parts = [f'<div class="cards">{"".join(cards)}</div>',
             "<p class='files'>The release gate (<code>python -m a3lign_dfer release</code>) holds these numbers "
             "to the thresholds in params <code>release</code>.</p>"]

    shuffled = {(r["paradigm"], r["image_layers"], r["text_layers"]): r for r in (shuffle or {}).get("table5", [])}
    rows = []
    for r in evaluation["table4"]:
        s = shuffled.get((r["paradigm"], r["image_layers"], r["text_layers"]), {})
        rows.append([_e(r["paradigm"]), _e(r["image_layers"]), _e(r["text_layers"]), _pct(r["war"]), _pct(r["uar"]),
                     _pct(s.get("shuffled_uar")), _pct(s.get("shuffled_uar_drop")), _e(r["stage"]),
                     _e(r.get("val_selected_epoch"))])
    parts.append(f"<h3>Table 4 (and Table 5's shuffled frames), test split, train seed {_e(evaluation.get('train_seed'))}"
                 "</h3>" + _table(["Training paradigm", "Image layers", "Text layers", "WAR %", "UAR %",
                                   "shuffled UAR %", "UAR drop (points)", "stage", "val-selected epoch"],
                                  rows, numeric={3, 4, 5, 6, 8}))
    classes = evaluation["classes"]
    recall_rows = [["normal order", *(_pct(evaluation["per_class_recall"][c]) for c in classes)]]
    if shuffle:
        recall_rows.append(["shuffled frames", *(_pct(shuffle["shuffled"]["per_class_recall"][c]) for c in classes)])
    parts.append("<h3>Per-class test recall % (final model)</h3>"
                 + _table(["", *map(_e, classes)], recall_rows, numeric=set(range(1, len(classes) + 1))))
    parts.append('<p class="files">One seed, one draw: the spread over training seeds is in '
                 f'{page.link(reports / "seeds/summary.md", "seeds/summary.md")}. Files: '
                 f'{page.link(reports / "eval/metrics.json", "eval/metrics.json")}, '
                 f'{page.link(reports / "eval/predictions.csv", "eval/predictions.csv")}, '
                 f'{page.link(reports / "shuffle/metrics.json", "shuffle/metrics.json")}.</p>')
    return "\n".join(parts)


def figures_section(page: Page, reports: Path) -> str:
    return ('<div class="figures">'
            + page.figure(reports / "eval/confusion.png", "Test confusion matrix of the final model", 520)
            + page.figure(reports / "shuffle/per_class_recall.png",
                          "Per-class test recall, normal vs shuffled frame order", 600)
            + "</div>")


def curves_section(page: Page, reports: Path, curves_dir: Path, params: Params) -> str:
    drawn = render_curves(reports / "train", curves_dir, params)
    if not drawn:
        return "<p class='missing'>No training logs yet under reports/train/.</p>"
    parts = ["<p>Per epoch, from each stage's DVCLive log (the same series as <code>dvc plots show</code>, "
             "drawn here as static images). Dashed lines separate growth phases; stars mark the epoch each "
             "phase keeps, chosen on val.</p>"]
    if any(d["stage"] in BAP_STAGES for d in drawn):
        parts.append(page.figure(curves_dir / "bap_ladder.png", "BAP ladder: val UAR through stages 1 to 3"))
    for d in drawn:
        stage, metrics = d["stage"], d["metrics"]
        val, selected = metrics.get("val", {}), metrics.get("selected", {})
        facts = [f"{d['epochs']} epochs"]
        if selected.get("epoch") is not None:
            facts.append(f"kept epoch {selected['epoch']}" + (f" ({selected['depth']} layers)"
                                                             if selected.get("depth") else ""))
        if val:
            facts.append(f"val WAR {_pct(val.get('war'))}%, UAR {_pct(val.get('uar'))}%")
            if "shuffled" in val:
                facts.append(f"shuffled-frame UAR drop {_pct(val['shuffled']['uar_drop'])} points")
        if metrics.get("seconds") is not None:
            facts.append(f"{metrics['seconds']:.0f} s")
        if not d["phase_epochs"]:
            facts.append("phase boundaries not drawn: the log does not match the stage's epochs in params")
        live = reports / "train" / stage
        files = ", ".join([page.link(live / "metrics.json", "metrics.json")]
                          + [page.link(live / "plots/metrics" / rel, rel) for rel in SERIES.values()])
        parts.append(f'<h3 id="curves-{_e(stage)}">{_e(stage)}</h3>' + page.figure(d["figure"], "; ".join(facts))
                     + f'<p class="files">Files: {files}</p>')
    return "\n".join(parts)


def data_section(page: Page, reports: Path) -> str:
    parts = []
    crop = _load(reports / "face_crop.json")
    if crop:
        parts.append(f"<p><b>Face crop</b>: {crop['accepted']} of {crop['videos']} videos kept ({crop['rejected']} "
                     f"rejected), face found in {_pct(crop['detection_rate'])}% of frames, "
                     f"{crop['frames_per_second']:.0f} frames/s. {page.link(reports / 'face_crop.json')}</p>")
    validation = _load(reports / "validation.json")
    docs = reports / "validation/index.html"
    if validation:
        verdict = ('<span class="pass">passed</span>' if validation.get("success")
                   else '<span class="fail">failed</span>')
        expectations = validation.get("expectations", [])
        passed = sum(e["success"] for e in expectations)
        split = ", ".join(f"{k} {v}" for k, v in validation.get("clips_per_split", {}).items())
        smallest = (validation.get("smallest_class") or {}).get("train")
        small = (f"; smallest training class {_e(smallest['class'])} ({smallest['clips']} clips)"
                 if smallest else "")
        parts.append(f"<p><b>Data validation</b> (Great Expectations): {verdict}, {passed} of {len(expectations)} "
                     f"expectations met on {validation.get('clips')} clips ({_e(split)}){small}. "
                     f"Data Docs: {page.link(docs, 'validation/index.html')}; summary: "
                     f"{page.link(reports / 'validation.json')}</p>")
        for failure in validation.get("failures", [])[:10]:
            parts.append(f'<p class="fail">{_e(failure)}</p>')
    else:
        parts.append("<p class='missing'>Data validation has not run yet (the validate stage writes "
                     f"reports/validation.json and the Data Docs). Data Docs: {page.link(docs, 'validation/index.html')}</p>")
    clip = _load(reports / "pretrain_clip.json")
    if clip and not clip.get("skipped"):
        parts.append(f"<p><b>Small CLIP pretraining</b>: zero-shot on val frames showing a class prompt, accuracy "
                     f"{_pct(clip.get('zero_shot_frame_accuracy'))}%, UAR {_pct(clip.get('zero_shot_frame_uar'))}% "
                     f"(before pretraining {_pct(clip.get('zero_shot_frame_uar_before'))}%, chance "
                     f"{_pct(clip.get('zero_shot_chance'))}%). {page.link(reports / 'pretrain_clip.json')}</p>")
    elif clip:
        parts.append(f"<p><b>CLIP</b>: a pretrained CLIP is used; pretraining skipped. "
                     f"{page.link(reports / 'pretrain_clip.json')}</p>")
    feats = _load(reports / "features.json")
    if feats:
        parts.append(f"<p><b>Feature cache</b>: {feats['train_clips']} train ({feats['train_views']} views), "
                     f"{feats['val_clips']} val, {feats['test_clips']} test clips, {feats['embed_dim']}-d features, "
                     f"{feats['images_per_second']:.0f} images/s. {page.link(reports / 'features.json')}</p>")
    return "\n".join(parts) or "<p class='missing'>No data reports yet.</p>"


def drift_section(page: Page, reports: Path) -> str:
    """One row per drift report (the drift command's summary.json beside its report.html), newest first."""
    drift = reports / "drift"
    reports_html = sorted(drift.glob("*/report.html"), key=lambda p: p.stat().st_mtime, reverse=True)
    batches = [p.parent for p in reports_html]
    if not batches:
        return ("<p class='missing'>No drift reports yet: <code>python -m a3lign_dfer drift BATCH</code> and the "
                "monitor flow write them to reports/drift/&lt;batch&gt;/, and they are listed here, newest first.</p>")
    rows = []
    for folder in batches:
        summary = _load(folder / "summary.json") or {}
        verdict = ("<b style='color:#c00'>DRIFT</b>" if summary.get("drift") else
                   "<b style='color:#070'>no drift</b>" if summary else "?")
        columns = summary.get("columns", {})            # crop statistics first, then by p-value, as the verdict
        moved = sorted(summary.get("alarm_columns", []),
                       key=lambda c: (c.startswith("emb_"), columns.get(c, {}).get("score", 1.0)))
        embedding = summary.get("embedding", {})
        rows.append([page.link(folder / "report.html", folder.name), verdict,
                     f"{summary['readable']} / {summary['videos']}" if summary else "",
                     _pct(summary.get("drifted_share")) if summary else "",
                     _e(", ".join(moved[:4]) + (f" (+{len(moved) - 4})" if len(moved) > 4 else "")) or "none",
                     f"{embedding['score']:.3f} / {embedding['threshold']}" if embedding else "",
                     " ".join(page.link(folder / name) for name in ("summary.json", "report.json")
                              if (folder / name).exists())])
    return (f"<p>{len(batches)} batch(es) under reports/drift/, newest first. A batch is flagged when its "
            "share of drifted columns, any one column, the embedding as a whole or the predicted-class mix "
            "passes its threshold (params <code>drift</code>, README \"Monitoring\").</p>"
            + _table(["batch (Evidently report)", "verdict", "videos read", "drifted columns %",
                      "columns beyond chance (alarm p)", "embedding score / threshold", "files"], rows, {2, 3}))


def deployment_section(page: Page, reports: Path, deploy: Path) -> str:
    manifest = _load(deploy / "manifest.json")
    if manifest is None:
        return ("<p class='missing'>No deployment artifact yet: the export stage writes "
                f"{_e(deploy.as_posix())}/manifest.json. {page.link(reports / 'export.json')}</p>")
    source = manifest.get("source_checkpoint", {})
    io = manifest.get("io", {})
    shapes = "; ".join(f"{kind[:-1]} {name} {['batch' if d is None else d for d in shape]}"
                       for kind in ("inputs", "outputs") for name, shape in io.get(kind, {}).items())
    test = manifest.get("test_metrics", {})
    parity = manifest.get("parity_onnxruntime_vs_torch", {})
    trt = manifest.get("tensorrt", {})
    rows = [["source checkpoint", f"<code>{_e(source.get('path'))}</code> ({_e(source.get('stage'))}, train seed "
                                  f"{_e(source.get('train_seed'))}), sha256 {_e(str(source.get('sha256'))[:12])}"],
            ["CLIP", f"<code>{_e(manifest.get('clip_model'))}</code>"],
            ["classes", _e(", ".join(manifest.get("classes", [])))],
            ["ONNX opset", _e(manifest.get("opset"))],
            ["graph", _e(shapes)],
            ["max batch", _e(manifest.get("max_batch"))],
            ["test metrics", f"WAR {_pct(test.get('war'))}%, UAR {_pct(test.get('uar'))}%, shuffled-frame UAR drop "
                             f"{_pct(test.get('shuffled_uar_drop'))} points, {_e(test.get('num_test_clips'))} clips"],
            ["ONNX Runtime vs PyTorch", (f'<span class="{"pass" if parity.get("passed") else "fail"}">'
                                         f'{"passed" if parity.get("passed") else "FAILED"}</span> on '
                                         f"{_e(parity.get('clips'))} clips: max |Δlogit| "
                                         f"{parity.get('max_abs_logit_difference', float('nan')):.2g} (tolerance "
                                         f"{_e(parity.get('logit_atol'))}), top-1 agreement "
                                         f"{_pct(parity.get('top1_agreement'))}%")],
            ["TensorRT", _e(trt.get("status", "n/a")) + (f": {_e(trt['reason'])}" if trt.get("reason") else "")],
            ["versions", _e(", ".join(f"{k} {v}" for k, v in manifest.get("versions", {}).items()))]]
    files = [[f"<code>{_e(name)}</code>", f"<code>{_e(digest[:16])}</code>"]
             for name, digest in sorted(manifest.get("files", {}).items())]
    return (_table(None, rows)
            + f"<p class='files'>Manifest: {page.link(deploy / 'manifest.json', 'manifest.json')}; export report: "
              f"{page.link(reports / 'export.json')}</p>"
            + f"<h3>Files ({len(files)}), sha256</h3>" + _table(["file", "sha256 (first 16)"], files))


def registry_state(repo: Path) -> tuple[list[dict], str | None]:
    """Every artifact's versions as GTO reads them from the git tags: ([...], None), or ([], why not)."""
    try:
        from gto import api

        artifacts = api.show(str(repo))
        rows = []
        for name in sorted(artifacts):
            for v in api.show(str(repo), name):
                registered = next(iter(v.get("registrations") or []), {})
                created = registered.get("created_at")
                rows.append({"artifact": name, "version": v["version"], "commit": v["commit_hexsha"][:10],
                             "registered": created.strftime("%Y-%m-%d") if created else "",
                             "stages": sorted(s["stage"] for s in v.get("stages", [])),
                             "active": v.get("is_active", True)})
        return rows, None
    except Exception as error:           # no git repository, no tags, an unreadable tag: say so, do not fail
        return [], f"{type(error).__name__}: {error}"


def registry_section(repo: Path) -> str:
    rows, error = registry_state(repo)
    if error:
        return f"<p class='missing'>Registry not read: {_e(error)}</p>"
    if not rows:
        return ("<p class='missing'>No registered versions yet (no GTO tags). A release registers the "
                "deployment artifact: <code>python -m a3lign_dfer release</code>.</p>")
    table = _table(["artifact", "version", "commit", "registered", "stages"],
                   [[_e(r["artifact"]), f"<b>{_e(r['version'])}</b>", f"<code>{_e(r['commit'])}</code>",
                     _e(r["registered"]), _e(", ".join(r["stages"]) or "-")] for r in rows])
    return (table + "<p class='files'>As <code>gto show</code> read the git tags when this page was built; "
            "<code>gto show</code> gives the current state, <code>dvc artifacts get . a3lign-dfer --stage prod</code> "
            "fetches a stage's files.</p>")


def more_section(page: Page, reports: Path) -> str:
    items = [("Seeds: mean ± std over training seeds", [reports / "seeds/summary.md", reports / "seeds/summary.json"]),
             ("Serving benchmark", [reports / "benchmarks/serving.json"]),
             ("Prefect UI screenshots", sorted((reports / "prefect_ui").glob("*.png")))]
    lines = [f"<li>{_e(label)}: {', '.join(page.link(p, p.relative_to(reports).as_posix()) for p in paths)}</li>"
             for label, paths in items if any(p.exists() for p in paths)]
    lines.append("<li>Interactive plots: <code>dvc plots show</code> writes <code>dvc_plots/index.html</code> with the "
                 "same curves and the confusion template; its Vega scripts are inlined by the offline template "
                 "<code>.dvc/plots_offline.html</code>, so it also works with no network.</li>")
    return f"<ul>{''.join(lines)}</ul>"


def build_page(reports: Path, deploy: Path, curves_dir: Path, out: Path, params: Params,
               repo: Path = Path(".")) -> dict:
    """Write the page (and the curve figures it shows); what it linked, for checks."""
    page = Page(out)
    evaluation = _load(reports / "eval/metrics.json") or {}
    bodies = {
        "metrics": metrics_section(page, reports),
        "figures": figures_section(page, reports),
        "curves": curves_section(page, reports, curves_dir, params),
        "data": data_section(page, reports),
        "drift": drift_section(page, reports),
        "deployment": deployment_section(page, reports, deploy),
        "registry": registry_section(repo),
        "more": more_section(page, reports),
    }
    subtitle = (f"Final model <code>{_e(evaluation['checkpoint'])}</code> (train seed {_e(evaluation.get('train_seed'))}) "
                f"on the test split: {evaluation['num_test_clips']} clips, {len(evaluation['classes'])} classes, CLIP "
                f"<code>{_e(evaluation['clip_model'])}</code>." if evaluation else "The pipeline has not evaluated a model yet.")
    nav = "".join(f'<a href="#{key}">{_e(title)}</a>' for key, title in SECTIONS)
    sections = "\n".join(f'<section id="{key}"><h2>{_e(title)}</h2>\n{bodies[key]}\n</section>' for key, title in SECTIONS)
    document = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>A3lign-DFER reports</title>
<style>{CSS}</style>
</head>
<body>
<header><h1>A3lign-DFER reports</h1>
<p>{subtitle}</p>
<p>Built by the <code>report_page</code> stage of <code>dvc repro</code> from the files it links; opens offline.</p>
<nav>{nav}</nav></header>
<div id="broken-images"></div>
<main>
{sections}
</main>
{CHECK_IMAGES}
</body>
</html>
"""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(document, encoding="utf-8")
    return {"page": out, "linked": sorted(set(page.linked)), "curves": sorted(curves_dir.glob("*.png"))}
