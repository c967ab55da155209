"""The one set of value-coercion rules: what a metric value may be, and how params become JSON.

Metric values are numbers: ``int``, ``float``, ``bool``, numpy scalars and 0-d arrays, 0-d torch
tensors (torch is never imported here; a tensor is recognised by its type's module). Anything else is
refused for that key alone.

Params take anything: what has no faithful JSON form is stored as its ``repr``.

    coerce_metric("loss", np.float32(0.5))     # 0.5
    to_json_safe({"lr": 1e-3, "path": Path("/d")})  # ({"lr": 0.001, "path": "/d"}, [])
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import enum
import math
import numbers
import os
from collections.abc import Mapping
from typing import Any

from stepline.errors import InvalidValueError

# Exact types accepted without a further look: the hot path checks ``type(v) in PLAIN_NUMBER_TYPES``.
PLAIN_NUMBER_TYPES = frozenset((float, int, bool))

# The integers JSON encoders (orjson, browsers) keep exactly; a metric beyond them becomes a float,
# a param beyond them its decimal text.
INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1

# How a non-finite float is written where a JSON number cannot hold it (see docs/format.md).
NON_FINITE_NAMES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class DeferredScalar:
    """A 0-d tensor on an accelerator: reading it would wait for the device, so the writer thread reads it."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: Any) -> None:
        self.tensor = tensor

    def resolve(self) -> int | float | bool:
        return self.tensor.item()


def coerce_metric(key: str, value: Any) -> int | float | bool | DeferredScalar:
    """Return ``value`` as a plain number, or raise :class:`InvalidValueError` naming ``key``."""
    try:
        number = _plain_number(key, value)
        if type(number) is int and not INT64_MIN <= number <= UINT64_MAX:
            number = float(number)  # JSON readers keep 64-bit integers only
    except OverflowError:
        raise InvalidValueError(f"{key!r} is beyond the range of a float ({_short_repr(value)}); "
                                "log it scaled, or its logarithm") from None
    return number


def _plain_number(key: str, value: Any) -> int | float | bool | DeferredScalar:
    kind = type(value)
    if kind in PLAIN_NUMBER_TYPES:
        return value
    module = kind.__module__
    if module == "numpy":
        if getattr(value, "ndim", None) == 0 and value.dtype.kind in "biuf":
            # float() and int(), not .item(): .item() keeps a long double a numpy scalar
            return {"b": bool, "i": int, "u": int, "f": float}[value.dtype.kind](value)
    elif module.startswith("torch") and hasattr(value, "dim"):
        if value.dim() == 0 and not value.is_complex():
            if value.device.type == "cpu":
                return value.item()
            # A clone keeps the value of this moment even if the caller updates the tensor in place.
            return DeferredScalar(value.detach().clone())
    elif isinstance(value, bool):
        return bool(value)
    elif isinstance(value, numbers.Integral):
        return int(value)
    elif isinstance(value, numbers.Real):
        return float(value)
    raise InvalidValueError(
        f"metric {key!r} has a value of type {kind.__name__} ({_short_repr(value)}); "
        "log numbers only: int, float, bool, a numpy scalar or a 0-d tensor "
        "(call .item() on a one-element tensor, or log text with run.info)"
    )


def to_json_safe(value: Any) -> tuple[Any, list[str]]:
    """Return ``(json_safe_copy, paths_stored_as_repr)`` for a params value; never raises."""
    lossy: list[str] = []
    return _convert(value, "", lossy, 0), lossy


_MAX_DEPTH = 64


def _convert(value: Any, path: str, lossy: list[str], depth: int) -> Any:
    kind = type(value)
    if value is None or kind in (str, bool):
        return value
    if kind is int:
        return value if INT64_MIN <= value <= UINT64_MAX else str(value)
    if kind is float:
        return value if math.isfinite(value) else encode_non_finite_param(value)
    if depth > _MAX_DEPTH:
        lossy.append(path or "<root>")
        return f"<{type(value).__name__} nested deeper than {_MAX_DEPTH} levels>"  # its repr could recurse too deep
    depth += 1
    if isinstance(value, Mapping):
        return {_key(k): _convert(v, _join(path, _key(k)), lossy, depth) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_convert(v, f"{path}[{i}]", lossy, depth) for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        items = list(value)
        try:
            items.sort()
        except TypeError:
            pass
        return [_convert(v, f"{path}[{i}]", lossy, depth) for i, v in enumerate(items)]
    if isinstance(value, enum.Enum):
        return _convert(value.value, path, lossy, depth)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return _convert(int(value), path, lossy, depth)
    if isinstance(value, numbers.Real) and not _is_array(value):
        try:
            return _convert(float(value), path, lossy, depth)
        except OverflowError:  # beyond a float: kept exactly, as text (as integers beyond 64 bits are)
            return str(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    module = kind.__module__
    if module == "numpy" and hasattr(value, "tolist"):
        return _convert(value.tolist(), path, lossy, depth)
    if module.startswith("torch"):
        if kind.__name__ in ("dtype", "device"):
            return str(value)
        if hasattr(value, "tolist"):
            return _convert(value.detach().cpu().tolist(), path, lossy, depth)
    fields = as_mapping(value)
    if fields is not None:
        return _convert(fields, path, lossy, depth)
    lossy.append(path or "<root>")
    return _short_repr(value, limit=None)


def as_mapping(value: Any) -> Mapping[str, Any] | None:
    """The fields of a config-like object (Namespace, dataclass, object with ``to_dict()``), else None."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, argparse.Namespace):
        return vars(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and not isinstance(value, type):
        try:
            as_dict = to_dict()
        except Exception:  # a broken to_dict() falls back to the repr
            return None
        if isinstance(as_dict, Mapping):
            return as_dict
    return None


def encode_non_finite_param(value: float) -> dict[str, str]:
    """A NaN or infinity in params, written as ``{"$float": "NaN"}`` since JSON has no such number."""
    return {"$float": "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")}


def decode_params(value: Any) -> Any:
    """Undo :func:`encode_non_finite_param` throughout a params tree read from disk."""
    if isinstance(value, dict):
        if len(value) == 1 and "$float" in value and value["$float"] in NON_FINITE_NAMES:
            return NON_FINITE_NAMES[value["$float"]]
        return {k: decode_params(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_params(v) for v in value]
    return value


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, enum.Enum):
        return str(key.value)
    return str(key)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_array(value: Any) -> bool:
    return getattr(value, "ndim", 0) not in (0, None)


def _short_repr(value: Any, limit: int | None = 80) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} with a failing repr>"
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text
