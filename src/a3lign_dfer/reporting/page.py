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
bytes. This module gathers the data (what each report says, which files exist, links
relative to the page); the markup is the Jinja2 template templates/report_page.html.j2,
rendered with autoescape. The registry section is what `gto show` says when the page
is built (the tags are not a DVC dependency): `gto show` gives the current state.

Example: python -m a3lign_dfer report-page --reports reports --deploy models/deploy \
    --curves reports/curves --out reports/index.html
"""
from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from a3lign_dfer.config.stage_table import LADDER
from a3lign_dfer.monitoring.summary import DriftSummary
from a3lign_dfer.monitoring.text import describe
from a3lign_dfer.registry.versions import version_rows
from a3lign_dfer.report_files import (DEPLOY_MANIFEST, EVALUATION, EXPORT, FACE_CROP, FEATURES, PRETRAIN_CLIP,
                                      SHUFFLE_CHECK, VALIDATION)
from a3lign_dfer.reporting.curves import SERIES, render_curves

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE = "report_page.html.j2"

SECTIONS = (("metrics", "Test metrics"), ("figures", "Evaluation figures"), ("curves", "Training curves"),
            ("data", "Data"), ("drift", "Drift"), ("deployment", "Deployment"), ("registry", "Registry"),
            ("more", "More reports"))


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _escape(value) -> Markup:
    """Autoescape with the standard library's entities (&quot;, &#x27;), as the page has always written them."""
    return value if hasattr(value, "__html__") else Markup(html.escape(str(value)))


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, finalize=_escape)
    env.filters["pct"] = _pct
    env.filters["fmt"] = format
    return env


@dataclass(frozen=True)
class Link:
    label: str
    href: str | None            # None: the file is not built yet


@dataclass(frozen=True)
class Figure:
    caption: str
    name: str
    src: str | None             # None: the image is not built yet
    width: int | None = None


class Page:
    """The page being written: links are relative to the folder the page is in."""

    def __init__(self, out: Path):
        self.base = out.parent
        self.linked: list[Path] = []

    def href(self, target: Path) -> str:
        return Path(os.path.relpath(target, self.base)).as_posix()

    def link(self, target: Path, label: str | None = None) -> Link:
        if not target.exists():
            return Link(label or target.name, None)
        self.linked.append(target)
        return Link(label or target.name, self.href(target))

    def figure(self, target: Path, caption: str, width: int | None = None) -> Figure:
        if not target.is_file():
            return Figure(caption, target.name, None, width)
        self.linked.append(target)
        return Figure(caption, target.name, self.href(target), width)


def metrics_section(page: Page, reports: Path) -> dict | None:
    evaluation, shuffle, export = EVALUATION.read(reports), SHUFFLE_CHECK.read(reports), EXPORT.read(reports)
    if evaluation is None:
        return None
    shuffled = {(r["paradigm"], r["image_layers"], r["text_layers"]): r for r in (shuffle.table5 if shuffle else [])}
    table4 = []
    for r in evaluation.table4:
        s = shuffled.get((r["paradigm"], r["image_layers"], r["text_layers"]), {})
        table4.append({"paradigm": r["paradigm"], "image_layers": r["image_layers"], "text_layers": r["text_layers"],
                       "war": r["war"], "uar": r["uar"], "shuffled_uar": s.get("shuffled_uar"),
                       "shuffled_uar_drop": s.get("shuffled_uar_drop"), "stage": r["stage"],
                       "selected_epoch": r.get("val_selected_epoch")})
    classes = list(evaluation.classes)
    recall = [("normal order", [evaluation.per_class_recall[c] for c in classes])]
    if shuffle:
        recall.append(("shuffled frames", [shuffle.shuffled.per_class_recall[c] for c in classes]))
    return {"war": evaluation.war, "uar": evaluation.uar, "chance_uar": evaluation.chance_uar,
            "uar_drop": shuffle.shuffled.uar_drop if shuffle else None,
            "parity": export.parity if export else None,
            "train_seed": evaluation.train_seed, "table4": table4, "classes": classes, "recall": recall,
            "seeds": page.link(reports / "seeds/summary.md", "seeds/summary.md"),
            "files": [page.link(reports / rel, rel) for rel in (EVALUATION.path, "eval/predictions.csv",
                                                                SHUFFLE_CHECK.path)]}


