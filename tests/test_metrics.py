"""run.log and run.metrics: what lands, at which step, with which values."""

from __future__ import annotations

import math

import numpy as np
import pytest

import stepline
from stepline import Logbook


def read(logdir, run):
    return Logbook(logdir).run(run.id)


def test_points_land_with_steps_epochs_and_times(logdir):
    run = stepline.init(project="p", dir=logdir)
    run.log({"loss": 0.5, "acc": 0.1}, step=0, epoch=0)
    run.log({"loss": 0.25}, step=10, epoch=1.5)
    run.finish()

    rows = read(logdir, run).metrics()
    assert [(r["step"], r.get("epoch"), r.get("loss"), r.get("acc")) for r in rows] == [
        (0, 0, 0.5, 0.1),
        (10, 1.5, 0.25, None),
    ]
    assert all(isinstance(r["timestamp"], float) for r in rows)


@pytest.mark.parametrize("native", ["1", "0"])
def test_an_epoch_is_a_number_wherever_it_goes(logdir, monkeypatch, native):
    """A bool epoch is the number it stands for (the wire takes no other); NaN and the infinities are kept, by
    name in the file, as values are."""
    monkeypatch.setattr(stepline.metrics_batch, "NATIVE", native == "1" and stepline.metrics_batch.native is not None)
    run = stepline.init(project="p", dir=logdir)
    run.log({"a": 1.0}, step=0, epoch=True)
    run.log({"a": 2.0}, step=1, epoch=math.nan)
    run.log({"a": 3.0}, step=2, epoch=-math.inf)
    run.log({"a": 4.0}, step=3, epoch=np.float32(2.5))
    run.finish()
    epochs = [r.get("epoch") for r in read(logdir, run).metrics()]
    assert epochs[0] == 1 and type(epochs[0]) is int and math.isnan(epochs[1]) and epochs[2:] == [-math.inf, 2.5]
    text = (run.path / "metrics.jsonl").read_bytes()
    assert b'"epoch":1,' in text and b'"epoch":"NaN"' in text and b'"epoch":"-Infinity"' in text


def test_no_step_means_largest_step_plus_one(logdir):
    run = stepline.init(project="p", dir=logdir)
    run.log({"a": 1})  # 0
    run.log({"a": 2})  # 1
    run.log({"a": 3}, step=7)
    run.log({"a": 4}, step=2)  # goes back: kept, and does not lower the largest step
    run.log({"a": 5})  # 8
    run.finish()
    series = read(logdir, run).series("a")
    assert series.steps == [0, 1, 7, 2, 8]
    assert series.values == [1, 2, 3, 4, 5]


def test_repeated_steps_keep_every_point(logdir):
    run = stepline.init(project="p", dir=logdir)
    for value in (1.0, 2.0, 3.0):
        run.log({"eval/acc": value}, step=5)
    run.finish()
    assert read(logdir, run).series("eval/acc").values == [1.0, 2.0, 3.0]


