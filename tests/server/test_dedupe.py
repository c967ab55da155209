"""The one de-duplication rule of every store: a record is stored unless the run holds a later seq of its kind."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stepline.server.stores.base import not_stored_yet


def one_at_a_time(records, max_seq):
    """The rule a record at a time (docs/wire.md: each (run, file, seq) once)."""
    fresh = []
    for record in records:
        if record["type"] in max_seq:
            if record["seq"] <= max_seq[record["type"]]:
                continue
            max_seq[record["type"]] = record["seq"]
        fresh.append(record)
    return fresh


records = st.lists(st.fixed_dictionaries({"type": st.sampled_from(["metrics", "log", "status"]),
                                          "seq": st.integers(1, 30)}), max_size=12)
in_order = st.builds(lambda start, n: [{"type": "metrics", "seq": seq} for seq in range(start, start + n)],
                     st.integers(1, 30), st.integers(1, 12))


@settings(max_examples=500, deadline=None)
@given(st.one_of(records, in_order), st.fixed_dictionaries({"metrics": st.integers(0, 30), "log": st.integers(0, 30)}))
def test_a_batch_keeps_the_records_the_run_lacks_whatever_its_order(batch, held):
    expected_seq, got_seq = dict(held), dict(held)
    assert not_stored_yet(batch, got_seq) == one_at_a_time(batch, expected_seq)
    assert got_seq == expected_seq
