"""Media as the logbook keeps them (docs/format.md, "Media"), encoded on the writer thread: each item of a media
record into a file under the run's ``media/`` folder (PNG, WAV, JSON, text), named by the record's seq, or
inline for a histogram; the record's line then says what is where.

    line_record = stored(record, run_path)   # files written; the record without its payload, with its items
"""

from __future__ import annotations

import os
import shutil
import struct
import wave
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from stepline.logbook import layout

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPES = {1: 0, 3: 2, 4: 6}  # grey, RGB, RGBA


def stored(record: dict[str, Any], run_path: Path) -> dict[str, Any]:
    """Write the files of a media record's items; the record as its line holds it."""
    folder = run_path / layout.MEDIA_DIR
    encode = _ENCODERS[record["kind"]]
    items = []
    for number, item in enumerate(record["payload"]):
        items.append(encode(item, folder, f"{record['seq']}-{number}"))
    line = {key: value for key, value in record.items() if key != "payload"}
    line["items"] = items
    return line


def _image(item: dict[str, Any], folder: Path, name: str) -> dict[str, Any]:
    if "path" in item:
        suffix = Path(item["path"]).suffix.lower() or ".img"
        target = _write(folder, name + suffix, lambda handle: _copy(item["path"], handle))
        data = target.read_bytes()[:32]
    else:
        data = item["png"] if "png" in item else png_bytes(_as_uint8(item["pixels"]))
        target = _write(folder, name + ".png", lambda handle: handle.write(data))
    found = {"file": f"{layout.MEDIA_DIR}/{target.name}", **_png_size(data)}
    if item.get("caption") is not None:
        found["caption"] = item["caption"]
    return found


def _histogram(item: dict[str, Any], folder: Path, name: str) -> dict[str, Any]:
    if "values" in item:
        counts, edges = np.histogram(item["values"], bins=item["bins"])
        return {"counts": counts.tolist(), "edges": edges.tolist(), "left_out": item["left_out"]}
    return {"counts": item["counts"].tolist(), "edges": item["edges"].tolist()}


def _table(item: dict[str, Any], folder: Path, name: str) -> dict[str, Any]:
    data = orjson.dumps({"columns": item["columns"], "rows": item["rows"]}, option=orjson.OPT_SERIALIZE_NUMPY)
    target = _write(folder, name + ".table.json", lambda handle: handle.write(data))
    return {"file": f"{layout.MEDIA_DIR}/{target.name}", "columns": item["columns"], "row_count": len(item["rows"])}


def _text(item: dict[str, Any], folder: Path, name: str) -> dict[str, Any]:
    data = item["text"].encode("utf-8", "backslashreplace")
    target = _write(folder, name + ".txt", lambda handle: handle.write(data))
    return {"file": f"{layout.MEDIA_DIR}/{target.name}", "chars": len(item["text"])}


def _audio(item: dict[str, Any], folder: Path, name: str) -> dict[str, Any]:
    samples = item["wave"]
    if samples.dtype.kind == "f":
        samples = np.round(np.clip(samples, -1.0, 1.0) * 32767)
    samples = np.clip(samples, -32768, 32767).astype("<i2")
    channels = 1 if samples.ndim == 1 else samples.shape[1]

    def write_wav(handle: Any) -> None:
        with wave.open(handle, "wb") as out:
            out.setnchannels(channels)
            out.setsampwidth(2)
            out.setframerate(item["sample_rate"])
            out.writeframes(samples.tobytes())

    target = _write(folder, name + ".wav", write_wav)
    found = {"file": f"{layout.MEDIA_DIR}/{target.name}", "sample_rate": item["sample_rate"], "channels": channels,
             "seconds": len(samples) / item["sample_rate"]}
    if item.get("caption") is not None:
        found["caption"] = item["caption"]
    return found


_ENCODERS: dict[str, Callable[[dict[str, Any], Path, str], dict[str, Any]]] = {
    "image": _image, "histogram": _histogram, "table": _table, "text": _text, "audio": _audio}


def png_bytes(pixels: np.ndarray) -> bytes:
    """A PNG of uint8 pixels (HW, or HWC with 1, 3 or 4 channels), without Pillow: rows behind filter byte 0,
    deflated."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = np.zeros((height, 1 + width * channels), np.uint8)
    rows[:, 1:] = pixels.reshape(height, width * channels)
    header = struct.pack(">IIBBBBB", width, height, 8, _PNG_COLOUR_TYPES[channels], 0, 0, 0)
    return (_PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + _chunk(b"IEND", b""))


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def _as_uint8(pixels: np.ndarray) -> np.ndarray:
    """Pixels as bytes: uint8 as they are; floats read as [0, 1] (NaN black); booleans and other integers
    clipped to 0-255."""
    if pixels.dtype == np.uint8:
        return np.ascontiguousarray(pixels)
    if pixels.dtype.kind == "f":
        return np.round(np.clip(np.nan_to_num(pixels, nan=0.0), 0.0, 1.0) * 255).astype(np.uint8)
    if pixels.dtype.kind == "b":
        return pixels.astype(np.uint8) * 255
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _png_size(data: bytes) -> dict[str, int]:
    """Width and height from a PNG's header; nothing for another format."""
    if data[:8] != _PNG_SIGNATURE or len(data) < 24:
        return {}
    width, height = struct.unpack(">II", data[16:24])
    return {"width": width, "height": height}


def _copy(source: str, handle: Any) -> None:
    try:
        original = open(source, "rb")
    except OSError as err:  # the user's file, gone: not a fault of the logbook's disk, so never tried again
        raise ValueError(f"cannot read {source}: {err.strerror}") from None
    with original:
        shutil.copyfileobj(original, handle)


def _write(folder: Path, name: str, write: Callable[[Any], Any]) -> Path:
    """Write a file whole: to a temporary name, then renamed into place."""
    folder.mkdir(exist_ok=True)
    target = folder / name
    temporary = folder / layout.temporary_name(name)
    with open(temporary, "wb") as handle:
        write(handle)
    os.replace(temporary, target)
    return target

