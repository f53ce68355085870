"""The suite's cost tiers, derived from what each test uses, so a new end-to-end test is marked without anyone
remembering to: a test is `e2e` when its fixtures (their whole closure) or the code it runs (its own body and its
fixtures' bodies, the helpers of their modules they call, their helpers) reach one of the costly things below.
Everything else is the fast tier. `make test-fast` runs the fast tier; `make test` runs it, then the e2e tier."""
from __future__ import annotations

import inspect
import types
from dataclasses import dataclass

import pytest

# Session resources that build a pipeline, run DVC stages or start a server, a Prefect backend, a Dask cluster
# or a browser (conftest and the modules' own fixtures built on them).
E2E_FIXTURES = frozenset({
    "built_pipeline",    # the tiny pipeline, built by the Prefect pipeline flow
    "prefect_backend",   # prefect_test_harness: a Prefect API server
    "scale",             # a 2-worker Dask LocalCluster
    "s3",                # moto's S3 server
})
# What a test body (or a helper it calls) may start directly.
E2E_CALLS = frozenset({
    "make_tiny_repo",        # git + DVC repo with the project's stages
    "repro_stage",           # `dvc repro` of one stage
    "LocalCluster",          # Dask
    "dask_client",           # Dask: a LocalCluster unless handed a scheduler
    "crop_dataset",          # the sharded stages' functions, on Dask (ditto)
    "build_feature_cache",
    "ThreadedMotoServer",    # S3
    "prefect_test_harness",  # Prefect
    "render_in_chromium",    # headless Chromium (a3lign_research.browser)
    "DevToolsTab",           # headless Chromium, driven
    "check_ui",              # Prefect's UI in Chromium
    "running_service",       # the HTTP service as a process
    "service_process",       # the HTTP service as a process, its output kept (serving/process.py)
    "running_prefect_server",  # a Prefect server with its UI (a3lign_research.ui_check)
    "serve_deployments",     # flows served against a Prefect server (ditto)
    "running_label_studio",  # a Label Studio server (tests/test_label_studio.py)
})


@dataclass(frozen=True)
class Tier:
    nodeid: str
    e2e: bool
    because: tuple[str, ...]     # the fixtures and calls that made it end-to-end


def _called_names(function, module: types.ModuleType, seen: set) -> set[str]:
    """Every global name `function` refers to, following the functions of `module` it calls."""
    code = getattr(function, "__code__", None)
    if code is None or code in seen:
        return set()
    seen.add(code)
    names: set[str] = set()
    stack = [code]
    while stack:
        co = stack.pop()
        names.update(co.co_names)
        stack.extend(c for c in co.co_consts if isinstance(c, types.CodeType))
    for name in list(names):
        target = getattr(module, name, None)
        if inspect.isfunction(target) and target.__module__ == module.__name__:
            names |= _called_names(target, module, seen)
    return names


def _code_of(item: pytest.Item) -> list:
    """The test function and every fixture function it uses (their closure), each with its own module."""
    functions = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)
    for defs in (info.name2fixturedefs.values() if info else ()):
        functions += [d.func for d in defs]
    return [(f, inspect.getmodule(f)) for f in functions if f is not None]


def tier_of(item: pytest.Item) -> Tier:
    fixtures = set(getattr(item, "fixturenames", ())) & E2E_FIXTURES
    calls = set()
    for function, module in _code_of(item):
        if module is not None:
            calls |= _called_names(function, module, set()) & E2E_CALLS
    marked = {"gpu"} if item.get_closest_marker("gpu") else set()      # a GPU run is never the inner loop
    because = tuple(sorted(fixtures | calls | marked))
    return Tier(item.nodeid, bool(because), because)


TIERS = pytest.StashKey[list[Tier]]()    # every collected item's tier, before `-m` deselection


def mark_and_order(items: list[pytest.Item]) -> list[Tier]:
    """Mark each end-to-end item `e2e` and move the fast tier first (order kept within each tier), in place;
    returns every item's tier (before any `-m` deselection)."""
    tiers = [tier_of(item) for item in items]
    for item, tier in zip(items, tiers):
        if tier.e2e:
            item.add_marker(pytest.mark.e2e)
    items[:] = [i for i, t in zip(items, tiers) if not t.e2e] + [i for i, t in zip(items, tiers) if t.e2e]
    return tiers
