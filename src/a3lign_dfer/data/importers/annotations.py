"""Annotation files (split CSVs, list files) read line by line, with clear errors for bad files."""
from __future__ import annotations

from pathlib import Path

from a3lign_dfer.errors import ConfigError, MissingInput


def read_lines(path: Path, fmt: str, header: str | None = None) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of every non-blank line after `header`.

    A missing, empty, non-text file or one whose first line is not `header` raises an
    error naming the file and the expected format.
    """
    if not path.is_file():
        raise MissingInput(f"annotation file not found: {path} (expected lines `{fmt}`; is data.root "
                                "the dataset's top folder?)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: malformed annotation file: not UTF-8 text ({err.reason} at byte {err.start})") from err
    lines = [(no, line.strip()) for no, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise ConfigError(f"{path}: empty annotation file (expected lines `{fmt}`)")
    if header is not None:
        first = lines[0][1].replace(" ", "")
        if first != header:
            raise ConfigError(f"{path}: malformed annotation file: first line is {lines[0][1]!r}, expected the "
                             f"header {header!r}")
        lines = lines[1:]
        if not lines:
            raise ConfigError(f"{path}: empty annotation file (a header and no clips)")
    return lines
