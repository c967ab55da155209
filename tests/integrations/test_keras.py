"""A real Keras 3 fit with stepline's callback: read back what landed."""

from __future__ import annotations

import importlib.util
import json
import os

import keras
import numpy as np
import pytest

import stepline
from stepline import Logbook
from stepline.integrations.keras import SteplineCallback
from tests.conftest import REPO, run_python

pytestmark = pytest.mark.slow


def data(size=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(size, 4)).astype("float32")
    return x, x.sum(axis=1, keepdims=True)


def tiny_model(learning_rate=0.01):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=learning_rate), loss="mse", metrics=["mae"])
    return model


def test_epoch_metrics_at_batches_seen_with_eval_and_params(logdir):
    callback = SteplineCallback(project="keras", dir=logdir)
    model = tiny_model()
    history = model.fit(*data(), batch_size=8, epochs=3, validation_data=data(16, 1), verbose=0,
                        callbacks=[callback])
    view = Logbook(logdir).run(callback.run.id)
    loss, val = view.series("train/loss"), view.series("eval/loss")
    assert loss.steps == [8, 16, 24] and loss.epochs == [1, 2, 3]  # 64 samples in batches of 8
    assert loss.values == pytest.approx(history.history["loss"])
    assert val.steps == [8, 16, 24] and val.values == pytest.approx(history.history["val_loss"])
    assert view.series("eval/mae").values == pytest.approx(history.history["val_mae"])
    assert view.series("train/learning_rate").values == pytest.approx([0.01] * 3)
    params = view.params()["fit"]
    assert params["epochs"] == 3 and params["steps"] == 8
    assert params["optimizer"]["class"] == "SGD" and params["optimizer"]["learning_rate"] == pytest.approx(0.01)
    assert params["parameters"] == {"total": model.count_params(), "trainable": model.count_params()}
    assert "dense" in (view.path / "files/model/summary.txt").read_text().lower()
    assert view.status == "finished"


def test_epoch_logging_adds_no_batch_hook():
    from keras.src.utils.python_utils import is_default

    assert is_default(SteplineCallback(project="x").on_train_batch_end)
    assert SteplineCallback(project="x").async_safe is True
    batches = SteplineCallback(project="x", log_every=2)
    assert not is_default(batches.on_train_batch_end) and batches.async_safe is False


def test_every_n_batches_logs_running_means_and_a_schedule(logdir):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule), loss="mse")
    callback = SteplineCallback(project="keras", dir=logdir, log_every=4)
    model.fit(*data(), batch_size=8, epochs=2, verbose=0, callbacks=[callback])
    view = Logbook(logdir).run(callback.run.id)
    running = view.series("train/loss_running_mean")
    assert running.steps == [4, 8, 12, 16] and running.epochs == [0.5, 1.0, 1.5, 2.0]
    lr = view.series("train/learning_rate")
    assert lr.steps == [4, 8, 8, 12, 16, 16]  # batch points, and the epoch-end points at 8 and 16
    assert lr.values == pytest.approx([0.1 * 0.5**s for s in lr.steps])


def test_evaluate_after_fit_lands_as_test_in_the_same_run(logdir):
    callback = SteplineCallback(project="keras", dir=logdir)
    model = tiny_model()
    model.fit(*data(), batch_size=8, epochs=1, verbose=0, callbacks=[callback])
    result = model.evaluate(*data(16, 2), verbose=0, return_dict=True, callbacks=[callback])
    runs = Logbook(logdir).runs("keras")
    assert len(runs) == 1 and runs[0].status == "finished"
    test_loss = runs[0].series("test/loss")
    assert test_loss.steps == [8] and test_loss.values == pytest.approx([result["loss"]])


def test_a_given_run_is_used_and_left_open(logdir):
    run = stepline.init(project="mine", dir=logdir)
    tiny_model().fit(*data(), batch_size=8, epochs=2, verbose=0, callbacks=[SteplineCallback(run=run)])
    assert run.status == "running"
    run.finish()
    assert Logbook(logdir).run(run.id).series("train/loss").steps == [8, 16]


def test_an_exception_in_fit_fails_the_run(logdir):
    result = run_python(f"""
        import keras, numpy as np
        from stepline.integrations.keras import SteplineCallback

        class Exploding(keras.layers.Layer):
            # Raises in the 11th training batch: after the first epoch (8 batches) has been logged.
            batches = 0
            def call(self, x, training=None):
                if training:
                    Exploding.batches += 1
                    if Exploding.batches > 10:
                        raise ValueError("activations overflowed")
                return x

        x = np.ones((64, 4), "float32")
        model = keras.Sequential([keras.Input((4,)), Exploding(), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        model.fit(x, x.sum(axis=1), batch_size=8, epochs=3, verbose=0,
                  callbacks=[SteplineCallback(project="keras", dir={str(logdir)!r})])
    """, env={"PYTHONPATH": str(REPO)})
    assert "activations overflowed" in result.stderr
    [view] = Logbook(logdir).runs("keras")
    assert view.status == "failed" and "activations overflowed" in view.error["message"]  # Keras wraps it
    assert view.series("train/loss").steps == [8]


