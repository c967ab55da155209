"""Facts about a model that every integration records the same way, read without importing a framework."""

from __future__ import annotations

from typing import Any


def parameter_counts(model: Any) -> dict[str, int]:
    """``{"total": n, "trainable": m}`` for a torch module (anything with ``parameters()``), else ``{}``."""
    parameters = getattr(model, "parameters", None)
    if not callable(parameters):
        return {}
    total = trainable = 0
    for parameter in parameters():
        count = parameter.numel()
        total += count
        if parameter.requires_grad:
            trainable += count
    return {"total": total, "trainable": trainable}


SECRET_MARKERS = ("token", "password", "secret", "api_key", "apikey", "credential")


def without_secrets(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` less the keys that hold credentials (``hub_token``, ``push_to_hub_token``, ...)."""
    return {key: value for key, value in values.items() if not _is_secret(key)}


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    # "include_num_input_tokens_seen" is a setting, not a secret: only names ending in a marker count.
    return any(lowered == marker or lowered.endswith("_" + marker) for marker in SECRET_MARKERS)
