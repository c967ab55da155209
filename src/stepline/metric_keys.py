"""The one naming scheme for metrics coming from frameworks: ``train/<name>``, ``eval/<name>``, ``test/<name>``.

    metric_key("eval_loss")     # "eval/loss"   (Hugging Face)
    metric_key("val_acc")       # "eval/acc"    (Lightning, Keras)
    metric_key("val/acc")       # "eval/acc"
    metric_key("loss")          # "train/loss"
    metric_key("loss", "test")  # "test/loss"   (a Keras evaluate() outside fit)
    metric_key("custom/x")      # "custom/x"    (a key that carries a prefix keeps it)
"""

from __future__ import annotations

from functools import lru_cache

SYSTEM = "system/"  # the machine's figures (sampler.py): sampled on a clock, not at training steps

_UNDERSCORE_PREFIXES = (("eval_", "eval"), ("val_", "eval"), ("validation_", "eval"), ("test_", "test"),
                        ("train_", "train"))
_SLASH_ALIASES = {"val": "eval", "validation": "eval"}


@lru_cache(maxsize=4096)
def metric_key(raw: str, default: str = "train") -> str:
    """The stepline key of a framework's metric name; ``default`` is the namespace of a name without one."""
    if "/" in raw:
        head, rest = raw.split("/", 1)
        return f"{_SLASH_ALIASES[head]}/{rest}" if head in _SLASH_ALIASES and rest else raw
    for prefix, namespace in _UNDERSCORE_PREFIXES:
        if raw.startswith(prefix) and len(raw) > len(prefix):
            return f"{namespace}/{raw[len(prefix):]}"
    return f"{default}/{raw}"
