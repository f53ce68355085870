"""The annotation round trip with Label Studio. Fast: the labeling interface, the uncertain requests of a real log
as tasks in Label Studio's import format (media written and served by relative URL), and exports read back as
labels, from fixtures written after Label Studio's documented formats (JSON and JSON_MIN: labelstud.io/guide/
task_format, /guide/export). End to end, where a Label Studio is installed: a real server on loopback, driven
with label-studio-sdk (project from the generated config, tasks imported, annotations submitted, JSON
exported), the export read back by `feedback import-labels`.

Label Studio cannot install beside requirements.lock (it pins pyarrow<25, numpy<2.3 through
opencv-python-headless 4.12, python-json-logger 2.0.4, pytz 2022.7.1, redis 5.x: the lock has pyarrow 26.0.1,
numpy 2.4.6, opencv-python-headless 4.14, python-json-logger 4.2.0, pytz 2026.6, redis 8.1.0), so the
end-to-end test runs it from a virtual environment of its own, named by $A3LIGN_LABEL_STUDIO_VENV (docs/data.md).
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from conftest import PARAMS, ROOT
from test_feedback import face_crops, log_row, write_log

from a3lign_dfer.commands import feedback, run_module
from a3lign_dfer.data.video_io import probe_video
from a3lign_dfer.errors import ConfigError
from a3lign_dfer.serving.label_studio import (
    CHOICES,
    LOCAL_FILES,
    import_labels,
    labeling_config,
    read_export,
    uncertain_tasks,
)
from a3lign_dfer.serving.prediction_log import open_log
from a3lign_dfer.serving.process import stop_process

CLASSES = PARAMS.data.classes
VENV_ENV = "A3LIGN_LABEL_STUDIO_VENV"


def test_labeling_config_is_the_media_and_one_choice_of_the_classes():
    for media, tag in (("video", "Video"), ("image", "Image")):
        view = ET.fromstring(labeling_config(CLASSES, media))
        shown = view.find(tag)
        assert shown.get("name") == media and shown.get("value") == f"${media}"
        choices = view.find("Choices")
        assert (choices.get("name"), choices.get("toName"), choices.get("required")) == (CHOICES, media, "true")
        assert [c.get("value") for c in choices.findall("Choice")] == list(CLASSES)
    assert ET.fromstring(labeling_config(['a "quoted" & <odd> class'])).find("Choices/Choice").get("value") == \
        'a "quoted" & <odd> class'
    with pytest.raises(ConfigError, match="media"):
        labeling_config(CLASSES, "audio")


@pytest.fixture
def served(tmp_path):
    """A served folder holding a log: u1-u4 unlabelled with crops (margins 0.30, 0.02, 0.10, 0.05), u5 without,
    l1 labelled."""
    crops = face_crops()
    log = tmp_path / "logs" / "predictions.sqlite"
    write_log(log, [log_row("u1", "happy", 0.30, crops), log_row("u2", "happy", 0.02, crops),
                    log_row("u3", "sad", 0.10, crops), log_row("u4", "fear", 0.05, crops),
                    log_row("l1", "sad", 0.01, crops)])
    write_log(log, [log_row("u5", "angry", 0.001)], keep_crops=False)
    with contextlib.closing(open_log(log)) as opened:
        opened.add_feedback("l1", "sad", "api")
    return tmp_path, log


def test_uncertain_requests_become_tasks_in_label_studios_import_format(served):
    root, path = served
    with contextlib.closing(open_log(path, create=False)) as log:
        done = uncertain_tasks(log, 3, "video", root / "media", root)
    assert (done.candidates, done.without_crops, done.per_class) == (5, 1, {"happy": 1, "fear": 1, "sad": 1})
    assert [t["data"]["request_id"] for t in done.tasks] == ["u2", "u4", "u3"]   # one per class, least sure first
    first = done.tasks[0]
    assert first["data"]["video"] == f"{LOCAL_FILES}media/u2.mp4" and first["data"]["predicted"] == "happy"
    assert probe_video(root / "media/u2.mp4").frames == 16
    assert first["predictions"] == [{"model_version": "v1", "score": pytest.approx(0.50),
                                     "result": [{"from_name": CHOICES, "to_name": "video", "type": "choices",
                                                 "value": {"choices": ["happy"]}}]}]
    json.dumps(done.tasks)                                     # plain JSON
    with contextlib.closing(open_log(path, create=False)) as log:
        images = uncertain_tasks(log, 10, "image", root / "unused", root, "http://files.local/")
    assert [t["data"]["request_id"] for t in images.tasks] == ["u2", "u4", "u3", "u1"]
    assert images.tasks[0]["data"]["image"].startswith("http://files.local/logs/crops/")
    assert images.tasks[0]["data"]["image"].endswith("/u2/frame_00.jpg") and not (root / "unused").exists()
    with contextlib.closing(open_log(path, create=False)) as log, pytest.raises(ConfigError, match="document root"):
        uncertain_tasks(log, 1, "video", root / "media", root / "elsewhere")


def annotation(label: str | None, updated: str, cancelled: bool = False, ident: int = 1) -> dict:
    """One annotation as the export's JSON holds it (labelstud.io/guide/task_format)."""
    return {"id": ident, "completed_by": 1, "was_cancelled": cancelled, "ground_truth": False,
            "created_at": updated, "updated_at": updated, "lead_time": 4.2, "task": 1, "result_count": 0,
            "result": [] if label is None else [{"id": "Dx_aB91ISN", "from_name": CHOICES, "to_name": "video",
                                                 "type": "choices", "origin": "manual",
                                                 "value": {"choices": [label]}}]}


