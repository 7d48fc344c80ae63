"""GPU board power from NVML, where a GPU is present: the policy's power model uses it instead of its CPU estimate.

Optional by design: with no `pynvml` module (package nvidia-ml-py) or no NVIDIA driver, `open_gpu_power()` answers
None and nothing else changes. No GPU is needed to install or test gridshift.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

logger = logging.getLogger("gridshift.nvml")


@dataclass(frozen=True)
class GpuPower:
    """Board power of the GPUs a process can see, W: now, the enforced limit, and the lowest seen since start."""

    power_w: float
    limit_w: float
    idle_w: float


class GpuPowerMeter:
    """Reads the summed board power of the visible GPUs; remembers the lowest reading as their idle floor."""

    def __init__(self, nvml: ModuleType, handles: list[Any]) -> None:
        self._nvml = nvml
        self._handles = handles
        self._idle_w: float | None = None

    def read(self) -> GpuPower | None:
        try:
            # NVML reports milliwatts.
            power = sum(self._nvml.nvmlDeviceGetPowerUsage(h) for h in self._handles) / 1000.0
            limit = sum(self._nvml.nvmlDeviceGetEnforcedPowerLimit(h) for h in self._handles) / 1000.0
        except Exception as error:  # an NVML error (driver reset, lost GPU) costs the reading, never the request
            logger.warning("NVML power read failed: %s", error)
            return None
        self._idle_w = power if self._idle_w is None else min(self._idle_w, power)
        return GpuPower(power_w=power, limit_w=limit, idle_w=self._idle_w)


def _visible_indices(count: int) -> list[int]:
    # Ray sets CUDA_VISIBLE_DEVICES to the GPUs it gave this replica; NVML itself sees every GPU of the node.
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return list(range(count))
    indices = []
    for part in visible.split(","):
        part = part.strip()
        if part.isdigit() and int(part) < count:
            indices.append(int(part))
    return indices


def open_gpu_power(nvml: ModuleType | None = None) -> GpuPowerMeter | None:
    """A meter over this process's GPUs, or None where there is no NVML or no GPU."""
    if nvml is None:
        try:
            import pynvml  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            return None
        nvml = pynvml
    try:
        nvml.nvmlInit()
        count = int(nvml.nvmlDeviceGetCount())
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in _visible_indices(count)]
    except Exception as error:  # no driver, no device: the CPU estimate stands
        logger.info("no NVML GPU power (%s); using the CPU-time power estimate", error)
        return None
    return GpuPowerMeter(nvml, handles) if handles else None
