"""`serve`: the HTTP service on a deployment artifact (docs/serving.md)."""
from __future__ import annotations

import sys
from pathlib import Path

from a3lign_dfer.commands import run_module
from a3lign_dfer.config.deploy import BACKENDS, DEPLOY_DIR, PRECISIONS
from a3lign_dfer.registry.stages import STAGES

HELP = ("HTTP service on a deployment artifact: POST /predict, /timeline, /feedback, /admin/reload, GET /health, "
        "/metadata, /metrics, a browser page at / (README \"Serving\"); limits, prediction log and follow in params "
        "serve")


def add_arguments(p) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--artifact", help=f"a deployment folder (default {DEPLOY_DIR}); refused unless every file "
                                          "matches its manifest.json sha256")
    where.add_argument("--stage", choices=STAGES, help="serve the registry's version in this stage (GTO tags of "
                                                       "serve.registry_repo, fetched with dvc artifacts get)")
    where.add_argument("--follow", choices=STAGES, metavar="STAGE",
                       help="serve the version in this stage and swap to whichever version holds it later (polled "
                            "every serve.follow.poll_seconds; default serve.follow.stage when neither --artifact nor "
                            "--stage is given)")
    p.add_argument("--host", help="default serve.host (127.0.0.1); any other address needs an API key")
    p.add_argument("--port", type=int, help="default serve.port")
    p.add_argument("--backend", choices=BACKENDS, help="default serve.backend")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="int8: the INT8 image encoder (onnxruntime only); the service refuses to start unless the "
                        "artifact's manifest releases it")
    p.add_argument("--api-key-file", metavar="PATH", help="a file holding the API key that /predict and /metadata "
                                                          "then need (default: the env var A3LIGN_API_KEY)")
    p.add_argument("--device", default=None)


def run(args) -> int:
    from a3lign_dfer.config.schema import load
    from a3lign_dfer.config.serving import ServeParams
    from a3lign_dfer.serving.app import serve
    from a3lign_dfer.serving.auth import required_key

    params = load(ServeParams, args.params)
    cfg = params.serve
    host = args.host or cfg.host
    # Before loading anything: an exposed service without a key never starts.
    api_key = required_key(host, Path(args.api_key_file) if args.api_key_file else None)
    follow = args.follow or (cfg.follow.stage if args.artifact is None and args.stage is None else None)
    return serve(params, args.artifact, args.stage, host, args.port or cfg.port, args.backend or cfg.backend,
                 args.device, api_key, args.precision, follow)


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