def exported_task(task_id: int, request_id: str | None, annotations: list[dict]) -> dict:
    data = {"video": f"{LOCAL_FILES}media/{request_id}.mp4", "predicted": "happy"}
    if request_id is not None:
        data["request_id"] = request_id
    return {"id": task_id, "created_at": "2026-01-01T00:00:00.0Z", "updated_at": "2026-01-01T00:00:00.0Z",
            "project": 1, "data": data, "annotations": annotations, "drafts": [],
            "predictions": [{"model_version": "v1", "score": 0.5, "result": [
                {"from_name": CHOICES, "to_name": "video", "type": "choices", "value": {"choices": ["happy"]}}]}],
            "meta": {}, "inner_id": task_id, "total_annotations": len(annotations), "cancelled_annotations": 0}


def test_a_json_export_comes_back_as_labels(served):
    _, path = served
    export = [
        exported_task(1, "u1", [annotation("sad", "2026-01-01T10:00:00Z", ident=1),
                                annotation("angry", "2026-01-01T11:00:00Z", ident=2)]),     # the later one
        exported_task(2, "u2", [annotation("fear", "2026-01-01T12:00:00Z", cancelled=True),
                                annotation("happy", "2026-01-01T09:00:00Z", ident=3)]),      # skip ignored
        exported_task(3, "u3", []),                                                        # not annotated yet
        exported_task(4, "nobody", [annotation("sad", "2026-01-01T10:00:00Z")]),            # unknown id
        exported_task(5, "u4", [annotation("bored", "2026-01-01T10:00:00Z")]),              # not a class
        exported_task(6, None, [annotation("sad", "2026-01-01T10:00:00Z")]),                # not our task
    ]
    with contextlib.closing(open_log(path, create=False)) as log:
        done = import_labels(log, export)
        labelled = {r.request_id: (r.label, r.source) for r in log.labelled()}
    assert [(a.request_id, a.label) for a in done.stored] == [("u1", "angry"), ("u2", "happy")]
    assert done.unknown_ids == ["nobody"] and [(a.request_id, a.label) for a in done.unknown_labels] == \
        [("u4", "bored")]
    assert (done.unannotated, done.not_ours) == (["u3"], ["6"])
    assert labelled == {"u1": ("angry", "label-studio"), "u2": ("happy", "label-studio"), "l1": ("sad", "api")}


def test_a_json_min_export_reads_alike():
    export = [{"id": 7, "video": "/data/local-files/?d=media/u1.mp4", "request_id": "u1", "predicted": "happy",
               CHOICES: "sad", "annotator": 1, "annotation_id": 3, "created_at": "2026-01-01T10:00:00Z",
               "updated_at": "2026-01-01T10:00:00Z", "lead_time": 2.0},
              {"id": 8, "request_id": "u2", CHOICES: {"choices": ["fear"]}},
              {"id": 9, "request_id": "u3"}]
    labels, unannotated, not_ours = read_export(export)
    assert [(a.request_id, a.label, a.task_id) for a in labels] == [("u1", "sad", 7), ("u2", "fear", 8)]
    assert (unannotated, not_ours) == (["u3"], [])
    with pytest.raises(ConfigError, match="JSON list"):
        read_export({"tasks": []})