@pytest.mark.parametrize("backend", ["torch", "jax", "tensorflow"])
def test_every_backend_against_keras_own_history(logdir, backend):
    """Most Keras users run TensorFlow or JAX: the same checks on each, in a process of its own (the backend
    is chosen at import)."""
    if importlib.util.find_spec(backend) is None:
        if os.environ.get("CI"):
            raise AssertionError(f"CI must run Keras on {backend}: make test installs it (the dev extra)")
        pytest.skip(f"{backend} is not installed here")
    result = run_python(f"""
        import json, sys, keras, numpy as np
        from stepline.integrations.keras import SteplineCallback
        tensorflow_imported = "tensorflow" in sys.modules  # (Keras itself imports it to serialize a schedule)
        assert keras.backend.backend() == {backend!r}
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 4)).astype("float32")
        schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=4, decay_rate=0.5)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule), loss="mse", metrics=["mae"])
        callback = SteplineCallback(project={backend!r}, dir={str(logdir)!r}, log_every=4)
        history = model.fit(x, x.sum(axis=1), batch_size=8, epochs=3, validation_split=0.25, verbose=0,
                            callbacks=[callback])
        print(json.dumps({{"history": history.history, "tensorflow": tensorflow_imported}}))
    """, env={"KERAS_BACKEND": backend, "PYTHONPATH": str(REPO)}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    history = report["history"]
    if backend != "tensorflow":
        assert report["tensorflow"] is False  # stepline's callback never imports TensorFlow
    [view] = Logbook(logdir).runs(backend)
    assert view.status == "finished"
    loss = view.series("train/loss")
    assert loss.steps == [6, 12, 18] and loss.epochs == [1, 2, 3]  # 48 training samples in batches of 8
    assert loss.values == pytest.approx(history["loss"])
    assert view.series("eval/loss").values == pytest.approx(history["val_loss"])
    assert view.series("eval/mae").values == pytest.approx(history["val_mae"])
    assert view.series("train/loss_running_mean").steps == [4, 10, 16]
    lr = view.series("train/learning_rate")
    assert lr.values == pytest.approx([0.05 * 0.5 ** (step / 4) for step in lr.steps])
    if "learning_rate" in history:  # Keras adds it to History for a scheduled rate on some versions
        assert [v for s, v in zip(lr.steps, lr.values) if s % 6 == 0][-3:] == pytest.approx(history["learning_rate"])


def test_predictions_on_a_fixed_batch_are_logged_as_images_every_n_epochs(logdir):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(32, 8, 8, 1)).astype("float32")  # normalised inputs: shown stretched to [0, 1]
    labels = rng.integers(0, 3, size=32)
    keras.utils.set_random_seed(0)
    classifier = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3, "softmax")])
    classifier.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    callback = SteplineCallback(project="keras", dir=logdir, predictions_of=(images[:4], labels[:4]),
                                predictions_every=2)
    classifier.fit(images, labels, batch_size=8, epochs=4, verbose=0, callbacks=[callback])
    view = Logbook(logdir).run(callback.run.id)
    records = view.media("eval/predictions")
    assert [r["step"] for r in records] == [8, 16]  # epochs 2 and 4, at the batches seen
    expected = classifier.predict(images[:4], verbose=0).argmax(axis=1)
    items = records[-1]["items"]
    assert [(i["width"], i["height"]) for i in items] == [(8, 8)] * 4
    assert [i["caption"].split(" (")[0] for i in items] == [f"predicted {p}" for p in expected]
    assert [i["caption"].rsplit(" ", 1)[1] for i in items] == [str(t) for t in labels[:4]]
    assert view.series("train/loss").steps == [4, 8, 12, 16]  # the metrics are as without it

    keras.utils.set_random_seed(0)  # a model that outputs images: its outputs are the gallery
    autoencoder = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(3, 3, padding="same")])
    autoencoder.compile(optimizer="sgd", loss="mse")
    colour = rng.uniform(size=(8, 8, 8, 3)).astype("float32")
    callback = SteplineCallback(project="keras", dir=logdir, predictions_of=colour[:2])
    autoencoder.fit(colour, colour, epochs=1, verbose=0, callbacks=[callback])
    [record] = Logbook(logdir).run(callback.run.id).media("eval/predictions")
    assert [i["caption"] for i in record["items"]] == ["sample 0", "sample 1"]


def test_predictions_of_something_that_is_not_images_is_a_clear_error():
    with pytest.raises(stepline.ConfigError, match=r"predictions_of must be a batch of images.*\(8, 4\)"):
        SteplineCallback(project="x", predictions_of=np.zeros((8, 4)))
    with pytest.raises(stepline.ConfigError, match="predictions_every"):
        SteplineCallback(project="x", predictions_of=np.zeros((2, 8, 8)), predictions_every=0)
