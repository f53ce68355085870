"""Building typed sections from params.yaml (and typed reports from JSON): the checks every section shares."""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import yaml

from a3lign_dfer.errors import ConfigError, MissingInput

T = TypeVar("T")


def build(cls: type[T], raw: dict[str, Any], where: str = "", source: str = "params.yaml") -> T:
    """`cls` from `raw`, refusing an unknown, missing or wrongly typed key; `source` names the file in errors."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: section '{where}' must be a mapping, got {raw!r}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} in '{where}'; known: {sorted(names)}")
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in raw and f.default is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{source}: missing key(s) {missing} in '{where or 'the top level'}'")
    kwargs = {}
    for key, value in raw.items():
        hint, at = hints[key], f"{where}.{key}" if where else key
        if (nested := _dataclass_of(hint)) is not None and not (value is None and nested is not hint):
            kwargs[key] = build(nested, value, at, source)
        elif getattr(hint, "__origin__", None) is list:
            item_type = typing.get_args(hint)[0]
            kwargs[key] = ([build(item_type, item, f"{at}[{i}]", source) for i, item in enumerate(value)]
                           if dataclasses.is_dataclass(item_type) else list(value))
        elif getattr(hint, "__origin__", None) is tuple:
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = _scalar(hint, value, at, source)
    try:
        return cls(**kwargs)
    except ValueError as err:                    # a section's own check: say which section
        raise ConfigError(f"{source}, {f'section {where!r}' if where else 'across sections'}: {err}") from None


def _dataclass_of(hint: Any) -> type | None:
    """The section a hint names, alone or as `Section | None` (a key that older files lack); else None."""
    options = [h for h in typing.get_args(hint) if h is not type(None)] if isinstance(hint, types.UnionType) else [hint]
    return options[0] if len(options) == 1 and dataclasses.is_dataclass(options[0]) else None


def _scalar(hint: Any, value: Any, where: str, source: str) -> Any:
    """A wrong type in params.yaml (`lr: abc`) fails here with its key, not deep inside a stage."""
    allowed = set(typing.get_args(hint)) if isinstance(hint, types.UnionType) else {hint}
    if value is None and type(None) in allowed:
        return value
    ok = {int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          str: lambda v: isinstance(v, str), bool: lambda v: isinstance(v, bool)}
    checks = [ok[t] for t in allowed if t in ok]
    if checks and not any(check(value) for check in checks):
        names = " or ".join(t.__name__ for t in allowed if t is not type(None))
        raise ConfigError(f"{source}: {where} must be {names}, got {value!r}")
    return value


def read(path: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The params file as a dict, with `overrides` (nested sections) merged on top."""
    path = Path(path)
    if not path.exists():
        raise MissingInput(f"params file not found: {path} (--params)")
    return merge(yaml.safe_load(path.read_text()) or {}, overrides or {})


def load(cls: type[T], path: str | Path = "params.yaml", overrides: dict[str, Any] | None = None) -> T:
    """The sections `cls` declares (a stage's view), read from the params file; other sections are not read."""
    raw = read(path, overrides)
    return build(cls, {f.name: raw[f.name] for f in dataclasses.fields(cls) if f.name in raw})


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of base with overrides merged in, section by section (lists and scalars replace)."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain-JSON form, stored beside checkpoints so they never depend on params.yaml."""
    return json_ready(dataclasses.asdict(obj))


def json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value
