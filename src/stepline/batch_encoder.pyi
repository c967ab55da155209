# The compiled batch encoder (batch_encoder.cpp); see stepline.metrics_batch, its one user.
from typing import Any

def encode(
    items: list[tuple[str, float, int, Any, dict[str, Any]]], first_seq: int, /
) -> tuple[bytes, bytes, bytes, bytes, tuple[str, ...] | None, tuple[bool, ...] | None, bytes | None] | None: ...
