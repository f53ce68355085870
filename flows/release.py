"""Prefect flow `a3lign-dfer-release`: quality gate on what was just built, the comparison with prod, then the
model registry.

The gate's thresholds are `release` in params.yaml: test UAR, ONNX parity, and a
shuffled-frame UAR drop large enough that a model ignoring frame order is not
released. A passing, committed build then meets the version in prod on the same
clips (`release.challenger`; the table is the `release-challenger` artifact and
reports/release/challenger.md); one worse beyond the limits is refused. A pass gets
a new GTO version and `staging`; `prod` with promote_to_prod=True or
`release.promote_to_prod: after_gate`. A failed gate fails the flow with the
reason and registers nothing.

    python -m flows.release [--prod]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from a3lign_dfer.config.deploy import ReleaseConfig
from a3lign_dfer.config.params import load_params
from a3lign_dfer.markdown_table import markdown_table
from a3lign_dfer.registry.challenger import CROPS_DIR, FEEDBACK_DIR
from a3lign_dfer.registry.release import (
    GateFailed,
    check_gate,
    register,
    release_stages,
    require_challenger_pass,
    require_committed,
)
from a3lign_dfer.report_files import ChallengerReport


@task(cache_policy=NO_CACHE)
def quality_gate(repo: Path, cfg: ReleaseConfig) -> str:
    try:
        table = check_gate(repo, cfg)
    except GateFailed as failed:
        create_markdown_artifact(key="release-gate", markdown=f"# Gate failed\n\n{failed}",
                                 description="release quality gate")
        raise
    create_markdown_artifact(key="release-gate", markdown=f"# Gate passed\n\n{table}", description="release quality gate")
    return table


@task(cache_policy=NO_CACHE)
def committed_build(repo: Path) -> None:
    require_committed(repo)


@task(cache_policy=NO_CACHE)
def champion_challenger(repo: Path, cfg: ReleaseConfig) -> ChallengerReport:
    """The candidate against prod on the same clips; the table is an artifact whether it passes or not."""
    from a3lign_dfer.registry.champion import compare_with_prod, write_challenger_report

    report = compare_with_prod(repo, cfg, repo / CROPS_DIR, repo / FEEDBACK_DIR)
    markdown = write_challenger_report(repo / "reports", report)
    create_markdown_artifact(key="release-challenger", markdown=markdown.read_text(),
                             description="release candidate against the version in prod, on the same clips")
    require_challenger_pass(report, markdown)
    return report


@task(name="register", cache_policy=NO_CACHE)
def register_version(repo: Path, cfg: ReleaseConfig, stages: list[str], message: str) -> dict:
    result = register(repo, cfg, stages, message)
    create_markdown_artifact(
        key="release-registry", description="model registry after this release",
        markdown=f"Registered `{result['artifact']}` **{result['version']}** at commit `{result['commit'][:10]}`.\n\n"
                 + markdown_table(["stage", "version"], sorted(result["stages"].items())))
    return result


@flow(name="a3lign-dfer-release")
def release(repo: str = ".", promote_to_prod: bool = False) -> dict:
    """Gate, compare with prod, register, assign `staging` (and `prod` when promote_to_prod is set or params
    `release.promote_to_prod` is after_gate)."""
    root = Path(repo).resolve()
    cfg = load_params(root / "params.yaml").release
    quality_gate(root, cfg)
    committed_build(root)
    champion_challenger(root, cfg)
    stages = release_stages(cfg, promote_to_prod)
    result = register_version(root, cfg, stages, f"release flow run {flow_run.get_name() or 'local'}")
    get_run_logger().info(f"{result['artifact']} {result['version']} -> {stages}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=".")
    parser.add_argument("--prod", action="store_true", help="also assign prod")
    args = parser.parse_args()
    release(args.repo, args.prod)
