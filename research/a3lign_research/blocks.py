"""Generated blocks: text of README.md and the docs pages between `<!-- NAME:start -->` and `<!-- NAME:end -->`
that only the command which measured the numbers writes, so a published number is always the one on disk.

`BLOCKS` is the one table of them (page, JSON, renderer, command): the writers, `test_readme` and the docs
build all read it. Every JSON a block renders from carries its provenance (CPU, cores, date), and every block
ends with it.
"""
from __future__ import annotations

import datetime
import importlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from a3lign_research import ROOT


@dataclass(frozen=True)
class Block:
    name: str
    page: str              # the one file holding it, from the repository root
    report: str            # the JSON its numbers come from, under reports/ (a glob for `whole` blocks)
    renderer: str          # "module:function": markdown from the JSON's record (or from reports/, `whole`)
    command: str           # what measures and writes it
    whole: bool = False    # rendered from the reports folder; provenance from every JSON `report` matches

    def render(self, reports: Path) -> str:
        """The block as rendered from `reports` (a reports folder); empty while its JSON is not published."""
        records = [json.loads(path.read_text()) for path in sorted(reports.glob(self.report))]
        if not records:
            return ""
        module, function = self.renderer.split(":")
        render: Callable = getattr(importlib.import_module(module), function)
        body = render(reports) if self.whole else render(records[0])
        return f"{body}\n\n{provenance_line(records, self.command)}"


def _benchmark(name: str, page: str) -> Block:
    """A benchmark's block: module `a3lign_research.benchmarks.<name with _>`, its JSON and its `markdown`."""
    module = name.replace("-", "_")
    return Block(name, page, f"benchmarks/{module}.json", f"a3lign_research.benchmarks.{module}:markdown",
                 f"python -m a3lign_research.benchmarks.{module}")


BLOCKS = {b.name: b for b in (
    Block("results", "README.md", "seeds/summary.json", "a3lign_research.results_table:results_markdown",
          "make seeds (python -m a3lign_research results re-renders)", whole=True),
    Block("paper", "docs/results.md", "paper/*.json", "a3lign_research.paper.experiments:block_markdown",
          "make paper", whole=True),
    _benchmark("setup-times", "README.md"),
    _benchmark("serving", "docs/serving.md"),
    _benchmark("service-load", "docs/serving.md"),
    _benchmark("video-cost", "docs/serving.md"),
    _benchmark("detection-cost", "docs/serving.md"),
    _benchmark("prediction-log", "docs/serving.md"),
    _benchmark("timeline", "docs/inference.md"),
    _benchmark("numerics-cost", "docs/reproducibility.md"),
    _benchmark("drift", "docs/monitoring.md"),
    _benchmark("scale", "docs/scaling.md"),
    _benchmark("text-layout", "docs/method.md"),
    _benchmark("folds-cost", "docs/data.md"),
    _benchmark("dfew-real-size", "docs/monitoring.md"),
    _benchmark("int8", "docs/export.md"),
)}


def cpu_name() -> str:
    """The CPU a measurement ran on, as /proc/cpuinfo names it: every measured block says which machine it is."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")


def provenance() -> dict:
    """Where and when a measurement ran: stamped into every JSON a block renders from."""
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "date": datetime.date.today().isoformat()}


def provenance_text(p: dict | None) -> str:
    """"<CPU>, <cores> cores, <date>" of one JSON's provenance."""
    if p is None:
        return "provenance not recorded"
    where = f"{p['cpu']}, {p['cores']} cores" if p.get("cpu") else "CPU not recorded"
    when = f"committed {p['date']} (before provenance was stamped; date from git log)" \
        if p.get("from_git_log") else p["date"]
    return f"{where}, {when}"


def provenance_line(records: list[dict], command: str) -> str:
    """"Measured on <CPU>, <cores> cores, <date>" for each distinct provenance of the block's JSON files."""
    seen = list(dict.fromkeys(provenance_text(r.get("provenance")) for r in records))
    return f"<sub>Measured on {'; '.join(seen)}; written by `{command}`.</sub>"


def write_report(path: Path, record: dict, markdown: str | None = None) -> dict:
    """The JSON (stamped with its provenance) first, so what was measured survives a rendering bug; then the
    markdown beside it (`<path>.md`), when given."""
    record = {**record, "provenance": provenance()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    if markdown is not None:
        path.with_suffix(".md").write_text(markdown + "\n")
    return record


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def read_block(text: str, name: str) -> str:
    start, end = markers(name)
    return text.split(start, 1)[1].split(end, 1)[0].strip("\n")


def replace_block(page: Path, name: str, markdown: str) -> None:
    """Put `markdown` between the block's markers; ValueError naming the block when the page has none."""
    start, end = markers(name)
    text = page.read_text()
    if start not in text or end not in text:
        raise ValueError(f"{page} has no {start} ... {end} block to fill")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    page.write_text(f"{head}{start}\n{markdown}\n{end}{tail}")


def republish(name: str, root: Path = ROOT) -> str:
    """The block re-rendered into its page from the report files on disk (after a run, or a wording change)."""
    block = BLOCKS[name]
    markdown = block.render(root / "reports")
    if not markdown:
        raise FileNotFoundError(f"reports/{block.report} is missing: run `{block.command}` first")
    replace_block(root / block.page, name, markdown)
    return markdown


def publish(name: str, record: dict, root: Path = ROOT) -> dict:
    """A benchmark's JSON, then its block rendered from it (their only writer)."""
    stamped = write_report(root / "reports" / BLOCKS[name].report, record)
    republish(name, root)
    return stamped


def publish_to_copy(name: str, record: dict, scratch: Path) -> None:
    """The block rendered into a copy of its page under `scratch` (a benchmark's quick run: the markers and the
    renderer are checked, and nothing of the repository is written)."""
    page = BLOCKS[name].page
    (scratch / page).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / page, scratch / page)
    publish(name, record, root=scratch)


def main(argv: list[str] | None = None) -> int:
    """`python -m a3lign_research.blocks [NAME ...]`: re-render blocks from the JSON on disk (all by default),
    after a wording change; measuring is the benchmark's own command."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__.split(":")[0])
    parser.add_argument("names", nargs="*", choices=[[], *BLOCKS], metavar="NAME", help=", ".join(BLOCKS))
    for name in parser.parse_args(argv).names or BLOCKS:
        republish(name)
        print(f"re-rendered {name} in {BLOCKS[name].page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
