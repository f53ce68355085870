"""Each paper experiment as one function: run its jobs, write reports/paper/<name>.json and .md.

`python -m a3lign_research paper [NAME ...]` runs them in the order of EXPERIMENTS (fidelity before
the tables: the layout val chose is the one the loss comparison and Table 3 train with) and then
index.md, which links every table and figure and says which of the paper's orderings hold.
"""
from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from a3lign_dfer.config.data import ScaleConfig
from a3lign_dfer.config.evaluation import PaperConfig
from a3lign_dfer.config.stage_table import ABLATIONS, FINAL, LADDER
from a3lign_dfer.markdown_table import markdown_table
from a3lign_research.blocks import provenance_text, republish, write_report
from a3lign_research.paper import ablation, fidelity, published
from a3lign_research.paper.runs import Job, run_jobs, spread
from a3lign_research.seeds import plus_minus, stats


@dataclass(frozen=True)
class Setup:
    paper: PaperConfig
    scale: ScaleConfig
    params_path: str
    features: str
    checkpoint: str              # the pipeline's final model (Figure 4, Table 6)
    repo: str                    # the DVC repo the Figure 3 experiments run in
    out: Path

    def jobs(self, jobs: list[Job]) -> list[Job]:
        from dataclasses import replace

        return [replace(j, params_path=self.params_path, features=self.features) for j in jobs]


def _write(setup: Setup, name: str, result: dict, render: Callable[[dict], str]) -> dict:
    """<name>.json, then <name>.md rendered from it."""
    return write_report(setup.out / f"{name}.json", result, render(result))


