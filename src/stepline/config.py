"""Settings from arguments and ``STEPLINE_*`` variables (every one is listed in docs/configuration.md).

An argument wins over its variable; a variable wins over the default.

    settings = resolve_settings(project="mnist")
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stepline.errors import ConfigError
from stepline.names import check_label, check_project

DEFAULT_DIR = "stepline_logs"
# The writer rewrites a run's heartbeat this often; a `running` run whose heartbeat is older than
# HEARTBEAT_TIMEOUT is reported `crashed` (its process died without a word).
HEARTBEAT_INTERVAL = 10.0
HEARTBEAT_TIMEOUT = 60.0
DEFAULT_PROJECT = "default"
DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_QUEUE_MB = 256
DEFAULT_MAX_BACKLOG_MB = 128
SYSTEM_INTERVAL = 10.0
MIN_SYSTEM_INTERVAL = 0.1
MODES = ("enabled", "disabled")
_AUTO_RESUME = {"auto", "true", "1", "yes"}


@dataclass(frozen=True)
class Settings:
    root: Path
    project: str
    name: str | None
    mode: str
    resume: str | bool | None
    queue_size: int
    queue_bytes: int  # what the queued records hold in memory, at most (estimated): an image is large, a call small
    max_backlog_bytes: int
    system_interval: float | None  # seconds between two samples of the machine's figures; None: none taken


def resolve_settings(
    *,
    project: str | None = None,
    name: str | None = None,
    dir: str | os.PathLike[str] | None = None,
    resume: str | bool | None = None,
    mode: str | None = None,
    system_metrics: bool | None = None,
    system_interval: float | None = None,
) -> Settings:
    project = project if project is not None else os.environ.get("STEPLINE_PROJECT") or DEFAULT_PROJECT
    name = name if name is not None else os.environ.get("STEPLINE_RUN_NAME") or None
    mode = mode if mode is not None else os.environ.get("STEPLINE_MODE", "enabled").strip().lower() or "enabled"
    if mode not in MODES:
        raise ConfigError(f"STEPLINE_MODE / mode={mode!r} is not one of {', '.join(MODES)}")
    return Settings(
        root=logbook_root(dir),
        project=check_project(project),
        name=check_label(name, "run name") if name is not None else None,
        mode=mode,
        resume=_resume(resume),
        queue_size=_positive_int("STEPLINE_QUEUE_SIZE", DEFAULT_QUEUE_SIZE),
        queue_bytes=_positive_int("STEPLINE_QUEUE_MB", DEFAULT_QUEUE_MB) << 20,
        max_backlog_bytes=_positive_int("STEPLINE_MAX_BACKLOG_MB", DEFAULT_MAX_BACKLOG_MB) << 20,
        system_interval=system_sampling(system_metrics, system_interval),
    )


def system_sampling(enabled: bool | None = None, interval: float | None = None) -> float | None:
    """Seconds between two samples of the machine's figures, or None for none: ``enabled`` else
    ``STEPLINE_SYSTEM_METRICS`` (on by default), ``interval`` else ``STEPLINE_SYSTEM_INTERVAL`` (10)."""
    if enabled is None:
        raw = os.environ.get("STEPLINE_SYSTEM_METRICS", "1").strip().lower()
        if raw not in ("0", "1", "false", "true", "no", "yes", "off", "on"):
            raise ConfigError(f"STEPLINE_SYSTEM_METRICS={raw!r} must be 1 (record the machine's figures) or 0")
        enabled = raw in ("1", "true", "yes", "on")
    elif not isinstance(enabled, bool):
        raise ConfigError(f"system_metrics must be True or False, got {enabled!r}")
    if interval is None:
        interval = _seconds("STEPLINE_SYSTEM_INTERVAL", SYSTEM_INTERVAL, zero_allowed=False)
    elif isinstance(interval, bool) or not isinstance(interval, (int, float)):
        raise ConfigError(f"system_interval must be a number of seconds, got {interval!r}")
    if not interval >= MIN_SYSTEM_INTERVAL:
        raise ConfigError(f"system_interval / STEPLINE_SYSTEM_INTERVAL must be at least {MIN_SYSTEM_INTERVAL} s, "
                          f"got {interval!r}")
    return float(interval) if enabled else None


def logbook_root(dir: str | os.PathLike[str] | None = None) -> Path:
    """The logbook folder: ``dir``, else ``STEPLINE_DIR``, else ``./stepline_logs``."""
    return Path(dir if dir is not None else os.environ.get("STEPLINE_DIR") or DEFAULT_DIR).expanduser()


REMOTE_FINISH_TIMEOUT = 30.0


def remote_finish_timeout() -> float:
    """Seconds ``finish()`` without a timeout waits for remote backends before it says what is unsent."""
    return _seconds("STEPLINE_REMOTE_TIMEOUT", REMOTE_FINISH_TIMEOUT, zero_allowed=True)


def heartbeat_interval() -> float:
    """Seconds between two heartbeats of a running run (``STEPLINE_HEARTBEAT_INTERVAL``, 10 by default)."""
    return _seconds("STEPLINE_HEARTBEAT_INTERVAL", HEARTBEAT_INTERVAL, zero_allowed=False)


def heartbeat_timeout() -> float:
    """Seconds without a heartbeat after which a `running` run is reported `crashed`."""
    return _seconds("STEPLINE_HEARTBEAT_TIMEOUT", HEARTBEAT_TIMEOUT, zero_allowed=False)


def logbook_index_enabled() -> bool:
    """Whether a run's writer keeps the logbook's index (``STEPLINE_LOGBOOK_INDEX=0`` turns it off: readers then
    read every point from metrics.jsonl, which is slow on large runs)."""
    raw = os.environ.get("STEPLINE_LOGBOOK_INDEX", "1").strip().lower()
    if raw not in ("0", "1", "false", "true", "no", "yes", "off", "on"):
        raise ConfigError(f"STEPLINE_LOGBOOK_INDEX={raw!r} must be 1 (keep the index) or 0 (keep none)")
    return raw in ("1", "true", "yes", "on")


DEFAULT_SERVER_CACHE_MB = 256


def server_cache_bytes(megabytes: int | None = None) -> int:
    """The memory the server may keep runs' points in: ``megabytes``, else ``STEPLINE_SERVER_CACHE_MB``."""
    if megabytes is not None:
        if megabytes <= 0:
            raise ConfigError(f"the server's cache must be a positive number of MB, got {megabytes}")
        return megabytes << 20
    return _positive_int("STEPLINE_SERVER_CACHE_MB", DEFAULT_SERVER_CACHE_MB) << 20


def _seconds(variable: str, default: float, zero_allowed: bool) -> float:
    raw = os.environ.get(variable)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0 or (value == 0 and not zero_allowed):
        least = "0 or more" if zero_allowed else "more than 0"
        raise ConfigError(f"{variable}={raw!r} must be a number of seconds, {least}")
    return value


def _resume(resume: str | bool | None) -> str | bool | None:
    if resume is None:
        resume = os.environ.get("STEPLINE_RESUME") or None
    if isinstance(resume, str) and resume.strip().lower() in _AUTO_RESUME:
        return True
    if isinstance(resume, str) and resume.strip().lower() in ("false", "0", "no", "never"):
        return None
    if resume is False:
        return None
    if resume is not None and not isinstance(resume, (str, bool)):
        raise ConfigError(f"resume must be a run id or name, or True, got {type(resume).__name__}")
    return resume


def _positive_int(variable: str, default: int) -> int:
    raw = os.environ.get(variable)
    if raw is None:
        return default
    if not raw.strip().isdigit() or int(raw) <= 0:
        raise ConfigError(f"{variable}={raw!r} must be a positive whole number")
    return int(raw)
