"""Figure 3 (MAT's S x T grid) as DVC experiments: one queued experiment per (S, T, training seed).

Each cell is `dvc exp run --queue -S model.sentences=S -S model.tokens=T -S train.seed=k
train_stage3`, so only the BAP ladder re-runs (data, crops and features come from DVC's cache)
and every cell stays inspectable with `dvc exp show`. The queue runs on one worker: the cells
share the machine, and a second worker would only make them compete for it. The cell's number
is the val UAR at the end of stage 3, read back from the experiment's commit, as mean +- std
over the grid's seeds; val, since only val may guide a choice of S and T.
"""
from __future__ import annotations

import itertools
import re
import time
from pathlib import Path

import numpy as np
import yaml
from matplotlib.figure import Figure

from a3lign_dfer.config.evaluation import GridConfig
from a3lign_dfer.markdown_table import markdown_table
from a3lign_dfer.orchestration.dvc_runner import run_dvc
from a3lign_dfer.orchestration.experiments import uncommitted
from a3lign_dfer.report_files import parse, training
from a3lign_research.seeds import _git, plus_minus, stats

STAGE = "stage3"           # the report of `train_stage3`, the end of the BAP ladder
STATUS_ROW = re.compile(r"^(?P<rev>[0-9a-f]{7})\s+(?P<name>\S+)\s.*\s"
                        r"(?P<status>Queued|Running|Failed|Success|Unknown)$")
# A task shows once per state it is seen in while `dvc queue status` reads the queue; the last one counts.
PROGRESS = {"Unknown": 0, "Queued": 1, "Running": 2, "Failed": 3, "Success": 3}
MISSING_POLLS = 3          # a task unlisted this many polls in a row has left the queue


def cell_name(sentences: int, tokens: int, seed: int) -> str:
    return f"grid-s{sentences}-t{tokens}-seed{seed}"


def cells(grid: GridConfig) -> list[tuple[int, int, int]]:
    return list(itertools.product(grid.sentences, grid.tokens, grid.seeds))


def _dvc(repo: Path, *args: str, check: bool = True) -> str:
    """A DVC command in `repo`: its stdout and stderr together."""
    done = run_dvc(args, repo, check=check)
    return done.stdout + done.stderr


def _queue_status(repo: Path) -> tuple[dict[str, tuple[str, str]], bool]:
    """`dvc queue status` as {task rev (7 hex): (name, status)}, and whether any queue worker is alive."""
    out = _dvc(repo, "queue", "status")
    tasks: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        if m := STATUS_ROW.match(line.strip()):
            seen = tasks.get(m["rev"], ("", "Unknown"))[1]
            if PROGRESS[m["status"]] >= PROGRESS[seen]:
                tasks[m["rev"]] = (m["name"], m["status"])
    workers = re.search(r"Worker status: (\d+) active, (\d+) idle", out)
    return tasks, bool(workers and int(workers[1]) + int(workers[2]))


def experiment_rev(repo: Path, name: str) -> str:
    """The commit of experiment `name` on the current commit (DVC keeps names per baseline)."""
    head = _git("rev-parse", "HEAD", cwd=repo).strip()
    ref = f"refs/exps/{head[:2]}/{head[2:]}/{name}"
    found = _git("for-each-ref", "--format=%(objectname)", ref, cwd=repo).split()
    if not found:
        raise RuntimeError(f"no experiment {name} on commit {head[:7]} (queue_grid runs it)")
    return found[0]


def _read_cell(repo: Path, name: str) -> tuple[str, dict]:
    """The experiment's commit and its stage-3 val report (checked against the report's contract)."""
    rev = experiment_rev(repo, name)
    report = training(STAGE)
    text = _git("show", f"{rev}:reports/{report.path}", cwd=repo)
    return rev, parse(report.schema, text, f"{name}:{report.path}").val


def _forget(repo: Path, names: list[str]) -> None:
    """Re-queuing a name replaces it: drop its experiment on this commit, and its queued or failed tasks
    (refs and task revs, not names, which DVC would resolve against every baseline)."""
    head = _git("rev-parse", "HEAD", cwd=repo).strip()
    refs = [r for r in _git("for-each-ref", "--format=%(refname)", f"refs/exps/{head[:2]}/{head[2:]}",
                            cwd=repo).split() if r.rsplit("/", 1)[1] in names]
    if refs:
        _dvc(repo, "exp", "remove", *refs)
    tasks, _ = _queue_status(repo)
    stale = [rev for rev, (name, status) in tasks.items() if name in names and status in ("Queued", "Failed")]
    if stale:
        _dvc(repo, "queue", "remove", *stale)


