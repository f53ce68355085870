"""Champion/challenger verdicts: the release's candidate against the version in prod, on the same clips.

The fixed gate (registry.release) asks whether a build is good enough; this one asks whether it
is worse than what users get now. Both models are scored on the same clips (registry.scoring),
and the candidate is refused when its test UAR is below prod's by more than
`release.challenger.max_uar_drop`, or one class's test recall is below prod's by more than
`max_class_recall_drop`. The held-out labelled feedback is reported apart and gated alike from
`min_feedback_clips` usable clips on: below that, one clip moves a class's recall by more than
the limits, so it is shown, not gated. With no version in prod (a first release) only the fixed
gate applies. Nothing here runs a model: verdicts come from scores, so they are tested on numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from a3lign_dfer.config.deploy import ChallengerConfig
from a3lign_dfer.markdown_table import markdown_table
from a3lign_dfer.report_files import ChallengerReport, ChallengerSet, ModelScores

TEST, FEEDBACK = "test", "feedback"
TITLES = {TEST: "test split", FEEDBACK: "labelled feedback"}
CROPS_DIR = Path("data/crops")          # face_crop's output (dvc.yaml): the test split's stored face crops
FEEDBACK_DIR = Path("data/feedback")    # `feedback export`'s output: labels.csv (path,label,split,clip_id), videos/
HEADLINES = {"passed": "passed", "refused": "REFUSED", "no_prod": "first release (no version in prod)",
             "not_comparable": "not comparable with prod"}
TOLERANCE = 1e-9            # a drop counts beyond float rounding: equal models give equal numbers


@dataclass(frozen=True)
class SetScores:
    """The models on one set, as scoring found them (judge_set adds the verdict)."""

    name: str                                # TEST or FEEDBACK
    clips: int
    skipped: int
    candidate: ModelScores | None            # None: no usable clip
    prod: ModelScores | None                 # None: no version in prod, or not comparable
    note: str | None = None


def drops(candidate: ModelScores, prod: ModelScores, cfg: ChallengerConfig) -> list[str]:
    """Why the candidate is worse than prod beyond the limits (empty when it is not)."""
    found = []
    uar_drop = prod.uar - candidate.uar
    if uar_drop > cfg.max_uar_drop + TOLERANCE:
        found.append(f"UAR {candidate.uar:.4f} is {uar_drop:.4f} below prod's {prod.uar:.4f} "
                     f"(max_uar_drop {cfg.max_uar_drop:g})")
    for name, before in prod.per_class_recall.items():
        after = candidate.per_class_recall[name]
        if before - after > cfg.max_class_recall_drop + TOLERANCE:
            found.append(f"{name} recall {after:.4f} is {before - after:.4f} below prod's {before:.4f} "
                         f"(max_class_recall_drop {cfg.max_class_recall_drop:g})")
    return found


def judge_set(scores: SetScores, cfg: ChallengerConfig) -> ChallengerSet:
    """The set's verdict: the test split gates whenever prod is scored; the feedback from min_feedback_clips on."""
    note, gated = scores.note, scores.candidate is not None and scores.prod is not None
    if gated and scores.name == FEEDBACK and scores.clips < cfg.min_feedback_clips:
        gated = False
        note = _joined(note, f"reported, not gated: {scores.clips} clip(s), fewer than min_feedback_clips "
                             f"({cfg.min_feedback_clips})")
    failures = drops(scores.candidate, scores.prod, cfg) if gated else []
    return ChallengerSet(scores.name, scores.clips, scores.skipped, gated, failures, scores.candidate, scores.prod,
                         note)


def judge(sets: list[SetScores], cfg: ChallengerConfig, candidate_sha256: str, prod_version: str | None,
          prod_sha256: str | None, comparable: bool = True) -> ChallengerReport:
    """The verdict over every set: refused when a gated set refuses; no_prod and not_comparable leave the
    decision to the fixed gate."""
    judged = [judge_set(s, cfg) for s in sets]
    if prod_version is None:
        verdict = "no_prod"
    elif not comparable:
        verdict = "not_comparable"
    else:
        verdict = "refused" if any(s.failures for s in judged) else "passed"
    return ChallengerReport(verdict, candidate_sha256, prod_version, prod_sha256, cfg.max_uar_drop,
                            cfg.max_class_recall_drop, cfg.min_feedback_clips, judged)


def reasons(report: ChallengerReport) -> list[str]:
    """Each gated set's failures, named by set."""
    return [f"{TITLES[s.name]}: {failure}" for s in report.sets for failure in s.failures]


def _joined(*notes: str | None) -> str | None:
    return "; ".join(n for n in notes if n) or None


def set_table(s: ChallengerSet, report: ChallengerReport) -> str:
    """UAR, WAR and every class's recall: prod, candidate, the difference and the limit it is held to."""
    rows = [("UAR", "uar", report.max_uar_drop), ("WAR", "war", None)]
    rows += [(f"recall {c}", c, report.max_class_recall_drop) for c in s.candidate.per_class_recall]

    def value(scores: ModelScores, key: str) -> float:
        return getattr(scores, key) if key in ("uar", "war") else scores.per_class_recall[key]

    if s.prod is None:
        return markdown_table(["metric", "candidate"], [(label, f"{value(s.candidate, key):.4f}")
                                                        for label, key, _ in rows])
    table = []
    for label, key, limit in rows:
        before, after = value(s.prod, key), value(s.candidate, key)
        failed = limit is not None and before - after > limit + TOLERANCE
        result = "-" if limit is None or not s.gated else ("FAIL" if failed else "pass")
        table.append((label, f"{before:.4f}", f"{after:.4f}", f"{after - before:+.4f}",
                      "-" if limit is None else f"drop <= {limit:g}", result))
    return markdown_table(["metric", f"prod {report.prod_version}", "candidate", "delta", "limit", "result"], table)


def challenger_markdown(report: ChallengerReport) -> str:
    """The comparison as a page: the verdict, then one table per set (the Prefect artifact, challenger.md)."""
    against = (f"against prod **{report.prod_version}** (manifest sha256 `{report.prod_sha256[:12]}`)"
               if report.prod_version else "with no version in prod: only the fixed gate applies")
    intro = (f"Candidate `models/deploy` (manifest sha256 `{report.candidate_sha256[:12]}`) {against}, on the same "
             f"clips. Limits (`release.challenger`): UAR drop <= {report.max_uar_drop:g}, per-class recall drop <= "
             f"{report.max_class_recall_drop:g}; the feedback set gates from {report.min_feedback_clips} clips.")
    lines = [f"# Champion/challenger: {HEADLINES[report.verdict]}", "", intro]
    for s in report.sets:
        unread = f", {s.skipped} unreadable" if s.skipped else ""
        lines += ["", f"## {TITLES[s.name]}: {s.clips} clip(s){unread}, {'gated' if s.gated else 'not gated'}", ""]
        if s.note:
            lines += [s.note, ""]
        if s.candidate is not None:
            lines.append(set_table(s, report))
        if s.failures:
            lines += ["", "Refused: " + "; ".join(s.failures) + "."]
    return "\n".join(lines).rstrip() + "\n"
