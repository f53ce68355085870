"""What the model registry holds, as GTO reads it from the git tags of a repository (a path or a URL).

GTO is the `registry` extra: it is imported when one of these runs, so the reports page and the
service import this module without it.
"""
from __future__ import annotations


def stages_held(repo: str, artifact: str) -> dict[str, str]:
    """{stage: version} of `artifact`, from the annotated tags."""
    from gto import api

    return dict(api.show(repo).get(artifact, {}).get("stage", {}))


def version_rows(repo: str) -> list[dict]:
    """Every artifact's versions: artifact, version, commit, registered (date), stages, active."""
    from gto import api

    rows = []
    for name in sorted(api.show(repo)):
        for v in api.show(repo, name):
            registered = next(iter(v.get("registrations") or []), {})
            created = registered.get("created_at")
            rows.append({"artifact": name, "version": v["version"], "commit": v["commit_hexsha"][:10],
                         "registered": created.strftime("%Y-%m-%d") if created else "",
                         "stages": sorted(s["stage"] for s in v.get("stages", [])),
                         "active": v.get("is_active", True)})
    return rows
