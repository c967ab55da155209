"""The contract every sink fulfils. A sink is only ever called from its run's writer thread."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stepline.metrics_batch import MetricsBatch


class Sink(ABC):
    """Receives batches of records (see :mod:`stepline.events`) in ``seq`` order.

    ``write`` may raise ``OSError`` for a storage trouble (the writer keeps the batch in memory and retries it
    later; an ``OSError`` with ``records_written = n`` says the batch's first ``n`` records need no retry) or
    any other exception for a bug (the writer warns and stops using the sink).

        class PrintSink(Sink):
            name = "print"
            def write(self, records): print(records)
    """

    name: str = "sink"

    @abstractmethod
    def write(self, records: list[dict[str, Any]]) -> None:
        """Deliver a batch. File records carry their content under ``data`` (bytes) or ``source`` (a path)."""

    def write_metrics(self, batch: MetricsBatch) -> None:
        """Deliver a batch of plain metrics calls, a native segment's (the writer's common batch); a sink with no
        faster way to take it writes its records."""
        self.write(batch.records)

    def flush(self) -> None:  # noqa: B027 (optional hook: a sink that buffers nothing needs no flush)
        """Make everything written so far durable against the death of this process."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Flush and release resources; called once, after the last ``write``."""
