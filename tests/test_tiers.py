"""The tiers come from what a test uses (tests/tiers.py): checked on this suite's own collection (every item,
before `-m` deselection) and on tests written here that nobody marked."""
import textwrap

from tiers import TIERS


# Tests on the built pipeline, one directly and one through its module's fixture.
ON_PIPELINE = ("tests/test_pipeline.py::test_dvc_repro_runs_every_stage_and_writes_consistent_metrics",
               "tests/test_timeline.py::test_windows_where_the_face_is_gone_get_no_label")


def test_every_test_on_the_built_pipeline_is_end_to_end(request):
    tiers = request.config.stash[TIERS]
    assert all(t.e2e for t in tiers if "built_pipeline" in t.because)
    by_id = {t.nodeid: t for t in tiers}           # make test-fast collects them too, then deselects them
    for nodeid in ON_PIPELINE:
        if nodeid in by_id:
            assert by_id[nodeid].e2e and "built_pipeline" in by_id[nodeid].because, by_id[nodeid]


def test_an_unmarked_new_test_is_tiered_by_its_fixtures_and_the_helpers_it_calls(pytester):
    pytester.makeconftest(textwrap.dedent("""
        import pytest
        from tiers import mark_and_order

        def pytest_collection_modifyitems(items):
            mark_and_order(items)

        @pytest.fixture(scope="session")
        def built_pipeline():
            return "repo"

        @pytest.fixture
        def deploy(built_pipeline):
            return built_pipeline
    """))
    pytester.makepyfile(test_new=textwrap.dedent("""
        import pytest

        def make_tiny_repo(path):
            return path

        def _helper(path):
            return make_tiny_repo(path)

        def test_on_the_pipeline_through_a_fixture(deploy):
            pass

        def test_builds_a_repo_through_a_helper(tmp_path):
            _helper(tmp_path)

        def test_plain():
            pass

        def test_a_cluster_imported_inside():
            from distributed import LocalCluster  # noqa: F401

        @pytest.mark.gpu
        def test_on_a_gpu():
            pass
    """))
    e2e = pytester.runpytest("-m", "e2e", "--collect-only", "-q")
    fast = pytester.runpytest("-m", "not e2e", "--collect-only", "-q")
    assert sorted(line for line in e2e.outlines if "::" in line) == [
        "test_new.py::test_a_cluster_imported_inside", "test_new.py::test_builds_a_repo_through_a_helper",
        "test_new.py::test_on_a_gpu", "test_new.py::test_on_the_pipeline_through_a_fixture"]
    assert [line for line in fast.outlines if "::" in line] == ["test_new.py::test_plain"]
