"""The writer thread: drains a run's bounded queue in batches into its sinks, off the caller's thread.

The caller appends to a deque (atomic, no lock) and returns; the thread wakes every
:data:`POLL_INTERVAL` seconds, or at once for a flush, numbers the records and hands each batch to
every sink, then flushes them, so a ``kill -9`` loses at most the last moments of records.

A sink that cannot write (``OSError``: the disk full, the folder read-only or gone) never stops training:
the thread keeps draining the queue into that sink's :class:`Backlog` in memory, retries with backoff
(:data:`RETRY_DELAYS`, at most 30 s apart), and writes the backlog out once the sink can take it. Past
``STEPLINE_MAX_BACKLOG_MB`` the backlog drops new metrics, log and media records, counting them; params, status,
summary and file records are always kept. ``close`` tries a last few times and then says what is lost:
it always returns.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from stepline import events
from stepline.config import DEFAULT_MAX_BACKLOG_MB, DEFAULT_QUEUE_MB
from stepline.errors import start_thread, warn
from stepline.metrics_batch import MetricsBatch, is_segment
from stepline.sinks.base import Sink
from stepline.values import DeferredScalar

POLL_INTERVAL = 0.05
MAX_BATCH = 2_000
RETRY_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # seconds between tries of a sink that cannot write
CLOSING_ATTEMPTS = (0.2, 1.0, 2.0)  # the last tries at close(), seconds apart, before what is left is lost
_DROPPABLE = frozenset((events.METRICS, events.LOG, events.MEDIA))

# On the queue: plain metrics calls in native metrics segments (stepline.metrics_batch); a metrics call the
# segment does not take (or every one, without segments) as (tag, time, step, epoch, values); every other record
# as its dict with ``seq`` still None.
METRICS_TAG = "m"
DEFERRED_METRICS_TAG = "m+"


class Backlog:
    """What one sink could not take yet, in order, kept in memory up to ``limit`` bytes (estimated)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.records: list[dict[str, Any]] = []
        self.size = 0
        self.dropped = 0
        self.said_dropping = False
        self.error: OSError | None = None
        self.attempts = 0
        self.next_try = 0.0

    def __bool__(self) -> bool:
        return self.error is not None or bool(self.records)

    def add(self, batch: list[dict[str, Any]]) -> None:
        for record in batch:
            size = _estimated_size(record)
            if self.size + size > self.limit and record["type"] in _DROPPABLE:
                self.dropped += 1
                continue
            self.records.append(record)
            self.size += size

    def failed(self, error: OSError) -> None:
        self.error = error
        self.next_try = time.monotonic() + RETRY_DELAYS[min(self.attempts, len(RETRY_DELAYS) - 1)]
        self.attempts += 1

    def clear(self) -> None:
        self.records, self.size, self.error, self.attempts, self.dropped, self.said_dropping = [], 0, None, 0, 0, False


def _records(batch: list[dict[str, Any]] | MetricsBatch) -> list[dict[str, Any]]:
    return batch.records if isinstance(batch, MetricsBatch) else batch


def _estimated_size(record: dict[str, Any]) -> int:
    if record["type"] == events.METRICS:
        return 120 + 48 * len(record["values"])
    if record["type"] == events.MEDIA:  # its pixels, samples or rows, waiting to be encoded
        return 400 + sum(_size_of(value) for item in record.get("payload", ()) for value in item.values())
    return 200 + len(record.get("data") or b"") if record["type"] == events.FILE else 400


def queued_bytes(item: Any) -> int:
    """About how much memory a queued record holds, which the queue's byte bound counts (a media record's
    payload, a file record's data), or a metrics call on the Python path; a segment says its own
    (``held_bytes``)."""
    if type(item) is dict:
        return _estimated_size(item)
    if type(item) is tuple:  # (tag, time, step, epoch, values)
        return 120 + 48 * len(item[4])
    return 0  # a flush marker


def _size_of(value: Any) -> int:
    """About how much memory a media payload's value holds: an array's bytes, text's length, a table's rows
    at 64 bytes each."""
    if hasattr(value, "nbytes"):
        return int(value.nbytes)
    if isinstance(value, (bytes, str)):
        return len(value)
    if isinstance(value, list):
        return 64 * len(value)
    return 0


