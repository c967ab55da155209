"""stepline: track machine-learning training runs.

    import stepline

    run = stepline.init(project="mnist", config={"lr": 1e-3})
    for step in range(100):
        run.log({"train/loss": 1 / (step + 1)}, step=step)
    run.finish()

    book = stepline.Logbook()            # read it back
    print(book.run(run.id).series("train/loss").values[-1])
"""

__version__ = "0.1.0"

from stepline.api import current_run, finish, init, log  # noqa: E402
from stepline.errors import (  # noqa: E402
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
from stepline.logbook import Logbook, RunView, Series  # noqa: E402
from stepline.run import Run  # noqa: E402

__all__ = [
    "ConfigError",
    "ConflictError",
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
    "__version__",
    "current_run",
    "finish",
    "init",
    "log",
]
