"""The native metrics segment (src/stepline/metrics_segment.cpp, through stepline.metrics_batch): the lines it
writes read back as the Python path's lines, value for value and type for type; a run writes the same logbook and
index with it and without it, in the order of the calls; and what it does not take goes to the Python path whole."""

from __future__ import annotations

import math
import os
import struct
import subprocess
import sys
import threading
import warnings

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stepline
from stepline import events, metrics_batch
from stepline.logbook.columns import NO_EPOCH, Columns
from stepline.metrics_batch import CLOSED, NOT_PLAIN, TAKEN, MetricsBatch
from tests.conftest import REPO
from tests.test_index import assert_index_matches_the_file

pytestmark = pytest.mark.skipif(
    metrics_batch.native is None and not os.environ.get("CI"),  # in CI, a missing segment fails
    reason="the metrics segment was not built (no C++17 compiler): stepline runs on its Python path",
)


def segment_of(calls, limit=100_000):
    assert metrics_batch.native is not None, "the metrics segment was not built: pip install -e . needs a C++ compiler"
    segment = metrics_batch.native.Segment(limit)
    assert [segment.add(*call) for call in calls] == [TAKEN] * len(calls)
    return segment


def python_records(calls, first_seq) -> list[dict]:
    """The records the writer makes of the same calls queued for the Python path."""
    return [{"type": "metrics", "seq": first_seq + i, "time": when, "step": step,
             **({} if epoch is None else {"epoch": epoch}), "values": values}
            for i, (when, step, epoch, values) in enumerate(calls)]


def python_lines(calls, first_seq) -> bytes:
    return events.encode_many(python_records(calls, first_seq))


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


def records_keyed(characters):
    return st.tuples(
        st.floats(min_value=0, max_value=4e9, allow_nan=False),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.one_of(st.none(), st.floats(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),  # as run.log gives
        st.dictionaries(st.text(alphabet=characters, min_size=1, max_size=12), numbers, min_size=1, max_size=6),
    )


records = records_keyed(st.characters(blacklist_categories=["Cs"]))
# keys JSON writes without an escape: what the native reader of received lines takes (the others go to orjson)
records_unescaped = records_keyed(st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters='"\\'))


@settings(max_examples=300, deadline=None)
@given(calls=st.lists(records, min_size=1, max_size=40), first_seq=st.integers(min_value=1, max_value=2**40))
def test_native_lines_read_back_as_the_python_lines(calls, first_seq):
    segment = segment_of(calls)
    lines = MetricsBatch(segment, first_seq).encoded().lines
    native_lines, expected = lines.split(b"\n"), python_lines(calls, first_seq).split(b"\n")
    assert len(native_lines) == len(expected) == len(calls) + 1
    for native_line, python_line in zip(native_lines[:-1], expected[:-1]):
        assert typed(orjson.loads(native_line)) == typed(orjson.loads(python_line)), native_line
    records = MetricsBatch(segment, first_seq).records  # what a backlog keeps
    assert [typed(record) for record in records] == [typed(record) for record in python_records(calls, first_seq)]


def test_the_lines_are_orjsons_own_bytes_for_the_values_training_logs():
    """Not only the same values: the same text, so that a line reads the same wherever it was written."""
    calls = [(1764100000.0 + step / 7, step, step / 100 if step % 2 else None,
              {"train/loss": 1 / (step + 1), "lr": 3e-4 * 0.999**step, "grad_norm": step * 1e16,
               "tiny": step * 1e-7, "count": step, "ok": step % 3 == 0, "nan": math.nan, "inf": -math.inf})
             for step in range(2_000)]
    assert MetricsBatch(segment_of(calls), 1).encoded().lines == python_lines(calls, 1)


