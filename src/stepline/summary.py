"""``run.summary``: the run's final figures (a trainer's runtime, the best score), kept in its metadata.

    run.summary.update(train_runtime=12.5, best_eval_loss=0.31)
    run.summary.read()   # {"train_runtime": 12.5, "best_eval_loss": 0.31}
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stepline import events
from stepline.values import decode_params, to_json_safe

if TYPE_CHECKING:
    from stepline.channel import RunChannel


class Summary:
    """Key-value figures about the whole run; a later ``update`` of a key replaces it."""

    def __init__(self, run: RunChannel, state: dict[str, Any] | None = None) -> None:
        self._run = run
        self._state: dict[str, Any] = dict(state or {})

    def update(self, values: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """``run.summary.update({"train_runtime": 12.5})`` or ``run.summary.update(best_acc=0.93)``."""
        safe, lossy = to_json_safe({**(values or {}), **more})
        if lossy:
            self._run.warn_once(("summary", tuple(lossy)), f"summary {', '.join(lossy)} stored as repr()")
        if safe:
            self._state.update(safe)
            self._run.put({"type": events.SUMMARY, "seq": None, "time": time.time(), "data": safe})

    def read(self) -> dict[str, Any]:
        """The summary as it stands now."""
        return decode_params(dict(self._state))