def figures_section(page: Page, reports: Path) -> list[Figure]:
    return [page.figure(reports / "eval/confusion.png", "Test confusion matrix of the final model", 520),
            page.figure(reports / "shuffle/per_class_recall.png",
                        "Per-class test recall, normal vs shuffled frame order", 600)]


def curves_section(page: Page, reports: Path, curves_dir: Path) -> dict:
    drawn = render_curves(reports / "train", curves_dir)
    ladder = (page.figure(curves_dir / "bap_ladder.png", "BAP ladder: val UAR through stages 1 to 3")
              if any(d["stage"] in LADDER for d in drawn) else None)
    stages = []
    for d in drawn:
        stage, report = d["stage"], d["report"]
        facts = [f"{d['epochs']} epochs"]
        if report:
            selected, val = report.selected, report.val
            facts.append(f"kept epoch {selected['epoch']}" + (f" ({selected['depth']} layers)"
                                                             if selected.get("depth") else ""))
            facts.append(f"val WAR {_pct(val.war)}%, UAR {_pct(val.uar)}%")
            facts.append(f"shuffled-frame UAR drop {_pct(val.shuffled.uar_drop)} points")
            facts.append(f"{report.seconds:.0f} s")
        if not d["phase_epochs"]:
            facts.append("phase boundaries not drawn: the log does not match the phase plan in the stage's metrics")
        live = reports / "train" / stage
        stages.append({"stage": stage, "figure": page.figure(d["figure"], "; ".join(facts)),
                       "files": [page.link(live / "metrics.json", "metrics.json")]
                                + [page.link(live / "plots/metrics" / rel, rel) for rel in SERIES.values()]})
    return {"ladder": ladder, "stages": stages}


def data_section(page: Page, reports: Path) -> dict:
    crop, validation = FACE_CROP.read(reports), VALIDATION.read(reports)
    clip, feats = PRETRAIN_CLIP.read(reports), FEATURES.read(reports)
    data = {"docs": page.link(reports / "validation/index.html", "validation/index.html"),
            "crop": None, "validation": None, "clip": None, "features": None}
    if crop:
        data["crop"] = {"report": crop, "link": page.link(reports / FACE_CROP.path)}
    if validation:
        data["validation"] = {
            "success": validation.success, "passed": sum(e["success"] for e in validation.expectations),
            "expectations": len(validation.expectations), "clips": validation.clips,
            "split": ", ".join(f"{k} {v}" for k, v in validation.clips_per_split.items()),
            "smallest": validation.smallest_class.get("train"),
            "failures": validation.failures[:10], "link": page.link(reports / VALIDATION.path)}
    if clip:
        data["clip"] = {"report": clip, "link": page.link(reports / PRETRAIN_CLIP.path)}
    if feats:
        data["features"] = {"report": feats, "link": page.link(reports / FEATURES.path)}
    return data


def drift_section(page: Page, reports: Path) -> list[dict]:
    """One row per drift report (the drift command's summary.json beside its report.html), newest first, in the
    summary's own words (monitoring.text); a summary that is missing or unreadable shows as unknown."""
    reports_html = sorted((reports / "drift").glob("*/report.html"), key=lambda p: p.stat().st_mtime, reverse=True)
    batches = []
    for folder in (p.parent for p in reports_html):
        summary = _drift_summary(folder / "summary.json")
        batches.append({
            "report": page.link(folder / "report.html", folder.name),
            "text": describe(summary) if summary else None,
            "readable": f"{summary.readable} / {summary.videos}" if summary else "",
            "files": [page.link(folder / name) for name in ("summary.json", "report.json")
                      if (folder / name).exists()]})
    return batches


