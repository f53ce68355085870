"""The reports page and the offline plots: built from the committed reports, opened in headless Chromium.

Chromium is a system package (`apt-get install chromium`); the browser checks skip with that
reason where it is absent, the rest (links, byte-stability, curve renders, DVC's output) still run.
"""
from __future__ import annotations

import json
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pandas as pd
import pytest
from conftest import PARAMS, ROOT, run_cmd

from a3lign_dfer.config.deploy import DEPLOY_DIR
from a3lign_dfer.monitoring.results import ClassMixDrift, ColumnDrift, EmbeddingDrift
from a3lign_dfer.monitoring.summary import Comparison, DriftSummary
from a3lign_dfer.orchestration.dvc_runner import run_dvc
from a3lign_research.browser import find_chromium, image_spread, render_in_chromium
from a3lign_dfer.reporting.curves import read_stage, render_curves
from a3lign_dfer.reporting.page import SECTIONS, build_page

REPORTS = ROOT / "reports"
TRAINING = ["stage1", "stage2", "stage2_text", "stage3", "all_at_once_separate", "all_at_once_joint"]
needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="Chromium is not installed (apt-get install chromium): "
                                           "the browser check needs it")

MANIFEST = {
    "clip_model": "models/clip_small", "classes": ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"],
    "source_checkpoint": {"path": "models/stage3", "sha256": "076a93b5a8e2" + "0" * 52, "stage": "stage3",
                          "train_seed": 0},
    "opset": 17, "io": {"inputs": {"frames": [None, 16, 3, 64, 64]}, "outputs": {"logits": [None, 7]}},
    "max_batch": 16, "test_metrics": {"war": 0.85, "uar": 0.78, "shuffled_uar_drop": 0.11, "num_test_clips": 358},
    "parity_onnxruntime_vs_torch": {"clips": 358, "max_abs_logit_difference": 0.00035, "top1_agreement": 1.0,
                                    "logit_atol": 0.001, "passed": True},
    "tensorrt": {"status": "skipped", "reason": "TensorRT is not installed"},
    "drift_reference": {"status": "written", "reference_clips": 240},
    "versions": {"torch": "2.14.1", "onnx": "1.23.2"},
    "files": {"model.onnx": "4557b7984e27754c" + "0" * 48, "labels.json": "51c49c67b9b5505b" + "0" * 48},
}


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[tuple[str, str]] = []
        self.ids: set[str] = set()
        self.external_scripts: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key):
                self.urls.append((tag, attrs[key]))


