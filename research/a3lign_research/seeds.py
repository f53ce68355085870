"""Results as mean +- std over training seeds, each seed a DVC experiment.

`python -m a3lign_research seeds --seeds 0 1 2 3 4` runs `dvc exp run --temp -S
train.seed=<k>` per seed: only the training stages, `evaluate` and `shuffle_check` re-run (data,
crops, the small CLIP and the feature cache depend on `data.seed`, not on the
training seed, and come from DVC's cache), the workspace and params.yaml are left
untouched, and every seed stays inspectable with `dvc exp show`. The metrics of
each experiment are read back from its git commit and summarised into
reports/seeds/summary.json and summary.md, which the README's results come from.

Extra `--set key=value` overrides apply to every seed, so a hyperparameter
comparison is two seed runs whose val numbers (`val` in the summary) decide.

The machinery is one experiment per value of one param (`run_sweep`). The `folds`
command does not use it: a fold changes the split, not the features, so it trains
each fold on one feature pass (evaluation/folds.py).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from a3lign_dfer.config.stage_table import FINAL, LADDER
from a3lign_dfer.markdown_table import markdown_table
from a3lign_dfer.orchestration.dvc_runner import run_dvc
from a3lign_dfer.report_files import EVALUATION, SHUFFLE_CHECK, ReportFile, parse, to_json, training
from a3lign_research.blocks import write_report


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


# The dvc.yaml stages whose reports an experiment is read for (read_experiment): the experiment reproduces
# up to them only, so export (with its drift reference) and the reports page do not run once per seed.
READ_STAGES = ("evaluate", "shuffle_check")


def run_experiment(param: str, value: object, overrides: list[str], repo: Path, name: str) -> str:
    """One value of `param` as a DVC experiment in a temporary copy, up to READ_STAGES; returns its commit."""
    run_dvc(["exp", "remove", name], repo, check=False)            # re-running replaces it
    run_dvc(["exp", "run", "--temp", "--name", name, *READ_STAGES, "-S", f"{param}={value}",
             *(arg for item in overrides for arg in ("-S", item))], repo)
    refs = [r for r in _git("for-each-ref", "--format=%(refname)", "refs/exps", cwd=repo).split()
            if r.endswith(f"/{name}")]
    if len(refs) != 1:
        raise RuntimeError(f"expected one experiment ref named {name}, found {refs}")
    return _git("rev-parse", refs[0], cwd=repo).strip()


def run_sweep(param: str, values: list, overrides: list[str], repo: Path, prefix: str,
              label: str) -> tuple[dict, dict]:
    """One experiment `<prefix>-<value>` per value of `param`; each one's metrics and commit, keyed by value."""
    results, revs = {}, {}
    for value in values:
        name = f"{prefix}-{value}"
        print(f"[{label}] {name}: dvc exp run --temp -S {param}={value} {' '.join(overrides)}", flush=True)
        revs[value] = run_experiment(param, value, overrides, repo, name)
        results[value] = read_experiment(revs[value], repo)
        print(f"[{label}] {name}: test UAR {100 * results[value]['test']['uar']:.1f}, "
              f"val UAR {100 * results[value]['val'][FINAL]['uar']:.1f}", flush=True)
    return results, revs


def read_experiment(rev: str, repo: Path) -> dict:
    """The metrics `evaluate`, `shuffle_check` and each training stage wrote, as committed in the experiment."""
    def show(contract: ReportFile) -> dict:        # checked against its contract, kept as the JSON it is
        return to_json(parse(contract.schema, _git("show", f"{rev}:reports/{contract.path}", cwd=repo), contract.path))

    return {"test": show(EVALUATION), "shuffle": show(SHUFFLE_CHECK),
            "val": {s: show(training(s))["val"] for s in LADDER}}


def stats(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
            "min": float(arr.min()), "max": float(arr.max()), "values": arr.tolist()}


