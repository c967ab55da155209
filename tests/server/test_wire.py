"""The ingest's quick checks of a batch never take what the wire's models refuse (they only skip the models'
cost for batches that are plainly valid); the models still give every 422 its words."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from stepline.server.wire import EventBatch, plainly_valid

batches = TypeAdapter(EventBatch)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                        st.sampled_from(["NaN", "Infinity", "-Infinity", "nan", "", "x"]))
near_values = st.dictionaries(st.one_of(st.text(max_size=5), st.integers()), json_scalar, max_size=4)
field = st.sampled_from(["type", "seq", "time", "step", "epoch", "values", "extra", "level", "message", "op"])
near_metrics = st.fixed_dictionaries(
    {"type": st.sampled_from(["metrics", "metrics", "log", "params", "heartbeat", "status", "other", None])},
    optional={"seq": json_scalar, "time": json_scalar, "step": json_scalar, "epoch": json_scalar,
              "values": st.one_of(near_values, json_scalar), "extra": json_scalar,
              "level": st.sampled_from(["INFO", "LOUD"]), "message": json_scalar, "op": st.sampled_from(["set"]),
              "status": st.sampled_from(["finished", "done"])})
valid_metrics = st.builds(
    lambda seq, time, step, epoch, values: {"type": "metrics", "seq": seq, "time": time, "step": step,
                                            **({} if epoch is None else {"epoch": epoch}), "values": values},
    st.integers(1, 10**6), st.one_of(st.floats(0, 2e9), st.integers(0, 2**31)), st.integers(-(2**63), 2**63 - 1),
    st.one_of(st.none(), st.floats(allow_nan=False), st.integers()),
    st.dictionaries(st.text(min_size=1, max_size=8), st.one_of(
        st.floats(allow_nan=False), st.integers(), st.booleans(), st.sampled_from(["NaN", "Infinity"])),
        min_size=1, max_size=6))


def models_take(batch) -> bool:
    try:
        batches.validate_python(batch)
    except ValidationError:
        return False
    return True


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.fixed_dictionaries({"events": st.lists(st.one_of(near_metrics, valid_metrics), max_size=5)}),
                 json_scalar, st.fixed_dictionaries({"events": json_scalar})))
def test_the_quick_checks_take_nothing_the_models_refuse(batch):
    if plainly_valid(batch):
        assert models_take(batch), batch


@settings(max_examples=1500, deadline=None)
@given(st.fixed_dictionaries({"events": st.lists(st.one_of(near_metrics, valid_metrics), max_size=5)}))
def test_the_quick_checks_of_a_parsed_body_take_nothing_the_models_refuse(batch):
    import json

    parsed = json.loads(json.dumps(batch))  # what the ingest checks: JSON's object keys are text
    if plainly_valid(parsed, parsed_json=True):
        assert models_take(parsed), parsed


@settings(max_examples=300, deadline=None)
@given(st.lists(valid_metrics, min_size=1, max_size=20))
def test_metrics_batches_are_plainly_valid(records):
    batch = {"events": records}
    assert plainly_valid(batch) and plainly_valid(batch, parsed_json=True) and models_take(batch)


@pytest.mark.parametrize("bad", [{"seq": True}, {"time": "1"}, {"step": 1.5}, {"values": {}},
                                 {"values": {"a": "nan"}}, {"values": {"a": None}}, {"extra": 1}])
def test_each_way_a_metrics_record_can_be_wrong_goes_to_the_models(bad):
    record = {"type": "metrics", "seq": 1, "time": 1.0, "step": 0, "values": {"a": 1.0}, **bad}
    assert not plainly_valid({"events": [record]}) and not models_take({"events": [record]})
