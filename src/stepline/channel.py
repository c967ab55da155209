"""What a run's collaborators (params, summary, logs, files, metrics namespaces) may ask of their run: the
one narrow interface between them and :class:`stepline.run.Run`, so that they never reach into its private
state and the dependencies point one way (run -> collaborators -> channel).

    channel = RunChannel(run_id="a1b2c3d4", path=path, put=queue_record, warn_once=warn_once,
                         flush=flush, log=log)
    Params(channel).set(lr=0.1)   # queues a params record through channel.put
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunChannel:
    run_id: str
    path: Path | None  # None for a run that records nothing (disabled, another rank)
    put: Callable[[dict[str, Any]], None]  # queue one params, log, summary or file record
    warn_once: Callable[[Any, str], None]  # one warning per key for the run's lifetime
    flush: Callable[[], bool]  # wait until what was queued is in the logbook
    log: Callable[..., None]  # run.log, for the metrics namespaces: log(values, step=..., epoch=...)

