"""Scale-out of face_crop and features: shards on a real Dask cluster, resumable, the same bytes."""
from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import PARAMS, ROOT, TINY_CLIP

from a3lign_dfer.data import manifest, shards
from a3lign_dfer.data.cluster import SchedulerUnreachable, dask_client
from a3lign_dfer.data.face_crop import crop_dataset
from a3lign_dfer.data.feature_cache import load_feature_set
from a3lign_dfer.data.features import ClipEncoder, build_feature_cache
from a3lign_dfer.data.synthetic import render_clip
from a3lign_dfer.data.video_io import write_video

CLASSES = PARAMS.data.classes
SYN = replace(PARAMS.synthetic, min_frames=12, max_frames=16)
CROP = replace(PARAMS.face_crop, size=32)
FEATURES = replace(PARAMS.features, augmented_views=1)
SPLIT_OF = ["train"] * 6 + ["val"] * 3 + ["test"] * 3


def local(workers: int, shard_size: int = 2):
    return replace(PARAMS.scale, scheduler=None, workers=workers, shard_size=shard_size)


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """12 synthetic face videos (train, val, test) and their manifest."""
    root = tmp_path_factory.mktemp("raw")
    rows = []
    for i, split in enumerate(SPLIT_OF):
        label = CLASSES[i % len(CLASSES)]
        write_video(render_clip(SYN, label, 0, i, i).frames, root / f"c{i:02d}.mp4", SYN.fps)
        rows.append((f"c{i:02d}", f"c{i:02d}.mp4", CLASSES.index(label), label, split))
    df = pd.DataFrame(rows, columns=["clip_id", "path", "label_idx", "label_name", "split"])
    return root, df.assign(dataset="test", fold=0, num_frames=0, identity=range(len(df)))


@pytest.fixture(scope="module")
def one_worker(raw, tiny_clip_dir, tmp_path_factory):
    """Crops and features computed on a 1-worker LocalCluster: the reference bytes."""
    root, df = raw
    out = tmp_path_factory.mktemp("one")
    crops, rejects, crop_metrics = crop_dataset(df, root, out / "crops", CROP, local(1), CLASSES)
    manifest.write(crops, out / "crops" / "manifest.parquet")
    feature_metrics = build_feature_cache(crops, out / "crops", ClipEncoder.of(str(tiny_clip_dir), "cpu"), FEATURES,
                                          seed=0, out_dir=out / "features", scale=local(1))
    return out, crops, crop_metrics, feature_metrics


def test_two_workers_write_the_same_bytes_as_one(raw, one_worker, tiny_clip_dir, tmp_path):
    root, df = raw
    ref, ref_crops, crop_metrics, feature_metrics = one_worker
    assert crop_metrics["workers"] == 1 and crop_metrics["shards"] == 6 and crop_metrics["accepted"] == 12
    crops, _, metrics = crop_dataset(df, root, tmp_path / "crops", CROP, local(2), CLASSES)
    assert metrics["workers"] == 2 and metrics["shards_reused"] == 0
    pd.testing.assert_frame_equal(crops, ref_crops)
    manifest.write(crops, tmp_path / "crops" / "manifest.parquet")
    assert digests(tmp_path / "crops") == digests(ref / "crops")

    metrics = build_feature_cache(crops, tmp_path / "crops", ClipEncoder.of(str(tiny_clip_dir), "cpu"), FEATURES,
                                  seed=0, out_dir=tmp_path / "features", scale=local(2))
    assert metrics["workers"] == 2 and metrics["shards"] == feature_metrics["shards"] == 7
    assert metrics["images_encoded"] == feature_metrics["images_encoded"] > 0
    files = digests(tmp_path / "features")
    assert files == digests(ref / "features")
    assert sorted(f for f in files if not f.startswith(shards.KEYS)) == ["meta.json", "test.parquet", "test/00000.safetensors", "test/00001.safetensors",
                             "train.parquet", "train/00000.safetensors", "train/00001.safetensors",
                             "train/00002.safetensors", "val.parquet", "val/00000.safetensors",
                             "val/00001.safetensors"]


def test_the_sharded_cache_reads_back_each_clip_with_its_frames_and_views(one_worker):
    ref, crops, _, _ = one_worker
    train = load_feature_set(ref / "features", "train", CLASSES)
    assert len(train) == 6 and train.frames.views == 2 and train.embed_dim == TINY_CLIP.projection_dim
    assert list(train.clips["clip_id"]) == [f"c{i:02d}" for i in range(6)]
    for i, n in enumerate(crops[crops["split"] == "train"]["num_frames"]):
        assert train.frames.clip(i).shape == (n, 2, TINY_CLIP.projection_dim)
    assert not (train.frames.clip(0)[:, 0] == train.frames.clip(0)[:, 1]).all()   # the augmented view differs
    batch = train.gather([0, 5], 8, train=False)
    assert batch.shape == (2, 8, TINY_CLIP.projection_dim) and batch.dtype.is_floating_point


