"""Sinks receive a run's records from its writer thread: the local logbook now, remote trackers later."""

from stepline.sinks.base import Sink
from stepline.sinks.logbook import LogbookSink

__all__ = ["LogbookSink", "Sink"]