def summarize(per_seed: dict[int, dict]) -> dict:
    """Mean +- std (sample std, ddof=1) of every Table 4 row, the shuffled drop, per-class recall."""
    seeds = sorted(per_seed)
    tests = [per_seed[s]["test"] for s in seeds]
    shuffles = [per_seed[s]["shuffle"] for s in seeds]
    classes = tests[0]["classes"]
    rows = []
    for i, row in enumerate(tests[0]["table4"]):
        keyed = [t["table4"][i] for t in tests]
        shuffled = [sh["table5"][i] for sh in shuffles]
        if any((r["paradigm"], r["image_layers"], r["text_layers"]) !=
               (row["paradigm"], row["image_layers"], row["text_layers"]) for r in keyed + shuffled):
            raise ValueError("seeds disagree on the Table 4 rows: were they run with different ladders?")
        rows.append({k: row[k] for k in ("paradigm", "image_layers", "text_layers", "stage")}
                    | {m: stats([r[m] for r in keyed]) for m in ("war", "uar")}
                    | {"shuffled_uar_drop": stats([r["shuffled_uar_drop"] for r in shuffled])})
    return {
        "seeds": seeds, "num_test_clips": tests[0]["num_test_clips"], "classes": classes,
        "chance_uar": tests[0]["chance_uar"], "clip_model": tests[0]["clip_model"],
        "table4": rows,
        "final": {
            "war": stats([t["war"] for t in tests]), "uar": stats([t["uar"] for t in tests]),
            "shuffled_uar": stats([sh["shuffled"]["uar"] for sh in shuffles]),
            "shuffled_uar_drop": stats([sh["shuffled"]["uar_drop"] for sh in shuffles]),
            "per_class_recall": {c: stats([t["per_class_recall"][c] for t in tests]) for c in classes},
            "shuffled_per_class_recall": {c: stats([sh["shuffled"]["per_class_recall"][c] for sh in shuffles])
                                          for c in classes},
        },
        "val": {stage: {"uar": stats([per_seed[s]["val"][stage]["uar"] for s in seeds]),
                        "shuffled_uar_drop": stats([per_seed[s]["val"][stage]["shuffled"]["uar_drop"]
                                                     for s in seeds])}
                for stage in LADDER},
    }


def plus_minus(stat: dict) -> str:
    return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}"


def summary_markdown(summary: dict, intro: str | None = None) -> str:
    """The tables of a summary; `intro` replaces the first line (which describes a seed sweep)."""
    if intro is None:
        n = len(summary["seeds"])
        intro = (f"Test split: {summary['num_test_clips']} clips, {len(summary['classes'])} classes "
                 f"(chance UAR {100 * summary['chance_uar']:.1f}%), CLIP `{summary['clip_model']}`. "
                 f"Mean ± std over {n} training seeds ({', '.join(map(str, summary['seeds']))}); "
                 "checkpoints and hyperparameters chosen on val.")
    final, classes = summary["final"], summary["classes"]
    lines = [intro,
             "",
             markdown_table(["Training paradigm", "Image layers", "Text layers", "WAR %", "UAR %",
                             "shuffled-frame UAR drop (points)"],
                            ([r["paradigm"], r["image_layers"], r["text_layers"], plus_minus(r["war"]),
                              plus_minus(r["uar"]), plus_minus(r["shuffled_uar_drop"])] for r in summary["table4"])),
             "",
             markdown_table(["Test frame order (final model)", "WAR %", "UAR %"],
                            [["normal", plus_minus(final["war"]), plus_minus(final["uar"])],
                             ["shuffled", "", f"{plus_minus(final['shuffled_uar'])} (drop "
                              f"{plus_minus(final['shuffled_uar_drop'])}; smallest seed "
                              f"{100 * final['shuffled_uar_drop']['min']:.1f})"]]),
             "",
             markdown_table(["Per-class test recall %", *classes],
                            [[title, *(plus_minus(final[key][c]) for c in classes)] for title, key in
                             (("normal order", "per_class_recall"), ("shuffled frames", "shuffled_per_class_recall"))]),
             "",
             markdown_table(["Validation (selection split), end of stage", "UAR %", "shuffled UAR drop"],
                            ([stage, plus_minus(v["uar"]), plus_minus(v["shuffled_uar_drop"])]
                             for stage, v in summary["val"].items()))]
    return "\n".join(lines)


def run_seeds(seeds: list[int], overrides: list[str], repo: Path, out_dir: Path, prefix: str = "seed") -> dict:
    per_seed, revs = run_sweep("train.seed", seeds, overrides, repo, prefix, "seeds")
    summary = summarize(per_seed) | {"overrides": overrides, "experiments": {s: revs[s] for s in seeds}}
    return write_report(out_dir / "summary.json", summary, summary_markdown(summary))


