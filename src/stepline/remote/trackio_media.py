"""stepline's media records as Trackio's own client logs them (trackio 0.43: media/media.py, histogram.py,
table.py, markdown.py), so a Trackio server's Media and Reports pages show them: images and audio are files
uploaded to the server and named in the point; histograms, tables and text go inline.

    value = file_value("image", "vision", "baseline", 30, "12-0.png", caption="input")
    # {"_type": "trackio.image", "file_path": "vision/baseline/30/12-0.png", "caption": "input"}
"""

from __future__ import annotations

from typing import Any

import orjson

FILE_TYPES = {"image": "trackio.image", "audio": "trackio.audio"}  # kinds that Trackio keeps as files


def file_value(kind: str, project: str, run: str, step: int, name: str, caption: Any = None) -> dict[str, Any]:
    """The point's value for a file Trackio's server keeps where its bulk_upload_media puts it
    (``<project>/<run>/<step>/<name>`` under its media folder)."""
    return {"_type": FILE_TYPES[kind], "file_path": f"{_trackio_project(project)}/{run}/{step}/{name}",
            "caption": caption}


def inline_value(kind: str, item: dict[str, Any], data: bytes | None) -> dict[str, Any] | None:
    """The point's value for a histogram, table or text (``data``: the item's file), or None for a kind Trackio
    has no inline form of."""
    if kind == "histogram":
        return {"_type": "trackio.histogram", "bins": item["edges"], "values": item["counts"]}
    if data is None:
        return None
    if kind == "table":
        table = orjson.loads(data)
        return {"_type": "trackio.table", "_value": [dict(zip(table["columns"], row)) for row in table["rows"]]}
    if kind == "text":
        return {"_type": "trackio.markdown", "_value": data.decode("utf-8", "replace")}
    return None


def _trackio_project(project: str) -> str:
    """The folder Trackio keeps a project's media in (its utils.canonical_project_name)."""
    return "".join(c for c in project if c.isalnum() or c in ("-", "_")).rstrip() or "default"
