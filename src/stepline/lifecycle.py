"""Process-wide bookkeeping of open runs, so each ends with the right status however the process ends.

- normal exit (atexit): ``finished``
- an uncaught exception (sys.excepthook): ``failed`` with its traceback; KeyboardInterrupt (SIGINT): ``killed``
- SIGTERM: ``killed``, then the signal's previous handler runs (or the process dies of it, as it would have)
- ``kill -9``: nothing can run; readers report ``crashed`` once the heartbeat goes stale
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import traceback
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stepline.run import Run

# How long a dying process waits for each run's records to reach the logbook.
END_TIMEOUT = 10.0

_open_runs: list[Run] = []
_lock = threading.Lock()
_installed = False
_previous_excepthook = sys.excepthook
_previous_sigterm: Any = signal.SIG_DFL


def remember(run: Run) -> None:
    """Track ``run`` until it ends; the most recent open run is the module-level API's current run."""
    _install_hooks()
    with _lock:
        _open_runs.append(run)


def forget(run: Run) -> None:
    with _lock:
        if run in _open_runs:
            _open_runs.remove(run)


def current() -> Run | None:
    with _lock:
        return _open_runs[-1] if _open_runs else None


def _end_all(status: str, error: dict[str, Any] | None) -> None:
    with _lock:
        runs = list(reversed(_open_runs))
    for run in runs:
        run.end(status, error, END_TIMEOUT)


def _install_hooks() -> None:
    global _installed, _previous_excepthook, _previous_sigterm
    if _installed:
        return
    _installed = True
    atexit.register(_end_all, "finished", None)
    _previous_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGTERM)
        if previous is not signal.SIG_IGN:
            _previous_sigterm = previous
            signal.signal(signal.SIGTERM, _on_sigterm)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)  # run.py detaches the runs themselves


def _excepthook(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
    _end_all(status_for_exception(error), describe_error(error))
    _previous_excepthook(kind, error, trace)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _end_all("killed", {"type": "SIGTERM", "message": "the process received SIGTERM", "traceback": None})
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
    elif previous in (signal.SIG_DFL, None):
        # Die of the signal, as the process would have without us, so the exit status says SIGTERM.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    _open_runs.clear()


def status_for_exception(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "killed"
    if isinstance(error, SystemExit) and error.code in (0, None):
        return "finished"
    return "failed"


def describe_error(error: BaseException | str | None) -> dict[str, Any] | None:
    if error is None:
        return None
    if isinstance(error, str):
        return {"type": None, "message": error, "traceback": None}
    if isinstance(error, SystemExit) and error.code in (0, None):
        return None
    return {
        "type": type(error).__name__,
        "message": str(error),
        "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__)),
    }

