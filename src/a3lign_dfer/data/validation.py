"""The gate between face crops and training: a Great Expectations suite on the crops
manifest and the crops on disk.

Two tables are validated, each by its own suite, and both land in one Data Docs site:

- `crops_manifest`, one row per clip: the manifest plus columns derived here from disk
  and from the table itself (`frames_on_disk`, `splits_of_identity`, and per manifest
  invariant what breaks it: the rules of data/manifest.py INVARIANTS, the same functions
  every manifest read checks), so every check is a stock expectation whose failing rows
  GE names by clip_id.
- `class_counts`, one row per class of data.classes: clips per split (0 where a class is
  absent), so a class missing from train is a failing row, not a silent gap.

A failed suite raises ValidationFailed naming each failed expectation and its first
offending rows; the summary (class counts, smallest class, per-expectation results) is
what the `validate` stage writes as its metrics, whether it passed or not.

GE runs in an ephemeral context: nothing is written but the Data Docs site, analytics
and progress bars are off.

    python -m a3lign_dfer validate --crops data/crops --out reports/validation --metrics reports/validation.json
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from a3lign_dfer.config.data import ValidateConfig
from a3lign_dfer.data.manifest import COLUMNS, HOLDS, INVARIANTS, SPLITS, evidence
from a3lign_dfer.markdown_table import markdown_table

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

ROW_KEYS = ("clip_id", "fold", "split", "identity")   # what names an offending clip in messages (those present)
SHOWN_ROWS = 3                            # offending rows quoted per failed expectation
DOCS_ENTRIES = ("index.html", "expectations", "validations", "static")   # what a Data Docs site consists of


class ValidationFailed(RuntimeError):
    """The suite failed; the message names each failed expectation and its first offending rows."""


@dataclass(frozen=True)
class Check:
    """One expectation and why the pipeline needs it (shown in messages and Data Docs)."""

    expectation: Any
    why: str


def crop_table(manifest: pd.DataFrame, crops_dir: Path, classes: tuple[str, ...]) -> pd.DataFrame:
    """The manifest plus the derived columns the suite checks.

    frames_on_disk: stored crop JPEGs in crops_dir/<path> (0 when the folder is missing);
    one column per manifest invariant (manifest.INVARIANTS, named as the invariant): what
    breaks it in the row, or manifest.HOLDS (only when every canonical column is present);
    splits_of_identity: splits the row's identity appears in within its fold (NaN when the
    identity is unknown; only with an `identity` column).
    """
    df = manifest.reset_index(drop=True).copy()
    if "path" in df.columns:
        df["frames_on_disk"] = [_count_frames(Path(crops_dir) / str(p)) for p in df["path"]]
    if set(COLUMNS) <= set(df.columns):
        df = df.join(evidence(df, classes))
    if {"identity", "fold", "split"} <= set(df.columns):
        df["splits_of_identity"] = df.groupby(["fold", "identity"], dropna=True)["split"].transform("nunique")
    return df


def _count_frames(folder: Path) -> int:
    return sum(1 for _ in folder.glob("*.jpg")) if folder.is_dir() else 0


def class_counts(manifest: pd.DataFrame, classes: tuple[str, ...]) -> pd.DataFrame:
    """One row per class in data.classes order: clips per split and in total (0 where absent)."""
    known = manifest[manifest["label_name"].isin(classes) & manifest["split"].isin(SPLITS)]
    table = pd.crosstab(known["label_name"], known["split"]).reindex(index=list(classes), columns=list(SPLITS),
                                                                     fill_value=0)
    table = table.fillna(0).astype(int)
    table["total"] = table.sum(axis=1)
    return table.rename_axis(index="label_name", columns=None).reset_index()


def manifest_checks(df: pd.DataFrame, classes: tuple[str, ...], cfg: ValidateConfig) -> tuple[list[Check], list[dict]]:
    """The crops_manifest suite for table `df` (from crop_table), and the checks skipped (with the reason)."""
    import great_expectations.expectations as gxe

    checks = [
        Check(gxe.ExpectTableColumnsToMatchSet(column_set=COLUMNS, exact_match=False),
              "every canonical manifest column is present"),
        *(Check(gxe.ExpectColumnValuesToBeInSet(column=inv.name, value_set=[HOLDS]), inv.rule) for inv in INVARIANTS),
        Check(gxe.ExpectColumnValuesToBeBetween(column="num_frames", min_value=1), "every clip has at least one frame"),
        Check(gxe.ExpectColumnPairValuesToBeEqual(column_A="num_frames", column_B="frames_on_disk"),
              "num_frames equals the crop JPEGs stored on disk"),
    ]
    skipped = []
    if "splits_of_identity" in df.columns and df["splits_of_identity"].notna().any():
        checks.append(Check(gxe.ExpectColumnValuesToBeBetween(column="splits_of_identity", max_value=1),
                            "an identity is in one split of a fold (rows of unknown identity are not checked)"))
    else:
        skipped.append({"check": "no identity in two splits of a fold",
                        "reason": "the manifest has no identity column" if "identity" not in df.columns
                        else "no row has a known identity"})
    if "detection_rate" in df.columns:
        checks.append(Check(gxe.ExpectColumnValuesToBeBetween(column="detection_rate",
                                                              min_value=cfg.min_clip_detection_rate),
                            f"the face was found in at least validate.min_clip_detection_rate="
                            f"{cfg.min_clip_detection_rate} of each clip's frames (clips without a rate are not checked)"))
    else:
        skipped.append({"check": "per-clip detection rate",
                        "reason": "the manifest has no detection_rate column (crops not made by face_crop)"})
    return checks, skipped


def count_checks(counts: pd.DataFrame, cfg: ValidateConfig) -> list[Check]:
    """The class_counts suite. GE reports verdicts, not tables: the counts and the smallest
    class go into the expectation's description (shown on the validation page) and its notes."""
    import great_expectations.expectations as gxe

    why = (f"every class has at least validate.min_train_clips_per_class={cfg.min_train_clips_per_class} "
           "training clips")
    per_split = "; ".join(f"{split}: " + ", ".join(f"{c} {n}" for c, n in zip(counts["label_name"], counts[split]))
                          for split in (*SPLITS, "total"))
    smallest = ", ".join(f"{s} {v['class']} ({v['clips']})" for s, v in _smallest(counts).items())
    return [Check(gxe.ExpectColumnValuesToBeBetween(
        column="train", min_value=cfg.min_train_clips_per_class, notes=_counts_markdown(counts),
        description=f"{why}. Clips per class, {per_split}. Smallest class: {smallest}."), why)]