def test_the_columns_are_the_records_numbers_and_kinds():
    big = 2**53 + 1
    calls = [(10.5 + i, i * 3, None if i % 2 else i / 2,
              {"loss": i / 4, "n": i, "b": True, "int_then_float": 2.5 if i == 4 else i, "big": big * (i == 2),
               "float_then_int": 1.5 if i == 0 else i})
             for i in range(5)]
    encoded = MetricsBatch(segment_of(calls), 1).encoded().columns
    assert np.frombuffer(encoded.steps, np.int64).tolist() == [0, 3, 6, 9, 12]
    assert np.frombuffer(encoded.times, np.float64).tolist() == [10.5, 11.5, 12.5, 13.5, 14.5]
    epochs = np.frombuffer(encoded.epochs, np.float64)
    assert epochs[0::2].tolist() == [0.0, 1.0, 2.0]
    assert (epochs[1::2].view(np.int64) == NO_EPOCH.view(np.int64)).all()
    assert encoded.keys == ("loss", "n", "b", "int_then_float", "big", "float_then_int")
    # what the Python path's index makes of each (stepline.logbook.columns): a float first is a float column;
    # else numpy's reading of the values; integers past 2**53 are not exact in float rows
    assert encoded.kinds == ("float", "int", "bool", "float", "int", "float")
    assert encoded.exact == (True, True, True, True, False, True)
    floats = np.frombuffer(encoded.floats, np.float64).reshape(6, 5)
    integers = np.frombuffer(encoded.integers, np.int64).reshape(6, 5)
    assert floats[0].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0] and floats[3].tolist() == [0, 1, 2, 3, 2.5]
    assert integers[1].tolist() == [0, 1, 2, 3, 4] and integers[4].tolist() == [0, 0, big, 0, 0]
    floats_only = MetricsBatch(segment_of([(1.0, 0, None, {"a": 1.0, "b": 2})]), 1).encoded().columns
    assert floats_only.kinds == ("float", "int") and floats_only.integers is not None
    assert MetricsBatch(segment_of([(1.0, 0, None, {"a": 1.0})]), 1).encoded().columns.integers is None
    assert floats_only.places is None and floats_only.counts is None  # every record has every key


def test_records_whose_keys_differ_give_each_key_the_points_the_python_index_gives_it():
    """A segment with an eval record among training ones (most segments of a real run): per key, in the order
    first logged, its records and values, of the kinds the Python path's index keeps (numpy's reading of the
    key's values), and the same index once taken in."""
    big = 2**53 + 1
    calls = [(1.0, 0, None, {"loss": 0.5, "n": 1}), (2.0, 1, 0.5, {"loss": 0.25, "eval": True}),
             (3.0, 2, None, {"n": 2.5, "eval": False, "big": big, "loss": 0.0625}),
             (4.0, 3, 1.0, {"loss": 0.125, "big": 1.5, "ok": 1})]  # "loss" in every record, the others not
    encoded = MetricsBatch(segment_of(calls), 1).encoded().columns
    assert encoded.keys == ("loss", "n", "eval", "big", "ok") and encoded.counts == (4, 2, 2, 2, 1)
    assert np.frombuffer(encoded.places, np.uint32).tolist() == [0, 1, 2, 3, 0, 2, 1, 2, 2, 3, 3]
    assert encoded.kinds == ("float", "float", "bool", "float", "int")
    assert encoded.exact == (True, True, True, False, True)
    native, python = Columns(), Columns()
    native.add_columns(encoded)
    python.add(python_records(calls, 1))
    native.settle()
    python.settle()
    assert list(native) == list(python)
    for key, column in python.items():
        found = native[key]
        assert (found.kind, found.exact, found.summary.as_dict()) == (column.kind, column.exact,
                                                                     column.summary.as_dict()), key
        for field in ("record", "value"):
            assert found.pending.field(field).tolist() == column.pending.field(field).tolist(), (key, field)
    for field in ("step", "time", "epoch"):
        assert (native.pending.field(field).view(np.int64).tolist()
                == python.pending.field(field).view(np.int64).tolist()), field


@pytest.mark.parametrize("call", [
    (1.0, 0, None, {"uint64": 2**64 - 1}),  # valid, past int64: Python writes it
    (1.0, 0, None, {"huge": 2**70}),
    (1.0, 0, None, {"bad\udcff": 1.0}),  # a lone surrogate: Python escapes it and says so
    (1.0, 0, None, {"": 1.0}),  # refused by the Python path, with a warning
    (1.0, 0, None, {"sub": type("F", (float,), {})(1.0)}),
    (1.0, 0, None, {"numpy": np.float32(1.0)}),
    (1.0, 0, None, {}),
    (1.0, 2**63, None, {"a": 1.0}),
    (math.nan, 0, None, {"a": 1.0}),
    (1.0, 0, 2**64 - 1, {"a": 1.0}),
    (1.0, 0, None, type("M", (dict,), {})(a=1.0)),
], ids=["uint64", "past 64 bits", "lone surrogate", "empty key", "float subclass", "numpy", "no values",
        "step past int64", "NaN time", "epoch", "dict subclass"])
