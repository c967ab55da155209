"""A run's end of its writer's queue: what ``run.log`` and the run's collaborators put on it, in the order of
the calls, and the bound on what it holds (the caller waits when it is full; nothing is dropped).

Plain metrics calls go into the open native segment (stepline.metrics_batch), which reads their numbers at once;
every other record, and a metrics call the segment does not take, goes on as it is, after the segment is closed,
so that what is logged after it is numbered after it.

    queue = RunQueue(writer)
    queue.add_metrics(time.time(), 3, None, {"loss": 0.25})   # True: the segment took it
    queue.put({"type": "params", "seq": None, "time": time.time(), "op": "set", "data": {"lr": 0.1}})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from stepline.metrics_batch import CLOSED, SEGMENT_RECORDS, SEGMENT_VALUES, TAKEN, VALUE_BYTES, new_segment
from stepline.writer import queued_bytes

if TYPE_CHECKING:
    from stepline.writer import Writer


class RunQueue:
    """One run's side of its writer's queue (``writer`` None: a run that records nothing)."""

    def __init__(self, writer: Writer | None) -> None:
        self._writer = writer
        self.items: Any = writer.items if writer is not None else DiscardQueue()
        self._max = writer.max_queue if writer is not None else 1 << 62
        self._max_bytes = writer.max_queue_bytes if writer is not None else 1 << 62
        self._queued = 0  # records put on the queue, but for those of the open segment (see pending)
        self._queued_bytes = 0  # their queued_bytes (what they hold in memory, about)
        # a segment is counted when it is full: smaller ones under a small bound, so that the bound holds
        self._segment_size = min(SEGMENT_RECORDS, max(1, self._max // 4))
        self._segment_values = min(SEGMENT_VALUES, max(1, self._max_bytes // 4 // VALUE_BYTES))
        self._segment: Any = self._open_segment() if writer is not None else None
        if self._segment is not None:
            self.items.append(self._segment)

    def add_metrics(self, when: float, step: int, epoch: Any, values: Mapping[str, Any]) -> bool:
        """One metrics call into the open segment; False when the segment does not take it (not plain numbers,
        or no segments): the caller then coerces it and :meth:`put` s it."""
        segment = self._segment
        if segment is None:
            return False
        answer = segment.add(when, step, epoch, values)
        if answer == CLOSED:  # full, or taken by the writer
            answer = self._new_segment().add(when, step, epoch, values)
        return answer == TAKEN  # type: ignore[no-any-return]

    def put(self, item: Any) -> None:
        """Queue one record (a dict with ``seq`` None) or metrics call ``(tag, time, step, epoch, values)``."""
        if self._segment is not None:
            self._segment.close()  # the calls after this one go after it
        self.items.append(item)
        self._queued += 1
        self._queued_bytes += queued_bytes(item)
        self._wait_if_full()

    def pending(self) -> int:
        """Records on the queue: those put, and those of the open segment, less those the writer took."""
        if self._writer is None:
            return 0
        return self._queued + (len(self._segment) if self._segment is not None else 0) - self._writer.taken

    def pending_bytes(self) -> int:
        """What the queued records hold in memory (estimated; the open segment once it closes), less what the
        writer took."""
        return self._queued_bytes - self._writer.taken_bytes if self._writer is not None else 0

    def stop(self, replacement: Any) -> None:
        """Take no more: later records go to ``replacement`` (a :class:`ClosedQueue`, a :class:`DiscardQueue`)."""
        if self._segment is not None:
            self._segment.close()
        self._segment = None
        self.items = replacement

    def _new_segment(self) -> Any:
        """The open segment is full or taken: count it, wait if the queue is full, open another behind it."""
        self._queued += len(self._segment)
        self._queued_bytes += self._segment.held_bytes()
        self._wait_if_full()
        segment = self._segment = self._open_segment()
        self.items.append(segment)
        return segment

    def _open_segment(self) -> Any:
        return new_segment(self._segment_size, self._segment_values)

    def _wait_if_full(self) -> None:
        if self._full():
            self._writer.wait_for_room(self._full)  # type: ignore[union-attr]

    def _full(self) -> bool:
        return self.pending() >= self._max or self.pending_bytes() >= self._max_bytes


class DiscardQueue:
    """Stands in for the queue of a run that records nothing (disabled, another rank, a forked child)."""

    __slots__ = ()

    def append(self, item: Any) -> None:
        pass

    def __len__(self) -> int:
        return 0


class ClosedQueue:
    """Stands in for the queue of an ended run: warns once, so a late log call never raises."""

    __slots__ = ("_warn",)

    def __init__(self, warn: Callable[[], None]) -> None:
        self._warn = warn

    def append(self, item: Any) -> None:
        self._warn()

    def __len__(self) -> int:
        return 0