def validate_crops(manifest: pd.DataFrame, crops_dir: Path, classes: tuple[str, ...], cfg: ValidateConfig,
                   docs_dir: Path, source: str = "crops manifest") -> dict:
    """Run both suites, write Data Docs to docs_dir, return the summary; raise ValidationFailed on a failure.

    The summary is JSON-ready and deterministic for given data and params (no times, no run
    ids), so a stage that depends on it re-runs only when the data or the verdict changes.
    The raised error carries the summary as `.summary`.
    """
    table = crop_table(manifest, Path(crops_dir), classes)
    checks, skipped = manifest_checks(table, classes, cfg)
    counts = class_counts(table, classes) if {"label_name", "split"} <= set(table.columns) else None
    context = _context(Path(docs_dir))
    results = list(zip(checks, _run_suite(context, "crops_manifest", table, checks,
                                          [k for k in ROW_KEYS if k in table.columns])))
    if counts is not None:
        count = count_checks(counts, cfg)
        results += list(zip(count, _run_suite(context, "class_counts", counts, count, ["label_name"],
                                              _counts_markdown(counts))))
    else:
        skipped.append({"check": "class counts", "reason": "the manifest has no label_name or split column"})

    failures = [_describe(check, result, source) for check, result in results if not result.success]
    summary = {
        "success": not failures,
        "clips": len(table),
        "clips_per_split": {s: int((table["split"] == s).sum()) for s in SPLITS} if "split" in table else {},
        "class_counts": ({split: dict(zip(counts["label_name"], counts[split].tolist()))
                          for split in (*SPLITS, "total")} if counts is not None else {}),
        "smallest_class": _smallest(counts) if counts is not None else {},
        "clips_without_detection_rate": (int(table["detection_rate"].isna().sum())
                                         if "detection_rate" in table else len(table)),
        "expectations": [{"expectation": _name(result), "success": bool(result.success),
                          "unexpected": int(result.result.get("unexpected_count") or 0)}
                         for _, result in results],
        "skipped": skipped,
        "failures": failures,
        "data_docs": str(Path(docs_dir) / "index.html"),
    }
    if failures:
        error = ValidationFailed(failure_message(summary, len(results), source))
        error.summary = summary
        raise error
    return summary


def failure_message(summary: dict, total: int, source: str) -> str:
    lines = [f"validation failed: {len(summary['failures'])} of {total} expectations on {source} "
             f"(Data Docs: {summary['data_docs']})"]
    return "\n".join(lines + [f"  {line}" for line in summary["failures"]])