def queue_grid(repo: Path, grid: GridConfig, target: str = "train_stage3", *, poll_s: float = 10.0) -> list[str]:
    """Queue one named experiment per (S, T, seed), run the queue on one worker and wait for it.

    Prints a line per finished cell; the first failed cell stops the wait with its log (the cells
    still queued are taken off the queue). Returns the experiment names in grid order."""
    dirty = uncommitted(repo)
    if dirty:    # DVC stashes them around each queued -S edit; seen: a cell's params left in params.yaml
        raise RuntimeError(f"the grid queues experiments from a clean committed workspace; uncommitted: "
                           f"{', '.join(dirty)}")
    names = [cell_name(*cell) for cell in cells(grid)]
    _forget(repo, names)
    before, _ = _queue_status(repo)
    for (sentences, tokens, seed), name in zip(cells(grid), names):
        print(f"[grid] queue {name}: -S model.sentences={sentences} -S model.tokens={tokens} "
              f"-S train.seed={seed} {target}", flush=True)
        _dvc(repo, "exp", "run", "--queue", "--name", name, "-S", f"model.sentences={sentences}",
             "-S", f"model.tokens={tokens}", "-S", f"train.seed={seed}", target)
    tasks, _ = _queue_status(repo)
    mine = {rev: name for rev, (name, _) in tasks.items() if rev not in before and name in names}
    if sorted(mine.values()) != sorted(names):
        raise RuntimeError(f"queued {names}, but `dvc queue status` shows {sorted(mine.values())}")
    _dvc(repo, "queue", "start", "--jobs", "1")
    _wait(repo, mine, poll_s, report_uar=target == f"train_{STAGE}")
    return names


def _wait(repo: Path, mine: dict[str, str], poll_s: float, report_uar: bool) -> None:
    """Until every task in `mine` (task rev -> name) succeeded; raises on the first that failed, or that
    `dvc queue status` has not listed for MISSING_POLLS polls in a row (seen: a task moving from queued to
    running missing from one listing). A worker that left with tasks still queued (it exits once it finds
    the queue empty, which can race with a new queue) is started again, once per stall."""
    done: set[str] = set()
    missing = dict.fromkeys(mine, 0)
    idle_polls = 0
    while len(done) < len(mine):
        time.sleep(poll_s)
        tasks, worker = _queue_status(repo)
        for rev, name in mine.items():
            status = tasks.get(rev, (name, "missing"))[1]
            if status == "Success" and rev not in done:
                done.add(rev)
                line = f"[grid] {name} done ({len(done)}/{len(mine)})"
                if report_uar:          # an earlier target leaves the baseline's stage-3 report in the commit
                    val = _read_cell(repo, name)[1]
                    line += f": val UAR {100 * val.uar:.1f}, WAR {100 * val.war:.1f}"
                print(line, flush=True)
            missing[rev] = missing[rev] + 1 if status == "missing" else 0
            if status == "Failed" or missing[rev] == MISSING_POLLS:
                _fail(repo, rev, name, status, [r for r in mine if tasks.get(r, ("", ""))[1] == "Queued"])
        stalled = not worker and all(tasks.get(rev, ("", ""))[1] in ("Queued", "Success") for rev in mine)
        idle_polls = idle_polls + 1 if stalled else 0
        if idle_polls == 3:             # a fresh worker takes a few seconds to show in the status
            _dvc(repo, "queue", "start", "--jobs", "1")
        elif idle_polls > 6:
            raise RuntimeError("no queue worker runs the grid's queued experiments; see `dvc queue status` "
                               f"and .dvc/tmp/exps/celery/*.out in {repo}")


def _fail(repo: Path, rev: str, name: str, status: str, queued: list[str]) -> None:
    if queued:
        _dvc(repo, "queue", "remove", *queued)
    log = _dvc(repo, "queue", "logs", rev, check=False) if status == "Failed" else ""
    raise RuntimeError(f"grid experiment {name} (task {rev}) {'failed' if status == 'Failed' else 'left the queue'}"
                       f"; {len(queued)} queued cell(s) taken off the queue. `dvc queue logs {rev}` ends:\n"
                       f"{log[-4000:]}")


