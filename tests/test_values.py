"""Value coercion and round trips, property-tested: what goes in comes back out of the logbook exactly."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stepline
from stepline import Logbook, events
from stepline.values import decode_params, to_json_safe

numbers = st.one_of(st.integers(min_value=-(2**63), max_value=2**64 - 1), st.floats(allow_nan=True), st.booleans())
keys = st.text(min_size=1, max_size=20)
row_keys = keys.filter(lambda k: k not in ("step", "timestamp", "epoch"))  # metrics() rows' own fields
json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(), st.text(max_size=20)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def same(a, b) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@given(st.dictionaries(keys, numbers, min_size=1, max_size=8))
def test_metric_records_round_trip_through_the_codec(values):
    record = {"type": events.METRICS, "seq": 1, "time": 1.5, "step": 0, "values": values}
    assert same(events.decode(events.encode(record))["values"], values)


@given(json_like)
def test_params_round_trip_through_json_safe_and_the_codec(value):
    safe, lossy = to_json_safe({"v": value})
    assert lossy == []
    record = {"type": events.PARAMS, "seq": 1, "time": 1.0, "op": "set", "data": safe}
    assert same(decode_params(events.decode(events.encode(record))["data"]), {"v": value})


def test_a_metric_named_like_a_row_field_is_kept_and_read_through_series(tmp_path):
    run = stepline.init(project="p", dir=tmp_path)
    run.log({"step": 99.0, "loss": 1.0}, step=3)
    run.finish()
    view = Logbook(tmp_path).run(run.id)
    assert view.metrics()[0]["step"] == 3
    assert view.series("step").values == [99.0] and view.series("step").steps == [3]


def test_integers_beyond_64_bits_become_floats_in_metrics_and_text_in_params(tmp_path):
    run = stepline.init(project="p", dir=tmp_path, config={"seed": 10**30})
    run.log({"big": 10**30, "small": 1})
    run.finish()
    view = Logbook(tmp_path).run(run.id)
    assert view.metrics()[0]["big"] == 1e30 and view.metrics()[0]["small"] == 1
    assert view.params() == {"seed": str(10**30)}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.dictionaries(row_keys, numbers, min_size=1, max_size=5), min_size=1, max_size=20))
def test_what_is_logged_is_what_the_reader_returns(tmp_path, calls):
    run = stepline.init(project="p", dir=tmp_path)
    for step, values in enumerate(calls):
        run.log(values, step=step)
    run.finish()
    rows = Logbook(tmp_path).run(run.id).metrics()
    assert len(rows) == len(calls)
    for row, values in zip(rows, calls):
        assert same({k: row[k] for k in values}, values)
