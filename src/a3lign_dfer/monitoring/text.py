"""A drift summary in words, written once: the drift command's line, the HTML report's verdict header, the
monitor flow's markdown and the reports page's row all lay out what `describe` says and add no words of their own."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from a3lign_dfer.monitoring.results import is_embedding_component

if TYPE_CHECKING:
    from a3lign_dfer.monitoring.rules import Alarms
    from a3lign_dfer.monitoring.summary import Comparison, DriftSummary

NAMED = 6                            # columns named in a reason or a check; the rest are counted


@dataclass(frozen=True)
class SummaryText:
    verdict: str                     # DRIFT | no drift | no readable video
    alert: bool                      # the verdict asks for a look (DRIFT, or nothing could be compared)
    compared: str                    # 47 of 48 videos compared with 240 reference clips (val)
    reasons: tuple[str, ...]         # one per rule that fired
    checks: dict[str, str]           # check -> its result against its threshold (none when nothing was compared)
    drifted_table: tuple[tuple[str, str, str, str], ...]   # drifted input columns: name, p, reference mean, batch mean
    unreadable: tuple[tuple[str, str], ...]      # (path, reason) per video that could not be read
    caveat: str | None               # the batch's clips are of another kind than the reference's
    line: str                        # the verdict in one line, with the reasons (or what was compared) and the report


def describe(summary: DriftSummary) -> SummaryText:
    c = summary.comparison
    if c is None:
        verdict, alert = "no readable video", True
        compared = f"none of the {summary.videos} videos could be read: nothing to compare"
        reasons, checks, table = (), {}, ()
    else:
        a = c.alarms
        verdict, alert = ("DRIFT", True) if a.drift else ("no drift", False)
        compared = (f"{summary.readable} of {summary.videos} videos compared with {summary.reference_clips} "
                    f"reference clips ({summary.reference_split})")
        reasons, checks = _reasons(c, a), _checks(c, a)
        table = tuple((name, f"{r.score:.3g}", f"{r.reference_mean:.4g}", f"{r.current_mean:.4g}")
                      for name, r in sorted(c.columns.items(), key=lambda kv: kv[1].score) if r.drifted)
    why = "; ".join(reasons) or compared
    caveat = _caveat(summary.reference_kinds, summary.kinds)
    return SummaryText(verdict, alert, compared, reasons, checks, table,
                       tuple((b["path"], b["reason"]) for b in summary.bad_files), caveat,
                       f"{verdict} in {summary.batch}: {why}{f' (caveat: {caveat})' if caveat else ''} -> "
                       f"{summary.report_html}")


KIND_WORDS = {"video": "raw videos through the face track", "frames": "a dataset's aligned face crops (frame folders)"}


def _caveat(reference: dict[str, int], batch: dict[str, int]) -> str | None:
    """Said when the batch holds a kind of clip the reference does not: what differs by construction."""
    if not reference or not batch or set(batch) <= set(reference):
        return None
    words = lambda kinds: " and ".join(KIND_WORDS.get(k, k) for k in kinds)  # noqa: E731
    return (f"the reference is {words(reference)} and this batch holds {words(batch)}: face_size and "
            "detection_rate differ by construction (an aligned crop is the whole frame) and so does the crops' "
            "framing, so flags on those columns and on the embedding are expected and are not by themselves drift")


def _most_telling_first(c: Comparison, names: tuple[str, ...]) -> list[str]:
    """Crop statistics first (a reader can see what they mean), then by p-value."""
    return sorted(names, key=lambda name: (is_embedding_component(name), c.columns[name].score))


def _listing(items: list[str]) -> str:
    more = f" and {len(items) - NAMED} more" if len(items) > NAMED else ""
    return ", ".join(items[:NAMED]) + more if items else "none"


def _reasons(c: Comparison, a: Alarms) -> tuple[str, ...]:
    t = c.thresholds
    out = []
    if a.share:
        out.append(f"{len(a.drifted_columns)} of {len(c.columns)} input columns drifted at p < {t.column_p_value} "
                   f"({a.drifted_share:.0%} > {t.drifted_share:.0%})")
    if a.beyond_chance:
        moved = [f"{name} (p={c.columns[name].score:.2g}, mean {c.columns[name].reference_mean:.4g} -> "
                 f"{c.columns[name].current_mean:.4g})" for name in _most_telling_first(c, a.beyond_chance)]
        out.append(f"{len(moved)} column(s) moved beyond chance (p < {t.alarm_p_value}): {_listing(moved)}")
    if a.embedding:
        out.append(f"the embedding drifted ({t.embedding.method} score {c.embedding.score:.4g} > "
                   f"{t.embedding.threshold})")
    if a.class_mix:
        out.append(f"the predicted-class mix drifted ({c.class_mix.method} permutation p = {c.class_mix.score:.3g} "
                   f"< {t.class_mix_p_value})")
    return tuple(out)


def _checks(c: Comparison, a: Alarms) -> dict[str, str]:
    t = c.thresholds
    return {
        "drifted input columns": f"{len(a.drifted_columns)} of {len(c.columns)} ({a.drifted_share:.0%}; flag above "
                                 f"{t.drifted_share:.0%}): {_listing(list(a.drifted_columns))}",
        "columns beyond chance": _listing(_most_telling_first(c, a.beyond_chance)),
        "embedding": f"{c.embedding.score:.4g} ({t.embedding.method}; flag above {t.embedding.threshold})",
        "class mix": f"p = {c.class_mix.score:.3g} (flag below {t.class_mix_p_value})",
        "confidence": f"p = {c.confidence.score:.3g}",
    }
