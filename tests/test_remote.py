"""An S3 remote for data and models, against moto's standalone S3 server on 127.0.0.1 (as DVC's own S3 tests
do): `dvc push`, a fresh clone, `dvc pull`, `dvc repro` a no-op, and the registry's `dvc artifacts get`
fetching the deploy artifact from that remote."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import stages_run

from a3lign_dfer.config.deploy import DEPLOY_DIR

BUCKET, PREFIX = "a3lign-dfer", "store"
DVC = [sys.executable, "-m", "dvc"]
GTO = [str(Path(sys.executable).parent / "gto")]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """(endpoint URL, environment for subprocesses, boto3 client): an empty bucket on a moto server."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}
        # Only the test credentials: no profile, session token, endpoint or config file from this machine
        # (botocore refuses /dev/null as a config file, so an empty one).
        empty = tmp_path_factory.mktemp("aws") / "config"
        empty.write_text("")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(creds, AWS_CONFIG_FILE=str(empty), AWS_SHARED_CREDENTIALS_FILE=str(empty),
                   NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        client.create_bucket(Bucket=BUCKET)
        yield endpoint, env, client
    finally:
        server.stop()


def _run(cmd, cwd, env, ok=True):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if ok:
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _files(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _keys(client) -> set[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{PREFIX}/")
    return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


def _key(md5: str) -> str:
    return f"{PREFIX}/files/md5/{md5[:2]}/{md5[2:]}"


def test_s3_remote_push_clone_pull_repro_noop_and_registry_fetch(pipeline, s3, tmp_path):
    endpoint, env, client = s3
    repo, _, _ = pipeline

    # The project as pushed: a clone of the shared repo at its first run's commit (other tests commit on
    # top of it and tag it), with a copy of its DVC cache; the shared repo itself is only read.
    commit = _run(["git", "rev-list", "-n1", "--grep=^pipeline flow run ", "HEAD"], repo, env).stdout.strip()
    assert commit
    upstream = tmp_path / "upstream"
    _run(["git", "clone", "-q", "--no-tags", str(repo), str(upstream)], tmp_path, env)
    _run(["git", "reset", "-q", "--hard", commit], upstream, env)
    for key, value in {"user.name": "test", "user.email": "test@example.com"}.items():
        _run(["git", "config", key, value], upstream, env)
    shutil.copytree(repo / ".dvc/cache", upstream / ".dvc/cache")

    _run([*DVC, "remote", "add", "-d", "s3store", f"s3://{BUCKET}/{PREFIX}"], upstream, env)
    _run([*DVC, "remote", "modify", "s3store", "endpointurl", endpoint], upstream, env)
    _run(["git", "commit", "-qam", "S3 remote"], upstream, env)
    assert not _keys(client)
    _run([*DVC, "push"], upstream, env)

    # models/deploy as committed (its directory listing and files, from the DVC cache), and every one of its
    # files in the bucket under DVC's content-addressed layout.
    lock = yaml.safe_load((upstream / "dvc.lock").read_text())
    deploy_md5 = next(out["md5"] for out in lock["stages"]["export"]["outs"] if out["path"] == str(DEPLOY_DIR))
    cache = upstream / ".dvc/cache/files/md5"
    listing = json.loads((cache / deploy_md5[:2] / deploy_md5[2:]).read_text())
    original = {Path(e["relpath"]): (cache / e["md5"][:2] / e["md5"][2:]).read_bytes() for e in listing}
    assert len(original) > 5
    keys = _keys(client)
    assert {_key(deploy_md5)} | {_key(e["md5"]) for e in listing} <= keys

    # The model registry: a version of that commit, promoted to prod (annotated GTO tags).
    _run([*GTO, "register", "a3lign-dfer", "--version", "v0.1.0"], upstream, env)
    _run([*GTO, "assign", "a3lign-dfer", "--version", "v0.1.0", "--stage", "prod"], upstream, env)

    # A fresh clone has no DVC cache; `dvc pull` brings what the pipeline needs, and nothing re-runs.
    fresh = tmp_path / "fresh"
    _run(["git", "clone", "-q", str(upstream), str(fresh)], tmp_path, env)
    assert not (fresh / DEPLOY_DIR).exists() and not (fresh / ".dvc/cache").exists()
    _run([*DVC, "pull"], fresh, env)
    assert _files(fresh / DEPLOY_DIR) == original
    assert stages_run(_run([*DVC, "repro"], fresh, env).stdout) == []
    assert "Data and pipelines are up to date." in _run([*DVC, "status"], fresh, env).stdout

    # `dvc artifacts get` by stage from a clone with no DVC cache: the files can only come from S3.
    consumer = tmp_path / "consumer"
    _run(["git", "clone", "-q", str(upstream), str(consumer)], tmp_path, env)
    assert not (consumer / ".dvc/cache").exists()
    get = [*DVC, "artifacts", "get", str(consumer), "a3lign-dfer", "--stage", "prod", "-o"]
    _run([*get, str(tmp_path / "fetched")], tmp_path, env)
    assert _files(tmp_path / "fetched") == original
    # Control: with the bucket emptied (and whatever that fetch cached removed), the same fetch fails.
    keys = sorted(_keys(client))
    for start in range(0, len(keys), 1000):
        client.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]]})
    assert not _keys(client)
    shutil.rmtree(consumer / ".dvc/cache", ignore_errors=True)
    failed = _run([*get, str(tmp_path / "refetched")], tmp_path, env, ok=False)
    assert failed.returncode != 0, failed.stdout + failed.stderr
    assert not (tmp_path / "refetched").exists() or not _files(tmp_path / "refetched")
