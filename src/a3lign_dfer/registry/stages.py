"""The registry's stages, apart from the release code: `serve --stage` offers them without importing GTO,
DVC or the orchestration helpers."""

STAGES = ("staging", "prod")
