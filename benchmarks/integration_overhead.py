"""What stepline's integrations add to a real training run, beside the same run without them.

    python benchmarks/integration_overhead.py [--repeats 5] [--frameworks transformers,lightning,keras]

For each framework: the same tiny training (logging every step), alternately without any tracker and with
stepline's integration, in one process; and, where installed, with W&B offline, MLflow (local files) and
DVCLive. Printed: the median and the fastest wall time of the training call, stepline's added time as ratios and
per logged step, and the median time spent inside stepline's own hook per logged step (measured directly:
on a 2-core machine the wall clock of a one-second training varies by several percent from run to run,
more than the hook costs, so the hook time is the figure to trust).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.integrations' tiny models
warnings.simplefilter("ignore")

# Optimizer steps per training: enough that a run lasts about a second on this machine's CPU.
STEPS = {"transformers": 200, "lightning": 1000, "keras": 1000}


class HookTimer:
    """Wraps one method of a callback object and adds up the time spent in it."""

    def __init__(self, target: object, method: str) -> None:
        self.total, self.calls = 0.0, 0
        original = getattr(target, method)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.total += time.perf_counter() - start
                self.calls += 1

        setattr(target, method, timed)


def transformers_run(tracker: str | None, folder: str) -> tuple[float, HookTimer | None]:
    from transformers import Trainer

    from tests.integrations.hf_models import SyntheticText, tiny_args, tiny_bert

    callbacks, timer, report_to = [], None, "none"
    if tracker == "stepline":
        from stepline.integrations.transformers import SteplineCallback

        callback = SteplineCallback(project="bench", dir=folder)
        timer = HookTimer(callback, "on_log")
        callbacks.append(callback)
    elif tracker is not None:
        report_to = tracker
    steps = STEPS["transformers"]
    args = tiny_args(Path(folder) / "out", max_steps=steps, report_to=report_to, logging_steps=1)
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=SyntheticText(steps * 8), callbacks=callbacks)
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start, timer


def lightning_run(tracker: str | None, folder: str) -> tuple[float, HookTimer | None]:
    import lightning.pytorch as pl

    from tests.integrations.lightning_models import loader, module_class

    logger, timer = False, None
    if tracker == "stepline":
        from stepline.integrations.lightning import SteplineLogger

        logger = SteplineLogger(project="bench", dir=folder)
        timer = HookTimer(logger, "log_metrics")
    elif tracker == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        logger = WandbLogger(save_dir=folder, offline=True)
    elif tracker == "mlflow":
        from lightning.pytorch.loggers import MLFlowLogger

        logger = MLFlowLogger(tracking_uri=f"file:{folder}/mlruns")
    elif tracker == "dvclive":
        from dvclive.lightning import DVCLiveLogger

        logger = DVCLiveLogger(dir=folder)
    steps = STEPS["lightning"]
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", logger=logger, log_every_n_steps=1,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    start = time.perf_counter()
    trainer.fit(module_class()(), loader(steps * 8))
    return time.perf_counter() - start, timer


def keras_run(tracker: str | None, folder: str) -> tuple[float, HookTimer | None]:
    import keras
    import numpy as np

    callbacks, timer = [], None
    if tracker == "stepline":
        from stepline.integrations.keras import SteplineCallback

        callback = SteplineCallback(project="bench", dir=folder, log_every=1)
        timer = HookTimer(callback, "on_train_batch_end")
        callbacks.append(callback)
    elif tracker == "wandb":
        import wandb
        from wandb.integration.keras import WandbMetricsLogger

        wandb.init(mode="offline", dir=folder)
        callbacks.append(WandbMetricsLogger(log_freq=1))
    elif tracker == "dvclive":
        from dvclive.keras import DVCLiveCallback

        callbacks.append(DVCLiveCallback(dir=folder))
    x = np.random.default_rng(0).normal(size=(STEPS["keras"] * 8, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    start = time.perf_counter()
    model.fit(x, x.sum(axis=1), batch_size=8, epochs=1, verbose=0, callbacks=callbacks)
    elapsed = time.perf_counter() - start
    if tracker == "wandb":
        import wandb

        wandb.finish()
    return elapsed, timer


RUNNERS = {"transformers": transformers_run, "lightning": lightning_run, "keras": keras_run}
OTHERS = {"transformers": ["wandb", "mlflow", "dvclive"], "lightning": ["wandb", "mlflow", "dvclive"],
          "keras": ["wandb", "dvclive"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--frameworks", default="transformers,lightning,keras")
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_SILENT"] = "true"
    for framework in args.frameworks.split(","):
        runner = RUNNERS[framework]
        trackers: list[str | None] = [None, "stepline"]
        skipped = [t for t in OTHERS[framework] if importlib.util.find_spec(t) is None]
        trackers += [t for t in OTHERS[framework] if t not in skipped]
        times: dict[str | None, list[float]] = {t: [] for t in trackers}
        hook_per_step: list[float] = []
        with tempfile.TemporaryDirectory() as folder:
            runner(None, folder)  # warm-up: imports, first-call costs
            for _ in range(args.repeats):
                for tracker in trackers:  # interleaved, so drift in the machine's load hits all alike
                    elapsed, timer = runner(tracker, folder)
                    times[tracker].append(elapsed)
                    if timer is not None:
                        hook_per_step.append(timer.total / max(timer.calls, 1))
        base = statistics.median(times[None])
        steps = STEPS[framework]
        print(f"\n{framework}: {steps} optimizer steps, a log call each, median of {args.repeats} repeats")
        fastest = min(times[None])
        print(f"  {'tracker':<12}{'median s':>10}{'ratio':>8}{'added us/step':>15}{'min s':>9}{'ratio':>8}")
        for tracker in trackers:
            median, least = statistics.median(times[tracker]), min(times[tracker])
            print(f"  {tracker or 'none':<12}{median:>10.3f}{median / base:>8.3f}"
                  f"{(median - base) / steps * 1e6:>15.1f}{least:>9.3f}{least / fastest:>8.3f}")
        print(f"  stepline's hook itself: {statistics.median(hook_per_step) * 1e6:.1f} us per logged step")
        if skipped:
            print(f"  not installed here, so not measured: {', '.join(skipped)}")


if __name__ == "__main__":
    main()