def test_what_the_segment_does_not_take_goes_to_python_whole(call):
    segment = segment_of([(1.0, 0, None, {"a": 1.0})], limit=2)
    assert segment.add(*call) == NOT_PLAIN and len(segment) == 1
    segment.add(1.0, 1, None, {"a": 1.0})
    assert segment.add(*call) == NOT_PLAIN  # full: not plain is still not plain, so no segment is opened for it
    assert segment.add(1.0, 2, None, {"a": 1.0}) == CLOSED and len(segment) == 2


def test_a_closed_segment_takes_nothing_more():
    segment = segment_of([(1.0, 0, None, {"a": 1.0})])
    assert segment.close() == 1
    assert segment.add(1.0, 1, None, {"a": 1.0}) == CLOSED and len(segment) == 1


def log_everything(run) -> None:
    """Calls that take every path: segments with the same keys, keys that change, ints and bools first, NaN and
    the infinities, epochs, values past 64 bits, numpy scalars, steps that repeat, params and log lines between
    metrics, and a flush."""
    for step in range(30_000):
        run.log({"train/loss": 1 / (step + 1), "lr": 3e-4, "tokens": step * 512, "nan": math.nan if step % 7 else 1.0},
                step=step, epoch=step / 1000)
        if step % 10_000 == 5:
            run.params.set(**{f"at_{step}": step})
            run.info("between", step=step)
    run.flush()
    for step in range(30_000, 30_500):
        run.log({"eval/acc": step % 2 == 0} if step % 5 else {"eval/loss": math.inf, "big": 2**64 - 1}, step=step)
    run.log({"numpy": np.float32(0.5), "past": 2**70, "int_then_float": 1}, step=30_499)
    run.log({"int_then_float": 2.5, "bad\udcff": 1.0}, step=30_499)
    run.log({"int_then_float": 3})


def test_a_run_writes_the_same_logbook_and_index_with_and_without_segments(logdir, monkeypatch):
    encoded = []
    encode = MetricsBatch.encoded
    monkeypatch.setattr(MetricsBatch, "encoded", lambda batch: encoded.append(len(batch)) or encode(batch))
    with pytest.warns(stepline.SteplineWarning):
        native = stepline.init(project="p", name="native", dir=logdir)
        log_everything(native)
        native.finish()
    assert sum(encoded) > 30_000, "the segments were not used"
    monkeypatch.setattr(metrics_batch, "NATIVE", False)
    with pytest.warns(stepline.SteplineWarning):
        python = stepline.init(project="p", name="python", dir=logdir)
        log_everything(python)
        python.finish()
    runs = {run.name: run for run in stepline.Logbook(logdir).runs("p")}
    written = {name: [typed({k: v for k, v in record.items() if k != "time"}) for record in run.records("metrics")]
               for name, run in runs.items()}
    assert len(written["native"]) == 30_503 and written["native"] == written["python"]
    for run in runs.values():
        assert_index_matches_the_file(run.path)
        # in the order of the calls: each params and log record between the metrics of its steps
        steps = {record["seq"]: record["step"] for record in run.records("metrics")}
        for kind in ("params", "log"):
            for record in run.records(kind):
                before = max((seq for seq in steps if seq < record["seq"]), default=0)
                after = min(seq for seq in steps if seq > record["seq"])
                assert steps[before] % 10_000 == 5 and steps[after] == steps[before] + 1, (kind, record)
    summaries = [runs[name].summaries() for name in ("native", "python")]
    assert [(key, typed(s.as_dict())) for key, s in summaries[0].items()] == [
        (key, typed(s.as_dict())) for key, s in summaries[1].items()]


