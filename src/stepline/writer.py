"""The writer thread: drains a run's bounded queue in batches into its sinks, off the caller's thread.

The caller appends to a deque (atomic, no lock) and returns; the thread wakes every
:data:`POLL_INTERVAL` seconds, or at once for a flush, numbers the records and hands each batch to
every sink, then flushes them, so a ``kill -9`` loses at most the last moments of records.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from stepline import events
from stepline.errors import start_thread, warn
from stepline.sinks.base import Sink
from stepline.values import DeferredScalar

POLL_INTERVAL = 0.05
MAX_BATCH = 2_000
_RETRY_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)

# The metrics record's compact form on the queue: (tag, time, step, epoch, values); every other record
# is queued as its dict with ``seq`` still None.
METRICS_TAG = "m"
DEFERRED_METRICS_TAG = "m+"


class Writer:
    """One run's queue and writer thread.

        writer = Writer([LogbookSink(path, meta)], first_seq=1, max_queue=100_000, label="abc123")
        writer.items.append(("m", time.time(), 0, None, {"loss": 0.5}))
        writer.close(timeout=10)
    """

    def __init__(
        self,
        sinks: list[Sink],
        *,
        first_seq: int,
        max_queue: int,
        label: str,
        heartbeat_interval: float,
    ) -> None:
        self.items: deque[Any] = deque()
        self.max_queue = max_queue
        self._sinks = list(sinks)
        self._next_seq = first_seq
        self._heartbeat_interval = heartbeat_interval
        self._wake = threading.Event()
        self._stopping = False
        self._warned_full = False
        self._thread = start_thread(self._run, f"stepline-writer-{label}")

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def wait_for_room(self) -> None:
        """Called by the caller when the queue is full: wait, never drop."""
        if not self._warned_full:
            self._warned_full = True
            warn(
                f"stepline's queue is full ({self.max_queue} records): the backend is slower than the "
                "training loop, so log calls now wait for it. Log less often, or raise STEPLINE_QUEUE_SIZE."
            )
        self._wake.set()
        while len(self.items) >= self.max_queue and self._thread.is_alive():
            time.sleep(0.001)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued before this call reached every sink; False on timeout."""
        if not self._thread.is_alive():
            return not self.items
        done = threading.Event()
        self.items.append(done)
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Drain, close the sinks and stop the thread; False when ``timeout`` ran out first."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def pending(self) -> int:
        return sum(1 for item in self.items if not isinstance(item, threading.Event))

    def _run(self) -> None:
        items = self.items
        next_heartbeat = time.monotonic() + self._heartbeat_interval
        while True:
            if not items and not self._stopping:
                self._wake.wait(POLL_INTERVAL)
                self._wake.clear()
            batch: list[dict[str, Any]] = []
            markers: list[threading.Event] = []
            while items and len(batch) < MAX_BATCH:
                item = items.popleft()
                if type(item) is tuple:
                    batch.append(self._metrics_record(item))
                elif isinstance(item, threading.Event):
                    markers.append(item)
                else:
                    item["seq"] = self._next_seq
                    self._next_seq += 1
                    batch.append(item)
            if time.monotonic() >= next_heartbeat:
                next_heartbeat = time.monotonic() + self._heartbeat_interval
                batch.append(self._numbered(events.HEARTBEAT))
            if batch or markers:
                self._deliver(batch)
            for marker in markers:
                marker.set()
            if self._stopping and not items:
                break
        for sink in self._sinks:
            self._call(sink, sink.close)

    def _metrics_record(self, item: tuple) -> dict[str, Any]:
        tag, when, step, epoch, values = item
        if tag == DEFERRED_METRICS_TAG:
            values = {k: (v.resolve() if isinstance(v, DeferredScalar) else v) for k, v in values.items()}
        record = {"type": events.METRICS, "seq": self._next_seq, "time": when, "step": step}
        if epoch is not None:
            record["epoch"] = epoch
        record["values"] = values
        self._next_seq += 1
        return record

    def _numbered(self, kind: str) -> dict[str, Any]:
        record = {"type": kind, "seq": self._next_seq, "time": time.time()}
        self._next_seq += 1
        return record

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        for sink in list(self._sinks):
            if batch:
                self._call(sink, sink.write, batch, retry=True)
            self._call(sink, sink.flush, retry=True)

    def _call(self, sink: Sink, action: Callable[..., None], *args: Any, retry: bool = False) -> None:
        """Run one sink call; retry passing OS troubles, and drop a sink whose code is broken."""
        attempt = 0
        while True:
            try:
                action(*args)
                return
            except OSError as err:
                if not retry:
                    return
                if attempt == 0:
                    warn(f"stepline's {sink.name} sink cannot write ({err}); retrying, and nothing is dropped")
                time.sleep(_RETRY_DELAYS[min(attempt, len(_RETRY_DELAYS) - 1)])
                attempt += 1
            except Exception:
                warn(
                    f"stepline's {sink.name} sink failed and is switched off for this run; training goes on. "
                    f"Please report this bug:\n{traceback.format_exc()}"
                )
                if sink in self._sinks:
                    self._sinks.remove(sink)
                return
