"""Typed view of params.yaml, one module per pipeline area.

Every section is a frozen dataclass so a typo in params.yaml fails loudly at load
time (unknown, missing or wrongly typed key) instead of deep inside a stage.
params.yaml is the only place a value lives: the dataclasses declare names and
types, never defaults (an optional `X | None` key may be left out and is None).

A stage loads only the sections it reads (a `*Params` view of its area module),
so the stage depends on that module alone: a new `serve` field re-runs no
training stage. `params.Params` is every section at once, for tools and tests.
This file stays empty of code: every area module imports it.
"""
