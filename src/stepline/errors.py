"""stepline's exception hierarchy: every error stepline raises is a :class:`SteplineError`.

    try:
        stepline.init(project="../x")
    except stepline.SteplineError as err:
        print(err)
"""

from __future__ import annotations

import os
import sys
import warnings


class SteplineError(Exception):
    """Base class of every error stepline raises."""


class ConfigError(SteplineError, ValueError):
    """An argument or ``STEPLINE_*`` variable has a value stepline cannot use."""


class InvalidNameError(ConfigError):
    """A project, run, namespace or file name is unsafe or malformed."""


class InvalidValueError(SteplineError, TypeError):
    """A metric value is not a number (the call's other keys still land)."""


class RunNotFoundError(SteplineError, LookupError):
    """No run in the logbook matches the id or name asked for."""


class RunFinishedError(SteplineError, RuntimeError):
    """A call that needs an open run was made after ``finish()``."""


class LogbookError(SteplineError, OSError):
    """The logbook cannot be read or written (permissions, a file in the way, a corrupt record)."""


class SteplineWarning(UserWarning):
    """Something was refused or delayed, and training goes on: a bad value, a slow backend, a failing sink."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str) -> None:
    """Issue a :class:`SteplineWarning` that points at the user's line, not at stepline's own code."""
    frame, level = sys._getframe(1), 2  # stacklevel 2 is our caller
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    warnings.warn(message, SteplineWarning, stacklevel=level)
