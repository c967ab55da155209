"""stepline's exception hierarchy: every error stepline raises is a :class:`SteplineError`.

    try:
        stepline.init(project="../x")
    except stepline.SteplineError as err:
        print(err)
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
import weakref


class SteplineError(Exception):
    """Base class of every error stepline raises."""


class ConfigError(SteplineError, ValueError):
    """An argument or ``STEPLINE_*`` variable has a value stepline cannot use."""


class InvalidNameError(ConfigError):
    """A project, run, namespace or file name is unsafe or malformed."""


class InvalidValueError(SteplineError, TypeError):
    """A metric value is not a number (the call's other keys still land)."""


class NotFoundError(SteplineError, LookupError):
    """What was asked for (a run, a metric) is not there."""


class RunNotFoundError(NotFoundError):
    """No run in the logbook matches the id or name asked for."""


class MetricNotFoundError(NotFoundError):
    """The run has no metric of that key; the message names the closest keys it has."""


def metric_not_found(key: str, known: list[str], where: str) -> MetricNotFoundError:
    """The error for a metric key ``where`` lacks, naming the keys closest to it: a typo shows at once."""
    import difflib

    close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
    hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
    listed = ", ".join(map(repr, known[:20])) + (", ..." if len(known) > 20 else "") if known else "none"
    return MetricNotFoundError(f"{where} has no metric {key!r}{hint}. Its metrics: {listed}")


class ConflictError(SteplineError):
    """The request clashes with the state of what it names: deleting a running run, a file where a folder is."""


class MissingDependencyError(SteplineError, ImportError):
    """A feature needs a package that is not installed; the message gives the pip command."""


class PayloadTooLargeError(SteplineError):
    """A request body (or what it decompresses to) is over the server's limit."""


class LogbookError(SteplineError, OSError):
    """The logbook cannot be read or written (permissions, a file in the way, a corrupt record)."""


class SteplineWarning(UserWarning):
    """Something was refused or delayed, and training goes on: a bad value, a slow backend, a failing sink."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


# stepline's own threads (writer, shippers) -> the user's line that started them (the init call)
_THREAD_ORIGINS: weakref.WeakKeyDictionary[threading.Thread, tuple[str, int]] = weakref.WeakKeyDictionary()


def warn(message: str) -> None:
    """Issue a :class:`SteplineWarning` that points at the user's line, not at stepline's own code. From a
    thread of stepline's own, that is the line that started the run (see :func:`start_thread`)."""
    frame, level = sys._getframe(1), 2  # stacklevel 2 is our caller
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    origin = _THREAD_ORIGINS.get(threading.current_thread())
    if origin is not None and (frame is None or frame.f_code.co_filename == threading.__file__):
        warnings.warn_explicit(message, SteplineWarning, *origin)
        return
    warnings.warn(message, SteplineWarning, stacklevel=level)


def start_thread(target: object, name: str) -> threading.Thread:
    """Start a daemon thread of stepline's whose warnings point at the user's line that called us."""
    thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    _THREAD_ORIGINS[thread] = (frame.f_code.co_filename, frame.f_lineno)
    thread.start()
    return thread