class Writer:
    """One run's queue and writer thread.

        writer = Writer([LogbookSink(path, meta)], first_seq=1, max_queue=100_000, label="abc123")
        writer.items.append(("m", time.time(), 0, None, {"loss": 0.5}))
        writer.close(timeout=10)

    ``taken`` counts the records the thread took off the queue: the run counts those it put, and their
    difference is what the queue holds (``wait_for_room``).
    """

    def __init__(
        self,
        sinks: list[Sink],
        *,
        first_seq: int,
        max_queue: int,
        max_queue_bytes: int = DEFAULT_QUEUE_MB << 20,
        label: str,
        heartbeat_interval: float,
        max_backlog_bytes: int = DEFAULT_MAX_BACKLOG_MB << 20,
        on_written: Callable[[int], None] | None = None,
    ) -> None:
        self.items: deque[Any] = deque()
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self._sinks = list(sinks)
        self._max_backlog_bytes = max_backlog_bytes
        self._backlogs: dict[Sink, Backlog] = {}
        self.lost = 0  # records a sink could not write by the end
        self.taken = 0  # records taken off the queue (written by this thread only)
        self.taken_bytes = 0  # and the queued_bytes of those
        self._next_seq = first_seq
        self._heartbeat_interval = heartbeat_interval
        self._on_written = on_written  # told how many records each batch held, once every sink took it
        self._wake = threading.Event()
        self._room = threading.Event()  # set when the writer has taken items off the queue
        self._stopping = False
        self._warned_full = False
        self._thread = start_thread(self._run, f"stepline-writer-{label}")

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def wait_for_room(self, full: Callable[[], bool]) -> None:
        """Called by the caller when the queue is full (``full()``, by its own counts): wait, never drop."""
        if not self._warned_full:
            self._warned_full = True
            warn(
                f"stepline's queue is full ({self.max_queue} records, or {self.max_queue_bytes >> 20} MB): the "
                "backend is slower than the training loop, so log calls now wait for it. Log less often, or raise "
                "STEPLINE_QUEUE_SIZE / STEPLINE_QUEUE_MB."
            )
        self._wake.set()
        while full() and self._thread.is_alive():
            # woken when the writer takes a batch: polling would take the GIL from it a thousand times a second
            self._room.wait(0.05)
            self._room.clear()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued before this call reached every sink; False on timeout, or when a sink
        that cannot write holds some of it in memory."""
        if not self._thread.is_alive():
            return not self.items
        done = threading.Event()
        self.items.append(done)
        self._wake.set()
        return done.wait(timeout) and not any(self._backlogs.values())

    def close(self, timeout: float | None = None) -> bool:
        """Drain, close the sinks and stop the thread; False when ``timeout`` ran out first, or when a sink that
        could not write lost records (it has said how many)."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        return not self._thread.is_alive() and not self.lost

    def pending(self) -> int:
        return sum(len(item) if is_segment(item) else 1 for item in self.items
                   if not isinstance(item, threading.Event))

    def _run(self) -> None:
        items = self.items
        next_heartbeat = time.monotonic() + self._heartbeat_interval
        while True:
            # One item may be the segment the caller is filling: wait for more, or to be woken (flush, a full queue)
            if len(items) < 2 and not self._stopping:
                self._wake.wait(POLL_INTERVAL)
                self._wake.clear()
            parts, markers = self._next_batch()
            self._room.set()
            if time.monotonic() >= next_heartbeat:
                next_heartbeat = time.monotonic() + self._heartbeat_interval
                parts.append([self._numbered(events.HEARTBEAT)])
            if parts or markers:
                self._deliver(parts)
                if self._on_written and parts and not any(self._backlogs.values()):
                    self._on_written(sum(map(len, parts)))
            for marker in markers:
                marker.set()
            if self._stopping and not items:
                break
        for sink in list(self._sinks):
            self._close(sink)

    def _next_batch(self) -> tuple[list[list[dict[str, Any]] | MetricsBatch], list[threading.Event]]:
        """Up to :data:`MAX_BATCH` queued items, in order: the records numbered (a metrics segment, closed, as a
        :class:`MetricsBatch`; the others in lists), and the flush markers among them."""
        items = self.items
        popped = [items.popleft() for _ in range(min(len(items), MAX_BATCH))]
        seq = self._next_seq
        if popped and (list(map(type, popped)).count(tuple) == len(popped)
                and list(map(itemgetter(0), popped)).count(METRICS_TAG) == len(popped)):  # Python's common batch
            self._next_seq = seq + len(popped)
            self.taken += len(popped)
            self.taken_bytes += sum(map(queued_bytes, popped))
            return [[
                {"type": events.METRICS, "seq": number, "time": when, "step": step, "values": values}
                if epoch is None else
                {"type": events.METRICS, "seq": number, "time": when, "step": step, "epoch": epoch, "values": values}
                for number, (_, when, step, epoch, values) in zip(range(seq, seq + len(popped)), popped)
            ]], []
        parts: list[list[dict[str, Any]] | MetricsBatch] = []
        records: list[dict[str, Any]] = []
        markers: list[threading.Event] = []
        for item in popped:
            if is_segment(item):
                count = item.close()  # the caller starts another for its next call
                if count:
                    if records:
                        parts.append(records)
                        records = []
                    parts.append(MetricsBatch(item, self._next_seq))
                    self._next_seq += count
                    self.taken += count
                    self.taken_bytes += item.held_bytes()
            elif type(item) is tuple:
                records.append(self._metrics_record(item))
                self.taken += 1
                self.taken_bytes += queued_bytes(item)
            elif isinstance(item, threading.Event):
                markers.append(item)
            else:
                item["seq"] = self._next_seq
                self._next_seq += 1
                self.taken += 1
                self.taken_bytes += queued_bytes(item)
                records.append(item)
        if records:
            parts.append(records)
        return parts, markers

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

    def _deliver(self, parts: list[list[dict[str, Any]] | MetricsBatch]) -> None:
        for sink in list(self._sinks):
            backlog = self._backlog(sink)
            if backlog:  # behind what it could not take yet, in order
                for part in parts:
                    backlog.add(_records(part))
                if time.monotonic() >= backlog.next_try:
                    self._write_backlog(sink, backlog)
                continue
            done = 0
            try:
                for part in parts or [[]]:  # each part flushed, as a batch of its own
                    if isinstance(part, MetricsBatch):
                        sink.write_metrics(part)
                    elif part:
                        sink.write(part)
                    sink.flush()
                    done += 1
            except OSError as err:
                backlog.failed(err)
                written = getattr(err, "records_written", 0)  # of the failed part; a failed flush: none of it
                for part in parts[done:]:
                    backlog.add(_records(part)[written:])
                    written = 0
                warn(f"stepline's {sink.name} sink cannot write ({err}); training goes on, and stepline keeps "
                     f"what it cannot write in memory (up to {backlog.limit >> 20} MB, STEPLINE_MAX_BACKLOG_MB), "
                     "retrying until it can")
            except Exception:
                self._switch_off(sink)

    def _backlog(self, sink: Sink) -> Backlog:
        backlog = self._backlogs.get(sink)
        if backlog is None:
            backlog = self._backlogs[sink] = Backlog(self._max_backlog_bytes)
        return backlog

    def _write_backlog(self, sink: Sink, backlog: Backlog) -> bool:
        """Try to write the backlog out; True when it is."""
        try:
            if backlog.records:
                sink.write(backlog.records)
            sink.flush()
        except OSError as err:
            written = getattr(err, "records_written", 0)
            backlog.size -= sum(_estimated_size(record) for record in backlog.records[:written])
            del backlog.records[:written]
            backlog.failed(err)
            if backlog.dropped and not backlog.said_dropping:
                backlog.said_dropping = True
                warn(f"stepline's {sink.name} sink still cannot write ({err}), and the {backlog.limit >> 20} MB "
                     "kept in memory are full: new metrics and log lines are dropped from now on until it can "
                     "(params, status and files are kept)")
            return False
        except Exception:
            self._switch_off(sink)
            return False
        warn(f"stepline's {sink.name} sink can write again: {len(backlog.records)} records kept in memory are "
             f"written" + (f"; {backlog.dropped} metrics and log records were dropped meanwhile" if backlog.dropped
                           else ", none lost"))
        backlog.clear()
        return True

    def _close(self, sink: Sink) -> None:
        backlog = self._backlog(sink)
        for delay in CLOSING_ATTEMPTS:
            if not backlog or self._write_backlog(sink, backlog):
                break
            time.sleep(delay)
        if backlog:
            self.lost += len(backlog.records) + backlog.dropped
            warn(f"stepline's {sink.name} sink cannot write ({backlog.error}): {len(backlog.records)} records of "
                 f"this run are lost" + (f", and {backlog.dropped} were dropped before" if backlog.dropped else "")
                 + "; the run's files on disk hold what was written before the fault")
            return
        try:
            sink.close()
        except OSError as err:
            self.lost += 1
            warn(f"stepline's {sink.name} sink could not close cleanly: {err}")
        except Exception:
            self._switch_off(sink)

    def _switch_off(self, sink: Sink) -> None:
        warn(f"stepline's {sink.name} sink failed and is switched off for this run; training goes on. "
             f"Please report this bug:\n{traceback.format_exc()}")
        if sink in self._sinks:
            self._sinks.remove(sink)
