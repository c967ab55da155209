"""Media: what ``run.log`` takes besides numbers (``types.py``), and how the logbook keeps them (``encode.py``)."""

from stepline.media.types import Audio, Histogram, Image, Media, Table, Text

__all__ = ["Audio", "Histogram", "Image", "Media", "Table", "Text"]
