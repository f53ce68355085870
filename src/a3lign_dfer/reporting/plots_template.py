"""An HTML template for `dvc plots show` that draws the Vega-Lite plots with no network.

DVC's default page loads Vega, Vega-Lite and Vega-Embed from a public CDN, so on an
offline machine every Vega plot (the per-epoch curves, the confusion template) is
blank. This template carries the three libraries inline instead, bundled by the
`vl-convert-python` package (PyPI; its `javascript_bundle` returns Vega, Vega-Lite and
Vega-Embed with their dependencies as one script, no imports). The template leaves out
DVC's `{scripts}` placeholder, which is where the CDN tags would go, and keeps
`{plot_divs}` (the plots) and `{refresh_tag}` (`dvc plots show --refresh`).

The generated file is committed as `.dvc/plots_offline.html` and named in `.dvc/config`
(`dvc config plots.html_template plots_offline.html`, relative to `.dvc/`), so any
clone renders offline without running anything first. Regenerate it after upgrading
vl-convert-python:

    python -m a3lign_dfer plots-template --out .dvc/plots_offline.html
"""
from __future__ import annotations

from pathlib import Path

# DVC's plot templates declare the Vega-Lite v5 schema; the newest v5 that vl-convert bundles.
VEGA_LITE_VERSION = "5.21"


def offline_template(vl_version: str = VEGA_LITE_VERSION) -> str:
    import vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=vl_version)   # sets window.vega, vegaLite, vegaEmbed
    if "</script" in bundle.lower():
        raise ValueError("the bundle contains '</script': it cannot be inlined in a <script> element")
    for placeholder in ("{plot_divs}", "{scripts}", "{refresh_tag}"):
        if placeholder in bundle:
            raise ValueError(f"the bundle contains DVC's placeholder {placeholder}")
    versions = (f"Vega {vl_convert.get_vega_version()}, Vega-Lite {vl_version}, "
                f"Vega-Embed {vl_convert.get_vega_embed_version()}")
    # The bundle's top-level names stay inside a function, so they cannot clash with DVC's `var spec`.
    return f"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{{refresh_tag}}
<title>DVC Plot</title>
<!-- Offline template for `dvc plots show` (A3lign-DFER): {versions}, inlined from the
     vl-convert-python package by `python -m a3lign_dfer plots-template`; no network needed. -->
<script>
(function () {{
{bundle}
}})();
</script>
<style>
  body {{ font-family: sans-serif; }}
  table {{ border-spacing: 15px; }}
</style>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


def write_template(path: Path, vl_version: str = VEGA_LITE_VERSION) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(offline_template(vl_version), encoding="utf-8")
    return path