def _read(out: Setup | Path, name: str) -> dict:
    path = (out.out if isinstance(out, Setup) else out) / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m a3lign_research paper {name}` first")
    return json.loads(path.read_text())


def _rows(results: list[dict], variants: list[str], rows: list[str]) -> dict:
    """{variant: {row: {split: {war, uar[, shuffled_uar_drop]}}}} as mean +- std over seeds (the drop where the
    reports have a shuffled-frame check: the baselines average frames and have none)."""
    def cell(variant: str, row: str, split: str) -> dict:
        reports = [r["rows"][row][split] for r in results if r["variant"] == variant]
        out = {"war": spread(results, variant, row, split, "war"), "uar": spread(results, variant, row, split)}
        if all("shuffled" in rep for rep in reports):
            out["shuffled_uar_drop"] = stats([rep["shuffled"]["uar_drop"] for rep in reports])
        return out
    return {v: {row: {s: cell(v, row, s) for s in ("val", "test")} for row in rows
                if any(row in r["rows"] for r in results if r["variant"] == v)} for v in variants}


# ---- fidelity: the Eq. 2 layout, the loss, all at once ----------------------------------------------
def run_fidelity(setup: Setup) -> dict:
    """The loss comparison trains on the layout val chooses. It is queued with the layout comparison on the
    layout params.yaml holds (val's earlier choice), so both fill one batch of the cluster; only when val now
    chooses the other layout does a second batch train the loss comparison on it."""
    start = time.perf_counter()
    current = _params(setup).model.text_layout
    first = fidelity.jobs(setup.paper.seeds, current)
    done = run_jobs(setup.jobs(first["layout"] + first["loss"] + first["all_at_once"]), setup.scale,
                    "fidelity: layout, loss, all at once")
    layout = fidelity.choose(done, "paper", "compact")
    loss_done = run_jobs(setup.jobs(fidelity.jobs(setup.paper.seeds, layout["chosen"])["loss"]), setup.scale,
                         "fidelity: loss on the chosen layout")
    loss = fidelity.choose(loss_done, "none", "inverse")
    result = {"seeds": list(setup.paper.seeds), "layout": layout, "loss": loss,
              "ladder": _rows(done, ["compact", "paper"], list(LADDER)),
              "loss_rows": _rows(loss_done, ["inverse", "none"], list(LADDER)),
              "all_at_once": _rows(done, ["ours", "plain"], list(ABLATIONS)),
              "seconds": time.perf_counter() - start}
    return _write(setup, "fidelity", result, fidelity_markdown)


def chosen_setting(fid: dict) -> dict:
    """The params overrides of the layout and loss val chose: what Table 2, 3 and the index train and read."""
    return {"model": {"text_layout": fid["layout"]["chosen"]}, "train": {"class_weight": fid["loss"]["chosen"]}}


def final_ladder(fid: dict) -> dict:
    """The BAP ladder on the chosen setting: the loss comparison trained it on the chosen layout."""
    return fid["loss_rows"][fid["loss"]["chosen"]]


def _choice_row(title: str, c: dict, a_label: str, b_label: str) -> list[str]:
    (a, b), va = list(c["val_uar"]), c["val_uar"]
    verdict = ("within the spread: the paper's reading is kept" if c["within_spread"] and c["chosen"] == a else
               f"{c['chosen']} ahead by more than the spread")
    return [title, f"{a_label}: {plus_minus(va[a])}", f"{b_label}: {plus_minus(va[b])}",
            f"{100 * c['difference']:+.1f} (spread {100 * c['margin']:.1f})", f"**{c['chosen']}** ({verdict})"]


def fidelity_markdown(r: dict) -> str:
    n = len(r["seeds"])
    lines = [f"Val UAR % of the final BAP stage, mean ± std over {n} training seeds; a variant replaces the "
             "paper's reading only when it is ahead by more than the larger std.", "",
             markdown_table(["Question", "The paper's reading", "Ours", "Difference (points)", "Default"],
                            [_choice_row("Eq. 2 text layout", r["layout"], "paper", "compact"),
                             _choice_row("Loss", r["loss"], "plain cross-entropy", "class-weighted (inverse)")]), "",
             "What the paper layout costs per training step, side by side with compact: "
             "reports/benchmarks/text_layout.json (README `text-layout`).", "",
             markdown_table(["Ladder stage", "compact: val UAR", "paper: val UAR", "compact: test UAR",
                             "paper: test UAR"],
                            ([stage, *(plus_minus(r["ladder"][v][stage][s]["uar"])
                                       for s in ("val", "test") for v in ("compact", "paper"))] for stage in LADDER))]
    rows = []
    for row in ABLATIONS:
        o, p = r["all_at_once"]["ours"][row], r["all_at_once"]["plain"][row]
        rows.append([row, plus_minus(o["val"]["uar"]), plus_minus(p["val"]["uar"]),
                     f"{plus_minus(o['test']['war'])} / {plus_minus(o['test']['uar'])}",
                     f"{plus_minus(p['test']['war'])} / {plus_minus(p['test']['uar'])}",
                     published.cells(published.TABLE4[row])])
    lines += ["", "All at once (Table 4's first two rows): ours (params.yaml: text-initialised MAT, identity-initialised "
              "layers, clipping, cosine lr, the loss above) against the plain reading (random MAT, plain cross-entropy, "
              f"no clipping, constant lr: `{json.dumps(fidelity.PLAIN)}`).", "",
              markdown_table(["Row", "ours: val UAR", "plain: val UAR", "ours: test WAR / UAR", "plain: test WAR / UAR",
                              *(f"paper {d}: WAR / UAR" for d in published.DATASETS)], rows)]
    return "\n".join(lines)


# ---- all at once, one choice at a time: which of ours removes the collapse ------------------------
def run_collapse(setup: Setup) -> dict:
    start = time.perf_counter()
    lr = _params(setup).all_at_once.lr
    variants = fidelity.one_at_a_time({g: v for g, v in (("encoder", lr.encoder), ("mat", lr.mat)) if v is not None})
    done = run_jobs(setup.jobs(fidelity.one_at_a_time_jobs(setup.paper.seeds, variants)), setup.scale,
                    "all at once, one choice at a time; BAP with the same switches")
    bap = [f"BAP: {name}" for name in fidelity.BAP_SWITCHES]
    result = {"seeds": list(setup.paper.seeds), "variants": variants, "bap_switches": fidelity.BAP_SWITCHES,
              "rows": _rows(done, list(variants), list(ABLATIONS)),
              "bap": {name: rows[FINAL] for name, rows in _rows(done, bap, [FINAL]).items()},
              "seconds": time.perf_counter() - start}
    return _write(setup, "collapse", result, collapse_markdown)


def collapse_findings(r: dict) -> dict[str, list[str]]:
    """What the variants say, on test UAR of both all-at-once rows, in the index's verdict wording: the switches
    that lose alone, the pairs that lose where neither of their switches does, the variants that beat ours (they
    shrink BAP's lead), whether clipping alone lifts the plain reading to ours, whether a tenth of the lr or
    CLIP's temperature does without clipping, and which of BAP's switches cost BAP itself."""
    rows, ours = r["rows"], r["rows"]["ours"]

    def loses(name: str) -> bool:                       # ours above it beyond the spread, in both rows
        return all(verdict(ours[row]["test"]["uar"], rows[name][row]["test"]["uar"]) == "holds" for row in ABLATIONS)

    def matches_ours(name: str) -> bool:                # not below ours beyond the spread, in either row
        return not any(verdict(ours[row]["test"]["uar"], rows[name][row]["test"]["uar"]) == "holds"
                       for row in ABLATIONS)

    singles = [n for n in fidelity.SWITCHES if n in rows]
    pairs = [n for n in rows if n.count(" + ") == 1 and n in r["variants"]]
    bap, bap_ours = r["bap"], r["bap"]["BAP: ours"]
    return {
        "alone": [n for n in singles if loses(n)],
        "pairs": [n for n in pairs if loses(n) and not any(loses(s) for s in n.split(" + "))],
        "beat_ours": [f"{n} ({row})" for n in rows if n != "ours" for row in ABLATIONS
                      if verdict(rows[n][row]["test"]["uar"], ours[row]["test"]["uar"]) == "holds"],
        "sufficient": [n for n in rows if n.startswith("plain, ") and matches_ours(n)],
        "recover": [n for n in rows if n.startswith("no clipping, ") and matches_ours(n)],
        "bap_needs": [n for n in bap if n != "BAP: ours" and
                      verdict(bap_ours["test"]["uar"], bap[n]["test"]["uar"]) == "holds"],
    }


def bap_lead(r: dict) -> list[str]:
    """BAP's lead over each all-at-once row under the same switch, in test UAR points with the larger std: how
    much of the gap a switch that helps all at once would close."""
    def gap(b: dict, a: dict) -> str:
        return f"{100 * (b['mean'] - a['mean']):+.1f} (spread {100 * max(b['std'], a['std']):.1f})"

    rows, lead = r["rows"], []
    for name, bap in r["bap"].items():
        variant = name.removeprefix("BAP: ")
        if variant in rows:
            lead.append(f"{variant}: " + ", ".join(f"{row} {gap(bap['test']['uar'], rows[variant][row]['test']['uar'])}"
                                                   for row in ABLATIONS))
    return lead


def bap_over_best(r: dict) -> list[str]:
    """BAP (ours) against the best all-at-once variant of each row on test UAR: whether BAP's lead survives the
    most favourable all-at-once setting found here."""
    bap, found = r["bap"]["BAP: ours"]["test"]["uar"], []
    for row in ABLATIONS:
        best = max(r["rows"], key=lambda name: r["rows"][name][row]["test"]["uar"]["mean"])
        other = r["rows"][best][row]["test"]["uar"]
        found.append(f"{row}: {best}, {plus_minus(other)}; BAP {plus_minus(bap)} above it: {verdict(bap, other)}")
    return found


def collapse_markdown(r: dict) -> str:
    rows, ours = r["rows"], r["rows"]["ours"]
    table = []
    for name, overrides in r["variants"].items():
        above = "" if name == "ours" else "; ".join(
            f"{row}: {verdict(ours[row]['test']['uar'], rows[name][row]['test']['uar'])}" for row in ABLATIONS)
        table.append([name, f"`{json.dumps(overrides) if overrides else '(none)'}`",
                      *(plus_minus(rows[name][row][split]["uar"]) for row in ABLATIONS for split in ("val", "test")),
                      above])
    bap = r["bap"]
    switch = {name: r["bap_switches"][name.removeprefix("BAP: ")] for name in bap}
    bap_table = [[name, f"`{json.dumps(switch[name])}`" if switch[name] else "`(none)`",
                  plus_minus(row["val"]["uar"]), plus_minus(row["test"]["uar"]),
                  "" if name == "BAP: ours" else verdict(bap["BAP: ours"]["test"]["uar"], row["test"]["uar"]),
                  "; ".join(f"{a}: {verdict(row['test']['uar'], rows[v][a]['test']['uar'])}"
                            for v in (name.removeprefix("BAP: "),) if v in rows for a in ABLATIONS)]
                 for name, row in bap.items()]
    found = collapse_findings(r)

    def listed(names: list[str], none: str) -> str:
        return ", ".join(names) if names else none

    lines = [f"All at once (Table 4's first two rows) from scratch, mean ± std over {len(r['seeds'])} training seeds: "
             "ours (params.yaml), each of our choices switched to the plain reading alone and in pairs, the plain "
             "reading (all of them), and controls: the plain reading with clipping kept, and no clipping at a tenth of "
             "the lr or at CLIP's temperature. \"Ours above\" is the one ordering wording of the index, on test UAR.",
             "", markdown_table(["Variant", "params overrides",
                                 *(f"{row}: {split} UAR" for row in ABLATIONS for split in ("val", "test")),
                                 "ours above it (test UAR)"], table), "",
             "The BAP ladder (final stage) with the same switches: does BAP itself need them, and is BAP still above "
             "all at once under the same switch?", "",
             markdown_table(["Variant", "params overrides", "val UAR", "test UAR", "BAP ours above it",
                             "it above all at once under the same switch"], bap_table), "",
             f"- Switches that alone lose beyond the spread in both rows: "
             f"{listed(found['alone'], 'none')}.",
             f"- Pairs that lose beyond the spread where neither switch alone does: {listed(found['pairs'], 'none')}.",
             f"- Variants above ours beyond the spread: {listed(found['beat_ours'], 'none')}.",
             f"- BAP's lead over all at once under the same switch (test UAR points): {'; '.join(bap_lead(r))}.",
             f"- The best all-at-once variant of each row (test UAR): {'; '.join(bap_over_best(r))}.",
             f"- The plain reading lifted to within the spread of ours by clipping alone: "
             f"{listed(found['sufficient'], 'no (clipping alone is not enough)')}.",
             f"- Without clipping, within the spread of ours anyway: "
             f"{listed(found['recover'], 'neither a tenth of the lr nor CLIP temperature (clipping is not only taming them)')}.",
             f"- BAP loses beyond the spread with: {listed(found['bap_needs'], 'neither switch')}."]
    return "\n".join(lines)


# ---- Table 3: MAT x JAS ----------------------------------------------------------------------------
TABLE3_ROWS = (("neither", "×", "×"), ("mat", "✓", "×"), ("jas", "×", "✓"), ("both", "✓", "✓"),
               ("both_random", "✓ (random init)", "✓"))


def run_table3(setup: Setup) -> dict:
    start = time.perf_counter()
    fid = _read(setup, "fidelity")
    chosen = chosen_setting(fid)
    done = run_jobs(setup.jobs(ablation.jobs(setup.paper.seeds, chosen)), setup.scale, "table 3")
    rows = {name: _rows(done, [name], [ablation.ROW])[name][ablation.ROW] for name in ("neither", "mat", "jas")}
    rows["both"] = final_ladder(fid)[FINAL]
    rows["both_random"] = _rows(done, ["both_random"], [FINAL])["both_random"][FINAL]
    result = {"seeds": list(setup.paper.seeds), "setting": chosen, "init_text": _params(setup).model.init_text,
              "rows": rows, "seconds": time.perf_counter() - start}
    return _write(setup, "table3", result, table3_markdown)


def table3_markdown(r: dict) -> str:
    rows = []
    for name, mat, jas in TABLE3_ROWS:
        row = r["rows"][name]
        rows.append([mat, jas, plus_minus(row["test"]["war"]), plus_minus(row["test"]["uar"]),
                     plus_minus(row["val"]["uar"]), plus_minus(row["test"]["shuffled_uar_drop"]),
                     published.cells(published.TABLE3[name]) if name in published.TABLE3 else "- | -"])
    lines = [f"Test WAR / UAR %, mean ± std over {len(r['seeds'])} training seeds (val UAR beside), on the setting "
             f"val chose (`{json.dumps(r['setting'])}`). What \"off\" means is in "
             "research/a3lign_research/paper/ablation.py. \"MAT on\" is MAT initialised from the text "
             f"`{r['init_text']}` (model.init), as the pipeline trains it; the last row is the same "
             "BAP ladder with MAT randomly initialised. The paper's numbers are FERV39k and MAFW, not this benchmark.", "",
             markdown_table(["MAT", "JAS", "test WAR", "test UAR", "val UAR", "shuffled UAR drop",
                             "paper FERV39k WAR / UAR", "paper MAFW WAR / UAR"], rows)]
    return "\n".join(lines)


# ---- Table 2: baselines on the same features, splits and evaluation ---------------------------------
BASELINES = ("zero_shot", "coop", "cocoop", "linear_probe")
BASELINE_TITLES = {"zero_shot": "CLIP (zero-shot)", "coop": "CoOp", "cocoop": "CoCoOp", "linear_probe": "Linear probe",
                   "a3lign": "A³lign-DFER (BAP, final stage)"}


def run_table2(setup: Setup) -> dict:
    start = time.perf_counter()
    fid = _read(setup, "fidelity")
    done = run_jobs(setup.jobs([Job(f"baselines:{name}", name, seed) for name in BASELINES
                                for seed in setup.paper.seeds]), setup.scale, "table 2")
    rows = {name: _rows(done, [name], [name])[name][name] for name in BASELINES}
    rows["a3lign"] = final_ladder(fid)[FINAL]
    result = {"seeds": list(setup.paper.seeds), "rows": rows, "seconds": time.perf_counter() - start}
    return _write(setup, "table2", result, table2_markdown)


def table2_markdown(r: dict) -> str:
    zero = r["rows"]["zero_shot"]["test"]
    rows = []
    for name in (*BASELINES, "a3lign"):
        row = r["rows"][name]
        up = "" if name == "zero_shot" else f" ({100 * (row['test']['uar']['mean'] - zero['uar']['mean']):+.1f} ↑)"
        paper = published.cells(published.TABLE2[name]) if name in published.TABLE2 else "- | -"  # the last two columns
        rows.append([BASELINE_TITLES[name], plus_minus(row["test"]["war"]), plus_minus(row["test"]["uar"]) + up,
                     plus_minus(row["val"]["uar"]), paper])
    return "\n".join([
        f"Test WAR / UAR %, mean ± std over {len(r['seeds'])} training seeds, every method on the same cached "
        "frame features, splits and evaluation (val UAR beside; what each baseline trains is in "
        "research/a3lign_research/paper/baselines.py). ↑: points above zero-shot UAR. The paper's numbers are "
        "FERV39k and MAFW.", "",
        markdown_table(["Method", "test WAR", "test UAR", "val UAR", "paper FERV39k WAR / UAR", "paper MAFW WAR / UAR"],
                       rows)])


# ---- Figure 3: the S x T grid as DVC experiments ----------------------------------------------------
def run_figure3(setup: Setup) -> dict:
    from a3lign_research.paper.mat_grid import collect_grid, grid_heatmap, grid_markdown, queue_grid

    start = time.perf_counter()
    queue_grid(Path(setup.repo), setup.paper.grid)
    result = collect_grid(Path(setup.repo), setup.paper.grid)
    grid_heatmap(result, setup.out / "figure3.png")
    result["seconds"] = time.perf_counter() - start
    return _write(setup, "figure3", result, lambda r: "![Figure 3](figure3.png)\n\n" + grid_markdown(r))


# ---- Figure 4 and Table 6: the pipeline's final model -----------------------------------------------
def _params(setup: Setup):
    """params.yaml as the training stages read it: the final model's settings and val's earlier choices."""
    from a3lign_dfer.config.schema import load
    from a3lign_dfer.config.training import TrainingParams

    return load(TrainingParams, setup.params_path)


def run_figure4(setup: Setup) -> dict:
    from a3lign_research.paper.visuals import tsne_figure

    start = time.perf_counter()
    result = tsne_figure(Path(setup.checkpoint), Path(setup.features), setup.out / "figure4.png", _params(setup))
    result["seconds"] = time.perf_counter() - start
    rows = [[name, f"{100 * result['before'][name]:.1f}", f"{100 * result['after'][name]:.1f}"]
            for name in ("accuracy", "uar")] + [
            [name, f"{result['before'][name]:.3f}", f"{result['after'][name]:.3f}"]
            for name in ("silhouette", "margin", "class_pairwise_cosine")]
    markdown = "\n".join([
        "![Figure 4](figure4.png)", "",
        f"{result['clips']} test videos of `{setup.checkpoint}`, measured in the original space (cosine), not in "
        "t-SNE: nearest class vector accuracy / UAR %, silhouette of the videos by class, a video's margin of its own "
        "class vector over the others, and how alike the class vectors are.", "",
        markdown_table(["", "before training", "after BAP"], rows)])
    return _write(setup, "figure4", result, lambda r: markdown)


def run_table6(setup: Setup) -> dict:
    from a3lign_research.paper.visuals import nearest_words, nearest_words_markdown

    start = time.perf_counter()
    result = nearest_words(Path(setup.checkpoint))
    result["seconds"] = time.perf_counter() - start
    moved = result["movement"]
    markdown = "\n".join([
        f"Nearest vocabulary words (CLIP's token embeddings, cosine) of the MAT tokens of `{setup.checkpoint}`; "
        "the class name in bold. The paper's Table 6 is on FERV39k with the real CLIP.", "",
        nearest_words_markdown(result), nearest_words_markdown(result, beyond_init=True),
        "How far MAT moved from its initialisation (cosines; 1 = unchanged or exactly a vocabulary row):", "",
        markdown_table(["measure", "value"], moved.items())])
    return _write(setup, "table6", result, lambda r: markdown)


# ---- index: every table and figure, and which of the paper's orderings hold -------------------------
def verdict(higher: dict, lower: dict) -> str:
    """Whether `higher` is above `lower` (mean +- std over seeds): the one wording every ordering uses."""
    gap = higher["mean"] - lower["mean"]
    if gap > max(higher["std"], lower["std"]):
        return "holds"
    return "holds in the mean, within the spread" if gap > 0 else "does not hold"


METRICS = ("uar", "war")


@dataclass(frozen=True)
class Ordering:
    """One of the paper's orderings: the claim, and per metric the (higher, lower) mean +- std the paper says
    is higher first; `scale` 100 shows percent, 1 a raw measure."""

    claim: str
    pairs: dict[str, tuple[dict, dict]]
    scale: float = 100.0

    def cells(self) -> list[str]:
        """Per metric: the numbers and the verdict (the same wording for every ordering), '-' where none."""
        out = []
        for metric in METRICS:
            if metric not in self.pairs:
                out += ["-", "-"]
                continue
            hi, lo = self.pairs[metric]
            out += [" vs ".join(self._shown(x) for x in (hi, lo)), verdict(hi, lo)]
        return out


    def _shown(self, stat: dict) -> str:
        """mean ± std, the mean alone for one run."""
        digits = 1 if self.scale == 100 else 3
        mean = f"{self.scale * stat['mean']:.{digits}f}"
        return mean if len(stat.get("values", [0, 0])) == 1 else f"{mean} ± {self.scale * stat['std']:.{digits}f}"


def _split(row: dict, split: str = "test") -> dict[str, dict]:
    return {m: row[split][m] for m in METRICS}


def _ordered(claim: str, hi: dict, lo: dict) -> Ordering:
    return Ordering(claim, {m: (hi[m], lo[m]) for m in METRICS})


def _point(value: float) -> dict:
    return {"mean": value, "std": 0.0, "values": [value]}


def orderings(out: Path) -> list[Ordering]:
    """Every ordering of the paper that an experiment in `out` measured, on test UAR and WAR (Figure 3: val,
    as it chooses; Figure 4: its two measures of one model)."""
    fid, t3 = _read(out, "fidelity"), _read(out, "table3")
    ladder, rows = final_ladder(fid), t3["rows"]
    found = []
    if (out / "table2.json").exists():
        t2 = _read(out, "table2")["rows"]
        for hi, lo in (("coop", "zero_shot"), ("cocoop", "coop"), ("a3lign", "cocoop")):
            found.append(_ordered(f"Table 2: {BASELINE_TITLES[hi]} above {BASELINE_TITLES[lo]}", _split(t2[hi]),
                                  _split(t2[lo])))
    for hi, lo in (("both", "mat"), ("both", "jas"), ("mat", "neither"), ("jas", "neither")):
        found.append(_ordered(f"Table 3: {hi} above {lo}", _split(rows[hi]), _split(rows[lo])))
    for row in ABLATIONS:
        found.append(_ordered(f"Table 4: BAP above all at once ({row})", _split(ladder[FINAL]),
                              _split(fid["all_at_once"]["ours"][row])))
    for lo, hi in zip(LADDER, LADDER[1:]):
        found.append(_ordered(f"Table 4 ladder: {hi} above {lo}", _split(ladder[hi]), _split(ladder[lo])))
    found.append(Ordering("Table 5: shuffled frames below normal order (UAR drop)",
                          {"uar": (ladder[FINAL]["test"]["shuffled_uar_drop"], _point(0.0))}))
    if (out / "figure3.json").exists():
        found += figure3_orderings(_read(out, "figure3"))
    if (out / "figure4.json").exists():
        f4 = _read(out, "figure4")
        found.append(Ordering("Figure 4: videos cluster by class after training (silhouette)",
                              {"uar": (_point(f4["after"]["silhouette"]), _point(f4["before"]["silhouette"]))}, 1.0))
        found.append(Ordering("Figure 4: nearest class vector accuracy after training",
                              {"uar": (_point(f4["after"]["uar"]), _point(f4["before"]["uar"])),
                               "war": (_point(f4["after"]["accuracy"]), _point(f4["before"]["accuracy"]))}))
    return found


def figure3_orderings(grid: dict) -> list[Ordering]:
    """Figure 3's claims on the grid's val numbers: the largest cell is best, and between cells of equal
    parameter count (S x T) the one with more sentences is higher."""
    cell = {(c["sentences"], c["tokens"]): c for c in grid["cells"]}
    top = (max(grid["sentences"]), max(grid["tokens"]))
    found = [_ordered(f"Figure 3 (val): S={top[0]}, T={top[1]} above S={s}, T={t}", cell[top], cell[s, t])
             for s, t in cell if (s, t) != top]
    for (s1, t1), (s2, t2) in itertools.combinations(sorted(cell), 2):
        if s1 * t1 == s2 * t2:
            (sh, th), (sl, tl) = ((s1, t1), (s2, t2)) if s1 > s2 else ((s2, t2), (s1, t1))
            found.append(_ordered(f"Figure 3 (val): equal parameters, more sentences: S={sh}, T={th} above "
                                  f"S={sl}, T={tl}", cell[sh, th], cell[sl, tl]))
    return found


def index_markdown(out: Path, prefix: str = "") -> str:
    """index.md from the experiments' files in `out`; `prefix` goes before every link (README's block)."""
    lines = ["The paper's experiments on this benchmark (`make paper`; each table and figure also alone: "
             "`python -m a3lign_research paper NAME`). The paper's numbers are FERV39k and MAFW, quoted for their "
             "ordering, not to compare with this synthetic benchmark.", ""]
    lines += [f"- [{title}]({prefix}{name})" for name, title in TITLES.items() if (out / name).exists()]
    if (out / "fidelity.json").exists() and (out / "table3.json").exists():
        lines += ["", "Each ordering on test UAR and WAR % (mean ± std over training seeds; Figure 3 on val, Figure 4 "
                  "on its own measures of one model). \"holds\": higher by more than the larger std; a number without "
                  "a spread is one run.", "",
                  markdown_table(["The paper's ordering", "Ours: UAR", "Here (UAR)", "Ours: WAR", "Here (WAR)"],
                                 [[o.claim, *o.cells()] for o in orderings(out)])]
    runs = {n: _read(out, n) for n in EXPERIMENTS if (out / f"{n}.json").exists()}
    default = {n: r["seconds"] for n, r in runs.items() if n not in OPT_IN}
    where = list(dict.fromkeys(provenance_text(r.get("provenance")) for n, r in runs.items() if n in default))
    named = [f"{n} {r['seconds'] / 60:.1f} min ({provenance_text(r.get('provenance'))})"
             for n, r in runs.items() if n in OPT_IN]
    lines += ["", f"Time ({'; '.join(where)}): " + ", ".join(f"{n} {s / 60:.1f} min" for n, s in default.items())
              + f"; `make paper` total {sum(default.values()) / 60:.1f} min."
              + (f" Run only when named: {', '.join(named)}." if named else "")]
    return "\n".join(lines)


def block_markdown(reports: Path) -> str:
    """The docs' `paper` block: the index with links from the docs root (where the site publishes reports/)."""
    return index_markdown(reports / "paper", prefix="reports/paper/")


def write_index(setup: Setup, block_root: Path | None) -> str:
    """<out>/index.md; and the `paper` block of the repository at `block_root`, re-rendered from its reports
    (when `out` is that repository's reports/paper)."""
    markdown = index_markdown(setup.out)
    (setup.out / "index.md").write_text(markdown + "\n")
    if block_root is not None:
        republish("paper", block_root)
    return markdown


# Figure 3 first: it queues DVC experiments from a clean committed workspace, and the others write reports/paper.
EXPERIMENTS = {"figure3": run_figure3, "fidelity": run_fidelity, "collapse": run_collapse, "table3": run_table3,
               "table2": run_table2, "figure4": run_figure4, "table6": run_table6}
# Run only when named: `make paper` (all the others) takes about 47 minutes on 2 cores, and collapse would add
# about 40 more, to the edge of the 90-minute budget (docs/results.md).
OPT_IN = ("collapse",)
TITLES = {"fidelity.md": "Fidelity: Eq. 2 layout, loss, all at once (val decides)",
          "collapse.md": "All at once, one choice at a time: which one removes the collapse",
          "table2.md": "Table 2: baselines", "table3.md": "Table 3: MAT x JAS",
          "figure3.png": "Figure 3: S x T grid (DVC experiments)", "figure3.md": "Figure 3 as a table",
          "figure4.png": "Figure 4: t-SNE before and after training", "table6.md": "Table 6: nearest vocabulary words"}