def _context(docs_dir: Path):
    """An ephemeral GE context whose only output is the Data Docs site in docs_dir (emptied first)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (DataContextConfig, InMemoryStoreBackendDefaults,
                                                            ProgressBarsConfig)

    for entry in DOCS_ENTRIES:      # only the site's own entries: docs_dir may hold other files
        path = docs_dir / entry
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    docs_dir.mkdir(parents=True, exist_ok=True)
    site = {"class_name": "SiteBuilder", "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir.resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}}
    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
                               analytics_enabled=False, progress_bars=ProgressBarsConfig(globally=False),
                               data_docs_sites={"validation": site})
    return gx.get_context(project_config=config, mode="ephemeral")


def _run_suite(context, name: str, df: pd.DataFrame, checks: list[Check], row_keys: list[str],
               notes: str | None = None) -> list:
    """Validate df against checks through a Checkpoint that updates Data Docs; results in checks' order."""
    import great_expectations as gx

    batch = context.data_sources.add_pandas(name).add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
    suite = context.suites.add(gx.ExpectationSuite(name=name, notes=notes))
    for check in checks:
        suite.add_expectation(check.expectation)
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=name, validation_definitions=[definition], actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": row_keys,
                       "return_unexpected_index_query": False}))
    run = checkpoint.run(batch_parameters={"dataframe": df})
    (result,) = run.run_results.values()
    by_id = {r.expectation_config.id: r for r in result.results}
    return [by_id[check.expectation.id] for check in checks]


def _name(result) -> str:
    config = result.expectation_config
    kwargs = config.kwargs
    columns = ([kwargs["column"]] if "column" in kwargs else
               [kwargs["column_A"], kwargs["column_B"]] if "column_A" in kwargs else
               list(kwargs.get("column_list", kwargs.get("column_set", []))))
    return f"{config.type}({', '.join(columns)})"


def _describe(check: Check, result, source: str) -> str:
    """`expect_...(columns) — why: n of N rows; first offending: clip c3 (split='train', label_name='x'), ...`"""
    head = f"{_name(result)} — {check.why}"
    info = result.exception_info or {}
    raised = info.get("raised_exception") or any(v.get("raised_exception") for v in info.values()
                                                   if isinstance(v, dict))
    if raised:
        message = info.get("exception_message") or next(
            (v.get("exception_message") for v in info.values() if isinstance(v, dict) and v.get("exception_message")),
            "")
        return f"{head}: could not run on {source}: {message}"
    r = result.result
    if "unexpected_count" not in r:
        return f"{head}: observed {_plain(r.get('observed_value'))}{_details(r)}"
    rows = r.get("unexpected_index_list") or []
    keys = r.get("unexpected_index_column_names") or []
    shown = "; ".join(_row(row, keys) for row in rows[:SHOWN_ROWS])
    more = f" (+{len(rows) - SHOWN_ROWS} more)" if len(rows) > SHOWN_ROWS else ""
    return f"{head}: {r['unexpected_count']} of {r['element_count']} rows; first offending: {shown}{more}"


def _details(r: dict) -> str:
    mismatched = (r.get("details") or {}).get("mismatched") or {}
    return f"; missing {mismatched['missing']}" if mismatched.get("missing") else ""


def _row(row: dict, keys: list[str]) -> str:
    """One offending row: its first key as the subject (`clip c3`, `class 'fear'`), the rest as key=value."""
    if not keys or not isinstance(row, dict):       # no naming column in the table: GE gives what it has
        return str(row)
    subject, *others = keys
    noun = {"clip_id": "clip", "label_name": "class"}.get(subject, subject)
    rest = [k for k in others if k in row] + [k for k in row if k not in keys]
    value = _plain(row.get(subject))
    label = value if subject == "clip_id" else repr(value)
    return f"{noun} {label} ({', '.join(f'{k}={_plain(row[k])!r}' for k in rest)})"


def _plain(value: Any) -> Any:
    """Python scalars for messages and JSON (GE hands back numpy types), floats rounded."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return round(value, 4)
    return value


def _smallest(counts: pd.DataFrame) -> dict:
    out = {}
    for split in (*SPLITS, "total"):
        i = int(counts[split].to_numpy().argmin())
        out[split] = {"class": counts["label_name"].iloc[i], "clips": int(counts[split].iloc[i])}
    return out


def _counts_markdown(counts: pd.DataFrame) -> str:
    columns = (*SPLITS, "total")
    table = markdown_table(["class", *columns],
                           ([r["label_name"], *(r[s] for s in columns)] for _, r in counts.iterrows()))
    smallest = _smallest(counts)
    tail = "Smallest class: " + ", ".join(f"{s} {v['class']} ({v['clips']})" for s, v in smallest.items())
    return "\n".join(["Clips per class and split:", "", table, "", tail])
