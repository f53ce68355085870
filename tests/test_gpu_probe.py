"""The probe the GPU tests rely on (gpu_probe.py), checked on CPU so it is known to fail when it should."""
import pytest
import torch

from gpu_probe import DeviceProbe


class Scale(torch.nn.Module):
    """A module with no parameters: only its input says where it ran."""

    def forward(self, x):
        return 2 * x


def test_probe_records_where_each_module_ran_and_the_check_fails_on_cpu():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), Scale())
    with DeviceProbe() as probe:
        model(torch.randn(2, 4))
    assert probe.calls == {("Sequential", "cpu"): 1, ("Linear", "cpu"): 1, ("ReLU", "cpu"): 1, ("Scale", "cpu"): 1}
    assert probe.devices == {"cpu"}
    probe.assert_ran_on("cpu")
    with pytest.raises(AssertionError, match=r"ran elsewhere: .*'Linear on cpu': 1"):
        probe.assert_ran_on("cuda")


class First(torch.nn.Module):
    def forward(self, items):
        return items[0]


def test_probe_reads_the_devices_of_nested_inputs():
    """A module with no weights, called with a list holding a meta tensor and a dict holding a CPU one."""
    with DeviceProbe() as probe:
        First()([torch.zeros(1, device="meta"), {"x": torch.zeros(1)}])
    assert probe.calls == {("First", "meta"): 1, ("First", "cpu"): 1}
    with pytest.raises(AssertionError, match="First on meta"):
        probe.assert_ran_on("cpu")


def test_probe_fails_when_nothing_ran_and_stops_recording_when_closed():
    with DeviceProbe() as probe:
        torch.randn(3) * 2                      # no module: nothing to say where code runs
    with pytest.raises(AssertionError, match="no torch module ran"):
        probe.assert_ran_on("cpu")
    torch.nn.Linear(2, 2)(torch.zeros(1, 2))     # after the probe closed
    assert not probe.calls and probe.modules_called == 0
    assert probe.cuda_peak_growth is None or probe.cuda_peak_growth >= 0