def in_two_threads(train) -> None:
    """``train("left")`` and ``train("right")`` at once; the queue may fill: calls wait, and none is lost."""
    threads = [threading.Thread(target=train, args=(name,)) for name in ("left", "right")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stepline.SteplineWarning)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def test_two_runs_in_two_threads_keep_their_own_lines(logdir):
    def train(name: str) -> None:
        run = stepline.init(project="p", name=name, dir=logdir)
        for step in range(20_000):
            run.log({f"{name}/loss": step / 3, f"{name}/step": step}, step=step)
        run.finish()

    in_two_threads(train)
    for name in ("left", "right"):
        run = stepline.Logbook(logdir).run(name, "p")
        records = list(run.records("metrics"))
        assert [record["step"] for record in records] == list(range(20_000))
        assert all(list(record["values"]) == [f"{name}/loss", f"{name}/step"] for record in records)
        assert list(run.series(f"{name}/loss").values) == [step / 3 for step in range(20_000)]
        assert_index_matches_the_file(run.path)


def test_parsed_records_give_the_columns_their_calls_give():
    """What a server or a reader indexes from the lines it parsed is what the writer indexed from the calls."""
    calls = [(1.5 + i, i, i / 10 if i % 3 else None, {"loss": 1 / (i + 1), "n": i, "ok": i % 2 == 0})
             for i in range(50)]
    written = MetricsBatch(segment_of(calls), 7).encoded()
    parsed = [events.decode(line) for line in written.lines.splitlines()]
    assert metrics_batch.record_columns(parsed) == written.columns
    for odd in ({"step": 1, "values": {"a": 1.0}},  # no time: the Python path reads it as it can
                {"time": 1.0, "step": "1", "values": {"a": 1.0}}, {"time": 1.0, "step": 1, "values": {"a": [1]}}):
        assert metrics_batch.record_columns([*parsed, {"type": "metrics", "seq": 99, **odd}]) is None


@settings(max_examples=300, deadline=None)
@given(calls=st.lists(records_unescaped, min_size=1, max_size=40),
       gaps=st.lists(st.integers(1, 3), min_size=40, max_size=40))
def test_lines_a_server_receives_are_read_natively_as_the_general_parser_reads_them(calls, gaps):
    """A shipper's batch (the logbook's lines, seqs rising with gaps where other records came between) read in
    one native pass: the records, seqs and index columns of orjson's reading."""
    written = python_records(calls, 1)
    for record, seq in zip(written, np.cumsum(gaps).tolist()):
        record["seq"] = seq
    body = events.encode_many(written)
    parsed = [events.decode(line) for line in body.splitlines()]
    for cut in (body, body[:-1]):  # the last line with its newline or without
        received = metrics_batch.read_lines(cut, limit=100)
        assert received is not None and len(received) == len(calls) and received.lines == body
        assert [typed(record) for record in received.records] == [typed(record) for record in parsed]
        assert np.frombuffer(received.seqs(), np.int64).tolist() == [record["seq"] for record in parsed]
        assert (received.first_seq, received.last_seq) == (parsed[0]["seq"], parsed[-1]["seq"])
        assert received.columns() == metrics_batch.record_columns(parsed)


GOOD = b'{"type":"metrics","seq":2,"time":1.5,"step":3,"values":{"loss":0.25}}'


