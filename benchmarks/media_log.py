"""What logging images costs: the caller's time per image and the writer's images per second, beside baselines
measured in the same run.

    python benchmarks/media_log.py [--images 1000] [--size 64] [--repeats 5]

- caller: ``run.log({"samples": stepline.Image(x)}, step=i)`` for ``--images`` different uint8 images of
  size x size x 3, median microseconds per call; baseline: ``np.array(x, copy=True)``, the copy stepline takes
  (the least a logger that lets the caller reuse its array can pay), and a ``run.log`` of one float.
- writer: images per second from the first call until ``finish()`` returns with every PNG on disk; baseline:
  the same images encoded as PNG by Pillow and written to files, one after another, in this process.
Each figure is the median of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import stepline


def caller_us(images: list[np.ndarray], folder: str) -> tuple[float, float, float]:
    """(median us of a run.log of an image, of np.array(copy), of a run.log of a float)."""
    run = stepline.init(project="bench", dir=folder, system_metrics=False)
    logged, copied, floats = [], [], []
    for step, image in enumerate(images):
        t0 = time.perf_counter_ns()
        run.log({"samples": stepline.Image(image)}, step=step)
        t1 = time.perf_counter_ns()
        np.array(image, copy=True)
        t2 = time.perf_counter_ns()
        run.log({"loss": 0.5}, step=step)
        t3 = time.perf_counter_ns()
        logged.append(t1 - t0)
        copied.append(t2 - t1)
        floats.append(t3 - t2)
    run.finish()
    assert len(stepline.Logbook(folder).run(run.id).media("samples")) == len(images)
    return tuple(statistics.median(d) / 1000 for d in (logged, copied, floats))  # type: ignore[return-value]


def writer_rate(images: list[np.ndarray], folder: str) -> float:
    run = stepline.init(project="bench", dir=folder, system_metrics=False)
    start = time.perf_counter()
    for step, image in enumerate(images):
        run.log({"samples": stepline.Image(image)}, step=step)
    run.finish()
    rate = len(images) / (time.perf_counter() - start)
    stored = stepline.Logbook(folder).run(run.id).media("samples")
    assert len(stored) == len(images) and all(r["items"][0]["path"].stat().st_size for r in stored)
    return rate


def pillow_rate(images: list[np.ndarray], folder: str) -> float:
    from PIL import Image

    target = Path(folder) / "pillow"
    target.mkdir()
    start = time.perf_counter()
    for step, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="png")
        (target / f"{step}.png").write_bytes(buffer.getvalue())
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8) for _ in range(args.images)]
    callers, writers, pillows = [], [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            callers.append(caller_us(images, folder))
            writers.append(writer_rate(images, folder))
            pillows.append(pillow_rate(images, folder))
    logged, copied, floats = (statistics.median(c[i] for c in callers) for i in range(3))
    writer, pillow = statistics.median(writers), statistics.median(pillows)
    print(f"{args.images} images of {args.size}x{args.size}x3 uint8, median of {args.repeats} repeats")
    print(f"{'figure':<44}{'baseline':>12}{'stepline':>12}{'ratio':>8}")
    print(f"{'caller us per image (baseline: np copy)':<44}{copied:>12.1f}{logged:>12.1f}{logged / copied:>8.1f}")
    print(f"{'caller us per image (baseline: log a float)':<44}{floats:>12.1f}{logged:>12.1f}{logged / floats:>8.1f}")
    label = "images/s to disk (baseline: Pillow PNG loop)"
    print(f"{label:<44}{pillow:>12,.0f}{writer:>12,.0f}{writer / pillow:>8.2f}")


if __name__ == "__main__":
    main()
