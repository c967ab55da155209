"""The runs of processes that do not record the training: every rank but zero, and the disabled mode. On a
node's local rank zero in a job over several nodes, the run records that machine's figures.

    run = stepline.init(project="x")   # on rank 3: a DisabledRun (or a NodeRun on node 1's local rank zero)
    run.log({"loss": 0.1})             # records nothing
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from stepline.run import METRICS_TAG, Run
from stepline.run_queue import RunQueue


class DisabledRun(Run):
    """What ``init`` returns when ``STEPLINE_MODE=disabled`` or on a rank other than zero: every call is a no-op.

        run = stepline.init(mode="disabled"); run.log({"loss": 1.0})   # records nothing
    """

    def log(self, metrics: Mapping[str, Any], step: int | None = None, *, epoch: float | None = None) -> None:
        pass


class NodeRun(Run):
    """What ``init`` returns on a node's local rank zero in a job over several nodes (other than global rank
    zero's node): it records this machine's figures into the job run's part for the node; every other call is a
    no-op, as on any rank other than zero. Its steps count its samples (a node does not know the training's).
    """

    def __init__(self, **arguments: Any) -> None:
        self._samples = 0
        super().__init__(**arguments)
        self._queue = RunQueue(None)  # its own calls record nothing; its samples go straight to the writer

    def log(self, metrics: Mapping[str, Any], step: int | None = None, *, epoch: float | None = None) -> None:
        pass

    def _record_system(self, figures: dict[str, float]) -> None:
        if self._writer is not None:
            self._writer.items.append((METRICS_TAG, time.time(), self._next_step + self._samples, None,
                                       self._placed(figures)))
            self._samples += 1
