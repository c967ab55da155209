"""Keras 3: ``model.fit(..., callbacks=[SteplineCallback(project="x")])``, on any backend.

    from stepline.integrations.keras import SteplineCallback
    model.fit(x, y, epochs=5, validation_split=0.2, callbacks=[SteplineCallback(project="mnist")])

Imports ``keras`` only (never tensorflow). The x-axis is the number of batches trained on (the
optimizer's iteration count); every point carries the epoch as fractional progress (1.0 at the end of
the first epoch). ``val_*`` go to ``eval/``, ``evaluate()`` outside ``fit`` to ``test/``.
"""

from __future__ import annotations

import io
from typing import Any

import keras

from stepline.errors import ConfigError
from stepline.integrations.keras_predictions import PREDICTIONS_KEY, PredictionImages
from stepline.integrations.tracked_run import TrackedRun
from stepline.metric_keys import metric_key
from stepline.run import Run


class SteplineCallback(keras.callbacks.Callback):
    """Tracks a Keras ``fit``: params, epoch (or every-N-batch) metrics, the learning rate, evaluation, status.

    ``log_every="epoch"`` (the default) logs at each epoch's end and adds no batch hook; ``log_every=N``
    also logs every N batches the running averages Keras reports, as ``train/<name>_running_mean``.
    ``predictions_of=(x_val[:8], y_val[:8])`` (a fixed batch of images, targets optional) logs the model's
    predictions on it every ``predictions_every`` epochs as the gallery ``eval/predictions``: each input with
    its predicted class (and the true one) as caption, or the predicted image for a model that outputs images.
    Give ``run=`` to log into your own run (you finish it), or the arguments of :func:`stepline.init`.
    """

    def __init__(self, run: Run | None = None, *, log_every: str | int = "epoch", predictions_of: Any = None,
                 predictions_every: int = 1, **init_args: Any) -> None:
        super().__init__()
        if log_every != "epoch" and not (isinstance(log_every, int) and log_every > 0):
            raise ConfigError(f"log_every={log_every!r} must be 'epoch' or a positive number of batches")
        if not (isinstance(predictions_every, int) and predictions_every > 0):
            raise ConfigError(f"predictions_every={predictions_every!r} must be a positive number of epochs")
        self._predictions = PredictionImages(predictions_of) if predictions_of is not None else None
        self._predictions_every = predictions_every
        self._tracked = TrackedRun(run, init_args)
        self._log_every = log_every
        self._in_fit = False
        self._epoch = 0
        # Keras calls batch hooks only when a callback overrides them, and may call them from worker
        # threads when every callback is async_safe: the batch hook exists only when asked for, and is
        # then called in order, on the training thread.
        self.async_safe = log_every == "epoch"
        if log_every != "epoch":
            self.on_train_batch_end = self._on_train_batch_end

    @property
    def run(self) -> Run | None:
        """The run being recorded into, once training has begun."""
        return self._tracked.run

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._in_fit = True
        run = self._open_run()
        params = {key: value for key, value in (self.params or {}).items() if key != "verbose"}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            params["optimizer"] = {"class": type(optimizer).__name__, **optimizer.get_config()}
        params["parameters"] = {"total": int(self.model.count_params()),
                                "trainable": int(sum(_size(w) for w in self.model.trainable_weights))}
        run.params.set(fit=params)
        run.files("model").save(_summary(self.model), "summary.txt")

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        values = {metric_key(key): value for key, value in (logs or {}).items()}
        values["train/learning_rate"] = self._learning_rate()
        if self._predictions is not None and (epoch + 1) % self._predictions_every == 0:
            values[PREDICTIONS_KEY] = self._predictions.of(self.model)
        self._open_run().log(values, step=self._step(), epoch=epoch + 1)

    def _on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if (batch + 1) % int(self._log_every) or not logs:
            return
        values = {f"{metric_key(key)}_running_mean": value for key, value in logs.items()}
        values["train/learning_rate"] = self._learning_rate()
        steps = (self.params or {}).get("steps")
        epoch = self._epoch + (batch + 1) / steps if steps else None
        self._open_run().log(values, step=self._step(), epoch=epoch)

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._in_fit or not logs:
            return  # validation inside fit reaches on_epoch_end as val_* already
        self._open_run().log({metric_key(key, "test"): value for key, value in logs.items()}, step=self._step())
        self._tracked.end()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._in_fit = False
        self._tracked.end()

    def _open_run(self) -> Run:
        return self._tracked.get()  # reopened for evaluate() or another fit() after fit() finished the run

    def _step(self) -> int:
        optimizer = getattr(self.model, "optimizer", None)
        # int() and float() read a scalar on every backend without the numpy round trip.
        return int(optimizer.iterations) if optimizer is not None else 0

    def _learning_rate(self) -> float:
        # Keras evaluates a schedule at the current iteration when the property is read.
        return float(self.model.optimizer.learning_rate)


def _size(weight: Any) -> int:
    count = 1
    for dimension in weight.shape:
        count *= int(dimension)
    return count


def _summary(model: Any) -> str:
    lines = io.StringIO()
    model.summary(print_fn=lambda line, **_: lines.write(line + "\n"))
    return lines.getvalue()
