"""Where tensors actually ran: a probe for the GPU tests.

While a `DeviceProbe` is open, a global forward pre-hook on every torch.nn.Module
records, per module class, the device types of the module's own parameters and
buffers and of the tensors it is called with. `assert_ran_on("cuda")` then fails
naming every module that ran anywhere else, and fails too when no module ran at all
(a probe that saw nothing proves nothing). Where CUDA is present the probe also
measures how much the CUDA allocator's peak grew while it was open.
"""
from __future__ import annotations

from collections import Counter
from typing import Self

import torch
from torch.nn.modules.module import register_module_forward_pre_hook


def _tensors(value):
    """The tensors in a module call's arguments (nested tuples, lists and dicts included)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


class DeviceProbe:
    """Use as a context manager around the code under test; then read `calls` or call `assert_ran_on`."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()     # (module class, device type) -> forward calls
        self.modules_called = 0
        self.cuda_peak_growth: int | None = None            # bytes; None without CUDA
        self._handle = None
        self._start = 0

    def _hook(self, module: torch.nn.Module, args) -> None:
        self.modules_called += 1
        own = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
        for device in {t.device.type for t in (*own, *_tensors(args))}:
            self.calls[(type(module).__name__, device)] += 1

    def __enter__(self) -> Self:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._start = torch.cuda.memory_allocated()
        self._handle = register_module_forward_pre_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            self.cuda_peak_growth = torch.cuda.max_memory_allocated() - self._start

    @property
    def devices(self) -> set[str]:
        return {device for _, device in self.calls}

    def elsewhere(self, device: str) -> dict[str, int]:
        """Module classes that ran on another device than `device`, with their call counts."""
        return {f"{name} on {where}": n for (name, where), n in sorted(self.calls.items()) if where != device}

    def assert_ran_on(self, device: str) -> None:
        if not self.calls:
            raise AssertionError(f"no torch module ran while the probe was open ({self.modules_called} calls "
                                 "with no tensor): nothing shows where this code runs")
        wrong = self.elsewhere(device)
        if wrong:
            raise AssertionError(f"expected every module to run on {device}, but these ran elsewhere: {wrong}")
