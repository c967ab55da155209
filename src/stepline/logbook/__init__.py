"""The embedded logbook: the on-disk layout and the reader every part of stepline reads through."""

from stepline.logbook.reader import Logbook, RunView, Series

__all__ = ["Logbook", "RunView", "Series"]
