"""Hugging Face Trainer: ``Trainer(..., callbacks=[SteplineCallback(project="x")])``.

    from stepline.integrations.transformers import SteplineCallback
    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[SteplineCallback(project="bert")])

The x-axis is ``state.global_step`` (optimizer steps, so gradient accumulation counts once per update);
every point carries ``state.epoch``. Only world process zero records.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from stepline.integrations.tracked_run import TrackedRun, check_checkpoint_choice
from stepline.metric_keys import metric_key
from stepline.model_facts import parameter_counts, without_secrets
from stepline.run import Run

# What Trainer logs once at the end of train(): the run's summary, not a point on a curve.
END_OF_TRAINING_KEYS = frozenset(
    {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss"}
)


class SteplineCallback(TrainerCallback):
    """Tracks a Trainer's run: params, metrics, evaluation and prediction results, checkpoints, status.

    Give ``run=`` to log into a run you opened yourself (you finish it), or the arguments of
    :func:`stepline.init` to let the callback open one at ``on_train_begin`` and finish it at the end.
    ``log_checkpoints="best"`` keeps the best checkpoint in the run's files, ``"all"`` every saved one.
    """

    def __init__(self, run: Run | None = None, *, log_checkpoints: str | None = None, **init_args: Any) -> None:
        self._log_checkpoints = check_checkpoint_choice(log_checkpoints)
        self._tracked = TrackedRun(run, init_args)
        self._trials_started = 0

    @property
    def run(self) -> Run | None:
        """The run being recorded into, once training has begun."""
        return self._tracked.run

    # -- events ----------------------------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            if state.is_local_process_zero and self._tracked.run is None:
                self._start(args, state)  # another node's: it records that machine's figures (stepline/job.py)
            return
        # In a hyperparameter search every train() is a trial, and every trial is a run of its own.
        if self._tracked.run is None or state.trial_params is not None:
            self._start(args, state)
        run = self._tracked.get()  # a second train() with this callback continues its run
        self._record_setup(run, args, state, model)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        if END_OF_TRAINING_KEYS & logs.keys():
            self._record(args, state, lambda run: run.summary.update(logs))
            return
        values = {metric_key(key): value for key, value in logs.items() if key != "epoch"}
        epoch = logs.get("epoch", state.epoch)
        self._record(args, state, lambda run: run.log(values, step=state.global_step, epoch=epoch))

    def on_predict(self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
        if not state.is_world_process_zero or not metrics:
            return
        values = {metric_key(key, "test"): value for key, value in metrics.items()}
        self._record(args, state, lambda run: run.log(values, step=state.global_step, epoch=state.epoch))

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero and self._log_checkpoints == "all":
            self._add_checkpoint(Path(args.output_dir) / f"checkpoint-{state.global_step}")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._tracked.run is None:
            return
        if not state.is_world_process_zero:
            self._tracked.end()
            return
        if state.best_model_checkpoint:
            self._tracked.run.summary.update(best_model_checkpoint=state.best_model_checkpoint,
                                             best_metric=state.best_metric, global_step=state.global_step)
            if self._log_checkpoints == "best":
                self._add_checkpoint(Path(state.best_model_checkpoint))
        self._tracked.end()

    # -- helpers ---------------------------------------------------------------------------------

    def _start(self, args: Any, state: Any) -> None:
        name = self._tracked.init_args.get("name")
        if state.trial_params is not None:
            self._trials_started += 1
            name = state.trial_name or f"{name or 'trial'}-{self._trials_started}"
        elif name is None and args.run_name and args.run_name != args.output_dir:
            name = args.run_name
        self._tracked.start(name=name)

    def _record(self, args: Any, state: Any, action: Callable[[Run], None]) -> None:
        if self._tracked.run is None:
            self._start(args, state)
        self._tracked.record(action)

    def _record_setup(self, run: Run, args: Any, state: Any, model: Any) -> None:
        params: dict[str, Any] = {"training_args": without_secrets(args.to_dict())}
        config = getattr(model, "config", None)
        if config is not None:
            params["model_config"] = config if isinstance(config, dict) else config.to_dict()
        peft_config = getattr(model, "peft_config", None)
        if peft_config:
            params["peft_config"] = peft_config
        counts = parameter_counts(model)
        if counts:
            params["parameters"] = counts
        if state.trial_params is not None:
            params["trial"] = state.trial_params
        run.params.set(params)

    def _add_checkpoint(self, folder: Path) -> None:
        if self._tracked.run is not None and folder.is_dir():
            self._tracked.run.files("checkpoints").add(folder)

