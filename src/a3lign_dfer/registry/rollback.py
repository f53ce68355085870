"""Rollback: `prod` goes back to the version that held it before the current one, from GTO's stage history.

In GTO a version holds a stage from its assignment until it is unassigned, and of the versions
holding a stage the latest assigned is the one `gto show` (and so `serve --stage`) names. A
rollback unassigns `prod` from the current version, which withdraws it, and assigns `prod` to
the previous holder again (a fresh tag, so the history says when and why). A second rollback goes
one further back; a withdrawn version returns to prod only by a release that assigns it again.

Example: python -m a3lign_dfer release --rollback
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from a3lign_dfer.errors import UserError
from a3lign_dfer.registry.versions import stages_held

PROD = "prod"


class NoPreviousVersion(UserError, RuntimeError):
    """Nothing to roll back to: the stage was never assigned, or only one version holds it."""


@dataclass(frozen=True)
class StageEvent:
    action: str                              # assign | unassign
    version: str
    time: datetime | None = None             # the tag's time (whole seconds)


@dataclass(frozen=True)
class Rollback:
    artifact: str
    stage: str
    current: str                             # the version that held the stage
    previous: str                            # the version that holds it now


def holders(events: list[StageEvent]) -> list[str]:
    """Versions holding the stage after `events` (oldest first), the latest assigned last: each version's
    latest event decides whether it holds the stage, as in GTO."""
    held: list[str] = []
    for event in events:
        if event.version in held:
            held.remove(event.version)
        if event.action == "assign":
            held.append(event.version)
    return held


def choose_previous(events: list[StageEvent], artifact: str, stage: str = PROD) -> tuple[str, str]:
    """(current, previous) holder of the stage; NoPreviousVersion saying why there is none."""
    held = holders(events)
    if not held:
        raise NoPreviousVersion(f"no version of {artifact} holds {stage}: nothing to roll back "
                                "(release one with: python -m a3lign_dfer release --prod)")
    if len(held) < 2:
        withdrawn = sorted({e.version for e in events} - set(held))
        raise NoPreviousVersion(f"no previous {stage} version of {artifact} to roll back to: {held[-1]} is the only "
                                f"version holding {stage}" + (f" ({', '.join(withdrawn)} withdrawn by earlier "
                                                             "rollbacks or unassigned)" if withdrawn else ""))
    return held[-1], held[-2]


def stage_events(repo: str, artifact: str, stage: str = PROD) -> list[StageEvent]:
    """The stage's assignments and unassignments in the order they were made: tag time (whole seconds), then
    the counter GTO numbers an artifact's stage tags with (`name#stage#N`), which orders tags of one second."""
    from gto.base import Assignment, Unassignment
    from gto.registry import GitRegistry
    from gto.tag import parse_name

    with GitRegistry.from_url(repo) as registry:
        found = registry.find_artifact(artifact, create_new=True)
        events = [e for e in found.get_events(ascending=True)
                  if isinstance(e, (Assignment, Unassignment)) and e.stage == stage]
    events.sort(key=lambda e: (e.created_at, parse_name(e.tag, raise_on_fail=False).get("counter", 0)))
    return [StageEvent("assign" if isinstance(e, Assignment) else "unassign", e.version, e.created_at)
            for e in events]


def wait_for_a_later_second(events: list[StageEvent]) -> None:
    """Sleep (at most a second) until the clock is past the latest tag's second: GTO orders a stage's tags by
    their time in whole seconds, so a tag made in the same second as the last one might not count as the latest."""
    latest = max((e.time for e in events if e.time is not None), default=None)
    if latest is not None:
        wait = (latest + timedelta(seconds=1) - datetime.now(UTC)).total_seconds()
        if wait > 0:
            time.sleep(min(wait, 1.0))


def rollback(repo: str, artifact: str, stage: str = PROD) -> Rollback:
    """Unassign `stage` from its current version and assign it to the previous holder."""
    from gto import api

    events = stage_events(repo, artifact, stage)
    current, previous = choose_previous(events, artifact, stage)
    shown = stages_held(repo, artifact).get(stage)
    if shown != current:                      # GTO and this history disagree (tags of one second): change nothing
        raise NoPreviousVersion(f"GTO shows {stage} at {shown} but its tag history ends at {current}; "
                                "nothing changed (look at: gto history)")
    wait_for_a_later_second(events)
    message = f"rollback: {stage} {current} -> {previous}"
    api.unassign(repo, artifact, stage=stage, version=current, message=message)
    api.assign(repo, artifact, stage, version=previous, message=message, force=True)
    return Rollback(artifact, stage, current, previous)
