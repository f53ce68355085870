"""The HTTP service and `predict` import only what they run, none of the pipeline's tools: a serving install
(the base and the `serve` extra, README "Serving") has none of them, and each would be start-up time and memory."""
import json
import subprocess
import sys

import pytest

PIPELINE_ONLY = ("dvc", "dvclive", "gto", "prefect", "great_expectations", "evidently", "tritonclient", "onnx",
                 "matplotlib", "a3lign_dfer.export", "a3lign_dfer.orchestration", "a3lign_dfer.training",
                 "a3lign_dfer.monitoring", "a3lign_dfer.registry", "a3lign_dfer.reporting", "a3lign_dfer.evaluation")


# The CLI lists every subcommand, so it names the registry stages: that data-only module (and its empty
# package) is all it may load of the pipeline (the training stages are configuration, config/stage_table.py).
CLI_TABLES = {"a3lign_dfer.registry", "a3lign_dfer.registry.stages"}


@pytest.mark.parametrize("module, allowed", [("a3lign_dfer.serving.app", set()),
                                             ("a3lign_dfer.inference.predict_videos", set()),
                                             ("a3lign_dfer.cli", CLI_TABLES)])
def test_importing_it_loads_nothing_of_the_pipeline(module, allowed):
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert module in loaded
    assert [m for m in loaded if any(m == p or m.startswith(f"{p}.") for p in PIPELINE_ONLY)
            and m not in allowed] == []


def test_the_cli_imports_only_the_command_it_runs():
    """`a3lign_dfer predict` on a serving install: building the other commands' options would import torch."""
    code = ("import json, sys\nfrom a3lign_dfer.cli import main\ntry:\n    main(['predict', '--help'])\n"
            "except SystemExit:\n    pass\nprint(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "--deploy" in done.stdout, done.stderr
    loaded = json.loads(done.stdout.splitlines()[-1])
    commands = {m for m in loaded if m.startswith("a3lign_dfer.commands.")}
    assert commands == {"a3lign_dfer.commands.predict"}
    assert [m for m in loaded if m.split(".")[0] in ("torch", "transformers") or
            any(m == p or m.startswith(f"{p}.") for p in PIPELINE_ONLY)] == []
