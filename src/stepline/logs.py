"""``run.logs``: leveled log lines with structured context.

    run.logs.info("epoch done", epoch=3, loss=0.21)
    run.warning("learning rate is high", lr=0.5)    # shortcut on the run
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from stepline import events
from stepline.errors import ConfigError
from stepline.values import to_json_safe

if TYPE_CHECKING:
    from stepline.channel import RunChannel

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class Logs:
    """The run's log lines."""

    def __init__(self, run: RunChannel) -> None:
        self._run = run

    def log(self, message: str, level: str = "INFO", **context: Any) -> None:
        """Record ``message`` at ``level``: ``run.logs.log("ready", level="DEBUG", shard=3)``."""
        level = str(level).upper()
        if level not in LEVELS:
            raise ConfigError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
        record: dict[str, Any] = {
            "type": events.LOG,
            "seq": None,
            "time": time.time(),
            "level": level,
            "message": message if isinstance(message, str) else str(message),
        }
        if context:
            record["context"], _ = to_json_safe(context)
        self._run.put(record)

    def debug(self, message: str, **context: Any) -> None:
        """``run.logs.debug("batch shapes", x=[8, 32])``"""
        self.log(message, "DEBUG", **context)

    def info(self, message: str, **context: Any) -> None:
        """``run.logs.info("epoch done", epoch=1)``"""
        self.log(message, "INFO", **context)

    def warning(self, message: str, **context: Any) -> None:
        """``run.logs.warning("loss spiked", loss=9.1)``"""
        self.log(message, "WARNING", **context)

    def error(self, message: str, **context: Any) -> None:
        """``run.logs.error("eval failed", reason="OOM")``"""
        self.log(message, "ERROR", **context)
