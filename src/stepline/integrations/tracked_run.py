"""The run policy every integration shares, so each framework module only translates its events.

    tracked = TrackedRun(run, init_args)      # the user's run (they finish it), or init arguments
    tracked.get().log({"train/loss": 0.3}, step=10)   # opened on first use, reopened if a fit finished it
    tracked.end()                              # finish a run we opened; flush the user's

A name problem never stops training: a project or run name that :func:`stepline.init` refuses is
replaced by a safe one, with a warning that says which.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import stepline
from stepline.config import resolve_settings
from stepline.errors import ConfigError, InvalidNameError, warn
from stepline.job import job_placement
from stepline.names import safe_name
from stepline.run import Run

CHECKPOINT_CHOICES = (None, "best", "all")


def check_checkpoint_choice(log_checkpoints: str | None) -> str | None:
    """``log_checkpoints`` of an integration, checked: ``None``, ``"best"`` or ``"all"``."""
    if log_checkpoints not in CHECKPOINT_CHOICES:
        raise ConfigError(f"log_checkpoints={log_checkpoints!r} must be None, 'best' or 'all'")
    return log_checkpoints


class TrackedRun:
    """The run an integration records into: given by the user, or opened from ``init_args`` on first use."""

    def __init__(self, run: Run | None, init_args: dict[str, Any]) -> None:
        self.run = run
        self.owned = run is None  # a run we opened is ours to finish; the user's run is theirs
        self.init_args = {key: value for key, value in init_args.items() if value is not None}

    def get(self) -> Run:
        """The run, opened now if there is none, reopened if an earlier fit/train of ours finished it."""
        if self.run is None:
            return self.start()
        if self.run.status != "running" and self.owned:
            self.run = stepline.reopen(self.run)
        return self.run

    def start(self, **overrides: Any) -> Run:
        """A new run of ours (a search's next trial, say), from the init arguments and ``overrides``."""
        arguments = {**self.init_args, **{k: v for k, v in overrides.items() if v is not None}}
        try:
            self.run = stepline.init(**arguments)
        except InvalidNameError as err:
            for field in ("project", "name"):
                if isinstance(arguments.get(field), str):
                    arguments[field] = safe_name(arguments[field])
            warn(f"stepline: {err}; training goes on, recorded as project {arguments.get('project')!r} and run "
                 f"name {arguments.get('name')!r}")
            self.run = stepline.init(**arguments)
        self.owned = True
        return self.run

    def record_node(self) -> None:
        """On a node's local rank zero in a job over several nodes (not rank zero's node), open the run that
        records this machine's figures into the job's run (stepline/job.py); elsewhere, nothing. It ends at
        :meth:`end`, or with the process."""
        if self.run is None and job_placement().records_node:
            self.start()

    def record(self, action: Callable[[Run], None]) -> None:
        """Apply ``action`` to the run; after training finished ours (an evaluate() or predict() after fit),
        reopen it for the call and finish it again, so its status stays finished."""
        ended = self.run is not None and self.owned and self.run.status != "running"
        action(self.get())
        if ended:
            self.end()

    def end(self, error: BaseException | str | None = None) -> None:
        """Finish (or, with ``error``, fail) a run of ours; flush the user's, which they finish."""
        if self.run is None or self.run.status != "running":
            return
        if not self.owned:
            self.run.flush()
        elif error is not None:
            self.run.fail(error)
        else:
            self.run.finish()

    def project_and_root(self) -> tuple[str, Path]:
        """Where the run is or will be: its project and logbook folder, known before it is opened."""
        if self.run is not None and self.run.path is not None:
            return self.run.project, self.run.path.parent.parent
        project, folder = self.init_args.get("project"), self.init_args.get("dir")
        try:
            settings = resolve_settings(project=project, dir=folder)
        except InvalidNameError:  # start() will record under the safe name: say the same here
            settings = resolve_settings(project=safe_name(str(project)), dir=folder)
        return settings.project, settings.root
