"""Static PNG renders of every training stage's per-epoch curves, readable with no browser script.

Each training stage logs one DVCLive row per epoch (`<live>/plots/metrics/{train,val}/*.tsv`,
step = epoch - 1, epochs counted across the stage's growth phases). A stage's figure
has two panels, train/val loss and val WAR/UAR, with the growth phases marked (the
encoder depth of each phase, its boundaries from the phase plan the stage wrote into its
metrics.json, i.e. what was trained, whatever params.yaml says today) and
the val-selected epoch of each phase (from the stage's metrics.json) starred. The
ladder figure joins the BAP stages' val UAR end to end.

Example: python -m a3lign_dfer report-page --reports reports --deploy models/deploy --out reports/index.html
(the report page renders these into reports/curves/).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from a3lign_dfer.config.stage_table import BY_NAME, LADDER, STAGES
from a3lign_dfer.report_files import TrainingReport, training
SERIES = {"train_loss": "train/loss.tsv", "val_loss": "val/loss.tsv", "val_war": "val/war.tsv",
          "val_uar": "val/uar.tsv"}
# PNG text chunks hold no version or date, so the same curves give the same bytes.
PNG_METADATA = {"Software": None}


@dataclass(frozen=True)
class StageCurves:
    stage: str
    log: pd.DataFrame                 # epoch (1-based), train_loss, val_loss, val_war, val_uar
    report: TrainingReport | None     # the stage's metrics.json (plan, val report, selected epoch per phase)
    phase_epochs: tuple[int, ...]     # epochs of each growth phase, from its plan; () when they do not match the log

    @property
    def boundaries(self) -> list[int]:
        """Last epoch of every phase but the last."""
        ends, total = [], 0
        for n in self.phase_epochs[:-1]:
            total += n
            ends.append(total)
        return ends


def training_stages(train_dir: Path) -> list[str]:
    """Stages with a DVCLive log under `train_dir`: the BAP ladder in order, the ablations, then any other."""
    present = sorted(p.parents[3].name for p in train_dir.glob("*/plots/metrics/val/uar.tsv"))
    known = [row.name for row in STAGES if row.name in present]
    return known + [s for s in present if s not in known]


def read_stage(train_dir: Path, stage: str) -> StageCurves:
    """A stage's per-epoch log (one column per DVCLive series) and its metrics."""
    plots = train_dir / stage / "plots/metrics"
    log = None
    for column, rel in SERIES.items():
        table = pd.read_csv(plots / rel, sep="\t")
        table = table.rename(columns={table.columns[1]: column})
        log = table if log is None else log.merge(table, on="step", how="outer")
    log = log.sort_values("step").reset_index(drop=True)
    log.insert(0, "epoch", log.pop("step") + 1)
    report = training(stage).read(train_dir.parent)
    phases = tuple(p.epochs for p in report.plan) if report else ()
    if sum(phases) != len(log):     # the log and the metrics are of different runs: no phase marks rather than wrong ones
        phases = ()
    return StageCurves(stage, log, report, phases)


def selected_epochs(curves: StageCurves) -> list[dict]:
    """Each phase's val-selected epoch row (empty without a report)."""
    return [p for p in (curves.report.phases if curves.report else []) if "val_uar" in p]


def _phase_marks(ax, curves: StageCurves, top: float) -> None:
    starts = [0, *curves.boundaries]
    depths = [p.depth for p in curves.report.plan] if curves.report else []
    for end in curves.boundaries:
        ax.axvline(end + 0.5, color="0.45", linestyle="--", linewidth=0.9)
    if len(curves.phase_epochs) > 1 and len(depths) == len(curves.phase_epochs):
        low, high = ax.get_ylim()
        ax.set_ylim(low, high + 0.12 * (high - low))      # headroom for the phase labels
        for start, n, depth in zip(starts, curves.phase_epochs, depths):
            ax.text(start + n / 2 + 0.5, top, f"phase {depth} layers", ha="center", va="top", fontsize=8,
                    color="0.25", transform=ax.get_xaxis_transform(),
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})


def plot_stage(curves: StageCurves, path: Path) -> None:
    log = curves.log
    fig = Figure(figsize=(10, 3.8))
    loss_ax, acc_ax = fig.subplots(1, 2)
    marker = "o" if len(log) <= 25 else None
    loss_ax.plot(log["epoch"], log["train_loss"], label="train loss", color="tab:blue", marker=marker, markersize=3)
    loss_ax.plot(log["epoch"], log["val_loss"], label="val loss", color="tab:orange", marker=marker, markersize=3)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    acc_ax.plot(log["epoch"], 100 * log["val_war"], label="val WAR", color="tab:green", marker=marker, markersize=3)
    acc_ax.plot(log["epoch"], 100 * log["val_uar"], label="val UAR", color="tab:purple", marker=marker,
                markersize=3)
    selected = selected_epochs(curves)
    if selected:
        acc_ax.plot([p["epoch"] for p in selected], [100 * p["val_uar"] for p in selected], linestyle="none",
                    marker="*", markersize=13, color="tab:red", label="val-selected epoch")
    acc_ax.set(xlabel="epoch", ylabel="%", title="validation WAR / UAR")
    for ax in (loss_ax, acc_ax):
        _phase_marks(ax, curves, 0.98)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
        ax.set_xlim(0.5, max(len(log), 1) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(BY_NAME[curves.stage].title if curves.stage in BY_NAME else curves.stage, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata=PNG_METADATA)


def plot_ladder(stages: list[StageCurves], path: Path) -> None:
    """Val UAR of the BAP stages end to end: each stage starts from the previous one's checkpoint."""
    fig = Figure(figsize=(10, 3.2))
    ax = fig.subplots()
    offset = 0
    for curves in stages:
        epochs = curves.log["epoch"] + offset
        ax.plot(epochs, 100 * curves.log["val_uar"], linewidth=1.2, label=curves.stage)
        if offset:
            ax.axvline(offset + 0.5, color="0.3", linewidth=1)
        for p in selected_epochs(curves):
            ax.plot(p["epoch"] + offset, 100 * p["val_uar"], marker="*", markersize=11, color="tab:red")
        offset += len(curves.log)
    ax.set(xlabel="epoch (stages end to end)", ylabel="val UAR %",
           title="BAP ladder: val UAR through the stages (stars: each growth phase's val-selected epoch)")
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8, loc="lower right", ncol=len(stages))
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata=PNG_METADATA)


def render_curves(train_dir: Path, out_dir: Path) -> list[dict]:
    """One PNG per training stage (and the ladder) in `out_dir`; what was drawn, per stage."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.png"):           # a stage that no longer exists leaves no stale figure
        old.unlink()
    drawn, ladder = [], []
    for stage in training_stages(train_dir):
        curves = read_stage(train_dir, stage)
        path = out_dir / f"{stage}.png"
        plot_stage(curves, path)
        if stage in LADDER:
            ladder.append(curves)
        drawn.append({"stage": stage, "figure": path, "epochs": len(curves.log),
                      "phase_epochs": list(curves.phase_epochs), "report": curves.report})
    if ladder:
        plot_ladder(ladder, out_dir / "bap_ladder.png")
    return drawn
