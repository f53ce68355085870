"""MkDocs hook: the committed report files that the pages show or link, served from where they lie.

The pages keep their generated blocks byte for byte, and the `paper` block links `reports/paper/*.md` and its
figures; the serving, reports-page and Prefect pages show screenshots from `reports/`. MkDocs serves only files
inside `docs_dir`, so this hook adds these files (and no others) to the site under their repository paths: a page
in docs/ links them as `reports/...`, exactly as the README does. A file that is not on disk is not added, so a
link to it fails `mkdocs build --strict` like any broken link.
"""
from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
REPORT_FILES = (
    "reports/paper/*.md",                     # the paper block's links (tables as pages)
    "reports/paper/*.png",                    # Figure 3 and Figure 4
    "reports/index.png",                      # the reports page in headless Chromium (pipeline.md)
    "reports/serving/page.png",               # the service's page (serving.md), `make service-check`
    "reports/prefect_ui/deployments.png",     # the deployments in the Prefect UI (orchestration.md), `make ui-check`
    "reports/prefect_ui/automations.png",     # the retrain automation in the Prefect UI (orchestration.md), `make ui-check`
    "reports/prefect_ui/pipeline_run.png",    # a pipeline flow run in the Prefect UI (orchestration.md), `make ui-check`
)


def on_files(files, config):
    for pattern in REPORT_FILES:
        for path in sorted(ROOT.glob(pattern)):
            uri = path.relative_to(ROOT).as_posix()
            if files.get_file_from_path(uri) is None:
                files.append(File(uri, str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files