def collect_grid(repo: Path, grid: GridConfig) -> dict:
    """Each cell's stage-3 val UAR and WAR, mean +- std over the grid's seeds, read from the experiments'
    commits (each checked to have run with its cell's S and T)."""
    out = []
    clips = set()
    for sentences, tokens in itertools.product(grid.sentences, grid.tokens):
        runs = []
        for seed in grid.seeds:
            name = cell_name(sentences, tokens, seed)
            rev, val = _read_cell(repo, name)
            params = yaml.safe_load(_git("show", f"{rev}:params.yaml", cwd=repo))
            ran = (params["model"]["sentences"], params["model"]["tokens"], params["train"]["seed"])
            if ran != (sentences, tokens, seed):
                raise RuntimeError(f"experiment {name} ({rev[:7]}) ran with (S, T, seed) = {ran}")
            runs.append({"seed": seed, "name": name, "rev": rev, "uar": val.uar, "war": val.war})
            clips.add(val.num_samples)
        out.append({"sentences": sentences, "tokens": tokens, "experiments": runs,
                    "uar": stats([r["uar"] for r in runs]), "war": stats([r["war"] for r in runs])})
    return {"sentences": list(grid.sentences), "tokens": list(grid.tokens), "seeds": list(grid.seeds),
            "stage": STAGE, "val_clips": sorted(clips), "cells": out}


def _cell_text(result: dict, stat: dict) -> str:
    return plus_minus(stat) if len(result["seeds"]) > 1 else f"{100 * stat['mean']:.1f}"


def _describe(result: dict) -> tuple[str, str]:
    """(what the numbers are, over which clips and seeds): the heatmap's title and the table's intro."""
    seeds = result["seeds"]
    over = (f"mean ± std over training seeds {', '.join(map(str, seeds))}" if len(seeds) > 1
            else f"training seed {seeds[0]}")
    return ("Val UAR % at the end of BAP stage 3 on this benchmark",
            f"{'/'.join(map(str, result['val_clips']))} val clips; {over}")


def grid_heatmap(result: dict, out_png: Path) -> Path:
    """The paper's Figure 3 layout: S (sentences in one class) across, T (tokens in one sentence) up."""
    sentences, tokens = result["sentences"], result["tokens"]
    uar = np.full((len(tokens), len(sentences)), np.nan)
    cell = {(c["sentences"], c["tokens"]): c for c in result["cells"]}
    for (i, t), (j, s) in itertools.product(enumerate(tokens), enumerate(sentences)):
        uar[i, j] = 100 * cell[s, t]["uar"]["mean"]
    fig = Figure(figsize=(1.3 * len(sentences) + 3, 1.0 * len(tokens) + 2.2), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(uar, origin="lower", cmap="viridis", aspect="auto")
    low, high = np.nanmin(uar), np.nanmax(uar)
    for (i, t), (j, s) in itertools.product(enumerate(tokens), enumerate(sentences)):
        light = high > low and (uar[i, j] - low) / (high - low) > 0.6     # dark text on viridis' yellow end
        ax.text(j, i, _cell_text(result, cell[s, t]["uar"]), ha="center", va="center", fontsize=9,
                color="black" if light else "white")
    ax.set_xticks(range(len(sentences)), [str(s) for s in sentences])
    ax.set_yticks(range(len(tokens)), [str(t) for t in tokens])
    ax.set_xlabel("S: sentences in one class")
    ax.set_ylabel("T: tokens in one sentence")
    what, details = _describe(result)
    ax.set_title(f"{what}\n({details})", fontsize=9)
    fig.colorbar(image, ax=ax, label="val UAR %")
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=150)
    return out_png


def grid_markdown(result: dict) -> str:
    """The heatmap as a table: a row per T (largest first, as the figure reads), a column per S."""
    cell = {(c["sentences"], c["tokens"]): c for c in result["cells"]}
    what, details = _describe(result)
    rows = ([t, *(_cell_text(result, cell[s, t]["uar"]) for s in result["sentences"])]
            for t in reversed(result["tokens"]))
    return "\n".join([f"{what} ({details}). Rows: T, tokens in one sentence; columns: S, sentences in one class.", "",
                      markdown_table(["T \\ S", *result["sentences"]], rows)])