def test_an_incomplete_cache_is_never_read(one_worker, tmp_path):
    ref, _, _, _ = one_worker
    with pytest.raises(FileNotFoundError, match="run the features stage"):
        load_feature_set(tmp_path, "train", CLASSES)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_is_one_clear_error_within_seconds(tmp_path, monkeypatch):
    address = f"tcp://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    with pytest.raises(SchedulerUnreachable, match=address.replace(".", r"\.")):
        with dask_client(replace(PARAMS.scale, scheduler=address, connect_timeout=2)):
            pass
    assert time.monotonic() - start < 10
    # The CLI's one line (and $A3LIGN_DASK_SCHEDULER) is one case of tests/test_user_errors.py.


def _features_cmd(crops: Path, out: Path, params: Path) -> list[str]:
    return [sys.executable, "-m", "a3lign_dfer.commands.features", "--params", str(params), "--crops", str(crops),
            "--out", str(out), "--metrics", str(out.parent / f"{out.name}.json"), "--device", "cpu"]


def test_a_killed_features_stage_reruns_only_its_missing_shards_to_the_same_bytes(one_worker, tiny_clip_dir,
                                                                                   tmp_path):
    ref, _, _, _ = one_worker
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["clip"]["model"] = str(tiny_clip_dir)
    raw["features"] = {**raw["features"], "augmented_views": FEATURES.augmented_views}
    raw["scale"].update(shard_size=2, workers=1)
    raw["data"]["seed"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    out = tmp_path / "features"
    stage = subprocess.Popen(_features_cmd(ref / "crops", out, tmp_path / "params.yaml"), start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    records = out / ".keys"                                  # a shard is finished once its record is written
    while not list(records.glob("*/*.json")) and time.monotonic() < deadline and stage.poll() is None:
        time.sleep(0.02)
    os.killpg(stage.pid, signal.SIGKILL)                     # the stage and its cluster, mid-way
    stage.wait()
    finished = sorted(p.relative_to(records) for p in records.glob("*/*.json"))
    assert 1 <= len(finished) < 7 and not (out / "meta.json").exists(), finished
    with pytest.raises(FileNotFoundError, match="run the features stage"):
        load_feature_set(out, "train", CLASSES)             # an interrupted cache is never read

    done = subprocess.run(_features_cmd(ref / "crops", out, tmp_path / "params.yaml"), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = yaml.safe_load((tmp_path / "features.json").read_text())
    assert metrics["shards"] == 7 and metrics["shards_reused"] == len(finished)
    assert digests(out) == digests(ref / "features")


def test_a_worker_killed_mid_shard_has_its_shard_rerun_elsewhere_with_the_same_bytes(raw, one_worker, tmp_path):
    from distributed import Client, LocalCluster

    root, df = raw
    ref, _, _, _ = one_worker
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        scale = replace(PARAMS.scale, scheduler=cluster.scheduler_address, shard_size=2)
        before = set(client.run(os.getpid).values())
        outcome = {}

        def stage():
            try:
                outcome["result"] = crop_dataset(df, root, tmp_path / "crops", CROP, scale, CLASSES)
            except Exception as err:                       # noqa: BLE001 (the assertion below shows it)
                outcome["error"] = err

        thread = threading.Thread(target=stage)
        thread.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "result" not in outcome:
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                os.kill(pid, signal.SIGKILL)                   # the worker dies with its shard
                break
            time.sleep(0.01)
        thread.join(180)
        after = set(client.run(os.getpid).values())
    assert "error" not in outcome, outcome.get("error")
    assert busy and before - after, "no worker was killed"
    crops, rejects, metrics = outcome["result"]
    assert metrics["accepted"] == 12 and not rejects
    manifest.write(crops, tmp_path / "crops" / "manifest.parquet")
    assert digests(tmp_path / "crops") == digests(ref / "crops")


def test_a_shard_is_reused_only_while_its_key_and_its_bytes_match(tmp_path):
    out = tmp_path / "out"
    shard = out / "train" / "00000.safetensors"
    with shards.written_atomically(shard) as tmp:
        tmp.write_bytes(b"features")
    shards.record(out, shard, "key-1")
    assert shards.reusable(out, shard, "key-1")
    assert not shards.reusable(out, shard, "key-2")              # other inputs, params or code
    shard.write_bytes(b"replaced")                                # e.g. a dvc checkout of another version
    assert not shards.reusable(out, shard, "key-1")
    assert not list(out.rglob(f"*{shards.TMP_MARK}*"))           # no temporary left behind
    assert (out / shards.KEYS / "train" / "00000.safetensors.json").is_file()
