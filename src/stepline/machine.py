"""What the machine and the training process are doing, read for the system metrics sampler (``sampler.py``).

    readers = machine_readers()          # psutil's and NVIDIA's where installed, the standard library's otherwise
    figures = {}
    for reader in readers:
        figures.update(reader.read())    # {"system/cpu.percent": 12.5, "system/gpu.0.power_w": 71.2, ...}

Keys are under ``system/``; rates (disk, network, CPU percent) are over the time since the reader's last read,
so the first read primes them and gives none. Units are in the names: ``_mb`` (2**20 bytes), ``_percent``,
``_c``, ``_w``. A reader never raises for what a machine lacks: a figure it cannot read is left out.
"""

from __future__ import annotations

import os
import resource
import time
from typing import Any, Protocol

from stepline.errors import warn

MB = float(1 << 20)


class MachineReader(Protocol):
    def read(self) -> dict[str, float]: ...


class PsutilReader:
    """The process's CPU and memory, and the machine's CPU, memory, disk and network (psutil)."""

    def __init__(self, psutil: Any) -> None:
        self._psutil = psutil
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # primes: each call measures since the one before
        psutil.cpu_percent(None)
        self._counters = self._io_counters()
        self._at = time.monotonic()

    def read(self) -> dict[str, float]:
        psutil = self._psutil
        memory = psutil.virtual_memory()
        figures = {
            "system/cpu.process_percent": self._process.cpu_percent(None),  # of one core: up to 100 per core
            "system/cpu.percent": psutil.cpu_percent(None),
            "system/memory.process_rss_mb": self._process.memory_info().rss / MB,
            "system/memory.used_mb": (memory.total - memory.available) / MB,
            "system/memory.available_mb": memory.available / MB,
        }
        counters, now = self._io_counters(), time.monotonic()
        elapsed = now - self._at
        if elapsed > 0:
            for name, value in counters.items():
                if name in self._counters:
                    figures[f"system/{name}_mb_per_s"] = max(0.0, value - self._counters[name]) / MB / elapsed
        self._counters, self._at = counters, now
        return figures

    def _io_counters(self) -> dict[str, float]:
        counters = {}
        try:
            disk = self._psutil.disk_io_counters()
        except (OSError, RuntimeError):  # no disks it can see (some containers)
            disk = None
        if disk is not None:
            counters.update({"disk.read": float(disk.read_bytes), "disk.write": float(disk.write_bytes)})
        try:
            network = self._psutil.net_io_counters()
        except (OSError, RuntimeError):
            network = None
        if network is not None:
            counters.update({"network.sent": float(network.bytes_sent),
                             "network.received": float(network.bytes_recv)})
        return counters


class StandardLibraryReader:
    """What Python itself tells without psutil: the process's CPU percent, its peak RSS, the load average."""

    def __init__(self) -> None:
        self._cpu, self._at = _process_cpu_seconds(), time.monotonic()

    def read(self) -> dict[str, float]:
        cpu, now = _process_cpu_seconds(), time.monotonic()
        figures = {}
        if now > self._at:
            figures["system/cpu.process_percent"] = 100.0 * (cpu - self._cpu) / (now - self._at)
        self._cpu, self._at = cpu, now
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        figures["system/memory.process_peak_rss_mb"] = peak / (MB if os.uname().sysname == "Darwin" else 1024.0)
        try:
            figures["system/cpu.load_1m"] = os.getloadavg()[0]
        except OSError:
            pass
        return figures


def _process_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class NvidiaReader:
    """Per GPU: utilisation, memory used and total, temperature and power (NVIDIA's management library)."""

    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml
        self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]

    @property
    def gpu_count(self) -> int:
        return len(self._handles)

    def read(self) -> dict[str, float]:
        nvml, figures = self._nvml, {}
        for number, handle in enumerate(self._handles):
            prefix = f"system/gpu.{number}."
            readings = {
                "utilization_percent": lambda h: nvml.nvmlDeviceGetUtilizationRates(h).gpu,
                "memory_used_mb": lambda h: nvml.nvmlDeviceGetMemoryInfo(h).used / MB,
                "memory_total_mb": lambda h: nvml.nvmlDeviceGetMemoryInfo(h).total / MB,
                "temperature_c": lambda h: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU),
                "power_w": lambda h: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0,  # milliwatts
            }
            for name, reading in readings.items():
                try:
                    figures[prefix + name] = float(reading(handle))
                except nvml.NVMLError:  # a figure this GPU or driver does not report
                    pass
        return figures


def machine_readers() -> list[MachineReader]:
    """The readers this machine has: psutil's (else the standard library's, said once), and NVIDIA's when its
    library and a driver are present (a machine without a GPU gets no GPU keys, and no message)."""
    readers: list[MachineReader] = []
    try:
        import psutil
    except ImportError:
        _say_once("stepline records the process's CPU, its peak memory and the load average only: install "
                  "psutil (pip install 'stepline[system]') for the machine's CPU, memory, disk and network")
        readers.append(StandardLibraryReader())
    else:
        readers.append(PsutilReader(psutil))
    gpus = _nvidia_reader()
    if gpus is not None:
        readers.append(gpus)
    return readers


def _nvidia_reader() -> NvidiaReader | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        reader = NvidiaReader(pynvml)
    except pynvml.NVMLError:  # no driver, no GPU: nothing to record, nothing to say
        return None
    return reader if reader.gpu_count else None


_SAID: set[str] = set()


def _say_once(message: str) -> None:
    if message not in _SAID:
        _SAID.add(message)
        warn(message)
