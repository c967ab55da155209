"""``run.params``: hyperparameters as a history of operations, replayed to a dict.

    run.params.set(lr=1e-3, model={"layers": 12})   # replaces the named top-level keys
    run.params.extend(model={"dropout": 0.1})        # deep merge
    run.params.update("model.layers", 24)            # one dotted key
    run.params.read()  # {"lr": 0.001, "model": {"layers": 24, "dropout": 0.1}}
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stepline import events
from stepline.errors import ConfigError
from stepline.values import as_mapping, decode_params, to_json_safe

if TYPE_CHECKING:
    from stepline.channel import RunChannel

OPERATIONS = ("set", "extend", "update")


def apply_operation(state: dict[str, Any], record: Mapping[str, Any]) -> None:
    """Apply one params record to ``state`` in place: the single replay rule, shared with the reader."""
    op = record.get("op")
    if op == "set":
        state.update(copy.deepcopy(record.get("data") or {}))
    elif op == "extend":
        _deep_merge(state, copy.deepcopy(record.get("data") or {}))
    elif op == "update":
        parts = str(record.get("key", "")).split(".")
        target = state
        for part in parts[:-1]:
            child = target.get(part)
            if not isinstance(child, dict):
                child = target[part] = {}
            target = child
        target[parts[-1]] = copy.deepcopy(record.get("value"))


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params as dotted keys: ``{"model": {"layers": 2}}`` -> ``{"model.layers": 2}``."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _deep_merge(target: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = value


class Params:
    """The run's params; every change is recorded, and ``read()`` returns the current state."""

    def __init__(self, run: RunChannel, state: dict[str, Any] | None = None) -> None:
        self._run = run
        self._state: dict[str, Any] = state if state is not None else {}

    def set(self, values: Mapping[str, Any] | Any = None, /, **more: Any) -> None:
        """Set top-level keys, replacing their old values: ``run.params.set(lr=0.1)`` or ``set({"lr": 0.1})``."""
        self._record("set", self._merged(values, more))

    def extend(self, values: Mapping[str, Any] | Any = None, /, **more: Any) -> None:
        """Deep-merge into the params: ``run.params.extend(model={"dropout": 0.1})``."""
        self._record("extend", self._merged(values, more))

    def update(self, key: str, value: Any) -> None:
        """Set one dotted key: ``run.params.update("model.layers", 100)``."""
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"params key {key!r} must be a non-empty dotted name such as 'model.layers'")
        safe, lossy = to_json_safe(value)
        self._warn_lossy([f"{key}.{p}" if p != "<root>" else key for p in lossy])
        self._apply({"type": events.PARAMS, "seq": None, "time": time.time(), "op": "update", "key": key,
                     "value": safe})

    def read(self) -> dict[str, Any]:
        """The params as they stand now, NaN and infinities restored."""
        return decode_params(copy.deepcopy(self._state))

    def _merged(self, values: Any, more: dict[str, Any]) -> dict[str, Any]:
        if values is None:
            return more
        fields = as_mapping(values)
        if fields is None:
            raise ConfigError(
                f"params must be a mapping or an object with fields, got {type(values).__name__}; "
                "pass keywords instead: run.params.set(name=value)"
            )
        return {**fields, **more}

    def _record(self, op: str, values: dict[str, Any]) -> None:
        safe, lossy = to_json_safe(values)
        self._warn_lossy(lossy)
        if safe:
            self._apply({"type": events.PARAMS, "seq": None, "time": time.time(), "op": op, "data": safe})

    def _apply(self, record: dict[str, Any]) -> None:
        apply_operation(self._state, record)
        self._run.put(record)

    def _warn_lossy(self, paths: list[str]) -> None:
        if paths:
            shown = ", ".join(paths[:10]) + (f" and {len(paths) - 10} more" if len(paths) > 10 else "")
            self._run.warn_once(
                ("params", tuple(paths)),
                f"params {shown} have no JSON form and were stored as their repr()",
            )
