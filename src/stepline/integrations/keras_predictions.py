"""A fixed batch of images and what a Keras model predicts for it, as a gallery of ``stepline.Image``: what
``SteplineCallback(predictions_of=...)`` logs every few epochs.

    images = PredictionImages((x_val[:8], y_val[:8])).of(model)   # [Image(x, caption="predicted 3 (0.91), true 3")]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stepline.errors import ConfigError, warn
from stepline.media.types import Image

PREDICTIONS_KEY = "eval/predictions"


class PredictionImages:
    """``batch``: images (N x H x W, or N x H x W x C with 1, 3 or 4 channels: Keras' channels-last), or a pair
    ``(images, targets)``."""

    def __init__(self, batch: Any) -> None:
        inputs, targets = batch if isinstance(batch, tuple) and len(batch) == 2 else (batch, None)
        self.inputs = np.asarray(inputs)
        self.targets = None if targets is None else np.asarray(targets)
        shape = self.inputs.shape
        if not (len(shape) == 3 or (len(shape) == 4 and shape[-1] in (1, 3, 4))) or not shape[0]:
            raise ConfigError(f"predictions_of must be a batch of images (N x H x W, or N x H x W x C with 1, 3 or 4 "
                              f"channels), with or without targets: predictions_of=(x_val[:8], y_val[:8]); got an "
                              f"array of shape {shape}")
        if self.targets is not None and len(self.targets) != len(self.inputs):
            raise ConfigError(f"predictions_of has {len(self.inputs)} images but {len(self.targets)} targets")
        self._failed = False

    def of(self, model: Any) -> list[Image]:
        """The gallery for the model as it is now (empty, said once, when the model cannot predict the batch:
        training goes on)."""
        if self._failed:
            return []
        try:
            outputs = np.asarray(model.predict(self.inputs, verbose=0))
        except Exception as err:
            self._failed = True
            warn(f"stepline: the model cannot predict the predictions_of batch ({type(err).__name__}: {err}); "
                 f"{PREDICTIONS_KEY} is not logged")
            return []
        images = []
        for number, output in enumerate(outputs):
            target = None if self.targets is None else self.targets[number]
            if output.ndim >= 2:  # the model outputs images: show them
                images.append(Image(_viewable(output), caption=f"sample {number}"))
            else:
                images.append(Image(_viewable(self.inputs[number]), caption=_caption(output, target)))
        return images


def _caption(output: np.ndarray, target: Any) -> str:
    if output.size > 1:  # class scores
        said = f"predicted {int(output.argmax())} ({float(output.max()):.2f})"
    else:
        said = f"predicted {float(output.reshape(-1)[0]):.3g}"
    if target is None:
        return said
    target = np.asarray(target)
    return f"{said}, true {int(target.argmax()) if target.size > 1 else target.reshape(-1)[0]}"


def _viewable(image: np.ndarray) -> np.ndarray:
    """uint8 as it is; floats outside [0, 1] (normalised inputs, raw outputs) stretched into it."""
    if image.dtype == np.uint8:
        return image
    image = image.astype(np.float32)
    low, high = float(np.nanmin(image)), float(np.nanmax(image))
    if low < 0.0 or high > 1.0:
        image = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return image
