"""Release: a quality gate on what the pipeline just built, the comparison with prod, then a GTO version and stage.

The fixed gate reads the report files of `evaluate`, `shuffle_check` and `export` (their
contracts in report_files.py), and only in a workspace whose outputs are exactly
what its committed dvc.lock says (GTO tags a commit, so an uncommitted model
could not be fetched back from the registry). Then the candidate meets the version in
prod on the same clips (registry.champion); one worse beyond `release.challenger`'s
limits is refused. A failed gate registers nothing.

Example: python -m a3lign_dfer release          # --prod also assigns prod
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from a3lign_dfer.config.deploy import ReleaseConfig
from a3lign_dfer.errors import UserError
from a3lign_dfer.markdown_table import markdown_table
from a3lign_dfer.orchestration.dvc_runner import run_dvc
from a3lign_dfer.orchestration.experiments import run_checked, uncommitted
from a3lign_dfer.registry.stages import STAGES
from a3lign_dfer.registry.versions import stages_held
from a3lign_dfer.report_files import (
    EVALUATION,
    EXPORT,
    SHUFFLE_CHECK,
    ChallengerReport,
    EvaluationReport,
    ExportReport,
    ShuffleCheckReport,
)


@dataclass(frozen=True)
class Check:
    name: str
    value: float | bool | None
    threshold: str
    passed: bool


class GateFailed(UserError, RuntimeError):
    """The model is below a threshold (or its metrics are missing): nothing was registered."""


class ChallengerRefused(GateFailed):
    """The candidate is worse than the version in prod beyond the limits: nothing was registered."""


@dataclass(frozen=True)
class BuiltMetrics:
    """What the gate reads: the test metrics, the shuffled-frame check and the export's parity."""

    evaluation: EvaluationReport
    shuffle: ShuffleCheckReport
    export: ExportReport


def built_metrics(repo: Path) -> BuiltMetrics:
    reports = repo / "reports"
    read = {contract: contract.read(reports) for contract in (EVALUATION, SHUFFLE_CHECK, EXPORT)}
    missing = [f"{contract.writer} (reports/{contract.path})" for contract, report in read.items() if report is None]
    if missing:
        raise GateFailed(f"cannot release: metrics missing for {missing}; run the pipeline first")
    return BuiltMetrics(*read.values())


def quality_gate(metrics: BuiltMetrics, cfg: ReleaseConfig) -> list[Check]:
    uar = metrics.evaluation.uar
    drop = metrics.shuffle.shuffled.uar_drop
    parity = metrics.export.parity.passed
    checks = [Check("test UAR", uar, f">= {cfg.min_test_uar}", uar >= cfg.min_test_uar),
              Check("shuffled-frame UAR drop", drop, f">= {cfg.min_shuffled_uar_drop}",
                    drop >= cfg.min_shuffled_uar_drop),
              Check("ONNX Runtime vs PyTorch parity", parity, "passed", bool(parity))]
    trt = metrics.export.tensorrt.get("parity_fp16_vs_onnxruntime")
    if trt is not None:                      # only where an engine was built and measured
        checks.append(Check("TensorRT FP16 vs ONNX Runtime parity", trt["passed"], "passed", bool(trt["passed"])))
    return checks


def gate_markdown(checks: list[Check]) -> str:
    return markdown_table(["check", "value", "threshold", "result"],
                          [(c.name, _value(c.value), c.threshold, "pass" if c.passed else "FAIL") for c in checks])