@pytest.mark.parametrize("line", [
    b'{"type": "metrics", "seq": 2, "time": 1.5, "step": 3, "values": {"loss": 0.25}}',  # JSON, not our layout
    b'{"seq":2,"type":"metrics","time":1.5,"step":3,"values":{"loss":0.25}}',
    b'{"type":"metrics","seq":2,"time":1.5,"step":3,"values":{"lo\\u0073s":0.25}}',  # an escape
    b'{"type":"metrics","seq":2,"time":1.5,"step":3,"values":{"loss":0.25,"loss":1}}',  # orjson keeps the last
    b'{"type":"metrics","seq":2,"time":1.5,"step":3,"values":{"loss":18446744073709551615}}',  # past int64
    b'{"type":"metrics","seq":2,"time":1.5,"step":3,"values":{"loss":1e400}}',
    b'{"type":"metrics","seq":2,"time":1.5,"step":3,"values":{"loss":1e-400}}',  # orjson: 0.0
    b'{"type":"metrics","seq":2,"time":1.5,"step":3,"values":{"\xed\xa0\x80":1}}',  # a surrogate in UTF-8
    b'{"type":"metrics","seq":2,"time":1.5,"step":3,"values":{"":1}}',
    b'{"type":"metrics","seq":2,"time":1.5,"step":3,"values":{}}',
    b'{"type":"metrics","seq":2,"time":1.5,"step":3,"values":{"loss":"high"}}',
    b'{"type":"metrics","seq":0,"time":1.5,"step":3,"values":{"loss":0.25}}',
    b'{"type":"metrics","seq":2,"time":1.5,"step":3,"values":{"loss":0.25}}',  # not past the seq before
    b'{"type":"metrics","seq":3,"time":1.5,"step":3.0,"values":{"loss":0.25}}',
    b'{"type":"metrics","seq":3,"time":1.5,"step":3,"epoch":true,"values":{"loss":0.25}}',
    b'{"type":"metrics","seq":3,"time":1.5,"step":3,"values":{"loss":01}}',
    b'{"type":"metrics","seq":3,"time":1.5,"step":3,"values":{"loss":0.25},"x":1}',
    b'{"type":"metrics","seq":3,"time":1.5,"step":3,"values":{"loss":0.25}}\r',
    b'',  # an empty line
    b'{"type":"log","seq":3,"time":1.5,"level":"INFO","message":"hi"}',
])
def test_a_line_not_exactly_in_stepline_s_layout_sends_the_whole_body_to_the_general_parser(line):
    assert metrics_batch.read_lines(GOOD + b"\n" + line + b"\n", limit=100) is None
    assert metrics_batch.read_lines(GOOD + b"\n", limit=100) is not None
    assert metrics_batch.read_lines(GOOD + b"\n" + GOOD.replace(b'"seq":2', b'"seq":3'), limit=1) is None


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.binary(max_size=6).map(lambda line: line.replace(b"\n", b"")), max_size=12),
       tail=st.binary(max_size=4).map(lambda rest: rest.replace(b"\n", b"")), limit=st.integers(0, 14))
def test_a_shipper_s_native_line_scan_is_the_python_one(lines, tail, limit):
    """Where a batch of whole lines ends, how many lines, whether one is empty: the same natively as in Python."""
    from stepline.logbook import tail as tail_module

    chunk = b"".join(line + b"\n" for line in lines) + tail
    native = tail_module.scan_lines(chunk, limit)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tail_module, "NATIVE", False)
        assert native == tail_module.scan_lines(chunk, limit)
    taken = min(limit, len(lines))
    assert native == (sum(len(line) + 1 for line in lines[:taken]), taken, b"" in lines[:taken])


def test_two_threads_logging_into_one_run_lose_nothing(logdir):
    """Both threads add to the run's open segment, and either may find it taken and open the next."""
    run = stepline.init(project="p", name="shared", dir=logdir)

    def train(name: str) -> None:
        for step in range(20_000):
            run.log({f"{name}/loss": step / 3})

    in_two_threads(train)
    run.finish()
    view = stepline.Logbook(logdir).run("shared", "p")
    seqs = [record["seq"] for record in view.records("metrics")]
    assert seqs == sorted(seqs) and len(set(seqs)) == 40_000
    for name in ("left", "right"):
        assert list(view.series(f"{name}/loss").values) == [step / 3 for step in range(20_000)]
    assert_index_matches_the_file(view.path)


@pytest.mark.slow
def test_the_python_path_passes_the_delivery_index_and_metrics_tests():
    """What an install without a C++ compiler runs (every call queued for the writer to encode in Python, the
    index built from records in Python, a server's lines read by orjson): the tests of delivery, of the index,
    of the metrics API and of the wire's lines, on that path."""
    modules = ["tests/test_delivery.py", "tests/test_index.py", "tests/test_metrics.py", "tests/server/test_lines.py"]
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *modules],
                            cwd=REPO, env={**os.environ, "STEPLINE_NATIVE": "0"}, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout.splitlines()[-1]
