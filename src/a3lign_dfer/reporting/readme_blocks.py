"""Generated blocks of README.md: text between `<!-- NAME:start -->` and `<!-- NAME:end -->` that only the
command which measured the numbers writes, so a README number is always the one on disk."""
from __future__ import annotations

import json
from pathlib import Path


def cpu_name() -> str:
    """The CPU a measurement ran on, as /proc/cpuinfo names it: every measured block says which machine it is."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def replace_block(readme: Path, name: str, markdown: str) -> None:
    """Put `markdown` between the block's markers; ValueError naming the block when the README has none."""
    start, end = markers(name)
    text = readme.read_text()
    if start not in text or end not in text:
        raise ValueError(f"{readme} has no {start} ... {end} block to fill")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{markdown}\n{end}{tail}")


def add_report_options(parser, out: str | Path, readme: str | Path) -> None:
    """--out (the benchmark's JSON), --readme, --markdown-only: the options every benchmark that owns a block takes."""
    parser.add_argument("--out", default=str(out), help="the JSON the measurements go to")
    parser.add_argument("--readme", default=str(readme), help="the README whose block is rewritten")
    parser.add_argument("--markdown-only", action="store_true", help="re-render the README block from --out")


def publish(result: dict, out: str | Path, readme: str | Path, name: str, markdown) -> None:
    """The benchmark's JSON, then its README block rendered from it (their only writer)."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2))
    replace_block(Path(readme), name, markdown(result))


def republish(out: str | Path, readme: str | Path, name: str, markdown) -> dict:
    """--markdown-only: the README block re-rendered from the JSON on disk (after a wording change)."""
    result = json.loads(Path(out).read_text())
    replace_block(Path(readme), name, markdown(result))
    return result
