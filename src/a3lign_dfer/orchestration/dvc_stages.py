"""The DVC stages as an orchestrator sees them: their order, one stage run alone, its metrics.

The Prefect flows call these and nothing else to run the pipeline, so DVC stays
the one place that knows deps, params, outs and caching: a stage whose inputs did
not change is reported as up to date and not recomputed.
"""
from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from a3lign_dfer.markdown_table import markdown_table
from a3lign_dfer.orchestration.dvc_runner import stream_dvc


@dataclass(frozen=True)
class Stage:
    name: str                       # DVC's address: `train_stage3`, `train_all_at_once@joint`
    metrics: tuple[str, ...]        # its metrics files, relative to the repo
    git_outputs: tuple[str, ...]    # outputs kept in git, not in DVC's cache (cache: false)
    upstream: tuple[str, ...] = ()  # the stages whose outputs it reads


@dataclass(frozen=True)
class StageRun:
    name: str
    ran: bool                       # False: DVC found it up to date
    seconds: float
    output_tail: str


class StageFailed(RuntimeError):
    """A stage's command failed; the message ends with the last lines of its output."""


class DvcLocked(RuntimeError):
    """Another DVC command holds this workspace's lock: transient, worth a retry."""


def pipeline_stages(repo: Path) -> list[Stage]:
    """Stages in dvc.yaml's order (foreach entries expanded); refuses an order that runs a stage before its inputs."""
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    with Repo(str(repo)) as dvc:
        # dvc.yaml's stages only: a `dvc add`-ed folder's .dvc file (data/feedback/videos.dvc) is an unnamed stage
        stages = [s for s in dvc.index.stages if isinstance(s, PipelineStage)]
        made_by = {str(out.def_path): j for j, stage in enumerate(stages) for out in stage.outs}
        upstream = []
        for i, stage in enumerate(stages):
            reads = {}                  # index of the stage that makes an input -> that input
            for dep in stage.deps:
                for path, j in made_by.items():
                    if _within(str(dep.def_path), path):
                        reads.setdefault(j, str(dep.def_path))
            later = min((j for j in reads if j > i), default=None)
            if later is not None:
                raise ValueError(f"dvc.yaml lists {stage.name} before {stages[later].name}, "
                                 f"which makes its input {reads[later]}: reorder the stages")
            upstream.append(tuple(stages[j].name for j in sorted(reads) if j != i))
        return [Stage(s.name, tuple(str(o.def_path) for o in s.outs if o.metric),
                      tuple(str(o.def_path) for o in s.outs if not o.use_cache), up) for s, up in zip(stages, upstream)]


def changed_stages(repo: Path) -> set[str]:
    """The stages `dvc status` finds changed (deps, params, missing outputs): one DVC call for the whole pipeline.
    A stage not in it, none of whose upstream stages re-ran, is up to date without asking DVC again."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        return {name.rsplit(":", 1)[-1] for name in dvc.status()}


def _within(dep: str, out: str) -> bool:
    return dep == out or dep.startswith(out.rstrip("/") + "/") or out.startswith(dep.rstrip("/") + "/")


def repro_stage(name: str, repo: Path, on_line: Callable[[str], None] = print, tail_lines: int = 25,
                env: dict[str, str] | None = None) -> StageRun:
    """`dvc repro --single-item <name>`: this stage alone, its output streamed line by line; `env` is added
    to the stage's environment."""
    start = time.perf_counter()
    tail: deque[str] = deque(maxlen=tail_lines)
    ran = False

    def seen(line: str) -> None:
        nonlocal ran
        tail.append(line)
        ran |= line.startswith(f"Running stage '{name}'")
        on_line(line)

    code = stream_dvc(["repro", "--single-item", name], repo, seen, env)
    output = "\n".join(tail)
    if code != 0:
        if "Unable to acquire lock" in output:
            raise DvcLocked(f"stage '{name}': another DVC command holds the lock of {repo}:\n{output}")
        raise StageFailed(f"stage '{name}' failed (dvc repro exit {code}); last lines:\n{output}")
    return StageRun(name, ran, time.perf_counter() - start, output)


def read_metrics(stage: Stage, repo: Path) -> dict[str, dict]:
    return {path: json.loads((repo / path).read_text()) for path in stage.metrics if (repo / path).exists()}


def metrics_markdown(stage: Stage, run: StageRun, repo: Path) -> str:
    """The stage's metrics as markdown tables: scalars flattened to dotted keys, lists of rows as tables."""
    lines = [f"# {stage.name}", "",
             f"{'Ran' if run.ran else 'Up to date (not recomputed)'} in {run.seconds:.1f} s."]
    for path, metrics in read_metrics(stage, repo).items():
        scalars, tables = [], []
        for key, value in _flatten(metrics):
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                tables.append((key, value))
            elif not isinstance(value, list):
                scalars.append((key, _fmt(value)))
        lines += ["", f"## `{path}`", "", markdown_table(["metric", "value"], scalars)]
        for key, rows in tables:
            columns = [c for c in rows[0] if not isinstance(rows[0][c], (dict, list))]
            lines += ["", f"### {key}", "", markdown_table(columns, [[_fmt(r.get(c)) for c in columns] for r in rows])]
    return "\n".join(lines)


def _flatten(value, prefix: str = ""):
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _flatten(sub, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
