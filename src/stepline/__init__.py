"""stepline: track machine-learning training runs.

    import stepline

    run = stepline.init(project="mnist", config={"lr": 1e-3})
    for step in range(100):
        run.log({"train/loss": 1 / (step + 1)}, step=step)
    run.finish()

    book = stepline.Logbook()            # read it back
    print(book.run(run.id).series("train/loss").values[-1])
"""

from stepline.api import current_run, finish, init, log, reopen
from stepline.errors import (
    ConfigError,
    ConflictError,
    InvalidNameError,
    InvalidValueError,
    LogbookError,
    MetricNotFoundError,
    MissingDependencyError,
    NotFoundError,
    RunNotFoundError,
    SteplineError,
    SteplineWarning,
)
from stepline.logbook import Logbook, RunView, Series
from stepline.media import Audio, Histogram, Image, Table, Text
from stepline.run import Run
from stepline.version import __version__

__all__ = [
    "Audio",
    "ConfigError",
    "ConflictError",
    "Histogram",
    "Image",
    "InvalidNameError",
    "InvalidValueError",
    "Logbook",
    "LogbookError",
    "MetricNotFoundError",
    "MissingDependencyError",
    "NotFoundError",
    "Run",
    "RunNotFoundError",
    "RunView",
    "Series",
    "SteplineError",
    "SteplineWarning",
    "Table",
    "Text",
    "__version__",
    "current_run",
    "finish",
    "init",
    "log",
    "reopen",
]
