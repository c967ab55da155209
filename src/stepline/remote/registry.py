"""The one place that knows backend URLs: scheme -> how to check it and how to make a transport for one run.

    backends = resolve_backends("mlflow+http://127.0.0.1:5000", token=None)
    transport = backends[0].new_transport()     # a fresh transport: it belongs to one run

A transport keeps per-run state (the peer's run id, the params sent so far), so every run, including each
run of ``stepline sync --all``, gets its own. Adding a backend is one module with ``SCHEME``, ``FORM`` and
``transport_maker(url, token)``, and one line in :data:`KINDS`. The transport modules are imported only
when a URL of their kind is given, so a process that only logs locally never imports ``requests``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stepline.errors import ConfigError

if TYPE_CHECKING:
    from stepline.remote.shipper import Transport

# (URL prefix, module): the module has FORM (how such a URL looks) and transport_maker(url, token).
# The plain http(s) prefix of a stepline server comes last: the peers' prefixes are longer.
KINDS: tuple[tuple[str, str], ...] = (
    ("mlflow+", "stepline.remote.mlflow"),
    ("trackio+", "stepline.remote.trackio"),
    ("traintrack+", "stepline.remote.traintrack"),
    ("lmtracker+", "stepline.remote.lmtracker"),
    ("", "stepline.remote.client"),
)
LOCAL = "local"


@dataclass(frozen=True)
class Backend:
    """A remote backend a run pushes to: its URL (checked) and the maker of a transport for one run."""

    url: str
    token: str | None = field(repr=False)
    new_transport: Callable[[], Transport] = field(repr=False, compare=False)
    takes_node_parts: bool = False  # a stepline server: it shows a multi-node job's parts as one run


def resolve_backends(backend: str | Sequence[str] | None, token: str | None = None) -> list[Backend]:
    """The remote backends a run pushes to: ``backend`` (one URL or a list; ``"local"``, the logbook, is always
    kept), else ``STEPLINE_REMOTE`` (comma-separated). Each URL is checked now, so a typo fails at ``init``."""
    given = [backend] if isinstance(backend, str) else list(backend or [])
    urls = [b for b in given if b != LOCAL]
    if not given:
        urls = [url.strip() for url in os.environ.get("STEPLINE_REMOTE", "").split(",") if url.strip()]
    return [backend_for(url, token) for url in urls]


def backend_for(url: object, token: str | None = None) -> Backend:
    """One checked backend URL; :class:`ConfigError` naming every form stepline knows when it is none of them."""
    if isinstance(url, str):
        url = url.rstrip("/") if "?" not in url else url
        for prefix, module_name in KINDS:
            rest = url[len(prefix):]
            if url.startswith(prefix) and rest.startswith(("http://", "https://")):
                module = importlib.import_module(module_name)
                return Backend(url, token, module.transport_maker(url, token), takes_node_parts=not prefix)
    raise ConfigError(f"backend {url!r} is not one stepline knows: use {LOCAL!r} (the embedded logbook), "
                      f"{', '.join(_forms())}")


def _forms() -> list[str]:
    return [importlib.import_module(module_name).FORM for _, module_name in KINDS[::-1]]
