"""The system metrics sampler: a thread per run that records the machine's figures (``machine.py``) every
``interval`` seconds, as a metrics record of ``system/`` keys, off the training thread.

    sampler = SystemSampler(record, interval=10.0, label=run_id)   # record(figures) queues them on the run
    sampler.stop()                                                 # one last sample, then the thread ends

Readers are made on the sampler's thread (psutil's import included), so ``init`` never waits for them. A
reader that fails is said once and left out; the others go on.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable

from stepline.errors import start_thread, warn
from stepline.machine import MachineReader, machine_readers

LAST_SAMPLE_AFTER = 1.0  # stop() takes a last sample when the one before is at least this many seconds old


class SystemSampler:
    def __init__(self, record: Callable[[dict[str, float]], None], interval: float, *, label: str,
                 readers: list[MachineReader] | None = None) -> None:
        self._record = record
        self._interval = interval
        self._readers = readers
        self._stopping = threading.Event()
        self._thread = start_thread(self._loop, f"stepline-system-{label}")

    def stop(self, timeout: float = 10.0) -> None:
        """Take a last sample (unless one was just taken) and end the thread."""
        self._stopping.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        try:
            readers = self._readers if self._readers is not None else machine_readers()
        except Exception:  # a bug, or a library that breaks in a way it should not: training goes on
            warn(f"stepline: the machine's figures cannot be read, and are not recorded for this run. Please "
                 f"report this bug:\n{traceback.format_exc()}")
            return
        sampled = time.monotonic()
        while readers:
            stopping = self._stopping.wait(self._interval)
            if stopping and time.monotonic() - sampled < LAST_SAMPLE_AFTER:
                return
            figures: dict[str, float] = {}
            for reader in list(readers):
                try:
                    figures.update(reader.read())
                except Exception as err:
                    readers.remove(reader)
                    warn(f"stepline: reading the machine's figures with {type(reader).__name__} failed ({err!r}); "
                         "they are left out for the rest of this run")
            sampled = time.monotonic()
            if figures:
                self._record(figures)
            if stopping:
                return
