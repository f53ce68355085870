"""Generated blocks of README.md: text between `<!-- NAME:start -->` and `<!-- NAME:end -->` that only the
command which measured the numbers writes, so a README number is always the one on disk."""
from __future__ import annotations

from pathlib import Path


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
