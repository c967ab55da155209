"""Lightning: ``Trainer(logger=SteplineLogger(project="x"))``, with ``lightning.pytorch`` or ``pytorch_lightning``.

    from stepline.integrations.lightning import SteplineLogger
    trainer = lightning.Trainer(logger=SteplineLogger(project="mnist", log_checkpoints="best"))

Lightning passes the step (optimizer steps) and the epoch with every ``log_metrics`` call; keys map to
``train/``, ``eval/`` (``val_*``, ``val/*``) and ``test/``. Only rank zero records; other ranks get
Lightning's dummy experiment. ModelCheckpoint's default folder is ``<run folder>/checkpoints``.
"""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path
from typing import Any

from stepline.errors import warn
from stepline.integrations.tracked_run import TrackedRun, check_checkpoint_choice
from stepline.media import Image, Table
from stepline.metric_keys import metric_key
from stepline.model_facts import parameter_counts
from stepline.run import Run

# The Logger base classes of whichever Lightning packages are installed: a logger that is an instance
# of both works with either package's Trainer.
_bases: list[type] = []
try:
    from lightning.pytorch.loggers.logger import Logger as _LightningLogger
    from lightning.pytorch.loggers.logger import rank_zero_experiment
    from lightning.pytorch.utilities import rank_zero_only

    _bases.append(_LightningLogger)
except ImportError:
    pass
try:
    from pytorch_lightning.loggers.logger import Logger as _PytorchLightningLogger

    if not _bases:
        from pytorch_lightning.loggers.logger import rank_zero_experiment
        from pytorch_lightning.utilities import rank_zero_only
    _bases.append(_PytorchLightningLogger)
except ImportError:
    pass
if not _bases:
    raise ImportError("stepline's Lightning logger needs lightning or pytorch_lightning: "
                      "pip install 'stepline[lightning]'")

_FINAL_STATUS = {"success": "finished", "finished": "finished"}


