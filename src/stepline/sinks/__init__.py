"""Sinks receive a run's records from its writer thread. The logbook sink is the only one: remote backends
are fed from the logbook by a shipper each (``stepline.remote``), so the writer never waits on a network."""

from stepline.sinks.base import Sink
from stepline.sinks.logbook import LogbookSink

__all__ = ["LogbookSink", "Sink"]
