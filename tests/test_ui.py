"""The Prefect UI in a real headless browser: a real server, the deployments served, the page rendered."""
import pytest


def test_prefect_ui_shows_the_deployments_and_a_pipeline_run(built_pipeline, tmp_path):
    import matplotlib.image

    from a3lign_dfer.orchestration.dvc_stages import pipeline_stages
    from a3lign_research.ui_check import check_ui, find_chromium

    if find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): the browser check needs it")
    result = check_ui(tmp_path, pipeline_of=built_pipeline[0])
    assert result["missing"] == [] and {"weekly", "on-demand", "daily"} <= set(result["found"])
    image = matplotlib.image.imread(result["screenshot"])
    assert image.shape[:2] == (900, 1440) and image[..., :3].std() > 0.02    # a rendered page, not a blank one
    run = result["pipeline_run"]                        # a task per DVC stage on the run's page
    assert run["missing"] == [] and run["found"] == [s.name for s in pipeline_stages(built_pipeline[0])]
    assert matplotlib.image.imread(run["screenshot"])[..., :3].std() > 0.02