def _params_file(tmp_path: Path) -> Path:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["feedback"] = {"dataset": "data/feedback", "test_fraction": 0.3}
    raw["serve"]["prediction_log"]["path"] = "logs/predictions.sqlite"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_the_commands_write_tasks_and_read_labels(served, capsys, monkeypatch):
    root, _ = served
    monkeypatch.chdir(root)
    params = ["--params", str(_params_file(root))]
    assert run_module(feedback, [*params, "uncertain", "--n", "2", "--out", "tasks.json"]) == 0
    out = capsys.readouterr().out
    tasks = json.loads(Path("tasks.json").read_text())
    assert [t["data"]["request_id"] for t in tasks] == ["u2", "u4"] and Path("tasks_media/u2.mp4").is_file()
    assert "2 task(s) -> tasks.json (of 5 unlabelled /predict request(s); 1 without kept crops" in out
    assert run_module(feedback, [*params, "labeling-config"]) == 0
    assert ET.fromstring(capsys.readouterr().out).find("Video").get("value") == "$video"
    Path("export.json").write_text(json.dumps([exported_task(1, "u2", [annotation("sad", "2026-01-01T10:00:00Z")]),
                                               exported_task(2, "gone", [annotation("sad", "2026-01-01T10:00:00Z")])]))
    assert run_module(feedback, [*params, "import-labels", "export.json"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["1 label(s) stored (source label-studio) from export.json",
                   "unknown request id(s), not stored: 1: gone"]


# --- end to end: a real Label Studio server -------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_label_studio(venv: Path, data_dir: Path, document_root: Path, token: str):
    """`label-studio start` on a free loopback port, its data in data_dir, serving document_root's files; yields
    the base URL once it answers /health. The user and its API token come from the environment."""
    port = _free_port()
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir), "LABEL_STUDIO_USERNAME": "annotator@example.com",
           "LABEL_STUDIO_PASSWORD": "round-trip-test", "LABEL_STUDIO_USER_TOKEN": token,
           "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",          # the token above, as `Authorization: Token`
           "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
           "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root), "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
           "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "", "COLLECT_ANALYTICS": "false"}
    log = (data_dir / "server.log").open("w")
    server = subprocess.Popen([str(venv / "bin" / "label-studio"), "start", "--no-browser", "--host", "127.0.0.1",
                               "--port", str(port), "--internal-host", "127.0.0.1"],
                              cwd=data_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600                     # migrations on first start: minutes on a busy machine
        while True:
            assert server.poll() is None, (data_dir / "server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (data_dir / "server.log").read_text()[-3000:]
            time.sleep(2)
        yield url
    finally:
        stop_process(server, grace=30)
        log.close()


# Run by the Label Studio venv's Python (label-studio-sdk lives there): the annotator's side of the round trip.
ANNOTATOR = r"""
import json, sys, urllib.request
from label_studio_sdk import LabelStudio

url, token, config, tasks_file, media, answers, out = sys.argv[1:]
client = LabelStudio(base_url=url, api_key=token)
project = client.projects.create(title="a3lign-dfer uncertain requests", label_config=open(config).read())
# Local files are served only under a project's local storage (never synced: the tasks name the files).
client.import_storage.local.create(project=project.id, path=media, title="uncertain requests' media")
client.projects.import_tasks(id=project.id, request=json.load(open(tasks_file)))
answers = json.loads(answers)
served = {}
for task in client.tasks.list(project=project.id, fields="all"):
    media = task.data["video"]
    request = urllib.request.Request(url + media, headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(request) as answer:
        served[task.data["request_id"]] = len(answer.read())
    label = answers.get(task.data["request_id"])
    if label is not None:
        client.annotations.create(id=task.id, result=[{"from_name": "expression", "to_name": "video",
                                                       "type": "choices", "value": {"choices": [label]}}])
export = client.projects.exports.download_sync(project.id, export_type="JSON", download_all_tasks=True)
with open(out, "wb") as f:
    for chunk in export:
        f.write(chunk)
print(json.dumps({"project": project.id, "served": served,
                  "predictions": {t.data["request_id"]: len(t.predictions or []) for t in
                                  client.tasks.list(project=project.id, fields="all")}}))
"""


def test_round_trip_through_a_real_label_studio(served, capsys, monkeypatch):
    venv = Path(os.environ.get(VENV_ENV, "")) if os.environ.get(VENV_ENV) else None
    if venv is None or not (venv / "bin" / "label-studio").exists():
        pytest.skip(f"no Label Studio: it cannot install beside requirements.lock (pins pyarrow, numpy, "
                    f"opencv-python-headless, python-json-logger, pytz, redis below the lock's), so it runs from a "
                    f"venv of its own: set ${VENV_ENV} to one with label-studio and label-studio-sdk (docs/data.md)")
    root, log_path = served
    monkeypatch.chdir(root)
    params = ["--params", str(_params_file(root))]
    assert run_module(feedback, [*params, "uncertain", "--n", "3", "--out", "tasks.json", "--document-root", "."]) == 0
    assert run_module(feedback, [*params, "labeling-config", "--out", "labeling.xml"]) == 0
    token = "a3lign" + "0" * 34
    data_dir = root / "label-studio"
    data_dir.mkdir()
    answers = {"u2": "sad", "u4": "fear"}                       # u3 left unannotated
    with running_label_studio(venv, data_dir, root, token) as url:
        done = subprocess.run([str(venv / "bin" / "python"), "-c", ANNOTATOR, url, token, "labeling.xml",
                               "tasks.json", str(root / "tasks_media"), json.dumps(answers), "export.json"],
                              capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    sizes = {r: (root / "tasks_media" / f"{r}.mp4").stat().st_size for r in ("u2", "u4", "u3")}
    assert seen["served"] == sizes                             # Label Studio served each task's video whole
    assert seen["predictions"] == {"u2": 1, "u4": 1, "u3": 1}  # the model's answer came in as a pre-annotation
    capsys.readouterr()
    assert run_module(feedback, [*params, "import-labels", "export.json"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "2 label(s) stored (source label-studio) from export.json"
    with contextlib.closing(open_log(log_path, create=False)) as log:
        labelled = {r.request_id: (r.label, r.source) for r in log.labelled()}
    assert labelled == {"u2": ("sad", "label-studio"), "u4": ("fear", "label-studio"), "l1": ("sad", "api")}
