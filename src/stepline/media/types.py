"""What ``run.log`` takes besides numbers: images, histograms, tables, text and audio.

    run.log({"samples": stepline.Image(batch[0], caption="input"), "loss": 0.3}, step=10)
    run.log({"gallery": [stepline.Image(x) for x in batch[:8]]})
    run.log({"weights": stepline.Histogram(layer.weight)})
    run.log({"preds": stepline.Table(rows=[[1, "cat"]], columns=["id", "label"])})
    run.log({"note": stepline.Text("a sample"), "clip": stepline.Audio(wave, sample_rate=16000)})

A constructor only keeps what it was given and never raises, so that a mistake never stops training:
``run.log`` checks it and takes a copy (:meth:`Media.taken`: all the caller pays), and a bad one is refused
with a warning that names its key while the call's other keys land. Encoding (PNG, WAV, JSON) happens on the
writer thread (``encode.py``).
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any

from stepline.errors import InvalidValueError

if TYPE_CHECKING:
    import numpy as np

MAX_TEXT_CHARS = 10_000_000
# numpy is imported by the functions that need it: `import stepline` never imports it (see writer.py).


class Media:
    """A value for ``run.log`` that is not a number."""

    kind = "media"

    def taken(self, key: str) -> dict[str, Any]:
        """What the writer needs to store it, copied now (so that the caller may change its objects after the
        call); raises InvalidValueError naming ``key`` and the fix."""
        raise NotImplementedError


class Image(Media):
    """An image: a numpy array (HW, HWC or CHW; uint8, or floats in [0, 1]), a torch tensor, a PIL image, a
    matplotlib figure, or the path of an image file. ``stepline.Image(x, caption="a cat")``."""

    kind = "image"

    def __init__(self, data: Any, caption: str | None = None) -> None:
        self.data = data
        self.caption = caption

    def taken(self, key: str) -> dict[str, Any]:
        import numpy as np

        item: dict[str, Any] = {"caption": _caption(key, self.caption)}
        data = self.data
        if isinstance(data, (str, os.PathLike)):
            path = os.fspath(data)
            if not os.path.isfile(path):
                raise InvalidValueError(f"{key!r}: stepline.Image got the text {path[:80]!r}, which is not an image "
                                        "file; pass an array, a tensor, a PIL image, a figure or a file's path")
            item["path"] = path
        elif hasattr(data, "savefig"):  # a matplotlib figure: drawn now, as it is not safe to draw on another thread
            buffer = io.BytesIO()
            data.savefig(buffer, format="png")
            item["png"] = buffer.getvalue()
        elif type(data).__module__.startswith("PIL."):
            item["pixels"] = np.asarray(data.convert("RGBA") if data.mode not in ("L", "RGB", "RGBA") else data)
        else:
            item["pixels"] = _pixels(key, data)
        return item


class Histogram(Media):
    """A distribution: values (array, tensor, list), or counts with edges (one more edge than counts), as a
    ``(counts, edges)`` pair (what ``numpy.histogram`` returns) or ``counts=`` and ``edges=``.
    ``stepline.Histogram(layer.weight, bins=64)``, ``stepline.Histogram(np.histogram(x))``."""

    kind = "histogram"

    def __init__(self, values: Any = None, *, bins: int = 64, counts: Any = None, edges: Any = None) -> None:
        if counts is None and edges is None and _is_counts_and_edges(values):
            (counts, edges), values = values, None
        self.values, self.bins, self.counts, self.edges = values, bins, counts, edges

    def taken(self, key: str) -> dict[str, Any]:
        import numpy as np

        if self.counts is not None or self.edges is not None:
            counts, edges = _array(key, self.counts).astype(np.float64), _array(key, self.edges).astype(np.float64)
            if counts.ndim != 1 or edges.shape != (len(counts) + 1,) or not len(counts):
                raise InvalidValueError(f"{key!r}: a histogram's edges must be one more than its counts, got "
                                        f"{counts.shape} counts and {edges.shape} edges")
            if not (np.isfinite(counts).all() and np.isfinite(edges).all()):
                raise InvalidValueError(f"{key!r}: a histogram's counts and edges must be finite numbers")
            return {"counts": counts, "edges": edges}
        if type(self.bins) is not int or self.bins < 1:
            raise InvalidValueError(f"{key!r}: bins must be a positive whole number, got {self.bins!r}")
        values = _array(key, self.values).astype(np.float64).ravel()
        finite = values[np.isfinite(values)]
        if not len(finite):
            raise InvalidValueError(f"{key!r}: a histogram needs finite values, got {len(values)} values, none finite")
        return {"values": finite, "bins": self.bins, "left_out": len(values) - len(finite)}


class Table(Media):
    """Rows under named columns: ``stepline.Table(rows=[[1, "cat"]], columns=["id", "label"])``, or
    ``stepline.Table(dataframe)`` (pandas)."""

    kind = "table"

    def __init__(self, rows: Any = None, columns: Any = None) -> None:
        self.rows, self.columns = rows, columns

    def taken(self, key: str) -> dict[str, Any]:
        rows, columns = self.rows, self.columns
        if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame
            columns = [str(c) for c in rows.columns]
            rows = rows.astype(object).where(rows.notna(), None).values.tolist()
        if rows is None or not hasattr(rows, "__iter__"):
            raise InvalidValueError(f"{key!r}: a table needs rows (a list of lists) or a pandas DataFrame")
        rows = [list(row) if isinstance(row, (list, tuple)) else [row] for row in rows]
        if not rows:
            raise InvalidValueError(f"{key!r}: the table is empty; log a table with at least one row")
        width = max(len(row) for row in rows)
        columns = [str(c) for c in columns] if columns is not None else [f"c{i}" for i in range(width)]
        if any(len(row) != len(columns) for row in rows):
            raise InvalidValueError(f"{key!r}: every row needs {len(columns)} cells, one per column {columns}")
        return {"columns": columns, "rows": [[_cell(cell) for cell in row] for row in rows]}


class Text(Media):
    """A piece of text: ``stepline.Text(generated)``."""

    kind = "text"

    def __init__(self, text: str) -> None:
        self.text = text

    def taken(self, key: str) -> dict[str, Any]:
        if not isinstance(self.text, str):
            raise InvalidValueError(f"{key!r}: stepline.Text takes a str, got {type(self.text).__name__}")
        if len(self.text) > MAX_TEXT_CHARS:
            raise InvalidValueError(f"{key!r}: a text of {len(self.text)} characters is over {MAX_TEXT_CHARS}: "
                                    "save it with run.files.save instead")
        return {"text": self.text}


class Audio(Media):
    """Sound: a waveform (samples, or samples x channels; floats in [-1, 1] or int16) and its sample rate.
    ``stepline.Audio(wave, sample_rate=16000, caption="sample 3")``."""

    kind = "audio"

    def __init__(self, waveform: Any, sample_rate: int, caption: str | None = None) -> None:
        self.waveform, self.sample_rate, self.caption = waveform, sample_rate, caption

    def taken(self, key: str) -> dict[str, Any]:
        import numpy as np

        if type(self.sample_rate) is not int or not 1 <= self.sample_rate <= 1_000_000:
            raise InvalidValueError(f"{key!r}: sample_rate must be a whole number of samples per second, got "
                                    f"{self.sample_rate!r}")
        wave = _array(key, self.waveform)
        if wave.ndim not in (1, 2) or not wave.size or (wave.ndim == 2 and wave.shape[1] > 16):
            raise InvalidValueError(f"{key!r}: audio must be samples, or samples x channels, got shape {wave.shape}")
        if wave.dtype.kind == "f" and not np.isfinite(wave).all():
            raise InvalidValueError(f"{key!r}: the waveform holds NaN or infinity")
        return {"wave": wave, "sample_rate": self.sample_rate, "caption": _caption(key, self.caption)}


def _array(key: str, data: Any) -> np.ndarray:
    """A copy of ``data`` as a numpy array (a torch tensor through the CPU)."""
    import numpy as np

    if hasattr(data, "detach") and hasattr(data, "cpu"):
        data = data.detach().cpu()
        if str(getattr(data, "dtype", "")) == "torch.bfloat16":
            data = data.float()
        data = data.numpy()
    try:
        array = np.array(data, copy=True)
    except (TypeError, ValueError) as err:
        raise InvalidValueError(f"{key!r}: cannot read {type(data).__name__} as numbers ({err})") from None
    if array.dtype.kind not in "biuf":
        raise InvalidValueError(f"{key!r}: expected numbers, got an array of {array.dtype}")
    return array


def _pixels(key: str, data: Any) -> np.ndarray:
    """An image's pixels as HWC (C 1, 3 or 4) or HW, as given: uint8, or floats in [0, 1] (made uint8 on the
    writer thread). A 3-d tensor is read as CHW, as torch lays images out; a 3-d array as HWC unless its last
    axis cannot be channels."""
    import numpy as np

    tensor = hasattr(data, "detach")
    pixels = _array(key, data)
    if pixels.ndim == 3 and pixels.shape[0] in (1, 3, 4) and (tensor or pixels.shape[-1] not in (1, 3, 4)):
        pixels = np.moveaxis(pixels, 0, -1)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[-1] in (3, 4))) or 0 in pixels.shape:
        raise InvalidValueError(f"{key!r}: an image is HW, HWC or CHW with 1, 3 or 4 channels, got shape "
                                f"{tuple(pixels.shape)}")
    return pixels


def _caption(key: str, caption: Any) -> str | None:
    if caption is not None and not isinstance(caption, str):
        raise InvalidValueError(f"{key!r}: a caption is text, got {type(caption).__name__}")
    return caption


def _cell(value: Any) -> Any:
    """A table cell as JSON holds it: numbers, text, booleans and None as they are, anything else as text."""
    import numpy as np

    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _is_counts_and_edges(values: Any) -> bool:
    """Whether ``values`` is a (counts, edges) pair rather than two values: two sequences, one edge more."""
    if not (isinstance(values, tuple) and len(values) == 2):
        return False
    counts, edges = values
    return hasattr(counts, "__len__") and hasattr(edges, "__len__") and len(edges) == len(counts) + 1