def _drift_summary(path: Path) -> DriftSummary | None:
    try:
        return DriftSummary.load(path)
    except (OSError, ValueError, KeyError, TypeError):        # missing, not JSON, or not a drift summary
        return None


def deployment_section(page: Page, reports: Path, deploy: Path) -> dict:
    manifest = DEPLOY_MANIFEST.read(deploy)
    section = {"folder": deploy.as_posix(), "export": page.link(reports / EXPORT.path), "manifest": None}
    if manifest is None:
        return section
    source = manifest.source_checkpoint
    section["manifest_link"] = page.link(deploy / DEPLOY_MANIFEST.path, DEPLOY_MANIFEST.path)
    section["manifest"] = {
        "source": {"path": source.path, "stage": source.stage, "train_seed": source.train_seed,
                   "sha256": source.sha256[:12]},
        "clip_model": manifest.clip_model, "classes": manifest.classes, "opset": manifest.opset,
        "max_batch": manifest.max_batch,
        "shapes": "; ".join(f"{kind[:-1]} {name} {['batch' if d is None else d for d in shape]}"
                            for kind in ("inputs", "outputs") for name, shape in manifest.io.get(kind, {}).items()),
        "test": manifest.test_metrics, "parity": manifest.parity_onnxruntime_vs_torch,
        "tensorrt": {"status": manifest.tensorrt.get("status", "n/a"), "reason": manifest.tensorrt.get("reason")},
        "versions": list(manifest.versions.items()),
        "files": [(name, digest[:16]) for name, digest in sorted(manifest.files.items())]}
    return section


def registry_section(repo: Path) -> dict:
    """Every artifact's versions as GTO reads them from the git tags, or why they cannot be read."""
    try:
        return {"versions": version_rows(str(repo)), "error": None}
    except Exception as error:           # no git repository, no tags, an unreadable tag: say so, do not fail
        return {"versions": [], "error": f"{type(error).__name__}: {error}"}


def more_section(page: Page, reports: Path) -> list[tuple[str, list[Link]]]:
    items = [("Seeds: mean ± std over training seeds", [reports / "seeds/summary.md", reports / "seeds/summary.json"]),
             ("The paper's experiments (`make paper`): tables and figures",
              [reports / "paper/index.md", *sorted((reports / "paper").glob("[!i]*.md")),
               *sorted((reports / "paper").glob("*.png"))]),
             ("Serving benchmark", [reports / "benchmarks/serving.json"]),
             ("Prefect UI screenshots", sorted((reports / "prefect_ui").glob("*.png")))]
    return [(label, [page.link(p, p.relative_to(reports).as_posix()) for p in paths])
            for label, paths in items if any(p.exists() for p in paths)]


def render_page(context: dict) -> str:
    return environment().get_template(TEMPLATE).render(context)


def build_page(reports: Path, deploy: Path, curves_dir: Path, out: Path, repo: Path = Path(".")) -> dict:
    """Write the page (and the curve figures it shows); what it linked, for checks."""
    page = Page(out)
    evaluation = EVALUATION.read(reports)
    header = None if not evaluation else {
        "checkpoint": evaluation.checkpoint, "train_seed": evaluation.train_seed, "clips": evaluation.num_test_clips,
        "classes": len(evaluation.classes), "clip_model": evaluation.clip_model}
    context = {
        "sections": SECTIONS, "header": header,
        "metrics": metrics_section(page, reports),
        "figures": figures_section(page, reports),
        "curves": curves_section(page, reports, curves_dir),
        "data": data_section(page, reports),
        "drift": drift_section(page, reports),
        "deployment": deployment_section(page, reports, deploy),
        "registry": registry_section(repo),
        "more": more_section(page, reports),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_page(context), encoding="utf-8")
    return {"page": out, "linked": sorted(set(page.linked)), "curves": sorted(curves_dir.glob("*.png"))}
