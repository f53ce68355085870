"""Prefect flow `a3lign-dfer-monitor`: the drift command on the newest batch in a watched folder.

A batch is a folder of videos or a CSV of video paths (a `predict --out` table works)
dropped into the watched folder; the newest (by modification time) is checked with
`python -m a3lign_dfer drift` against the reference profile in the deployment
artifact. The summary (verdict, reasons, drifted columns, embedding score, class mix,
unreadable files) is attached as the markdown artifact `drift-summary` with a link to
the HTML report, and the run fails (red in the UI) when drift is flagged.

    python -m flows.monitor --watch data/batches
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from a3lign_dfer.inference.predict_videos import VIDEO_SUFFIXES


class DriftDetected(RuntimeError):
    """The batch drifted from the reference profile (the drift command exited with 3)."""


@task(cache_policy=NO_CACHE, task_run_name="newest_batch")
def newest_batch(watch: Path) -> Path:
    """The most recently modified folder or CSV in `watch` (ties: the last name)."""
    if not watch.is_dir():
        raise FileNotFoundError(f"watched folder {watch} does not exist")
    batches = [p for p in watch.iterdir() if (p.is_dir() or p.suffix.lower() == ".csv" or
                                              p.suffix.lower() in VIDEO_SUFFIXES) and not p.name.startswith(".")]
    if not batches:
        raise FileNotFoundError(f"no batch (a folder of videos or a CSV) in {watch}")
    return max(batches, key=lambda p: (p.stat().st_mtime, p.name))


@task(cache_policy=NO_CACHE, task_run_name="drift_check")
def drift_check(batch: Path, deploy: Path, out: Path, backend: str, repo: Path) -> dict:
    """Run the drift command; its summary.json, or a failure with its last output lines (usage errors)."""
    cmd = [sys.executable, "-m", "a3lign_dfer", "drift", str(batch), "--deploy", str(deploy), "--out", str(out),
           "--backend", backend]
    done = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
    logger = get_run_logger()
    for line in (done.stdout + done.stderr).splitlines():
        if line.strip() and "%|" not in line:                  # progress-bar redraws stay out of the log
            logger.info(line)
    if done.returncode not in (0, 1, 3) or not (out / "summary.json").exists():
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"drift command failed (exit {done.returncode}):\n{tail}")
    return json.loads((out / "summary.json").read_text())


def summary_markdown(summary: dict) -> str:
    html = Path(summary["report"]["html"]).resolve()
    lines = [f"# {'DRIFT' if summary['drift'] else 'No drift'}: batch `{summary['batch']}`", "",
             f"{summary['readable']} of {summary['videos']} videos compared with {summary['reference']['clips']} "
             f"validation clips. Report: [{html.name}]({html.as_uri()}) (`{html}`)", ""]
    lines += [f"* {r}" for r in summary.get("reasons", [])]
    if "drifted_share" in summary:
        e = summary["embedding"]
        mix = summary["prediction"]["class_mix"]
        lines += ["", "| check | value |", "|---|---|",
                  f"| share of drifted input columns | {summary['drifted_share']:.2f} "
                  f"(flag above {summary['thresholds']['drifted_share']}) |",
                  f"| drifted columns | {', '.join(summary['drifted_columns']) or 'none'} |",
                  f"| embedding drift ({e['method']}) | {e['score']:.4g} (flag above {e['threshold']}) |",
                  f"| class mix p-value | {mix['score']:.3g} |",
                  f"| confidence p-value | {summary['prediction']['confidence']['score']:.3g} |"]
    if summary["bad_files"]:
        lines += ["", f"**{len(summary['bad_files'])} unreadable video(s):**", ""]
        lines += [f"* `{b['path']}`: {b['reason']}" for b in summary["bad_files"]]
    return "\n".join(lines)


@flow(name="a3lign-dfer-monitor")
def monitor(watch: str = "data/batches", repo: str = ".", deploy: str = "models/deploy",
            reports: str = "reports/drift", backend: str = "onnxruntime") -> dict:
    """Drift report of the newest batch in `watch`; fails when drift is flagged.

    Args:
        watch: folder where new batches (folders of videos or CSVs) arrive; relative paths are under `repo`.
        repo: the project workspace (the drift command runs there).
        deploy: the deployment artifact with its reference profile.
        reports: the report goes to <reports>/<batch name>/ (report.html, report.json, summary.json).
        backend: onnxruntime, torch or tensorrt.
    """
    root = Path(repo).resolve()
    batch = newest_batch(root / watch)
    summary = drift_check(batch, root / deploy, root / reports / batch.stem, backend, root)
    create_markdown_artifact(key="drift-summary", markdown=summary_markdown(summary),
                             description=f"drift of batch {summary['batch']} against the reference profile")
    html = Path(summary["report"]["html"]).resolve()
    create_link_artifact(key="drift-report", link=html.as_uri(), link_text=f"{summary['batch']}: report.html",
                         description="the Evidently drift report (HTML)")
    logger = get_run_logger()
    if summary["drift"]:
        raise DriftDetected(f"drift in batch {summary['batch']}: " + "; ".join(summary["reasons"]) + f" ({html})")
    logger.info(f"no drift in batch {summary['batch']} ({html})")
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watch", default="data/batches")
    parser.add_argument("--repo", default=".")
    parser.add_argument("--deploy", default="models/deploy")
    args = parser.parse_args()
    monitor(args.watch, args.repo, args.deploy)
