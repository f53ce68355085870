"""`feedback`: the prediction log's labelled requests as a dataset, and the annotation round trip.

    python -m a3lign_dfer feedback export                           # -> data/feedback (feedback.dataset)
    python -m a3lign_dfer feedback uncertain --n 50 --out tasks.json
    python -m a3lign_dfer feedback labeling-config --out labeling.xml
    python -m a3lign_dfer feedback import-labels export.json        # Label Studio's JSON export

The log is serve.prediction_log's (its url, else its path), or --log. docs/data.md "Feedback data".
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from a3lign_dfer.commands import run_module

HELP = ("the prediction log's labelled requests as a dataset (export), the most uncertain unlabelled ones as "
        "Label Studio tasks (uncertain, labeling-config), and Label Studio's labels back (import-labels)")


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    export = sub.add_parser("export", help="labelled requests with kept crops -> the csv importer's layout")
    export.add_argument("--out", help="dataset folder (default: params feedback.dataset)")
    uncertain = sub.add_parser("uncertain", help="the N most uncertain unlabelled /predict requests as Label Studio "
                                                 "tasks (JSON import format)")
    uncertain.add_argument("--n", type=int, required=True, help="how many tasks")
    uncertain.add_argument("--out", type=Path, required=True, help="the tasks file (JSON)")
    uncertain.add_argument("--media", choices=("video", "image"), default="video",
                           help="what a task shows: the crops as a short video, or the first crop (default: video)")
    uncertain.add_argument("--media-dir", type=Path,
                           help="where the videos are written (default: <out's folder>/<out's name>_media)")
    uncertain.add_argument("--document-root", type=Path, default=Path("."),
                           help="the folder Label Studio serves files from (LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT); "
                                "task URLs are relative to it (default: .)")
    uncertain.add_argument("--url-prefix", default=None,
                           help="what precedes that relative path in a task URL (default: Label Studio's local files, "
                                "/data/local-files/?d=)")
    config = sub.add_parser("labeling-config", help="the Label Studio labeling interface (XML) for the tasks")
    config.add_argument("--media", choices=("video", "image"), default="video")
    config.add_argument("--out", type=Path, help="write it here (default: print it)")
    labels = sub.add_parser("import-labels", help="Label Studio's JSON (or JSON_MIN) export -> labels in the log "
                                                  "(source label-studio)")
    labels.add_argument("export", type=Path, help="the exported JSON file")
    for action in (export, uncertain, labels):
        action.add_argument("--log", help="the prediction log: a SQLite file or a SQLAlchemy URL (default: "
                                          "serve.prediction_log's url, else its path)")


def _open(args, params):
    from a3lign_dfer.serving.prediction_log import open_log

    cfg = params.serve.prediction_log
    folder = Path(cfg.path).parent
    source = args.log or cfg.url or cfg.path
    return open_log(source, folder if args.log is None or "://" in args.log else None, create=False)


def run(args) -> int:
    from a3lign_dfer.config.feedback import FeedbackParams
    from a3lign_dfer.config.schema import load

    params = load(FeedbackParams, args.params)
    if args.action == "labeling-config":
        from a3lign_dfer.serving.label_studio import labeling_config

        xml = labeling_config(params.data.classes, args.media)
        if args.out is None:
            print(xml, end="")
        else:
            args.out.write_text(xml)
            print(f"labeling config ({args.media}, {len(params.data.classes)} classes) -> {args.out}")
        return 0
    log = _open(args, params)
    try:
        return {"export": _export, "uncertain": _uncertain, "import-labels": _import_labels}[args.action](args, params,
                                                                                                       log)
    finally:
        log.close()


def _export(args, params, log) -> int:
    from a3lign_dfer.markdown_table import markdown_table
    from a3lign_dfer.serving.feedback_dataset import export_feedback

    out = Path(args.out or params.feedback.dataset)
    done = export_feedback(log, out, params.data.classes, params.feedback.test_fraction)
    classes = params.data.classes
    rows = [(split, *(done.per_split_and_class[split][c] for c in classes), done.per_split[split])
            for split in done.per_split]
    rows.append(("total", *(done.per_class[c] for c in classes), done.exported))
    print(markdown_table(["split", *classes, "clips"], rows))
    print(f"\n{done.exported} labelled request(s) -> {out / 'labels.csv'} ({done.encoded} video(s) written now, "
          f"the rest kept from earlier exports)")
    if done.skipped_without_crops:
        print(f"skipped, no crops kept (serve.prediction_log.keep_crops, or purged): "
              f"{len(done.skipped_without_crops)}: {', '.join(done.skipped_without_crops)}")
    if done.skipped_unknown_label:
        print(f"skipped, label not in data.classes: {len(done.skipped_unknown_label)}: "
              f"{', '.join(done.skipped_unknown_label)}")
    listed = {Path(s).resolve() for s in params.data.extra_sources}
    if out.resolve() not in listed:
        print(f"note: data.extra_sources does not list {out}, so `prepare` does not train on it")
    return 0


def _uncertain(args, params, log) -> int:
    from a3lign_dfer.markdown_table import markdown_table
    from a3lign_dfer.serving.label_studio import LOCAL_FILES, uncertain_tasks

    if args.n < 1:
        from a3lign_dfer.errors import ConfigError

        raise ConfigError(f"--n is a number of tasks (>= 1), got {args.n}")
    media_dir = args.media_dir or args.out.with_name(f"{args.out.stem}_media")
    done = uncertain_tasks(log, args.n, args.media, media_dir, args.document_root, args.url_prefix or LOCAL_FILES)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(done.tasks, indent=2) + "\n")
    print(markdown_table(["predicted", "tasks"], sorted(done.per_class.items())))
    print(f"\n{len(done.tasks)} task(s) -> {args.out} (of {done.candidates} unlabelled /predict request(s); "
          f"{done.without_crops} without kept crops cannot be shown)")
    if args.media == "video":
        print(f"media: {media_dir}; Label Studio must serve {args.document_root.resolve()} "
              f"(LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true, LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)")
    return 0


def _import_labels(args, params, log) -> int:
    from a3lign_dfer.serving.label_studio import import_labels, load_export

    done = import_labels(log, load_export(args.export))
    print(f"{len(done.stored)} label(s) stored (source label-studio) from {args.export}")
    if done.unknown_ids:
        print(f"unknown request id(s), not stored: {len(done.unknown_ids)}: {', '.join(done.unknown_ids)}")
    if done.unknown_labels:
        print(f"label(s) outside the answering model's classes, not stored: {len(done.unknown_labels)}: "
              + ", ".join(f"{a.request_id} {a.label!r}" for a in done.unknown_labels))
    if done.unannotated:
        print(f"task(s) without a submitted choice: {len(done.unannotated)}")
    if done.not_ours:
        print(f"task(s) without a request_id (not made by `feedback uncertain`): {len(done.not_ours)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
