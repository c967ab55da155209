"""``run.metrics``: namespaced metric logging and collect-then-aggregate.

    train = run.metrics("train")
    train.log(loss=0.3, step=10)                 # key "train/loss"
    for batch in loader:
        train.collect(loss=batch_loss)
    train.flush(aggregation="mean", step=epoch)  # one point: the mean of what was collected
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stepline.errors import ConfigError, InvalidValueError
from stepline.names import check_name
from stepline.values import coerce_metric

if TYPE_CHECKING:
    from stepline.channel import RunChannel

SEPARATOR = "/"


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


AGGREGATIONS: dict[str, Callable[[list[Any]], Any]] = {
    "mean": _mean,
    "sum": math.fsum,
    "min": min,
    "max": max,
    "last": lambda values: values[-1],
}


class MetricsLogger:
    """Logs metrics under an optional namespace; ``run.metrics`` is the one without a namespace."""

    def __init__(self, run: RunChannel, namespace: str = "") -> None:
        self._run = run
        self._prefix = namespace + SEPARATOR if namespace else ""
        self._collected: dict[str, list[Any]] = {}

    def __call__(self, namespace: str) -> MetricsLogger:
        """A logger whose keys start with ``namespace/``: ``run.metrics("eval").log(acc=0.9)`` logs ``eval/acc``."""
        for part in namespace.split(SEPARATOR):
            check_name(part, "metrics namespace")
        return MetricsLogger(self._run, self._prefix + namespace)

    def log(self, step: int | None = None, *, epoch: float | None = None, **values: Any) -> None:
        """Log one point of each value: ``run.metrics.log(step=3, loss=0.2, acc=0.9)``."""
        if self._prefix:
            values = {self._prefix + key: value for key, value in values.items()}
        self._run.log(values, step=step, epoch=epoch)

    def collect(self, **values: Any) -> None:
        """Keep values for a later :meth:`flush`; nothing is logged yet."""
        for key, value in values.items():
            try:
                number = coerce_metric(self._prefix + key, value)
            except InvalidValueError as err:
                self._run.warn_once(("collect", key), str(err))
                continue
            self._collected.setdefault(key, []).append(number)

    def flush(
        self, aggregation: str = "mean", step: int | None = None, *, epoch: float | None = None, **more: Any
    ) -> None:
        """Log one aggregate of each collected key (plus ``more`` as they are), then forget what was collected."""
        reduce = AGGREGATIONS.get(aggregation)
        if reduce is None:
            raise ConfigError(f"aggregation={aggregation!r} is not one of {', '.join(AGGREGATIONS)}")
        values: dict[str, Any] = {}
        for key, numbers in self._collected.items():
            numbers = [n.resolve() if hasattr(n, "resolve") else n for n in numbers]
            values[key] = reduce(numbers)
        values.update(more)
        self._collected = {}
        if values:
            self.log(step=step, epoch=epoch, **values)
