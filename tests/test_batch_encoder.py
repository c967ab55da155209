"""The native batch encoder (src/stepline/batch_encoder.cpp, through stepline.metrics_batch): the lines it writes
read back as the Python path's lines, value for value and type for type; a run writes the same logbook and index
with it and without it; and what it does not take goes to the Python path whole."""

from __future__ import annotations

import math
import os
import struct
import threading

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stepline
from stepline import events, metrics_batch
from stepline.logbook.columns import NO_EPOCH
from stepline.metrics_batch import MetricsBatch
from tests.test_index import assert_index_matches_the_file

pytestmark = pytest.mark.skipif(
    metrics_batch.native is None and not os.environ.get("CI"),  # in CI, a missing encoder fails
    reason="the batch encoder was not built (no C++17 compiler): stepline runs on its Python path",
)


def typed(value):
    """A decoded value with its type, floats by their bits: 1 and 1.0, or 0.0 and -0.0, are not the same."""
    if isinstance(value, dict):
        return [(key, typed(item)) for key, item in value.items()]
    if type(value) is float:
        return ("float", struct.pack("<d", value))
    return (type(value).__name__, value)


numbers = st.one_of(
    st.floats(width=64),  # NaN and the infinities included
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.sampled_from([0.0, -0.0, 1.0, 1e16, 1e15, 1e-5, 1e-6, 5e-324, 1.7976931348623157e308, 0.1]),
)
records = st.tuples(
    st.floats(min_value=0, max_value=4e9, allow_nan=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.one_of(st.none(), numbers),
    st.dictionaries(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=12), numbers,
                    min_size=1, max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(batch=st.lists(records, min_size=1, max_size=40), first_seq=st.integers(min_value=1, max_value=2**40))
def test_native_lines_read_back_as_the_python_lines(batch, first_seq):
    assert metrics_batch.native is not None, "the batch encoder was not built: pip install -e . needs a C++ compiler"
    items = [("m", when, step, epoch, values) for when, step, epoch, values in batch]
    encoded = MetricsBatch(items, first_seq).encoded()
    assert encoded is not None
    python = events.encode_many(MetricsBatch(items, first_seq).records)
    native_lines = encoded.lines.split(b"\n")
    python_lines = python.split(b"\n")
    assert len(native_lines) == len(python_lines) == len(items) + 1
    for native_line, python_line in zip(native_lines[:-1], python_lines[:-1]):
        assert typed(orjson.loads(native_line)) == typed(orjson.loads(python_line)), native_line


def test_the_lines_are_orjsons_own_bytes_for_the_values_training_logs():
    """Not only the same values: the same text, so that a line reads the same wherever it was written."""
    steps = range(2_000)
    items = [("m", 1764100000.0 + step / 7, step, step / 100 if step % 2 else None,
              {"train/loss": 1 / (step + 1), "lr": 3e-4 * 0.999**step, "grad_norm": step * 1e16,
               "tiny": step * 1e-7, "count": step, "ok": step % 3 == 0, "nan": math.nan, "inf": -math.inf})
             for step in steps]
    encoded = MetricsBatch(items, 1).encoded()
    assert encoded is not None
    assert encoded.lines == events.encode_many(MetricsBatch(items, 1).records)


def test_the_columns_are_the_records_numbers():
    items = [("m", 10.5 + step, step * 3, None if step % 2 else step / 2, {"loss": step / 4, "n": step, "b": True})
             for step in range(5)]
    encoded = MetricsBatch(items, 1).encoded()
    import numpy as np

    assert np.frombuffer(encoded.steps, np.int64).tolist() == [0, 3, 6, 9, 12]
    assert np.frombuffer(encoded.times, np.float64).tolist() == [10.5, 11.5, 12.5, 13.5, 14.5]
    epochs = np.frombuffer(encoded.epochs, np.float64)
    assert epochs[0::2].tolist() == [0.0, 1.0, 2.0]
    assert (epochs[1::2].view(np.int64) == NO_EPOCH.view(np.int64)).all()
    assert encoded.keys == ("loss", "n", "b") and encoded.floats_first == (True, False, False)
    assert np.frombuffer(encoded.values, np.float64).reshape(3, 5).tolist() == [
        [0.0, 0.25, 0.5, 0.75, 1.0], [0, 1, 2, 3, 4], [1, 1, 1, 1, 1]]
    mixed = MetricsBatch([("m", 1.0, 0, None, {"a": 1.0}), ("m", 2.0, 1, None, {"b": 2.0})], 1).encoded()
    assert mixed is not None and mixed.keys is None and mixed.values is None


@pytest.mark.parametrize("item", [
    ("m", 1.0, 0, None, {"uint64": 2**64 - 1}),  # valid, past int64: Python writes it
    ("m", 1.0, 0, None, {"huge": 2**70}),
    ("m", 1.0, 0, None, {"bad\udcff": 1.0}),  # a lone surrogate: Python escapes it and says so
    ("m", 1.0, 0, None, {"sub": type("F", (float,), {})(1.0)}),
    ("m", 1.0, 2**63, None, {"a": 1.0}),
    ("m", math.nan, 0, None, {"a": 1.0}),
    ("m", 1.0, 0, 2**64 - 1, {"a": 1.0}),
], ids=["uint64", "past 64 bits", "lone surrogate", "float subclass", "step past int64", "NaN time", "epoch"])
def test_what_the_encoder_does_not_take_goes_to_python_whole(item):
    batch = MetricsBatch([("m", 1.0, 0, None, {"a": 1.0}), item], 1)
    assert batch.encoded() is None


def log_everything(run) -> None:
    """Calls that take every path: batches with the same keys, keys that change, ints and bools first, NaN and
    the infinities, epochs, values past 64 bits, numpy scalars, steps that repeat, and a flush between."""
    import numpy as np

    for step in range(30_000):
        run.log({"train/loss": 1 / (step + 1), "lr": 3e-4, "tokens": step * 512, "nan": math.nan if step % 7 else 1.0},
                step=step, epoch=step / 1000)
    run.flush()
    for step in range(30_000, 30_500):
        run.log({"eval/acc": step % 2 == 0} if step % 5 else {"eval/loss": math.inf, "big": 2**64 - 1}, step=step)
    run.log({"numpy": np.float32(0.5), "past": 2**70, "int_then_float": 1}, step=30_499)
    run.log({"int_then_float": 2.5, "bad\udcff": 1.0}, step=30_499)


def test_a_run_writes_the_same_logbook_and_index_with_and_without_the_native_encoder(logdir, monkeypatch):
    calls = []
    encode = metrics_batch.native.encode
    monkeypatch.setattr(metrics_batch.native, "encode", lambda *args: calls.append(1) or encode(*args))
    with pytest.warns(stepline.SteplineWarning):
        native = stepline.init(project="p", name="native", dir=logdir)
        log_everything(native)
        native.finish()
    assert calls, "the native encoder was never used"
    monkeypatch.setattr(metrics_batch, "NATIVE", False)
    with pytest.warns(stepline.SteplineWarning):
        python = stepline.init(project="p", name="python", dir=logdir)
        log_everything(python)
        python.finish()
    runs = stepline.Logbook(logdir).runs("p")
    written = {run.name: [typed({k: v for k, v in record.items() if k != "time"})
                          for record in run.records("metrics")] for run in runs}
    assert len(written["native"]) == 30_502 and written["native"] == written["python"]
    for run in runs:
        assert_index_matches_the_file(run.path)
    summaries = [stepline.Logbook(logdir).run(name, "p").summaries() for name in ("native", "python")]
    assert [(key, typed(s.as_dict())) for key, s in summaries[0].items()] == [
        (key, typed(s.as_dict())) for key, s in summaries[1].items()]


def test_two_runs_in_two_threads_keep_their_own_lines(logdir):
    def train(name: str) -> None:
        run = stepline.init(project="p", name=name, dir=logdir)
        for step in range(20_000):
            run.log({f"{name}/loss": step / 3, f"{name}/step": step}, step=step)
        run.finish()

    threads = [threading.Thread(target=train, args=(name,)) for name in ("left", "right")]
    with pytest.warns(stepline.SteplineWarning):  # the queue fills: log calls wait, nothing is dropped
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for name in ("left", "right"):
        run = stepline.Logbook(logdir).run(name, "p")
        records = list(run.records("metrics"))
        assert [record["step"] for record in records] == list(range(20_000))
        assert all(list(record["values"]) == [f"{name}/loss", f"{name}/step"] for record in records)
        assert list(run.series(f"{name}/loss").values) == [step / 3 for step in range(20_000)]
        assert_index_matches_the_file(run.path)
