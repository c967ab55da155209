"""Optional dependencies, imported when a feature needs them, with an error that gives the install command.

    pandas = optional_import("pandas", "RunView.to_pandas()", "pip install 'stepline[pandas]'")
"""

from __future__ import annotations

import importlib
from types import ModuleType

from stepline.errors import MissingDependencyError


def optional_import(module: str, needed_by: str, install: str) -> ModuleType:
    """``module``, imported; :class:`MissingDependencyError` naming what needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(f"{needed_by} needs {module}, which is not installed: {install}") from None