class SteplineLogger(*_bases):  # type: ignore[misc]
    """A Lightning logger that records into a stepline run.

    Give ``run=`` to log into a run you opened yourself (you finish it), or the arguments of
    :func:`stepline.init`. Several ``fit``/``validate``/``test`` calls with one logger continue one run.
    """

    def __init__(self, project: str | None = None, name: str | None = None, *, run: Run | None = None,
                 log_checkpoints: str | None = None, dir: str | None = None, **init_args: Any) -> None:
        super().__init__()
        self._log_checkpoints = check_checkpoint_choice(log_checkpoints)
        self._tracked = TrackedRun(run, {"project": project, "name": name, "dir": dir, **init_args})
        self._checkpoint_callback: Any = None
        self._copied: dict[str, float] = {}
        self._tracked.record_node()  # Lightning calls a logger on rank zero only: other nodes start here

    # -- where things are --------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The project: with ``save_dir`` and ``version`` it makes the run's folder."""
        return self._tracked.project_and_root()[0]

    @property
    def version(self) -> str:
        """The run id (empty on ranks other than zero, which record nothing). Asking never reopens a run."""
        if rank_zero_only.rank != 0:  # type: ignore[attr-defined]
            return ""
        return self._tracked.run.id if self._tracked.run is not None else self.experiment.id

    @property
    def save_dir(self) -> str:
        """The logbook folder."""
        return str(self._tracked.project_and_root()[1])

    @property
    def root_dir(self) -> str:
        return str(Path(self.save_dir) / self.name)

    @property
    def log_dir(self) -> str:
        return str(Path(self.root_dir) / self.version)

    @property
    @rank_zero_experiment
    def experiment(self) -> Run:
        """The stepline Run; reopened when an earlier fit/validate/test finished it."""
        return self._tracked.get()

    # -- the Logger contract -------------------------------------------------------------------

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        values = dict(metrics)
        epoch = values.pop("epoch", None)
        self.experiment.log({metric_key(key): value for key, value in values.items()}, step=step, epoch=epoch)

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace | Any, *args: Any, **kwargs: Any) -> None:
        if type(params).__module__.startswith("omegaconf"):
            from omegaconf import OmegaConf

            params = OmegaConf.to_container(params, resolve=True)
        self.experiment.params.set(params)

    @rank_zero_only
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Lightning calls this at every fit: record the parameter counts and the model's structure."""
        run = self.experiment
        counts = parameter_counts(model)
        if counts:
            run.params.set(parameters=counts)
        run.files("model").save(repr(model), "structure.txt")

    @rank_zero_only
    def log_image(self, key: str, images: list[Any], step: int | None = None, **kwargs: Any) -> None:
        """Images at a step, as Lightning's W&B logger takes them (arrays, tensors, PIL images, figures or
        paths; each keyword a list as long as ``images``): ``logger.log_image("samples", [x, y],
        caption=["in", "out"])``."""
        images = list(images) if isinstance(images, (list, tuple)) else [images]
        captions = kwargs.pop("caption", None) or [None] * len(images)
        if len(captions) != len(images):
            warn(f"stepline: log_image({key!r}) got {len(images)} images and {len(captions)} captions; the images "
                 "are logged without captions")
            captions = [None] * len(images)
        if kwargs:
            warn(f"stepline: log_image({key!r}) keeps captions only; {sorted(kwargs)} are not kept")
        self.experiment.log({key: [Image(image, caption=caption) for image, caption in zip(images, captions)]},
                            step=step)

    @rank_zero_only
    def log_table(self, key: str, columns: list[str] | None = None, data: list[list[Any]] | None = None,
                  dataframe: Any = None, step: int | None = None) -> None:
        """A table at a step, from ``columns`` and ``data`` (rows) or a pandas ``dataframe``, as Lightning's W&B
        logger takes it: ``logger.log_table("preds", columns=["id", "label"], data=[[1, "cat"]])``."""
        table = Table(dataframe) if dataframe is not None else Table(rows=data, columns=columns)
        self.experiment.log({key: table}, step=step)

    @rank_zero_only
    def log_text(self, key: str, columns: list[str] | None = None, data: list[list[Any]] | None = None,
                 dataframe: Any = None, step: int | None = None) -> None:
        """Text as a table, as Lightning's W&B logger logs it: ``logger.log_text("samples", columns=["input",
        "output"], data=[["2 + 2", "4"]])``."""
        self.log_table(key, columns=columns, data=data, dataframe=dataframe, step=step)

    def save(self) -> None:
        """Lightning calls this after every ``log_metrics``: the writer thread already flushes, so nothing to do."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._tracked.run is None or self._tracked.run.status != "running":
            return
        if self._log_checkpoints == "best" and self._checkpoint_callback is not None:
            self._copy_checkpoints([self._checkpoint_callback.best_model_path])
        # Lightning finalizes with "failed" inside its exception handler: the exception tells failed from killed.
        self._tracked.end(None if status in _FINAL_STATUS else
                          sys.exc_info()[1] or f"Lightning finalized the run as {status!r}")

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self._checkpoint_callback = checkpoint_callback
        self.experiment.summary.update(
            best_model_path=checkpoint_callback.best_model_path or None,
            best_model_score=checkpoint_callback.best_model_score,
            last_model_path=getattr(checkpoint_callback, "last_model_path", None) or None,
            monitor=checkpoint_callback.monitor,
        )
        if self._log_checkpoints == "all":
            paths = [*checkpoint_callback.best_k_models, checkpoint_callback.best_model_path,
                     getattr(checkpoint_callback, "last_model_path", "")]
            self._copy_checkpoints(paths)

    def _copy_checkpoints(self, paths: list[str]) -> None:
        """Copy each checkpoint file not copied yet (or rewritten since, as ``last.ckpt`` is)."""
        for path in paths:
            if not path or not Path(path).is_file():
                continue
            modified = Path(path).stat().st_mtime
            if self._copied.get(path) != modified:
                self._copied[path] = modified
                self.experiment.files("checkpoints").add(path)
