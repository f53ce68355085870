"""The Prefect UI in a real headless browser: a real server, the deployments served, the page rendered."""
import pytest


def test_prefect_ui_shows_the_deployments(tmp_path):
    import matplotlib.image

    from a3lign_research.ui_check import check_ui, find_chromium

    if find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): the browser check needs it")
    result = check_ui(tmp_path)
    assert result["missing"] == [] and {"weekly", "on-demand", "daily"} <= set(result["found"])
    image = matplotlib.image.imread(result["screenshot"])
    assert image.shape[:2] == (900, 1440) and image[..., :3].std() > 0.02    # a rendered page, not a blank one
