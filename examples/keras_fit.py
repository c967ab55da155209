"""A Keras 3 fit tracked by stepline (on the torch backend unless KERAS_BACKEND says otherwise).

    python examples/keras_fit.py
    stepline show keras-mlp --project examples
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from stepline.integrations.keras import SteplineCallback  # noqa: E402


def main() -> None:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2048, 8)).astype("float32")
    y = (x[:, :4].sum(axis=1) > 0).astype("float32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=50, decay_rate=0.9)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="binary_crossentropy", metrics=["accuracy"])
    callback = SteplineCallback(project="examples", name="keras-mlp", log_every=20, tags=["demo"])
    model.fit(x, y, batch_size=64, epochs=5, validation_split=0.2, verbose=0, callbacks=[callback])
    model.evaluate(x[:256], y[:256], verbose=0, callbacks=[callback])  # recorded as test/*
    print(f"Tracked run {callback.run.id} in {callback.run.path}")
    print(f"Look at it with: stepline show {callback.run.id}")


if __name__ == "__main__":
    main()