class Cards(HTMLParser):
    """The header cards of the metrics section: {label: value}, each read from its own card's elements."""

    def __init__(self):
        super().__init__()
        self.cards: dict[str, str] = {}
        self._part: str | None = None
        self._card: dict[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        if tag == "div" and "card" in classes:
            self._card = {"value": "", "label": ""}
        elif tag == "div" and self._card is not None and {"value", "label"} & set(classes):
            self._part = "value" if "value" in classes else "label"

    def handle_endtag(self, tag):
        if tag == "div" and self._part:
            self._part = None
            if self._card["label"]:
                self.cards[self._card["label"].strip()] = self._card["value"].strip()

    def handle_data(self, data):
        if self._part:
            self._card[self._part] += data


def cards_of(page: Path) -> dict[str, str]:
    parser = Cards()
    parser.feed(page.read_text())
    return parser.cards


def links_of(page: Path) -> Links:
    parser = Links()
    parser.feed(page.read_text())
    return parser


def assert_links_resolve(page: Path) -> list[Path]:
    """Every href/src is relative and names an existing file (or an id on the page); returns the files."""
    parser, files = links_of(page), []
    for tag, url in parser.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"<{tag}> points off the machine: {url}"
        if not parts.path:
            assert parts.fragment in parser.ids, f"anchor #{parts.fragment} has no target"
            continue
        target = (page.parent / unquote(parts.path)).resolve()
        assert target.is_file(), f"<{tag}> {url} does not resolve ({target})"
        files.append(target)
    return files


def _drift_summary(batch: str, drifted: bool):
    """47 of 48 videos read; five input columns, of which emb_02, brightness and contrast moved in the dark batch."""
    ps = {"emb_02": 1e-9, "emb_03": 0.3, "brightness": 1e-6, "contrast": 0.02, "sharpness": 0.4} if drifted else \
        {"emb_02": 0.3, "emb_03": 0.01, "brightness": 0.5, "contrast": 0.6, "sharpness": 0.4}
    comparison = Comparison(
        columns={c: ColumnDrift(p, "ks", 0.05, p < 0.05, 1.0, 1.0) for c, p in ps.items()},
        class_mix=ClassMixDrift(0.5, "TVD", 0.05, False, {"happy": 1.0}, {"happy": 1.0}),
        confidence=ColumnDrift(0.5, "ks", 0.05, False, 0.8, 0.8),
        embedding=EmbeddingDrift(0.31 if drifted else 0.001, 32), thresholds=PARAMS.drift)
    folder = f"reports/drift/{batch}"
    return DriftSummary(batch, [f"data/batches/{batch}"], 48, 47, [{"path": "x.mp4", "reason": "x.mp4: no face"}],
                        "val", 240, str(DEPLOY_DIR), "onnxruntime", f"{folder}/report.html", f"{folder}/report.json",
                        comparison)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A workspace as the pipeline leaves it: the committed reports, Data Docs, a drift report, a deploy
    manifest, and a git repo with one registered GTO version in staging; the page built twice."""
    from gto import api

    repo = tmp_path_factory.mktemp("site") / "repo"
    reports = repo / "reports"
    for rel in ["eval", "shuffle", "train", "seeds", "face_crop.json", "pretrain_clip.json", "features.json",
                "export.json"]:
        (shutil.copytree if (REPORTS / rel).is_dir() else shutil.copy)(REPORTS / rel, reports / rel)
    (reports / "paper").mkdir()                                   # what `paper` writes (made up here)
    for name in ("index.md", "table3.md"):
        (reports / "paper" / name).write_text("| MAT | JAS |\n|---|---|\n")
    shutil.copy(REPORTS / "eval/confusion.png", reports / "paper/figure4.png")
    (reports / "validation").mkdir()
    (reports / "validation/index.html").write_text("<html><body>Data Docs</body></html>")
    (reports / "validation.json").write_text(json.dumps({
        "success": True, "clips": 1015, "clips_per_split": {"train": 419, "val": 238, "test": 358},
        "class_counts": {}, "smallest_class": {"train": {"class": "disgust", "clips": 12}},
        "clips_without_detection_rate": 0,
        "expectations": [{"expectation": "expect_column_values_to_be_in_set(label_known)", "success": True,
                          "unexpected": 0}], "skipped": [], "failures": [],
        "data_docs": "reports/validation/index.html"}))       # a whole report: the page reads it by its contract
    for i, (batch, drifted) in enumerate([("batch_0001", False), ("dark_0002", True)]):   # the drift command's
        folder = reports / "drift" / batch                                                # files, as it writes them
        folder.mkdir(parents=True)
        (folder / "report.html").write_text("<html><body>drift</body></html>")
        (folder / "summary.json").write_text(_drift_summary(batch, drifted).to_json())
        os.utime(folder / "report.html", (1e9 + i, 1e9 + i))
    (reports / "drift/old_0000").mkdir()                          # a report whose summary.json is not one
    (reports / "drift/old_0000/report.html").write_text("<html><body>drift</body></html>")
    (reports / "drift/old_0000/summary.json").write_text(json.dumps({"drift": True}))
    os.utime(reports / "drift/old_0000/report.html", (1e9 - 1, 1e9 - 1))
    (repo / DEPLOY_DIR).mkdir(parents=True)
    (repo / DEPLOY_DIR / "manifest.json").write_text(json.dumps(MANIFEST))
    for cmd in (["git", "init", "-q"], ["git", "config", "user.name", "test"],
                ["git", "config", "user.email", "test@example.com"], ["git", "add", "-A"],
                ["git", "commit", "-qm", "reports"]):
        run_cmd(cmd, repo)
    api.register(str(repo), "a3lign-dfer", ref="HEAD", version="v0.1.0")
    api.assign(str(repo), "a3lign-dfer", "staging", version="v0.1.0")

    out = reports / "index.html"
    args = (reports, repo / DEPLOY_DIR, reports / "curves", out, repo)
    first = build_page(*args)
    first_bytes = out.read_bytes()
    first_curves = {p.name: p.read_bytes() for p in first["curves"]}
    second = build_page(*args)
    return {"repo": repo, "page": out, "built": second, "first_bytes": first_bytes, "first_curves": first_curves}


def test_every_link_resolves_and_every_report_is_linked(site):
    page, reports = site["page"], site["repo"] / "reports"
    files = set(assert_links_resolve(page))
    expected = [reports / rel for rel in ("eval/metrics.json", "eval/confusion.png", "eval/predictions.csv",
                                          "shuffle/metrics.json", "shuffle/per_class_recall.png", "export.json",
                                          "face_crop.json", "features.json", "pretrain_clip.json",
                                          "validation.json", "validation/index.html",
                                          "drift/batch_0001/report.html", "seeds/summary.md", "curves/bap_ladder.png",
                                          "paper/index.md", "paper/table3.md", "paper/figure4.png")]
    expected += [site["repo"] / DEPLOY_DIR / "manifest.json"]
    expected += [reports / "train" / s / rel for s in TRAINING for rel in ("metrics.json", "plots/metrics/val/uar.tsv")]
    expected += [reports / "curves" / f"{s}.png" for s in TRAINING]
    assert sorted(p for p in expected if p.resolve() not in files) == []
    # No network: no script, stylesheet or image from anywhere but the page's folder tree.
    text = page.read_text()
    assert "http://" not in text and "https://" not in text and "<link" not in text


def test_page_shows_the_numbers_of_the_reports_it_links(site):
    text = site["page"].read_text()
    evaluation = json.loads((REPORTS / "eval/metrics.json").read_text())
    shuffle = json.loads((REPORTS / "shuffle/metrics.json").read_text())
    # Each header card shows its own number (not merely somewhere on the page).
    cards = cards_of(site["page"])
    assert cards[f"test UAR % (chance {100 * evaluation['chance_uar']:.1f})"] == f"{100 * evaluation['uar']:.1f}"
    assert cards["test WAR % (final model)"] == f"{100 * evaluation['war']:.1f}"
    assert cards["shuffled-frame UAR drop (points)"] == f"{100 * shuffle['shuffled']['uar_drop']:.1f}"
    parity = json.loads((REPORTS / "export.json").read_text())["parity"]
    [(label, value)] = [(k, v) for k, v in cards.items() if k.startswith("ONNX vs PyTorch parity")]
    assert value == ("passed" if parity["passed"] else "FAILED")
    assert f"max |Δlogit| {parity['max_abs_logit_difference']:.2g}" in label
    for row in evaluation["table4"]:                      # every Table 4 row, labelled as evaluate labelled it
        assert f"<td>{row['stage']}</td>" in text
    assert "validation/index.html" in text and "smallest training class disgust (12 clips)" in text
    assert "batch_0001/report.html" in text
    # Each drift report's verdict from its summary, newest first.
    dark, clean = text.index("dark_0002/report.html"), text.index("batch_0001/report.html")
    assert dark < clean < text.index("old_0000/report.html") and "47 / 48" in text
    assert text.count(">DRIFT</b>") == 1 and text.count(">no drift</b>") == 1 and "<td>?</td>" in text
    assert "<td>3 of 5 (60%; flag above 30%): emb_02, brightness, contrast</td>" in text
    assert "<td>1 of 5 (20%; flag above 30%): emb_03</td>" in text
    assert "<td>0.31 (mmd; flag above 0.05)</td>" in text and "<td>0.001 (mmd; flag above 0.05)</td>" in text
    assert "<td>brightness, emb_02</td>" in text and "<td>none</td>" in text   # crop statistics named first
    assert "opset" in text.lower() and "<td>17</td>" in text and "model.onnx" in text
    assert "<b>v0.1.0</b>" in text and "staging" in text   # the registry as GTO reads the tags


def test_page_and_curves_are_byte_stable(site):
    assert site["page"].read_bytes() == site["first_bytes"]
    assert {p.name: p.read_bytes() for p in site["built"]["curves"]} == site["first_curves"]
    assert str(site["repo"]) not in site["page"].read_text()   # no absolute path of the machine that built it


def test_curve_renders_exist_and_are_drawn(site):
    curves = site["repo"] / "reports/curves"
    assert sorted(p.stem for p in curves.glob("*.png")) == sorted([*TRAINING, "bap_ladder"])
    for png in curves.glob("*.png"):
        assert image_spread(png) > 0.05, f"{png.name} looks blank"


def test_phase_marks_follow_the_trained_plan_and_are_dropped_when_the_log_disagrees(tmp_path):
    curves = read_stage(REPORTS / "train", "stage2")
    # The plan the stage ran, written into its metrics by the stage itself.
    assert [(p.epochs, p.depth) for p in curves.report.plan] == list(zip(PARAMS.stage2.epochs, PARAMS.stage2.layers))
    assert curves.phase_epochs == tuple(PARAMS.stage2.epochs) and curves.boundaries == [PARAMS.stage2.epochs[0]]
    assert len(curves.log) == sum(PARAMS.stage2.epochs)
    assert list(curves.log["epoch"][:2]) == [1, 2]
    logged = pd.read_csv(REPORTS / "train/stage2/plots/metrics/val/uar.tsv", sep="\t")
    assert curves.log["val_uar"].tolist() == logged["uar"].tolist()          # DVCLive's series, in epoch order
    for phase in curves.report.phases:      # the epoch each phase kept, numbered as the trainer numbers it
        assert curves.log.loc[curves.log["epoch"] == phase["epoch"], "val_uar"].item() == \
            pytest.approx(phase["val_uar"])
    shutil.copytree(REPORTS / "train/stage2", tmp_path / "train/stage2")
    metrics = json.loads((tmp_path / "train/stage2/metrics.json").read_text())
    metrics["plan"] = [{"epochs": 5, "depth": 2}, {"epochs": 5, "depth": 4}]      # not the run that wrote the log
    (tmp_path / "train/stage2/metrics.json").write_text(json.dumps(metrics))
    assert read_stage(tmp_path / "train", "stage2").phase_epochs == ()
    # A stage log without a plan (a stage the table does not know) still renders, without phase marks.
    shutil.copytree(REPORTS / "train/stage1", tmp_path / "train/new_stage")
    (tmp_path / "train/new_stage/metrics.json").unlink()
    drawn = {d["stage"]: d for d in render_curves(tmp_path / "train", tmp_path / "curves")}
    assert drawn["new_stage"]["phase_epochs"] == [] and image_spread(tmp_path / "curves/new_stage.png") > 0.05


def test_page_builds_without_git_deploy_or_drift(tmp_path):
    reports = tmp_path / "reports"
    shutil.copytree(REPORTS / "eval", reports / "eval")
    shutil.copytree(REPORTS / "train/stage1", reports / "train/stage1")
    built = build_page(reports, tmp_path / DEPLOY_DIR, reports / "curves", reports / "index.html", tmp_path)
    text = built["page"].read_text()
    assert "Registry not read" in text and "not a git repository" in text
    assert "No deployment artifact yet" in text and "No drift reports yet" in text
    assert "Data validation has not run yet" in text
    assert_links_resolve(built["page"])


@needs_chromium
def test_page_renders_offline_in_chromium(site, tmp_path):
    rendered = render_in_chromium(site["page"], tmp_path / "index.png")
    assert 'data-broken-images="0"' in rendered.dom, "a figure did not load"
    for key, title in SECTIONS:
        assert f'id="{key}"' in rendered.dom and title in rendered.dom
    assert image_spread(rendered.screenshot) > 0.05
    print(f"screenshot: {rendered.screenshot}")


@needs_chromium
def test_a_missing_figure_is_named_on_the_page(site, tmp_path):
    page = tmp_path / "site/reports/index.html"
    shutil.copytree(site["repo"] / "reports", page.parent)
    (page.parent / "curves/stage3.png").unlink()
    dom = render_in_chromium(page).dom
    assert 'data-broken-images="1"' in dom and "curves/stage3.png" in dom


def _plots_repo(tmp_path: Path) -> Path:
    """This project's dvc.yaml, .dvc config and offline template, and the committed training/eval plots."""
    repo = tmp_path / "plots_repo"
    (repo / ".dvc").mkdir(parents=True)
    shutil.copy(ROOT / "dvc.yaml", repo)
    for name in ("config", "plots_offline.html"):
        shutil.copy(ROOT / ".dvc" / name, repo / ".dvc" / name)
    for rel in ("train", "eval", "shuffle"):
        shutil.copytree(REPORTS / rel, repo / "reports" / rel)
    run_cmd(["git", "init", "-q"], repo)
    return repo


def test_dvc_plots_show_uses_the_offline_template(tmp_path):
    repo = _plots_repo(tmp_path)
    run_dvc(["plots", "show", "-o", "dvc_plots"], repo)
    html = (repo / "dvc_plots/index.html").read_text()
    assert "cdn.jsdelivr" not in html and '<script src="http' not in html
    assert "window.vegaEmbed" in html and html.count("vegaEmbed('#") >= 4 * len(TRAINING) + 1


@needs_chromium
def test_dvc_plots_show_draws_the_curves_in_chromium_offline(tmp_path):
    repo = _plots_repo(tmp_path)
    run_dvc(["plots", "show", "-o", "dvc_plots"], repo)
    rendered = render_in_chromium(repo / "dvc_plots/index.html", tmp_path / "dvc_plots.png", height=1400)
    # Vega drew one line per DVCLive series (4 per training stage) and the confusion template's cells.
    assert rendered.dom.count('class="mark-line role-mark') >= 4 * len(TRAINING)
    assert 'class="mark-rect role-mark' in rendered.dom
    assert image_spread(rendered.screenshot) > 0.05


def test_offline_template_is_what_the_installed_vl_convert_bundles():
    pytest.importorskip("vl_convert", reason="vl-convert-python is not installed: it regenerates the template")
    from a3lign_dfer.reporting.plots_template import offline_template

    assert (ROOT / ".dvc/plots_offline.html").read_text() == offline_template(), \
        "regenerate it: python -m a3lign_dfer plots-template --out .dvc/plots_offline.html"
    assert "plots_offline.html" in (ROOT / ".dvc/config").read_text()