def _value(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def check_gate(repo: Path, cfg: ReleaseConfig) -> str:
    """The gate's table (markdown) when every check passes; GateFailed naming the failed checks otherwise."""
    checks = quality_gate(built_metrics(repo), cfg)
    table = gate_markdown(checks)
    failed = [c for c in checks if not c.passed]
    if failed:
        reasons = "; ".join(f"{c.name} is {_value(c.value)}, needs {c.threshold}" for c in failed)
        raise GateFailed(f"quality gate failed, nothing registered: {reasons}\n\n{table}")
    return table


def release_stages(cfg: ReleaseConfig, prod: bool) -> list[str]:
    """staging, and prod when asked (`--prod`, promote_to_prod=True) or when params say every pass goes there."""
    return ["staging", "prod"] if prod or cfg.promote_to_prod == "after_gate" else ["staging"]


def release(repo: Path, cfg: ReleaseConfig, stages: list[str], message: str, crops_dir: Path,
            feedback_dir: Path) -> dict:
    """The fixed gate, the comparison with prod (its report written under repo/reports), then the registry:
    what `python -m a3lign_dfer release` does (the release flow runs the same steps as tasks)."""
    from a3lign_dfer.registry.champion import compare_with_prod, write_challenger_report

    gate = check_gate(repo, cfg)
    require_committed(repo)
    report = compare_with_prod(repo, cfg, crops_dir, feedback_dir)
    table = write_challenger_report(repo / "reports", report)
    require_challenger_pass(report, table)
    return {"gate": gate, "challenger": report, "challenger_markdown": table, **register(repo, cfg, stages, message)}


def require_challenger_pass(report: ChallengerReport, markdown_path: Path) -> None:
    """ChallengerRefused naming every reason when the comparison with prod refuses the candidate."""
    from a3lign_dfer.registry.challenger import reasons

    if report.verdict == "refused":
        raise ChallengerRefused(f"champion/challenger gate refused the candidate against prod {report.prod_version}, "
                                f"nothing registered: {'; '.join(reasons(report))} (tables: {markdown_path})")


def require_committed(repo: Path) -> None:
    """GateFailed when the workspace's build is not the committed one (GTO tags a commit)."""
    problems = uncommitted_build(repo)
    if problems:
        raise GateFailed("the built model is not the committed one, nothing registered (GTO tags a commit): "
                         + "; ".join(problems) + ". Commit dvc.lock and the metrics (the pipeline flow does "
                         "with commit=True), then release again.")


def uncommitted_build(repo: Path) -> list[str]:
    """Why the workspace's model is not the committed one (empty when it is)."""
    problems = []
    status = run_dvc(["status", "--json"], repo, check=False)
    if status.returncode != 0:
        problems.append(f"dvc status failed: {status.stderr.strip()[-500:]}")
    elif json.loads(status.stdout or "{}"):
        problems.append(f"stages out of date or outputs modified: {sorted(json.loads(status.stdout))}")
    changed = uncommitted(repo)
    if changed:
        problems.append("uncommitted changes: " + ", ".join(changed[:10]))
    return problems


def register(repo: Path, cfg: ReleaseConfig, stages: list[str], message: str) -> dict:
    """A new GTO version of HEAD (or HEAD's existing one) and the given stages; returns what the registry says."""
    from gto import api

    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown registry stage(s) {unknown}; known: {list(STAGES)}")
    head = run_checked(["git", "rev-parse", "HEAD"], repo).strip()
    version = _version_at(repo, cfg.artifact, head)
    if version is None:
        first = cfg.artifact not in api.show(str(repo))
        api.register(str(repo), cfg.artifact, ref=head, message=message,
                     version="v0.1.0" if first else None, bump_minor=not first)
        version = _version_at(repo, cfg.artifact, head)
    held = stages_held(str(repo), cfg.artifact)
    for stage in stages:
        if held.get(stage) != version:          # releasing the same commit twice is a no-op
            # force: a version that held the stage before (and still does, behind a later one) is assigned again
            api.assign(str(repo), cfg.artifact, stage, version=version, message=message, force=True)
    return {"artifact": cfg.artifact, "version": version, "commit": head,
            "stages": stages_held(str(repo), cfg.artifact)}


def _version_at(repo: Path, artifact: str, commit: str) -> str | None:
    tags = run_checked(["git", "tag", "--points-at", commit, "--list", f"{artifact}@v*"], repo).split()
    return max(tags).split("@", 1)[1] if tags else None