def test_non_finite_values_round_trip(logdir):
    run = stepline.init(project="p", dir=logdir)
    run.log({"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "ok": 1.5})
    run.finish()
    row = read(logdir, run).metrics()[0]
    assert math.isnan(row["nan"]) and row["inf"] == math.inf and row["ninf"] == -math.inf and row["ok"] == 1.5


def _torch():
    import torch  # imported by the tests that use it, not at collection: collecting the suite stays quick

    return torch


def test_numpy_and_torch_scalars_become_numbers(logdir):
    torch = _torch()
    run = stepline.init(project="p", dir=logdir)
    run.log({
        "np32": np.float32(0.5), "np64": np.float64(0.25), "npint": np.int64(7), "npbool": np.bool_(True),
        "zero_d": np.array(3.0), "tensor": torch.tensor(1.25), "int_tensor": torch.tensor(4),
        "pybool": False,
    }, step=np.int64(3))
    run.finish()
    row = read(logdir, run).metrics()[0]
    assert row["step"] == 3
    assert row["np32"] == 0.5 and row["np64"] == 0.25 and row["npint"] == 7 and row["npbool"] is True
    assert row["zero_d"] == 3.0 and row["tensor"] == 1.25 and row["int_tensor"] == 4 and row["pybool"] is False


def test_a_tensor_logged_then_changed_in_place_keeps_its_logged_value(logdir):
    run = stepline.init(project="p", dir=logdir)
    total = _torch().tensor(1.0)
    run.log({"total": total})
    total += 100  # a running accumulator, as trainers keep them
    run.finish()
    assert read(logdir, run).series("total").values == [1.0]


BAD_VALUES = {"text": lambda: "high", "list": lambda: [1, 2], "dict": lambda: {"a": 1}, "none": lambda: None,
              "array": lambda: np.ones((2, 2)), "tensor": lambda: _torch().ones(2, 2),
              "one-element tensor": lambda: _torch().ones(1), "complex": lambda: 1 + 2j}


@pytest.mark.parametrize("make_bad", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_a_value_that_is_not_a_number_is_refused_by_name_and_the_rest_land(logdir, make_bad):
    bad = make_bad()
    run = stepline.init(project="p", dir=logdir)
    with pytest.warns(stepline.SteplineWarning, match="'bad'"):
        run.log({"good": 1.0, "bad": bad, "also_good": 2}, step=0)
    run.finish()
    [row] = read(logdir, run).metrics()
    del row["timestamp"]
    assert row == {"good": 1.0, "also_good": 2, "step": 0}


def test_a_bad_value_warns_once_per_key_not_every_step(logdir, recwarn):
    run = stepline.init(project="p", dir=logdir)
    for step in range(50):
        run.log({"bad": "x", "ok": step})
    run.finish()
    assert len([w for w in recwarn if issubclass(w.category, stepline.SteplineWarning)]) == 1
    assert len(read(logdir, run).series("ok")) == 50


def test_namespaces_use_slash(logdir):
    run = stepline.init(project="p", dir=logdir)
    run.metrics("train").log(loss=0.3, step=1)
    run.metrics("eval")("squad").log(f1=0.8, step=1)
    run.finish()
    assert read(logdir, run).metric_keys() == ["train/loss", "eval/squad/f1"]


@pytest.mark.parametrize(
    "aggregation, expected", [("mean", 2.0), ("sum", 6.0), ("min", 1.0), ("max", 3.0), ("last", 3.0)]
)
def test_collect_then_flush_aggregates(logdir, aggregation, expected):
    run = stepline.init(project="p", dir=logdir)
    train = run.metrics("train")
    for value in (1.0, 2.0, 3.0):
        train.collect(loss=value)
    train.flush(aggregation=aggregation, step=9, lr=0.1)
    train.flush(step=10)  # nothing collected since: logs nothing
    run.finish()
    rows = read(logdir, run).metrics()
    assert len(rows) == 1
    assert rows[0]["train/loss"] == expected and rows[0]["train/lr"] == 0.1 and rows[0]["step"] == 9


def test_unknown_aggregation_is_a_clear_error(logdir):
    run = stepline.init(project="p", dir=logdir)
    run.metrics.collect(x=1)
    with pytest.raises(stepline.ConfigError, match="median"):
        run.metrics.flush(aggregation="median")


def test_module_level_log_goes_to_the_current_run(logdir):
    first = stepline.init(project="p", dir=logdir, name="first")
    second = stepline.init(project="p", dir=logdir, name="second")
    stepline.log({"x": 2.0})
    first.log({"x": 1.0})
    stepline.finish()  # the current run: second
    assert stepline.current_run() is first
    stepline.finish()
    book = Logbook(logdir)
    assert book.run(first.id).series("x").values == [1.0]
    assert book.run(second.id).series("x").values == [2.0]
    assert book.run(second.id).status == "finished"


def test_module_level_log_without_a_run_says_what_to_do():
    with pytest.raises(stepline.SteplineError, match=r"stepline.init"):
        stepline.log({"x": 1})


def test_log_after_finish_warns_and_does_not_raise(logdir):
    run = stepline.init(project="p", dir=logdir)
    run.finish()
    with pytest.warns(stepline.SteplineWarning, match="resume="):
        run.log({"late": 1.0})
    assert read(logdir, run).metrics() == []


def test_concurrent_runs_in_threads_keep_their_own_points(logdir):
    import threading

    runs = [stepline.init(project="p", dir=logdir, name=f"t{i}") for i in range(4)]

    def work(run, offset):
        for step in range(2000):
            run.log({"v": offset + step}, step=step)

    threads = [threading.Thread(target=work, args=(run, i * 10_000)) for i, run in enumerate(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for run in runs:
        run.finish()
    book = Logbook(logdir)
    for i, run in enumerate(runs):
        series = book.run(run.id).series("v")
        assert series.steps == list(range(2000))
        assert series.values == [i * 10_000 + s for s in range(2000)]


@pytest.mark.parametrize("native", ["1", "0"])
def test_calls_of_thousands_of_metrics_wait_for_room_by_their_bytes_and_all_land(logdir, monkeypatch, native):
    """The queue's byte bound (STEPLINE_QUEUE_MB) counts metrics calls too, on either path: a loop logging a
    statistic of each of 5,000 layers a step, faster than they are written, keeps the queue's memory near the
    bound (not 10,000 calls of 5,000 values), waits, and loses none."""
    monkeypatch.setattr(stepline.metrics_batch, "NATIVE", native == "1" and stepline.metrics_batch.native is not None)
    monkeypatch.setenv("STEPLINE_QUEUE_MB", "4")
    keys = [f"layer_{i}/grad_norm" for i in range(5000)]
    run = stepline.init(project="p", dir=logdir)
    held = []
    with pytest.warns(stepline.SteplineWarning, match="or 4 MB"):
        for step in range(200):
            run.log({key: step + i / 8 for i, key in enumerate(keys)}, step=step)
            held.append(run._queue.pending_bytes())
    run.finish()
    assert (3 << 20) <= max(held) <= (5 << 20) + 500_000  # the bound, a segment of a quarter of it, one call
    summaries = read(logdir, run).summaries()
    assert len(summaries) == 5000
    assert summaries["layer_4999/grad_norm"].count == 200 and summaries["layer_4999/grad_norm"].last == 199 + 4999 / 8
