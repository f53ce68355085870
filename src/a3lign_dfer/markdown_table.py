"""One way to write a markdown table, so every report's tables (stage metrics, validation counts,
release checks, the research wing's benchmarks and paper tables) come out alike.

    markdown_table(["class", "clips"], [["happy", 3], ["sad", 1]])
    -> "| class | clips |\n|---|---|\n| happy | 3 |\n| sad | 1 |"

Imports nothing from the project, so any module may use it.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence


def _line(cells: Sequence[object]) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"


def markdown_table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    """`| h1 | h2 |`, `|---|---|`, then one `| c1 | c2 |` line per row (cells via str()); no trailing newline."""
    return "\n".join([_line(header), "|---" * len(header) + "|", *map(_line, rows)])
